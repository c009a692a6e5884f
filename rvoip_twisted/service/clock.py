"""
The media clock: one C{LoopingCall} for every stream in the process.

A fine tick (1-2 ms) drives a slotted wheel whose turn is one packet period
(20 ms).  Each stream sits in one slot, chosen as the least loaded when it
is added, so 1,000 streams send in ten groups of about 100 spread across
the 20 ms instead of all at once.

The loop is a C{LoopingCall.withCount}: when the reactor is late and
C{count} ticks elapsed since the last call, every slot passed over is
visited, and a stream whose slot came round C{n} times is called once with
C{frames=n}, so it sends all the packets that are due and its RTP timestamps
stay continuous (no drift, no skip).

The loop runs only while there are streams: it starts with the first one
and stops after the wheel has been empty for C{idle} seconds, so that an
idle server does not wake 500 times a second (and one that carries calls
does not stop and start the loop between them).
"""

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

__all__ = ["MediaClock"]


class MediaClock:
    """
    @ivar slots: the number of slots in the wheel (period / tick).
    @ivar late_calls: loop calls that covered more than one tick.
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
        self._snapshots = [() for _ in range(self.slots)]
        self._ticks = 0
        self._next_key = 0
        self._loop = None
        self._enabled = False
        self._streams = 0
        #: ticks of an empty wheel before the loop stops
        self._idle_limit = max(1, int(round(idle / tick)))
        self._idle_ticks = 0
        self.late_calls = 0
        self.failures = 0

    def __len__(self):
        return self._streams

    @property
    def running(self):
        """Whether the loop is running (started, with streams or lately had)."""
        return self._loop is not None and self._loop.running

    def start(self):
        """
        Enable the clock: the loop runs from now (first tick now) if there
        are streams, else from the first L{add}.  Idempotent.
        """
        self._enabled = True
        if self._streams:
            self._start_loop(now=True)

    def stop(self):
        """
        Stop the loop and disable the clock until L{start}.  Idempotent.
        """
        self._enabled = False
        self._stop_loop()

    def _start_loop(self, now):
        if self.running:
            return
        self._idle_ticks = 0
        self._loop = LoopingCall.withCount(self._run)
        self._loop.clock = self.reactor
        d = self._loop.start(self.tick, now=now)
        d.addErrback(lambda f: self._log.failure("media clock stopped", failure=f))

    def _stop_loop(self):
        if self.running:
            self._loop.stop()
        self._loop = None

    def add(self, callback):
        """
        Put C{callback(frames, now)} on the wheel, in the least loaded slot.

        @return: a handle for L{remove}.
        """
        # the least loaded slot, the soonest of those (an empty one ends the search)
        wheel = self._wheel
        slots = self.slots
        start = self._ticks
        slot = start % slots
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
        self._wheel[slot][key] = callback
        self._snapshots[slot] = tuple(self._wheel[slot].items())
        self._streams += 1
        self._idle_ticks = 0
        if self._enabled and self._loop is None:
            # the first tick one tick from now, as on a running wheel
            self._start_loop(now=False)
        return (slot, key)

    def remove(self, handle):
        """
        Take a callback off the wheel.  Unknown handles are ignored.
        """
        slot, key = handle
        if self._wheel[slot].pop(key, None) is not None:
            self._snapshots[slot] = tuple(self._wheel[slot].items())
            self._streams -= 1

    def slot_loads(self):
        """The number of callbacks in each slot."""
        return [len(slot) for slot in self._wheel]

    def _run(self, count):
        start = self._ticks
        self._ticks = start + count
        if not self._streams:
            self._idle_ticks += count
            if self._idle_ticks >= self._idle_limit:
                self._stop_loop()
            return
        if count > 1:
            self.late_calls += 1
        slots = self.slots
        snapshots = self._snapshots
        now = self.reactor.seconds()
        whole, rest = divmod(count, slots)
        for offset in range(min(count, slots)):
            slot = (start + offset) % slots
            frames = whole + 1 if offset < rest else whole
            for key, callback in snapshots[slot]:
                try:
                    callback(frames, now)
                except Exception:
                    # a broken stream must not stop every other one, nor log
                    # fifty times a second: it leaves the wheel
                    self.failures += 1
                    self._log.failure("media stream tick raised; stream removed from the clock")
                    self.remove((slot, key))
