"""
The media clock: the timing of every stream in the process.

A packet period (20 ms) is cut into slots, one per tick (2 ms): slot C{i}
comes round at C{epoch + i * tick + k * period}.  Each stream sits in one
slot, chosen as the least loaded when it is added, so 1,000 streams send in
ten groups of about 100 spread across the 20 ms instead of all at once.

Each slot that has streams is driven by a C{LoopingCall.withCount} of its
own, every period, started at the slot's phase.  So the reactor wakes only
for the slots in use: 50 times a second for one call, 500 for ten or more,
and not at all for an idle server (a slot's loop stops after C{idle}
seconds without a stream, so a server carrying calls does not stop and
start loops between them).

When the reactor is late and C{count} periods elapsed since a slot's last
call, its streams are called once with C{frames=count}, so each sends all
the packets that are due and its RTP timestamps stay continuous (no drift,
no skip).
"""

from twisted.internet.task import LoopingCall

from ..logs import Logger

__all__ = ["MediaClock"]


class MediaClock:
    """
    @ivar slots: the number of slots in a period (period / tick).
    @ivar late_calls: slot calls that came a tick or more after their time.
    @ivar late_observer: C{None}, or called with the lateness in seconds of
        every such call (the benchmarks' stall record).
    """

    _log = Logger()

    def __init__(self, reactor, tick=0.002, period=0.02, idle=1.0):
        if tick <= 0 or period < tick:
            raise ValueError("need 0 < tick <= period")
        self.reactor = reactor
        self.tick = tick
        self.period = period
        self.slots = max(1, int(round(period / tick)))
        self._wheel = [{} for _ in range(self.slots)]
        #: per slot: a tuple of its callbacks for the next run, or None when
        #: it changed since (made at the run: at a high call rate many
        #: streams come and go between two runs of a slot)
        self._snapshots = [() for _ in range(self.slots)]
        #: per slot: its LoopingCall, or the DelayedCall that starts it at
        #: the slot's phase, or None
        self._loops = [None] * self.slots
        #: per slot: periods its loop ran without a stream
        self._idle = [0] * self.slots
        self._idle_limit = max(1, int(round(idle / period)))
        self._epoch = None
        self._next_key = 0
        self._enabled = False
        self._streams = 0
        self.late_calls = 0
        self.late_observer = None
        self.failures = 0

    def __len__(self):
        return self._streams

    @property
    def running(self):
        """Whether any slot's loop is running or about to start."""
        return any(_alive(loop) for loop in self._loops)

    def start(self):
        """
        Enable the clock: the slots that have streams start now (the slot
        at the clock's phase now, each other at its phase); an empty slot
        starts with its first stream.  Idempotent.
        """
        if self._enabled:
            return
        self._enabled = True
        self._epoch = self.reactor.seconds()
        for slot in range(self.slots):
            if self._wheel[slot]:
                self._start_slot(slot, at_once=True)

    def stop(self):
        """
        Stop every loop and disable the clock until L{start}.  Idempotent.
        """
        self._enabled = False
        for slot in range(self.slots):
            self._stop_slot(slot)

    def _phase(self, slot, now):
        """Seconds from C{now} to the next time C{slot} comes round."""
        offset = (self._epoch + slot * self.tick - now) % self.period
        if offset > self.period - 1e-9:     # now, but for float rounding
            offset = 0.0
        return offset

    def _start_slot(self, slot, at_once=False):
        """Start C{slot}'s loop at its phase: at once if that is now and
        C{at_once} (L{start}), else from the reactor (never inside L{add})."""
        if _alive(self._loops[slot]):
            return
        self._idle[slot] = 0
        now = self.reactor.seconds()
        delay = self._phase(slot, now)
        if delay < 1e-9 and at_once:
            self._begin(slot, now)
        else:
            self._loops[slot] = self.reactor.callLater(delay, self._begin, slot, now + delay)

    def _begin(self, slot, due):
        loop = LoopingCall.withCount(lambda count: self._run(slot, count))
        loop.clock = self.reactor
        self._loops[slot] = loop
        d = loop.start(self.period, now=True)
        d.addErrback(lambda f: self._log.failure("media clock stopped", failure=f))
        # its periods from the slot's time, not from when the reactor got
        # round to starting it
        loop.starttime = due

    def _stop_slot(self, slot):
        loop = self._loops[slot]
        self._loops[slot] = None
        if loop is None:
            return
        if isinstance(loop, LoopingCall):
            if loop.running:
                loop.stop()
        elif loop.active():
            loop.cancel()

    def add(self, callback):
        """
        Put C{callback(frames, now)} on the wheel, in the least loaded slot
        (the soonest of those).

        @return: a handle for L{remove}.
        """
        wheel = self._wheel
        slots = self.slots
        if self._epoch is None:
            start = 0
        else:
            # the slot that comes round next (after now)
            elapsed = self.reactor.seconds() - self._epoch
            start = (int(elapsed // self.tick) + 1) % slots
        slot = start
        fewest = len(wheel[slot])
        offset = 1
        while fewest and offset < slots:
            i = (start + offset) % slots
            n = len(wheel[i])
            if n < fewest:
                slot, fewest = i, n
            offset += 1
        key = self._next_key
        self._next_key += 1
        wheel[slot][key] = callback
        self._snapshots[slot] = None
        self._streams += 1
        self._idle[slot] = 0
        if self._enabled:
            self._start_slot(slot)      # unless its loop runs (or is about to)
        return (slot, key)

    def remove(self, handle):
        """
        Take a callback off the wheel.  Unknown handles are ignored.
        """
        slot, key = handle
        if self._wheel[slot].pop(key, None) is not None:
            self._snapshots[slot] = None
            self._streams -= 1

    def slot_loads(self):
        """The number of callbacks in each slot."""
        return [len(slot) for slot in self._wheel]

    def _run(self, slot, count):
        snapshot = self._snapshots[slot]
        if snapshot is None:
            snapshot = self._snapshots[slot] = tuple(self._wheel[slot].items())
        if not snapshot:
            self._idle[slot] += count
            if self._idle[slot] >= self._idle_limit:
                self._stop_slot(slot)
            return
        now = self.reactor.seconds()
        # how long after its time the oldest frame due is sent
        phase = (now - self._epoch - slot * self.tick) % self.period
        if phase > self.period - 1e-6:      # on time, but for float rounding
            phase = 0.0
        late = phase + (count - 1) * self.period
        if late >= self.tick:
            self.late_calls += 1
            if self.late_observer is not None:
                try:
                    self.late_observer(late)
                except Exception:
                    self._log.failure("media clock late_observer failed")
        for key, callback in snapshot:
            try:
                callback(count, now)
            except Exception:
                # a broken stream must not stop every other one, nor log
                # fifty times a second: it leaves the wheel
                self.failures += 1
                self._log.failure("media stream tick raised; stream removed from the clock")
                self.remove((slot, key))


def _alive(loop):
    """Whether a slot's loop (a LoopingCall, a DelayedCall starting one, or
    None) runs or will."""
    if loop is None:
        return False
    if isinstance(loop, LoopingCall):
        return loop.running
    return loop.active()
