"""Answers and loops a WAV file (8 or 16 kHz mono, 16-bit)."""

import os

from twisted.python.usage import UsageError
from zope.interface import implementer

from ..interfaces import ICallHandler
from ..media.sources import WavSource


@implementer(ICallHandler)
class PlayApp:
    def __init__(self, path):
        if not os.path.isfile(path):
            raise UsageError("no such WAV file: %s" % (path,))
        WavSource(path)  # fail now, with a clear message, on a bad file
        self.path = path

    def incomingCall(self, call):
        call.play(WavSource(self.path, loop=True))
        return call.answer()
