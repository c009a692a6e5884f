"""
Tests for L{rvoip_twisted.rtp.stats}.
"""

from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.rtp.rtcp import ntp_from_unix
from rvoip_twisted.rtp.stats import ReceiveStats

SSRC = 0x1234


def feed(stats, seqs, ssrc=SSRC, start=0.0):
    """Feed packets 20 ms apart with matching timestamps; return the flags."""
    return [
        stats.update(ssrc, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, start + i * 0.02)
        for i, seq in enumerate(seqs)
    ]


class SequenceTests(SynchronousTestCase):
    """
    RFC 3550 A.1 sequence validation and A.3 loss accounting.
    """

    def test_probation(self):
        """
        A new source needs two sequential packets: the first is not valid,
        the second is and becomes the base.
        """
        stats = ReceiveStats()
        self.assertEqual(feed(stats, [100, 101, 102]), [False, True, True])
        self.assertEqual(stats.base_seq, 101)
        self.assertEqual(stats.received, 2)
        self.assertEqual(stats.expected, 2)
        self.assertEqual(stats.lost, 0)

    def test_probation_restarts_on_gap(self):
        """
        Out-of-order packets during probation restart it.
        """
        stats = ReceiveStats()
        self.assertEqual(feed(stats, [10, 12, 13]), [False, False, True])
        self.assertEqual(stats.base_seq, 13)

    def test_loss(self):
        """
        Gaps count as lost; the cumulative figure is expected minus
        received.
        """
        stats = ReceiveStats()
        feed(stats, [1, 2, 3, 5, 6, 9, 10])
        # valid from 2: expected 2..10 = 9, received 2,3,5,6,9,10 = 6
        self.assertEqual(stats.expected, 9)
        self.assertEqual(stats.received, 6)
        self.assertEqual(stats.lost, 3)

    def test_wraparound_counts_a_cycle(self):
        """
        Crossing 65535 -> 0 adds a cycle; the extended sequence keeps
        increasing and nothing is counted lost.
        """
        stats = ReceiveStats()
        feed(stats, [65533, 65534, 65535, 0, 1, 2])
        self.assertEqual(stats.cycles, 65536)
        self.assertEqual(stats.extended_max_seq, 65536 + 2)
        self.assertEqual(stats.expected, 5)
        self.assertEqual(stats.lost, 0)

    def test_reordered_and_duplicate(self):
        """
        A late packet is accepted without moving the maximum; a duplicate
        counts as received (so lost may go down, per RFC 3550).
        """
        stats = ReceiveStats()
        feed(stats, [1, 2, 4, 3, 4])
        self.assertEqual(stats.max_seq, 4)
        self.assertEqual(stats.received, 4)
        self.assertEqual(stats.expected, 3)
        self.assertEqual(stats.lost, -1)

    def test_big_jump_needs_confirmation(self):
        """
        A jump larger than MAX_DROPOUT is ignored until the next sequential
        packet confirms it; the stream then restarts from there.
        """
        stats = ReceiveStats()
        flags = feed(stats, [1, 2, 3, 20000, 20001, 20002])
        self.assertEqual(flags, [False, True, True, False, True, True])
        self.assertEqual(stats.base_seq, 20001)
        self.assertEqual(stats.lost, 0)

    def test_fraction_lost_per_interval(self):
        """
        The fraction covers only the packets since the previous interval,
        as 1/256 units.
        """
        stats = ReceiveStats()
        feed(stats, [1, 2, 3, 4, 5])
        self.assertEqual(stats.interval(), (0, 0, 4))
        # next interval: 6..13 expected (8), received 6 of them
        feed(stats, [6, 7, 9, 10, 12, 13], start=1.0)
        self.assertEqual(stats.interval(), (64, 2, 8))
        self.assertEqual(stats.interval(), (0, 0, 0))

    def test_ssrc_change_resets(self):
        """
        A new SSRC starts a new source: counters restart with probation and
        the change is counted.
        """
        stats = ReceiveStats()
        feed(stats, [1, 2, 3, 4])
        feed(stats, [500, 501, 502], ssrc=0x9999)
        self.assertEqual(stats.ssrc, 0x9999)
        self.assertEqual(stats.ssrc_changes, 1)
        self.assertEqual(stats.base_seq, 501)
        self.assertEqual(stats.received, 2)
        self.assertEqual(stats.total_received, 7)


class JitterTests(SynchronousTestCase):
    """
    RFC 3550 A.8 interarrival jitter.
    """

    def test_worked_example(self):
        """
        Five packets sent every 160 timestamp units (20 ms at 8 kHz); the
        third arrives 5 ms late (40 units).  By hand, with J += (|D| - J)/16:
          transits 0, 0, 40, 0, 0 -> D = 0, 40, 40, 0
          J = 0; 40/16 = 2.5; 2.5 + 37.5/16 = 4.84375;
          4.84375 - 4.84375/16 = 4.541015625.
        """
        stats = ReceiveStats(clock_rate=8000)
        arrivals = [0.000, 0.020, 0.045, 0.060, 0.080]
        expected = [0.0, 0.0, 2.5, 4.84375, 4.541015625]
        for i, (arrival, jitter) in enumerate(zip(arrivals, expected)):
            stats.update(SSRC, i, i * 160, arrival)
            self.assertAlmostEqual(stats.jitter, jitter, places=6)
        self.assertAlmostEqual(stats.jitter_seconds, 4.541015625 / 8000, places=9)

    def test_constant_delay_has_no_jitter(self):
        """
        A constant network delay, however large, gives zero jitter.
        """
        stats = ReceiveStats()
        for i in range(50):
            stats.update(SSRC, i, 1000 + i * 160, 7.25 + i * 0.02)
        self.assertAlmostEqual(stats.jitter, 0.0, places=6)

    def test_timestamp_wrap(self):
        """
        A 32-bit timestamp wrap does not show up as jitter.
        """
        stats = ReceiveStats()
        base = 0xFFFFFFFF - 320
        for i in range(6):
            stats.update(SSRC, i, (base + i * 160) & 0xFFFFFFFF, i * 0.02)
        self.assertAlmostEqual(stats.jitter, 0.0, places=6)


class ReportBlockTests(SynchronousTestCase):
    """
    Building the RTCP report block.
    """

    def test_no_block_before_packets(self):
        """
        Nothing to report before a packet arrived.
        """
        self.assertIsNone(ReceiveStats().report_block(1.0))

    def test_block_fields(self):
        """
        The block carries loss, extended sequence, jitter and LSR/DLSR from
        the last sender report.
        """
        stats = ReceiveStats()
        feed(stats, [1, 2, 3, 5])
        sr_ntp = ntp_from_unix(1000.0)
        stats.on_sender_report(sr_ntp, arrival=10.0)
        block = stats.report_block(now=11.5)
        self.assertEqual(block.ssrc, SSRC)
        self.assertEqual(block.cumulative_lost, 1)
        self.assertEqual(block.fraction_lost, 64)  # 1 of 4
        self.assertEqual(block.highest_seq, 5)
        self.assertEqual(block.lsr, (sr_ntp >> 16) & 0xFFFFFFFF)
        self.assertEqual(block.dlsr, int(1.5 * 65536))

    def test_block_without_sr(self):
        """
        Without a sender report LSR and DLSR are zero.
        """
        stats = ReceiveStats()
        feed(stats, [1, 2, 3])
        block = stats.report_block(now=5.0)
        self.assertEqual((block.lsr, block.dlsr), (0, 0))
