"""
Helpers for testing code built on rvoip-twisted (the project's own tests and
benchmarks use them too).
"""

import heapq

from twisted.internet.base import DelayedCall
from twisted.internet.task import Clock

__all__ = ["HeapClock"]


class HeapClock(Clock):
    """
    A L{Clock} whose pending calls are a heap, like the real reactor's: the
    stock C{Clock} sorts its whole list on every C{callLater}, which makes a
    test or a simulation with 10,000 concurrent timers (a server under load)
    take minutes.  C{reset}, C{delay} and C{cancel} behave as on the
    reactor's delayed calls.
    """

    def __init__(self, start=0.0):
        Clock.__init__(self)
        self.rightNow = start
        self._heap = []
        self._seq = 0

    def callLater(self, delay, f, *args, **kw):
        dc = DelayedCall(self.rightNow + delay, f, args, kw,
                         _ignore, self._push, self.seconds)
        self._push(dc)
        return dc

    def _push(self, dc):
        # also the resetter, which Twisted calls for a reset to an earlier time
        self._seq += 1
        heapq.heappush(self._heap, (dc.getTime(), self._seq, dc))

    def advance(self, amount):
        self.rightNow += amount
        heap = self._heap
        while heap and heap[0][0] <= self.rightNow:
            when, _, dc = heapq.heappop(heap)
            if dc.cancelled or dc.called:
                continue
            due = dc.getTime()
            if due > when:          # reset to later (no resetter call): requeue
                self._push(dc)
                continue
            if due < when:          # reset to earlier: its newer entry comes first
                continue
            dc.called = 1
            dc.func(*dc.args, **dc.kw)

    def getDelayedCalls(self):
        return list({dc for _, _, dc in self._heap if not (dc.cancelled or dc.called)})


def _ignore(call):
    pass
