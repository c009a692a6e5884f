"""
Tests for outbound registration (L{rvoip_twisted.service.registration}) on
a Clock, over the real transport and transaction layers and a fake UDP
socket: REGISTER, digest challenges, refresh at half the granted expiry,
back-off after failures, 423, unregistering on stop, and the calls a
registration brings in.  Also the C{--register} and registrar options of
the twistd plugin.
"""

import os
import random
import shutil
import tempfile

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.service.registration import RegistrationClient, parse_register_spec
from rvoip_twisted.sip.auth import DigestServer, OK
from rvoip_twisted.sip.parser import parse_message
from rvoip_twisted.tap import Options, makeService

from .test_registrar import FakeServer, invite_text
from .test_sessions import Harness

REGISTRAR = ("192.0.2.10", 5060)


class Peer:
    """The far registrar: reads what the client sent and answers it."""

    def __init__(self, test, password="pw"):
        self.test = test
        self.h = Harness()
        self.server = FakeServer(self.h)
        self.digest = DigestServer("example.com", {"alice": password}, clock=self.h.clock.seconds)

    def client(self, **kw):
        kw.setdefault("jitter", 0)
        kw.setdefault("retry_min", 5.0)
        kw.setdefault("retry_max", 60.0)
        c = RegistrationClient(self.server, "sip:alice@example.com", kw.pop("password", "pw"),
                               "sip:192.0.2.10:5060", **kw)
        return c

    def sent(self):
        out = []
        for data, addr in self.h.proto.transport.written:
            self.test.assertEqual(addr, REGISTRAR)
            out.append(parse_message(data))
        self.h.proto.transport.written = []
        return out

    def one(self):
        [msg] = self.sent()
        return msg

    def answer(self, request, status, headers=()):
        self.h.inject(request.response(status, headers=list(headers)).to_bytes(), REGISTRAR)

    def challenge(self, request, stale=False):
        self.answer(request, 401, [("WWW-Authenticate", self.digest.challenge(stale))])

    def ok(self, request, expires=None, contact_expires=None):
        headers = []
        if contact_expires is not None:
            headers.append(("Contact", "%s;expires=%d" % (request.get("Contact"), contact_expires)))
            headers.append(("Contact", "<sip:other-device@192.0.2.99>;expires=9999"))
        if expires is not None:
            headers.append(("Expires", str(expires)))
        self.answer(request, 200, headers)


class RegistrationClientTests(SynchronousTestCase):

    def registered(self, peer, client, granted=600):
        """Start, answer the challenge, accept: the client is registered."""
        client.startService()
        first = peer.one()
        peer.challenge(first)
        second = peer.one()
        peer.ok(second, contact_expires=granted)
        return first, second

    def test_register_request(self):
        """On start the client sends REGISTER to the registrar with our Contact, the AOR in
        From and To, Expires, and no credentials yet."""
        peer = Peer(self)
        client = peer.client(expires=1800)
        client.startService()
        reg = peer.one()
        self.assertEqual((reg.method, str(reg.uri)), ("REGISTER", "sip:192.0.2.10:5060"))
        self.assertEqual(str(reg.to.uri), "sip:alice@example.com")
        self.assertEqual(str(reg.from_.uri), "sip:alice@example.com")
        self.assertTrue(reg.from_tag)
        self.assertEqual(str(reg.contact.uri), "sip:alice@127.0.0.1:5060")
        self.assertEqual(reg.expires, 1800)
        self.assertFalse(reg.has("Authorization"))
        self.assertEqual(client.state, "registering")

    def test_challenge_answered(self):
        """A 401 is answered with Authorization on a new CSeq of the same Call-ID; the
        registrar accepts it and the client is registered for the granted time."""
        peer = Peer(self)
        client = peer.client()
        d = client.when_registered()
        first, second = self.registered(peer, client, granted=600)
        self.assertEqual(second.call_id, first.call_id)
        self.assertEqual(second.cseq[0], first.cseq[0] + 1)
        self.assertEqual(peer.digest.check(second)[0], OK)
        self.assertEqual((client.state, client.granted), ("registered", 600))
        self.assertIs(self.successResultOf(d), client)

    def test_refresh_at_half_expiry(self):
        """The registration is refreshed at half the granted expiry (the contact's expires in
        the 200), with pre-emptive credentials (the next nonce count)."""
        peer = Peer(self)
        client = peer.client()
        self.registered(peer, client, granted=600)
        peer.h.clock.advance(299)
        self.assertEqual(peer.sent(), [])
        peer.h.clock.advance(1)
        refresh = peer.one()
        self.assertEqual(refresh.cseq[0], 3)
        self.assertIn("nc=00000002", refresh.get("Authorization"))
        self.assertEqual(peer.digest.check(refresh)[0], OK)
        peer.ok(refresh, expires=100)          # no matching Contact: the Expires header
        self.assertEqual(client.granted, 100)
        peer.h.clock.advance(50)
        self.assertEqual(peer.one().method, "REGISTER")

    def test_stale_refresh(self):
        """A refresh whose nonce has gone stale is challenged (stale=true) and answered again."""
        peer = Peer(self)
        client = peer.client()
        self.registered(peer, client, granted=600)
        peer.h.clock.advance(300)
        refresh = peer.one()
        peer.challenge(refresh, stale=True)
        again = peer.one()
        self.assertEqual(peer.digest.check(again)[0], OK)
        peer.ok(again, contact_expires=600)
        self.assertEqual(client.state, "registered")

    def test_wrong_password_backs_off(self):
        """A refused password is not answered again at once (no loop): the client fails and
        tries again only after the back-off delay."""
        peer = Peer(self, password="right")
        client = peer.client(password="wrong")
        client.startService()
        peer.challenge(peer.one())
        again = peer.one()
        self.assertTrue(again.has("Authorization"))
        peer.challenge(again)                    # the credentials were refused
        self.assertEqual((client.state, client.last_status), ("failed", 401))
        peer.h.clock.advance(4.9)
        self.assertEqual(peer.sent(), [])
        peer.h.clock.advance(0.1)
        self.assertEqual(peer.one().method, "REGISTER")

    def test_backoff_schedule(self):
        """After each failure the retry waits retry_min doubled per failure in a row, capped
        at retry_max; a success resets it."""
        peer = Peer(self)
        client = peer.client()
        client.startService()
        waits = []
        for _ in range(6):
            reg = peer.one()
            peer.answer(reg, 503)
            start = peer.h.clock.seconds()
            while not peer.h.proto.transport.written:
                peer.h.clock.advance(0.5)
            waits.append(peer.h.clock.seconds() - start)
        self.assertEqual(waits, [5, 10, 20, 40, 60, 60])
        reg = peer.one()
        peer.ok(reg, expires=600)
        self.assertEqual(client.failures, 0)

    def test_jitter(self):
        """With jitter the retry comes up to that fraction earlier, never later."""
        peer = Peer(self)
        client = peer.client(jitter=0.5, random=random.Random(3))
        client.startService()
        peer.answer(peer.one(), 500)
        start = peer.h.clock.seconds()
        while not peer.h.proto.transport.written:
            peer.h.clock.advance(0.1)
        self.assertTrue(2.5 <= peer.h.clock.seconds() - start <= 5.0)

    def test_timeout_retries(self):
        """No answer at all: after the transaction times out (64*T1) the client retries."""
        peer = Peer(self)
        client = peer.client()
        client.startService()
        peer.one()
        peer.h.clock.advance(32)
        peer.sent()                          # retransmissions
        self.assertEqual((client.state, client.last_status), ("failed", 408))
        peer.h.clock.advance(5)
        reg = peer.sent()[-1]
        self.assertEqual(reg.method, "REGISTER")

    def test_423_min_expires(self):
        """423 Interval Too Brief: the client asks again with the registrar's Min-Expires."""
        peer = Peer(self)
        client = peer.client(expires=30)
        client.startService()
        peer.answer(peer.one(), 423, [("Min-Expires", "120")])
        again = peer.one()
        self.assertEqual(again.expires, 120)
        peer.ok(again, expires=120)
        self.assertEqual(client.granted, 120)

    def test_unregister_on_stop(self):
        """Stopping sends REGISTER with Expires: 0 (with credentials) and waits for the 200."""
        peer = Peer(self)
        client = peer.client()
        self.registered(peer, client)
        d = client.stopService()
        self.assertNoResult(d)
        unreg = peer.one()
        self.assertEqual(unreg.expires, 0)
        self.assertEqual(str(unreg.contact.uri), "sip:alice@127.0.0.1:5060")
        self.assertEqual(peer.digest.check(unreg)[0], OK)
        peer.ok(unreg)
        self.successResultOf(d)
        self.assertEqual(client.state, "unregistered")
        peer.h.clock.advance(10000)
        self.assertEqual(peer.sent(), [])    # no refresh after stop

    def test_unregister_challenged(self):
        """An unregistering REGISTER that is challenged is answered too."""
        peer = Peer(self)
        client = peer.client()
        client.startService()
        reg = peer.one()
        peer.ok(reg, expires=600)
        d = client.stopService()
        unreg = peer.one()
        peer.challenge(unreg)
        unreg2 = peer.one()
        self.assertEqual((unreg2.expires, peer.digest.check(unreg2)[0]), (0, OK))
        peer.ok(unreg2)
        self.successResultOf(d)

    def test_unregister_timeout(self):
        """Without an answer the stop completes after unregister_timeout."""
        peer = Peer(self)
        client = peer.client(unregister_timeout=4)
        self.registered(peer, client)
        d = client.stopService()
        peer.h.clock.advance(3.9)
        self.assertNoResult(d)
        peer.h.clock.advance(0.2)
        self.successResultOf(d)

    def test_stop_unregistered(self):
        """Stopping a client that holds no binding sends nothing."""
        peer = Peer(self)
        client = peer.client()
        client.startService()
        peer.answer(peer.one(), 403)
        self.assertIsNone(client.stopService())
        peer.h.clock.advance(100)
        self.assertEqual(peer.sent(), [])

    def test_incoming_call_reaches_app(self):
        """An INVITE to our Contact from the registrar's address reaches the application and
        is recognised as the registration's call; one from elsewhere is not."""
        peer = Peer(self)
        client = peer.client()
        self.registered(peer, client)
        text = invite_text(to="sip:alice@127.0.0.1:5060", from_user="carol")
        peer.h.inject(text, REGISTRAR)
        [ok] = peer.sent()
        self.assertEqual(ok.status, 200)
        [call] = peer.h.app.calls
        self.assertEqual(str(call.request_uri), "sip:alice@127.0.0.1:5060")
        request = parse_message(text)
        request.source = type("S", (), {"host": "192.0.2.10"})()
        self.assertTrue(client.is_incoming(request))
        request.source = type("S", (), {"host": "198.51.100.1"})()
        self.assertFalse(client.is_incoming(request))

    def test_parse_register_spec(self):
        """--register sip:user:pass@host:port splits into the AOR, the password and the
        registrar URI; an unusable value never echoes the password."""
        aor, password, registrar = parse_register_spec("sip:bob:s3cret@pbx.example:5070")
        self.assertEqual((str(aor), password, str(registrar)),
                         ("sip:bob@pbx.example", "s3cret", "sip:pbx.example:5070"))
        aor, password, registrar = parse_register_spec("bob@10.0.0.1;transport=tcp")
        self.assertEqual((str(aor), password, str(registrar)),
                         ("sip:bob@10.0.0.1", None, "sip:10.0.0.1;transport=tcp"))
        with self.assertRaises(ValueError) as e:
            parse_register_spec("sip:hunter2@")
        self.assertNotIn("hunter2", str(e.exception))


class OptionsTests(SynchronousTestCase):
    """The registrar options of C{twistd rvoip}."""

    def parse(self, *argv):
        options = Options()
        options.parseOptions(["--listen", "udp:0:interface=127.0.0.1"] + list(argv))
        return options

    def test_defaults_off(self):
        """Without registrar options the server has no registrar and its app is --app."""
        options = self.parse()
        self.assertFalse(options["registrar"])
        server = makeService(options)
        self.assertIsNone(server.registrar)
        self.assertNotIn("REGISTER", server.sessions.methods)

    def test_registrar_flag(self):
        """--registrar installs a registrar (memory store) and the PBX app over --app."""
        from rvoip_twisted.apps.echo import EchoApp
        from rvoip_twisted.apps.pbx import PBXApp
        from rvoip_twisted.registrar.store import MemoryLocationStore
        server = makeService(self.parse("--registrar", "--min-expires", "30"))
        self.assertIsInstance(server.registrar.store, MemoryLocationStore)
        self.assertEqual(server.registrar.policy.min_expires, 30)
        self.assertIsInstance(server.handler, PBXApp)
        self.assertIsInstance(server.handler.fallback, EchoApp)
        self.assertIsNone(makeService(self.parse("--registrar", "--unrouted", "404"))
                          .handler.fallback)

    def test_users_and_db_imply_registrar(self):
        """--users or --registrar-db turn the registrar on; --users enables digest."""
        from rvoip_twisted.registrar.store import SQLiteLocationStore
        directory = tempfile.mkdtemp()          # not self.mktemp(): it litters the cwd
        self.addCleanup(shutil.rmtree, directory, True)
        users = os.path.join(directory, "users")
        with open(users, "w") as f:
            f.write("alice:secret\n")
        options = self.parse("--users", users, "--digest-algorithms", "sha-256,MD5",
                             "--registrar-db",
                              os.path.join(directory, "db.sqlite"), "--realm", "pbx")
        self.assertTrue(options["registrar"])
        server = makeService(options)
        self.assertIsInstance(server.registrar.store, SQLiteLocationStore)
        self.addCleanup(server.registrar.store.close)
        self.assertEqual(server.registrar.digest.realm, "pbx")
        self.assertEqual(server.registrar.algorithms, ("SHA-256", "MD5"))
        self.assertTrue(server.registrar.is_user("alice"))

    def test_bad_values(self):
        """Bad registrar values are usage errors; a bad --register never shows its password."""
        self.assertRaises(usage.UsageError, self.parse, "--min-expires", "100",
                          "--max-expires", "50")
        self.assertRaises(usage.UsageError, self.parse, "--unrouted", "drop")
        self.assertRaises(usage.UsageError, self.parse, "--digest-algorithms", "SHA-1")
        self.assertRaises(usage.UsageError, self.parse, "--users", "/nonexistent/users")
        with self.assertRaises(usage.UsageError) as e:
            self.parse("--register", "sip:hunter2@")
        self.assertNotIn("hunter2", str(e.exception))

    def test_register_option(self):
        """--register (repeatable) adds one RegistrationClient per value to the server; with
        a registrar their incoming calls are trusted."""
        options = self.parse("--register", "sip:a:x@192.0.2.1", "--register",
                             "sip:b:y@192.0.2.2:5070", "--register-expires", "600",
                             "--registrar")
        server = makeService(options)
        clients = [s for s in server if isinstance(s, RegistrationClient)]
        self.assertEqual([(str(c.aor), str(c.registrar_uri), c.expires) for c in clients], [
            ("sip:a@192.0.2.1", "sip:192.0.2.1", 600),
            ("sip:b@192.0.2.2", "sip:192.0.2.2:5070", 600)])
        self.assertEqual(server.registrar.trusted, [c.is_incoming for c in clients])
