"""
The registrar service (RFC 3261 section 10) and the digest gate in front
of the session layer.

L{Registrar} answers REGISTER for one domain: it authenticates the request
(RFC 7616 / RFC 8760 digest, when a users table is configured), checks that
the user registers their own address-of-record, serialises the updates of
each AOR, asks the sans-IO L{process_register} what to do, writes the new
bindings to its L{ILocationStore} and answers.  One C{LoopingCall} deletes
expired bindings; lookups ignore them anyway, so a binding is gone at its
expiry to the second whatever the loop's interval.

L{AuthGate} sits between the transaction layer and the session layer (it is
the transaction user the transaction layer sees) and answers an
out-of-dialog INVITE without valid credentials with 407 before a call, a
dialog or an RTP port exists for it.

The registrar is authoritative for a single domain: every REGISTER and
INVITE that reaches it is for that domain, whatever host its URI names (an
IP address, a DNS name), so the AOR of C{sip:bob@192.0.2.1:5060} and of
C{sip:bob@pbx.example.com} is C{sip:bob@DOMAIN}.  Routing calls to the
bindings is the application's job: see L{rvoip_twisted.apps.pbx}.
"""

from twisted.application import service
from twisted.internet import defer
from twisted.internet.task import LoopingCall

from ..logs import Logger
from ..registrar.registrar import RegistrarPolicy, aor_key, process_register
from ..registrar.store import MemoryLocationStore
from ..sip import auth
from ..sip.errors import SIPParseError


def _source_text(request):
    source = request.source
    if source is None:
        return None
    return "%s %s:%d" % (source.transport, source.host, source.port)


class Registrar(service.Service):
    """
    The registrar.

    @param reactor: supplies C{seconds()} and runs the expiry loop.
    @param store: an L{ILocationStore} (default: in memory).
    @param users: user name -> secret (see L{DigestServer}), or C{None}
        for an open registrar (anyone registers any AOR, anyone calls).
    @param realm: the digest realm, and the domain when C{domain} is
        C{None}.
    @param policy: a L{RegistrarPolicy} (expiry limits).
    @param expire_interval: seconds between two runs of the expiry loop.
    @param nonce_ttl: seconds a digest nonce stays fresh (then C{stale=true}).
    @param auth_invite: challenge (407) out-of-dialog INVITEs too, when
        C{users} is given.
    @param algorithms: the digest algorithms challenged with, one
        C{WWW-Authenticate}/C{Proxy-Authenticate} each, in this order.
        MD5 alone by default, as most registrars do: RFC 3261-era UAs answer
        only the first challenge and know only MD5 (SIPp), and some give up
        on the whole response when any challenge names an algorithm they do
        not know (baresip 1.0: "Function not implemented").  Pass
        C{("SHA-256", "MD5")} for RFC 8760 UAs (our own L{ClientAuth} picks
        the strongest offered).  Credentials are checked with whatever
        supported algorithm they name.
    @ivar trusted: predicates C{f(request) -> bool}; an INVITE one of them
        accepts is not challenged (the calls our own outbound registrations
        bring in: see L{RegistrationClient.is_incoming}).
    """

    _log = Logger()
    name = "registrar"

    def __init__(self, reactor, store=None, users=None, realm="rvoip", policy=None,
                 domain=None, expire_interval=10.0, nonce_ttl=300, auth_invite=True,
                 algorithms=("MD5",)):
        self.reactor = reactor
        self.store = store if store is not None else MemoryLocationStore()
        self.realm = realm
        self.domain = (domain or realm).lower()
        self.policy = policy if policy is not None else RegistrarPolicy()
        self.expire_interval = expire_interval
        self.auth_invite = auth_invite
        self.algorithms = tuple(algorithms)
        self.users = frozenset(users) if users else frozenset()
        self.digest = None
        if users:
            self.digest = auth.DigestServer(realm, users, clock=reactor.seconds,
                                            nonce_ttl=nonce_ttl)
        self.trusted = []
        self._locks = {}
        self._pending = set()
        self._loop = None
        self.registers = 0
        self.expired = 0

    def __repr__(self):
        return "<Registrar domain=%s users=%d store=%r>" % (
            self.domain, len(self.users), self.store)

    # ------------------------------------------------------------ wiring

    def install(self, server):
        """
        Make C{server} (a L{SIPServer}) answer REGISTER through this
        registrar and, with a users table, challenge its INVITEs; add this
        service to it.
        """
        sessions = server.sessions
        sessions.methods["REGISTER"] = self.handle_register
        sessions.registrar = self
        server.registrar = self
        if self.digest is not None and self.auth_invite:
            server.transactions.tu = AuthGate(server.transactions.tu or sessions, self,
                                              server.transport)
            # an INVITE with credentials answers our 407: not refused when overloaded
            server.transport.challenges_invites = True
        self.setServiceParent(server)
        return self

    # ------------------------------------------------------------ service

    def startService(self):
        service.Service.startService(self)
        self._loop = LoopingCall(self._expire)
        self._loop.clock = self.reactor
        self._loop.start(self.expire_interval, now=True).addErrback(
            lambda f: self._log.failure("registrar expiry loop stopped", failure=f))

    @defer.inlineCallbacks
    def stopService(self):
        """Stop the expiry loop, let the REGISTERs in progress finish, close the store."""
        service.Service.stopService(self)
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self._pending:
            yield defer.DeferredList(list(self._pending))
        yield defer.maybeDeferred(self.store.close)

    def _expire(self):
        now = self.reactor.seconds()

        def done(count):
            if count:
                self.expired += count
                self._log.info("registrar: {count} binding(s) expired", count=count)

        d = self.store.expire(now)
        d.addCallback(done)
        d.addErrback(lambda f: self._log.failure("expiring bindings failed", failure=f))
        return d

    # ------------------------------------------------------------ REGISTER

    def challenge(self, request, txn, status, stale=False):
        """Answer C{request} with a 401 or 407 carrying one challenge per algorithm."""
        name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
        headers = [(name, value) for value in self.digest.challenges(stale, self.algorithms)]
        txn.respond(request.response(status, headers=headers))

    def authenticate(self, request, txn, status):
        """
        Check C{request}'s credentials (C{Authorization} for C{status}
        401, C{Proxy-Authorization} for 407).  Returns the user name, or
        C{None} after answering C{status} with a fresh challenge.
        """
        header = "Authorization" if status == 401 else "Proxy-Authorization"
        result, user = self.digest.check(request, header)
        if result == auth.OK:
            return user
        if result == auth.BAD:
            self._log.info("{method}: authentication failed for user {user} from {source}",
                           method=request.method, user=user or "-",
                           source=_source_text(request))
        self.challenge(request, txn, status, stale=result == auth.STALE)
        return None

    def handle_register(self, request, txn):
        """The session layer's REGISTER handler."""
        user = None
        if self.digest is not None:
            user = self.authenticate(request, txn, 401)
            if user is None:
                return
        try:
            to_uri = request.to.uri
        except SIPParseError:
            txn.respond(request.response(400, "Bad To"))
            return
        aor = aor_key(to_uri, self.domain)
        if aor is None:
            txn.respond(request.response(404, "No user in the address-of-record"))
            return
        if user is not None and to_uri.user != user:
            # Only a user may register their own AOR (RFC 3261 10.3 step 3).
            self._log.info("REGISTER: user {user} may not register {aor}", user=user, aor=aor)
            txn.respond(request.response(403, "Not your address-of-record"))
            return
        lock = self._locks.get(aor)
        if lock is None:
            lock = self._locks[aor] = defer.DeferredLock()
        d = lock.run(self._update, request, txn, aor)
        self._pending.add(d)

        def finished(result):
            self._pending.discard(d)
            if not lock.locked and not lock.waiting and self._locks.get(aor) is lock:
                del self._locks[aor]
            return result

        d.addBoth(finished)

    @defer.inlineCallbacks
    def _update(self, request, txn, aor):
        try:
            bindings = yield self.store.get(aor, self.reactor.seconds())
            now = self.reactor.seconds()
            outcome = process_register(request, aor, bindings, now, self.policy,
                                       _source_text(request))
            if outcome.bindings is not None:
                yield self.store.put(aor, outcome.bindings)
        except Exception:
            self._log.failure("REGISTER for {aor} failed", aor=aor)
            if not txn.final_sent:
                txn.respond(request.response(500, "Location Store Error"))
            return
        self.registers += 1
        if outcome.bindings is not None:
            self._log.info("registered {aor}: {count} contact(s)", aor=aor,
                           count=len(outcome.bindings))
        elif outcome.status != 200:
            self._log.info("REGISTER for {aor}: {status} {reason}", aor=aor,
                           status=outcome.status, reason=outcome.reason or "")
        txn.respond(outcome.response(request))

    # ------------------------------------------------------------ lookups

    def aor_of(self, uri):
        """The canonical AOR of a Request-URI (or C{None})."""
        return aor_key(uri, self.domain)

    def lookup(self, uri):
        """
        A Deferred firing with the live bindings of the AOR of C{uri} (a
        L{URI}, or a user name), highest q first.
        """
        if isinstance(uri, str):
            aor = "sip:%s@%s" % (uri, self.domain)
        else:
            aor = self.aor_of(uri)
            if aor is None:
                return defer.succeed([])
        d = self.store.get(aor, self.reactor.seconds())
        d.addCallback(lambda bindings: sorted(bindings, key=lambda b: b.sort_key))
        return d

    def is_user(self, name):
        """Whether C{name} is in the users table."""
        return name in self.users

    def is_trusted(self, request):
        for predicate in self.trusted:
            try:
                if predicate(request):
                    return True
            except Exception:
                self._log.failure("trust predicate failed")
        return False


class AuthGate:
    """
    The transaction user in front of the session layer when INVITEs are
    authenticated: an out-of-dialog INVITE goes on only with valid
    C{Proxy-Authorization} credentials of a user whose name is the From
    user (else 407, or 403 for someone else's identity).  Everything
    else goes straight through.
    """

    _log = Logger()

    def __init__(self, tu, registrar, transport=None):
        self.tu = tu
        self.registrar = registrar
        self.transport = transport
        self.challenged = 0

    def request_received(self, request, txn):
        if request.method == "INVITE" and not self._allowed(request, txn):
            return
        self.tu.request_received(request, txn)

    def _allowed(self, request, txn):
        registrar = self.registrar
        try:
            if request.to_tag is not None:
                return True          # in-dialog: the dialog authenticates
            from_user = request.from_.uri.user
        except (SIPParseError, AttributeError):
            return True              # malformed: the session layer answers 400
        if registrar.is_trusted(request):
            return True
        transport = self.transport
        if transport is not None and transport.overloaded and not auth.carries_credentials(request):
            return True              # a new call the session layer refuses (503): no challenge
        user = registrar.authenticate(request, txn, 407)
        if user is None:
            self.challenged += 1
            return False
        if from_user != user:
            registrar._log.info("INVITE: user {user} may not call as {from_user}",
                                user=user, from_user=from_user or "-")
            txn.respond(request.response(403, "From is not the authenticated user"))
            return False
        return True

    def __getattr__(self, name):
        return getattr(self.tu, name)


__all__ = ["Registrar", "AuthGate"]
