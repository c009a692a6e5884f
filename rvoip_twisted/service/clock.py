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

    def __init__(self, reactor, tick=0.002, period=0.02):
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
        self.late_calls = 0
        self.failures = 0

    def __len__(self):
        return sum(len(slot) for slot in self._wheel)

    @property
    def running(self):
        return self._loop is not None and self._loop.running

    def start(self):
        """
        Start the loop (first tick now).  Idempotent.
        """
        if self.running:
            return
        self._loop = LoopingCall.withCount(self._run)
        self._loop.clock = self.reactor
        d = self._loop.start(self.tick, now=True)
        d.addErrback(lambda f: self._log.failure("media clock stopped", failure=f))

    def stop(self):
        """
        Stop the loop.  Idempotent.
        """
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
        return (slot, key)

    def remove(self, handle):
        """
        Take a callback off the wheel.  Unknown handles are ignored.
        """
        slot, key = handle
        if self._wheel[slot].pop(key, None) is not None:
            self._snapshots[slot] = tuple(self._wheel[slot].items())

    def slot_loads(self):
        """The number of callbacks in each slot."""
        return [len(slot) for slot in self._wheel]

    def _run(self, count):
        start = self._ticks
        self._ticks = start + count
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
