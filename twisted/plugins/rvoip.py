from twisted.application.service import ServiceMaker

rvoip = ServiceMaker(
    "rvoip", "rvoip_twisted.tap", "A SIP/RTP voice application server.", "rvoip")
