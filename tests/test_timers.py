"""The shared timer queue (rvoip_twisted.service.timers), driven by task.Clock."""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.service.timers import TimerQueue


class TimerQueueTests(SynchronousTestCase):

    def setUp(self):
        self.clock = Clock()
        self.queue = TimerQueue(self.clock)
        self.fired = []

    def record(self, arg):
        self.fired.append((arg, self.clock.seconds()))

    def test_fires_in_time_order_on_one_delayed_call(self):
        """Entries fire at their time, in time order, with one reactor delayed call."""
        for at, name in ((3.0, "c"), (1.0, "a"), (2.0, "b"), (2.0, "b2")):
            self.queue.add(at, self.record, name)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.assertEqual(self.queue.pending(), 4)
        self.clock.advance(0.999)
        self.assertEqual(self.fired, [])
        self.clock.pump([0.001, 1, 1])
        self.assertEqual(self.fired, [("a", 1.0), ("b", 2.0), ("b2", 2.0), ("c", 3.0)])
        self.assertEqual(self.queue.pending(), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_earlier_entry_rearms(self):
        """An entry earlier than the armed one moves the delayed call earlier."""
        self.queue.add(5.0, self.record, "late")
        self.queue.add(1.0, self.record, "early")
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [1.0])
        self.clock.advance(1)
        self.assertEqual(self.fired, [("early", 1.0)])
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [5.0])

    def test_cancel(self):
        """A cancelled entry never fires; cancelling twice is harmless."""
        keep = self.queue.add(2.0, self.record, "keep")
        drop = self.queue.add(1.0, self.record, "drop")
        self.queue.cancel(drop)
        self.queue.cancel(drop)
        self.assertFalse(TimerQueue.active(drop))
        self.assertTrue(TimerQueue.active(keep))
        self.assertEqual(self.queue.pending(), 1)
        self.clock.pump([1, 1, 1])
        self.assertEqual(self.fired, [("keep", 2.0)])

    def test_last_cancel_leaves_nothing_pending(self):
        """
        When the last live entry is cancelled the heap empties; the delayed
        call runs once more at its time (an entry added meanwhile reuses it)
        and then the reactor has no delayed call left.
        """
        a = self.queue.add(1.0, self.record, "a")
        b = self.queue.add(30.0, self.record, "b")
        self.queue.cancel(a)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.queue.cancel(b)
        self.assertEqual(len(self.queue), 0)
        self.assertEqual(self.queue.pending(), 0)
        [call] = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), 1.0)
        c = self.queue.add(0.5, self.record, "c")      # sooner: the same call, moved
        self.assertEqual(self.clock.getDelayedCalls(), [call])
        self.queue.cancel(c)
        self.clock.advance(0.5)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.fired, [])
        self.queue.add(2.0, self.record, "d")
        self.clock.advance(1.5)
        self.assertEqual(self.fired, [("d", 2.0)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_callback_adds_and_cancels(self):
        """A callback may add entries (due ones fire in the same run) and cancel others."""
        later = self.queue.add(4.0, self.record, "later")

        def first(_):
            self.record("first")
            self.queue.add(self.clock.seconds(), self.record, "now")
            self.queue.add(2.5, self.record, "next")
            self.queue.cancel(later)

        self.queue.add(1.0, first, None)
        self.clock.advance(1)
        self.assertEqual(self.fired, [("first", 1.0), ("now", 1.0)])
        self.clock.advance(1.5)
        self.clock.advance(2)
        self.assertEqual(self.fired, [("first", 1.0), ("now", 1.0), ("next", 2.5)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_raising_callback_logged(self):
        """A callback that raises is logged; the others still fire."""
        def bad(_):
            raise ZeroDivisionError()
        self.queue.add(1.0, bad, None)
        self.queue.add(1.0, self.record, "ok")
        self.clock.advance(1)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(self.fired, [("ok", 1.0)])

    def test_clear(self):
        """clear() drops every entry and the delayed call."""
        self.queue.add(1.0, self.record, "a")
        self.queue.clear()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(2)
        self.assertEqual(self.fired, [])
