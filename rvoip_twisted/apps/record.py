"""
Answers, beeps, then records the caller to C{DIR/<call-id>.wav} until the
caller hangs up or five minutes have passed.
"""

import os
import re

from twisted.python.usage import UsageError
from zope.interface import implementer

from ..interfaces import ICallHandler
from ..media.sinks import WavRecorder
from ..media.sources import SequenceSource, SilenceSource, ToneSource

MAX_SECONDS = 300


def safe_name(call_id):
    return re.sub(r"[^A-Za-z0-9_.@-]", "_", call_id)[:120] or "call"


@implementer(ICallHandler)
class RecordApp:
    def __init__(self, directory, reactor=None, max_seconds=MAX_SECONDS):
        if not os.path.isdir(directory):
            raise UsageError("no such directory: %s" % (directory,))
        self.directory = directory
        self.max_seconds = max_seconds

    def incomingCall(self, call):
        path = os.path.join(self.directory, safe_name(call.call_id) + ".wav")
        call.play(SequenceSource([(ToneSource(1000.0), 0.25), (SilenceSource(), None)]))
        call.record(WavRecorder(path, max_seconds=self.max_seconds))
        call.call_later(self.max_seconds, call.hangup)
        return call.answer()
