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
#: anything a URI may not hold unescaped: whitespace, controls, non-ASCII.
_BAD_CHAR_RE = re.compile(r"[^!-~]")
_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PARAM_NAME_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$]+\Z")
_TEL_VISUAL_RE = re.compile(r"[\-.()]")

# The common SIP URI, without escapes, passwords with colons, empty
# parameter values or headers: everything it accepts the general parser
# accepts too, with the same result.  Anything else takes the general path.
_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
_PARAMCHAR = _UNRESERVED + r"\[\]/:&+$"
#: groups: scheme, user, password, host, port (0-65535), parameters
#: (L{uri_from_fast}).
#: The runs are possessive (C{++}, C{*+}): each set stops at a character a
#: shorter run could not be followed by either, so giving back characters
#: never finds another match, and the engine is not made to try (nearly
#: half the instructions for a URI with parameters).  The host's last
#: character may not be C{-} or C{_}: the lookbehind.
SIP_FAST = (
    r"(sips?):"
    r"(?:([" + _UNRESERVED + r"&=+$,;?/]++)(?::([" + _UNRESERVED + r"&=+$,]*+))?@)?"
    r"([A-Za-z0-9][A-Za-z0-9.\-_]*+(?<![-_])|\[[0-9A-Fa-f:.]++\])"
    r"(?::([0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
    r"((?:;[" + _PARAMCHAR + r"]++(?:=[" + _PARAMCHAR + r"]++)?)*+)")
#: the whole text is one such URI (the groups of L{SIP_FAST}).
SIP_FAST_RE = re.compile(SIP_FAST + r"\Z")

#: URI parameters that must match when present in either URI (19.1.4).
_STRICT_PARAMS = ("transport", "user", "method", "ttl", "maddr")


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

    A URI is a value: nothing changes one in place (L{replace} makes a
    changed copy), so the parser shares the URI of a Request-URI it has
    seen before between the requests that carry it.
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
        # What equal URIs share (used for hashing): scheme, user and
        # password unescaped and case-sensitive, host case-insensitive, port.
        if self.opaque is not None:
            return (self.scheme, self.opaque)
        user = unescape(self.user)
        if self.scheme == "tel" and user:
            user = _TEL_VISUAL_RE.sub("", user)
        return (self.scheme, user, unescape(self.password),
                (self.host or "").lower(), self.port)

    def __eq__(self, other):
        """
        URI comparison (RFC 3261 19.1.4): scheme, userinfo (unescaped,
        case-sensitive), host (case-insensitive) and port must match; the
        transport, user, method, ttl and maddr parameters must match when
        either URI has them; other parameters only when both have them
        (names and values case-insensitive, unescaped); headers must match
        in any order.  Other schemes compare their text.
        """
        if not isinstance(other, URI):
            return NotImplemented
        if self._key() != other._key():
            return False
        if self.opaque is not None:
            return True
        p1 = self.params
        p2 = other.params
        if p1 or p2:
            for name in set(p1) | set(p2):
                if name in p1 and name in p2:
                    if _norm(p1[name]) != _norm(p2[name]):
                        return False
                elif name in _STRICT_PARAMS:
                    return False
        return _headers_key(self.headers) == _headers_key(other.headers)

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self):
        return hash(self._key())


def _norm(value):
    return None if value is None else unescape(value).lower()


def _headers_key(headers):
    if not headers:
        return ()
    items = []
    for item in headers.split("&"):
        name, _, value = item.partition("=")
        items.append((unescape(name).lower(), unescape(value)))
    return tuple(sorted(items))


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
        if "%" in name:
            # RFC 4475 esc01: "%6C%72" is the parameter "lr".
            plain = unescape(name)
            if _PARAM_NAME_RE.match(plain):
                name = plain
        params[name.lower()] = value if eq else None
    return params


def parse_uri(text):
    """
    Parse a URI.  Raises L{SIPParseError} (400) for a malformed one.  An
    unknown scheme is not an error here (RFC 4475 unkscm, novelsc, unksm2):
    the server answers 416 where it has to route on it.
    """
    m = SIP_FAST_RE.match(text)
    if m is not None:
        scheme, user, password, host, port, ptext = m.groups()
        return uri_from_fast(scheme, user, password, host, port, ptext, text)
    if not text:
        raise SIPParseError("Empty URI")
    if _BAD_CHAR_RE.search(text):
        raise SIPParseError("Whitespace or control character in URI")
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
        _check_escapes(rest, "tel URI")
        number, _, ptext = rest.partition(";")
        if not number:
            raise SIPParseError("Empty tel URI")
        return URI("tel", user=number, params=_parse_uri_params(ptext, "tel URI"),
                   _text=text)
    if not rest:
        raise SIPParseError("Empty URI")
    return URI(scheme, opaque=rest, _text=text)


def uri_from_fast(scheme, user, password, host, port, ptext, text):
    """The URI of a match of L{SIP_FAST}'s groups; C{text}: the URI text."""
    if port is not None:
        port = int(port)
        if port > 65535:
            raise SIPParseError("Bad port in URI")
    params = {}
    if ptext:
        for item in ptext[1:].split(";"):
            name, eq, value = item.partition("=")
            params[name.lower()] = value if eq else None
    uri = _new_uri(URI)
    uri.scheme = scheme
    uri.user = user
    uri.password = password
    uri.host = host
    uri.port = port
    uri.params = params
    uri.headers = None
    uri.opaque = None
    uri._text = text
    return uri


_new_uri = object.__new__


def _parse_sip(scheme, rest, text):
    if "%" in rest:
        _check_escapes(rest, "URI")
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
    headers = None
    q = rest.find("?")
    if q >= 0:
        headers = rest[q + 1:]
        rest = rest[:q]
        if not headers:
            raise SIPParseError("Empty headers in URI")
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
