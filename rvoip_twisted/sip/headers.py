"""
Header names and the structured header values: Via, name-addr / addr-spec
(From, To, Contact, Route, Record-Route), CSeq, and the generic
C{;name=value} parameter syntax (RFC 3261 sections 7.3, 20, 25).

Header values arrive unfolded (the parser joins continuation lines).  Every
structured value keeps its original text: serialising an unchanged value
gives back what was parsed.
"""

import re

from .errors import SIPParseError
from .uri import SIP_FAST, SIP_FAST_RE, parse_uri, uri_from_fast

#: compact form -> canonical name (RFC 3261 7.3.3 and later RFCs).
COMPACT = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding",
    "l": "Content-Length", "c": "Content-Type", "f": "From", "s": "Subject",
    "k": "Supported", "t": "To", "v": "Via", "o": "Event", "u": "Allow-Events",
    "r": "Refer-To", "b": "Referred-By", "x": "Session-Expires",
    "a": "Accept-Contact", "j": "Reject-Contact", "d": "Request-Disposition",
    "y": "Identity", "n": "Identity-Info",
}

_KNOWN = [
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
    "Allow-Events", "Authentication-Info", "Authorization", "Call-ID",
    "Call-Info", "Contact", "Content-Disposition", "Content-Encoding",
    "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date",
    "Error-Info", "Event", "Expires", "From", "In-Reply-To", "Max-Forwards",
    "Min-Expires", "Min-SE", "MIME-Version", "Organization", "P-Asserted-Identity",
    "Priority", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require",
    "RAck", "Reason", "Record-Route", "Refer-To", "Referred-By", "Reply-To",
    "Require", "Retry-After", "Route", "RSeq", "Server", "Session-Expires",
    "Subject", "Subscription-State", "Supported", "Timestamp", "To",
    "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate",
    "Accept-Contact", "Reject-Contact", "Request-Disposition", "Identity",
    "Identity-Info", "Path", "Service-Route",
]

#: lower-case name (full or compact) -> canonical name
CANONICAL = {name.lower(): name for name in _KNOWN}
CANONICAL.update(COMPACT)

#: CANONICAL plus the usual spellings as they come (canonical and
#: upper-case compact), so most names need no lower-casing.
CANONICAL_FAST = dict(CANONICAL)
CANONICAL_FAST.update((name, name) for name in _KNOWN)
CANONICAL_FAST.update((c.upper(), name) for c, name in COMPACT.items())
CANONICAL_FAST.update((name.upper(), name) for name in _KNOWN)

#: headers whose value is a comma-separated list (RFC 3261 7.3.1).
LIST_HEADERS = frozenset([
    "Via", "Contact", "Route", "Record-Route", "Allow", "Supported",
    "Require", "Proxy-Require", "Unsupported", "Accept", "Accept-Encoding",
    "Accept-Language", "Content-Encoding", "Allow-Events", "In-Reply-To",
    "Call-Info", "Alert-Info", "Error-Info", "Warning", "Path",
    "Service-Route", "Content-Language", "P-Asserted-Identity",
])

#: headers that may appear once only (RFC 3261 table 2 and 4475 multi01).
SINGLE_HEADERS = frozenset([
    "Call-ID", "CSeq", "From", "To", "Max-Forwards", "Content-Length",
    "Content-Type", "Expires", "Date",
])

TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    "-.!%*_+`'~")
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
TOKEN_RE = re.compile(_TOKEN + r"\Z")

_PARAM_RE = re.compile(
    r"[ \t]*;[ \t]*(" + _TOKEN + r")(?:[ \t]*=[ \t]*(" + _QUOTED
    + r"|[^;,\s\"]+))?[ \t]*", re.S)
# The fast paths' patterns use possessive runs (C{++}, C{*+}, as in
# L{uri.SIP_FAST}): each stops where a shorter run could not match either.
_TOKEN_P = r"[A-Za-z0-9\-.!%*_+`'~]++"
_QUOTED_P = r'"(?:[^"\\]++|\\.)*+"'
# Parameters without whitespace or quotes: the common case, split directly
# (L{_split_params}); the same result as L{_PARAM_RE}.
_PARAMS_FAST = r"(?:;" + _TOKEN_P + r"(?:=[^;,\s\"]++)?)*+"
_PARAMS_FAST_RE = re.compile(_PARAMS_FAST + r"\Z")
_DIGITS_RE = re.compile(r"[0-9]+\Z")


def canonical_name(name):
    """The canonical spelling of a header name; unknown names unchanged."""
    return CANONICAL.get(name.lower(), name)


def is_token(text):
    return bool(text) and TOKEN_RE.match(text) is not None


def _int_value(text):
    """An all-ASCII-digits string as an int, without Python's digit limit."""
    stripped = text.lstrip("0")
    if len(stripped) > 20:
        return 10 ** 20
    return int(stripped) if stripped else 0


def parse_params(text, pos=0, what="header"):
    """
    Parse C{*( SEMI generic-param )} from C{text[pos:]} to its end.

    Returns a dict keyed by lower-case name; a flag's value is C{None};
    quoted values keep their quotes (L{unquote} strips them).
    """
    params = {}
    end = len(text)
    if pos >= end:
        return params
    if _PARAMS_FAST_RE.match(text, pos):
        return _split_params(text[pos + 1:])
    match = _PARAM_RE.match
    while pos < end:
        m = match(text, pos)
        if m is None or m.end() == pos:
            raise SIPParseError("Bad parameters in " + what)
        params[m.group(1).lower()] = m.group(2)
        pos = m.end()
    return params


def _split_params(text):
    """C{name[=value]} items separated by C{;}, already checked."""
    params = {}
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        params[name.lower()] = value if eq else None
    return params


def _lone_tag(ptext):
    """The tag of parameters (as they follow a name-addr's C{>}) that are one
    C{;tag=...} alone, else C{None}: what L{_split_params} would find."""
    if ptext.startswith(";tag=") and ptext.find(";", 5) < 0:
        return ptext[5:]
    return None


def format_params(params):
    return "".join(
        ";" + k if v is None else ";%s=%s" % (k, v) for k, v in params.items())


def unquote(value):
    """Strip the quotes and quoted-pairs of a quoted-string; tokens unchanged."""
    if value and len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        value = value[1:-1]
        if "\\" in value:
            value = re.sub(r"\\(.)", r"\1", value, flags=re.S)
    return value


def quote(value):
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_list(value):
    """
    Split a list header's value on commas outside quotes and angle
    brackets.  Empty elements are kept so the caller can reject them.
    """
    if "," not in value:
        return [value.strip()]
    items = []
    start = 0
    quoted = angle = False
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif ch == "," and not angle:
            items.append(value[start:i].strip())
            start = i + 1
        i += 1
    items.append(value[start:].strip())
    return items


# ---------------------------------------------------------------- caches

#: The parser's and this module's caches of what a text parsed to, for the
#: texts that repeat from message to message (a UA's Via sent-by, Contact,
#: Max-Forwards line...), are dicts bounded by L{_remember}: only texts up to
#: _CACHE_WIDTH characters are kept, and a dict is emptied when it reaches
#: _CACHE_SIZE entries, so texts seen once (a Via's branch, a new dialog's
#: tag) cannot grow one without end: full, with texts of the longest, the
#: header-line cache holds about 1.5 MB, the Via one about 2 MB and the
#: name-addr one (L{NameAddr.parse}: a NameAddr and its URI each) about
#: 6 MB (measured with tracemalloc).  What they keep is never
#: changed in place (a match, a tuple, a URI), so messages share it.
_CACHE_SIZE = 4096
_CACHE_WIDTH = 160


def _remember(cache, text, result):
    """Keep C{result} for C{text} in C{cache} (one of the bounded caches)."""
    if len(text) <= _CACHE_WIDTH:
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[text] = result


# ---------------------------------------------------------------- Via

_VIA_RE = re.compile(
    r"[ \t]*(" + _TOKEN + r")[ \t]*/[ \t]*(" + _TOKEN + r")[ \t]*/[ \t]*("
    + _TOKEN + r")[ \t]+(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)"
    r"(?:[ \t]*:[ \t]*([0-9]{1,5}))?[ \t]*")
# The usual spelling of the part before the parameters (the sent-by), no
# optional whitespace: the same result as _VIA_RE there.  No host or port
# has a ";" in it, so the first ";" of a Via ends this part.
_VIA_FAST_RE = re.compile(
    r"SIP/2\.0/([A-Za-z]++) (\[[0-9A-Fa-f:.]++\]|[A-Za-z0-9\-.]++)(?::([0-9]{1,5}+))?\Z")
# The usual parameters: a branch, with a flag rport before or after it (the
# same dict as _split_params, in the same order).
_VIA_BRANCH_RE = re.compile(r";(rport;)?+branch=([^;,\s\"]++)(;rport)?+\Z")

#: What the part before a Via's parameters parsed to, for the parts that
#: matched _VIA_FAST_RE: text -> (transport, host, port, sent-by).  A UA (or the
#: proxy in front of it) puts the same one in every request it sends.
_via_cache = {}


_new_via = object.__new__


#: a flag C{rport} parameter (no value yet) in a Via's text.
_EMPTY_RPORT_RE = re.compile(r";rport(?=;|\Z)", re.I)


class Via:
    """
    One Via value: C{protocol} (C{"SIP/2.0"}), C{transport} (upper case),
    C{host}, C{port} (int or C{None}), C{params}; C{sent_by}, C{(host
    lower-cased, port)}, what transaction matching compares (RFC 3261
    17.2.3).  A value: none of these is changed once it is made
    (L{with_received} and L{replace} make changed copies).
    """

    __slots__ = ("protocol", "transport", "host", "port", "params", "_text", "sent_by")

    def __init__(self, transport, host, port=None, params=None,
                 protocol="SIP/2.0", _text=None):
        self.protocol = protocol
        self.transport = transport
        self.host = host
        self.port = port
        self.params = params if params is not None else {}
        self._text = _text
        self.sent_by = (host.lower(), port)

    @classmethod
    def parse(cls, text):
        """Parse one Via value (one element of the comma list)."""
        semi = text.find(";")
        head = text if semi < 0 else text[:semi]
        sent = _via_cache.get(head)
        if sent is None:
            m = _VIA_FAST_RE.match(head)
            if m is not None:
                transport, host, port = m.groups()
                if port is not None:
                    port = int(port)
                    if port > 65535:
                        raise SIPParseError("Bad Via port")
                sent = (transport.upper(), host, port, (host.lower(), port))
                _remember(_via_cache, head, sent)
        if sent is not None:
            if semi < 0:
                params = {}
            else:
                m = _VIA_BRANCH_RE.match(text, semi)
                if m is None:
                    params = parse_params(text, semi, "Via")
                else:
                    before, branch, after = m.groups()
                    if before is not None:
                        params = {"rport": None, "branch": branch}
                    elif after is not None:
                        params = {"branch": branch, "rport": None}
                    else:
                        params = {"branch": branch}
            via = _new_via(cls)
            via.protocol = "SIP/2.0"
            via.transport, via.host, via.port, via.sent_by = sent
            via.params = params
            via._text = text
            return via
        m = _VIA_RE.match(text)
        if m is None:
            raise SIPParseError("Bad Via header")
        name, version, transport, host, port = m.groups()
        if port is not None:
            port = int(port)
            if port > 65535:
                raise SIPParseError("Bad Via port")
        params = parse_params(text, m.end(), "Via")
        return cls(transport.upper(), host, port, params,
                   name.upper() + "/" + version, text)

    @property
    def branch(self):
        return self.params.get("branch")

    @property
    def received(self):
        return self.params.get("received")

    @property
    def rport(self):
        """The rport value as an int; C{None} if absent or without a value."""
        v = self.params.get("rport")
        if v and _DIGITS_RE.match(v):
            port = _int_value(v)
            if port <= 65535:
                return port
        return None

    @property
    def has_rport(self):
        """Whether the rport parameter is present (with or without a value)."""
        return "rport" in self.params

    @property
    def maddr(self):
        return self.params.get("maddr")

    @property
    def ttl(self):
        """The ttl parameter as an int (0-255), or C{None}."""
        v = self.params.get("ttl")
        if v and _DIGITS_RE.match(v):
            ttl = _int_value(v)
            if ttl <= 255:
                return ttl
        return None

    @property
    def reliable(self):
        return self.transport not in ("UDP", "DTLS")

    def with_received(self, host, rport=None):
        """
        A copy with C{received=host} and, when C{rport} (a str) is given,
        C{rport=rport} (RFC 3261 18.2.1, RFC 3581 4).  The text keeps the
        original's, with the value put after C{;rport} and C{;received=}
        added at the end, when that can be done on the text; otherwise it
        is formatted from the parameters.
        """
        params = self.params.copy()
        params["received"] = host
        if rport is not None:
            params["rport"] = rport
        via = _new_via(Via)
        via.protocol = self.protocol
        via.transport = self.transport
        via.host = self.host
        via.port = self.port
        via.sent_by = self.sent_by
        via.params = params
        text = self._text
        if text is None or "received" in self.params:
            text = None
        elif rport is not None:
            m = _EMPTY_RPORT_RE.search(text)
            text = (None if m is None else
                    text[:m.end()] + "=" + rport + text[m.end():] + ";received=" + host)
        else:
            text = text + ";received=" + host
        via._text = text
        return via

    def replace(self, **changes):
        fields = dict(protocol=self.protocol, transport=self.transport,
                      host=self.host, port=self.port, params=dict(self.params))
        fields.update(changes)
        return Via(**fields)

    def __str__(self):
        text = self._text
        if text is None:
            hp = self.host if self.port is None else "%s:%d" % (self.host, self.port)
            text = self._text = "%s/%s %s%s" % (
                self.protocol, self.transport, hp, format_params(self.params))
        return text

    def __repr__(self):
        return "<Via {}>".format(self)


# ---------------------------------------------------------------- name-addr

_DISPLAY_TOKENS_RE = re.compile(
    r"(?:" + _TOKEN + r")(?:[ \t]+" + _TOKEN + r")*\Z")
_QUOTED_RE = re.compile(_QUOTED, re.S)
# [display-name] <URI>: same result as the general code below.
_DISPLAY_FAST = (
    r'(?:(' + _QUOTED_P + r')[ \t]*+|(' + _TOKEN_P + r'(?:[ \t]++' + _TOKEN_P
    + r')*+)[ \t]*+)?')
_NAME_ADDR_FAST_RE = re.compile(
    _DISPLAY_FAST + r'<([^<>]*+)>(' + _PARAMS_FAST + r')\Z', re.S)
# The same with the common SIP URI inline (L{uri.SIP_FAST}): one match.
_NAME_ADDR_SIP_RE = re.compile(
    _DISPLAY_FAST + r'<(' + SIP_FAST + r')>(' + _PARAMS_FAST + r')\Z', re.S)

#: the group of the header parameters in a _NAME_ADDR_SIP_RE match.
_NAME_ADDR_PARAMS = _NAME_ADDR_SIP_RE.groups

# An addr-spec that is a common SIP URI (a name of its own here: the
# equivalence tests switch the fast paths off).
_SIP_URI_RE = SIP_FAST_RE


_new_name_addr = object.__new__

#: value -> its NameAddr, for the values that repeat (a UA's Contact, in each
#: of its requests; a proxy's Record-Route): L{NameAddr.parse} hands out
#: copies, never these.
_name_addrs = {}


class NameAddr:
    """
    A name-addr or addr-spec with its header parameters: C{display} (the
    display name as written, quotes included, or C{None}), C{uri} (a
    L{URI}), C{params}.  C{Contact: *} parses as C{uri=None, star=True}.
    """

    __slots__ = ("display", "uri", "params", "star", "_text")

    def __init__(self, uri, display=None, params=None, star=False, _text=None):
        self.display = display
        self.uri = uri
        self.params = params if params is not None else {}
        self.star = star
        self._text = _text

    @classmethod
    def parse(cls, text, what="header"):
        """Parse one value (one element of a Contact/Route list)."""
        s = text.strip()
        kept = _name_addrs.get(s)
        if kept is None:
            kept = cls._parse(s, what)
            _remember(_name_addrs, s, kept)
        # A copy: its own parameters, the (immutable) URI shared.
        na = _new_name_addr(cls)
        na.display = kept.display
        na.uri = kept.uri
        na.params = kept.params.copy()
        na.star = kept.star
        na._text = s
        return na

    @classmethod
    def _parse(cls, s, what):
        # parse() of a stripped value, without the cache.
        whole = s
        m = _NAME_ADDR_SIP_RE.match(s)
        if m is not None:
            return cls.from_match(m)
        m = _NAME_ADDR_FAST_RE.match(s)
        if m is not None:
            quoted, display, utext, ptext = m.groups()
            return cls(parse_uri(utext), quoted or display,
                       _split_params(ptext[1:]) if ptext else {}, False, s)
        if "<" not in s and '"' not in s:
            # The common addr-spec (C{sip:user@host:port;params}): what the
            # general code below finds, without its steps.
            sc = s.find(";")
            utext = s if sc < 0 else s[:sc]
            m = _SIP_URI_RE.match(utext)
            if m is not None and "?" not in utext and "," not in utext:
                ptext = s[sc:] if sc >= 0 else ""
                if not ptext or _PARAMS_FAST_RE.match(ptext):
                    scheme, user, password, host, port, _ = m.groups()
                    return cls(uri_from_fast(scheme, user, password, host, port, "", utext),
                               None, _split_params(ptext[1:]) if ptext else {}, False, s)
        if s == "*":
            return cls(None, star=True, _text=s)
        display = None
        if s.startswith('"'):
            m = _QUOTED_RE.match(s)
            if m is None:
                raise SIPParseError("Unbalanced quotes in " + what)
            display = m.group(0)
            rest = s[m.end():].lstrip(" \t")
            if not rest.startswith("<"):
                raise SIPParseError("Quoted display name without <URI> in " + what)
            s = rest
        lt = s.find("<")
        if lt >= 0:
            if lt > 0:
                name = s[:lt].rstrip(" \t")
                if not _DISPLAY_TOKENS_RE.match(name):
                    raise SIPParseError("Bad display name in " + what)
                display = name
            gt = s.find(">", lt)
            if gt < 0:
                raise SIPParseError("Unterminated <URI> in " + what)
            uri = parse_uri(s[lt + 1:gt])
            params = parse_params(s, gt + 1, what)
        else:
            if display is not None:
                raise SIPParseError("Bad name-addr in " + what)
            sc = s.find(";")
            utext = s if sc < 0 else s[:sc].rstrip(" \t")
            if "?" in utext or "," in utext:
                raise SIPParseError("addr-spec with ? or , needs <> in " + what)
            uri = parse_uri(utext)
            params = parse_params(s, sc, what) if sc >= 0 else {}
        return cls(uri, display, params, False, whole)

    @staticmethod
    def match(text):
        """
        Check the common form (C{[display] <sip:...>;params}, no
        whitespace around): a match object for L{from_match}, or C{None}
        when L{parse} must look at C{text}.
        """
        return _NAME_ADDR_SIP_RE.match(text)

    @classmethod
    def from_match(cls, m):
        """The NameAddr of a L{match} (or of the same form in L{parse})."""
        return cls.from_parts(m, m.group(_NAME_ADDR_PARAMS), m.string)

    @staticmethod
    def head_of(m):
        """
        C{(display, uri)} of a L{match}: what every value with the same
        text up to its C{>} shares (a parser keeps it for that text, and
        the URI, a value, is shared by the NameAddrs L{from_head} makes).
        """
        (quoted, display, utext, scheme, user, password, host, port,
         uparams, _) = m.groups()
        return (quoted or display,
                uri_from_fast(scheme, user, password, host, port, uparams, utext))

    @classmethod
    def from_head(cls, head, ptext, text):
        """
        The NameAddr C{text} in the common form: C{head} is the L{head_of}
        its part up to the C{>}, C{ptext} the parameters that follow
        (C{""} or as L{_PARAMS_FAST_RE} accepts them).
        """
        na = _new_name_addr(cls)
        na.display, na.uri = head
        if not ptext:
            na.params = {}
        else:
            tag = _lone_tag(ptext)
            na.params = {"tag": tag} if tag is not None else _split_params(ptext[1:])
        na.star = False
        na._text = text
        return na

    @classmethod
    def from_parts(cls, m, ptext, text):
        """
        The NameAddr C{text}, in the common form: C{m} is the L{match} of
        its part up to the C{>} (no parameters), C{ptext} the parameters
        that follow (C{""} or as L{_PARAMS_FAST_RE} accepts them).
        """
        return cls.from_head(cls.head_of(m), ptext, text)

    @property
    def tag(self):
        return self.params.get("tag")

    @property
    def display_name(self):
        """The display name without quotes, or C{None}."""
        return unquote(self.display) if self.display is not None else None

    def with_tag(self, tag):
        params = dict(self.params)
        params["tag"] = tag
        return NameAddr(self.uri, self.display, params)

    def replace(self, **changes):
        fields = dict(uri=self.uri, display=self.display,
                      params=dict(self.params), star=self.star)
        fields.update(changes)
        return NameAddr(**fields)

    def __str__(self):
        text = self._text
        if text is None:
            if self.star:
                text = "*"
            else:
                text = "<%s>%s" % (self.uri, format_params(self.params))
                if self.display:
                    text = self.display + " " + text
            self._text = text
        return text

    def __repr__(self):
        return "<NameAddr {}>".format(self)


# ---------------------------------------------------------------- CSeq

_new_tuple = tuple.__new__

#: the methods of RFC 3261 and its extensions, for fast paths only: any
#: token is a method.
METHODS = frozenset([
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK",
    "SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
])

_CSEQ_RE = re.compile(r"[ \t]*([0-9]{1,10})[ \t]+(" + _TOKEN + r")[ \t]*\Z")


class CSeq(tuple):
    """C{(seq, method)}; C{seq} below 2**31 (RFC 3261 8.1.1.5)."""

    __slots__ = ()

    def __new__(cls, seq, method):
        return _new_tuple(cls, (seq, method))

    def __getnewargs__(self):
        # copy, deepcopy and pickle rebuild through __new__(seq, method).
        return tuple(self)

    seq = property(lambda self: self[0])
    method = property(lambda self: self[1])

    @classmethod
    def parse(cls, text):
        seq, space, method = text.partition(" ")
        if (method in METHODS and seq.isdigit() and len(seq) < 10
                and seq.isascii()):
            return _new_tuple(cls, (int(seq), method))
        m = _CSEQ_RE.match(text)
        if m is None:
            raise SIPParseError("Bad CSeq header")
        seq = int(m.group(1))
        if seq >= 2 ** 31:
            raise SIPParseError("CSeq number too large")
        return cls(seq, m.group(2))

    def __str__(self):
        return "%d %s" % self


def parse_int(text, what, maximum=None):
    """A non-negative decimal header value (Content-Length, Max-Forwards, Expires)."""
    t = text.strip()
    if not _DIGITS_RE.match(t):
        raise SIPParseError("Bad " + what)
    value = _int_value(t)
    if maximum is not None and value > maximum:
        raise SIPParseError(what + " out of range")
    return value
