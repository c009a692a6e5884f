"""
Tests for L{rvoip_twisted.rtp.jitter}: every time is passed in, no clock.
"""

from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.rtp.jitter import ACCEPTED, DUPLICATE, LATE, MISSING, JitterBuffer


def simulate(buffer, arrivals, first_pop, count, step=0.02):
    """
    Push C{(seq, arrival)} packets and pop C{count} frames every C{step}
    from C{first_pop}, in time order (a push at the same instant as a pop
    goes first); return what was popped.
    """
    pending = sorted(arrivals, key=lambda item: item[1])
    out = []
    for i in range(count):
        now = first_pop + i * step
        while pending and pending[0][1] <= now + 1e-9:
            seq, arrival = pending.pop(0)
            buffer.push(seq, seq, arrival)
        out.append(buffer.pop(now))
    return out


def drain(buffer, start, count, step=0.02):
    """Pop C{count} frames at 20 ms intervals from C{start}."""
    return [buffer.pop(start + i * step) for i in range(count)]


class JitterBufferTests(SynchronousTestCase):
    """
    Reordering, duplicates, late packets and concealment.
    """

    def test_waits_for_depth(self):
        """
        Nothing is played until the first packet has waited C{depth}.
        """
        buffer = JitterBuffer(depth=0.06)
        self.assertEqual(buffer.push(10, b"a", 1.00), ACCEPTED)
        self.assertIsNone(buffer.pop(1.00))
        self.assertIsNone(buffer.pop(1.04))
        self.assertEqual(buffer.pop(1.06), b"a")
        self.assertTrue(buffer.playing)

    def test_empty_buffer_pops_none(self):
        """
        An empty, never-started buffer has nothing to play.
        """
        self.assertIsNone(JitterBuffer().pop(100.0))

    def test_reorders(self):
        """
        Packets arriving out of order are played in sequence order.
        """
        buffer = JitterBuffer(depth=0.04)
        arrivals = [(1, 0.0), (3, 0.021), (2, 0.03), (5, 0.06), (4, 0.07)]
        self.assertEqual(simulate(buffer, arrivals, 0.04, 5), [1, 2, 3, 4, 5])

    def test_duplicates_dropped(self):
        """
        A packet received twice is played once, whether the copy arrives
        while it is buffered or after it was played.
        """
        buffer = JitterBuffer(depth=0.0)
        self.assertEqual(buffer.push(1, "one", 0.0), ACCEPTED)
        self.assertEqual(buffer.push(1, "one", 0.001), DUPLICATE)
        self.assertEqual(buffer.pop(0.0), "one")
        self.assertEqual(buffer.push(1, "one", 0.002), DUPLICATE)
        self.assertEqual(buffer.duplicates, 2)

    def test_gap_concealed(self):
        """
        A lost packet yields L{MISSING} in its slot and playout continues
        with the next one.
        """
        buffer = JitterBuffer(depth=0.04)
        arrivals = [(1, 0.0), (2, 0.02), (4, 0.06), (5, 0.08)]
        self.assertEqual(simulate(buffer, arrivals, 0.04, 5), [1, 2, MISSING, 4, 5])
        self.assertEqual(buffer.concealed, 1)
        self.assertEqual(buffer.underruns, 0)   # a hole: packet 4 was there
        self.assertFalse(MISSING)

    def test_too_late_dropped(self):
        """
        A packet arriving after its slot was concealed is dropped as late.
        """
        buffer = JitterBuffer(depth=0.04)
        for seq in (1, 3):
            buffer.push(seq, seq, 0.0)
        self.assertEqual(drain(buffer, 0.04, 2), [1, MISSING])
        self.assertEqual(buffer.push(2, 2, 0.09), LATE)
        self.assertEqual(buffer.pop(0.10), 3)
        self.assertEqual(buffer.late, 1)

    def test_sequence_wraparound(self):
        """
        Ordering survives the 65535 -> 0 wrap, including a reordered packet
        across it.
        """
        buffer = JitterBuffer(depth=0.04)
        arrivals = [(65534, 0.0), (0, 0.02), (65535, 0.03), (1, 0.06)]
        self.assertEqual(simulate(buffer, arrivals, 0.04, 4), [65534, 65535, 0, 1])

    def test_underrun_stalls_then_goes_idle(self):
        """
        With nothing buffered the frame is concealed without advancing, so a
        packet arriving a little late is still played; a long silence makes
        the buffer idle and the next talkspurt is buffered afresh.
        """
        buffer = JitterBuffer(depth=0.04, max_stall=3)
        buffer.push(1, 1, 0.0)
        self.assertEqual(buffer.pop(0.04), 1)
        self.assertIs(buffer.pop(0.06), MISSING)  # packet 2 is late
        buffer.push(2, 2, 0.07)
        self.assertEqual(buffer.pop(0.08), 2)  # still played, not "late"
        self.assertEqual(drain(buffer, 0.10, 4), [MISSING, MISSING, MISSING, None])
        self.assertEqual((buffer.concealed, buffer.underruns), (4, 4))
        self.assertFalse(buffer.playing)
        buffer.push(3, 3, 1.0)
        self.assertIsNone(buffer.pop(1.02))
        self.assertEqual(buffer.pop(1.04), 3)

    def test_burst_skips_to_target(self):
        """
        When more than the target depth piles up and nothing may be played
        early (C{accelerate=0}), the oldest packets are skipped so the delay
        returns to depth + slack frames.
        """
        buffer = JitterBuffer(depth=0.04, slack=1, accelerate=0)  # target 2 frames, + 1
        for seq in range(1, 11):
            buffer.push(seq, seq, 0.0)
        self.assertEqual(buffer.pop(0.04), 8)
        self.assertEqual(buffer.skipped, 7)
        self.assertEqual(buffer.ahead, 0)
        self.assertEqual(drain(buffer, 0.06, 3), [9, 10, MISSING])

    def test_long_burst_skips_past_accelerate(self):
        """
        A pile-up of more than C{accelerate} frames over depth + slack: the
        oldest frames past that are skipped, the rest are to be played
        early (L{JitterBuffer.ahead}).
        """
        buffer = JitterBuffer(depth=0.04, slack=1, accelerate=4)  # target 2, + 1, + 4 early
        for seq in range(1, 11):
            buffer.push(seq, seq, 0.0)
        self.assertEqual(buffer.pop(0.04), 4)
        self.assertEqual(buffer.skipped, 3)
        self.assertEqual(buffer.ahead, 4)

    def test_burst_after_a_sender_stall_is_played_early(self):
        """
        A sender stalls for six frames, then sends its backlog at once.
        The buffer underruns meanwhile (three frames concealed without
        advancing), so the backlog leaves it two frames over depth + slack.
        Those two are played early, one more in each of the next two ticks
        (as the media session does), not skipped: every packet is played,
        in order, and the delay is back within depth + slack.  (Skipped, as before
        C{accelerate}, two of the caller's packets would be lost.)
        """
        buffer = JitterBuffer(depth=0.06, slack=2)  # target 3 frames, + 2
        arrivals = [(seq, (seq - 1) * 0.02) for seq in range(1, 6)]         # on time
        arrivals += [(seq, 0.22) for seq in range(6, 13)]                   # the backlog
        arrivals += [(seq, (seq - 1) * 0.02) for seq in range(13, 20)]      # on time again
        pending = sorted(arrivals, key=lambda item: item[1])
        played = []
        early = 0
        for i in range(20):
            now = 0.06 + i * 0.02
            while pending and pending[0][1] <= now + 1e-9:
                seq, arrival = pending.pop(0)
                buffer.push(seq, seq, arrival)
            played.append(buffer.pop(now))
            if buffer.ahead:
                buffer.played_early()
                early += 1
                played.append(buffer.pop(now))
        self.assertEqual(early, 2)
        self.assertEqual((buffer.skipped, buffer.accelerated), (0, 2))
        self.assertEqual(played.count(MISSING), 3)
        self.assertEqual([frame for frame in played if frame], list(range(1, 20)))
        self.assertEqual(buffer.ahead, 0)
        # the last packet (19, sent at 0.36) played at 0.44: 80 ms of delay,
        # 60 ms before the stall; the three frames concealed added 60, the
        # two played early took 40 back
        self.assertEqual(played[-1], 19)
        self.assertEqual(len(buffer), 0)

    def test_frames_due_after_a_late_clock_are_played(self):
        """
        A media clock late by three periods pops four frames in a row, with
        C{due} counting down: the three that piled up meanwhile are the ones
        due now, played in order, none skipped, and the delay is what it
        was.  (Popped as four separate frames, the pile-up would read as a
        burst past depth + slack and the two oldest be dropped.)
        """
        def run(dues):
            # (nothing played early: the pile-up of separate pops is skipped)
            buffer = JitterBuffer(depth=0.06, slack=2, accelerate=0)  # target 3 frames, + 2
            arrivals = {seq: (seq - 1) * 0.02 for seq in range(1, 13)}
            out = []

            def arrive(until):
                for seq, at in sorted(arrivals.items()):
                    if at <= until + 1e-9:
                        buffer.push(seq, seq, at)
                        del arrivals[seq]

            for now in (0.06, 0.08, 0.10):      # on time
                arrive(now)
                out.append(buffer.pop(now))
            arrive(0.18)                        # no call at 0.12, 0.14, 0.16
            for due in dues:
                out.append(buffer.pop(0.18, due))
            arrive(0.20)
            out.append(buffer.pop(0.20))
            return out, buffer.skipped

        self.assertEqual(run([4, 3, 2, 1]), ([1, 2, 3, 4, 5, 6, 7, 8], 0))
        self.assertEqual(run([1, 1, 1, 1]), ([1, 2, 3, 6, 7, 8, 9, 10], 2))

    def test_playout_starts_from_the_earliest_arrival_implied(self):
        """
        A talkspurt whose first three packets were read together, late (the
        reader was busy), starts its playout from when the packets after
        them imply the first one came, not from when it was read: it plays
        from the first packet at the target depth and skips nothing.
        (Started from the late read, it would run two frames deeper than the
        target for the rest of the call, and skip at once.)
        """
        late_read = [(1, 0.045), (2, 0.045), (3, 0.045)]
        on_time = [(seq, (seq - 1) * 0.02) for seq in range(4, 14)]
        buffer = JitterBuffer(depth=0.06, slack=2)
        out = simulate(buffer, late_read + on_time, 0.01, 14)
        played = [frame for frame in out if frame is not None]
        self.assertEqual(played, list(range(1, 12)))
        self.assertEqual(out[:3], [None, None, None])         # 0.01, 0.03, 0.05: waiting
        self.assertEqual(buffer.skipped, 0)
        self.assertEqual(len(buffer), 2)                      # 12 and 13: the target

    def test_playout_start_by_rtp_timestamps(self):
        """
        Given RTP timestamps and the clock rate, when the first packet
        should have come is told by media time, whatever the sender's
        packet length: 10 ms packets into 20 ms frames still wait the full
        depth.  (Counted a frame per sequence number, each would seem to
        have come 10 ms early, and playout would start at once.)  A large
        slack: past the start the buffer counts packets as frames, which this
        sender's are not (see the module docstring); only the start is
        looked at here.
        """
        def first_pop(clock_rate):
            buffer = JitterBuffer(depth=0.06, frame_duration=0.02, slack=10)
            buffer.clock_rate = clock_rate
            for k in range(6):      # 10 ms packets, 80 samples at 8 kHz
                buffer.push(k + 1, k + 1, k * 0.01, (4294967000 + 80 * k) & 0xFFFFFFFF)
            return buffer.pop(0.055), buffer.pop(0.06)

        self.assertEqual(first_pop(8000), (None, 1))        # (the timestamps wrap, too)
        self.assertEqual(first_pop(None), (1, 2))           # the fallback

    def test_late_first_read_by_rtp_timestamps(self):
        """
        The first three packets read together, late, with timestamps: the
        start is where their media time puts it, as with sequence numbers.
        """
        buffer = JitterBuffer(depth=0.06, frame_duration=0.02)
        buffer.clock_rate = 8000
        for seq in (1, 2, 3):
            buffer.push(seq, seq, 0.045, 160 * seq)
        buffer.push(4, 4, 0.06, 640)
        self.assertEqual(buffer.pop(0.06), 1)
        self.assertEqual(len(buffer), 3)

    def test_playout_start_ignores_reordered_packets(self):
        """
        A packet older than the first one does not move the start: only
        what packets after the first imply does.
        """
        buffer = JitterBuffer(depth=0.06)
        buffer.push(5, 5, 1.00)
        buffer.push(4, 4, 1.01)     # reordered: implies 1.03, later than 1.00
        self.assertIsNone(buffer.pop(1.05))
        self.assertEqual(buffer.pop(1.06), 4)

    def test_refill_before_underrun(self):
        """
        An empty buffer that is playing asks C{refill} for packets that
        arrived unread before it conceals the frame; a buffer with packets,
        or not playing, does not ask.
        """
        buffer = JitterBuffer(depth=0.04)
        asked = []

        def refill():
            asked.append(True)
            buffer.push(3, 3, 0.08)

        self.assertIsNone(buffer.pop(0.0, refill=refill))          # not playing: not asked
        buffer.push(1, 1, 0.0)
        buffer.push(2, 2, 0.02)
        self.assertEqual(buffer.pop(0.04, refill=refill), 1)
        self.assertEqual(buffer.pop(0.06, refill=refill), 2)
        self.assertEqual(asked, [])
        self.assertEqual(buffer.pop(0.08, refill=refill), 3)       # empty: asked, played
        self.assertEqual((asked, buffer.underruns, buffer.concealed), ([True], 0, 0))
        self.assertIs(buffer.pop(0.10, refill=lambda: None), MISSING)   # nothing came
        self.assertEqual(buffer.underruns, 1)

    def test_memory_bound(self):
        """
        No more than C{max_packets} are held.
        """
        buffer = JitterBuffer(depth=10.0, max_packets=5)
        for seq in range(20):
            buffer.push(seq, seq, 0.0)
        self.assertEqual(len(buffer), 5)

    def test_sequence_jump_resyncs(self):
        """
        A jump of thousands of sequence numbers (the sender restarted)
        starts a new stream instead of being "late" forever.
        """
        buffer = JitterBuffer(depth=0.0)
        buffer.push(100, "a", 0.0)
        self.assertEqual(buffer.pop(0.0), "a")
        self.assertEqual(buffer.push(40000, "b", 0.02), ACCEPTED)
        self.assertEqual(buffer.pop(0.02), "b")

    def test_reset(self):
        """
        L{JitterBuffer.reset} forgets buffered packets and the playout
        position.
        """
        buffer = JitterBuffer(depth=0.0)
        buffer.push(5, "x", 0.0)
        buffer.pop(0.0)
        buffer.push(6, "y", 0.0)
        buffer.reset()
        self.assertEqual(len(buffer), 0)
        self.assertEqual(buffer.push(1, "z", 1.0), ACCEPTED)
        self.assertEqual(buffer.pop(1.0), "z")
