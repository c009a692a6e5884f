"""rvoip-twisted: a SIP/RTP server and library on Twisted."""
