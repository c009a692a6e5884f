"""
ITU-T G.711 mu-law (RTP payload type 0, PCMU) and A-law (payload type 8,
PCMA), bit-exact with the classic Sun Microsystems C{g711.c} reference.

Linear audio is 16-bit signed little-endian PCM (see
L{rvoip_twisted.interfaces.IAudioSource}); one G.711 byte per sample.

The per-frame functions never loop over samples in Python:

  - decoding is two C{bytes.translate} passes (the low and the high byte of
    every decoded sample) written into the even and odd bytes of the output;
  - encoding indexes a 65,536-entry table by the 16-bit samples, with numpy
    (C{take}) when it is importable, else with C{map} over a memoryview (a
    C-level loop, about five times slower but dependency-free).

The tables are computed once at import from the per-sample functions below.
"""

import sys

try:  # numpy is optional: only the encode fast path uses it.
    import numpy as _np
except ImportError:  # pragma: no cover - exercised where numpy is missing
    _np = None

__all__ = [
    "linear2ulaw",
    "ulaw2linear",
    "linear2alaw",
    "alaw2linear",
    "ulaw_encode",
    "ulaw_decode",
    "alaw_encode",
    "alaw_decode",
    "ULAW_SILENCE",
    "ALAW_SILENCE",
    "HAVE_NUMPY",
]

HAVE_NUMPY = _np is not None

#: The code for a zero sample (what a silent frame is made of).
ULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5

_ULAW_CLIP = 8159  # magnitude limit of the 14-bit mu-law input
_ULAW_BIAS = 33  # 0x84 >> 2


def linear2ulaw(sample):
    """
    Encode one 16-bit signed sample to a mu-law byte (the input is reduced
    to 14 bits by an arithmetic shift, as in the reference).
    """
    value = sample >> 2
    if value < 0:
        magnitude, mask = -value, 0x7F
    else:
        magnitude, mask = value, 0xFF
    if magnitude > _ULAW_CLIP:
        magnitude = _ULAW_CLIP
    magnitude += _ULAW_BIAS  # now 33..8192
    if magnitude > 0x1FFF:
        magnitude = 0x1FFF  # the top of segment 7 encodes the same code
    segment = magnitude.bit_length() - 6
    return ((segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)) ^ mask


def ulaw2linear(code):
    """
    Decode one mu-law byte to a 16-bit signed sample.
    """
    inverted = ~code & 0xFF
    exponent = (inverted >> 4) & 0x07
    magnitude = (((inverted & 0x0F) * 2 + 33) << (exponent + 2)) - 132
    return -magnitude if inverted & 0x80 else magnitude


def linear2alaw(sample):
    """
    Encode one 16-bit signed sample to an A-law byte (the input is reduced
    to 13 bits by an arithmetic shift, as in the reference).
    """
    value = sample >> 3
    if value >= 0:
        magnitude, mask = value, 0xD5
    else:
        magnitude, mask = ~value, 0x55  # -value - 1
    if magnitude > 0xFFF:
        magnitude = 0xFFF
    segment = max(magnitude.bit_length() - 5, 0)
    mantissa = (magnitude >> max(segment, 1)) & 0x0F
    return ((segment << 4) | mantissa) ^ mask


def alaw2linear(code):
    """
    Decode one A-law byte to a 16-bit signed sample.
    """
    value = code ^ 0x55
    mantissa = value & 0x0F
    segment = (value >> 4) & 0x07
    if segment == 0:
        magnitude = (mantissa << 4) + 8
    else:
        magnitude = (mantissa * 2 + 33) << (segment + 2)
    return magnitude if value & 0x80 else -magnitude


def _decode_tables(decode):
    lo = bytes((decode(code) & 0xFF) for code in range(256))
    hi = bytes(((decode(code) >> 8) & 0xFF) for code in range(256))
    return lo, hi


def _encode_table(encode, shift, big_endian_index=False):
    """
    65,536 codes indexed by the unsigned 16-bit value of a little-endian
    sample (or of its byte-swapped reading, for a big-endian host's
    native C{memoryview.cast("H")}).

    The code only depends on C{sample >> shift} (2 for mu-law, 3 for A-law),
    so C{encode} is called once per group of C{2 ** shift} samples and the
    groups are spread with strided slice assignments.
    """
    step = 1 << shift
    codes = bytes(encode(value << shift) for value in range(-(32768 >> shift), 32768 >> shift))
    by_sample = bytearray(65536)  # index 0 is sample -32768
    for offset in range(step):
        by_sample[offset::step] = codes
    table = bytes(by_sample[32768:] + by_sample[:32768])
    if big_endian_index:  # pragma: no cover - big-endian hosts only
        table = bytes(table[((i & 0xFF) << 8) | (i >> 8)] for i in range(65536))
    return table


_ULAW_LO, _ULAW_HI = _decode_tables(ulaw2linear)
_ALAW_LO, _ALAW_HI = _decode_tables(alaw2linear)

_BIG = sys.byteorder == "big"
_ULAW_ENC = _encode_table(linear2ulaw, 2)
_ALAW_ENC = _encode_table(linear2alaw, 3)
_ULAW_ENC_NATIVE = _encode_table(linear2ulaw, 2, True) if _BIG else _ULAW_ENC
_ALAW_ENC_NATIVE = _encode_table(linear2alaw, 3, True) if _BIG else _ALAW_ENC


def _make_decoder(lo, hi):
    def decode(payload):
        """
        Decode G.711 bytes to slin16 (little-endian) bytes, two bytes per
        input byte.
        """
        if type(payload) is not bytes:
            payload = bytes(payload)
        out = bytearray(2 * len(payload))
        out[0::2] = payload.translate(lo)
        out[1::2] = payload.translate(hi)
        return bytes(out)

    return decode


def _encode_pure(native_table):
    getitem = native_table.__getitem__

    def encode(pcm):
        if len(pcm) & 1:
            raise ValueError("slin16 input must have an even length")
        return bytes(map(getitem, memoryview(pcm).cast("B").cast("H")))

    return encode


def _make_encoder(table, native_table):
    if _np is not None:
        take = _np.frombuffer(table, dtype=_np.uint8).take
        frombuffer = _np.frombuffer
        u16le = _np.dtype("<u2")

        def encode(pcm):
            """
            Encode slin16 (little-endian) bytes to G.711, one byte per
            sample.  The length must be even.
            """
            return take(frombuffer(pcm, dtype=u16le)).tobytes()

    else:  # pragma: no cover - exercised where numpy is missing
        encode = _encode_pure(native_table)
        encode.__doc__ = """
            Encode slin16 (little-endian) bytes to G.711, one byte per
            sample.  The length must be even.
            """
    return encode


ulaw_decode = _make_decoder(_ULAW_LO, _ULAW_HI)
alaw_decode = _make_decoder(_ALAW_LO, _ALAW_HI)
ulaw_encode = _make_encoder(_ULAW_ENC, _ULAW_ENC_NATIVE)
alaw_encode = _make_encoder(_ALAW_ENC, _ALAW_ENC_NATIVE)

# The dependency-free encoders, kept importable so the tests check them
# even where numpy is installed.
_ulaw_encode_pure = _encode_pure(_ULAW_ENC_NATIVE)
_alaw_encode_pure = _encode_pure(_ALAW_ENC_NATIVE)
