"""
The REGISTER decision (RFC 3261 section 10.3), sans-IO.

L{process_register} takes a REGISTER, the bindings currently stored for
its address-of-record and the time, and returns a L{RegisterOutcome}: the
status to answer with, the headers of the response and, when the request
changes anything, the new complete set of bindings to store.  It touches no
store, no clock and no socket; the Twisted shell
(L{rvoip_twisted.service.registrar}) authenticates, loads, calls this,
stores and answers.

A binding's expiry is an absolute time (C{expires_at}, seconds since the
epoch in production), so bindings stay meaningful across a restart.
"""

import email.utils
import math

import attrs

from ..sip.errors import SIPParseError
from ..sip.uri import parse_uri

#: RFC 3261 10.2.1.1: the expiry a registrar applies when none is given.
DEFAULT_EXPIRES = 3600


@attrs.frozen
class Binding:
    """
    One contact bound to an address-of-record.

    @ivar aor: the canonical AOR text (see L{aor_key}).
    @ivar contact: the contact URI text, as the UA sent it.
    @ivar expires_at: when the binding expires (seconds, absolute).
    @ivar q: the q-value (0.0-1.0) or C{None} when the UA gave none.
    @ivar call_id: the Call-ID of the REGISTER that last refreshed it.
    @ivar cseq: that REGISTER's CSeq number.
    @ivar source: C{"UDP 192.0.2.1:5060"}, where that REGISTER came from
        (informational; calls go to the contact URI), or C{None}.
    """

    aor: str
    contact: str
    expires_at: float
    q: float | None = None
    call_id: str = ""
    cseq: int = 0
    source: str | None = None

    def remaining(self, now):
        """Whole seconds left (at least 1 while the binding is live; 0 after)."""
        left = self.expires_at - now
        if left <= 0:
            return 0
        return max(1, int(math.ceil(left - 1e-9)))

    def contact_value(self, now):
        """The Contact value listing this binding in a 200 (RFC 3261 10.3 step 8)."""
        text = "<%s>;expires=%d" % (self.contact, self.remaining(now))
        if self.q is not None:
            text += ";q=%s" % (format_q(self.q),)
        return text

    @property
    def sort_key(self):
        """Highest q first (an absent q counts as 1.0), then the contact text."""
        return (-(1.0 if self.q is None else self.q), self.contact)


@attrs.frozen
class RegistrarPolicy:
    """
    The registrar's limits.  A requested expiry below C{min_expires}
    (other than 0) is refused with 423; one above C{max_expires} is
    lowered to it.  An AOR holds at most C{max_contacts} bindings.
    """

    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = DEFAULT_EXPIRES
    max_contacts: int = 10

    def __attrs_post_init__(self):
        if not 0 < self.min_expires <= self.max_expires:
            raise ValueError("need 0 < min_expires <= max_expires")
        if self.max_contacts < 1:
            raise ValueError("max_contacts must be at least 1")


@attrs.frozen
class RegisterOutcome:
    """
    What to answer, and what to store.

    @ivar status: the response status.
    @ivar reason: the reason phrase, or C{None} for the standard one.
    @ivar headers: extra response headers (C{(name, value)} pairs).
    @ivar bindings: the AOR's new complete set of bindings to store, or
        C{None} when nothing is to be written.
    """

    status: int
    reason: str | None = None
    headers: tuple = ()
    bindings: tuple | None = None

    def response(self, request):
        """The response to C{request}."""
        return request.response(self.status, self.reason, headers=list(self.headers))


def format_q(q):
    text = ("%.3f" % (q,)).rstrip("0")
    if text.endswith("."):
        text += "0"
    return text


def http_date(now):
    """An RFC 1123 date in GMT, for the Date header (RFC 3261 20.17)."""
    return email.utils.formatdate(now, usegmt=True)


def aor_key(uri, domain=None):
    """
    The canonical address-of-record of a To (or Request-) URI: C{sip:user@domain}.

    The registrar serves one domain: C{domain} when given, else the URI's
    host (lower-cased).  The port, the URI parameters and the scheme
    (C{sips} is stored as C{sip}) do not take part, nor does a password.
    Returns C{None} for a URI without a user part (nothing to register) or
    of another scheme than sip, sips or tel (a C{tel} number is the user).
    """
    if uri is None:
        return None
    if uri.scheme not in ("sip", "sips", "tel") or not uri.user:
        return None
    host = domain or (uri.host or "").lower()
    return "sip:%s@%s" % (uri.user, host)


def _parse_expires(value):
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit() or len(text) > 10:
        raise SIPParseError("Bad expires parameter in Contact")
    return min(int(text), 2 ** 32 - 1)


def _parse_q(value):
    if value is None:
        return None
    text = value.strip()
    try:
        q = float(text)
    except ValueError:
        raise SIPParseError("Bad q parameter in Contact")
    if not 0.0 <= q <= 1.0 or not text[:1].isdigit() or len(text) > 5:
        raise SIPParseError("Bad q parameter in Contact")
    return q


def _same_contact(binding, uri, cache):
    parsed = cache.get(binding.contact)
    if parsed is None:
        try:
            parsed = parse_uri(binding.contact)
        except SIPParseError:
            return binding.contact == str(uri)
        cache[binding.contact] = parsed
    return parsed == uri


def process_register(request, aor, bindings, now, policy=RegistrarPolicy(), source=None):
    """
    Decide a REGISTER (RFC 3261 10.3 steps 6-8).

    @param request: the REGISTER (already authenticated and authorised).
    @param aor: its canonical AOR (L{aor_key} of the To URI).
    @param bindings: the AOR's stored bindings (expired ones are ignored).
    @param now: the current time, in the unit of C{Binding.expires_at}.
    @param source: where the request came from, kept with the bindings.
    @return: a L{RegisterOutcome}.
    """
    live = [b for b in bindings if b.expires_at > now]
    try:
        contacts = request.contacts
        header_expires = request.expires
        call_id = request.call_id
        cseq = request.cseq[0]
    except SIPParseError as e:
        return RegisterOutcome(400, e.reason)
    if not contacts:
        # A query: list the current bindings.
        return _ok(live, now)

    if any(c.star for c in contacts):
        # Contact: * removes every binding, with Expires: 0 and alone (10.3 step 6).
        if len(contacts) != 1 or header_expires != 0:
            return RegisterOutcome(400, "Invalid Contact: * (needs Expires: 0, alone)")
        for b in live:
            if b.call_id == call_id and cseq <= b.cseq:
                return RegisterOutcome(500, "Out of order REGISTER")
        return _ok([], now, store=True)

    updates = []
    too_brief = False
    for c in contacts:
        if c.uri is None:
            return RegisterOutcome(400, "Bad Contact")
        try:
            expires = _parse_expires(c.params.get("expires"))
            q = _parse_q(c.params.get("q"))
        except SIPParseError as e:
            return RegisterOutcome(400, e.reason)
        if expires is None:
            expires = header_expires if header_expires is not None else policy.default_expires
        if expires != 0 and expires < policy.min_expires:
            too_brief = True
        updates.append((c.uri, min(expires, policy.max_expires), q))
    if too_brief:
        return RegisterOutcome(423, headers=(("Min-Expires", str(policy.min_expires)),))

    cache = {}
    result = list(live)
    for uri, expires, q in updates:
        stored = None
        for b in live:
            if _same_contact(b, uri, cache):
                stored = b
                break
        if stored is not None and stored.call_id == call_id and cseq <= stored.cseq:
            # 10.3 step 7: the same UA re-sent an older request; abort it all.
            return RegisterOutcome(500, "Out of order REGISTER")
        # Drop whatever this request or the store already has for the contact.
        result = [b for b in result if not _same_contact(b, uri, cache)]
        if expires != 0:
            result.append(Binding(aor, str(uri), now + expires, q, call_id, cseq, source))
    if len(result) > policy.max_contacts:
        return RegisterOutcome(403, "Too Many Bindings")
    return _ok(result, now, store=True)


def _ok(bindings, now, store=False):
    ordered = tuple(sorted(bindings, key=lambda b: b.sort_key))
    headers = [("Contact", b.contact_value(now)) for b in ordered]
    headers.append(("Date", http_date(now)))
    return RegisterOutcome(200, None, tuple(headers), ordered if store else None)


__all__ = [
    "Binding", "RegistrarPolicy", "RegisterOutcome", "DEFAULT_EXPIRES",
    "aor_key", "http_date", "process_register",
]
