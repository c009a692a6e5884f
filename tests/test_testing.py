"""Tests for L{rvoip_twisted.testing.HeapClock}: the same behaviour as Twisted's Clock."""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.testing import HeapClock


def _script(clock):
    """Timers set, reset, delayed and cancelled; returns what fired, with the time."""
    fired = []

    def note(name):
        fired.append((name, round(clock.seconds(), 3)))

    a = clock.callLater(1.0, note, "a")
    clock.callLater(0.5, note, "b")
    c = clock.callLater(2.0, note, "c")
    d = clock.callLater(3.0, note, "d")
    clock.callLater(0.5, note, "b2")           # same time: in the order set
    e = clock.callLater(4.0, note, "e")
    clock.advance(0.2)
    a.reset(2.0)                                # later: at 2.2
    c.reset(0.3)                                # earlier: at 0.5
    d.delay(1.0)                                # at 4.0
    e.cancel()
    clock.advance(0.3)
    clock.advance(1.0)
    pending = sorted(round(dc.getTime(), 3) for dc in clock.getDelayedCalls())
    for _ in range(100):
        clock.advance(0.1)
    return fired, pending


class HeapClockTests(SynchronousTestCase):
    def test_like_clock(self):
        """Order, reset (earlier and later), delay and cancel as with Clock."""
        expected = _script(Clock())
        self.assertEqual(expected, ([("b", 0.5), ("b2", 0.5), ("c", 0.5),
                                     ("a", 2.2), ("d", 4.0)], [2.2, 4.0]))
        self.assertEqual(_script(HeapClock()), expected)

    def test_start(self):
        """Time starts where asked."""
        clock = HeapClock(start=1000.0)
        fired = []
        clock.callLater(1, fired.append, 1)
        clock.advance(0.5)
        self.assertEqual((clock.seconds(), fired), (1000.5, []))
        clock.advance(0.5)
        self.assertEqual(fired, [1])
        self.assertEqual(clock.getDelayedCalls(), [])
