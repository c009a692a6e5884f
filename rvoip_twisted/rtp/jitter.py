"""
A jitter buffer for constant-packetization audio (G.711 and the like).

Policy: B{fixed target depth}, not adaptive.  Playout of a talkspurt starts
once its first packet has waited C{depth} seconds (measured with the arrival
times passed in, so no clock is read); from then on the media clock pulls
one packet per frame with L{JitterBuffer.pop}.  The first packet's arrival
is the earliest any packet of the talkspurt implies (its arrival less the
media time since the first: RTP timestamps over C{clock_rate} when they are
given, else a frame per sequence number): a first packet read late, or
delayed more than those after it, then does not leave the whole call a
frame or two deeper than the target, nearer to skipping.  Ordering is by
(extended) sequence number:

  - reordered packets are put back in order;
  - duplicates, and packets arriving after their turn was played or
    concealed ("too late"), are dropped and counted;
  - a hole is concealed with the L{MISSING} marker, which the decoder turns
    into silence (or a repeat);
  - on underrun (nothing buffered, even after asking the caller's C{refill}
    for packets that arrived and were not read yet) L{MISSING} is returned
    without advancing, which stretches the delay by a frame; after
    C{max_stall} frames of underrun the buffer goes idle (L{pop} returns
    C{None}) and the next packet starts a new talkspurt with the full
    depth again;
  - if more than C{depth + slack} worth of packets pile up (a burst after a
    stall), the frames over it are to be played early, not dropped: the
    buffer says how many in L{ahead}, and a caller that can (the media
    session) plays one frame more in each clock tick until none is left,
    so that nothing the caller sent is lost and the delay is back within
    C{depth + slack} after as many ticks.  Only a pile-up of more than
    C{accelerate} frames over C{depth + slack} (a long stall of the sender
    or the network) is cut short: the oldest frames past that are skipped.
    C{max_packets} bounds memory in any case.  A caller that pops several
    frames at once because its own clock was late says so (C{due}): the
    frames due now are not a pile-up.

Payloads are opaque objects to the buffer (the media session stores
C{(payload_type, payload)} tuples).  Past the start, the buffer counts
packets as frames: C{depth + slack}, past which it skips, is that many
packets, so a sender whose packets are shorter than C{frame_duration}
(10 ms against 20 ms frames) is trimmed to a shorter delay than C{depth}.

L{push} and L{pop} run once per packet per stream, for hundreds of streams
whose state cannot all stay in the CPU cache: the sequence arithmetic is
inlined, and the frames played are remembered in a fixed ring of machine
integers (one store per frame; no set to grow and trim, no int objects kept
alive per frame and freed seconds later).
"""

from array import array

__all__ = ["JitterBuffer", "MISSING", "ACCEPTED", "DUPLICATE", "LATE"]


class _Missing:
    __slots__ = ()

    def __repr__(self):
        return "MISSING"

    def __bool__(self):
        return False


#: Returned by L{JitterBuffer.pop} for a frame that has to be concealed.
MISSING = _Missing()

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
LATE = "late"

_RESYNC = 3000  # a jump bigger than this restarts the stream (RFC 3550 MAX_DROPOUT)
#: Frames remembered as played, to tell a duplicate from a late packet.
_PLAYED = 128


class JitterBuffer:
    """
    See the module docstring for the policy.

    @ivar accepted: packets stored.
    @ivar duplicates: packets dropped as duplicates (of a packet buffered,
        or played within the last 128 frames).
    @ivar late: packets dropped as too late.
    @ivar concealed: frames answered with L{MISSING}.
    @ivar underruns: those of them answered with nothing buffered at all
        (the rest were holes: a later packet had arrived).
    @ivar skipped: packets dropped to bring the delay back to the target.
    @ivar ahead: after L{pop}, the frames buffered over C{depth + slack}
        (at most C{accelerate}): the caller may play that many early.
    @ivar accelerated: frames the caller played early (it counts them,
        L{played_early}).
    @ivar clock_rate: the RTP clock rate of the timestamps passed to
        L{push} (C{None}: they are not used, and a packet's media time is
        counted in frames by its sequence number, which is wrong when the
        sender's packets are shorter than C{frame_duration}).
    """

    clock_rate = None

    def __init__(self, depth=0.06, frame_duration=0.02, slack=2, max_stall=10, max_packets=64,
                 accelerate=4):
        if depth < 0 or frame_duration <= 0:
            raise ValueError("depth must be >= 0 and frame_duration > 0")
        self.depth = depth
        self.frame_duration = frame_duration
        self.target_frames = max(1, int(round(depth / frame_duration)))
        self.slack = slack
        self._max_behind = self.target_frames + slack
        self.max_stall = max_stall
        self.max_packets = max_packets
        self.accelerate = accelerate
        self.accepted = 0
        self.duplicates = 0
        self.late = 0
        self.concealed = 0
        self.underruns = 0
        self.skipped = 0
        self.accelerated = 0
        self.reset()

    def reset(self):
        """
        Forget everything (a new source): the next packet starts afresh.
        """
        self._packets = {}
        self._ref = None  # extended sequence number of the newest packet
        self._next = None  # extended sequence number to play next
        self._first_arrival = None
        self._first_ext = None  # the packet _first_arrival was first taken from
        self._first_ts = None  # and its RTP timestamp
        self._playing = False
        self._stall = 0
        self.ahead = 0
        self._played = array("q", [-1]) * _PLAYED  # ext seq of the frames played, by ext % _PLAYED

    def __len__(self):
        return len(self._packets)

    @property
    def playing(self):
        """Whether a talkspurt is being played out."""
        return self._playing

    def push(self, seq, payload, arrival, timestamp=None):
        """
        Offer one received packet.

        @param seq: its 16-bit RTP sequence number.
        @param arrival: its arrival time in seconds.
        @param timestamp: its 32-bit RTP timestamp, or C{None}; used (with
            C{clock_rate}) only to tell when a talkspurt's first packet
            should have come.
        @return: L{ACCEPTED}, L{DUPLICATE} or L{LATE}.
        """
        ref = self._ref
        if ref is None:
            ext = seq + 0x10000  # leave room below for reordered packets
        else:
            delta = ((seq - ref + 0x8000) & 0xFFFF) - 0x8000  # seq_diff(seq, ref & 0xFFFF)
            if delta > _RESYNC or delta < -_RESYNC:
                self.reset()
                ext = seq + 0x10000
            else:
                ext = ref + delta
        nxt = self._next
        if nxt is not None and ext < nxt:
            if self._played[ext % _PLAYED] == ext:
                self.duplicates += 1
                return DUPLICATE
            self.late += 1
            return LATE
        packets = self._packets
        if ext in packets:
            self.duplicates += 1
            return DUPLICATE
        packets[ext] = payload
        self.accepted += 1
        if ref is None or ext > ref:
            self._ref = ext
        if not self._playing:
            first = self._first_arrival
            if first is None:
                self._first_arrival = arrival
                self._first_ext = ext
                self._first_ts = timestamp
            else:
                # when the first packet would have come, by this one
                first_ts = self._first_ts
                if timestamp is not None and first_ts is not None and self.clock_rate:
                    ticks = ((timestamp - first_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
                    implied = arrival - ticks / self.clock_rate
                else:
                    implied = arrival - (ext - self._first_ext) * self.frame_duration
                if implied < first:
                    self._first_arrival = implied
        if len(packets) > self.max_packets:
            self._drop_oldest()
        return ACCEPTED

    def played_early(self):
        """
        The caller played one frame early (for L{ahead}): the next L{pop}
        is that frame.  Counted in L{accelerated}.
        """
        self.accelerated += 1

    def _drop_oldest(self):
        oldest = min(self._packets)
        del self._packets[oldest]
        self.skipped += 1
        if self._next is not None and self._next <= oldest:
            self._next = oldest + 1

    def pop(self, now, due=1, refill=None):
        """
        The payload for the next frame, L{MISSING} to conceal one frame, or
        C{None} when there is nothing to play (not started, or idle).

        @param due: the frames to be played now, this one included: a media
            clock that was late by C{k} periods pops C{k + 1} in a row, with
            C{due} counting down to 1, and the C{k} frames that piled up
            meanwhile are not skipped as excess.
        @param refill: C{None}, or a callable that L{push}es what has arrived
            and not been delivered yet; called (only) when the buffer is
            playing and empty, before a frame is concealed for want of a
            packet that may be waiting unread.
        """
        packets = self._packets
        if not packets and refill is not None and self._playing:
            refill()
            packets = self._packets     # (a new source resets the buffer)
        if not self._playing:
            if not packets or now - self._first_arrival < self.depth - 1e-9:
                return None
            self._playing = True
            self._stall = 0
            self._next = min(packets)
        nxt = self._next
        if packets:
            # too much buffered (a burst after a stall): the caller plays up
            # to `accelerate` frames early; the oldest beyond are skipped
            excess = self._ref - nxt + 2 - self._max_behind - due
            if excess > 0:
                excess -= self.accelerate
                while excess > 0:
                    if nxt in packets:
                        del packets[nxt]
                        self.skipped += 1
                    nxt += 1
                    excess -= 1
                self.ahead = excess + self.accelerate
            elif self.ahead:
                self.ahead = 0
            payload = packets.pop(nxt, MISSING)
            self._next = nxt + 1
            self._stall = 0
            if payload is MISSING:
                self.concealed += 1
                return payload
            self._played[nxt % _PLAYED] = nxt
            return payload
        # underrun: conceal without advancing
        self.ahead = 0
        self._next = nxt
        self._stall += 1
        if self._stall > self.max_stall:
            self._playing = False
            self._first_arrival = None
            return None
        self.concealed += 1
        self.underruns += 1
        return MISSING
