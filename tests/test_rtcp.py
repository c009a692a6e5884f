"""
Tests for L{rvoip_twisted.rtp.rtcp}.
"""

from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.rtp.rtcp import (
    NTP_EPOCH_OFFSET,
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpParseError,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
    is_rtcp,
    ntp_from_unix,
    ntp_middle32,
    parse_compound,
    rtt_seconds,
    serialize_compound,
    unix_from_ntp,
)

# A compound SR + SDES(CNAME) + BYE written out field by field.
SR_SDES_BYE = bytes.fromhex(
    # SR, RC=1, length 12 words
    "81c8000c"
    "11223344"  # sender SSRC
    "e5a1b2c3 80000000"  # NTP timestamp (x.5 s)
    "00000a00"  # RTP timestamp 2560
    "00000064"  # 100 packets
    "00003e80"  # 16000 octets
    # report block about 0x55667788
    "55667788"
    "40fffffe"  # fraction 0x40 (25 %), cumulative lost -2
    "0001000a"  # highest seq: cycles 1, seq 10
    "00000020"  # jitter 32
    "b2c38000"  # LSR
    "00018000"  # DLSR 1.5 s
    # SDES, SC=1, length 3 words: ssrc, CNAME "a@b.c" (2+5 bytes) + end
    "81ca0003"
    "11223344"
    "0105 6140622e63 00"
    # BYE, SC=1, length 3 words, reason "done" (1+4 bytes + 3 pad)
    "81cb0003"
    "11223344"
    "04646f6e65000000".replace(" ", "")
)


class CompoundTests(SynchronousTestCase):
    """
    Parsing and serializing compound packets.
    """

    def test_parse_fixture(self):
        """
        Each packet of the fixture decodes to the written-out values.
        """
        sr, sdes, bye = parse_compound(SR_SDES_BYE)
        self.assertEqual(
            sr,
            SenderReport(
                ssrc=0x11223344,
                ntp_timestamp=0xE5A1B2C380000000,
                rtp_timestamp=2560,
                packet_count=100,
                octet_count=16000,
                reports=[
                    ReportBlock(
                        ssrc=0x55667788,
                        fraction_lost=0x40,
                        cumulative_lost=-2,
                        highest_seq=0x1000A,
                        jitter=32,
                        lsr=0xB2C38000,
                        dlsr=0x18000,
                    )
                ],
            ),
        )
        self.assertEqual(sdes.get_cname(0x11223344), "a@b.c")
        self.assertIsNone(sdes.get_cname(1))
        self.assertEqual(bye, Bye([0x11223344], b"done"))

    def test_round_trip(self):
        """
        Serializing the parsed list gives back the original datagram.
        """
        self.assertEqual(serialize_compound(parse_compound(SR_SDES_BYE)), SR_SDES_BYE)

    def test_every_truncated_prefix(self):
        """
        Every strict prefix of the compound packet, bar the ones that end
        exactly on a packet boundary, raises L{RtcpParseError}; the
        boundary prefixes parse to the leading packets.
        """
        boundaries = {52: 1, 68: 2}
        for n in range(len(SR_SDES_BYE)):
            prefix = SR_SDES_BYE[:n]
            if n in boundaries:
                self.assertEqual(len(parse_compound(prefix)), boundaries[n])
            else:
                self.assertRaises(RtcpParseError, parse_compound, prefix)

    def test_receiver_report_empty(self):
        """
        An RR without blocks is 8 bytes and round-trips.
        """
        data = serialize_compound([ReceiverReport(0xCAFEBABE)])
        self.assertEqual(data, bytes.fromhex("80c90001cafebabe"))
        self.assertEqual(parse_compound(data), [ReceiverReport(0xCAFEBABE)])

    def test_unknown_type_kept(self):
        """
        An APP or feedback packet is kept verbatim as L{UnknownRtcp}.
        """
        app = bytes.fromhex("85cc0002 00000001 6e616d65")
        packets = parse_compound(serialize_compound([ReceiverReport(1)]) + app)
        self.assertEqual(packets[1], UnknownRtcp(204, 5, bytes.fromhex("000000016e616d65")))
        self.assertEqual(serialize_compound(packets)[8:], app)

    def test_padding(self):
        """
        A padded packet parses without its padding.
        """
        data = bytes.fromhex("a0c90002 cafebabe 00000004")
        self.assertEqual(parse_compound(data), [ReceiverReport(0xCAFEBABE)])
        self.assertRaises(RtcpParseError, parse_compound, bytes.fromhex("a0c90002cafebabe00000000"))

    def test_rejects_rtp_and_garbage(self):
        """
        An RTP packet, a wrong version, or a report count larger than the
        body are parse errors.
        """
        self.assertRaises(RtcpParseError, parse_compound, bytes.fromhex("80000001") + bytes(16))
        self.assertRaises(RtcpParseError, parse_compound, bytes.fromhex("40c90001cafebabe"))
        self.assertRaises(RtcpParseError, parse_compound, bytes.fromhex("81c90001cafebabe"))
        self.assertRaises(RtcpParseError, parse_compound, b"")

    def test_is_rtcp(self):
        """
        The RFC 5761 demultiplexing test looks at the second byte.
        """
        self.assertTrue(is_rtcp(SR_SDES_BYE))
        self.assertFalse(is_rtcp(bytes.fromhex("8000") + bytes(10)))
        self.assertFalse(is_rtcp(bytes.fromhex("8080") + bytes(10)))
        self.assertFalse(is_rtcp(b"\x80"))

    def test_sdes_helper(self):
        """
        L{SourceDescription.cname} builds a chunk that round-trips.
        """
        sdes = SourceDescription.cname(7, "x@example.com")
        (parsed,) = parse_compound(serialize_compound([sdes]))
        self.assertEqual(parsed, sdes)
        self.assertEqual(parsed.get_cname(7), "x@example.com")

    def test_report_block_validation(self):
        """
        Fields outside their wire range are refused.
        """
        self.assertRaises(ValueError, ReportBlock, 1, fraction_lost=256)
        self.assertRaises(ValueError, ReportBlock, 1, cumulative_lost=0x800000)
        self.assertRaises(ValueError, ReportBlock, -1)

    @given(
        st.lists(
            st.tuples(
                st.integers(0, 0xFFFFFFFF),
                st.integers(0, 255),
                st.integers(-0x800000, 0x7FFFFF),
                st.integers(0, 0xFFFFFFFF),
            ),
            max_size=5,
        ),
        st.binary(max_size=20),
    )
    def test_report_round_trip_property(self, blocks, reason):
        """
        SR, RR and BYE values survive serialize/parse.
        """
        reports = [ReportBlock(s, f, c, h, h, s, f) for s, f, c, h in blocks]
        packets = [
            SenderReport(1, 2**63, 3, 4, 5, reports),
            ReceiverReport(9, reports),
            SourceDescription.cname(9, "c"),
            Bye([9, 10], reason),
        ]
        self.assertEqual(parse_compound(serialize_compound(packets)), packets)


class TimeTests(SynchronousTestCase):
    """
    NTP conversions and round-trip time.
    """

    def test_ntp_from_unix(self):
        """
        The Unix epoch is NTP second 2208988800; halves are 0x80000000.
        """
        self.assertEqual(ntp_from_unix(0), NTP_EPOCH_OFFSET << 32)
        self.assertEqual(ntp_from_unix(1.5), ((NTP_EPOCH_OFFSET + 1) << 32) | 0x80000000)
        self.assertAlmostEqual(unix_from_ntp(ntp_from_unix(1700000000.25)), 1700000000.25, 6)

    def test_middle32(self):
        """
        The middle 32 bits are the low 16 of the seconds and the high 16 of
        the fraction.
        """
        self.assertEqual(ntp_middle32(0xE5A1B2C380000000), 0xB2C38000)

    def test_rtt(self):
        """
        RFC 3550's worked example: A = 0xb710:8000 (46864.5 s), LSR =
        0xb705:2000 (46853.125 s), DLSR = 0x0005:4000 (5.25 s) gives an RTT
        of 6.125 s.
        """
        arrival = 0xB7108000 << 16
        self.assertEqual(rtt_seconds(arrival, 0xB7052000, 0x00054000), 6.125)

    def test_rtt_without_lsr(self):
        """
        A block whose LSR is zero yields no RTT.
        """
        self.assertIsNone(rtt_seconds(ntp_from_unix(100), 0, 0))

    def test_rtt_never_negative(self):
        """
        A block claiming a delay longer than possible gives 0, not a huge
        wrapped value.
        """
        arrival = 0x00010000 << 16
        self.assertEqual(rtt_seconds(arrival, 0x00010000, 0x00020000), 0.0)
