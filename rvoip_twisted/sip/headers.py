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
from .uri import parse_uri

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


def canonical_name(name):
    """The canonical spelling of a header name; unknown names unchanged."""
    return CANONICAL.get(name.lower(), name)


def is_token(text):
    return bool(text) and TOKEN_RE.match(text) is not None


def parse_params(text, pos=0, what="header"):
    """
    Parse C{*( SEMI generic-param )} from C{text[pos:]} to its end.

    Returns a dict keyed by lower-case name; a flag's value is C{None};
    quoted values keep their quotes (L{unquote} strips them).
    """
    params = {}
    end = len(text)
    match = _PARAM_RE.match
    while pos < end:
        m = match(text, pos)
        if m is None or m.end() == pos:
            raise SIPParseError("Bad parameters in " + what)
        params[m.group(1).lower()] = m.group(2)
        pos = m.end()
    return params


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


# ---------------------------------------------------------------- Via

_VIA_RE = re.compile(
    r"[ \t]*(" + _TOKEN + r")[ \t]*/[ \t]*(" + _TOKEN + r")[ \t]*/[ \t]*("
    + _TOKEN + r")[ \t]+(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)"
    r"(?:[ \t]*:[ \t]*([0-9]{1,5}))?[ \t]*")


class Via:
    """
    One Via value: C{protocol} (C{"SIP/2.0"}), C{transport} (upper case),
    C{host}, C{port} (int or C{None}), C{params}.
    """

    __slots__ = ("protocol", "transport", "host", "port", "params", "_text")

    def __init__(self, transport, host, port=None, params=None,
                 protocol="SIP/2.0", _text=None):
        self.protocol = protocol
        self.transport = transport
        self.host = host
        self.port = port
        self.params = params if params is not None else {}
        self._text = _text

    @classmethod
    def parse(cls, text):
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
        return int(v) if v and v.isdigit() else None

    @property
    def sent_by(self):
        return (self.host.lower(), self.port)

    @property
    def reliable(self):
        return self.transport not in ("UDP", "DTLS")

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
        s = text.strip()
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
        return cls(uri, display, params, False, text.strip())

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

_CSEQ_RE = re.compile(r"[ \t]*([0-9]{1,10})[ \t]+(" + _TOKEN + r")[ \t]*\Z")


class CSeq(tuple):
    """C{(seq, method)}; C{seq} below 2**31 (RFC 3261 8.1.1.5)."""

    __slots__ = ()

    def __new__(cls, seq, method):
        return tuple.__new__(cls, (seq, method))

    seq = property(lambda self: self[0])
    method = property(lambda self: self[1])

    @classmethod
    def parse(cls, text):
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
    if not (t.isascii() and t.isdigit()):
        raise SIPParseError("Bad " + what)
    value = int(t)
    if maximum is not None and value > maximum:
        raise SIPParseError(what + " out of range")
    return value
