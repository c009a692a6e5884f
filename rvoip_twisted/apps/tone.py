"""Answers and plays a continuous tone."""

from zope.interface import implementer

from ..interfaces import ICallHandler
from ..media.sources import ToneSource


@implementer(ICallHandler)
class ToneApp:
    def __init__(self, hz=440.0):
        self.hz = hz

    def incomingCall(self, call):
        call.play(ToneSource(self.hz))
        return call.answer()
