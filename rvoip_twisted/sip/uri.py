"""
SIP, SIPS and tel URIs (RFC 3261 section 19.1, RFC 3966), and an opaque
absolute URI for every other scheme.

A parsed URI keeps the exact text it came from, so serialising it gives the
same bytes back; L{URI.replace} builds a changed copy.  Field values keep
their escapes as on the wire; L{unescape} decodes them where a comparison
needs it.
"""

import re
from urllib.parse import unquote as _unquote

from .errors import SIPParseError

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*\Z")
_HOST_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.\-_]*[A-Za-z0-9.])?\Z|[A-Za-z0-9]\Z")
_IPV6_RE = re.compile(r"\[[0-9A-Fa-f:.]+\]\Z")
_WS = frozenset(" \t\r\n")
_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def unescape(value):
    """
    Decode %HH escapes (RFC 3261 section 19.1.2).
    """
    if value is None or "%" not in value:
        return value
    return _unquote(value, errors="surrogateescape")


def _check_escapes(text, what):
    if "%" in text and _ESCAPE_RE.search(text):
        raise SIPParseError("Bad escape in " + what)


class URI:
    """
    A URI.  For C{sip}/C{sips}: C{user}, C{password}, C{host}, C{port} (an
    int or C{None}), C{params} (a dict keyed by lower-case name, value a str
    or C{None} for a flag), C{headers} (the raw text after C{?}, or
    C{None}).  For C{tel}: the number is C{user}, C{host} is C{None}.  For
    any other scheme, the part after the colon is C{opaque}.
    """

    __slots__ = (
        "scheme", "user", "password", "host", "port", "params", "headers",
        "opaque", "_text",
    )

    def __init__(self, scheme="sip", user=None, host=None, port=None,
                 params=None, headers=None, password=None, opaque=None,
                 _text=None):
        self.scheme = scheme
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.params = params if params is not None else {}
        self.headers = headers
        self.opaque = opaque
        self._text = _text

    @property
    def is_sip(self):
        return self.scheme in ("sip", "sips")

    @property
    def transport(self):
        """The C{transport} parameter, lower-cased (RFC 3261: case-insensitive)."""
        t = self.params.get("transport")
        return t.lower() if t else None

    def hostport(self, default_port=None):
        """(host, port) with the host stripped of IPv6 brackets."""
        host = self.host
        if host and host[0] == "[":
            host = host[1:-1]
        return host, self.port if self.port is not None else default_port

    def replace(self, **changes):
        """A copy with some fields changed."""
        fields = {k: getattr(self, k) for k in (
            "scheme", "user", "password", "host", "port", "headers", "opaque")}
        fields["params"] = dict(self.params)
        fields.update(changes)
        return URI(**fields)

    def __str__(self):
        text = self._text
        if text is None:
            text = self._text = self._format()
        return text

    def _format(self):
        if self.opaque is not None:
            return "{}:{}".format(self.scheme, self.opaque)
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts.append(":")
                parts.append(self.password)
            if self.host is not None:
                parts.append("@")
        if self.host is not None:
            parts.append(self.host)
            if self.port is not None:
                parts.append(":%d" % (self.port,))
        for name, value in self.params.items():
            parts.append(";" + name if value is None else ";%s=%s" % (name, value))
        if self.headers is not None:
            parts.append("?" + self.headers)
        return "".join(parts)

    def __repr__(self):
        return "<URI {}>".format(self)

    def _key(self):
        # RFC 3261 19.1.4, simplified: scheme, user and password compared
        # unescaped and case-sensitively, host case-insensitively, ports and
        # the transport/user/method/ttl/maddr parameters must match.
        if self.opaque is not None:
            return (self.scheme, self.opaque)
        params = tuple(sorted(
            (k, (v or "").lower()) for k, v in self.params.items()
            if k in ("transport", "user", "method", "ttl", "maddr")))
        return (self.scheme, unescape(self.user), unescape(self.password),
                (self.host or "").lower(), self.port, params)

    def __eq__(self, other):
        if not isinstance(other, URI):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self):
        return hash(self._key())


def _parse_uri_params(text, what):
    params = {}
    if not text:
        return params
    for item in text.split(";"):
        if not item:
            raise SIPParseError("Empty parameter in " + what)
        name, eq, value = item.partition("=")
        if not name:
            raise SIPParseError("Empty parameter name in " + what)
        params[name.lower()] = value if eq else None
    return params


def parse_uri(text):
    """
    Parse a URI.  Raises L{SIPParseError} (400) for a malformed one.  An
    unknown scheme is not an error here (RFC 4475 unkscm, novelsc, unksm2):
    the server answers 416 where it has to route on it.
    """
    if not text:
        raise SIPParseError("Empty URI")
    for ch in text:
        if ch in _WS:
            raise SIPParseError("Whitespace in URI")
    colon = text.find(":")
    if colon <= 0:
        raise SIPParseError("URI without a scheme")
    scheme = text[:colon]
    if not _SCHEME_RE.match(scheme):
        raise SIPParseError("Bad URI scheme")
    scheme = scheme.lower()
    rest = text[colon + 1:]
    if scheme == "sip" or scheme == "sips":
        return _parse_sip(scheme, rest, text)
    if scheme == "tel":
        number, _, ptext = rest.partition(";")
        if not number:
            raise SIPParseError("Empty tel URI")
        return URI("tel", user=number, params=_parse_uri_params(ptext, "tel URI"),
                   _text=text)
    if not rest:
        raise SIPParseError("Empty URI")
    return URI(scheme, opaque=rest, _text=text)


def _parse_sip(scheme, rest, text):
    user = password = None
    at = rest.find("@")
    if at >= 0:
        userinfo = rest[:at]
        rest = rest[at + 1:]
        user, colon, pw = userinfo.partition(":")
        if not user:
            raise SIPParseError("Empty user part in URI")
        if colon:
            password = pw
        _check_escapes(userinfo, "URI user part")
    headers = None
    q = rest.find("?")
    if q >= 0:
        headers = rest[q + 1:]
        rest = rest[:q]
    params = {}
    sc = rest.find(";")
    if sc >= 0:
        params = _parse_uri_params(rest[sc + 1:], "URI")
        rest = rest[:sc]
    port = None
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0:
            raise SIPParseError("Unterminated IPv6 reference in URI")
        host = rest[:close + 1]
        if not _IPV6_RE.match(host):
            raise SIPParseError("Bad IPv6 reference in URI")
        tail = rest[close + 1:]
        if tail:
            if tail[0] != ":":
                raise SIPParseError("Bad host in URI")
            port = _port(tail[1:])
    else:
        host, colon, ptext = rest.partition(":")
        if colon:
            port = _port(ptext)
        if not _HOST_RE.match(host):
            raise SIPParseError("Bad host in URI")
    return URI(scheme, user=user, password=password, host=host, port=port,
               params=params, headers=headers, _text=text)


def _port(text):
    if not (text.isascii() and text.isdigit()) or len(text) > 5:
        raise SIPParseError("Bad port in URI")
    port = int(text)
    if port > 65535:
        raise SIPParseError("Bad port in URI")
    return port
