"""
HTTP Digest authentication for SIP (RFC 3261 section 22, RFC 7616, RFC
8760), client and server side, sans-IO.

Algorithms: MD5, SHA-256 and SHA-512-256 (the last where the local OpenSSL
has it), each also in its C{-sess} form.  Quality of protection: C{auth}
(preferred), C{auth-int}, or none (RFC 2069 compatibility, client side
only).

The client (L{ClientAuth}) answers 401 (C{WWW-Authenticate} ->
C{Authorization}) and 407 (C{Proxy-Authenticate} -> C{Proxy-Authorization})
challenges, counts nonce uses per realm, and refuses to answer again a
challenge its credentials already failed, so a wrong password does not
loop.

The server (L{DigestServer}) needs no nonce table to issue nonces: a nonce
is a timestamp and random bytes signed with an HMAC, so its age and origin
are checked from the nonce itself.  A small bounded table remembers the
last nonce count seen per nonce to refuse replays.

Nothing here logs, and no error message or C{repr} carries a password, an
HA1 or a digest response.
"""

import base64
import hashlib
import hmac
import re
import secrets
import struct
import time
from collections import OrderedDict

from .errors import SIPError
from .headers import quote, unquote
from .uri import parse_uri

# ---------------------------------------------------------------- algorithms


def _available(name):
    try:
        hashlib.new(name, b"")
    except ValueError:
        return False
    return True


#: canonical algorithm name -> (hashlib name, is a -sess variant)
ALGORITHMS = {}
for _name, _hash in (("MD5", "md5"), ("SHA-256", "sha256"),
                     ("SHA-512-256", "sha512_256")):
    if _available(_hash):
        ALGORITHMS[_name] = (_hash, False)
        ALGORITHMS[_name + "-sess"] = (_hash, True)
del _name, _hash

_BY_UPPER = {name.upper(): name for name in ALGORITHMS}

#: client preference, strongest first (RFC 8760 section 2.4)
_STRENGTH = {"SHA-512-256": 3, "SHA-256": 2, "MD5": 1}


def canonical_algorithm(name):
    """
    The canonical spelling of a supported algorithm name (matched
    case-insensitively), or C{None}.  An absent algorithm means MD5.
    """
    if name is None:
        return "MD5"
    return _BY_UPPER.get(name.upper())


def _h(hash_name, text):
    return hashlib.new(hash_name, text.encode("utf-8")).hexdigest()


class DigestError(SIPError, ValueError):
    """A malformed or unusable challenge or credentials (answered with 400)."""

    status = 400


def digest_response(algorithm, username, realm, password, method, uri, nonce,
                    nc=None, cnonce=None, qop=None, body=b"", ha1=None):
    """
    The C{response} value of RFC 7616 section 3.4.1 (lower-case hex).

    C{nc} is the 8-hex-digit nonce count text; C{qop} is C{"auth"},
    C{"auth-int"} or C{None} (RFC 2069: no nc, no cnonce).  C{ha1}, when
    given, is the precomputed C{H(username:realm:password)} and
    C{password} is ignored.
    """
    canon = canonical_algorithm(algorithm)
    if canon is None:
        raise DigestError("Unsupported digest algorithm")
    hash_name, sess = ALGORITHMS[canon]
    if ha1 is None:
        ha1 = _h(hash_name, "%s:%s:%s" % (username, realm, password))
    if sess:
        ha1 = _h(hash_name, "%s:%s:%s" % (ha1, nonce, cnonce or ""))
    if qop == "auth-int":
        ha2 = _h(hash_name, "%s:%s:%s" % (
            method, uri, hashlib.new(hash_name, body).hexdigest()))
    else:
        ha2 = _h(hash_name, "%s:%s" % (method, uri))
    if qop:
        return _h(hash_name, "%s:%s:%s:%s:%s:%s" % (ha1, nonce, nc, cnonce, qop, ha2))
    return _h(hash_name, "%s:%s:%s" % (ha1, nonce, ha2))


# ---------------------------------------------------------------- parsing

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_SCHEME_RE = re.compile(r"[ \t]*(" + _TOKEN + r")(?:[ \t]+|\Z)")
_AUTH_PARAM_RE = re.compile(
    r"[ \t,]*(" + _TOKEN + r")[ \t]*=[ \t]*(\"(?:[^\"\\]|\\.)*\"|[^ \t,\"]+)"
    r"[ \t]*(?:,|\Z)", re.S)
_TRAILING_RE = re.compile(r"[ \t,]*\Z")
_NC_RE = re.compile(r"[0-9A-Fa-f]{8}\Z")
_HEX_RE = re.compile(r"[0-9A-Fa-f]+\Z")
#: 33 bytes in base64url: no padding, no spare bits, so one text per nonce
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{44}\Z")


def _parse_auth(value, what):
    m = _SCHEME_RE.match(value)
    if m is None:
        raise DigestError("Bad " + what)
    if m.group(1).lower() != "digest":
        raise DigestError("Not a Digest " + what)
    params = {"scheme": "Digest"}
    pos = m.end()
    end = len(value)
    while pos < end:
        if _TRAILING_RE.match(value, pos):
            break
        p = _AUTH_PARAM_RE.match(value, pos)
        if p is None:
            raise DigestError("Bad parameters in " + what)
        name = p.group(1).lower()
        if name in params:
            raise DigestError("Repeated parameter in " + what)
        params[name] = unquote(p.group(2))
        pos = p.end()
    return params


def parse_challenge(value):
    """
    Parse a C{WWW-Authenticate} or C{Proxy-Authenticate} value.

    Returns a dict with C{"scheme": "Digest"} and every parameter by
    lower-case name, unquoted; C{"qop"} is a list of lower-case tokens
    (empty if absent), C{"stale"} a bool, C{"algorithm"} the value given
    (C{"MD5"} if absent).

    @raise DigestError: not a Digest challenge, malformed, or without
        realm or nonce.
    """
    params = _parse_auth(value, "challenge")
    for required in ("realm", "nonce"):
        if required not in params:
            raise DigestError("Challenge without " + required)
    qop = params.get("qop")
    params["qop"] = [q.strip().lower() for q in qop.split(",") if q.strip()] if qop else []
    params["stale"] = params.get("stale", "").lower() == "true"
    params.setdefault("algorithm", "MD5")
    return params


def parse_credentials(value):
    """
    Parse an C{Authorization} or C{Proxy-Authorization} value.

    Returns a dict with C{"scheme": "Digest"} and every parameter by
    lower-case name, unquoted (C{qop}, C{nc}, C{algorithm} as given;
    C{"algorithm"} is C{"MD5"} if absent).

    @raise DigestError: not Digest, malformed, or without username, realm,
        nonce, uri or response.
    """
    params = _parse_auth(value, "credentials")
    for required in ("username", "realm", "nonce", "uri", "response"):
        if required not in params:
            raise DigestError("Credentials without " + required)
    params.setdefault("algorithm", "MD5")
    return params


# ---------------------------------------------------------------- client


def carries_credentials(message):
    """Whether C{message} has C{Authorization} or C{Proxy-Authorization}
    (it answers a challenge)."""
    return message.has("Proxy-Authorization") or message.has("Authorization")


def _choose_qop(offered):
    if not offered:
        return None
    if "auth" in offered:
        return "auth"
    if "auth-int" in offered:
        return "auth-int"
    raise DigestError("No supported qop offered")


def build_authorization(challenge, method, uri, username, password, nc=1,
                        cnonce=None, body=b""):
    """
    The C{Authorization} (or C{Proxy-Authorization}) value answering
    C{challenge} (a L{parse_challenge} dict, or the header text) for a
    request with this C{method} and Request-URI text C{uri}.

    qop C{auth} is used when offered, else C{auth-int} (hashing C{body}),
    else none (RFC 2069).  C{nc} is the nonce count (1 for a nonce's first
    use); C{cnonce} is random unless given.

    @raise DigestError: unsupported algorithm or qop.
    """
    if isinstance(challenge, str):
        challenge = parse_challenge(challenge)
    algorithm = canonical_algorithm(challenge.get("algorithm"))
    if algorithm is None:
        raise DigestError("Unsupported digest algorithm")
    qop = _choose_qop(challenge.get("qop") or [])
    sess = ALGORITHMS[algorithm][1]
    if (qop or sess) and cnonce is None:
        cnonce = secrets.token_hex(8)
    ncvalue = "%08x" % (nc,) if qop else None
    realm = challenge["realm"]
    nonce = challenge["nonce"]
    response = digest_response(
        algorithm, username, realm, password, method, uri, nonce,
        ncvalue, cnonce, qop, body)
    parts = [
        "username=" + quote(username),
        "realm=" + quote(realm),
        "nonce=" + quote(nonce),
        "uri=" + quote(uri),
        "response=" + quote(response),
        "algorithm=" + algorithm,
    ]
    if qop or sess:
        parts.append("cnonce=" + quote(cnonce))
    if challenge.get("opaque") is not None:
        parts.append("opaque=" + quote(challenge["opaque"]))
    if qop:
        parts.append("qop=" + qop)
        parts.append("nc=" + ncvalue)
    return "Digest " + ", ".join(parts)


_HEADERS_FOR = {
    401: ("WWW-Authenticate", "Authorization"),
    407: ("Proxy-Authenticate", "Proxy-Authorization"),
}


def _usable(challenge):
    algorithm = canonical_algorithm(challenge.get("algorithm"))
    if algorithm is None:
        return None
    try:
        _choose_qop(challenge["qop"])
    except DigestError:
        return None
    return algorithm


class ClientAuth:
    """
    A UAC's digest credentials: answers 401/407 challenges with the right
    header, counting nonce uses per realm.

    The caller resends the challenged request with a new CSeq and the
    returned header (replacing any older one of that name).
    """

    def __init__(self, username, password):
        self.username = username
        self._password = password
        # realm -> [challenge dict, last nc used, header name]
        self._realms = {}

    def __repr__(self):
        return "<ClientAuth %s>" % (self.username,)

    def authorize(self, request, response):
        """
        C{(header_name, header_value)} answering the challenge in
        C{response} (a 401 or 407) to C{request}, or C{None}: the response
        is not a challenge, no challenge in it is usable (unsupported
        algorithm or qop, malformed), or C{request} already carried our
        credentials for that realm and the challenge is not C{stale}
        (the password was refused: answering again would loop).  When
        several challenges share a realm the strongest algorithm wins
        (SHA-512-256, SHA-256, MD5); with several realms (two proxies)
        the first is answered, see L{authorize_all}.
        """
        answers = self.authorize_all(request, response)
        return answers[0] if answers else None

    def authorize_all(self, request, response):
        """
        Like L{authorize}, but one C{(name, value)} per challenging realm
        (each goes on the resent request); C{[]} when any realm's
        challenge already failed.
        """
        names = _HEADERS_FOR.get(response.status)
        if names is None:
            return []
        challenge_name, credentials_name = names
        best = {}
        order = []
        for value in response.get_all(challenge_name):
            try:
                challenge = parse_challenge(value)
            except DigestError:
                continue
            algorithm = _usable(challenge)
            if algorithm is None:
                continue
            realm = challenge["realm"]
            strength = _STRENGTH[algorithm.split("-sess")[0]]
            if realm not in best:
                order.append(realm)
                best[realm] = (strength, challenge)
            elif strength > best[realm][0]:
                best[realm] = (strength, challenge)
        if not order:
            return []
        tried = self._realms_in(request, credentials_name)
        answers = []
        for realm in order:
            challenge = best[realm][1]
            if realm in tried and not challenge["stale"]:
                return []
            answers.append((credentials_name, self._answer(
                challenge, request, credentials_name)))
        return answers

    def credentials_for(self, request):
        """
        Pre-emptive credentials for a new request (a REGISTER refresh):
        one C{(name, value)} per realm already challenged, reusing its
        nonce with the next nonce count.  A server that has forgotten the
        nonce answers with a stale challenge, which L{authorize} handles.
        """
        return [(name, self._answer(challenge, request, name))
                for challenge, _, name in list(self._realms.values())]

    def _answer(self, challenge, request, credentials_name):
        realm = challenge["realm"]
        state = self._realms.get(realm)
        if state is not None and state[0]["nonce"] == challenge["nonce"]:
            nc = state[1] + 1
        else:
            nc = 1
        self._realms[realm] = [challenge, nc, credentials_name]
        return build_authorization(
            challenge, request.method, str(request.uri), self.username,
            self._password, nc=nc, body=request.body)

    def _realms_in(self, request, credentials_name):
        realms = set()
        for value in request.get_all(credentials_name):
            try:
                credentials = parse_credentials(value)
            except DigestError:
                continue
            if credentials["username"] == self.username:
                realms.add(credentials["realm"])
        return realms


# ---------------------------------------------------------------- server

_NONCE_STRUCT = struct.Struct(">Q")
_NONCE_RANDOM = 9
_NONCE_MAC = 16
_NONCE_BYTES = _NONCE_STRUCT.size + _NONCE_RANDOM + _NONCE_MAC

OK = "ok"
MISSING = "missing"
STALE = "stale"
BAD = "bad"


class DigestServer:
    """
    The UAS side of digest authentication (a registrar, or a proxy with
    C{header_name="Proxy-Authorization"}).

    @param users: user name -> secret.  A secret is the plain password, or
        C{"HA1:"} followed by the hex of C{H(user:realm:password)} for this
        server's realm: 32 hex digits for an MD5 HA1 (usable with MD5 and
        MD5-sess only), 64 for a SHA-256 HA1 (SHA-256 and SHA-256-sess
        only).  So a plain password may not begin with C{"HA1:"}.
    @param clock: returns the time in seconds (injected for tests).
    @param nonce_ttl: seconds a nonce stays valid; an older one with an
        otherwise correct answer is C{"stale"}.
    @param secret: bytes (or text) keying the nonce HMAC; random if
        C{None}.  Servers that share it accept each other's nonces.
    @param max_nonces: how many nonces' counts are remembered.  When one
        is evicted, every nonce issued no later than it and not in the
        table is answered C{"stale"}, so eviction never opens a replay.
    """

    def __init__(self, realm, users, clock=time.time, nonce_ttl=300,
                 secret=None, max_nonces=10000):
        self.realm = realm
        self._users = {}
        for user, value in users.items():
            if value.startswith("HA1:"):
                hexpart = value[4:]
                if not _HEX_RE.match(hexpart) or len(hexpart) not in (32, 64):
                    raise ValueError(
                        "user %r: HA1 must be 32 (MD5) or 64 (SHA-256) hex digits" % (user,))
                self._users[user] = ("md5" if len(hexpart) == 32 else "sha256",
                                     hexpart.lower())
            else:
                self._users[user] = (None, value)
        self.clock = clock
        self.nonce_ttl = nonce_ttl
        if secret is None:
            secret = secrets.token_bytes(32)
        elif isinstance(secret, str):
            secret = secret.encode("utf-8")
        self._secret = secret
        self.max_nonces = max_nonces
        # nonce -> [issue time, last nc], in order of first use
        self._counts = OrderedDict()
        self._evicted_until = -1
        self.opaque = hmac.new(
            secret, b"opaque:" + realm.encode("utf-8"), hashlib.sha256).hexdigest()[:24]

    def __repr__(self):
        return "<DigestServer realm=%r users=%d>" % (self.realm, len(self._users))

    # -- nonces

    def _mac(self, payload):
        return hmac.new(self._secret, b"nonce:" + self.realm.encode("utf-8") + payload,
                        hashlib.sha256).digest()[:_NONCE_MAC]

    def new_nonce(self):
        """A fresh signed nonce (base64url text, 44 characters)."""
        payload = _NONCE_STRUCT.pack(int(self.clock())) + secrets.token_bytes(_NONCE_RANDOM)
        return base64.urlsafe_b64encode(payload + self._mac(payload)).decode("ascii")

    def _nonce_time(self, nonce):
        """The issue time of a nonce we signed, or C{None}."""
        if not _NONCE_RE.match(nonce):
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            return None
        if len(raw) != _NONCE_BYTES:
            return None
        payload, mac = raw[:-_NONCE_MAC], raw[-_NONCE_MAC:]
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        return _NONCE_STRUCT.unpack_from(payload)[0]

    # -- challenges

    def challenge(self, stale=False, algorithm="MD5"):
        """
        A C{WWW-Authenticate} / C{Proxy-Authenticate} value: realm, a new
        nonce, opaque, algorithm, C{qop="auth"}, and C{stale=true} when
        C{stale}.
        """
        canon = canonical_algorithm(algorithm)
        if canon is None:
            raise ValueError("unsupported algorithm %r" % (algorithm,))
        value = 'Digest realm=%s, nonce="%s", opaque="%s", algorithm=%s, qop="auth"' % (
            quote(self.realm), self.new_nonce(), self.opaque, canon)
        if stale:
            value += ", stale=true"
        return value

    def challenges(self, stale=False, algorithms=("SHA-256", "MD5")):
        """
        One challenge per algorithm, preferred first (RFC 8760 section 2.4:
        a 401 may carry several; each goes in its own header).
        """
        return [self.challenge(stale, a) for a in algorithms]

    # -- checking

    def check(self, request, header_name="Authorization"):
        """
        Check the credentials of C{request} for this realm.

        Returns C{(result, username)}; C{result} is:
         - C{"ok"}: the answer is right, the nonce ours, fresh and its
           count higher than any seen before;
         - C{"missing"}: no Digest credentials for this realm (send a
           challenge);
         - C{"stale"}: the answer is right but the nonce has expired, or
           its count was already used (a replay, or requests overtaking
           each other): send a challenge with C{stale=True}, a client that
           knows the password will retry with the new nonce;
         - C{"bad"}: malformed, unknown user, unknown or mismatched
           algorithm, wrong qop, a nonce we did not sign, a C{uri} that is
           not the Request-URI, or a wrong answer.
        C{username} is the claimed user name (C{None} when missing or
        unparsable).
        """
        credentials = None
        malformed = False
        for value in request.get_all(header_name):
            try:
                parsed = parse_credentials(value)
            except DigestError:
                malformed = True
                continue
            if parsed["realm"] == self.realm:
                credentials = parsed
                break
        if credentials is None:
            return (BAD if malformed else MISSING), None
        username = credentials["username"]
        result = self._verify(request, credentials)
        return result, username

    def _verify(self, request, c):
        user = self._users.get(c["username"])
        if user is None:
            return BAD
        algorithm = canonical_algorithm(c.get("algorithm"))
        if algorithm is None:
            return BAD
        hash_name = ALGORITHMS[algorithm][0]
        stored_hash, secret = user
        if stored_hash is not None and stored_hash != hash_name:
            return BAD
        if not self._same_uri(c["uri"], request.uri):
            return BAD
        qop = c.get("qop", "").lower()
        nc = c.get("nc", "")
        cnonce = c.get("cnonce", "")
        if qop != "auth" or not _NC_RE.match(nc) or not cnonce:
            return BAD
        opaque = c.get("opaque")
        if opaque is not None and not hmac.compare_digest(opaque, self.opaque):
            return BAD
        nonce = c["nonce"]
        issued = self._nonce_time(nonce)
        if issued is None:
            return BAD
        if stored_hash is None:
            expected = digest_response(
                algorithm, c["username"], self.realm, secret, request.method,
                c["uri"], nonce, nc, cnonce, qop)
        else:
            expected = digest_response(
                algorithm, c["username"], self.realm, None, request.method,
                c["uri"], nonce, nc, cnonce, qop, ha1=secret)
        if not hmac.compare_digest(expected, c["response"].lower()):
            return BAD
        now = self.clock()
        if now - issued > self.nonce_ttl:
            return STALE
        return self._count(nonce, issued, int(nc, 16), now)

    def _count(self, nonce, issued, nc, now):
        counts = self._counts
        entry = counts.get(nonce)
        if entry is None:
            if issued <= self._evicted_until:
                return STALE
            counts[nonce] = [issued, nc]
            # drop expired entries from the front, then bound the size
            while counts:
                first = next(iter(counts.values()))
                if now - first[0] <= self.nonce_ttl:
                    break
                counts.popitem(last=False)
            while len(counts) > self.max_nonces:
                _, (old_issued, _) = counts.popitem(last=False)
                self._evicted_until = max(self._evicted_until, old_issued)
            return OK
        if nc <= entry[1]:
            return STALE
        entry[1] = nc
        return OK

    @staticmethod
    def _same_uri(text, request_uri):
        if text == str(request_uri):
            return True
        try:
            return parse_uri(text) == request_uri
        except SIPError:
            return False


# ---------------------------------------------------------------- user files


def load_users(path):
    """
    Read a users file for L{DigestServer}.

    One user a line: C{user:password} (the password is everything after
    the first colon; leading and trailing blanks of the line are dropped),
    or C{user:HA1=<hex>} with the hex of C{H(user:realm:password)} (32
    digits for MD5, 64 for SHA-256).  Blank lines and lines starting with
    C{#} are skipped.  A password may not begin with C{HA1=} or C{HA1:}.

    @return: a dict for L{DigestServer}'s C{users} (HA1 entries as
        C{"HA1:<hex>"}).
    @raise ValueError: naming the file and line number (never the line's
        content, which holds a secret) for a malformed line or a repeated
        user.
    """
    users = {}
    with open(path, "rb") as f:
        data = f.read()
    for lineno, raw in enumerate(data.splitlines(), 1):
        def fail(why):
            raise ValueError("%s:%d: %s" % (path, lineno, why))
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            fail("not UTF-8")
        if not line or line.startswith("#"):
            continue
        user, colon, secret = line.partition(":")
        user = user.strip()
        if not colon:
            fail("expected user:password or user:HA1=<hex>")
        if not user or any(ch.isspace() or ch in '"\\' for ch in user):
            fail("bad user name")
        if user in users:
            fail("user %r listed twice" % (user,))
        if not secret:
            fail("empty password")
        if secret.startswith("HA1="):
            hexpart = secret[4:]
            if not _HEX_RE.match(hexpart) or len(hexpart) not in (32, 64):
                fail("HA1 must be 32 (MD5) or 64 (SHA-256) hex digits")
            users[user] = "HA1:" + hexpart.lower()
        elif secret.startswith("HA1:"):
            fail("a password may not begin with HA1:")
        else:
            users[user] = secret
    return users


__all__ = [
    "ALGORITHMS", "ClientAuth", "DigestError", "DigestServer",
    "build_authorization", "canonical_algorithm", "digest_response",
    "load_users", "parse_challenge", "parse_credentials",
    "OK", "MISSING", "STALE", "BAD",
]
