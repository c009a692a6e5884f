"""
Tests for the registrar: the sans-IO REGISTER decision
(L{rvoip_twisted.registrar.registrar}), the location stores (in memory and
SQLite) and the registrar service with its digest gate
(L{rvoip_twisted.service.registrar}) on a Clock over a fake UDP socket.
"""

import os
import queue
import shutil
import sqlite3
import tempfile
import time

from twisted.application import service
from twisted.internet import defer
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from rvoip_twisted.registrar.registrar import (
    Binding, RegistrarPolicy, aor_key, http_date, process_register,
)
from rvoip_twisted.registrar.store import (
    ILocationStore, MemoryLocationStore, SQLiteLocationStore,
)
from rvoip_twisted.service.registrar import AuthGate, Registrar
from rvoip_twisted.sip.auth import ClientAuth, parse_challenge
from rvoip_twisted.sip.message import Request
from rvoip_twisted.sip.parser import parse_message
from rvoip_twisted.sip.uri import parse_uri

from .test_sessions import OFFER, Harness

AOR = "sip:bob@rvoip"
PASSWORD = "zanzibar"


def register_text(call_id="reg1", cseq=1, contacts=("<sip:bob@192.0.2.1:5062>",),
                  expires=None, user="bob", branch=None, extra=(), from_user=None):
    lines = [
        "REGISTER sip:127.0.0.1:5060 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=%s;rport" % (
            branch or "z9hG4bKr%s%d" % (call_id, cseq)),
        "Max-Forwards: 70",
        "From: <sip:%s@127.0.0.1>;tag=f%s" % (from_user or user, call_id),
        "To: <sip:%s@127.0.0.1>" % (user,),
        "Call-ID: %s" % (call_id,),
        "CSeq: %d REGISTER" % (cseq,),
    ]
    lines += ["Contact: %s" % (c,) for c in contacts]
    if expires is not None:
        lines.append("Expires: %s" % (expires,))
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def register(**kw):
    return parse_message(register_text(**kw))


def contacts_of(response):
    return [(str(c.uri), c.params.get("expires"), c.params.get("q")) for c in response.contacts]


class ProcessRegisterTests(SynchronousTestCase):
    """L{process_register}: RFC 3261 10.3 steps 6-8 as a pure function of the request, the
    stored bindings and the time."""

    policy = RegistrarPolicy(min_expires=60, max_expires=3600)

    def decide(self, request, bindings=(), now=1000.0, policy=None):
        return process_register(request, AOR, list(bindings), now, policy or self.policy,
                                "UDP 192.0.2.1:5062")

    def test_add_binding(self):
        """A new contact is bound for the Expires asked for; the 200 lists it with its expiry
        and carries a Date."""
        out = self.decide(register(expires=600))
        self.assertEqual(out.status, 200)
        [b] = out.bindings
        self.assertEqual((b.aor, b.contact, b.expires_at, b.call_id, b.cseq, b.source),
                         (AOR, "sip:bob@192.0.2.1:5062", 1600.0, "reg1", 1, "UDP 192.0.2.1:5062"))
        response = out.response(register(expires=600))
        self.assertEqual(contacts_of(response), [("sip:bob@192.0.2.1:5062", "600", None)])
        self.assertEqual(response.get("Date"), http_date(1000.0))
        self.assertTrue(response.get("Date").endswith("GMT"))

    def test_contact_expires_parameter_wins(self):
        """The Contact's expires parameter overrides the Expires header."""
        out = self.decide(register(contacts=("<sip:bob@192.0.2.1:5062>;expires=120",),
                                   expires=600))
        self.assertEqual(out.bindings[0].expires_at, 1120.0)

    def test_default_and_maximum_expiry(self):
        """Without any expiry the default (3600) applies; above the maximum it is lowered."""
        out = self.decide(register())
        self.assertEqual(out.bindings[0].expires_at, 1000.0 + 3600)
        policy = RegistrarPolicy(min_expires=60, max_expires=300)
        out = self.decide(register(expires=86400), policy=policy)
        self.assertEqual(out.bindings[0].expires_at, 1300.0)

    def test_interval_too_brief(self):
        """An expiry below the minimum (other than 0) gets 423 with Min-Expires; nothing is
        stored."""
        out = self.decide(register(contacts=("<sip:bob@192.0.2.1:5062>;expires=30",)))
        self.assertEqual(out.status, 423)
        self.assertIsNone(out.bindings)
        self.assertIn(("Min-Expires", "60"), out.headers)

    def test_refresh(self):
        """The same contact from the same Call-ID with a higher CSeq refreshes the binding."""
        first = self.decide(register(expires=600)).bindings
        out = self.decide(register(cseq=2, expires=900), first, now=1500.0)
        self.assertEqual(len(out.bindings), 1)
        self.assertEqual((out.bindings[0].expires_at, out.bindings[0].cseq), (2400.0, 2))

    def test_out_of_order_cseq(self):
        """Same Call-ID with a CSeq not higher than the stored one: 500, nothing changes."""
        first = self.decide(register(cseq=5, expires=600)).bindings
        for cseq in (5, 4):
            out = self.decide(register(cseq=cseq, expires=0), first)
            self.assertEqual(out.status, 500)
            self.assertIsNone(out.bindings)

    def test_new_call_id_any_cseq(self):
        """Another Call-ID (the UA restarted) may use any CSeq."""
        first = self.decide(register(cseq=5, expires=600)).bindings
        out = self.decide(register(call_id="other", cseq=1, expires=300), first)
        self.assertEqual(out.status, 200)
        self.assertEqual(out.bindings[0].call_id, "other")

    def test_remove_with_expires_zero(self):
        """Expires 0 on a contact removes its binding; the 200 lists what remains."""
        first = self.decide(register(contacts=("<sip:bob@192.0.2.1:5062>",
                                               "<sip:bob@192.0.2.2:5062>"), expires=600)).bindings
        out = self.decide(register(cseq=2, contacts=("<sip:bob@192.0.2.1:5062>;expires=0",)),
                          first)
        self.assertEqual([b.contact for b in out.bindings], ["sip:bob@192.0.2.2:5062"])

    def test_contact_uri_comparison(self):
        """Contacts are compared as URIs (RFC 3261 19.1.4): host case does not matter."""
        first = self.decide(register(contacts=("<sip:bob@Host.Example:5062>",),
                                     expires=600)).bindings
        out = self.decide(register(cseq=2, contacts=("<sip:bob@host.example:5062>",),
                                   expires=0), first)
        self.assertEqual(out.bindings, ())

    def test_star_removes_all(self):
        """Contact: * with Expires: 0 removes every binding of the AOR."""
        first = self.decide(register(contacts=("<sip:bob@192.0.2.1:5062>",
                                               "<sip:bob@192.0.2.2:5062>"), expires=600)).bindings
        out = self.decide(register(cseq=2, contacts=("*",), expires=0), first)
        self.assertEqual((out.status, out.bindings), (200, ()))
        self.assertEqual(out.response(register()).contacts, [])

    def test_star_rules(self):
        """Contact: * without Expires: 0, or with another contact, is a 400."""
        self.assertEqual(self.decide(register(contacts=("*",), expires=60)).status, 400)
        self.assertEqual(self.decide(register(contacts=("*",))).status, 400)
        self.assertEqual(self.decide(register(contacts=("*", "<sip:bob@192.0.2.1>"),
                                              expires=0)).status, 400)

    def test_star_out_of_order(self):
        """Contact: * replayed with an old CSeq of the same Call-ID is refused (500)."""
        first = self.decide(register(cseq=3, expires=600)).bindings
        out = self.decide(register(cseq=3, contacts=("*",), expires=0), first)
        self.assertEqual(out.status, 500)

    def test_several_contacts_and_q(self):
        """Several contacts per AOR, listed highest q first with their q-values."""
        out = self.decide(register(contacts=("<sip:bob@192.0.2.1:5062>;q=0.5",
                                             "<sip:bob@192.0.2.2:5062>;q=1.0",
                                             "<sip:bob@192.0.2.3:5062>;q=0.7"), expires=600))
        self.assertEqual([(b.contact, b.q) for b in out.bindings], [
            ("sip:bob@192.0.2.2:5062", 1.0), ("sip:bob@192.0.2.3:5062", 0.7),
            ("sip:bob@192.0.2.1:5062", 0.5)])
        listed = contacts_of(out.response(register()))
        self.assertEqual([q for _, _, q in listed], ["1.0", "0.7", "0.5"])

    def test_bad_q_and_expires(self):
        """A malformed q or expires parameter is a 400."""
        for contact in ("<sip:bob@192.0.2.1>;q=2", "<sip:bob@192.0.2.1>;q=x",
                        "<sip:bob@192.0.2.1>;expires=-5", "<sip:bob@192.0.2.1>;expires=abc"):
            self.assertEqual(self.decide(register(contacts=(contact,))).status, 400, contact)

    def test_query(self):
        """Without Contact the REGISTER is a query: the 200 lists the live bindings with
        their remaining time, and nothing is written."""
        first = self.decide(register(expires=600)).bindings
        out = self.decide(register(cseq=2, contacts=()), first, now=1400.0)
        self.assertIsNone(out.bindings)
        self.assertEqual(contacts_of(out.response(register())),
                         [("sip:bob@192.0.2.1:5062", "200", None)])

    def test_expired_bindings_ignored(self):
        """A binding past its expiry is neither listed nor kept."""
        first = self.decide(register(expires=600)).bindings
        out = self.decide(register(call_id="x", contacts=("<sip:bob@192.0.2.9>",), expires=60),
                          first, now=1600.0)
        self.assertEqual([b.contact for b in out.bindings], ["sip:bob@192.0.2.9"])

    def test_too_many_contacts(self):
        """More than max_contacts bindings: 403."""
        policy = RegistrarPolicy(max_contacts=2)
        contacts = tuple("<sip:bob@192.0.2.%d>" % i for i in range(3))
        self.assertEqual(self.decide(register(contacts=contacts), policy=policy).status, 403)

    def test_aor_key(self):
        """The AOR is sip:user@domain whatever the host, port, scheme and parameters."""
        self.assertEqual(aor_key(parse_uri("sips:bob@127.0.0.1:5070;transport=tcp"), "rvoip"),
                         "sip:bob@rvoip")
        self.assertEqual(aor_key(parse_uri("sip:bob@Example.COM")), "sip:bob@example.com")
        self.assertIsNone(aor_key(parse_uri("sip:example.com")))
        self.assertEqual(aor_key(parse_uri("tel:+1-555"), "d"), "sip:+1-555@d")

    def test_policy_validation(self):
        """A policy whose minimum exceeds its maximum is refused."""
        self.assertRaises(ValueError, RegistrarPolicy, min_expires=100, max_expires=50)


class StoreTestsMixin:
    """What every L{ILocationStore} must do; C{self.result(d)} waits for a Deferred."""

    def binding(self, contact="sip:bob@192.0.2.1", expires_at=100.0, aor=AOR, q=None):
        return Binding(aor, contact, expires_at, q, "c", 1, "UDP 192.0.2.1:5060")

    def test_interface(self):
        """The store provides L{ILocationStore}."""
        self.assertTrue(verifyObject(ILocationStore, self.store))

    def test_put_get_replace(self):
        """put replaces an AOR's whole set; get returns only live bindings."""
        store, result = self.store, self.result
        result(store.put(AOR, [self.binding(), self.binding("sip:bob@192.0.2.2", 50.0, q=0.5)]))
        self.assertEqual(result(store.get(AOR, 60.0)), [self.binding()])
        result(store.put(AOR, [self.binding("sip:bob@192.0.2.3")]))
        self.assertEqual([b.contact for b in result(store.get(AOR, 0.0))],
                         ["sip:bob@192.0.2.3"])
        result(store.put(AOR, []))
        self.assertEqual(result(store.get(AOR, 0.0)), [])

    def test_expire_and_count(self):
        """expire deletes what expired and says how many; count counts the live ones."""
        store, result = self.store, self.result
        result(store.put(AOR, [self.binding(expires_at=10.0), self.binding("sip:b@x", 20.0)]))
        result(store.put("sip:alice@rvoip",
                         [self.binding(aor="sip:alice@rvoip", expires_at=30.0)]))
        self.assertEqual(result(store.count(0.0)), 3)
        self.assertEqual(result(store.expire(20.0)), 2)
        self.assertEqual(result(store.count(0.0)), 1)
        self.assertEqual(result(store.get(AOR, 0.0)), [])


class MemoryStoreTests(StoreTestsMixin, SynchronousTestCase):
    def setUp(self):
        self.store = MemoryLocationStore()

    def result(self, d):
        return self.successResultOf(d)


class ThreadReactor:
    """
    What L{adbapi.ConnectionPool} needs of a reactor, without running one: the
    pool starts at once, and results its thread hands over with
    C{callFromThread} wait in a queue that L{wait} drains (so these tests run
    the same under trial and pytest, whatever ran the global reactor before).
    """

    def __init__(self):
        self.calls = queue.Queue()

    def callWhenRunning(self, f, *args, **kwargs):
        f(*args, **kwargs)

    def addSystemEventTrigger(self, *args, **kwargs):
        return object()

    def removeSystemEventTrigger(self, trigger_id):
        pass

    def callFromThread(self, f, *args, **kwargs):
        self.calls.put((f, args, kwargs))

    def wait(self, d, timeout=10.0):
        results = []
        d.addBoth(results.append)
        deadline = time.monotonic() + timeout
        while not results:
            f, args, kwargs = self.calls.get(timeout=max(0.01, deadline - time.monotonic()))
            f(*args, **kwargs)
        result = results[0]
        if isinstance(result, Failure):
            result.raiseException()
        return result


class SQLiteStoreTests(StoreTestsMixin, SynchronousTestCase):
    """The SQLite store: queries on the pool's thread, never on the caller's."""

    def setUp(self):
        # not self.mktemp(): under pytest it litters the working directory
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        self.path = os.path.join(directory, "bindings.sqlite")
        self.reactor = ThreadReactor()
        self.store = SQLiteLocationStore(self.path, self.reactor)
        self.addCleanup(lambda: self.store.close())

    def result(self, d):
        return self.reactor.wait(d)

    def test_not_on_the_calling_thread(self):
        """A query's result arrives through callFromThread: the query ran on another thread."""
        d = self.store.count(0.0)
        self.assertNoResult(d)
        self.assertEqual(self.result(d), 0)

    def test_survives_reopen(self):
        """Bindings written by one store are read back by a new store on the same file."""
        self.result(self.store.put(AOR, [self.binding(q=0.8)]))
        self.store.close()
        self.store.close()                    # idempotent
        self.store = SQLiteLocationStore(self.path, self.reactor)
        self.assertEqual(self.result(self.store.get(AOR, 0.0)), [self.binding(q=0.8)])

    def test_bad_path(self):
        """A database that cannot be opened fails at construction, not on first use."""
        self.assertRaises(sqlite3.Error, SQLiteLocationStore,
                          os.path.join(self.path, "no", "such", "dir"), self.reactor)


# ------------------------------------------------------------------ the service


class FakeServer(service.MultiService):
    """What L{Registrar.install} needs of a L{SIPServer}, over a L{Harness}."""

    def __init__(self, harness):
        service.MultiService.__init__(self)
        self.harness = harness
        self.reactor = harness.clock
        self.transport = harness.transport
        self.transactions = harness.transactions
        self.sessions = harness.sessions
        self.registrar = None

    @property
    def handler(self):
        return self.sessions.handler

    @handler.setter
    def handler(self, value):
        self.sessions.handler = value


class SlowStore(MemoryLocationStore):
    """A memory store whose writes wait for the test."""

    def __init__(self):
        MemoryLocationStore.__init__(self)
        self.puts = []

    def put(self, aor, bindings):
        d = defer.Deferred()
        self.puts.append(d)
        d.addCallback(lambda _: MemoryLocationStore.put(self, aor, bindings))
        return d


class FailingStore(MemoryLocationStore):
    def get(self, aor, now):
        return defer.fail(RuntimeError("disk on fire"))


def make_registrar(users=None, store=None, action="answer", **kw):
    h = Harness(action)
    h.clock.advance(1_000_000)
    server = FakeServer(h)
    reg = Registrar(h.clock, store, users=users, **kw)
    reg.install(server)
    server.startService()
    return h, reg, server


def authorized(h, text, client):
    """Send C{text}, expect a challenge, answer it with C{client}; return the final response."""
    h.inject(text)
    [challenge] = h.sent()
    request = parse_message(text)
    name, value = client.authorize(request, challenge)
    request.add(name, value)
    request.set("CSeq", "%d %s" % (request.cseq[0] + 1, request.method))
    request.replace_top_via(request.top_via.replace(
        params={"branch": request.top_via.branch + "x", "rport": None}))
    h.inject(request.to_bytes())
    [final] = h.sent()
    return challenge, request, final


class RegistrarServiceTests(SynchronousTestCase):
    """The registrar over the real transport, transaction and session layers, on a Clock."""

    def test_open_registrar(self):
        """Without users anyone registers; the binding is found by lookup."""
        h, reg, _ = make_registrar()
        h.inject(register_text(expires=120))
        [ok] = h.sent()
        self.assertEqual(ok.status, 200)
        self.assertEqual(contacts_of(ok), [("sip:bob@192.0.2.1:5062", "120", None)])
        [b] = self.successResultOf(reg.lookup("bob"))
        self.assertEqual(b.contact, "sip:bob@192.0.2.1:5062")
        self.assertEqual(b.source, "UDP 192.0.2.1:5062")
        self.assertEqual(self.successResultOf(reg.lookup(parse_uri("sip:bob@10.0.0.1:5099"))),
                         [b])

    def test_register_in_allow(self):
        """Once installed, REGISTER is listed in Allow (OPTIONS)."""
        h, reg, _ = make_registrar()
        self.assertIn("REGISTER", h.sessions.allow())

    def test_challenge_then_accept_md5_and_sha256(self):
        """With both algorithms configured, REGISTER gets 401 with MD5 and SHA-256
        challenges (qop=auth); the right answer with either algorithm is accepted (our
        client picks SHA-256)."""
        h, reg, _ = make_registrar(users={"bob": PASSWORD}, algorithms=("MD5", "SHA-256"))
        challenge, request, ok = authorized(h, register_text(expires=300),
                                            ClientAuth("bob", PASSWORD))
        self.assertEqual(challenge.status, 401)
        algorithms = [parse_challenge(v)["algorithm"]
                      for v in challenge.get_all("WWW-Authenticate")]
        self.assertEqual(algorithms, ["MD5", "SHA-256"])
        self.assertEqual([parse_challenge(v)["qop"]
                          for v in challenge.get_all("WWW-Authenticate")], [["auth"]] * 2)
        self.assertIn("algorithm=SHA-256", request.get("Authorization"))
        self.assertEqual(ok.status, 200)
        # MD5: a client that only takes the MD5 challenge
        only_md5 = parse_message(challenge.to_bytes())
        only_md5.remove("WWW-Authenticate")
        only_md5.add("WWW-Authenticate", challenge.get_all("WWW-Authenticate")[0])
        text = register_text(call_id="md5", expires=300)
        request = parse_message(text)
        name, value = ClientAuth("bob", PASSWORD).authorize(request, only_md5)
        self.assertIn("algorithm=MD5", value)
        h.inject(register_text(call_id="md5", expires=300, extra=(name + ": " + value,)))
        self.assertEqual([m.status for m in h.sent()], [200])

    def test_wrong_password(self):
        """A wrong password is challenged again (and never bound)."""
        h, reg, _ = make_registrar(users={"bob": PASSWORD})
        _, _, final = authorized(h, register_text(), ClientAuth("bob", "wrong"))
        self.assertEqual(final.status, 401)
        self.assertEqual(self.successResultOf(reg.lookup("bob")), [])

    def test_only_own_aor(self):
        """An authenticated user registering someone else's AOR gets 403."""
        h, reg, _ = make_registrar(users={"bob": PASSWORD, "alice": "secret"})
        _, _, final = authorized(h, register_text(user="bob", from_user="alice"),
                                 ClientAuth("alice", "secret"))
        self.assertEqual(final.status, 403)
        self.assertEqual(self.successResultOf(reg.lookup("bob")), [])

    def test_default_md5_only(self):
        """By default the challenge is one MD5 challenge (what older UAs can answer)."""
        h, reg, _ = make_registrar(users={"bob": PASSWORD})
        h.inject(register_text())
        [challenge] = h.sent()
        self.assertEqual([parse_challenge(v)["algorithm"]
                          for v in challenge.get_all("WWW-Authenticate")], ["MD5"])

    def test_algorithm_order(self):
        """The challenges follow the configured order (SHA-256 first when asked)."""
        h, reg, _ = make_registrar(users={"bob": PASSWORD}, algorithms=("SHA-256", "MD5"))
        h.inject(register_text())
        [challenge] = h.sent()
        self.assertEqual([parse_challenge(v)["algorithm"]
                          for v in challenge.get_all("WWW-Authenticate")], ["SHA-256", "MD5"])

    def test_stale_nonce(self):
        """A right answer with a nonce older than nonce_ttl gets 401 with stale=true."""
        h, reg, _ = make_registrar(users={"bob": PASSWORD}, nonce_ttl=30)
        h.inject(register_text())
        [challenge] = h.sent()
        h.clock.advance(31)
        request = parse_message(register_text(cseq=2))
        name, value = ClientAuth("bob", PASSWORD).authorize(request, challenge)
        h.inject(register_text(cseq=2, extra=(name + ": " + value,)))
        [again] = h.sent()
        self.assertEqual(again.status, 401)
        self.assertTrue(all(parse_challenge(v)["stale"]
                            for v in again.get_all("WWW-Authenticate")))

    def test_nonce_count_replay(self):
        """Credentials replayed with the same nonce count are refused (401 stale=true), a
        higher count is accepted."""
        h, reg, _ = make_registrar(users={"bob": PASSWORD})
        client = ClientAuth("bob", PASSWORD)
        _, request, ok = authorized(h, register_text(), client)
        self.assertEqual(ok.status, 200)
        replay = request.get("Authorization")
        h.inject(register_text(cseq=3, extra=("Authorization: " + replay,)))
        [again] = h.sent()
        self.assertEqual(again.status, 401)
        self.assertIn("stale=true", again.get("WWW-Authenticate"))
        fresh = parse_message(register_text(cseq=4))
        [(name, value)] = client.credentials_for(fresh)
        self.assertIn("nc=00000002", value)
        h.inject(register_text(cseq=4, extra=(name + ": " + value,)))
        self.assertEqual([m.status for m in h.sent()], [200])

    def test_no_credentials_in_logs(self):
        """Failed and successful authentication log no password, digest response or nonce."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        h, reg, _ = make_registrar(users={"bob": PASSWORD})
        _, request, _ = authorized(h, register_text(), ClientAuth("bob", "hunter2-wrong"))
        _, request2, _ = authorized(h, register_text(call_id="ok"), ClientAuth("bob", PASSWORD))
        text = "\n".join(formatEvent(e) for e in events)
        self.assertIn("authentication failed for user bob", text)
        for secret in (PASSWORD, "hunter2-wrong", "response=", "nonce"):
            self.assertNotIn(secret, text)

    def test_423_min_expires(self):
        """Too brief an expiry over the wire: 423 with Min-Expires."""
        h, reg, _ = make_registrar(policy=RegistrarPolicy(min_expires=120))
        h.inject(register_text(expires=30))
        [resp] = h.sent()
        self.assertEqual((resp.status, resp.get("Min-Expires")), (423, "120"))

    def test_expiry_loop(self):
        """One LoopingCall deletes bindings once they expire, however many there are."""
        h, reg, _ = make_registrar(expire_interval=10)
        for i in range(5):
            h.inject(register_text(call_id="c%d" % i, contacts=("<sip:bob@192.0.2.%d>" % i,),
                                   expires=60 + i * 10))
        h.sent()
        self.assertEqual(self.successResultOf(reg.store.count(h.clock.seconds())), 5)
        # transactions' own timers aside, the registrar adds no timer per binding
        h.clock.advance(40)
        self.assertEqual(len([c for c in h.clock.getDelayedCalls()
                              if "_expire" in repr(c.func) or "LoopingCall" in repr(c.func)]), 1)
        h.clock.advance(25)          # t=65: the loop ran at 50 and 60; the 60 s binding is gone
        self.assertEqual(len(reg.store._aors["sip:bob@rvoip"]), 4)
        h.clock.advance(60)
        self.assertNotIn("sip:bob@rvoip", reg.store._aors)
        self.assertEqual(reg.expired, 5)

    def test_updates_of_one_aor_are_serialised(self):
        """A second REGISTER for an AOR waits until the first one's write is done (so it
        sees its binding), and both are answered in order."""
        store = SlowStore()
        h, reg, _ = make_registrar(store=store)
        h.inject(register_text(cseq=1, expires=300))
        h.inject(register_text(cseq=2, contacts=("<sip:bob@192.0.2.7>",), expires=300))
        self.assertEqual(h.sent(), [])
        self.assertEqual(len(store.puts), 1)
        store.puts[0].callback(None)
        [first] = h.sent()
        self.assertEqual(len(first.contacts), 1)
        store.puts[1].callback(None)
        [second] = h.sent()
        self.assertEqual(len(second.contacts), 2)

    def test_store_failure_500(self):
        """A failing store answers 500 (and is logged), the server goes on."""
        h, reg, _ = make_registrar(store=FailingStore())
        h.inject(register_text())
        [resp] = h.sent()
        self.assertEqual(resp.status, 500)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_stop_closes_store(self):
        """Stopping the service stops the loop and closes the store."""
        closed = []
        store = MemoryLocationStore()
        store.close = lambda: closed.append(True)
        h, reg, server = make_registrar(store=store)
        self.successResultOf(defer.maybeDeferred(reg.stopService))
        self.assertEqual(closed, [True])
        self.assertIsNone(reg._loop)


def invite_text(call_id="inv1", from_user="alice", to="sip:bob@127.0.0.1:5060", cseq=1,
                extra=()):
    lines = [
        "INVITE %s SIP/2.0" % (to,),
        "Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKi%s%d;rport" % (call_id, cseq),
        "Max-Forwards: 70",
        "From: <sip:%s@127.0.0.1>;tag=a%s" % (from_user, call_id),
        "To: <%s>" % (to,),
        "Call-ID: %s" % (call_id,),
        "CSeq: %d INVITE" % (cseq,),
        "Contact: <sip:%s@192.0.2.1:5062>" % (from_user,),
        "Content-Type: application/sdp",
    ] + list(extra)
    return ("\r\n".join(lines) + "\r\nContent-Length: %d\r\n\r\n" % len(OFFER)).encode() + OFFER


class InviteAuthTests(SynchronousTestCase):
    """The L{AuthGate}: 407 for INVITEs without valid credentials."""

    def test_407_without_credentials(self):
        """An INVITE without credentials gets 407 with Proxy-Authenticate challenges and
        reaches neither the application nor the media layer."""
        h, reg, _ = make_registrar(users={"alice": "secret"})
        self.assertIsInstance(h.transactions.tu, AuthGate)
        h.inject(invite_text())
        [resp] = h.sent()
        self.assertEqual(resp.status, 407)
        self.assertEqual(len(resp.get_all("Proxy-Authenticate")), 1)
        self.assertEqual(h.app.calls, [])
        self.assertEqual(h.media.sessions, {})

    def test_valid_credentials_reach_the_app(self):
        """The INVITE answered with Proxy-Authorization reaches the application.
        The transport knows INVITEs are challenged (an INVITE with credentials is
        a call in progress, not refused when overloaded)."""
        h, reg, _ = make_registrar(users={"alice": "secret"})
        self.assertTrue(h.transport.challenges_invites)
        challenge, _, final = authorized(h, invite_text(), ClientAuth("alice", "secret"))
        self.assertEqual(challenge.status, 407)
        self.assertEqual(final.status, 200)
        self.assertEqual(len(h.app.calls), 1)

    def test_overloaded_new_call_refused_not_challenged(self):
        """
        Overloaded, a new INVITE without credentials that the transport had to
        parse (here a folded header) is refused 503 by the session layer, not
        challenged 407; one answering the challenge is still authenticated and
        served.
        """
        h, reg, _ = make_registrar(users={"alice": "secret"})
        folded = invite_text(call_id="ovl", extra=["Subject: a", " b"])
        h.inject_after(folded, waited=1.0)
        [resp] = h.sent()
        self.assertEqual((resp.status, resp.get("Retry-After")), (503, "5"))
        self.assertEqual(h.transport.shed_calls, 1)
        challenge, _, final = authorized(h, invite_text(), ClientAuth("alice", "secret"))
        self.assertEqual((challenge.status, final.status), (407, 200))

    def test_wrong_identity_403(self):
        """Credentials of one user on an INVITE whose From is another user: 403."""
        h, reg, _ = make_registrar(users={"alice": "secret", "mallory": "m"})
        _, _, final = authorized(h, invite_text(from_user="alice"), ClientAuth("mallory", "m"))
        self.assertEqual(final.status, 403)
        self.assertEqual(h.app.calls, [])

    def test_trusted_invite_passes(self):
        """An INVITE a trust predicate accepts (our outbound registration's calls) is not
        challenged."""
        h, reg, _ = make_registrar(users={"alice": "secret"})
        reg.trusted.append(lambda request: request.uri.user == "trunk")
        h.inject(invite_text(to="sip:trunk@127.0.0.1:5060"))
        self.assertEqual([m.status for m in h.sent()], [200])

    def test_other_methods_pass(self):
        """OPTIONS and in-dialog requests are not challenged."""
        h, reg, _ = make_registrar(users={"alice": "secret"})
        h.inject(Request("OPTIONS", "sip:x@127.0.0.1", [
            ("Via", "SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKo1"), ("From", "<sip:a@b>;tag=1"),
            ("To", "<sip:x@127.0.0.1>"), ("Call-ID", "o1"), ("CSeq", "1 OPTIONS"),
            ("Max-Forwards", "70")]).to_bytes())
        self.assertEqual([m.status for m in h.sent()], [200])

    def test_no_gate_without_users(self):
        """An open registrar does not authenticate INVITEs."""
        h, reg, _ = make_registrar()
        self.assertIs(h.transactions.tu, h.sessions)
