"""
Audio sinks: L{IAudioSink} implementations taking slin16 at 8 kHz.

L{WavRecorder} lives in L{rvoip_twisted.media.wav} and is re-exported here.
"""

from zope.interface import implementer

from ..interfaces import IAudioSink
from .wav import WavRecorder

__all__ = ["NullSink", "BufferSink", "WavRecorder"]


@implementer(IAudioSink)
class NullSink:
    """
    Discards everything.
    """

    def write(self, pcm):
        pass

    def close(self):
        pass


@implementer(IAudioSink)
class BufferSink:
    """
    Keeps every frame in memory (tests, short captures).

    @ivar frames: the frames written, in order.
    @ivar closed: whether L{close} was called.
    """

    def __init__(self):
        self.frames = []
        self.closed = False

    def write(self, pcm):
        self.frames.append(pcm)

    def close(self):
        self.closed = True

    @property
    def pcm(self):
        """Everything written, concatenated."""
        return b"".join(self.frames)
