"""
The PBX application: a call to a registered user rings every registered
contact of that user and is bridged to the first that answers; other calls
go to a fallback application.

Routing, for the Request-URI user of each incoming call:
  1. the AOR has live bindings: parallel forking.  The caller hears 180;
     an outgoing call is placed to every contact (highest q first, all at
     once); the first to answer wins, the others are cancelled (or sent
     BYE if they answered too); the caller is answered and the two calls'
     media are bridged (L{MediaSession.relay}: payloads pass untouched when
     both legs use the same codec, PCMU/PCMA are transcoded otherwise).
     When one leg ends, the other is hung up.  If every contact fails, the
     caller gets the best of their final responses (a 6xx, else 486, else
     the lowest other 4xx; 408, 5xx and transport errors become 480); after
     C{ring_timeout} seconds without an answer, 480.
  2. a user of the users table without a binding: 480.
  3. anyone else: the fallback application (C{--app}), or 404 without one.
A call that one of our own outbound registrations brought in (the
registrar's L{Registrar.is_trusted}: it comes from that registrar to our
Contact) skips all this and goes to the application (C{inbound}).

Why a B2BUA and not a proxy
---------------------------
The server is a user agent core (transactions, dialogs, calls with their
media); a proxy (RFC 3261 section 16) would need a second core it does not
have: Via stacking, Record-Route, per-branch response forwarding, CANCEL and
ACK forwarding.  A B2BUA is two ordinary calls and a bridge, built on the
public API, and it gives the server control of the call: it can end both
legs (C{--max-duration}, shutdown), logs the quality of each leg, anchors the
media (each leg latches its peer with symmetric RTP, so it works through
NAT, and PCMU/PCMA callers reach callees of the other codec), and hides each
side's addresses from the other.  What it costs: every RTP packet crosses
the server (two ports per leg, one relay per packet in Python, so far fewer
concurrent calls than a proxy that never sees RTP), re-INVITEs (hold) and
SDP beyond the negotiated codec stay on their own leg, and the caller's
Call-ID and tags are not the callee's.
"""

from zope.interface import implementer

from ..logs import Logger
from ..call import CallFailed
from ..interfaces import ICallHandler
from ..sip.errors import SIPParseError
from ..sip.uri import parse_uri

UNANSWERED = ("incoming", "ringing")


def best_response(failures):
    """
    The final response to give the caller when every fork failed
    (after RFC 3261 16.7 step 6): C{failures} are C{(status, reason)}.
    A 6xx wins, then 486, then the lowest other 4xx; timeouts (408),
    server and transport errors (5xx), redirects and challenges we cannot
    answer for the caller become 480.
    """
    candidates = [(s, r) for s, r in failures if 600 <= s < 700]
    if candidates:
        return min(candidates)
    fours = [(s, r) for s, r in failures
             if 400 <= s < 500 and s not in (401, 407, 408, 487)]
    for status, reason in fours:
        if status == 486:
            return status, reason
    if fours:
        return min(fours)
    return 480, "Temporarily Unavailable"


def originate(sessions, uri, **kwargs):
    """
    Place an outgoing call with C{sessions.call} and return C{(call,
    deferred)}: the L{Call} at once (so a ringing leg can be cancelled), or
    C{None} when it failed before it began, and the Deferred of
    C{sessions.call} (fired with the answered call).
    """
    before = set(sessions.calls)
    d = sessions.call(uri, **kwargs)
    new = [sessions.calls[k] for k in sessions.calls if k not in before]
    return (new[0] if new else None), d


@implementer(ICallHandler)
class PBXApp:
    """
    @param sessions: the L{SessionManager} (or the L{SIPServer}) that places
        the outgoing legs.
    @param registrar: the L{Registrar} to look the called user up in.
    @param fallback: the L{ICallHandler} for calls to unknown users, or
        C{None} to answer them 404.
    @param ring_timeout: seconds to ring the contacts before giving up (480).
    @param max_duration: hang up bridged calls after this many seconds.
    @param inbound: the L{ICallHandler} for the calls our outbound
        registrations bring in (default: C{fallback}).
    """

    _log = Logger()

    def __init__(self, sessions, registrar, fallback=None, ring_timeout=60.0,
                 max_duration=None, inbound=None):
        self.sessions = getattr(sessions, "sessions", sessions)
        self.registrar = registrar
        self.fallback = fallback
        self.ring_timeout = ring_timeout
        self.max_duration = max_duration
        self.inbound = inbound if inbound is not None else fallback
        self.bridged = 0
        self.forks = set()

    def incomingCall(self, call):
        if call.invite is not None and self.registrar.is_trusted(call.invite):
            if self.inbound is not None:
                return self.inbound.incomingCall(call)
            call.reject(404)
            return None
        uri = call.request_uri
        user = getattr(uri, "user", None)
        if not user:
            return self._unknown(call)
        d = self.registrar.lookup(uri)
        d.addCallback(self._route, call, user)
        return d

    def _route(self, bindings, call, user):
        if call.state not in UNANSWERED:
            return None                     # cancelled during the lookup
        targets = [b for b in bindings if not self._is_self(b.contact)]
        if targets:
            fork = _Fork(self, call, targets)
            self.forks.add(fork)
            fork.start()
            return None
        if bindings:
            self._log.warn("call {call_id}: every contact of {user} is this server",
                           call_id=call.call_id, user=user)
            call.reject(482, "Loop Detected")
            return None
        if self.registrar.is_user(user):
            call.reject(480, "Not Registered")
            return None
        return self._unknown(call)

    def _unknown(self, call):
        if self.fallback is not None:
            return self.fallback.incomingCall(call)
        call.reject(404)
        return None

    def _is_self(self, contact):
        transport = self.sessions.transport
        try:
            dest = transport.uri_destination(parse_uri(contact))
        except SIPParseError:
            return False
        return dest.host == transport.host and dest.port == transport.port(dest.transport)


class _Fork:
    """One incoming call being forked to a user's contacts, then bridged."""

    _log = Logger()

    def __init__(self, app, caller, bindings):
        self.app = app
        self.caller = caller
        self.bindings = bindings
        self.legs = []
        self.failures = []
        self.pending = 0
        self.winner = None
        self.done = False
        self._starting = False
        self._timer = None

    def start(self):
        caller = self.caller
        app = self.app
        caller.ring()
        try:
            from_user = caller.invite.from_.uri.user or "anonymous"
        except (SIPParseError, AttributeError):
            from_user = "anonymous"
        caller.ended.addCallback(self._caller_ended)
        self._starting = True
        for binding in self.bindings:
            self.pending += 1
            leg, d = originate(app.sessions, binding.contact, from_user=from_user)
            if leg is not None:
                self.legs.append(leg)
            d.addCallbacks(self._answered, self._failed, errbackArgs=(binding,))
        self._starting = False
        if self.done:
            return
        if self.pending == 0 and self.winner is None:
            self._finish()
            return
        self._timer = caller.call_later(app.ring_timeout, self._timeout)
        self._log.info("call {call_id}: ringing {count} contact(s)",
                       call_id=caller.call_id, count=len(self.legs))

    def _answered(self, leg):
        self.pending -= 1
        caller = self.caller
        if self.winner is not None or self.done or caller.state not in UNANSWERED:
            leg.hangup()
            return None
        self.winner = leg
        self._cancel_timer()
        for other in self.legs:
            if other is not leg:
                other.hangup()
        d = caller.answer()
        d.addErrback(lambda f: None)        # no ACK: the call sends BYE and ends itself
        try:
            caller.media.relay(leg.media)
        except (ValueError, AttributeError):
            self._log.failure("call {call_id}: cannot bridge the media", call_id=caller.call_id)
        leg.ended.addCallback(self._leg_ended)
        app = self.app
        app.bridged += 1
        if app.max_duration:
            caller.call_later(app.max_duration, caller.hangup)
        self._log.info("call {call_id} bridged to {leg_id} ({uri})", call_id=caller.call_id,
                       leg_id=leg.call_id, uri=leg.remote_uri)
        return None

    def _failed(self, failure, binding):
        self.pending -= 1
        error = failure.value
        if isinstance(error, CallFailed):
            self.failures.append((error.status, error.reason))
        else:
            self._log.failure("call {call_id}: a leg to {contact} failed", failure,
                              call_id=self.caller.call_id, contact=binding.contact)
            self.failures.append((500, "Server Internal Error"))
        if (self.winner is None and not self.done and not self._starting
                and self.pending == 0):
            self._finish()
        return None

    def _finish(self):
        self.done = True
        self._cancel_timer()
        self.app.forks.discard(self)
        status, reason = best_response(self.failures)
        if self.caller.state in UNANSWERED:
            self.caller.reject(status, reason)

    def _timeout(self):
        self._timer = None
        if self.winner is not None or self.done:
            return
        self.done = True
        self.app.forks.discard(self)
        for leg in self.legs:
            leg.hangup()
        if self.caller.state in UNANSWERED:
            self.caller.reject(480, "No Answer")

    def _caller_ended(self, reason):
        self.done = True
        self._cancel_timer()
        self.app.forks.discard(self)
        for leg in self.legs:
            leg.hangup()                     # BYE the bridged leg, CANCEL the others
        return reason

    def _leg_ended(self, reason):
        self.caller.hangup()
        return reason

    def _cancel_timer(self):
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()


__all__ = ["PBXApp", "best_response", "originate"]
