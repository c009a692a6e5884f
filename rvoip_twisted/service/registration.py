"""
Outbound registration: the server registers one of its addresses with a
registrar (RFC 3261 section 10.2), as a SIP phone registers with its
provider, so calls to that address-of-record reach our Contact (and the
application).

L{RegistrationClient} is a service, child of the L{SIPServer}: on start it
sends REGISTER with our Contact, answers 401/407 challenges with
L{ClientAuth}, refreshes at about half the granted expiry (re-using the
digest nonce pre-emptively), retries after a failure with exponential
back-off (capped), takes 423's Min-Expires, and on stop unregisters
(Expires: 0) and waits (bounded) for the answer.
"""

import random as _random

from twisted.application import service
from twisted.internet import defer

from ..logs import Logger
from ..sip.auth import ClientAuth
from ..sip.errors import SIPParseError
from ..sip.ids import new_branch, new_call_id, new_tag
from ..sip.message import Request
from ..sip.uri import URI, parse_uri

UNREGISTERED = "unregistered"
REGISTERING = "registering"
REGISTERED = "registered"
FAILED = "failed"
UNREGISTERING = "unregistering"


def parse_register_spec(spec):
    """
    C{sip:user:password@host[:port][;transport=tcp]} (the C{--register}
    value) -> C{(aor, password, registrar_uri)}: the AOR C{sip:user@host}
    (no password, port or parameters), the password (or C{None}) and the
    registrar's URI C{sip:host[:port][;transport=...]}.

    @raise ValueError: not a sip/sips URI with a user and a host (the
        message never repeats the password).
    """
    try:
        uri = parse_uri(spec if spec.startswith(("sip:", "sips:")) else "sip:" + spec)
    except SIPParseError:
        raise ValueError("not a SIP URI: use sip:user:password@host[:port]")
    if not uri.is_sip or not uri.user or not uri.host:
        raise ValueError("use sip:user:password@host[:port]")
    aor = URI(uri.scheme, user=uri.user, host=uri.host)
    params = {k: v for k, v in uri.params.items() if k == "transport"}
    registrar = URI(uri.scheme, host=uri.host, port=uri.port, params=params)
    return aor, uri.password, registrar


class RegistrationClient(service.Service):
    """
    Keeps one address-of-record registered.

    @param server: the L{SIPServer} (or anything with C{reactor},
        C{transport}, C{transactions}) to send through.
    @param aor: the address-of-record (text or L{URI}), C{sip:user@domain}.
    @param password: the digest password (C{None}: no credentials).
    @param registrar_uri: the registrar (text or L{URI}); default
        C{sip:DOMAIN} of the AOR.
    @param expires: the expiry asked for, in seconds.
    @param username: the digest user name (default: the AOR's user).
    @param contact_user: the user part of our Contact (default: the AOR's user).
    @param retry_min: the first back-off delay after a failure; it doubles
        with each failure in a row, up to C{retry_max}.
    @param refresh_ratio: refresh after this fraction of the granted expiry.
    @param unregister_timeout: how long L{stopService} waits for the answer
        to the unregistering REGISTER.
    @param dest: a L{Destination} to send to instead of resolving the
        registrar URI.
    @param random: a C{random.Random} for the back-off jitter (a fraction
        C{jitter} of the delay is subtracted at random); tests pass one
        seeded, or C{jitter=0}.

    @ivar state: C{unregistered}, C{registering}, C{registered}, C{failed}
        or C{unregistering}.
    @ivar granted: the expiry the registrar granted last, in seconds.
    @ivar failures: failures in a row (reset by a success).
    @ivar last_status: the status of the last final response (408 for a
        timeout, 503 for a transport error).
    """

    _log = Logger()

    def __init__(self, server, aor, password=None, registrar_uri=None, expires=3600,
                 username=None, contact_user=None, retry_min=5.0, retry_max=300.0,
                 refresh_ratio=0.5, unregister_timeout=5.0, dest=None, jitter=0.1,
                 random=None):
        self.server = server
        self.reactor = server.reactor
        if isinstance(aor, str):
            aor = parse_uri(aor)
        if aor.password is not None or aor.params or aor.port is not None:
            aor = URI(aor.scheme, user=aor.user, host=aor.host)
        if not aor.user or not aor.host:
            raise ValueError("an AOR needs a user and a host: sip:user@domain")
        self.aor = aor
        if registrar_uri is None:
            registrar_uri = URI(aor.scheme, host=aor.host)
        elif isinstance(registrar_uri, str):
            registrar_uri = parse_uri(registrar_uri)
        self.registrar_uri = registrar_uri
        self.expires = int(expires)
        self.username = username or aor.user
        self.contact_user = contact_user or aor.user
        self._auth = ClientAuth(self.username, password) if password else None
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.refresh_ratio = refresh_ratio
        self.unregister_timeout = unregister_timeout
        self.jitter = jitter
        self._random = random if random is not None else _random.Random()
        self._dest = dest
        self.call_id = new_call_id(server.transport.host)
        self.from_tag = new_tag()
        self.cseq = 0
        self.state = UNREGISTERED
        self.granted = None
        self.failures = 0
        self.last_status = None
        self.registrations = 0
        self._requested = None
        self._request = None
        self._txn = None
        self._auth_tries = 0
        self._min_expires_tried = False
        self._timer = None
        self._waiters = []
        self._stopped_d = None
        self._stop_timer = None
        self._bound = False

    def __repr__(self):
        return "<RegistrationClient %s %s>" % (self.aor, self.state)

    # ------------------------------------------------------------ service

    def startService(self):
        service.Service.startService(self)
        self.failures = 0
        self._register(self.expires)

    def stopService(self):
        """
        Stop refreshing and unregister (Expires: 0) if we hold a binding or
        one may be on its way; the Deferred fires on the answer, or after
        C{unregister_timeout}.
        """
        service.Service.stopService(self)
        self._cancel_timer()
        if self.state not in (REGISTERED, REGISTERING):
            self.state = UNREGISTERED
            self._txn = None
            return None
        d = self._stopped_d = defer.Deferred()
        self._stop_timer = self.reactor.callLater(self.unregister_timeout, self._stop_done,
                                                  "timeout")
        self._register(0)
        return d

    def when_registered(self):
        """A Deferred fired (with this client) at the next successful registration."""
        d = defer.Deferred()
        self._waiters.append(d)
        return d

    def is_incoming(self, request):
        """
        Whether C{request} is a call our registration brought: its
        Request-URI user is our Contact user and it comes from the
        registrar's address.  The registrar trusts such INVITEs without
        digest credentials (the provider does not authenticate to us).
        """
        source = request.source
        uri = request.uri
        if source is None or uri is None or uri.user != self.contact_user:
            return False
        dest = self._destination()
        hosts = {dest.host, getattr(self.server.transport, "_resolved", {}).get(dest.host)}
        return source.host in hosts

    # ------------------------------------------------------------ sending

    def contact_uri(self, transport="UDP"):
        return self.server.transport.contact_uri(self.contact_user, transport)

    def _destination(self):
        if self._dest is None:
            self._dest = self.server.transport.uri_destination(self.registrar_uri)
        return self._dest

    def _register(self, expires, auth_headers=None):
        """Send a REGISTER asking for C{expires} seconds (0: unregister)."""
        self._cancel_timer()
        transport = self.server.transport
        dest = self._destination()
        self.cseq += 1
        self._requested = expires
        self.state = UNREGISTERING if expires == 0 else REGISTERING
        contact = "<%s>" % (self.contact_uri(dest.transport),)
        headers = [
            ("Via", transport.via(dest.transport, new_branch())),
            ("Max-Forwards", "70"),
            ("From", "<%s>;tag=%s" % (self.aor, self.from_tag)),
            ("To", "<%s>" % (self.aor,)),
            ("Call-ID", self.call_id),
            ("CSeq", "%d REGISTER" % (self.cseq,)),
            ("Contact", contact),
            ("Expires", str(expires)),
            ("Allow", getattr(self.server.sessions, "ALLOW", "INVITE, ACK, BYE, CANCEL, OPTIONS")),
            ("User-Agent", getattr(self.server.sessions, "USER_AGENT", "rvoip-twisted")),
        ]
        request = Request("REGISTER", self.registrar_uri, headers)
        if auth_headers is None and self._auth is not None:
            auth_headers = self._auth.credentials_for(request)
        for name, value in auth_headers or ():
            request.add(name, value)
        self._request = request
        try:
            self._txn = self.server.transactions.send_request(request, self, dest)
        except Exception:
            self._log.failure("cannot send REGISTER for {aor}", aor=str(self.aor))
            self._txn = None
            self._failed(503, "Cannot send")

    # ------------------------------------------------------------ client transaction owner

    def response_received(self, response, txn):
        if txn is not self._txn:
            return                           # an older transaction's straggler
        status = response.status
        if status < 200:
            return
        self._txn = None
        self.last_status = status
        request = self._request
        if 200 <= status < 300:
            self._auth_tries = 0
            self._min_expires_tried = False
            if self._requested == 0:
                self._unregistered()
            else:
                self._registered(response)
            return
        if status in (401, 407) and self._auth is not None and self._auth_tries < 2:
            answers = self._auth.authorize_all(request, response)
            if answers:
                self._auth_tries += 1
                self._register(self._requested, answers)
                return
        if status == 423 and self._requested and not self._min_expires_tried:
            try:
                minimum = int(response.get("Min-Expires", "").strip())
            except ValueError:
                minimum = None
            if minimum and minimum > self._requested:
                self._min_expires_tried = True
                self.expires = minimum
                self._register(minimum)
                return
        self._failed(status, response.reason)

    def transaction_timeout(self, txn):
        if txn is self._txn:
            self._txn = None
            self.last_status = 408
            self._failed(408, "Request Timeout")

    def transport_error(self, txn, reason):
        if txn is self._txn:
            self._txn = None
            self.last_status = 503
            self._failed(503, "Transport error: %s" % (reason,))

    # ------------------------------------------------------------ outcomes

    def _granted_expiry(self, response):
        ours = None
        try:
            ours = parse_uri(self.contact_uri(self._destination().transport))
            for contact in response.contacts:
                if contact.uri is not None and contact.uri == ours:
                    value = contact.params.get("expires")
                    if value is not None and value.strip().isdigit():
                        return int(value)
            if response.expires is not None:
                return response.expires
        except SIPParseError:
            pass
        return self._requested

    def _registered(self, response):
        granted = self._granted_expiry(response)
        if granted <= 0:
            self._failed(response.status, "Registrar granted no time")
            return
        self.granted = granted
        self.failures = 0
        self.registrations += 1
        first = not self._bound
        self._bound = True
        self.state = REGISTERED
        if first:
            self._log.info("registered {aor} at {registrar} for {granted} s",
                           aor=str(self.aor), registrar=str(self.registrar_uri), granted=granted)
        if self.running:
            delay = max(1.0, granted * self.refresh_ratio)
            self._timer = self.reactor.callLater(delay, self._refresh)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(self)

    def _refresh(self):
        self._timer = None
        self._register(self.expires)

    def _failed(self, status, reason):
        if self._requested == 0:
            self._log.info("unregistering {aor} failed: {status} {reason}",
                           aor=str(self.aor), status=status, reason=reason or "")
            self._unregistered("failed")
            return
        self.failures += 1
        self.state = FAILED
        self._bound = False
        self._auth_tries = 0
        if not self.running:
            return
        delay = min(self.retry_max, self.retry_min * 2 ** (self.failures - 1))
        if self.jitter:
            delay -= delay * self.jitter * self._random.random()
        self._log.warn("registering {aor} failed: {status} {reason}; retrying in {delay:.1f} s",
                       aor=str(self.aor), status=status, reason=reason or "", delay=delay)
        self._timer = self.reactor.callLater(delay, self._refresh)

    def _unregistered(self, why="done"):
        self.state = UNREGISTERED
        self.granted = None
        self._bound = False
        self._stop_done(why)

    def _stop_done(self, why):
        timer, self._stop_timer = self._stop_timer, None
        if timer is not None and timer.active():
            timer.cancel()
        if why == "timeout":
            self._log.info("no answer to unregistering {aor}", aor=str(self.aor))
            self.state = UNREGISTERED
            self._txn = None
        elif why == "done":
            self._log.info("unregistered {aor}", aor=str(self.aor))
        d, self._stopped_d = self._stopped_d, None
        if d is not None and not d.called:
            d.callback(None)

    def _cancel_timer(self):
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()


__all__ = ["RegistrationClient", "parse_register_spec"]
