"""
Tests for L{rvoip_twisted.sip.transaction}: the four RFC 3261 section 17
machines (with RFC 6026), driven with plain float times, and the matching
keys.
"""

from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.sip.parser import parse_message
from rvoip_twisted.sip.transaction import (
    ACCEPTED, CALLING, COMPLETED, CONFIRMED, PROCEEDING, TERMINATED, TRYING,
    InviteClientTransaction, InviteServerTransaction,
    NonInviteClientTransaction, NonInviteServerTransaction, TimerConfig,
    TransactionStateError, ack_keys, client_key, ensure_branch, is_rfc3261,
    make_ack, make_cancel, server_key,
)


# ---------------------------------------------------------------- helpers (also used by
# tests/test_transaction_manager.py and the loopback test)

def make_request(method="INVITE", branch="z9hG4bKabc", transport="UDP",
                 host="192.0.2.1", port=5060, uri="sip:bob@192.0.2.2",
                 to_tag=None, from_tag="f1", call_id="c1@192.0.2.1", cseq=1,
                 routes=(), extra=()):
    """A request as it comes off the wire (built as text, then parsed)."""
    via = "SIP/2.0/%s %s:%d" % (transport, host, port)
    if branch:
        via += ";branch=" + branch
    to = "<sip:bob@example.com>" + (";tag=" + to_tag if to_tag else "")
    lines = ["%s %s SIP/2.0" % (method, uri), "Via: " + via, "Max-Forwards: 70"]
    lines.extend("Route: " + r for r in routes)
    lines.extend([
        "From: Alice <sip:alice@example.com>;tag=" + from_tag,
        "To: " + to,
        "Call-ID: " + call_id,
        "CSeq: %d %s" % (cseq, method),
    ])
    lines.extend(extra)
    lines.extend(["Content-Length: 0", "", ""])
    return parse_message("\r\n".join(lines).encode())


def make_response(request, status, to_tag="t1"):
    """The response a peer would send, parsed from its bytes."""
    return parse_message(request.response(status, to_tag=to_tag).to_bytes())


def wire(data):
    """Parse sent bytes back into a message."""
    return parse_message(data)


class Recorder:
    """An owner that records the machine's events."""

    def __init__(self):
        self.events = []

    def response_received(self, response, txn):
        self.events.append(("response", response.status))

    def transaction_timeout(self, txn):
        self.events.append(("timeout",))

    def transport_error(self, txn, reason):
        self.events.append(("transport_error", reason))

    def ack_received(self, ack, txn):
        self.events.append(("ack", ack.method))

    def transaction_terminated(self, txn):
        self.events.append(("terminated",))


class Harness:
    """
    A machine with a recording owner and send; C{run(until)} fires its
    timers in order, recording the time of every send.
    """

    def __init__(self, cls, request, config=None):
        self.owner = Recorder()
        self.sent = []
        self.times = []
        self.now = 0.0
        self.txn = cls(request, self.owner, self._send, config)

    def _send(self, data):
        self.sent.append(data)
        self.times.append(self.now)

    def run(self, until=1000.0):
        txn = self.txn
        while txn.deadline is not None and txn.deadline <= until:
            self.now = txn.deadline
            txn.handle_timer(self.now)
        self.now = until

    @property
    def events(self):
        return self.owner.events


# ---------------------------------------------------------------- config

class TimerConfigTests(SynchronousTestCase):

    def test_defaults(self):
        """T1, T2, T4 default to 0.5, 4 and 5 s; 64*T1 is 32 s."""
        c = TimerConfig()
        self.assertEqual((c.t1, c.t2, c.t4, c.timer_d, c.timer_100),
                         (0.5, 4.0, 5.0, 32.0, 0.2))
        self.assertEqual(c.timeout, 32.0)

    def test_bad_values(self):
        """T1 above T2, or non-positive timers, are refused."""
        self.assertRaises(ValueError, TimerConfig, t1=5, t2=4)
        self.assertRaises(ValueError, TimerConfig, t1=0)
        self.assertRaises(ValueError, TimerConfig, t4=0)


# ---------------------------------------------------------------- INVITE client

class InviteClientTests(SynchronousTestCase):

    def setUp(self):
        self.request = make_request(routes=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
        self.h = Harness(InviteClientTransaction, self.request)
        self.h.txn.start(0.0)

    def test_retransmission_schedule(self):
        """
        Over UDP the INVITE is retransmitted on Timer A at intervals 0.5, 1,
        2, 4, 8, 16 s (at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s) until Timer B
        at 32 s times the transaction out.
        """
        h = self.h
        self.assertEqual(h.txn.state, CALLING)
        self.assertEqual(h.txn.timers, {"A": 0.5, "B": 32.0})
        h.run()
        self.assertEqual(h.times, [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5])
        self.assertEqual(h.events, [("timeout",), ("terminated",)])
        self.assertEqual(h.txn.state, TERMINATED)
        self.assertIsNone(h.txn.deadline)

    def test_retransmission_bytes_reused(self):
        """The INVITE is serialised once: every retransmission is the same bytes object."""
        h = self.h
        h.run(2.0)
        self.assertEqual(len(h.sent), 3)
        self.assertIs(h.sent[1], h.sent[0])
        self.assertIs(h.sent[2], h.sent[0])
        self.assertEqual(wire(h.sent[0]).method, "INVITE")

    def test_provisional(self):
        """A 1xx moves Calling to Proceeding, reaches the owner and stops Timers A and B."""
        h = self.h
        h.txn.receive_response(make_response(self.request, 180), 0.2)
        self.assertEqual(h.txn.state, PROCEEDING)
        self.assertEqual(h.events, [("response", 180)])
        self.assertIsNone(h.txn.deadline)
        h.txn.receive_response(make_response(self.request, 183), 1.0)
        self.assertEqual(h.events, [("response", 180), ("response", 183)])
        self.assertEqual(len(h.sent), 1)

    def test_late_retransmission_timer(self):
        """A timer handled late sends once and keeps the schedule from the late time."""
        h = self.h
        h.txn.handle_timer(3.0)
        self.assertEqual(len(h.sent), 2)
        self.assertEqual(h.txn.timers["A"], 4.0)

    def test_non2xx_ack(self):
        """
        A 486 moves to Completed: the transaction sends the ACK itself, with
        the INVITE's Request-URI, top Via (same branch), Route headers, From
        and Call-ID, the response's To (with its tag), and CSeq 1 ACK.
        """
        h = self.h
        h.txn.receive_response(make_response(self.request, 486, to_tag="xyz"), 0.1)
        self.assertEqual(h.txn.state, COMPLETED)
        self.assertEqual(h.events, [("response", 486)])
        ack = wire(h.sent[-1])
        self.assertEqual(ack.method, "ACK")
        self.assertEqual(ack.uri, self.request.uri)
        self.assertEqual(len(ack.vias), 1)
        self.assertEqual(ack.top_via.branch, "z9hG4bKabc")
        self.assertEqual(ack.get_all("Route"),
                         ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"])
        self.assertEqual(ack.from_tag, "f1")
        self.assertEqual(ack.to_tag, "xyz")
        self.assertEqual(ack.call_id, self.request.call_id)
        self.assertEqual(tuple(ack.cseq), (1, "ACK"))
        self.assertEqual(ack.body, b"")

    def test_non2xx_retransmission_reacked(self):
        """A retransmitted final response is ACKed again and not passed up."""
        h = self.h
        resp = make_response(self.request, 486)
        h.txn.receive_response(resp, 0.1)
        h.txn.receive_response(resp, 1.0)
        self.assertEqual(len(h.sent), 3)
        self.assertIs(h.sent[2], h.sent[1])
        self.assertEqual(h.events, [("response", 486)])

    def test_timer_d_udp(self):
        """Over UDP Timer D keeps the Completed state for 32 s, then terminates."""
        h = self.h
        h.txn.receive_response(make_response(self.request, 404), 1.0)
        self.assertEqual(h.txn.timers, {"D": 33.0})
        h.run(32.9)
        self.assertEqual(h.txn.state, COMPLETED)
        h.run(33.0)
        self.assertEqual(h.txn.state, TERMINATED)
        self.assertEqual(h.events, [("response", 404), ("terminated",)])

    def test_2xx_accepted(self):
        """
        A 2xx moves to Accepted (RFC 6026): no ACK from the transaction,
        every 2xx (other forks, retransmissions) passed up until Timer M at
        64*T1.
        """
        h = self.h
        h.txn.receive_response(make_response(self.request, 180), 0.1)
        h.txn.receive_response(make_response(self.request, 200, "a"), 1.0)
        self.assertEqual(h.txn.state, ACCEPTED)
        self.assertEqual(h.txn.timers, {"M": 33.0})
        h.txn.receive_response(make_response(self.request, 200, "a"), 2.0)
        h.txn.receive_response(make_response(self.request, 200, "b"), 3.0)
        h.txn.receive_response(make_response(self.request, 183), 3.0)
        h.txn.receive_response(make_response(self.request, 486), 3.0)
        self.assertEqual(len(h.sent), 1)
        self.assertEqual(h.events, [("response", 180)] + [("response", 200)] * 3)
        h.run()
        self.assertEqual(h.now, 1000.0)
        self.assertEqual(h.events[-1], ("terminated",))
        self.assertEqual(h.txn.state, TERMINATED)

    def test_timer_b_only_in_calling(self):
        """Timer B does not fire in Proceeding: the transaction waits for the final response."""
        h = self.h
        h.txn.receive_response(make_response(self.request, 100), 0.1)
        h.run(100.0)
        self.assertEqual(h.txn.state, PROCEEDING)
        self.assertEqual(h.events, [("response", 100)])

    def test_cancel_request(self):
        """
        The CANCEL has the INVITE's Request-URI, Call-ID, To, From, CSeq
        number, Route headers and a single Via with the same branch.
        """
        cancel = wire(self.h.txn.cancel_request().to_bytes())
        self.assertEqual(cancel.method, "CANCEL")
        self.assertEqual(cancel.uri, self.request.uri)
        self.assertEqual(cancel.call_id, self.request.call_id)
        self.assertEqual(cancel.get("To"), self.request.get("To"))
        self.assertEqual(cancel.get("From"), self.request.get("From"))
        self.assertEqual(tuple(cancel.cseq), (1, "CANCEL"))
        self.assertEqual([str(v) for v in cancel.vias], [str(self.request.top_via)])
        self.assertEqual(cancel.get_all("Route"), self.request.get_all("Route"))
        self.assertEqual(client_key(cancel), ("z9hG4bKabc", "CANCEL"))

    def test_cancel_sent_gives_up(self):
        """After a CANCEL, no final response within 64*T1 times the INVITE out (RFC 3261 9.1)."""
        h = self.h
        h.txn.receive_response(make_response(self.request, 180), 0.1)
        h.txn.cancel_sent(10.0)
        self.assertEqual(h.txn.timers, {"cancel": 42.0})
        h.run()
        self.assertEqual(h.events, [("response", 180), ("timeout",), ("terminated",)])

    def test_cancel_then_487(self):
        """The 487 after a CANCEL completes the INVITE normally (ACK, Timer D)."""
        h = self.h
        h.txn.receive_response(make_response(self.request, 180), 0.1)
        h.txn.cancel_sent(1.0)
        h.txn.receive_response(make_response(self.request, 487), 1.2)
        self.assertEqual(h.txn.timers, {"D": 33.2})
        self.assertEqual(wire(h.sent[-1]).method, "ACK")

    def test_transport_error(self):
        """A transport error ends the transaction and tells the owner (RFC 3261 17.1.4)."""
        h = self.h
        h.txn.transport_error("ICMP unreachable")
        self.assertEqual(h.events, [("transport_error", "ICMP unreachable"), ("terminated",)])
        self.assertIsNone(h.txn.deadline)
        h.txn.transport_error("again")
        self.assertEqual(len(h.events), 2)

    def test_tcp(self):
        """Over TCP: no Timer A, Timer B still 64*T1, Timer D zero (ACK, then Terminated)."""
        request = make_request(transport="TCP")
        h = Harness(InviteClientTransaction, request)
        h.txn.start(0.0)
        self.assertEqual(h.txn.timers, {"B": 32.0})
        h.txn.receive_response(make_response(request, 503), 1.0)
        self.assertEqual(wire(h.sent[-1]).method, "ACK")
        self.assertEqual(h.txn.state, TERMINATED)
        self.assertEqual(h.events, [("response", 503), ("terminated",)])

    def test_tcp_timeout(self):
        """Over TCP the INVITE is sent once and Timer B fires at 32 s."""
        h = Harness(InviteClientTransaction, make_request(transport="TCP"))
        h.txn.start(0.0)
        h.run()
        self.assertEqual(h.times, [0.0])
        self.assertEqual(h.events, [("timeout",), ("terminated",)])

    def test_small_t1(self):
        """The schedule follows a configured T1."""
        h = Harness(InviteClientTransaction, make_request(), TimerConfig(t1=0.25, t2=2.0))
        h.txn.start(0.0)
        h.run()
        self.assertEqual(h.times, [0.0, 0.25, 0.75, 1.75, 3.75, 7.75, 15.75])

    def test_not_invite(self):
        """Only INVITEs make INVITE client transactions."""
        self.assertRaises(ValueError, InviteClientTransaction,
                          make_request("OPTIONS"), Recorder(), print)


# ---------------------------------------------------------------- non-INVITE client

class NonInviteClientTests(SynchronousTestCase):

    def setUp(self):
        self.request = make_request("OPTIONS")
        self.h = Harness(NonInviteClientTransaction, self.request)
        self.h.txn.start(0.0)

    def test_retransmission_schedule(self):
        """
        Timer E doubles from T1 and is capped at T2: intervals 0.5, 1, 2, 4,
        4, 4...; Timer F at 32 s times out.
        """
        h = self.h
        self.assertEqual(h.txn.state, TRYING)
        h.run()
        self.assertEqual(h.times, [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5,
                                   23.5, 27.5, 31.5])
        self.assertEqual(h.events, [("timeout",), ("terminated",)])

    def test_proceeding_retransmits_at_t2(self):
        """In Proceeding the request is retransmitted every T2."""
        h = self.h
        h.run(0.6)
        h.txn.receive_response(make_response(self.request, 100), 0.6)
        self.assertEqual(h.txn.state, PROCEEDING)
        h.run(14.0)
        self.assertEqual(h.times, [0.0, 0.5, 1.5, 5.5, 9.5, 13.5])
        self.assertEqual(h.events, [("response", 100)])

    def test_final_timer_k(self):
        """A final response moves to Completed; retransmissions are absorbed; Timer K is T4."""
        h = self.h
        h.run(1.0)
        resp = make_response(self.request, 200)
        h.txn.receive_response(resp, 1.0)
        self.assertEqual(h.txn.state, COMPLETED)
        self.assertEqual(h.txn.timers, {"K": 6.0})
        h.txn.receive_response(resp, 2.0)
        h.run(5.9)
        self.assertEqual(h.txn.state, COMPLETED)
        h.run(6.0)
        self.assertEqual(h.events, [("response", 200), ("terminated",)])
        self.assertEqual(len(h.sent), 2)

    def test_tcp(self):
        """Over TCP: no Timer E, Timer F at 32 s, Timer K zero."""
        request = make_request("REGISTER", transport="TCP")
        h = Harness(NonInviteClientTransaction, request)
        h.txn.start(0.0)
        self.assertEqual(h.txn.timers, {"F": 32.0})
        h.txn.receive_response(make_response(request, 200), 0.1)
        self.assertEqual(h.events, [("response", 200), ("terminated",)])
        self.assertEqual(h.times, [0.0])

    def test_custom_t2(self):
        """The cap follows a configured T2."""
        h = Harness(NonInviteClientTransaction, make_request("BYE"), TimerConfig(t2=1.0))
        h.txn.start(0.0)
        h.run(5.0)
        self.assertEqual(h.times, [0.0, 0.5, 1.5, 2.5, 3.5, 4.5])

    def test_refuses_invite_and_ack(self):
        """INVITE and ACK make no non-INVITE client transaction."""
        for method in ("INVITE", "ACK"):
            self.assertRaises(ValueError, NonInviteClientTransaction,
                              make_request(method), Recorder(), print)


# ---------------------------------------------------------------- INVITE server

class InviteServerTests(SynchronousTestCase):

    def setUp(self):
        self.request = make_request()
        self.h = Harness(InviteServerTransaction, self.request)
        self.h.txn.start(0.0)

    def test_timer_100(self):
        """With no answer from the TU, the transaction sends 100 Trying at exactly 0.2 s."""
        h = self.h
        self.assertEqual(h.txn.state, PROCEEDING)
        self.assertEqual(h.txn.deadline, 0.2)
        h.txn.handle_timer(0.19999)
        self.assertEqual(h.sent, [])
        h.txn.handle_timer(0.2)
        trying = wire(h.sent[0])
        self.assertEqual(trying.status, 100)
        self.assertIsNone(trying.to_tag)
        self.assertEqual(trying.top_via.branch, "z9hG4bKabc")
        self.assertIsNone(h.txn.deadline)

    def test_no_100_when_tu_answers_first(self):
        """A response from the TU within 200 ms cancels Timer 100."""
        h = self.h
        h.txn.respond(self.request.response(180, to_tag="u"), 0.1)
        self.assertIsNone(h.txn.deadline)
        h.run(10.0)
        self.assertEqual([wire(d).status for d in h.sent], [180])

    def test_retransmission_resends_last_provisional(self):
        """An INVITE retransmission in Proceeding gets the last provisional response again."""
        h = self.h
        h.txn.respond(self.request.response(180, to_tag="u"), 0.1)
        h.txn.respond(self.request.response(183, to_tag="u"), 0.2)
        h.txn.receive_request(self.request, 0.5)
        self.assertEqual([wire(d).status for d in h.sent], [180, 183, 183])
        self.assertIs(h.sent[2], h.sent[1])
        self.assertEqual(h.events, [])

    def test_early_retransmission_sends_100(self):
        """A retransmission before Timer 100 and before any provisional gets 100 Trying at once."""
        h = self.h
        h.txn.receive_request(self.request, 0.05)
        self.assertEqual([wire(d).status for d in h.sent], [100])
        self.assertIsNone(h.txn.deadline)
        h.txn.receive_request(self.request, 0.5)
        self.assertEqual([wire(d).status for d in h.sent], [100, 100])

    def test_timer_g_h(self):
        """
        A 486 is retransmitted on Timer G (0.5, 1, 2, 4, 4, 4... capped at
        T2) until Timer H at 64*T1, which reports a timeout.
        """
        h = self.h
        h.txn.respond(self.request.response(486, to_tag="u"), 0.0)
        self.assertEqual(h.txn.state, COMPLETED)
        self.assertEqual(h.txn.timers, {"G": 0.5, "H": 32.0})
        h.run()
        self.assertEqual(h.times, [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5,
                                   23.5, 27.5, 31.5])
        self.assertTrue(all(d is h.sent[0] for d in h.sent))
        self.assertEqual(h.events, [("timeout",), ("terminated",)])

    def test_completed_retransmission(self):
        """An INVITE retransmission in Completed gets the final response again."""
        h = self.h
        h.txn.respond(self.request.response(404, to_tag="u"), 0.0)
        h.txn.receive_request(self.request, 0.2)
        self.assertEqual([wire(d).status for d in h.sent], [404, 404])

    def test_ack_confirmed_timer_i(self):
        """The ACK moves Completed to Confirmed; ACKs and INVITEs are absorbed; Timer I is T4."""
        h = self.h
        h.txn.respond(self.request.response(404, to_tag="u"), 0.0)
        h.run(0.7)
        ack = make_request("ACK", to_tag="u")
        h.txn.receive_request(ack, 0.7)
        self.assertEqual(h.txn.state, CONFIRMED)
        self.assertEqual(h.txn.timers, {"I": 5.7})
        h.txn.receive_request(ack, 1.0)
        h.txn.receive_request(self.request, 1.0)
        self.assertEqual(len(h.sent), 2)      # the 404 and its Timer G copy at 0.5
        h.run()
        self.assertEqual(h.events, [("terminated",)])
        self.assertEqual(h.now, 1000.0)

    def test_accepted(self):
        """
        A 2xx moves to Accepted (RFC 6026): INVITE retransmissions are
        absorbed silently, ACKs go to the owner, further 2xx are sent, and
        Timer L ends it at 64*T1.
        """
        h = self.h
        ok = self.request.response(200, to_tag="u")
        h.txn.respond(ok, 0.1)
        self.assertEqual(h.txn.state, ACCEPTED)
        self.assertEqual(h.txn.timers, {"L": 32.1})
        h.txn.receive_request(self.request, 0.6)
        self.assertEqual(len(h.sent), 1)
        h.txn.respond(ok, 0.6)
        self.assertEqual(len(h.sent), 2)
        self.assertEqual(h.sent[1], h.sent[0])
        self.assertIsNone(h.txn.request)            # released once the 2xx went out
        self.assertIsNone(h.txn.last_response)
        h.txn.receive_request(make_request("ACK", to_tag="u"), 0.7)
        self.assertEqual(h.events, [("ack", "ACK")])
        self.assertRaises(TransactionStateError, h.txn.respond,
                          self.request.response(180, to_tag="u"), 1.0)
        self.assertRaises(TransactionStateError, h.txn.respond,
                          self.request.response(486, to_tag="u"), 1.0)
        h.run()
        self.assertEqual(h.events, [("ack", "ACK"), ("terminated",)])
        self.assertFalse(h.txn.respond(ok, 40.0))

    def test_accepted_absorbing(self):
        """
        Accepted is a state that only absorbs retransmissions (a manager may
        keep it as data), and a 2xx from the TU once Timer L is due ends it
        even if no one ran the timer: nothing is sent.
        """
        h = self.h
        self.assertFalse(h.txn.absorbing)
        ok = self.request.response(200, to_tag="u")
        h.txn.respond(ok, 0.1)
        self.assertTrue(h.txn.absorbing)
        self.assertTrue(h.txn.respond(ok, 32.0))
        self.assertEqual(len(h.sent), 2)
        self.assertEqual(h.events, [])
        self.assertFalse(h.txn.respond(ok, 32.1))
        self.assertEqual(len(h.sent), 2)
        self.assertEqual(h.txn.state, TERMINATED)
        self.assertEqual(h.events, [("terminated",)])
        self.assertIsNone(h.txn.deadline)
        self.assertFalse(h.txn.absorbing)

    def test_second_final_refused(self):
        """A final response after a non-2xx final is a TU error."""
        h = self.h
        h.txn.respond(self.request.response(486, to_tag="u"), 0.0)
        self.assertRaises(TransactionStateError, h.txn.respond,
                          self.request.response(200, to_tag="u"), 0.1)
        self.assertTrue(h.txn.final_sent)

    def test_tcp(self):
        """Over TCP: no Timer G, Timer H 64*T1, Timer I zero (the ACK terminates)."""
        request = make_request(transport="TCP")
        h = Harness(InviteServerTransaction, request)
        h.txn.start(0.0)
        h.txn.respond(request.response(486, to_tag="u"), 0.0)
        self.assertEqual(h.txn.timers, {"H": 32.0})
        h.txn.receive_request(make_request("ACK", transport="TCP", to_tag="u"), 0.1)
        self.assertEqual(h.txn.state, TERMINATED)
        self.assertEqual(h.events, [("terminated",)])

    def test_tcp_timer_100(self):
        """Timer 100 does not depend on the transport."""
        request = make_request(transport="TCP")
        h = Harness(InviteServerTransaction, request)
        h.txn.start(0.0)
        self.assertEqual(h.txn.deadline, 0.2)

    def test_transport_error(self):
        """A transport error ends the transaction and tells the owner."""
        h = self.h
        h.txn.transport_error("refused")
        self.assertEqual(h.events, [("transport_error", "refused"), ("terminated",)])
        self.assertFalse(h.txn.respond(self.request.response(180), 1.0))

    def test_matches_ack_rfc2543(self):
        """An RFC 2543 ACK matches only with the To tag of the final response sent."""
        request = make_request(branch=None)
        h = Harness(InviteServerTransaction, request)
        h.txn.start(0.0)
        ack = make_request("ACK", branch=None, to_tag="u")
        self.assertFalse(h.txn.matches_ack(ack))
        h.txn.respond(request.response(404, to_tag="u"), 0.0)
        self.assertTrue(h.txn.matches_ack(ack))
        self.assertFalse(h.txn.matches_ack(make_request("ACK", branch=None, to_tag="v")))


# ---------------------------------------------------------------- non-INVITE server

class NonInviteServerTests(SynchronousTestCase):

    def setUp(self):
        self.request = make_request("BYE", to_tag="u")
        self.h = Harness(NonInviteServerTransaction, self.request)
        self.h.txn.start(0.0)

    def test_trying_absorbs(self):
        """In Trying a retransmission is absorbed; no 100 is sent by the transaction."""
        h = self.h
        self.assertEqual(h.txn.state, TRYING)
        self.assertIsNone(h.txn.deadline)
        h.txn.receive_request(self.request, 0.5)
        self.assertEqual(h.sent, [])

    def test_proceeding_resends(self):
        """In Proceeding a retransmission gets the last provisional response."""
        h = self.h
        h.txn.respond(self.request.response(100), 0.1)
        self.assertEqual(h.txn.state, PROCEEDING)
        h.txn.receive_request(self.request, 0.5)
        self.assertEqual([wire(d).status for d in h.sent], [100, 100])

    def test_completed_timer_j(self):
        """The final response is resent on each retransmission until Timer J at 64*T1."""
        h = self.h
        h.txn.respond(self.request.response(200), 1.0)
        self.assertEqual(h.txn.state, COMPLETED)
        self.assertEqual(h.txn.timers, {"J": 33.0})
        h.txn.receive_request(self.request, 2.0)
        self.assertEqual([wire(d).status for d in h.sent], [200, 200])
        self.assertIs(h.sent[1], h.sent[0])
        self.assertTrue(h.txn.absorbing)            # Completed only absorbs
        h.run(32.9)
        self.assertEqual(h.txn.state, COMPLETED)
        h.run(33.0)
        self.assertEqual(h.events, [("terminated",)])
        self.assertFalse(h.txn.absorbing)

    def test_second_final_refused(self):
        """A second final response is a TU error."""
        h = self.h
        h.txn.respond(self.request.response(200), 0.0)
        self.assertRaises(TransactionStateError, h.txn.respond,
                          self.request.response(500), 0.1)

    def test_tcp(self):
        """Over TCP Timer J is zero: the final response terminates the transaction."""
        request = make_request("OPTIONS", transport="TCP")
        h = Harness(NonInviteServerTransaction, request)
        h.txn.start(0.0)
        self.assertTrue(h.txn.respond(request.response(200, to_tag="u"), 0.0))
        self.assertEqual(h.txn.state, TERMINATED)
        self.assertEqual(h.events, [("terminated",)])
        self.assertFalse(h.txn.respond(request.response(200, to_tag="u"), 0.0))


# ---------------------------------------------------------------- matching

class MatchingTests(SynchronousTestCase):

    def test_client_key(self):
        """A response matches by top Via branch and CSeq method (RFC 3261 17.1.3)."""
        req = make_request()
        self.assertEqual(client_key(req), ("z9hG4bKabc", "INVITE"))
        self.assertEqual(client_key(make_response(req, 180)), client_key(req))
        cancel = make_cancel(req)
        self.assertNotEqual(client_key(cancel), client_key(req))

    def test_server_key_rfc3261(self):
        """Branch, sent-by and method; the ACK takes the INVITE's method (17.2.3)."""
        req = make_request()
        self.assertEqual(server_key(req), ("z9hG4bKabc", "192.0.2.1", 5060, "INVITE"))
        self.assertEqual(server_key(make_request("ACK")), server_key(req))
        self.assertNotEqual(server_key(make_request(port=5070)), server_key(req))
        self.assertNotEqual(server_key(make_request(branch="z9hG4bKother")), server_key(req))
        cancel = make_request("CANCEL")
        self.assertNotEqual(server_key(cancel), server_key(req))
        self.assertEqual(server_key(cancel, "INVITE"), server_key(req))
        self.assertEqual(ack_keys(make_request("ACK")), (server_key(req),))

    def test_server_key_rfc2543(self):
        """
        Without the magic cookie: Request-URI, To tag, From tag, Call-ID,
        CSeq and top Via; the ACK may match the INVITE keyed without a To tag.
        """
        req = make_request(branch="1234")
        self.assertFalse(is_rfc3261(req))
        self.assertEqual(server_key(make_request(branch="1234")), server_key(req))
        for changed in (dict(uri="sip:carol@192.0.2.2"), dict(from_tag="f2"),
                        dict(call_id="other"), dict(cseq=2), dict(port=5070),
                        dict(to_tag="x")):
            self.assertNotEqual(server_key(make_request(branch="1234", **changed)),
                                server_key(req), changed)
        ack = make_request("ACK", branch="1234", to_tag="u")
        self.assertIn(server_key(req), ack_keys(ack))

    def test_rfc2543_via_received_ignored(self):
        """A received/rport parameter added by the transport does not change an RFC 2543 key."""
        req = make_request(branch=None)
        stamped = make_request(branch=None)
        stamped.set("Via", "SIP/2.0/UDP 192.0.2.1:5060;received=198.51.100.7;rport=5999")
        self.assertEqual(server_key(stamped), server_key(req))

    def test_ensure_branch(self):
        """A top Via without a branch gets a fresh z9hG4bK one; an existing branch stays."""
        req = make_request(branch=None)
        req.add("Via", "SIP/2.0/UDP 203.0.113.5;branch=z9hG4bKlower")
        branch = ensure_branch(req)
        self.assertTrue(branch.startswith("z9hG4bK"))
        self.assertEqual(req.top_via.branch, branch)
        self.assertEqual(len(req.vias), 2)
        self.assertEqual(req.vias[1].branch, "z9hG4bKlower")
        self.assertEqual(wire(req.to_bytes()).top_via.branch, branch)
        self.assertEqual(ensure_branch(req), branch)
        self.assertNotEqual(ensure_branch(make_request(branch=None)), branch)

    def test_make_ack_without_routes(self):
        """An ACK for a request without Route headers has none."""
        req = make_request()
        ack = make_ack(req, make_response(req, 404, "q"))
        self.assertEqual(ack.get_all("Route"), [])
        self.assertEqual(ack.to_tag, "q")
