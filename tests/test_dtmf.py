"""
Tests for L{rvoip_twisted.rtp.dtmf} (RFC 4733 telephone-events).
"""

from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.rtp.dtmf import (
    DtmfParseError,
    DtmfReceiver,
    digit_to_event,
    dtmf_packets,
    event_to_digit,
    parse_event,
    serialize_event,
)


class PayloadTests(SynchronousTestCase):
    """
    The four-byte payload.
    """

    def test_parse(self):
        """
        RFC 4733 figure 1 layout: event, E|R|volume, duration.
        """
        self.assertEqual(parse_event(bytes.fromhex("05 8a 0320")), (5, True, 10, 800))
        self.assertEqual(parse_event(bytes.fromhex("0b 0a 00a0")), (11, False, 10, 160))

    def test_serialize(self):
        """
        Serializing gives the same layout; durations clamp at 16 bits.
        """
        self.assertEqual(serialize_event(5, True, 10, 800), bytes.fromhex("058a0320"))
        self.assertEqual(serialize_event(1, False, 63, 99999), bytes.fromhex("013fffff"))

    def test_short_payload(self):
        """
        Fewer than four bytes is a parse error.
        """
        for n in range(4):
            self.assertRaises(DtmfParseError, parse_event, b"\x05\x8a\x03\x20"[:n])

    def test_digit_mapping(self):
        """
        0-9 * # A-D map to events 0-15 and back; other events are not
        digits.
        """
        self.assertEqual([digit_to_event(d) for d in "09*#ad"], [0, 9, 10, 11, 12, 15])
        self.assertEqual(event_to_digit(11), "#")
        self.assertEqual(event_to_digit(16), "!")
        self.assertIsNone(event_to_digit(70))
        self.assertRaises(ValueError, digit_to_event, "X")
        self.assertRaises(ValueError, digit_to_event, "12")


class ReceiverTests(SynchronousTestCase):
    """
    De-duplication by RTP timestamp.
    """

    def test_one_report_for_three_end_packets(self):
        """
        Start, updates and the three end packets of one event give exactly
        one report, with the final duration in ms.
        """
        receiver = DtmfReceiver()
        reports = []
        for _, _, payload in dtmf_packets("7", duration_ms=120):
            reports.extend(receiver.receive(8000, payload))
        self.assertEqual(reports, [("7", 120)])

    def test_same_digit_twice(self):
        """
        Two presses of the same digit (different timestamps) are two
        reports.
        """
        receiver = DtmfReceiver()
        reports = []
        for timestamp in (1000, 3000):
            for _, _, payload in dtmf_packets("5", duration_ms=100):
                reports.extend(receiver.receive(timestamp, payload))
        self.assertEqual(reports, [("5", 100), ("5", 100)])

    def test_lost_end_packets(self):
        """
        If all end packets are lost, the event is reported when the next
        event starts, with the last duration seen.
        """
        receiver = DtmfReceiver()
        self.assertEqual(receiver.receive(100, serialize_event(1, False, 10, 400)), [])
        self.assertEqual(receiver.receive(100, serialize_event(1, False, 10, 800)), [])
        self.assertEqual(
            receiver.receive(5000, serialize_event(2, False, 10, 400)), [("1", 100)]
        )
        self.assertEqual(receiver.flush(), [("2", 50)])
        self.assertEqual(receiver.flush(), [])

    def test_late_retransmission_after_report(self):
        """
        An update or end packet for an event already reported (reordered or
        retransmitted) does not report it again.
        """
        receiver = DtmfReceiver()
        end = serialize_event(3, True, 10, 800)
        self.assertEqual(receiver.receive(42, end), [("3", 100)])
        self.assertEqual(receiver.receive(42, serialize_event(3, False, 10, 400)), [])
        self.assertEqual(receiver.receive(42, end), [])

    def test_non_dtmf_event_ignored(self):
        """
        Events that are not digits are swallowed.
        """
        receiver = DtmfReceiver()
        self.assertEqual(receiver.receive(1, serialize_event(70, True, 10, 800)), [])

    def test_wideband_clock(self):
        """
        Durations are converted with the negotiated clock rate.
        """
        receiver = DtmfReceiver(clock_rate=16000)
        self.assertEqual(receiver.receive(1, serialize_event(0, True, 10, 1600)), [("0", 100)])


class SenderTests(SynchronousTestCase):
    """
    The packet sequence for one event.
    """

    def test_sequence(self):
        """
        100 ms: a marked start packet at 0, an update at 50 ms, then three
        end packets from 100 ms, durations in 8 kHz units.
        """
        packets = dtmf_packets("#", duration_ms=100)
        self.assertEqual(
            [(offset, marker, parse_event(payload)) for offset, marker, payload in packets],
            [
                (0, True, (11, False, 10, 400)),
                (50, False, (11, False, 10, 800)),
                (100, False, (11, True, 10, 800)),
                (120, False, (11, True, 10, 800)),
                (140, False, (11, True, 10, 800)),
            ],
        )

    def test_uneven_duration(self):
        """
        A duration that is not a multiple of the update interval caps the
        last update at the total.
        """
        packets = dtmf_packets("1", duration_ms=70, volume=5)
        durations = [parse_event(p)[3] for _, _, p in packets]
        self.assertEqual(durations, [400, 560, 560, 560, 560])
        self.assertEqual(sum(1 for _, marker, _ in packets if marker), 1)

    def test_invalid(self):
        """
        Unknown digits and non-positive durations are refused.
        """
        self.assertRaises(ValueError, dtmf_packets, "Z")
        self.assertRaises(ValueError, dtmf_packets, "1", 0)
