"""
SIP errors.  Every error that comes from bad input knows the status a
server answers it with (the h11 habit: errors carry the reply).
"""


class SIPError(Exception):
    """
    Base of the SIP errors.

    @ivar status: the SIP status code to answer with.
    @ivar reason: a short reason phrase, safe to put on the wire.
    """

    status = 500

    def __init__(self, reason, status=None):
        Exception.__init__(self, reason)
        self.reason = reason
        if status is not None:
            self.status = status

    def __str__(self):
        return "{} {}".format(self.status, self.reason)


class SIPParseError(SIPError):
    """
    The bytes are not a SIP message we accept.

    @ivar partial: when the start line and headers could be split, a
        L{rvoip_twisted.sip.message.Request} holding the raw headers, so
        that a transport can still answer it (400, 413, 505); else C{None}.
    """

    status = 400

    def __init__(self, reason, status=None, partial=None):
        SIPError.__init__(self, reason, status)
        self.partial = partial


class MessageTooLarge(SIPParseError):
    status = 413


class VersionNotSupported(SIPParseError):
    status = 505


class UnsupportedURIScheme(SIPError):
    status = 416


class NeedMoreData(Exception):
    """
    Internal to the stream framer: the buffer holds no complete message yet.
    """


class MissingContentLength(SIPParseError):
    """
    A message on a stream transport without Content-Length (RFC 3261
    18.3): the stream cannot be framed any more.
    """

    status = 400
