"""
Tests for L{rvoip_twisted.rtp.packet}.
"""

from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.rtp.packet import (
    RtpPacket,
    RtpParseError,
    pack,
    seq_diff,
    seq_gt,
    seq_lt,
    ts_diff,
    ts_gt,
    ts_lt,
    unpack,
)

# A PCMU packet as a softphone sends it: marker set, PT 0, seq 0x1234,
# ts 0xdeadbeef, SSRC 0x01020304, 160 payload bytes of 0xff.
PCMU_PACKET = bytes.fromhex("80 80 1234 deadbeef 01020304") + b"\xff" * 160

# Every optional part: padding (4 bytes), a header extension (one word),
# two CSRCs, PT 8.
FULL_PACKET = (
    bytes.fromhex("b2 08 0001 00000010 0a0b0c0d")
    + bytes.fromhex("11111111 22222222")
    + bytes.fromhex("bede 0001 10ab0000")
    + b"\xd5" * 8
    + b"\x00\x00\x00\x04"
)


class ParseTests(SynchronousTestCase):
    """
    Parsing captured packets.
    """

    def test_simple_packet(self):
        """
        The fixed header fields and the payload are decoded.
        """
        packet = RtpPacket.parse(PCMU_PACKET)
        self.assertEqual(packet.payload_type, 0)
        self.assertTrue(packet.marker)
        self.assertEqual(packet.sequence_number, 0x1234)
        self.assertEqual(packet.timestamp, 0xDEADBEEF)
        self.assertEqual(packet.ssrc, 0x01020304)
        self.assertEqual(packet.payload, b"\xff" * 160)
        self.assertEqual(packet.csrcs, ())
        self.assertIsNone(packet.extension)
        self.assertEqual(packet.padding, 0)

    def test_full_packet(self):
        """
        CSRCs, the header extension and padding are recognised and the
        payload excludes them.
        """
        packet = RtpPacket.parse(FULL_PACKET)
        self.assertEqual(packet.payload_type, 8)
        self.assertFalse(packet.marker)
        self.assertEqual(packet.csrcs, (0x11111111, 0x22222222))
        self.assertEqual(packet.extension, (0xBEDE, bytes.fromhex("10ab0000")))
        self.assertEqual(packet.padding, 4)
        self.assertEqual(packet.payload, b"\xd5" * 8)

    def test_round_trip(self):
        """
        Serializing a parsed packet gives the original bytes.
        """
        for data in (PCMU_PACKET, FULL_PACKET):
            self.assertEqual(RtpPacket.parse(data).serialize(), data)

    def test_unpack_fast_path(self):
        """
        L{unpack} returns the tuple the media session uses.
        """
        self.assertEqual(
            unpack(PCMU_PACKET), (0, 1, 0x1234, 0xDEADBEEF, 0x01020304, b"\xff" * 160)
        )
        self.assertEqual(
            unpack(FULL_PACKET), (8, 0, 1, 16, 0x0A0B0C0D, b"\xd5" * 8)
        )

    def test_pack(self):
        """
        L{pack} builds the same bytes as the value object.
        """
        self.assertEqual(
            pack(0, 0x1234, 0xDEADBEEF, 0x01020304, b"\xff" * 160, marker=True),
            PCMU_PACKET,
        )
        self.assertEqual(
            pack(8, 5, 6, 7, b"x"), RtpPacket(8, 5, 6, 7, b"x").serialize()
        )

    def test_every_truncated_prefix(self):
        """
        Every strict prefix of a packet with CSRCs, extension and padding
        raises L{RtpParseError} (never another exception type), from both
        parsers.
        """
        for n in range(len(FULL_PACKET)):
            prefix = FULL_PACKET[:n]
            self.assertRaises(RtpParseError, RtpPacket.parse, prefix)
            self.assertRaises(RtpParseError, unpack, prefix)
        for n in range(12):
            self.assertRaises(RtpParseError, unpack, PCMU_PACKET[:n])

    def test_bad_version(self):
        """
        A version other than 2 is rejected.
        """
        data = b"\x40" + PCMU_PACKET[1:]
        self.assertRaises(RtpParseError, RtpPacket.parse, data)
        self.assertRaises(RtpParseError, unpack, data)

    def test_bad_padding(self):
        """
        A zero padding count, or one larger than the packet body, is
        rejected.
        """
        header = bytes.fromhex("a0 00 0001 00000001 00000001")
        self.assertRaises(RtpParseError, RtpPacket.parse, header + b"ab\x00")
        self.assertRaises(RtpParseError, RtpPacket.parse, header + b"ab\x09")
        self.assertEqual(RtpPacket.parse(header + b"ab\x01").payload, b"ab")

    def test_accepts_memoryview(self):
        """
        A memoryview parses like bytes.
        """
        self.assertEqual(
            RtpPacket.parse(memoryview(FULL_PACKET)), RtpPacket.parse(FULL_PACKET)
        )

    def test_constructor_validation(self):
        """
        Out-of-range fields are refused at construction.
        """
        self.assertRaises(ValueError, RtpPacket, 128, 0, 0, 0)
        self.assertRaises(ValueError, RtpPacket, 0, 0, 0, 0, csrcs=range(16))
        self.assertRaises(ValueError, RtpPacket, 0, 0, 0, 0, extension=(1, b"abc"))

    @given(
        pt=st.integers(0, 127),
        seq=st.integers(0, 0xFFFF),
        ts=st.integers(0, 0xFFFFFFFF),
        ssrc=st.integers(0, 0xFFFFFFFF),
        payload=st.binary(max_size=64),
        marker=st.booleans(),
        csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
        ext=st.none() | st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=12)),
        padding=st.integers(0, 255),
    )
    def test_round_trip_property(self, pt, seq, ts, ssrc, payload, marker, csrcs, ext, padding):
        """
        Any packet survives serialize/parse unchanged.
        """
        if ext is not None:
            ext = (ext[0], ext[1] + bytes(-len(ext[1]) % 4))
        packet = RtpPacket(pt, seq, ts, ssrc, payload, marker, csrcs, ext, padding)
        data = packet.serialize()
        self.assertEqual(RtpPacket.parse(data), packet)
        self.assertEqual(unpack(data), (pt, int(marker), seq, ts, ssrc, payload))

    @given(st.binary(max_size=40))
    def test_garbage_only_raises_parse_error(self, data):
        """
        Arbitrary bytes either parse or raise L{RtpParseError}.
        """
        try:
            RtpPacket.parse(data)
        except RtpParseError:
            pass
        try:
            unpack(data)
        except RtpParseError:
            pass


class WraparoundTests(SynchronousTestCase):
    """
    The 16-bit sequence and 32-bit timestamp comparison helpers.
    """

    def test_seq_diff(self):
        """
        Distances are signed and wrap at 2**16.
        """
        self.assertEqual(seq_diff(5, 3), 2)
        self.assertEqual(seq_diff(3, 5), -2)
        self.assertEqual(seq_diff(0, 65535), 1)
        self.assertEqual(seq_diff(65535, 0), -1)
        self.assertEqual(seq_diff(10, 65530), 16)
        self.assertEqual(seq_diff(0x8000, 0), -0x8000)

    def test_seq_order(self):
        """
        Comparisons follow the wrapped order.
        """
        self.assertTrue(seq_lt(65535, 0))
        self.assertTrue(seq_gt(0, 65535))
        self.assertFalse(seq_lt(7, 7))
        self.assertFalse(seq_gt(7, 7))
        self.assertTrue(seq_lt(100, 200))

    def test_ts_diff(self):
        """
        Timestamp distances are signed and wrap at 2**32.
        """
        self.assertEqual(ts_diff(160, 0), 160)
        self.assertEqual(ts_diff(0, 0xFFFFFF60), 160)
        self.assertEqual(ts_diff(0xFFFFFF60, 0), -160)
        self.assertTrue(ts_gt(80, 0xFFFFFFF0))
        self.assertTrue(ts_lt(0xFFFFFFF0, 80))
        self.assertFalse(ts_lt(5, 5))

    @given(st.integers(0, 0xFFFF), st.integers(-0x8000, 0x7FFF))
    def test_seq_diff_inverts_addition(self, base, delta):
        """
        seq_diff((a + d) mod 2**16, a) == d for every representable d.
        """
        self.assertEqual(seq_diff((base + delta) & 0xFFFF, base), delta)

    @given(st.integers(0, 0xFFFFFFFF), st.integers(-0x80000000, 0x7FFFFFFF))
    def test_ts_diff_inverts_addition(self, base, delta):
        """
        ts_diff((a + d) mod 2**32, a) == d for every representable d.
        """
        self.assertEqual(ts_diff((base + delta) & 0xFFFFFFFF, base), delta)
