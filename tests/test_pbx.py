"""
Tests for the PBX application (L{rvoip_twisted.apps.pbx}): routing by the
registrar's bindings, parallel forking (first answer wins, the others are
cancelled), the media bridge, hang-up propagation, failure propagation, and
the fallback for unknown users, on a Clock over the real SIP layers with a
fake media layer.
"""

from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.apps.pbx import PBXApp, best_response
from rvoip_twisted.registrar.registrar import Binding
from rvoip_twisted.sip.parser import parse_message

from .test_registrar import FakeServer, invite_text
from .test_sessions import PEER, FakeMediaManager, FakeMediaSession, Harness, Recorder

BOB1 = ("192.0.2.21", 5062)
BOB2 = ("192.0.2.22", 5062)
ANSWER = (b"v=0\r\no=- 5 5 IN IP4 192.0.2.21\r\ns=-\r\nc=IN IP4 192.0.2.21\r\n"
          b"t=0 0\r\nm=audio 6000 RTP/AVP 0\r\n")


class RelayMediaSession(FakeMediaSession):
    relayed = None

    def relay(self, other):
        self.relayed = other
        if other is not None:
            other.relayed = self


class RelayMediaManager(FakeMediaManager):
    def new_session(self, call_id):
        s = self.sessions[call_id] = RelayMediaSession(call_id)
        return s


class PBX:
    """A server with a registrar (memory store) and the PBX app."""

    def __init__(self, test, contacts=(BOB1, BOB2), users=(), fallback="recorder",
                 ring_timeout=60.0):
        from rvoip_twisted.service.registrar import Registrar
        self.test = test
        self.h = h = Harness()
        h.media = h.sessions.media = RelayMediaManager()
        h.clock.advance(1000)
        server = FakeServer(h)
        self.registrar = Registrar(h.clock)
        self.registrar.users = frozenset(users)
        self.registrar.install(server)
        server.startService()
        self.fallback = Recorder() if fallback == "recorder" else None
        self.app = PBXApp(h.sessions, self.registrar, self.fallback, ring_timeout=ring_timeout)
        h.sessions.handler = self.app
        bindings = [Binding("sip:bob@rvoip", "sip:bob@%s:%d" % addr, 1e9, None, "c", 1)
                    for addr in contacts]
        self.registrar.store.put("sip:bob@rvoip", bindings)

    def sent(self):
        """[(message, address)] sent since the last call."""
        out = [(parse_message(data), addr) for data, addr in self.h.proto.transport.written]
        self.h.proto.transport.written = []
        return out

    def by_addr(self):
        out = {}
        for msg, addr in self.sent():
            out.setdefault(addr, []).append(msg)
        return out

    def call_bob(self, to="sip:bob@127.0.0.1:5060"):
        self.h.inject(invite_text(to=to), PEER)
        return self.by_addr()

    def respond(self, request, status, addr, tag, body=b""):
        headers = [("Contact", "<sip:bob@%s:%d>" % addr)]
        if body:
            headers.append(("Content-Type", "application/sdp"))
        self.h.inject(request.response(status, to_tag=tag, headers=headers, body=body)
                      .to_bytes(), addr)

    def ack_caller(self, ok):
        self.h.inject(
            "ACK sip:bob@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKack\r\n"
            "From: <sip:alice@127.0.0.1>;tag=ainv1\r\nTo: <sip:bob@127.0.0.1:5060>;tag=%s\r\n"
            "Call-ID: inv1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            % (ok.to_tag,), PEER)

    def caller(self):
        return self.h.sessions.calls.get("inv1")


def methods(msgs):
    return [m.status if hasattr(m, "status") else m.method for m in msgs]


class ForkTests(SynchronousTestCase):

    def forked(self, **kw):
        pbx = PBX(self, **kw)
        sent = pbx.call_bob()
        invites = {addr: msgs[0] for addr, msgs in sent.items() if addr != PEER}
        return pbx, sent, invites

    def test_forks_to_every_contact(self):
        """An INVITE to a registered user rings the caller (180) and sends one INVITE to each
        registered contact, from the caller's user, with our SDP offer."""
        pbx, sent, invites = self.forked()
        self.assertEqual(methods(sent[PEER]), [180])
        self.assertEqual(sorted(invites), [BOB1, BOB2])
        for addr, invite in invites.items():
            self.assertEqual(invite.method, "INVITE")
            self.assertEqual(str(invite.uri), "sip:bob@%s:%d" % addr)
            self.assertEqual(invite.from_.uri.user, "alice")
            self.assertEqual(invite.content_type, "application/sdp")
        self.assertNotEqual(invites[BOB1].call_id, "inv1")

    def test_first_answer_wins(self):
        """The first contact to answer is bridged: ACKed, the other fork cancelled, the caller
        answered with 200, and the two calls' media relayed to each other."""
        pbx, sent, invites = self.forked()
        pbx.respond(invites[BOB2], 180, BOB2, "b2")
        pbx.respond(invites[BOB1], 200, BOB1, "b1", ANSWER)
        out = pbx.by_addr()
        self.assertEqual(methods(out[BOB1]), ["ACK"])
        self.assertEqual(methods(out[BOB2]), ["CANCEL"])
        self.assertEqual(methods(out[PEER]), [200])
        caller = pbx.caller()
        leg = pbx.h.sessions.calls[invites[BOB1].call_id]
        self.assertIs(caller.media.relayed, leg.media)
        self.assertIs(leg.media.relayed, caller.media)
        self.assertEqual(pbx.app.bridged, 1)
        # the cancelled fork answers 487; the caller stays up
        pbx.respond(invites[BOB2], 487, BOB2, "b2")
        self.assertEqual(caller.state, "answered")

    def test_caller_bye_relayed(self):
        """The caller's BYE ends the call and a BYE goes to the bridged contact."""
        pbx, sent, invites = self.forked(contacts=(BOB1,))
        pbx.respond(invites[BOB1], 200, BOB1, "b1", ANSWER)
        ok = pbx.by_addr()[PEER][0]
        pbx.ack_caller(ok)
        pbx.h.inject(
            "BYE sip:svc@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKbye\r\n"
            "From: <sip:alice@127.0.0.1>;tag=ainv1\r\nTo: <sip:bob@127.0.0.1:5060>;tag=%s\r\n"
            "Call-ID: inv1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            % (ok.to_tag,), PEER)
        out = pbx.by_addr()
        self.assertEqual(methods(out[PEER]), [200])
        [bye] = out[BOB1]
        self.assertEqual((bye.method, bye.call_id, bye.to_tag), ("BYE", invites[BOB1].call_id, "b1"))
        self.assertEqual(pbx.h.sessions.calls.get(invites[BOB1].call_id), None)

    def test_callee_bye_relayed(self):
        """The callee's BYE ends its leg and a BYE goes to the caller."""
        pbx, sent, invites = self.forked(contacts=(BOB1,))
        pbx.respond(invites[BOB1], 200, BOB1, "b1", ANSWER)
        ok = pbx.by_addr()[PEER][0]
        pbx.ack_caller(ok)
        caller = pbx.caller()
        inv = invites[BOB1]
        pbx.h.inject(
            "BYE sip:alice@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.21:5062;branch=z9hG4bKcb\r\n"
            "From: <%s>;tag=b1\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 9 BYE\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n" % (inv.uri, inv.get("From"), inv.call_id), BOB1)
        out = pbx.by_addr()
        self.assertEqual(methods(out[BOB1]), [200])
        [bye] = out[PEER]
        self.assertEqual((bye.method, bye.call_id), ("BYE", "inv1"))
        self.assertEqual(caller.state, "ended")
        self.assertIsNone(pbx.caller())

    def test_busy_propagates(self):
        """When every contact fails, the caller gets the best final response: 486 over 404
        and 503; 6xx over everything."""
        pbx, sent, invites = self.forked()
        pbx.respond(invites[BOB1], 486, BOB1, "b1")
        self.assertNotIn(PEER, pbx.by_addr())      # still waiting for the other fork
        pbx.respond(invites[BOB2], 404, BOB2, "b2")
        out = pbx.by_addr()
        [final] = out[PEER]
        self.assertEqual((final.status, final.reason), (486, "Busy Here"))

    def test_single_contact_480(self):
        """A 480 from the only contact reaches the caller."""
        pbx, sent, invites = self.forked(contacts=(BOB1,))
        pbx.respond(invites[BOB1], 480, BOB1, "b1")
        self.assertEqual(methods(pbx.by_addr()[PEER]), [480])

    def test_caller_cancel(self):
        """The caller's CANCEL while ringing cancels every fork; the caller gets 487."""
        pbx, sent, invites = self.forked()
        pbx.respond(invites[BOB1], 180, BOB1, "b1")
        pbx.respond(invites[BOB2], 180, BOB2, "b2")
        pbx.sent()
        pbx.h.inject(
            "CANCEL sip:bob@127.0.0.1:5060 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKiinv11;rport\r\n"
            "From: <sip:alice@127.0.0.1>;tag=ainv1\r\nTo: <sip:bob@127.0.0.1:5060>\r\n"
            "Call-ID: inv1\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            PEER)
        out = pbx.by_addr()
        self.assertEqual(sorted(methods(out[PEER])), [200, 487])
        self.assertEqual(methods(out[BOB1]), ["CANCEL"])
        self.assertEqual(methods(out[BOB2]), ["CANCEL"])

    def test_ring_timeout(self):
        """Nobody answers within ring_timeout: the forks are cancelled, the caller gets 480."""
        pbx, sent, invites = self.forked(ring_timeout=20)
        pbx.respond(invites[BOB1], 180, BOB1, "b1")
        pbx.respond(invites[BOB2], 180, BOB2, "b2")
        pbx.sent()
        pbx.h.clock.advance(19)
        self.assertNotIn(PEER, pbx.by_addr())
        pbx.h.clock.advance(1)
        out = pbx.by_addr()
        self.assertEqual(methods(out[PEER]), [480])
        self.assertEqual(methods(out[BOB1]), ["CANCEL"])

    def test_late_second_answer_hung_up(self):
        """A fork that answers after another won is ACKed and sent BYE."""
        pbx, sent, invites = self.forked()
        pbx.respond(invites[BOB1], 200, BOB1, "b1", ANSWER)
        pbx.sent()
        pbx.respond(invites[BOB2], 200, BOB2, "b2", ANSWER)
        out = pbx.by_addr()
        self.assertEqual(methods(out[BOB2]), ["ACK", "BYE"])
        self.assertEqual(pbx.caller().state, "answered")


class RoutingTests(SynchronousTestCase):

    def test_unknown_user_fallback(self):
        """A call to a user with no binding and not in the users table goes to the fallback
        application."""
        pbx = PBX(self)
        out = pbx.call_bob(to="sip:600@127.0.0.1:5060")
        self.assertEqual(methods(out[PEER]), [200])
        self.assertEqual(len(pbx.fallback.calls), 1)

    def test_unknown_user_404(self):
        """Without a fallback application an unknown user gets 404."""
        pbx = PBX(self, fallback=None)
        out = pbx.call_bob(to="sip:carol@127.0.0.1:5060")
        self.assertEqual(methods(out[PEER]), [404])

    def test_known_user_not_registered_480(self):
        """A user of the users table without a binding: 480."""
        pbx = PBX(self, users=("carol",))
        out = pbx.call_bob(to="sip:carol@127.0.0.1:5060")
        self.assertEqual(methods(out[PEER]), [480])
        self.assertEqual(pbx.fallback.calls, [])

    def test_expired_binding_not_used(self):
        """A binding past its expiry is not called."""
        pbx = PBX(self, contacts=(), fallback=None)
        pbx.registrar.store.put("sip:bob@rvoip", [
            Binding("sip:bob@rvoip", "sip:bob@192.0.2.21:5062", 1500.0, None, "c", 1)])
        pbx.h.clock.advance(600)
        out = pbx.call_bob()
        self.assertEqual(methods(out[PEER]), [404])

    def test_loop_to_self(self):
        """A binding that points back at this server is not called (482)."""
        pbx = PBX(self, contacts=(("127.0.0.1", 5060),))
        out = pbx.call_bob()
        self.assertEqual(methods(out[PEER]), [482])

    def test_inbound_registration_call_goes_to_app(self):
        """A call our outbound registration brought in (trusted by the registrar) goes to the
        application, even to a user name that is known locally without a binding."""
        pbx = PBX(self, users=("carol",), fallback=None)
        inbound = Recorder()
        pbx.app.inbound = inbound
        pbx.registrar.trusted.append(lambda request: request.uri.user == "carol")
        out = pbx.call_bob(to="sip:carol@127.0.0.1:5060")
        self.assertEqual(methods(out[PEER]), [200])
        self.assertEqual(len(inbound.calls), 1)

    def test_best_response(self):
        """best_response: 6xx, then 486, then the lowest 4xx; timeouts and 5xx become 480."""
        self.assertEqual(best_response([(486, "Busy"), (603, "Decline")])[0], 603)
        self.assertEqual(best_response([(404, "NF"), (486, "Busy")]), (486, "Busy"))
        self.assertEqual(best_response([(410, "G"), (404, "NF")])[0], 404)
        self.assertEqual(best_response([(408, "T"), (503, "U")])[0], 480)
        self.assertEqual(best_response([])[0], 480)
