"""
Tests for the RTCP round of L{rvoip_twisted.service.media.MediaManager}:
every session reports once per interval, spread evenly over the turns of
the RTCP loop so no turn holds the reactor for long.
"""

import random

from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.service import media
from rvoip_twisted.service.media import MediaManager

from .test_media_manager import FakeReactor, offer_sdp


class RtcpRoundTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = FakeReactor()
        self.manager = MediaManager(self.reactor, public_host="203.0.113.1",
                                    port_range=(20000, 24000), rtcp_interval=1.0,
                                    random=random.Random(3))
        self.manager.startService()
        self.addCleanup(self.manager.stopService)
        self.turn = 1.0 / media.RTCP_SLICES

    def sessions(self, count):
        sessions = []
        for i in range(count):
            session = self.manager.new_session("c%d" % i)
            session.answer_offer(offer_sdp())
            session.start()
            sessions.append(session)
        return sessions

    def reports(self, sessions):
        """The RTCP packets sent so far, per session."""
        return [len(self.reactor.sent(s.local_port + 1)) for s in sessions]

    def test_spread_over_turns(self):
        """
        With many sessions, each turn of the loop reports at most
        ceil(sessions / RTCP_SLICES) of them, and after one interval every
        session reported exactly once.
        """
        count = 3 * media.RTCP_SLICES + 7
        sessions = self.sessions(count)
        per_turn = []
        before = sum(self.reports(sessions))
        for _ in range(media.RTCP_SLICES):
            self.reactor.advance(self.turn)
            now = sum(self.reports(sessions))
            per_turn.append(now - before)
            before = now
        self.assertLessEqual(max(per_turn), -(-count // media.RTCP_SLICES))
        self.assertEqual(self.reports(sessions), [1] * count)

    def test_lone_session_once_per_interval(self):
        """
        A single session reports once per interval, not once per turn.
        """
        [session] = self.sessions(1)
        for _ in range(3 * media.RTCP_SLICES):
            self.reactor.advance(self.turn)
        self.assertEqual(self.reports([session]), [3])

    def test_session_ended_during_round(self):
        """
        A session stopped before its turn in the round reports nothing more
        (it sent nothing yet, so not even a BYE: RFC 3550 6.3.7).
        """
        sessions = self.sessions(4)
        last = sessions[-1]
        sent_before = len(self.reactor.sent(last.local_port + 1))
        last.stop()
        self.assertEqual(len(self.reactor.sent(last.local_port + 1)), sent_before)
        for _ in range(media.RTCP_SLICES):
            self.reactor.advance(self.turn)
        self.assertEqual(self.reports(sessions[:3]), [1, 1, 1])
        self.assertEqual(len(self.reactor.sent(last.local_port + 1)), sent_before)
