"""
Tests for the session layer (the Call object and the SessionManager) on a
Clock, with the real transport, transaction and dialog layers over a fake
UDP socket, and a fake media manager: UAS and UAC call flows, CANCEL, BYE,
re-INVITE and glare, OPTIONS, 481, late offer, and the missing ACK.
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from rvoip_twisted.call import CallFailed
from rvoip_twisted.interfaces import ICallHandler
from rvoip_twisted.sdp import SdpNegotiationError
from rvoip_twisted.service.dialogs import DialogManager
from rvoip_twisted.service.sessions import SessionManager
from rvoip_twisted.service.transactions import TransactionManager
from rvoip_twisted.sip.parser import parse_message
from rvoip_twisted.sip.transaction import TimerConfig
from rvoip_twisted.transport.sip import SIPDatagramProtocol, SIPTransport

from .test_transport_sip import FakeUDPTransport

PEER = ("192.0.2.1", 5062)

OFFER = (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
         b"t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n")


class FakeMediaSession:
    def __init__(self, call_id):
        self.call_id = call_id
        self.started = False
        self.stopped = False
        self.answers = []
        self.accepted = []
        self.direction = "sendrecv"
        self.on_dtmf = None
        self.echoing = False

    def create_offer(self, direction="sendrecv"):
        return b"v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" \
               b"m=audio 10000 RTP/AVP 0 8\r\na=" + direction.encode() + b"\r\n"

    def answer_offer(self, sdp):
        if b"RTP/AVP 18" in sdp:
            raise SdpNegotiationError("no common codec")
        self.answers.append(sdp)
        direction = "recvonly" if b"a=sendonly" in sdp else "sendrecv"
        return self.create_offer(direction)

    def accept_answer(self, sdp):
        self.accepted.append(sdp)

    def hold(self):
        return self.create_offer("sendonly")

    def resume(self):
        return self.create_offer("sendrecv")

    def start(self):
        self.started = True

    def stop(self):
        self.stopped = True

    def echo(self):
        self.echoing = True

    def play(self, source):
        pass

    def record(self, sink):
        pass

    def quality(self):
        return {"codec": "PCMU", "packets_sent": 0, "packets_received": 0,
                "packets_lost": 0, "loss_pct": 0.0, "jitter_ms": 0.0,
                "rtt_ms": None, "mos": None}


class FakeMediaManager:
    def __init__(self):
        self.sessions = {}

    def new_session(self, call_id):
        s = self.sessions[call_id] = FakeMediaSession(call_id)
        return s


@implementer(ICallHandler)
class Recorder:
    """An application that keeps the calls and does what the test says."""

    def __init__(self, action="answer"):
        self.calls = []
        self.action = action

    def incomingCall(self, call):
        self.calls.append(call)
        if self.action == "answer":
            call.echo()
            return call.answer()
        if self.action == "ring":
            call.ring()


class Harness:
    def __init__(self, action="answer"):
        self.clock = Clock()
        self.config = TimerConfig()
        self.transport = SIPTransport(self.clock, public_host="127.0.0.1")
        self.proto = SIPDatagramProtocol(self.transport)
        self.proto.transport = self.proto.socket = FakeUDPTransport("127.0.0.1", 5060)
        self.transport._udp_started(self.proto)
        self.transactions = TransactionManager(self.clock, self.transport, config=self.config)
        self.dialogs = DialogManager(self.clock, self.transport, self.config)
        self.media = FakeMediaManager()
        self.app = Recorder(action)
        self.sessions = SessionManager(self.clock, self.transport, self.transactions,
                                       self.dialogs, self.media, self.app)
        self.transactions.tu = self.sessions
        self.transport.receiver = self.transactions

    def inject(self, text, addr=PEER):
        if isinstance(text, str):
            text = text.encode()
        self.proto.datagramReceived(text.replace(b"\n", b"\r\n").replace(b"\r\r", b"\r"), addr)

    def inject_after(self, text, waited, addr=PEER):
        """A datagram that waited C{waited} seconds in the socket buffer."""
        if isinstance(text, str):
            text = text.encode()
        self.proto.datagramReceivedAfter(
            text.replace(b"\n", b"\r\n").replace(b"\r\r", b"\r"), addr, waited)

    def sent(self):
        """Every message sent so far, parsed, oldest first; clears the record."""
        out = [parse_message(data) for data, addr in self.proto.transport.written]
        self.proto.transport.written = []
        return out

    def statuses(self):
        return [getattr(m, "status", None) or m.method for m in self.sent()]


def invite(call_id="c1", branch="z9hG4bK1", body=OFFER, cseq=1, to_tag=None, method="INVITE"):
    to = "<sip:svc@127.0.0.1>" + (";tag=" + to_tag if to_tag else "")
    head = (
        "%s sip:svc@127.0.0.1:5060 SIP/2.0\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=%s;rport\n"
        "From: <sip:alice@192.0.2.1>;tag=a1\n"
        "To: %s\n"
        "Call-ID: %s\n"
        "CSeq: %d %s\n"
        "Contact: <sip:alice@192.0.2.1:5062>\n"
        "Max-Forwards: 70\n" % (method, branch, to, call_id, cseq, method))
    if body:
        head += "Content-Type: application/sdp\n"
    return head.encode() + b"Content-Length: %d\n\n" % len(body) + body


def ack(to_tag, call_id="c1", branch="z9hG4bK2", cseq=1, body=b""):
    head = ("ACK sip:svc@127.0.0.1:5060 SIP/2.0\n"
            "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=%s\n"
            "From: <sip:alice@192.0.2.1>;tag=a1\nTo: <sip:svc@127.0.0.1>;tag=%s\n"
            "Call-ID: %s\nCSeq: %d ACK\nMax-Forwards: 70\n" % (branch, to_tag, call_id, cseq))
    if body:
        head += "Content-Type: application/sdp\n"
    return head.encode() + b"Content-Length: %d\n\n" % len(body) + body


def whole_call(h, call_id, branch="z9hG4bK1", bye_branch="z9hG4bK3"):
    """INVITE, ACK and BYE of one call through the harness."""
    h.inject(invite(call_id=call_id, branch=branch))
    ok = h.sent()[-1]
    h.inject(ack(ok.to_tag, call_id=call_id))
    h.inject(invite(call_id=call_id, branch=bye_branch, body=b"", cseq=2,
                    to_tag=ok.to_tag, method="BYE"))


class UASTests(SynchronousTestCase):
    def answered_call(self):
        h = Harness()
        h.inject(invite())
        sent = h.sent()
        self.assertEqual([m.status for m in sent], [200])
        return h, sent[0]

    def test_basic_call(self):
        """INVITE -> 200 with SDP answer and Contact; ACK stops the 2xx; BYE -> 200 and cleanup."""
        h, ok = self.answered_call()
        self.assertEqual(ok.content_type, "application/sdp")
        self.assertTrue(ok.to_tag)
        self.assertIsNotNone(ok.contact)
        call = h.app.calls[0]
        media = h.media.sessions["c1"]
        self.assertTrue(media.started and media.echoing)
        h.inject(ack(ok.to_tag))
        h.clock.advance(10)
        self.assertEqual(h.sent(), [])          # no 2xx retransmission after the ACK
        h.inject(invite(branch="z9hG4bK3", body=b"", cseq=2, to_tag=ok.to_tag,
                        method="BYE"))
        self.assertEqual(h.statuses(), [200])
        self.assertEqual(call.state, "ended")
        self.assertEqual(self.successResultOf(call.ended), "remote hangup")
        self.assertTrue(media.stopped)
        self.assertEqual(h.dialogs.stats()["dialogs"], 0)
        self.assertEqual(h.sessions.calls, {})

    def test_call_ended_line(self):
        """
        One info line per call, the figures formatted in it; braces in the
        Call-ID (a legal word character) come out as they are.
        """
        from twisted.logger import formatEvent, globalLogPublisher
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        h = Harness()
        whole_call(h, "x{y}z")
        self.assertEqual([e for e in events if "calls" in e], [],
                         "logged before the batch is due")
        h.clock.advance(1.0)
        ended = [e for e in events if "calls" in e]
        self.assertEqual(len(ended), 1)
        self.assertEqual(formatEvent(ended[0]),
            "call ended call=x{y}z remote=sip:alice@192.0.2.1 reason=remote hangup "
            "duration=0.0s codec=PCMU sent=0 received=0 lost=0 loss=0.0% jitter=0.0ms "
            "rtt=-ms mos=-")
        [(call_id, quality)] = ended[0]["calls"]
        self.assertEqual(call_id, "x{y}z")
        self.assertEqual(quality["codec"], "PCMU")

    def test_no_call_ended_line_at_warn(self):
        """
        With --log-level warn, no call ended line is logged, nor its
        figures worked out (the per-call path pays a flag's read); the call
        still ends and is counted.
        """
        from twisted.logger import globalLogPublisher

        from rvoip_twisted.call import Call
        from rvoip_twisted.logs import set_level
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        set_level("warn")
        self.addCleanup(set_level, "info")
        asked = []
        real = Call.quality
        self.patch(Call, "quality", lambda call: asked.append(call) or real(call))
        h = Harness()
        whole_call(h, "quiet")
        self.assertEqual(h.statuses(), [200])      # the BYE's
        h.clock.advance(1.0)
        self.assertEqual(h.sessions.completed_calls, 1)
        self.assertEqual([e for e in events if "calls" in e], [])
        self.assertEqual(asked, [])

    def test_call_ended_lines_batched(self):
        """
        The calls that end within a second share one event, a line each;
        the batch is written at the latest a second after its first line,
        and at once when the service stops.
        """
        from twisted.logger import formatEvent, globalLogPublisher
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        h = Harness()

        def one_call(n):
            branch = "z9hG4bKb%d" % n
            whole_call(h, "batch-%d" % n, branch, branch + "bye")

        def batches():
            return [e for e in events if "calls" in e]

        one_call(1)
        h.clock.advance(0.5)
        one_call(2)
        h.clock.advance(0.49)
        self.assertEqual(batches(), [])
        h.clock.advance(0.01)
        [batch] = batches()
        self.assertEqual([c for c, q in batch["calls"]], ["batch-1", "batch-2"])
        lines = formatEvent(batch).split("\n")
        self.assertEqual(len(lines), 2)
        self.assertTrue(lines[0].startswith("call ended call=batch-1 "), lines)
        self.assertTrue(lines[1].startswith("call ended call=batch-2 "), lines)
        self.assertNotIn(h.sessions._ended_lines._due,
                         [c.func for c in h.clock.getDelayedCalls()])
        one_call(3)
        self.successResultOf(h.sessions.stopService())
        self.assertEqual([c for c, q in batches()[-1]["calls"]], ["batch-3"])
        self.assertEqual(len(batches()), 2)

    def test_stopping_refuses_new_calls(self):
        """
        From stopService on, a new INVITE and an OPTIONS are answered 503
        (a proxy turns to another server) while the calls in progress end;
        a call placed after the service stopped has its "call ended" line
        logged when it ends, with no delayed call left behind; startService
        accepts calls again.
        """
        from twisted.logger import globalLogPublisher
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        h = Harness()
        h.sessions.startService()
        placed = h.sessions.call("sip:bob@192.0.2.1:5062")
        self.assertEqual(h.statuses(), ["INVITE"])
        stopped = h.sessions.stopService()
        self.assertNoResult(stopped)    # our INVITE is still unanswered
        h.inject(invite(call_id="late", branch="z9hG4bKlate"))
        h.inject(invite(call_id="ping", branch="z9hG4bKping", body=b"", method="OPTIONS"))
        self.assertEqual(h.statuses(), [503, 503])
        self.assertEqual(len(h.sessions.calls), 1)       # only the call we placed
        self.assertNotIn("late", h.sessions.calls)
        self.assertEqual(h.app.calls, [])
        h.clock.advance(64 * h.config.t1)     # Timer B: the call we placed ends
        self.failureResultOf(placed, CallFailed)
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual(h.sessions.calls, {})
        h.sent()
        # stopped: still refused; a call placed now logs its line at once
        h.inject(invite(call_id="later", branch="z9hG4bKlater"))
        self.assertEqual(h.statuses(), [503])
        after = h.sessions.call("sip:bob@192.0.2.1:5062")
        h.clock.advance(64 * h.config.t1)
        self.failureResultOf(after, CallFailed)
        ended = [e for e in events if "calls" in e]
        self.assertEqual(len(ended[-1]["calls"]), 1)
        self.assertNotIn(h.sessions._ended_lines._due,
                         [c.func for c in h.clock.getDelayedCalls()])
        h.sent()
        h.sessions.startService()
        h.inject(invite(call_id="again", branch="z9hG4bKagain"))
        self.assertEqual(h.statuses(), [200])
        self.assertEqual(len(h.app.calls), 1)

    def test_ended_call_freed_without_the_gc(self):
        """
        Nothing of an ended call is left in a reference cycle: the Call is
        freed by reference counting as soon as the layers let it go (the
        garbage collector's pauses grow with what survives to it).
        """
        import gc
        import weakref
        h = Harness()
        h.inject(invite())
        ok = h.sent()[0]
        call = weakref.ref(h.app.calls[0])
        h.app.calls.clear()
        h.inject(ack(ok.to_tag))
        h.inject(invite(branch="z9hG4bK3", body=b"", cseq=2, to_tag=ok.to_tag, method="BYE"))
        gc.disable()
        try:
            h.clock.advance(40)             # Timers J and L: every transaction gone
            self.assertIsNone(call())
        finally:
            gc.enable()

    def test_2xx_retransmitted_then_bye_after_64t1(self):
        """Without ACK the 200 goes again at T1, 2T1, 4T1 ... T2, and after 64*T1 a BYE ends the call."""
        h, ok = self.answered_call()
        times = []
        for _ in range(160):
            h.clock.advance(0.25)
            for m in h.sent():
                what = getattr(m, "status", None) or m.method
                times.append((h.clock.seconds(), what, m.top_via.branch))
        retrans = [t for t, what, _ in times if what == 200]
        self.assertEqual(retrans, [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
        byes = [(t, branch) for t, what, branch in times if what == "BYE"]
        self.assertEqual(byes[0][0], 32.0)
        # one BYE transaction (retransmitted by the transaction layer, unanswered here)
        self.assertEqual(len({branch for _, branch in byes}), 1)
        call = h.app.calls[0]
        self.assertEqual(call.state, "ended")
        self.assertEqual(call.end_reason, "no ACK")
        self.assertTrue(h.media.sessions["c1"].stopped)

    def test_invite_retransmission_absorbed(self):
        """A retransmitted INVITE (same branch) makes no second call."""
        h = Harness("ring")
        h.inject(invite())
        h.inject(invite())
        self.assertEqual(len(h.app.calls), 1)
        self.assertEqual(h.statuses(), [180, 180])

    def test_cancel_while_ringing(self):
        """CANCEL before the answer: 200 to the CANCEL, 487 to the INVITE, the call ends."""
        h = Harness("ring")
        h.inject(invite())
        ringing = h.sent()[0]
        self.assertEqual(ringing.status, 180)
        h.inject(invite(body=b"", method="CANCEL"))
        sent = h.sent()
        self.assertEqual(sorted((m.status, m.cseq[1]) for m in sent),
                         [(200, "CANCEL"), (487, "INVITE")])
        self.assertEqual(h.app.calls[0].state, "ended")
        self.assertTrue(h.media.sessions["c1"].stopped)

    def test_cancel_after_answer(self):
        """
        A CANCEL that crosses the 2xx (the INVITE transaction answered, and
        kept by the transaction layer as a tuple that only absorbs
        retransmissions) gets 200 and changes nothing (RFC 3261 9.2).
        """
        h = Harness("answer")
        h.inject(invite())
        ok = h.sent()[-1]
        self.assertEqual(ok.status, 200)
        entries = list(h.transactions._servers.values())
        self.assertEqual([type(e) for e in entries], [tuple])
        h.inject(invite(body=b"", method="CANCEL"))
        self.assertEqual([(m.status, m.cseq[1]) for m in h.sent()], [(200, "CANCEL")])
        self.assertEqual(h.app.calls[0].state, "answered")
        h.inject(ack(ok.to_tag))
        h.inject(invite(body=b"", method="BYE", cseq=2, to_tag=ok.to_tag, branch="z9hG4bK3"))
        self.assertEqual(h.statuses(), [200])
        self.assertEqual(h.app.calls[0].end_reason, "remote hangup")

    def test_cancel_unknown(self):
        """A CANCEL matching no INVITE gets 481."""
        h = Harness()
        h.inject(invite(body=b"", method="CANCEL"))
        self.assertEqual(h.statuses(), [481])

    def test_bye_unknown_dialog(self):
        """A BYE for a dialog we do not have gets 481."""
        h = Harness()
        h.inject(invite(body=b"", method="BYE", to_tag="nope"))
        self.assertEqual(h.statuses(), [481])

    def test_options_and_unknown_methods(self):
        """OPTIONS -> 200 with Allow; an unknown method -> 501; a known one we refuse -> 405."""
        h = Harness()
        h.inject(invite(body=b"", method="OPTIONS"))
        ok = h.sent()[0]
        self.assertEqual(ok.status, 200)
        self.assertIn("INVITE", ok.get("Allow"))
        self.assertTrue(ok.to_tag)
        h.inject(invite(body=b"", method="FOO", branch="z9hG4bK9"))
        h.inject(invite(body=b"", method="SUBSCRIBE", branch="z9hG4bK8"))
        self.assertEqual(h.statuses(), [501, 405])

    def test_unknown_uri_scheme_416(self):
        """A Request-URI with a scheme we cannot serve gets 416 (RFC 4475 unkscm)."""
        h = Harness()
        h.inject(invite(body=b"", method="OPTIONS").replace(
            b"OPTIONS sip:svc@127.0.0.1:5060 SIP/2.0",
            b"OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0"))
        self.assertEqual(h.statuses(), [416])

    def test_unsupported_body_415(self):
        """An INVITE whose body is not SDP gets 415."""
        h = Harness()
        h.inject(invite().replace(b"application/sdp", b"application/unknownformat"))
        r = h.sent()[0]
        self.assertEqual(r.status, 415)
        self.assertEqual(r.get("Accept"), "application/sdp")
        self.assertEqual(h.app.calls, [])

    def test_no_common_codec(self):
        """An offer with no acceptable codec gets 488."""
        h = Harness()
        h.inject(invite(body=OFFER.replace(b"RTP/AVP 0", b"RTP/AVP 18")))
        self.assertEqual(h.statuses(), [488])
        self.assertEqual(h.app.calls, [])
        self.assertTrue(h.media.sessions["c1"].stopped)

    def test_unsupported_require(self):
        """Require with an extension we lack gets 420 with Unsupported."""
        h = Harness()
        h.inject(invite(body=b"", method="OPTIONS").replace(
            b"Max-Forwards", b"Require: foo\r\nMax-Forwards"))
        r = h.sent()[0]
        self.assertEqual(r.status, 420)
        self.assertEqual(r.get("Unsupported"), "foo")

    def test_late_offer(self):
        """INVITE without SDP: the 200 carries an offer and the ACK's answer is applied."""
        h = Harness()
        h.inject(invite(body=b""))
        ok = h.sent()[0]
        self.assertEqual(ok.status, 200)
        self.assertIn(b"m=audio", ok.body)
        media = h.media.sessions["c1"]
        self.assertFalse(media.started)
        h.inject(ack(ok.to_tag, body=OFFER))
        self.assertEqual(media.accepted, [OFFER])
        self.assertTrue(media.started)

    def test_reinvite_hold(self):
        """A re-INVITE with a=sendonly is answered 200 with a=recvonly; the target is refreshed."""
        h, ok = self.answered_call()
        h.inject(ack(ok.to_tag))
        hold = invite(branch="z9hG4bK5", cseq=2, to_tag=ok.to_tag,
                      body=OFFER + b"a=sendonly\r\n").replace(
            b"Contact: <sip:alice@192.0.2.1:5062>", b"Contact: <sip:alice@192.0.2.9:5099>")
        h.inject(hold)
        r = h.sent()[0]
        self.assertEqual(r.status, 200)
        self.assertIn(b"a=recvonly", r.body)
        call = h.app.calls[0]
        self.assertEqual(str(call.dialog.remote_target), "sip:alice@192.0.2.9:5099")

    def test_reinvite_lower_cseq(self):
        """An in-dialog request with a lower CSeq gets 500 (RFC 3261 12.2.2)."""
        h, ok = self.answered_call()
        h.inject(ack(ok.to_tag))
        h.inject(invite(branch="z9hG4bK5", cseq=5, to_tag=ok.to_tag, method="OPTIONS", body=b""))
        self.assertEqual(h.statuses(), [200])
        h.inject(invite(branch="z9hG4bK6", cseq=3, to_tag=ok.to_tag, method="OPTIONS", body=b""))
        self.assertEqual(h.statuses(), [500])

    def test_reinvite_glare(self):
        """A re-INVITE arriving while ours is pending gets 491."""
        h, ok = self.answered_call()
        h.inject(ack(ok.to_tag))
        call = h.app.calls[0]
        d = call.hold()
        ours = h.sent()[0]
        self.assertEqual(ours.method, "INVITE")
        self.assertIn(b"a=sendonly", ours.body)
        h.inject(invite(branch="z9hG4bK7", cseq=2, to_tag=ok.to_tag))
        self.assertEqual(h.statuses(), [491])
        self.assertNoResult(d)

    def test_hold_answered(self):
        """Our re-INVITE's 2xx is ACKed and its SDP applied."""
        h, ok = self.answered_call()
        h.inject(ack(ok.to_tag))
        call = h.app.calls[0]
        d = call.hold()
        ours = h.sent()[0]
        resp = ours.response(200, body=OFFER + b"a=recvonly\r\n",
                             headers=[("Content-Type", "application/sdp")])
        h.inject(resp.to_bytes())
        self.assertIs(self.successResultOf(d), call)
        sent = h.sent()
        self.assertEqual([m.method for m in sent], ["ACK"])
        self.assertEqual(sent[0].cseq, (ours.cseq[0], "ACK"))
        self.assertEqual(h.media.sessions["c1"].accepted[-1], OFFER + b"a=recvonly\r\n")

    def test_server_hangup(self):
        """hangup() on an answered call sends BYE within the dialog."""
        h, ok = self.answered_call()
        h.inject(ack(ok.to_tag))
        call = h.app.calls[0]
        call.hangup()
        bye = h.sent()[0]
        self.assertEqual(bye.method, "BYE")
        self.assertEqual(str(bye.uri), "sip:alice@192.0.2.1:5062")
        self.assertEqual(bye.from_tag, ok.to_tag)
        self.assertEqual(bye.to_tag, "a1")
        self.assertEqual(call.state, "ended")

    def test_dtmf_info(self):
        """INFO with application/dtmf-relay becomes a DTMF event."""
        h, ok = self.answered_call()
        h.inject(ack(ok.to_tag))
        call = h.app.calls[0]
        got = []
        call.on_dtmf(lambda digit, ms: got.append((digit, ms)))
        body = b"Signal=5\r\nDuration=160\r\n"
        h.inject(invite(branch="z9hG4bK8", cseq=2, to_tag=ok.to_tag, method="INFO",
                        body=body).replace(b"application/sdp", b"application/dtmf-relay"))
        self.assertEqual(h.statuses(), [200])
        self.assertEqual(got, [("5", 160)])

    def test_handler_failure_answers_500(self):
        """An application that raises gets its call answered 500, and the server goes on."""
        h = Harness()

        @implementer(ICallHandler)
        class Broken:
            def incomingCall(self, call):
                raise RuntimeError("app bug")
        h.sessions.handler = Broken()
        h.inject(invite())
        self.assertEqual(h.statuses(), [500])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        h.sessions.handler = h.app
        h.inject(invite(call_id="c2", branch="z9hG4bKx"))
        self.assertEqual(h.statuses(), [200])

    def test_async_handler(self):
        """An async def handler works through ensureDeferred."""
        h = Harness()

        @implementer(ICallHandler)
        class Async:
            async def incomingCall(self, call):
                call.ring()
                await defer.succeed(None)
                await call.answer()
        h.sessions.handler = Async()
        h.inject(invite())
        self.assertEqual(h.statuses(), [180, 200])


def response_to(request, status, to_tag="b1", body=b"", headers=(),
                contact="<sip:bob@192.0.2.1:5062>"):
    hdrs = [("Contact", contact)] + list(headers)
    if body:
        hdrs.append(("Content-Type", "application/sdp"))
    return request.response(status, to_tag=to_tag, headers=hdrs, body=body).to_bytes()


class UACTests(SynchronousTestCase):
    def start(self, **kw):
        h = Harness()
        d = h.sessions.call("sip:bob@192.0.2.1:5062", **kw)
        inv = h.sent()[0]
        self.assertEqual(inv.method, "INVITE")
        return h, d, inv

    def test_answered(self):
        """180 then 200: the Deferred fires with the answered Call and an ACK goes out."""
        h, d, inv = self.start()
        self.assertEqual(inv.content_type, "application/sdp")
        h.inject(response_to(inv, 180))
        self.assertNoResult(d)
        h.inject(response_to(inv, 200, body=OFFER))
        call = self.successResultOf(d)
        self.assertEqual(call.state, "answered")
        ack_ = h.sent()[0]
        self.assertEqual(ack_.method, "ACK")
        self.assertEqual(ack_.cseq, (1, "ACK"))
        self.assertEqual(str(ack_.uri), "sip:bob@192.0.2.1:5062")
        self.assertEqual(h.media.sessions[call.call_id].accepted, [OFFER])
        # a retransmitted 200 gets the same ACK again
        h.inject(response_to(inv, 200, body=OFFER))
        self.assertEqual([m.method for m in h.sent()], ["ACK"])

    def test_rejected(self):
        """A 486 fails the Deferred with CallFailed(486) and releases media."""
        h, d, inv = self.start()
        h.inject(response_to(inv, 486))
        f = self.failureResultOf(d, CallFailed)
        self.assertEqual(f.value.status, 486)
        self.assertEqual([m.method for m in h.sent()], ["ACK"])   # the transaction's ACK
        self.assertTrue(list(h.media.sessions.values())[0].stopped)

    def test_timeout(self):
        """No answer at all: Timer B fails the call with 408."""
        h, d, inv = self.start()
        h.clock.pump([1] * 40)
        self.assertEqual(self.failureResultOf(d, CallFailed).value.status, 408)

    def test_auth_challenge(self):
        """A 407 is answered once with Proxy-Authorization and a higher CSeq."""
        h, d, inv = self.start(credentials=("u", "p"))
        h.inject(response_to(inv, 407, headers=[
            ("Proxy-Authenticate", 'Digest realm="r", nonce="n1", qop="auth", algorithm=MD5')]))
        sent = h.sent()
        again = [m for m in sent if m.method == "INVITE"][0]
        self.assertEqual(again.cseq, (2, "INVITE"))
        self.assertIn('username="u"', again.get("Proxy-Authorization"))
        self.assertNotEqual(again.top_via.branch, inv.top_via.branch)
        h.inject(response_to(again, 200, body=OFFER))
        self.assertEqual(self.successResultOf(d).state, "answered")

    def test_redirect_followed_once(self):
        """A 302 is followed to its Contact once."""
        h, d, inv = self.start()
        h.inject(response_to(inv, 302, contact="<sip:carol@192.0.2.7:5070>"))
        sent = h.sent()
        again = [m for m in sent if m.method == "INVITE"][0]
        self.assertEqual(str(again.uri), "sip:carol@192.0.2.7:5070")
        self.assertEqual(again.cseq, (2, "INVITE"))
        self.assertEqual(h.proto.transport.written, [])
        h.inject(response_to(again, 302, contact="<sip:dave@192.0.2.8>"))
        self.assertEqual(self.failureResultOf(d, CallFailed).value.status, 302)

    def test_cancel_ringing(self):
        """hangup() while ringing sends CANCEL; the 487 fails the call."""
        h, d, inv = self.start()
        h.inject(response_to(inv, 180))
        call = h.sessions.calls[inv.call_id]
        call.hangup()
        cancel = h.sent()[0]
        self.assertEqual(cancel.method, "CANCEL")
        self.assertEqual(cancel.top_via.branch, inv.top_via.branch)
        h.inject(response_to(inv, 487))
        self.assertEqual(self.failureResultOf(d, CallFailed).value.status, 487)

    def test_forked_second_2xx(self):
        """A 2xx from a second fork is ACKed and then ended with BYE."""
        h, d, inv = self.start()
        h.inject(response_to(inv, 200, to_tag="f1", body=OFFER))
        self.successResultOf(d)
        self.assertEqual([m.method for m in h.sent()], ["ACK"])
        h.inject(response_to(inv, 200, to_tag="f2", body=OFFER))
        sent = h.sent()
        self.assertEqual([m.method for m in sent], ["ACK", "BYE"])
        self.assertEqual(sent[1].to_tag, "f2")


class OverloadTests(SynchronousTestCase):
    """
    New calls are refused with 503 while requests wait in the socket buffer
    longer than the transport's C{overload_delay}; calls in progress go on.
    """

    def setUp(self):
        from twisted.logger import globalLogPublisher
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def warnings(self):
        return [e for e in self.events if "overloaded" in (e.get("log_format") or "")]

    def assertRefused(self, h, sent):
        self.assertEqual([m.status for m in sent], [503])
        self.assertEqual(sent[0].get("Retry-After"), "5")
        self.assertIsNotNone(sent[0].to_tag)
        self.assertEqual(h.sessions.calls, {})
        self.assertEqual(h.media.sessions, {})
        self.assertEqual(h.app.calls, [])

    def test_new_call_refused_statelessly(self):
        """
        503 with Retry-After before any parsing (RFC 3261 8.2.7: no
        transaction, the same To tag for a retransmission, the ACK
        ignored); one warning per 10 s.
        """
        h = Harness()
        self.assertEqual(h.transport.overload_delay, 0.25)
        request = invite(call_id="late1", branch="z9hG4bKl1")
        h.inject_after(request, waited=0.4)
        first = h.sent()
        self.assertRefused(h, first)
        resp = first[0]
        self.assertEqual(resp.call_id, "late1")
        self.assertEqual(resp.cseq.seq, 1)
        self.assertEqual(resp.cseq.method, "INVITE")
        self.assertEqual(resp.from_tag, "a1")
        self.assertEqual(resp.top_via.branch, "z9hG4bKl1")
        self.assertEqual(h.transactions.stats()["server"], 0, "stateless")
        self.assertEqual(len(self.warnings()), 1)
        h.inject_after(request, waited=0.4)
        [again] = h.sent()
        self.assertEqual(again.to_tag, resp.to_tag, "a retransmission gets the same tag")
        h.inject_after(ack(resp.to_tag, call_id="late1", branch="z9hG4bKl1"), waited=0.4)
        h.clock.advance(5)
        self.assertEqual(h.sent(), [], "the ACK is ignored, nothing is retransmitted")
        h.inject_after(invite(call_id="late2", branch="z9hG4bKl2"), waited=0.3)
        self.assertEqual(h.statuses(), [503])
        self.assertEqual(len(self.warnings()), 1, "one warning per 10 s")
        h.clock.advance(5)
        h.inject_after(invite(call_id="late3", branch="z9hG4bKl3"), waited=0.3)
        self.assertEqual(h.statuses(), [503])
        self.assertEqual(len(self.warnings()), 2)
        self.assertEqual(self.warnings()[-1]["count"], 3, "the 503s since the last warning")
        self.assertEqual(h.transport.shed_calls, 4)

    def test_parsed_when_its_lines_do_not_allow(self):
        """
        An INVITE the transport cannot answer from its lines (here a folded
        header) is parsed, and the session layer refuses it: a 503 in a
        transaction, retransmitted until its ACK.
        """
        h = Harness()
        folded = invite(call_id="fold", branch="z9hG4bKf").replace(
            b"Max-Forwards: 70\n", b"Max-Forwards: 70\nSubject: a\n b\n")
        self.assertIn(b"\n b", folded)
        h.inject_after(folded, waited=0.4)
        sent = h.sent()
        self.assertRefused(h, sent)
        self.assertEqual(h.transactions.stats()["server"], 1)
        h.clock.advance(0.5)
        self.assertEqual(h.statuses(), [503], "retransmitted by its transaction")
        h.inject_after(ack(sent[0].to_tag, call_id="fold", branch="z9hG4bKf"), waited=0.4)
        h.clock.advance(5)
        self.assertEqual(h.sent(), [])
        self.assertEqual(h.transport.shed_calls, 1)
        self.assertEqual(len(self.warnings()), 1)

    def test_credentials_are_a_call_in_progress(self):
        """
        When we challenge INVITEs, one with credentials (the answer to our
        407) is a call in progress: served while overloaded, on the parsed
        path too.  When we do not, credentials change nothing.
        """
        h = Harness()
        folded = invite(call_id="auth", branch="z9hG4bKauth").replace(
            b"Max-Forwards: 70\n",
            b'Max-Forwards: 70\nProxy-Authorization: Digest username="bob"\nSubject: a\n b\n')
        h.inject_after(folded, waited=1.0)
        self.assertEqual(h.statuses(), [503], "we challenge no INVITE: no way round")
        h.transport.challenges_invites = True
        h.inject_after(folded.replace(b"auth", b"auth2"), waited=1.0)
        self.assertEqual(h.statuses(), [200])
        self.assertEqual(h.transport.shed_calls, 1)
        self.assertEqual(list(h.sessions.calls), ["auth2"])

    def test_retransmission_reaches_its_transaction(self):
        """
        A retransmitted INVITE (here one that differs in bytes from the
        first, so the hash path does not take it) is never refused: its
        branch has a live transaction, which handles it.  An INVITE without
        an RFC 3261 branch may be one too: it is parsed and matched first.
        """
        h = Harness()
        h.inject(invite(call_id="kept", branch="z9hG4bKkept"))
        ok = h.sent()[-1]
        self.assertEqual(ok.status, 200)
        variant = invite(call_id="kept", branch="z9hG4bKkept").replace(
            b"Max-Forwards: 70\n", b"Max-Forwards: 70\nSubject: again\n")
        h.inject_after(variant, waited=1.0)
        self.assertNotIn(503, h.statuses())
        self.assertEqual(h.transport.shed_calls, 0)
        self.assertEqual(list(h.sessions.calls), ["kept"])
        old_style = invite(call_id="2543", branch="1234")
        h.inject_after(old_style, waited=1.0)
        self.assertEqual(h.statuses(), [503])
        self.assertEqual(h.transport.shed_calls, 1)
        self.assertEqual(h.transactions.stats()["server"], 2, "refused in a transaction")
        h.inject_after(old_style, waited=1.0)
        self.assertEqual(h.statuses(), [503], "its retransmission: the same 503 again")
        self.assertEqual(h.transport.shed_calls, 1)

    def test_calls_in_progress_go_on(self):
        """An answered call's ACK, re-INVITE and BYE are served however long they waited."""
        h = Harness()
        h.inject(invite())
        ok = h.sent()[-1]
        self.assertEqual(ok.status, 200)
        h.inject_after(ack(ok.to_tag), waited=2.0)
        h.inject_after(invite(branch="z9hG4bKre", cseq=2, to_tag=ok.to_tag), waited=2.0)
        self.assertEqual(h.statuses(), [200], "the re-INVITE is answered")
        h.inject_after(ack(ok.to_tag, branch="z9hG4bKre2", cseq=2), waited=2.0)
        h.inject_after(invite(branch="z9hG4bK3", body=b"", cseq=3, to_tag=ok.to_tag,
                              method="BYE"), waited=2.0)
        self.assertEqual(h.statuses(), [200])
        self.assertEqual(h.sessions.calls, {})
        self.assertEqual(h.sessions.completed_calls, 1)
        self.assertEqual(h.transport.shed_calls, 0)

    def test_under_the_limit_and_off(self):
        """A wait under the limit, or the protection off (0): the call is served."""
        h = Harness()
        h.inject_after(invite(call_id="a", branch="z9hG4bKa"), waited=0.2)
        self.assertEqual(h.statuses()[-1], 200)
        h.transport.overload_delay = 0
        h.inject_after(invite(call_id="b", branch="z9hG4bKb"), waited=30.0)
        self.assertEqual(h.statuses()[-1], 200)
        self.assertEqual(h.transport.shed_calls, 0)
