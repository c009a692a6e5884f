"""
Tests for L{rvoip_twisted.service.transactions.TransactionManager}, driven
by L{twisted.internet.task.Clock} with a fake transport recording
C{(bytes, dest)}.
"""

import gc

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.internet.testing import EventLoggingObserver
from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.service.transactions import TransactionManager
from rvoip_twisted.sip.address import Destination
from rvoip_twisted.sip.parser import parse_message
from rvoip_twisted.sip.transaction import (
    ACCEPTED, COMPLETED, CONFIRMED, PROCEEDING, TERMINATED, TimerConfig,
)
from rvoip_twisted.testing import HeapClock
from tests.test_transaction import Recorder, make_request, make_response

SERVER = Destination("UDP", "192.0.2.2", 5060)


class FakeTransport:
    """Records what is sent: C{(bytes, dest)}, and when."""

    def __init__(self, clock):
        self.clock = clock
        self.sent = []
        self.times = []
        self.response_destinations = 0

    def send(self, data, dest):
        self.sent.append((data, dest))
        self.times.append(self.clock.seconds())

    def response_destination(self, request):
        self.response_destinations += 1
        via = request.top_via
        return Destination(via.transport, via.host, via.port or 5060)

    def request_destination(self, request):
        uri = request.uri
        return Destination("UDP", uri.host, uri.port or 5060)

    def messages(self):
        return [parse_message(data) for data, _ in self.sent]

    def statuses(self):
        return [getattr(m, "status", None) or m.method for m in self.messages()]


class RaisingTransport(FakeTransport):
    def send(self, data, dest):
        raise OSError("network is down")


class FakeTU:
    """Records the TU events; C{answer(request, txn)} runs on each new request."""

    def __init__(self, answer=None):
        self.answer = answer
        self.requests = []
        self.acks = []
        self.strays = []
        self.failures = []

    def request_received(self, request, txn):
        self.requests.append((request, txn))
        if self.answer is not None:
            self.answer(request, txn)

    def ack_received(self, ack):
        self.acks.append(ack)

    def stray_response(self, response):
        self.strays.append(response)

    def transaction_failed(self, txn, reason):
        self.failures.append((txn, reason))


def answer_with(*statuses):
    def answer(request, txn):
        for status in statuses:
            txn.respond(request.response(status, to_tag="srv"))
    return answer


class ManagerTestCase(SynchronousTestCase):

    config = None

    def setUp(self):
        self.clock = Clock()
        self.transport = FakeTransport(self.clock)
        self.tu = FakeTU()
        self.manager = TransactionManager(self.clock, self.transport, self.tu, self.config)
        self.owner = Recorder()

    def receive(self, msg):
        self.manager.message_received(msg, msg.source)

    def assertEmpty(self):
        self.assertEqual(self.manager.stats(), {"server": 0, "client": 0})
        self.assertEqual(self.manager._timers.pending(), 0)
        # The timer queue's delayed call may still be armed for an entry
        # cancelled since (TimerQueue.cancel): it runs once, to no effect.
        sent = len(self.transport.sent)
        for call in self.clock.getDelayedCalls():
            self.assertEqual(call.func, self.manager._timers._run)
            self.clock.advance(call.getTime() - self.clock.seconds())
        self.assertEqual(len(self.transport.sent), sent)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def timer_times(self):
        """The due times of the live timer entries, sorted."""
        return sorted(e[0] for e in self.manager._timers._heap if e[2] is not None)


# ---------------------------------------------------------------- client side

class ClientTransactionTests(ManagerTestCase):

    def test_invite_schedule(self):
        """
        An INVITE over UDP goes at 0 s and again at 0.5, 1.5, 3.5, 7.5, 15.5
        and 31.5 s (Timer A: 0.5, 1, 2, 4, 8, 16); Timer B at 32 s tells the
        owner and empties the table.
        """
        txn = self.manager.send_request(make_request(), self.owner)
        self.assertEqual(self.manager.stats(), {"server": 0, "client": 1})
        self.clock.pump([0.5] * 63)
        self.assertEqual(self.owner.events, [])
        self.clock.advance(0.5)
        self.assertEqual(self.transport.times, [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5])
        self.assertEqual([d for _, d in self.transport.sent], [SERVER] * 7)
        self.assertEqual(self.owner.events, [("timeout",)])
        self.assertEqual(txn.state, TERMINATED)
        self.assertEmpty()

    def test_one_timer_per_machine(self):
        """
        Each transaction has at most one timer entry, moved as its deadline
        changes, and all of them share one delayed call of the reactor.
        """
        requests = [make_request(branch="z9hG4bK%d" % i) for i in range(3)]
        for r in requests:
            self.manager.send_request(r, self.owner)
        self.assertEqual(self.timer_times(), [0.5, 0.5, 0.5])
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.receive(make_response(requests[0], 180))
        self.assertEqual(self.timer_times(), [0.5, 0.5])
        self.receive(make_response(requests[1], 486))
        self.assertEqual(self.timer_times(), [0.5, 32.0])
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [0.5])

    def test_non_invite_schedule(self):
        """Timer E doubles up to T2 (0.5, 1, 2, 4, 4, 4...) and Timer F ends it at 32 s."""
        self.manager.send_request(make_request("OPTIONS"), self.owner)
        self.clock.pump([0.5] * 64)
        self.assertEqual(self.transport.times,
                         [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
        self.assertEqual(self.owner.events, [("timeout",)])
        self.assertEmpty()

    def test_non_invite_proceeding(self):
        """After a 1xx the request is retransmitted every T2 until the final response."""
        request = make_request("BYE", to_tag="t1")
        self.manager.send_request(request, self.owner)
        self.clock.pump([0.5, 0.5])
        self.receive(make_response(request, 100))
        self.clock.pump([0.5] * 20)
        self.assertEqual(self.transport.times, [0, 0.5, 1.5, 5.5, 9.5])
        self.receive(make_response(request, 200))
        self.assertEqual(self.owner.events, [("response", 100), ("response", 200)])

    def test_timer_k(self):
        """A final response to a non-INVITE over UDP keeps the transaction T4 (Timer K)."""
        request = make_request("OPTIONS")
        self.manager.send_request(request, self.owner)
        self.clock.advance(0.1)
        self.receive(make_response(request, 200))
        self.receive(make_response(request, 200))
        self.assertEqual(self.owner.events, [("response", 200)])
        self.clock.advance(4.99)
        self.assertEqual(self.manager.stats()["client"], 1)
        self.clock.advance(0.01)
        self.assertEmpty()

    def test_timer_d_udp(self):
        """A 486 to an INVITE over UDP is ACKed and absorbed for 32 s (Timer D)."""
        request = make_request()
        txn = self.manager.send_request(request, self.owner)
        self.receive(make_response(request, 486))
        self.assertEqual(txn.state, COMPLETED)
        ack = self.transport.messages()[-1]
        self.assertEqual((ack.method, ack.top_via.branch), ("ACK", "z9hG4bKabc"))
        self.assertEqual(self.transport.sent[-1][1], SERVER)
        self.receive(make_response(request, 486))
        self.assertEqual(self.transport.statuses(), ["INVITE", "ACK", "ACK"])
        self.clock.advance(31.9)
        self.assertEqual(self.manager.stats()["client"], 1)
        self.clock.advance(0.1)
        self.assertEqual(self.owner.events, [("response", 486)])
        self.assertEmpty()

    def test_timer_m(self):
        """
        After a 2xx (RFC 6026 Accepted) every 2xx reaches the owner until
        Timer M at 64*T1; after that a 2xx is a stray response for the TU.
        """
        request = make_request()
        txn = self.manager.send_request(request, self.owner)
        self.receive(make_response(request, 200))
        self.assertEqual(txn.state, ACCEPTED)
        self.clock.advance(10)
        self.receive(make_response(request, 200))
        self.assertEqual(self.owner.events, [("response", 200), ("response", 200)])
        self.clock.advance(22)
        self.assertEmpty()
        self.receive(make_response(request, 200))
        self.assertEqual(len(self.owner.events), 2)
        self.assertEqual([r.status for r in self.tu.strays], [200])
        self.assertEqual(self.transport.statuses(), ["INVITE"])

    def test_tcp(self):
        """
        Over TCP: no retransmission; a final response ends the transaction
        at once (D, K = 0).
        """
        invite = make_request(transport="TCP")
        options = make_request("OPTIONS", transport="TCP", branch="z9hG4bKo")
        dest = Destination("TCP", "192.0.2.2", 5060)
        self.manager.send_request(invite, self.owner, dest)
        self.manager.send_request(options, self.owner, dest)
        self.clock.advance(10)
        self.assertEqual(self.transport.times, [0, 0])
        self.receive(make_response(invite, 404))
        self.receive(make_response(options, 200))
        self.assertEqual(self.transport.statuses(), ["INVITE", "OPTIONS", "ACK"])
        self.assertEqual(self.transport.sent[-1][1], dest)
        self.assertEmpty()

    def test_tcp_timer_b(self):
        """Over TCP Timer B still fires at 64*T1."""
        self.manager.send_request(make_request(transport="TCP"), self.owner)
        self.clock.advance(32)
        self.assertEqual(self.owner.events, [("timeout",)])
        self.assertEmpty()

    def test_branch_generated(self):
        """A request without a branch gets a fresh z9hG4bK branch; nothing else changes."""
        request = make_request("OPTIONS", branch=None)
        before = [(n, v) for n, v in request.headers if n != "Via"]
        txn = self.manager.send_request(request, self.owner)
        sent = self.transport.messages()[0]
        self.assertTrue(sent.top_via.branch.startswith("z9hG4bK"))
        self.assertEqual(txn.branch, sent.top_via.branch)
        self.assertEqual([(n, v) for n, v in sent.headers
                          if n not in ("Via", "Content-Length")],
                         [(n, v) for n, v in before if n != "Content-Length"])

    def test_explicit_dest(self):
        """An explicit dest wins over the transport's request_destination."""
        dest = Destination("UDP", "198.51.100.9", 5080)
        txn = self.manager.send_request(make_request("OPTIONS"), self.owner, dest)
        self.assertEqual(txn.dest, dest)
        self.assertEqual(self.transport.sent[0][1], dest)

    def test_duplicate_refused(self):
        """A second client transaction with the same branch and method is refused."""
        self.manager.send_request(make_request("OPTIONS"), self.owner)
        self.assertRaises(ValueError, self.manager.send_request,
                          make_request("OPTIONS"), self.owner)

    def test_ack_is_stateless(self):
        """ACK has no client transaction; send_stateless sends it (with a branch)."""
        ack = make_request("ACK", branch=None, to_tag="t1")
        self.assertRaises(ValueError, self.manager.send_request, ack, self.owner)
        self.manager.send_stateless(ack)
        sent = self.transport.messages()[0]
        self.assertEqual(sent.method, "ACK")
        self.assertTrue(sent.top_via.branch.startswith("z9hG4bK"))
        self.assertEqual(self.manager.stats(), {"server": 0, "client": 0})
        response = make_response(make_request(), 200)
        self.assertRaises(ValueError, self.manager.send_stateless, response)
        self.manager.send_stateless(response, SERVER)
        self.assertEqual(self.transport.statuses(), ["ACK", 200])

    def test_cancel(self):
        """
        The CANCEL built by the INVITE transaction runs in its own client
        transaction (same branch, method CANCEL); responses reach each one.
        """
        invite = make_request()
        txn = self.manager.send_request(invite, self.owner)
        self.receive(make_response(invite, 180))
        cancel_owner = Recorder()
        cancel = txn.cancel_request()
        ctxn = self.manager.send_request(cancel, cancel_owner, txn.dest)
        self.assertEqual(ctxn.branch, txn.branch)
        self.assertEqual(self.manager.stats()["client"], 2)
        self.receive(make_response(cancel, 200))
        self.receive(make_response(invite, 487))
        self.assertEqual(cancel_owner.events, [("response", 200)])
        self.assertEqual(self.owner.events, [("response", 180), ("response", 487)])
        self.assertEqual(self.transport.statuses(), ["INVITE", "CANCEL", "ACK"])

    def test_cancel_held_until_provisional(self):
        """A CANCEL sent before any provisional response waits for the first 1xx (RFC 3261 9.1)."""
        invite = make_request()
        txn = self.manager.send_request(invite, self.owner)
        ctxn = self.manager.send_request(txn.cancel_request(), Recorder())
        self.assertIsNone(ctxn.state)
        self.clock.advance(0.5)
        self.assertEqual(self.transport.statuses(), ["INVITE", "INVITE"])
        self.receive(make_response(invite, 100))
        self.assertEqual(self.transport.statuses(), ["INVITE", "INVITE", "CANCEL"])
        self.assertEqual(ctxn.state, "Trying")
        self.assertEqual(txn.timers, {"cancel": 32.5})

    def test_cancel_dropped_on_final(self):
        """
        A held CANCEL whose INVITE gets a final response first is never
        sent; its owner hears a timeout.
        """
        invite = make_request()
        txn = self.manager.send_request(invite, self.owner)
        cancel_owner = Recorder()
        self.manager.send_request(txn.cancel_request(), cancel_owner)
        self.receive(make_response(invite, 486))
        self.assertEqual(cancel_owner.events, [("timeout",)])
        self.assertEqual(self.transport.statuses(), ["INVITE", "ACK"])
        self.assertEqual(self.manager.stats()["client"], 1)
        self.clock.advance(32)
        self.assertEmpty()

    def test_cancel_dropped_on_timeout(self):
        """A held CANCEL ends with its INVITE when Timer B fires."""
        txn = self.manager.send_request(make_request(), self.owner)
        cancel_owner = Recorder()
        self.manager.send_request(txn.cancel_request(), cancel_owner)
        self.clock.pump([0.5] * 64)
        self.assertEqual(cancel_owner.events, [("timeout",)])
        self.assertNotIn("CANCEL", self.transport.statuses())
        self.assertEmpty()

    def test_cancel_unanswered(self):
        """
        If the INVITE gets no final response 64*T1 after its CANCEL, it
        times out (RFC 3261 9.1).
        """
        invite = make_request()
        txn = self.manager.send_request(invite, self.owner)
        self.receive(make_response(invite, 180))
        self.clock.advance(100)
        self.assertEqual(txn.state, PROCEEDING)
        self.manager.send_request(txn.cancel_request(), Recorder())
        self.clock.advance(31.9)
        self.assertEqual(txn.state, PROCEEDING)
        self.clock.advance(0.1)
        self.assertEqual(self.owner.events, [("response", 180), ("timeout",)])
        self.assertEmpty()

    def test_transport_error(self):
        """A transport error for a destination ends every transaction bound to it (503-like)."""
        a = self.manager.send_request(make_request(branch="z9hG4bKa"), self.owner)
        other = Recorder()
        b = self.manager.send_request(make_request("OPTIONS", branch="z9hG4bKb"), other,
                                      Destination("UDP", "198.51.100.1", 5060))
        self.manager.transport_error(SERVER, "ICMP port unreachable")
        self.assertEqual(self.owner.events, [("transport_error", "ICMP port unreachable")])
        self.assertEqual(a.state, TERMINATED)
        self.assertEqual(other.events, [])
        self.assertEqual(self.manager.stats(), {"server": 0, "client": 1})
        self.assertEqual(self.manager._timers.pending(), 1)
        self.assertIsNot(b.state, TERMINATED)

    def test_transport_raises(self):
        """A transport whose send raises is treated as a transport error; the failure is logged."""
        self.manager._transport = RaisingTransport(self.clock)
        txn = self.manager.send_request(make_request(), self.owner)
        self.assertEqual(self.owner.events, [("transport_error", "network is down")])
        self.assertEqual(txn.state, TERMINATED)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertEmpty()

    def test_owner_exception(self):
        """An owner that raises is logged; the transaction and the manager carry on."""
        class Bad(Recorder):
            def response_received(self, response, txn):
                raise ZeroDivisionError()
        request = make_request("OPTIONS")
        txn = self.manager.send_request(request, Bad())
        self.receive(make_response(request, 200))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(txn.state, COMPLETED)
        self.clock.advance(5)
        self.assertEmpty()


# ---------------------------------------------------------------- server side

class ServerTransactionTests(ManagerTestCase):

    def test_timer_100(self):
        """The 100 Trying goes out at exactly 200 ms when the TU has not answered."""
        self.receive(make_request())
        self.assertEqual(len(self.tu.requests), 1)
        self.clock.advance(0.199)
        self.assertEqual(self.transport.sent, [])
        self.clock.advance(0.001)
        self.assertEqual(self.transport.statuses(), [100])
        self.assertEqual(self.transport.times, [0.2])
        self.assertEqual(self.transport.sent[0][1], Destination("UDP", "192.0.2.1", 5060))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_no_100_when_tu_answers(self):
        """A TU that answers at once, or within 200 ms, gets no 100 Trying sent for it."""
        self.tu.answer = answer_with(180)
        self.receive(make_request())
        self.tu.answer = None
        self.receive(make_request(branch="z9hG4bKlater", call_id="c2"))
        _, txn = self.tu.requests[1]
        self.clock.callLater(0.15, txn.respond, txn.request.response(183, to_tag="x"))
        self.clock.advance(1)
        self.assertEqual(self.transport.statuses(), [180, 183])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_retransmission_absorbed(self):
        """An INVITE retransmission is absorbed: the TU sees it once, the last 1xx is resent."""
        self.tu.answer = answer_with(180)
        invite = make_request()
        self.receive(invite)
        self.receive(make_request())
        self.assertEqual(len(self.tu.requests), 1)
        self.assertEqual(self.transport.statuses(), [180, 180])
        self.assertEqual(self.transport.response_destinations, 1)

    def test_timer_g_h(self):
        """
        A 486 is retransmitted on Timer G (0.5, 1, 2, 4, 4...) until Timer H
        at 32 s, which tells the TU (transaction_failed) and empties the table.
        """
        self.tu.answer = answer_with(486)
        self.receive(make_request())
        self.clock.pump([0.5] * 64)
        self.assertEqual(self.transport.times,
                         [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
        self.assertEqual(self.tu.failures, [(self.tu.requests[0][1], "timeout")])
        self.assertEmpty()

    def test_timer_i(self):
        """The ACK stops Timer G; Timer I (T4) then ends the transaction; the TU sees no ACK."""
        self.tu.answer = answer_with(486)
        self.receive(make_request())
        txn = self.tu.requests[0][1]
        self.clock.advance(0.7)
        self.receive(make_request("ACK", to_tag="srv"))
        self.assertEqual(txn.state, CONFIRMED)
        self.clock.advance(4.99)
        self.assertEqual(self.manager.stats()["server"], 1)
        self.clock.advance(0.01)
        self.assertEqual(self.transport.statuses(), [486, 486])
        self.assertEqual(self.tu.acks, [])
        self.assertEmpty()

    def test_timer_j(self):
        """A non-INVITE final response is resent on retransmissions until Timer J at 32 s."""
        self.tu.answer = answer_with(200)
        self.receive(make_request("OPTIONS"))
        self.clock.advance(5)
        self.receive(make_request("OPTIONS"))
        self.assertEqual(self.transport.statuses(), [200, 200])
        self.assertEqual(len(self.tu.requests), 1)
        self.clock.advance(26.9)
        self.assertEqual(self.manager.stats()["server"], 1)
        self.clock.advance(0.1)
        self.assertEmpty()

    def test_timer_l_accepted(self):
        """
        After the TU's 2xx (RFC 6026 Accepted): INVITE retransmissions are
        absorbed silently, further 2xx are sent, ACKs (matching or not) reach
        the TU, and Timer L empties the table at 64*T1.
        """
        self.tu.answer = answer_with(180, 200)
        request = make_request()
        self.receive(request)
        txn = self.tu.requests[0][1]
        self.assertEqual(txn.state, ACCEPTED)
        self.clock.advance(0.5)
        self.receive(make_request())
        self.assertEqual(self.transport.statuses(), [180, 200])
        ok = request.response(200, to_tag="srv")
        txn.respond(ok)
        self.assertEqual(self.transport.statuses(), [180, 200, 200])
        self.receive(make_request("ACK", to_tag="srv"))
        self.receive(make_request("ACK", branch="z9hG4bKnew", to_tag="srv"))
        self.assertEqual(len(self.tu.acks), 2)
        self.clock.advance(31.5)
        self.assertEmpty()
        self.assertFalse(txn.respond(ok))

    def test_tcp(self):
        """Over TCP: no Timer G; a non-INVITE final and an ACKed 486 end at once (J, I = 0)."""
        self.tu.answer = answer_with(486)
        self.receive(make_request(transport="TCP"))
        self.clock.advance(10)
        self.assertEqual(self.transport.statuses(), [486])
        self.receive(make_request("ACK", transport="TCP", to_tag="srv"))
        self.tu.answer = answer_with(200)
        self.receive(make_request("OPTIONS", transport="TCP", branch="z9hG4bKo"))
        self.assertEqual(self.transport.statuses(), [486, 200])
        self.assertEqual(self.transport.sent[0][1], Destination("TCP", "192.0.2.1", 5060))
        self.assertEmpty()

    def test_cancel_matching(self):
        """
        A CANCEL arrives through request_received in its own transaction;
        find_invite_for_cancel gives the INVITE transaction with its branch
        and sent-by, and nothing for another branch or sent-by.
        """
        self.receive(make_request())
        self.receive(make_request("CANCEL"))
        (invite, itxn), (cancel, ctxn) = self.tu.requests
        self.assertEqual(cancel.method, "CANCEL")
        self.assertIsNot(ctxn, itxn)
        self.assertIs(self.manager.find_invite_for_cancel(cancel), itxn)
        self.assertIsNone(self.manager.find_invite_for_cancel(
            make_request("CANCEL", branch="z9hG4bKother")))
        self.assertIsNone(self.manager.find_invite_for_cancel(make_request("CANCEL", port=5999)))
        # The TU answers both; the INVITE then waits for its ACK.
        ctxn.respond(cancel.response(200, to_tag="srv"))
        itxn.respond(invite.response(487, to_tag="srv"))
        self.receive(make_request("ACK", to_tag="srv"))
        self.assertEqual(itxn.state, CONFIRMED)
        self.assertEqual(self.transport.statuses(), [200, 487])

    def test_rfc2543(self):
        """
        Requests without the magic cookie match on Request-URI, tags,
        Call-ID, CSeq and top Via; the ACK matches the INVITE whose
        response carried its To tag.
        """
        self.tu.answer = answer_with(404)
        invite = make_request(branch=None)
        self.receive(invite)
        self.receive(make_request(branch=None))
        self.assertEqual(len(self.tu.requests), 1)
        self.assertEqual(self.transport.statuses(), [404, 404])
        self.receive(make_request("ACK", branch=None, to_tag="wrong"))
        self.assertEqual(len(self.tu.acks), 1)
        txn = self.tu.requests[0][1]
        self.assertEqual(txn.state, COMPLETED)
        self.receive(make_request("ACK", branch=None, to_tag="srv"))
        self.assertEqual(txn.state, CONFIRMED)
        self.assertEqual(len(self.tu.acks), 1)

    def test_rfc2543_cancel(self):
        """An RFC 2543 CANCEL finds its INVITE."""
        self.receive(make_request(branch=None))
        cancel = make_request("CANCEL", branch=None)
        self.receive(cancel)
        self.assertEqual(len(self.tu.requests), 2)
        self.assertIs(self.manager.find_invite_for_cancel(cancel), self.tu.requests[0][1])

    def test_merged_request(self):
        """
        A request with no To tag, the From tag, Call-ID and CSeq of a live
        server transaction, but another branch, gets 482 from the manager;
        the TU never sees it, and its retransmission gets the 482 again.
        """
        self.receive(make_request())
        merged = make_request(branch="z9hG4bKfork", port=5062)
        self.receive(merged)
        self.assertEqual(len(self.tu.requests), 1)
        [m] = self.transport.messages()
        self.assertEqual(m.status, 482)
        self.assertIsNotNone(m.to_tag)
        self.assertEqual(self.transport.sent[0][1], Destination("UDP", "192.0.2.1", 5062))
        self.receive(make_request(branch="z9hG4bKfork", port=5062))
        self.assertEqual(self.transport.statuses(), [482, 482])
        self.assertEqual(self.manager.stats()["server"], 2)

    def test_not_merged(self):
        """Requests with a To tag, or after the first transaction ended, are not merged."""
        self.tu.answer = answer_with(200)
        self.receive(make_request("OPTIONS", to_tag="x"))
        self.receive(make_request("OPTIONS", to_tag="x", branch="z9hG4bKb2"))
        self.receive(make_request("OPTIONS", branch="z9hG4bKb4"))
        self.clock.advance(32)
        self.receive(make_request("OPTIONS", branch="z9hG4bKb3"))
        self.assertEqual(len(self.tu.requests), 4)
        self.assertEqual(self.transport.statuses(), [200] * 4)

    def test_tu_exception(self):
        """A TU that raises is logged; the manager answers 500 for it."""
        def answer(request, txn):
            raise ZeroDivisionError()
        self.tu.answer = answer
        self.receive(make_request())
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(self.transport.statuses(), [500])

    def test_tu_exception_after_answer(self):
        """A TU that raises after answering is only logged."""
        def answer(request, txn):
            txn.respond(request.response(200, to_tag="x"))
            raise ZeroDivisionError()
        self.tu.answer = answer
        self.receive(make_request("OPTIONS"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(self.transport.statuses(), [200])

    def test_no_tu(self):
        """Without a TU requests are answered 503."""
        self.manager.tu = None
        self.receive(make_request("OPTIONS"))
        self.assertEqual(self.transport.statuses(), [503])
        self.receive(make_response(make_request(), 200))    # a stray response: dropped

    def test_server_transport_error(self):
        """A transport error on a server transaction ends it and tells the TU."""
        self.tu.answer = answer_with(486)
        self.receive(make_request())
        self.manager.transport_error(Destination("UDP", "192.0.2.1", 5060), "refused")
        self.assertEqual(self.tu.failures, [(self.tu.requests[0][1], "refused")])
        self.assertEmpty()

    def test_stray_ack(self):
        """An ACK matching no transaction (the ACK for a 2xx) goes to the TU."""
        self.receive(make_request("ACK", to_tag="x"))
        self.assertEqual(len(self.tu.acks), 1)
        self.assertEmpty()


class AbsorbingTests(ManagerTestCase):
    """
    Server transactions that only absorb retransmissions (a non-INVITE one
    Completed, an INVITE one Accepted) are kept as plain tuples the garbage
    collector stops tracking, ended in batches by one timer entry.
    """

    def answered(self, method, branch, call_id="c1@192.0.2.1", raw_key=None):
        request = make_request(method, branch=branch, call_id=call_id)
        request.raw_key = raw_key
        self.receive(request)
        return request

    def test_untracked(self):
        """
        Each entry (in the table, the raw table and the merge table) is one
        tuple, untracked at the first collection of the youngest generation.
        Many at once are still as many entries, and one timer entry.
        """
        # The tables as in a running server: in use, and old (a dict is only
        # tracked again when a tracked value goes in, and then it is young).
        self.tu.answer = answer_with(180)
        self.answered("INVITE", "z9hG4bKlive", "live", raw_key=-1)
        gc.collect()
        self.tu.answer = answer_with(200)
        entries = []
        for i in range(50):
            self.answered("INVITE", "z9hG4bKi%d" % i, "i%d" % i, raw_key=i)
            self.answered("OPTIONS", "z9hG4bKo%d" % i, "o%d" % i, raw_key=1000 + i)
        gc.collect(0)
        self.assertEqual(self.manager.stats(), {"server": 101, "client": 0})
        for table in (self.manager._servers, self.manager._raw, self.manager._merge):
            for entry in table.values():
                if entry is self.tu.requests[0][1]:
                    continue                # the live one
                self.assertIs(type(entry), tuple)
                self.assertFalse(gc.is_tracked(entry), entry)
                entries.append(entry)
        self.assertEqual(len(entries), 300)    # 100, 100 raw, 100 merge (no To tag)
        # theirs (the live one, ringing, has no timer while the TU decides)
        self.assertEqual(self.manager._timers.pending(), 1)

    def test_retransmissions(self):
        """
        A non-INVITE one resends its final response, parsed or unparsed; an
        INVITE one drops the INVITE and gives an ACK to the TU; neither
        reaches the TU as a new request.
        """
        self.tu.answer = answer_with(200)
        self.answered("OPTIONS", "z9hG4bKo", raw_key=7)
        self.answered("INVITE", "z9hG4bKi", raw_key=8)
        self.assertEqual(self.transport.statuses(), [200, 200])
        self.clock.advance(10)
        self.answered("OPTIONS", "z9hG4bKo")
        self.assertTrue(self.manager.retransmission_received(7))
        self.answered("INVITE", "z9hG4bKi")
        self.assertTrue(self.manager.retransmission_received(8))
        self.assertFalse(self.manager.retransmission_received(9))
        self.receive(make_request("ACK", branch="z9hG4bKi", to_tag="srv"))
        self.assertEqual(self.transport.statuses(), [200, 200, 200, 200])
        self.assertEqual([d for _, d in self.transport.sent], [SERVER_SIDE] * 4)
        self.assertEqual(self.transport.sent[2][0], self.transport.sent[0][0])
        self.assertEqual(len(self.tu.requests), 2)
        self.assertEqual(len(self.tu.acks), 1)

    def test_merged_while_absorbing(self):
        """An INVITE answered 2xx still makes a merged copy (new branch) get 482."""
        self.tu.answer = answer_with(200)
        self.answered("INVITE", "z9hG4bKi")
        self.answered("INVITE", "z9hG4bKother")
        self.assertEqual(self.transport.statuses(), [200, 482])
        self.assertEqual(len(self.tu.requests), 1)

    def test_batched_end(self):
        """
        The first ends exactly at 64*T1; after it, the others end at most
        ABSORB_SLACK late and never early, several on one timer entry.
        """
        slack = self.manager.ABSORB_SLACK
        self.tu.answer = answer_with(200)
        starts = [0, 0.001, 0.003, slack * 3]
        for i, start in enumerate(starts):
            self.clock.advance(start - self.clock.seconds())
            self.answered("OPTIONS", "z9hG4bKo%d" % i)
        self.assertEqual(self.manager._timers.pending(), 1)

        def at(t, left):
            self.clock.advance(t - self.clock.seconds())
            self.assertEqual(self.manager.stats()["server"], left, t)

        at(32 - 0.0001, 4)
        at(32, 3)                       # the first, on time
        at(32 + slack * 0.9, 3)         # the next two wait for the slack...
        at(32 + slack * 1.1, 1)         # ...and end together
        at(32 + slack * 3 - 0.0001, 1)  # the last, due after the slack: not early
        at(32 + slack * 3, 0)
        self.assertEmpty()

    def test_transport_error_forgets(self):
        """A transport error towards its destination drops it; the TU hears nothing."""
        self.tu.answer = answer_with(200)
        self.answered("OPTIONS", "z9hG4bKo", raw_key=7)
        self.manager.transport_error(SERVER_SIDE, "refused")
        self.assertEqual(self.tu.failures, [])
        self.assertEqual(self.manager.stats()["server"], 0)
        self.assertEqual(self.manager._raw, {})
        self.clock.advance(32)
        self.assertEmpty()

    def test_shutdown_not_held(self):
        """stopService does not wait for them, and drops them."""
        self.tu.answer = answer_with(200)
        self.answered("OPTIONS", "z9hG4bKo")
        self.manager.startService()
        d = self.manager.stopService()
        self.assertIsNone(self.successResultOf(d))
        self.assertEmpty()
        self.assertEqual(len(self.manager._absorbing), 0)


#: where FakeTransport answers a request of make_request's
SERVER_SIDE = Destination("UDP", "192.0.2.1", 5060)


# ---------------------------------------------------------------- a UAC and a UAS

class PairTests(SynchronousTestCase):
    """Two managers connected back to back (no sockets)."""

    def setUp(self):
        self.clock = Clock()
        self.tu = FakeTU(lambda request, txn: answer_with(
            *((180, 200) if request.method == "INVITE" else (200,)))(request, txn))
        self.uac = TransactionManager(self.clock, _Link(self, "uas"), FakeTU())
        self.uas = TransactionManager(self.clock, _Link(self, "uac"), self.tu)

    def test_invite_exchange_logs_nothing(self):
        """
        An INVITE / 180 / 200 exchange, and an OPTIONS / 200, complete, and
        emit no log event on the way (nothing is formatted per message).
        """
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        owner = Recorder()
        self.uac.send_request(make_request(), owner)
        self.uac.send_request(make_request("OPTIONS", branch="z9hG4bKo"), owner)
        self.assertEqual(owner.events, [("response", 180), ("response", 200),
                                        ("response", 200)])
        self.assertEqual(list(events), [])
        self.clock.advance(32)
        self.assertEqual(self.uac.stats(), {"server": 0, "client": 0})
        self.assertEqual(self.uas.stats(), {"server": 0, "client": 0})


class _Link:
    """A transport handing what it sends to the other manager."""

    def __init__(self, case, peer):
        self.case = case
        self.peer = peer

    def send(self, data, dest):
        msg = parse_message(data)
        getattr(self.case, self.peer).message_received(msg, dest)

    def response_destination(self, request):
        return Destination("UDP", "192.0.2.1", 5060)

    def request_destination(self, request):
        return Destination("UDP", "192.0.2.2", 5060)


# ---------------------------------------------------------------- service and load

class ServiceTests(ManagerTestCase):

    def test_stop_empty(self):
        """Stopping with an empty table succeeds at once."""
        self.manager.startService()
        self.assertIsNone(self.successResultOf(self.manager.stopService()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_lingering_only(self):
        """
        Transactions that only absorb retransmissions (Timers D, I, J, K, L,
        M) do not hold the shutdown up: they are dropped at once.
        """
        self.manager.startService()
        request = make_request("OPTIONS")
        self.manager.send_request(request, self.owner)
        self.receive(make_response(request, 200))              # Completed: K
        self.tu.answer = answer_with(200)
        self.receive(make_request(branch="z9hG4bKin"))          # Accepted: L
        self.assertEqual(self.manager.stats(), {"server": 1, "client": 1})
        self.successResultOf(self.manager.stopService())
        self.assertEmpty()

    def test_stop_waits_for_busy(self):
        """stopService's Deferred fires once no transaction waits for a final response."""
        self.manager.startService()
        request = make_request("OPTIONS")
        self.manager.send_request(request, self.owner)
        self.receive(make_request("BYE", branch="z9hG4bKin", to_tag="x"))
        d = self.manager.stopService()
        self.clock.advance(1)
        self.assertNoResult(d)
        self.receive(make_response(request, 200))
        self.clock.advance(1)
        self.assertNoResult(d)                                  # the BYE is unanswered
        txn = self.tu.requests[0][1]
        txn.respond(txn.request.response(200))
        self.clock.advance(0.05)
        self.successResultOf(d)
        self.assertEqual(self.owner.events, [("response", 200)])
        self.assertEmpty()

    def test_stop_waits_for_ack(self):
        """An INVITE server transaction retransmitting a 486 holds the shutdown until its ACK."""
        self.manager.startService()
        self.tu.answer = answer_with(486)
        self.receive(make_request())
        d = self.manager.stopService()
        self.clock.pump([0.5] * 4)
        self.assertNoResult(d)
        self.receive(make_request("ACK", to_tag="srv"))
        self.clock.advance(0.05)
        self.successResultOf(d)
        self.assertEmpty()

    def test_stop_grace_period(self):
        """
        After the grace period the remaining transactions are dropped and
        their timers cancelled.
        """
        self.manager.startService()
        request = make_request()
        self.manager.send_request(request, self.owner)
        self.receive(make_response(request, 180))          # Proceeding: no timer ends it
        self.tu.answer = answer_with(486)
        self.receive(make_request(branch="z9hG4bKin", call_id="c2"))
        d = self.manager.stopService()
        self.clock.pump([0.5] * 9)
        self.assertNoResult(d)
        self.clock.advance(0.5)
        self.successResultOf(d)
        self.assertEmpty()
        self.assertEqual(self.owner.events, [("response", 180)])


class LoadTests(SynchronousTestCase):

    N = 10000

    def test_table_empties(self):
        """
        10,000 transactions (2,500 of each machine: INVITE client answered
        486, non-INVITE client answered 200, INVITE server answering 486
        then ACKed, non-INVITE server answering 200) are all in the table at
        once; once their D/I/J/K timers expire the table is empty and no
        timer is left (one delayed call served them all).
        """
        clock = HeapClock()
        transport = FakeTransport(clock)
        tu = FakeTU()
        manager = TransactionManager(clock, transport, tu)
        owner = Recorder()
        n = self.N // 4
        for i in range(n):
            invite = make_request(branch="z9hG4bKci%d" % i, call_id="ci%d" % i)
            manager.send_request(invite, owner)
            manager.message_received(make_response(invite, 486), None)
            options = make_request("OPTIONS", branch="z9hG4bKco%d" % i, call_id="co%d" % i)
            manager.send_request(options, owner)
            manager.message_received(make_response(options, 200), None)
        tu.answer = answer_with(486)
        for i in range(n):
            manager.message_received(
                make_request(branch="z9hG4bKsi%d" % i, call_id="si%d" % i), None)
            manager.message_received(
                make_request("ACK", branch="z9hG4bKsi%d" % i, call_id="si%d" % i,
                             to_tag="srv"), None)
        tu.answer = answer_with(200)
        for i in range(n):
            manager.message_received(
                make_request("OPTIONS", branch="z9hG4bKso%d" % i, call_id="so%d" % i), None)
        self.assertEqual(manager.stats(), {"server": 2 * n, "client": 2 * n})
        # one entry per transaction, but the n OPTIONS ones that only absorb
        # retransmissions (Completed, Timer J) share one
        self.assertEqual(manager._timers.pending(), 3 * n + 1)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        self.assertEqual(len(tu.requests), 2 * n)
        self.assertEqual(len(owner.events), 2 * n)
        clock.advance(5)            # Timers K and I
        self.assertEqual(manager.stats(), {"server": n, "client": n})
        clock.advance(27)           # Timers D and J
        self.assertEqual(manager.stats(), {"server": 0, "client": 0})
        self.assertEqual(manager._timers.pending(), 0)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(manager._merge, {})


class SmallT1Tests(ManagerTestCase):
    """A configured T1/T2/T4."""

    config = TimerConfig(t1=0.05, t2=0.4, t4=0.5, timer_d=0.5)

    def test_schedule(self):
        """Retransmissions and timeouts follow the configuration."""
        self.manager.send_request(make_request(), self.owner)
        self.clock.pump([0.05] * 70)
        self.assertEqual(self.owner.events, [("timeout",)])
        self.assertEqual(len(self.transport.sent), 7)
        self.assertEmpty()
