"""
Many timers on one delayed call.

Every transaction and every unacknowledged 2xx has a timer, and at
thousands of calls a second tens of thousands are pending at once (Timers
J and L run 32 s).  A reactor C{DelayedCall} each would cost an object
graph per timer (the call, its bound method, argument tuple and keyword
dict) in the reactor's heap, plus Twisted's re-heapify after
cancellations.  L{TimerQueue} keeps them as small lists in one C{heapq}
and asks the reactor for a single delayed call, armed for the earliest.

Cancelling marks the entry (it stays in the heap until its time comes,
so the heap holds at most rate x longest timer entries; when no live entry
is left the heap is emptied); rescheduling is a cancel plus an add.
Entries fire in time order, never before their time, with the reactor's
clock (so C{task.Clock} drives them in tests).
"""

import heapq
import itertools

from ..logs import Logger


__all__ = ["TimerQueue"]

_heappush = heapq.heappush
_heappop = heapq.heappop


class TimerQueue:
    """
    @ivar reactor: an C{IReactorTime}.
    """

    _log = Logger()

    def __init__(self, reactor):
        self.reactor = reactor
        self._heap = []
        self._seq = itertools.count()
        self._call = None
        self._armed_at = None
        self._live = 0

    def __len__(self):
        """Entries in the heap, cancelled ones included until they are due."""
        return len(self._heap)

    def add(self, at, callback, arg):
        """
        Call C{callback(arg)} at time C{at} (reactor seconds).

        @return: the entry, for L{cancel}.
        """
        entry = [at, next(self._seq), callback, arg]
        _heappush(self._heap, entry)
        self._live += 1
        armed = self._armed_at
        if armed is None or at < armed:
            self._arm(at)
        return entry

    def cancel(self, entry):
        """
        Make an entry a no-op (idempotent).  When no live entry is left the
        heap is emptied, and the delayed call is left to run once, find
        nothing and not come back: an idle server has no timer pending
        after that.  (Cancelling it instead, when most entries are
        cancelled before their time, as a 2xx's retransmission timer is by
        the ACK, made and cancelled a reactor DelayedCall for almost every
        call: 3.5 % of a call's CPU in process, see bench/README.md.)
        """
        if entry[2] is None:
            return
        entry[2] = entry[3] = None
        self._live -= 1
        if not self._live:
            self._heap = []         # every entry left in it is cancelled

    @staticmethod
    def active(entry):
        return entry[2] is not None

    def pending(self):
        """The number of live (not cancelled, not yet fired) entries."""
        return self._live

    def clear(self):
        """Drop every entry and the delayed call."""
        for entry in self._heap:
            entry[2] = entry[3] = None
        self._heap = []
        self._live = 0
        call, self._call = self._call, None
        self._armed_at = None
        if call is not None and call.active():
            call.cancel()

    def _arm(self, at):
        delay = at - self.reactor.seconds()
        if delay < 0:
            delay = 0
        call = self._call
        if call is not None and call.active():
            call.reset(delay)
        else:
            self._call = self.reactor.callLater(delay, self._run)
        self._armed_at = at

    def _run(self):
        self._call = None
        self._armed_at = None
        # Float noise: a call scheduled for `at` may run a hair before it.
        now = self.reactor.seconds() + 1e-9
        while True:
            heap = self._heap               # a callback may clear() it
            if not heap or heap[0][0] > now:
                break
            entry = _heappop(heap)
            callback = entry[2]
            if callback is None:
                continue
            arg = entry[3]
            entry[2] = entry[3] = None
            self._live -= 1
            try:
                callback(arg)
            except Exception:
                self._log.failure("timer callback {callback!r} raised", callback=callback)
        heap = self._heap
        while heap and heap[0][2] is None:
            _heappop(heap)
        if heap:
            armed = self._armed_at
            if armed is None or heap[0][0] < armed:
                self._arm(heap[0][0])
