"""
Behaviour around any application: ring before answering
(C{--answer-after}), hang up after a while (C{--max-duration}).
"""

from twisted.internet import defer
from zope.interface import implementer

from ..interfaces import ICallHandler


@implementer(ICallHandler)
class AnswerAfter:
    """Ring for C{delay} seconds, then hand the call to the application."""

    def __init__(self, handler, delay):
        self.handler = handler
        self.delay = delay

    def incomingCall(self, call):
        call.ring()
        call.call_later(self.delay, self._go, call)

    def _go(self, call):
        if call.state in ("incoming", "ringing"):
            d = defer.maybeDeferred(self.handler.incomingCall, call)
            d.addErrback(call._sessions._handler_failed, call)


@implementer(ICallHandler)
class MaxDuration:
    """Hang up (BYE from our side) C{seconds} after the call is answered."""

    def __init__(self, handler, seconds):
        self.handler = handler
        self.seconds = seconds

    def incomingCall(self, call):
        call.call_later(self.seconds, call.hangup)
        return self.handler.incomingCall(call)
