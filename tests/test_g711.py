"""
Tests for L{rvoip_twisted.media.g711}, against an independent plain-Python
transcription of the classic Sun Microsystems C{g711.c} (the reference the
ITU-T G.711 tables are usually checked against).
"""

import struct

from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.media import g711

# --- The reference: a literal transcription of Sun's g711.c ----------------

_SEG_AEND = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)
_SEG_UEND = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_BIAS = 0x84
_CLIP = 8159


def _search(val, table):
    for i, end in enumerate(table):
        if val <= end:
            return i
    return len(table)


def ref_linear2alaw(pcm_val):
    pcm_val = pcm_val >> 3
    if pcm_val >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm_val = -pcm_val - 1
    seg = _search(pcm_val, _SEG_AEND)
    if seg >= 8:
        return (0x7F ^ mask) & 0xFF
    aval = (seg << 4) & 0xFF
    if seg < 2:
        aval |= (pcm_val >> 1) & 0x0F
    else:
        aval |= (pcm_val >> seg) & 0x0F
    return (aval ^ mask) & 0xFF


def ref_alaw2linear(a_val):
    a_val ^= 0x55
    t = (a_val & 0x0F) << 4
    seg = (a_val & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t += 0x108
        t <<= seg - 1
    return t if (a_val & 0x80) else -t


def ref_linear2ulaw(pcm_val):
    pcm_val = pcm_val >> 2
    if pcm_val < 0:
        pcm_val = -pcm_val
        mask = 0x7F
    else:
        mask = 0xFF
    if pcm_val > _CLIP:
        pcm_val = _CLIP
    pcm_val += _BIAS >> 2
    seg = _search(pcm_val, _SEG_UEND)
    if seg >= 8:
        return (0x7F ^ mask) & 0xFF
    uval = ((seg << 4) | ((pcm_val >> (seg + 1)) & 0x0F)) & 0xFF
    return (uval ^ mask) & 0xFF


def ref_ulaw2linear(u_val):
    u_val = ~u_val & 0xFF
    t = ((u_val & 0x0F) << 3) + _BIAS
    t <<= (u_val & 0x70) >> 4
    return (_BIAS - t) if (u_val & 0x80) else (t - _BIAS)


def _pack(samples):
    return struct.pack("<%dh" % len(samples), *samples)


def _unpack(data):
    return list(struct.unpack("<%dh" % (len(data) // 2), data))


ALL_SAMPLES = list(range(-32768, 32768))


def _boundaries():
    """Samples on and next to every segment edge of both laws."""
    edges = set()
    for end in _SEG_UEND:
        for scaled in (end - 33, end - 32, end - 34):
            for sign in (1, -1):
                base = sign * scaled * 4
                edges.update(range(base - 5, base + 6))
    for end in _SEG_AEND:
        for sign in (1, -1):
            base = sign * end * 8
            edges.update(range(base - 9, base + 10))
    edges.update((-32768, -32767, -1, 0, 1, 32766, 32767))
    return sorted(e for e in edges if -32768 <= e <= 32767)


class ReferenceSelfCheckTests(SynchronousTestCase):
    """
    Spot checks of the transcribed reference itself, against values from
    the G.711 tables.
    """

    def test_known_codes(self):
        """
        Zero encodes to 0xFF (mu-law) / 0xD5 (A-law); the extreme codes
        decode to the documented extremes.
        """
        self.assertEqual(ref_linear2ulaw(0), 0xFF)
        self.assertEqual(ref_linear2alaw(0), 0xD5)
        self.assertEqual(ref_ulaw2linear(0x00), -32124)
        self.assertEqual(ref_ulaw2linear(0x80), 32124)
        self.assertEqual(ref_ulaw2linear(0xFF), 0)
        self.assertEqual(ref_alaw2linear(0xD5), 8)
        self.assertEqual(ref_alaw2linear(0xAA), 32256)
        self.assertEqual(ref_alaw2linear(0x2A), -32256)


class PerSampleTests(SynchronousTestCase):
    """
    The per-sample functions agree with the reference everywhere.
    """

    def test_ulaw_decode_all_codes(self):
        """
        All 256 mu-law codes decode exactly as the reference.
        """
        for code in range(256):
            self.assertEqual(g711.ulaw2linear(code), ref_ulaw2linear(code), code)

    def test_alaw_decode_all_codes(self):
        """
        All 256 A-law codes decode exactly as the reference.
        """
        for code in range(256):
            self.assertEqual(g711.alaw2linear(code), ref_alaw2linear(code), code)

    def test_segment_boundaries(self):
        """
        Samples at and around every segment boundary encode exactly as the
        reference, for both laws.
        """
        for sample in _boundaries():
            self.assertEqual(g711.linear2ulaw(sample), ref_linear2ulaw(sample), sample)
            self.assertEqual(g711.linear2alaw(sample), ref_linear2alaw(sample), sample)

    def test_ulaw_encode_all_samples(self):
        """
        Every one of the 65,536 16-bit inputs encodes to the reference
        mu-law code.
        """
        self.assertEqual(
            [g711.linear2ulaw(s) for s in ALL_SAMPLES],
            [ref_linear2ulaw(s) for s in ALL_SAMPLES],
        )

    def test_alaw_encode_all_samples(self):
        """
        Every one of the 65,536 16-bit inputs encodes to the reference
        A-law code.
        """
        self.assertEqual(
            [g711.linear2alaw(s) for s in ALL_SAMPLES],
            [ref_linear2alaw(s) for s in ALL_SAMPLES],
        )


class FrameTests(SynchronousTestCase):
    """
    The table-driven frame encoders and decoders.
    """

    def test_ulaw_decode_frame_all_codes(self):
        """
        Decoding a payload of all 256 codes gives the reference samples as
        little-endian slin16.
        """
        payload = bytes(range(256))
        self.assertEqual(
            g711.ulaw_decode(payload), _pack([ref_ulaw2linear(c) for c in range(256)])
        )

    def test_alaw_decode_frame_all_codes(self):
        """
        Decoding a payload of all 256 codes gives the reference samples as
        little-endian slin16.
        """
        payload = bytes(range(256))
        self.assertEqual(
            g711.alaw_decode(payload), _pack([ref_alaw2linear(c) for c in range(256)])
        )

    def test_decode_accepts_buffers(self):
        """
        A memoryview or bytearray payload decodes like bytes.
        """
        payload = bytes(range(0, 256, 7))
        self.assertEqual(
            g711.ulaw_decode(memoryview(payload)), g711.ulaw_decode(payload)
        )
        self.assertEqual(g711.alaw_decode(bytearray(payload)), g711.alaw_decode(payload))

    def test_encode_sweep_all_samples(self):
        """
        Encoding all 65,536 samples in one buffer (the numpy path when it is
        installed, and the dependency-free path always) gives the reference
        codes, for both laws.
        """
        pcm = _pack(ALL_SAMPLES)
        expected_u = bytes(ref_linear2ulaw(s) for s in ALL_SAMPLES)
        expected_a = bytes(ref_linear2alaw(s) for s in ALL_SAMPLES)
        self.assertEqual(g711.ulaw_encode(pcm), expected_u)
        self.assertEqual(g711.alaw_encode(pcm), expected_a)
        self.assertEqual(g711._ulaw_encode_pure(pcm), expected_u)
        self.assertEqual(g711._alaw_encode_pure(pcm), expected_a)

    def test_round_trip_is_idempotent(self):
        """
        Decoding then re-encoding every code gives the code back, except the
        mu-law negative zero (0x7F) which re-encodes as positive zero.
        """
        codes = bytes(range(256))
        self.assertEqual(g711.alaw_encode(g711.alaw_decode(codes)), codes)
        again = g711.ulaw_encode(g711.ulaw_decode(codes))
        expected = bytearray(codes)
        expected[0x7F] = 0xFF
        self.assertEqual(again, bytes(expected))

    def test_silence_codes(self):
        """
        The silence constants decode to (near) zero and encode from zero.
        """
        self.assertEqual(g711.ulaw_encode(b"\x00\x00"), bytes([g711.ULAW_SILENCE]))
        self.assertEqual(g711.alaw_encode(b"\x00\x00"), bytes([g711.ALAW_SILENCE]))
        self.assertEqual(g711.ulaw_decode(bytes([g711.ULAW_SILENCE])), b"\x00\x00")

    def test_odd_length_rejected(self):
        """
        An odd number of PCM bytes is not a whole number of samples.
        """
        self.assertRaises(ValueError, g711.ulaw_encode, b"\x00\x00\x00")
        self.assertRaises(ValueError, g711._alaw_encode_pure, b"\x00")
