"""
SIP requests and responses (RFC 3261 section 7).

Headers are kept in order as C{(name, value)} pairs with canonical names
(compact forms expanded); lookups are case-insensitive.  Values are text
decoded from the wire as UTF-8 with C{surrogateescape}, so any byte
sequence survives a parse and serialise round trip.  Structured views (Via,
From, To, CSeq, Contact...) are parsed on first use and cached; changing a
header drops the cache.
"""

from .errors import SIPParseError
from .headers import (
    CANONICAL, CANONICAL_FAST, LIST_HEADERS, CSeq, NameAddr, Via,
    _lone_tag, _remember, _split_params, is_token, parse_int, split_list,
)
from .ids import new_tag
from .uri import URI, parse_uri

ENCODING = "utf-8"
ERRORS = "surrogateescape"

REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded",
    182: "Queued", 183: "Session Progress", 200: "OK", 202: "Accepted",
    300: "Multiple Choices", 301: "Moved Permanently",
    302: "Moved Temporarily", 305: "Use Proxy", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 410: "Gone", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 423: "Interval Too Brief",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete",
    485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

#: headers a response copies from its request (RFC 3261 8.2.6.2).
_COPIED = ("Via", "From", "To", "Call-ID", "CSeq")
_COPIED_SET = frozenset(_COPIED)


_KNOWN_NAMES = frozenset(CANONICAL.values())
_fast_key = CANONICAL_FAST.get


def _key(name):
    """The canonical spelling of a header name (unknown names as given)."""
    return _fast_key(name) or CANONICAL.get(name.lower(), name)


def _canonical(headers):
    """C{headers} with every known name in its canonical spelling."""
    known = _KNOWN_NAMES
    for n, _ in headers:
        if n not in known:
            return [(_key(n), v) for n, v in headers]
    return headers


#: a cache entry not computed yet (None is a value: no tag).
_UNSET = object()

#: Content-Type values (every SDP body's is the same) -> the media type
#: (L{Message.content_type}), bounded by L{_remember}.
_content_types = {}


class Message:
    """
    What requests and responses share: C{headers} (a list of C{(name,
    value)} pairs), C{body} (bytes), and the cached structured views.
    """

    __slots__ = ("headers", "body", "_cache", "source")

    def __init__(self, headers=None, body=b""):
        # parser._parse_request_line fills these slots directly: keep it
        # in step when adding one.
        # Known names are stored canonical (so are the parser's), so a
        # lookup of a known name compares strings, nothing lower-cased.
        self.headers = _canonical(headers) if headers is not None else []
        self.body = body
        self._cache = {}
        #: (transport, host, port) it came from; set by transports.
        self.source = None

    def __getstate__(self):
        # Build the views the parser left pending before copy or pickle
        # takes the slots: a copy carries its own From and To, not parts
        # the parser shares between messages.
        c = self._cache
        if "from?" in c:
            self.from_
        if "to?" in c:
            self.to
        return object.__getstate__(self)

    # -- raw access

    def _matcher(self, name):
        """
        C{(canonical name, lower-cased name or None)}: a known name is
        matched by equality alone; an unknown one case-insensitively.
        """
        name = _key(name)
        return name, (None if name in _KNOWN_NAMES else name.lower())

    def get(self, name, default=None):
        """The first value of a header (the first element of a list header)."""
        name, lname = self._matcher(name)
        for n, v in self.headers:
            if n == name or (lname is not None and n.lower() == lname):
                if name in LIST_HEADERS:
                    return split_list(v)[0]
                return v
        return default

    def get_all(self, name):
        """Every value of a header, list headers split on their commas."""
        name, lname = self._matcher(name)
        out = []
        split = name in LIST_HEADERS
        for n, v in self.headers:
            if n == name or (lname is not None and n.lower() == lname):
                if split:
                    out.extend(split_list(v))
                else:
                    out.append(v)
        return out

    def header_names(self):
        """
        The set of header names present, known ones canonical (kept until
        the headers change).
        """
        c = self._cache
        names = c.get("names")
        if names is None:
            index = c.get("index")
            if index is not None:
                names = index.keys()
            else:
                names = frozenset([name for name, _ in self.headers])
            c["names"] = names
        return names

    def has(self, name):
        name, lname = self._matcher(name)
        for n, _ in self.headers:
            if n == name or (lname is not None and n.lower() == lname):
                return True
        return False

    def set(self, name, value):
        """Replace every instance of a header with one value (at the first one's place)."""
        name = _key(name)
        lname = name.lower()
        new = []
        placed = False
        for n, v in self.headers:
            if n.lower() == lname:
                if not placed:
                    new.append((name, value))
                    placed = True
            else:
                new.append((n, v))
        if not placed:
            new.append((name, value))
        self.headers = new
        self._cache.clear()

    def add(self, name, value):
        """Append a header (after any others)."""
        self.headers.append((_key(name), value))
        self._cache.clear()

    def insert(self, name, value):
        """Put a header value before the first of its name (Via, Route), or first."""
        name = _key(name)
        lname = name.lower()
        for i, (n, _) in enumerate(self.headers):
            if n.lower() == lname:
                self.headers.insert(i, (name, value))
                break
        else:
            self.headers.insert(0, (name, value))
        self._cache.clear()

    def remove(self, name):
        lname = _key(name).lower()
        self.headers = [(n, v) for n, v in self.headers if n.lower() != lname]
        self._cache.clear()

    def replace_top_via(self, via):
        """Replace the first Via value (also when Vias share a header line)."""
        headers = self.headers
        for i, (name, value) in enumerate(headers):
            if name == "Via":
                if "," in value:
                    values = split_list(value)
                    values[0] = str(via)
                    headers[i] = ("Via", ", ".join(values))
                else:
                    headers[i] = ("Via", str(via))
                break
        else:
            headers.insert(0, ("Via", str(via)))
        vias = self._cache.get("via")
        if vias is not None:
            self._cache["via"] = [via] + vias[1:]

    # -- structured views

    def _single(self, name):
        # The parser leaves the message's index under "index" when no
        # header name repeats (the usual message): kept until the headers
        # change, as every cached view.
        index = self._cache.get("index")
        if index is not None:
            return index.get(name)
        value = None
        for n, v in self.headers:
            if n == name:
                if value is not None and v.strip() != value.strip():
                    raise SIPParseError("More than one " + name + " header")
                value = v
        return value

    def _required(self, name):
        value = self._single(name)
        if value is None:
            raise SIPParseError("Missing " + name + " header")
        return value

    @property
    def call_id(self):
        c = self._cache
        if "call-id" not in c:
            value = self._required("Call-ID").strip()
            if not value:
                raise SIPParseError("Empty Call-ID header")
            c["call-id"] = value
        return c["call-id"]

    @property
    def cseq(self):
        c = self._cache
        if "cseq" not in c:
            c["cseq"] = CSeq.parse(self._required("CSeq"))
        return c["cseq"]

    def _name_addr(self, name, key):
        # The parser checks From and To and leaves the parts of the common
        # form under "key?" (NameAddr.from_head's arguments): the object is
        # built on use.
        c = self._cache
        value = c.get(key)
        if value is None:
            parts = c.pop(key + "?", None)
            if parts is not None:
                value = NameAddr.from_head(*parts)
            else:
                value = NameAddr.parse(self._required(name), name)
            c[key] = value
        return value

    @property
    def from_(self):
        """The From header (a L{NameAddr})."""
        return self._name_addr("From", "from")

    @property
    def to(self):
        """The To header (a L{NameAddr})."""
        return self._name_addr("To", "to")

    def _tag(self, name, key, tag_key, match_key):
        # The tag alone, without building the NameAddr and its URI when the
        # parser left the header's match pending (ACK and BYE need only
        # the tags, to find their dialog).  Kept under tag_key.
        c = self._cache
        value = c.get(key)
        if value is None:
            parts = c.get(match_key)
            if parts is not None:
                ptext = parts[1]
                if not ptext:
                    tag = None
                else:
                    tag = _lone_tag(ptext)
                    if tag is None:
                        tag = _split_params(ptext[1:]).get("tag")
                c[tag_key] = tag
                return tag
            value = self._name_addr(name, key)
        tag = c[tag_key] = value.params.get("tag")
        return tag

    @property
    def from_tag(self):
        tag = self._cache.get("from-tag", _UNSET)
        if tag is _UNSET:
            tag = self._tag("From", "from", "from-tag", "from?")
        return tag

    @property
    def to_tag(self):
        tag = self._cache.get("to-tag", _UNSET)
        if tag is _UNSET:
            tag = self._tag("To", "to", "to-tag", "to?")
        return tag

    @property
    def vias(self):
        c = self._cache
        if "via" not in c:
            vias = []
            for value in self.get_all("Via"):
                if not value:
                    raise SIPParseError("Empty Via value")
                vias.append(Via.parse(value))
            c["via"] = vias
        return c["via"]

    @property
    def top_via(self):
        vias = self._cache.get("via")
        if vias is None:
            vias = self.vias
        if not vias:
            raise SIPParseError("Missing Via header")
        return vias[0]

    def _name_addrs(self, name, key):
        # (name: a known header, stored canonical: compared as it is)
        c = self._cache
        value = c.get(key)
        if value is None:
            value = []
            index = c.get("index")
            if index is None or name in index:
                for n, v in self.headers:
                    if n == name:
                        if "," in v:
                            value.extend([NameAddr.parse(item, name) for item in split_list(v)])
                        else:
                            value.append(NameAddr.parse(v, name))
            c[key] = value
        return value

    @property
    def contacts(self):
        return self._name_addrs("Contact", "contact")

    @property
    def contact(self):
        """The first Contact, or C{None}."""
        contacts = self.contacts
        return contacts[0] if contacts else None

    @property
    def routes(self):
        return self._name_addrs("Route", "route")

    @property
    def record_routes(self):
        return self._name_addrs("Record-Route", "record-route")

    @property
    def max_forwards(self):
        c = self._cache
        if "max-forwards" not in c:
            value = self._single("Max-Forwards")
            c["max-forwards"] = (
                None if value is None else parse_int(value, "Max-Forwards", 255))
        return c["max-forwards"]

    @property
    def content_length(self):
        """The Content-Length header as an int, or C{None} if absent."""
        c = self._cache
        if "content-length" not in c:
            value = self._single("Content-Length")
            c["content-length"] = (
                None if value is None else parse_int(value, "Content-Length"))
        return c["content-length"]

    @property
    def content_type(self):
        """The media type, lower-cased, without parameters; C{None} if absent."""
        c = self._cache
        if "content-type" not in c:
            value = self._single("Content-Type")
            if value is None:
                c["content-type"] = None
            else:
                mtype = _content_types.get(value)
                if mtype is None:
                    mtype = value.split(";", 1)[0].strip().lower()
                    main, slash, sub = mtype.partition("/")
                    main = main.strip()
                    sub = sub.strip()
                    if not slash or not is_token(main) or not is_token(sub):
                        raise SIPParseError("Bad Content-Type header")
                    mtype = main + "/" + sub
                    _remember(_content_types, value, mtype)
                c["content-type"] = mtype
        return c["content-type"]

    @property
    def expires(self):
        """The Expires header as an int (capped at 2**32-1), or C{None}."""
        c = self._cache
        if "expires" not in c:
            value = self._single("Expires")
            c["expires"] = (
                None if value is None
                else min(parse_int(value, "Expires"), 2 ** 32 - 1))
        return c["expires"]

    def validate(self):
        """
        Parse every structured header this stack understands, raising
        L{SIPParseError} (400) for the first malformed one.  The parser has
        already checked the start line, Via, From, To, Call-ID, CSeq,
        Max-Forwards and Content-Length.
        """
        # One pass for the names present (known names are stored
        # canonical), then only those headers are parsed.
        present = self.header_names()
        try:
            if "Contact" in present:
                self.contacts
            if "Route" in present:
                self.routes
            if "Record-Route" in present:
                self.record_routes
            if "Content-Type" in present:
                self.content_type
            if "Expires" in present:
                self.expires
            if "Date" in present:
                date = self._single("Date")
                if date is not None and not date.rstrip().endswith("GMT"):
                    raise SIPParseError("Date must be in GMT")
        except SIPParseError as e:
            if e.partial is None and isinstance(self, Request):
                e.partial = self
            raise
        return self

    # -- serialisation

    def _start_line(self):
        raise NotImplementedError()

    def to_bytes(self):
        """
        The message on the wire.  Content-Length is always the body's
        length: written where the first Content-Length header was (others
        dropped), or last when there was none.
        """
        body = self.body
        length = "Content-Length: %d" % (len(body),)
        # The text is joined once from the parts: no string made per header.
        parts = [self._start_line()]
        placed = False
        for n, v in self.headers:
            if n == "Content-Length":
                if not placed:
                    parts += ("\r\n", length)
                    placed = True
            else:
                parts += ("\r\n", n, ": ", v)
        if not placed:
            parts += ("\r\n", length)
        parts.append("\r\n\r\n")
        return "".join(parts).encode(ENCODING, ERRORS) + body

    __bytes__ = to_bytes


class Request(Message):
    """
    A SIP request: C{method}, C{uri} (a L{URI}), headers, body.

    @ivar raw_key: for a request received in a datagram, C{hash()} of the
        datagram's bytes (set by the transport): the transaction layer
        recognises a byte-identical retransmission by it without parsing.
    """

    __slots__ = ("method", "uri", "raw_key")

    def __init__(self, method, uri, headers=None, body=b""):
        Message.__init__(self, headers, body)
        self.raw_key = None
        self.method = method
        if isinstance(uri, str):
            uri = parse_uri(uri)
        self.uri = uri

    def _start_line(self):
        return "%s %s SIP/2.0" % (self.method, self.uri)

    def response(self, status, reason=None, to_tag=None, headers=(), body=b""):
        """
        A response to this request (RFC 3261 8.2.6): Via, From, To, Call-ID
        and CSeq copied; a response other than 100 gets C{to_tag} added to
        To if To has no tag (a fresh random tag when C{to_tag} is None, as
        8.2.6.2 requires).
        """
        c = self._cache
        if "index" in c:
            # no header name repeats (see _single): one of each already
            hdrs = [pair for pair in self.headers if pair[0] in _COPIED_SET]
        else:
            hdrs = []
            seen = set()
            for n, v in self.headers:
                if n == "Via":
                    hdrs.append((n, v))
                elif n in _COPIED and n not in seen:
                    # One of each: a repeated (identical) To must not come
                    # out as a tagged and an untagged To.
                    seen.add(n)
                    hdrs.append((n, v))
        if status > 100:
            try:
                # (the tag read alone when there is one, as for a BYE's
                # 200: the To object is not built for it; nor for a To
                # the parser found without parameters)
                parts = c.get("to?")
                has_tag = self.to_tag is not None or (
                    (parts is None or parts[1] != "") and "tag" in self.to.params)
            except SIPParseError:
                # A partial request's To may be unparsable: copy it as is.
                has_tag = True
            if not has_tag:
                if to_tag is None:
                    to_tag = new_tag()
                for i, (n, v) in enumerate(hdrs):
                    if n == "To":
                        hdrs[i] = ("To", "%s;tag=%s" % (v.strip(), to_tag))
                        break
        if status == 100:
            ts = self.get("Timestamp")
            if ts is not None:
                hdrs.append(("Timestamp", ts))
        hdrs.extend(headers)
        return Response(status, reason or REASONS.get(status, "Unknown"), hdrs, body)

    def __repr__(self):
        return "<Request %s %s>" % (self.method, self.uri)


class Response(Message):
    """A SIP response: C{status}, C{reason}, headers, body."""

    __slots__ = ("status", "reason")

    def __init__(self, status, reason=None, headers=None, body=b""):
        Message.__init__(self, headers, body)
        self.status = status
        self.reason = REASONS.get(status, "Unknown") if reason is None else reason

    def _start_line(self):
        return "SIP/2.0 %d %s" % (self.status, self.reason)

    def __repr__(self):
        return "<Response %d %s>" % (self.status, self.reason)


__all__ = ["Message", "Request", "Response", "URI", "REASONS"]
