"""
Audio sources: L{IAudioSource} implementations producing slin16 at 8 kHz.

L{WavSource} lives in L{rvoip_twisted.media.wav} and is re-exported here.
"""

import math
import sys
from array import array
from fractions import Fraction

from zope.interface import implementer

from ..interfaces import IAudioSource
from .wav import WavSource

__all__ = ["SilenceSource", "ToneSource", "SequenceSource", "WavSource", "SAMPLE_RATE"]

SAMPLE_RATE = 8000
_MAX_TABLE = 8000 * 10  # samples in a precomputed tone period (10 s)


def _le_bytes(samples):
    data = array("h", samples)
    if sys.byteorder == "big":  # pragma: no cover
        data.byteswap()
    return data.tobytes()


@implementer(IAudioSource)
class SilenceSource:
    """
    Endless silence (or C{duration} seconds of it, then end).
    """

    def __init__(self, duration=None):
        self._remaining = None if duration is None else int(round(duration * SAMPLE_RATE))
        self._cache = b""

    def read(self, samples):
        if self._remaining is not None:
            if self._remaining <= 0:
                return None
            self._remaining -= samples
        if len(self._cache) != 2 * samples:
            self._cache = bytes(2 * samples)
        return self._cache


@implementer(IAudioSource)
class ToneSource:
    """
    A sine tone of C{hz} Hz and peak C{amplitude} (0..32767), phase
    continuous across reads, for C{duration} seconds (C{None}: forever; the
    last frame is padded with silence).

    One whole period of the waveform (the smallest number of samples after
    which it repeats exactly) is computed once; reads slice it, so a frame
    costs no per-sample work.  Frequencies whose period would exceed ten
    seconds of samples are computed per read instead.
    """

    def __init__(self, hz, amplitude=8000, duration=None):
        if not 0 < hz < SAMPLE_RATE / 2:
            raise ValueError("tone frequency must be between 0 and 4000 Hz")
        if not 0 <= amplitude <= 32767:
            raise ValueError("amplitude must be 0..32767")
        self.hz = hz
        self.amplitude = amplitude
        self._remaining = None if duration is None else int(round(duration * SAMPLE_RATE))
        self._position = 0  # sample index within the period (or overall)
        freq = Fraction(hz).limit_denominator(1000)
        # sin(2 pi f n / 8000) repeats after N samples when f N / 8000 is whole
        period = (SAMPLE_RATE * freq.denominator) // math.gcd(
            freq.numerator, SAMPLE_RATE * freq.denominator
        )
        if period <= _MAX_TABLE:
            self._period = period
            table = self._samples(0, period)
            self._table = table + table  # so any read up to a period is one slice
        else:
            self._period = None
            self._table = None

    def _samples(self, start, count):
        step = 2 * math.pi * self.hz / SAMPLE_RATE
        amplitude = self.amplitude
        return _le_bytes(
            int(round(amplitude * math.sin(step * n))) for n in range(start, start + count)
        )

    def read(self, samples):
        if self._remaining is not None:
            if self._remaining <= 0:
                return None
            if self._remaining < samples:  # the last frame: pad with silence
                tail = self._remaining
                self._remaining = 0
                return self._read(tail) + bytes(2 * (samples - tail))
            self._remaining -= samples
        return self._read(samples)

    def _read(self, samples):
        if self._table is None:
            data = self._samples(self._position, samples)
            self._position += samples
            return data
        start = self._position
        if samples <= self._period:
            data = self._table[2 * start:2 * (start + samples)]
        else:
            whole, part = divmod(start + samples, self._period)
            data = (self._table[2 * start:2 * self._period]
                    + self._table[:2 * self._period] * (whole - 1)
                    + self._table[:2 * part])
        self._position = (start + samples) % self._period
        return data


@implementer(IAudioSource)
class SequenceSource:
    """
    Plays sources one after the other (e.g. a beep, then silence); ends
    when the last one ends.  Sources return whole frames (the built-in ones
    pad their last frame); a source returning fewer bytes has the rest of
    the frame filled from the next one.
    """

    def __init__(self, *sources):
        self._sources = list(sources)

    def read(self, samples):
        out = b""
        while self._sources:
            need = samples - len(out) // 2
            data = self._sources[0].read(need)
            if data is None:
                del self._sources[0]
                continue
            out += data
            if len(out) >= 2 * samples:
                return out[:2 * samples]
        if out:
            return out + bytes(2 * samples - len(out))
        return None
