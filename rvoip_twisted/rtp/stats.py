"""
Receive statistics for one RTP source, per RFC 3550 appendix A.1 (sequence
number validation: extended sequence numbers, cycles, probation), A.3
(expected, lost, fraction lost since the last report) and A.8
(interarrival jitter).

Times are passed in as float seconds (C{arrival}, C{now}); nothing here
reads a clock.
"""

from .rtcp import ReportBlock, ntp_middle32

__all__ = ["ReceiveStats", "RTP_SEQ_MOD", "MAX_DROPOUT", "MAX_MISORDER", "MIN_SEQUENTIAL"]

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2


class ReceiveStats:
    """
    The receiver-side state for the current remote SSRC.

    A change of SSRC (the peer restarted its stream, or a different peer
    took over the port) resets the per-source state and counts
    C{ssrc_changes}; the new source goes through probation again.

    @ivar ssrc: the source being tracked, or C{None} before the first packet.
    @ivar received: packets accepted for the current source (duplicates
        included, as in RFC 3550).
    @ivar jitter: the interarrival jitter estimate, in timestamp units.
    """

    def __init__(self, clock_rate=8000):
        self.clock_rate = clock_rate
        self.ssrc = None
        self.ssrc_changes = 0
        self.total_received = 0  # over every source, including probation
        self._reset()
        self._last_sr = 0  # middle 32 bits of the last SR's NTP timestamp
        self._last_sr_arrival = None

    def _reset(self):
        self.probation = MIN_SEQUENTIAL
        self.base_seq = 0
        self.max_seq = 0
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0
        self.jitter = 0.0
        self._transit = None

    def _init_seq(self, seq):
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0

    def update(self, ssrc, seq, timestamp, arrival):
        """
        Account for one received packet.

        @param arrival: the arrival time in seconds.
        @return: C{True} if the packet is valid per RFC 3550 A.1 (a source
            on probation, or a big jump not yet confirmed, gives C{False}).
        """
        self.total_received += 1
        if ssrc != self.ssrc:
            if self.ssrc is not None:
                self.ssrc_changes += 1
            self.ssrc = ssrc
            self._reset()
            self._init_seq(seq)
            self.max_seq = (seq - 1) & 0xFFFF
            self.probation = MIN_SEQUENTIAL
            self._last_sr = 0
            self._last_sr_arrival = None

        # A.8: interarrival jitter, in timestamp units.
        transit = arrival * self.clock_rate - timestamp
        if self._transit is not None:
            d = transit - self._transit
            # the timestamp may have wrapped since the previous packet
            if d > 0x80000000:
                d -= 0x100000000
            elif d < -0x80000000:
                d += 0x100000000
            if d < 0:
                d = -d
            self.jitter += (d - self.jitter) / 16.0
        self._transit = transit

        # A.1: sequence number validation.
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        elif udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:
                # two sequential packets after a big jump: the source
                # restarted without changing SSRC
                self._init_seq(seq)
            else:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
        # else: a duplicate or reordered packet
        self.received += 1
        return True

    # A.3 -------------------------------------------------------------------

    @property
    def extended_max_seq(self):
        """The highest sequence number received, extended with the cycles."""
        return self.cycles + self.max_seq

    @property
    def expected(self):
        """Packets expected from the current source."""
        if self.ssrc is None or self.probation:
            return 0
        return self.extended_max_seq - self.base_seq + 1

    @property
    def lost(self):
        """Cumulative packets lost, clamped to the signed 24-bit range."""
        lost = self.expected - self.received
        return max(-0x800000, min(0x7FFFFF, lost))

    @property
    def jitter_seconds(self):
        """The jitter estimate in seconds."""
        return self.jitter / self.clock_rate

    def interval(self):
        """
        Close a reporting interval: return C{(fraction_lost, lost_interval,
        expected_interval)} since the previous call, fraction in 1/256.
        """
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        return fraction, lost_interval, expected_interval

    # LSR / DLSR ---------------------------------------------------------------

    def on_sender_report(self, ntp_timestamp, arrival):
        """
        Remember an SR from the current source, for the LSR and DLSR fields
        of the next report block.
        """
        self._last_sr = ntp_middle32(ntp_timestamp)
        self._last_sr_arrival = arrival

    def report_block(self, now):
        """
        A reception report about the current source, closing the interval;
        C{None} before any packet arrived.
        """
        if self.ssrc is None:
            return None
        fraction, _, _ = self.interval()
        if self._last_sr_arrival is None:
            lsr = dlsr = 0
        else:
            lsr = self._last_sr
            dlsr = min(0xFFFFFFFF, max(0, int((now - self._last_sr_arrival) * 65536)))
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=fraction,
            cumulative_lost=self.lost,
            highest_seq=self.extended_max_seq & 0xFFFFFFFF,
            jitter=min(0xFFFFFFFF, int(self.jitter)),
            lsr=lsr,
            dlsr=dlsr,
        )
