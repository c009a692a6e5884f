"""
WAV files: L{WavSource} plays 8 or 16 kHz mono 16-bit PCM files;
L{WavRecorder} writes 8 kHz mono 16-bit files.

The RIFF parsing is done here (not with the C{wave} module) so that
C{WAVE_FORMAT_EXTENSIBLE} PCM files are accepted and everything else is
rejected with a message saying what the file is and what is needed.
"""

import struct
import sys
from array import array

from zope.interface import implementer

from ..interfaces import IAudioSink, IAudioSource

try:
    import numpy as _np
except ImportError:  # pragma: no cover
    _np = None

__all__ = ["WavFormatError", "WavSource", "WavRecorder", "read_wav", "decimate_16k_to_8k"]

_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_FORMAT_NAMES = {3: "IEEE float", 6: "A-law", 7: "mu-law", 0x11: "IMA ADPCM", 0x55: "MP3"}

# A half-band low-pass (sum 32): zero gain at 8 kHz, -6 dB at 4 kHz.
_HALF_BAND = (-1, 0, 9, 16, 9, 0, -1)


class WavFormatError(ValueError):
    """
    The file is not a WAV file this module can play.
    """


def read_wav(path):
    """
    Read a PCM WAV file.

    @return: C{(sample_rate, channels, bits, pcm_bytes)}, the data as
        stored (little-endian).
    @raise WavFormatError: not RIFF/WAVE, not PCM, or truncated.
    """
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavFormatError("%s is not a RIFF/WAVE file" % (path,))
    offset = 12
    fmt = None
    pcm = None
    while offset + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, offset)
        body = data[offset + 8:offset + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise WavFormatError("%s: truncated fmt chunk" % (path,))
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if tag == _WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack_from("<H", body, 24)[0]  # the sub-format GUID
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            pcm = body
            break
        offset += 8 + size + (size & 1)
    if fmt is None or pcm is None:
        raise WavFormatError("%s: no fmt or data chunk" % (path,))
    tag, channels, rate, bits = fmt
    if tag != _WAVE_FORMAT_PCM:
        raise WavFormatError(
            "%s is %s audio; only 16-bit PCM WAV is supported"
            % (path, _FORMAT_NAMES.get(tag, "format 0x%04x" % (tag,)))
        )
    return rate, channels, bits, pcm[: len(pcm) - len(pcm) % max(1, channels * bits // 8)]


def _samples(pcm):
    values = array("h")
    values.frombytes(pcm)
    if sys.byteorder == "big":  # pragma: no cover
        values.byteswap()
    return values


def _to_bytes(values):
    out = array("h", values)
    if sys.byteorder == "big":  # pragma: no cover
        out.byteswap()
    return out.tobytes()


def decimate_16k_to_8k(pcm, use_numpy=None):
    """
    Halve the sample rate of slin16 bytes: a 7-tap half-band low-pass,
    then every other sample, rounding and clipping to 16 bits.  The numpy
    and pure-Python paths give identical output.
    """
    if use_numpy is None:
        use_numpy = _np is not None
    count = len(pcm) // 2
    if use_numpy and _np is not None:
        x = _np.frombuffer(pcm[: 2 * count], dtype="<i2").astype(_np.int64)
        filtered = _np.convolve(x, _np.array(_HALF_BAND[::-1], dtype=_np.int64), mode="full")
        # output k is centred on input 2k: taps x[2k-3 .. 2k+3]
        y = filtered[3:3 + count][::2]
        y = _np.clip((y + 16) >> 5, -32768, 32767).astype("<i2")
        return y.tobytes()
    x = _samples(pcm[: 2 * count])
    out = []
    taps = _HALF_BAND
    for k in range(0, count, 2):
        acc = 0
        for i, tap in enumerate(taps):
            j = k + i - 3
            if tap and 0 <= j < count:
                acc += tap * x[j]
        value = (acc + 16) >> 5
        out.append(32767 if value > 32767 else -32768 if value < -32768 else value)
    return _to_bytes(out)


@implementer(IAudioSource)
class WavSource:
    """
    Plays a mono 16-bit PCM WAV file at 8 kHz or 16 kHz (16 kHz is
    decimated to 8 kHz when loaded).  The whole file is loaded when the
    source is created.

    @param loop: start again at the end; otherwise the last frame is padded
        with silence and the next read returns C{None}.
    @raise WavFormatError: another format, with a message naming it.
    """

    def __init__(self, path, loop=True):
        rate, channels, bits, pcm = read_wav(path)
        if channels != 1 or bits != 16 or rate not in (8000, 16000):
            raise WavFormatError(
                "%s is %d Hz, %d channel(s), %d-bit; need 8000 or 16000 Hz mono 16-bit PCM"
                % (path, rate, channels, bits)
            )
        if rate == 16000:
            pcm = decimate_16k_to_8k(pcm)
        self.pcm = pcm
        self.loop = loop
        self._position = 0

    @property
    def duration(self):
        """Seconds of audio (at 8 kHz)."""
        return len(self.pcm) / 16000.0

    def read(self, samples):
        size = 2 * samples
        pcm = self.pcm
        position = self._position
        if position >= len(pcm) and (not self.loop or not pcm):
            return None
        chunk = pcm[position:position + size]
        position += len(chunk)
        while len(chunk) < size:
            if not self.loop:
                chunk += bytes(size - len(chunk))
                break
            piece = pcm[: size - len(chunk)]
            chunk += piece
            position = len(piece)
        self._position = position
        return chunk


_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")


@implementer(IAudioSink)
class WavRecorder:
    """
    Writes what it receives to an 8 kHz mono 16-bit WAV file, at most
    C{max_seconds} (C{None}: no limit); the header's sizes are fixed up on
    L{close}.

    @ivar full: the limit was reached (later frames are dropped).
    """

    def __init__(self, path, max_seconds=None):
        self.path = path
        self._limit = None if max_seconds is None else int(max_seconds * 8000) * 2
        self._written = 0
        self._file = open(path, "wb")
        self._file.write(self._header(0))
        self.closed = False

    @staticmethod
    def _header(data_size):
        return _HEADER.pack(
            b"RIFF", 36 + data_size, b"WAVE", b"fmt ", 16, _WAVE_FORMAT_PCM, 1,
            8000, 16000, 2, 16, b"data", data_size,
        )

    @property
    def full(self):
        return self._limit is not None and self._written >= self._limit

    @property
    def seconds(self):
        """Seconds written so far."""
        return self._written / 16000.0

    def write(self, pcm):
        if self.closed:
            return
        if self._limit is not None:
            room = self._limit - self._written
            if room <= 0:
                return
            if len(pcm) > room:
                pcm = pcm[:room]
        self._file.write(pcm)
        self._written += len(pcm)

    def close(self):
        if self.closed:
            return
        self.closed = True
        try:
            self._file.seek(0)
            self._file.write(self._header(self._written))
        finally:
            self._file.close()
