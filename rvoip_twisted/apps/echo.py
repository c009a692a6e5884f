"""The echo test line: answers and sends the caller's own audio back."""

from zope.interface import implementer

from ..interfaces import ICallHandler


@implementer(ICallHandler)
class EchoApp:
    def incomingCall(self, call):
        call.echo()
        return call.answer()
