"""
The SDP model (RFC 8866, formerly RFC 4566): parse and serialize session
descriptions, tolerant of what real user agents send.

  - lines of unknown type (and known ones this model does not interpret,
    such as C{i=}, C{b=}, C{k=}, C{r=}, C{z=}) are kept in order and
    re-emitted in their RFC position;
  - attributes are an ordered tuple of C{(name, value)}; C{value} is
    C{None} for property attributes such as C{a=sendrecv};
  - C{c=} may sit at session level, media level or both; C{IN IP6} is
    accepted;
  - CRLF or bare LF line endings, trailing whitespace and blank lines are
    accepted; CRLF is written.

Values are frozen attrs classes: change one with C{attrs.evolve} or the
C{with_*} helpers.
"""

import functools
import re
from itertools import islice

import attrs

__all__ = [
    "SdpError",
    "SdpParseError",
    "Origin",
    "Connection",
    "RtpMap",
    "MediaDescription",
    "SessionDescription",
    "parse",
    "DIRECTIONS",
    "STATIC_PAYLOAD_TYPES",
]

#: The four direction attributes (RFC 3264 section 5.1).
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


class SdpError(Exception):
    """
    Base class of SDP errors; C{status} is the SIP response to answer with.
    """

    status = 400


class SdpParseError(SdpError):
    """
    The body is not SDP that can be understood (answer 400).
    """

    status = 400


@attrs.frozen
class RtpMap:
    """
    An C{a=rtpmap} value: C{<pt> <encoding>/<clock rate>[/<channels>]}.
    """

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1

    def format(self):
        """The attribute value."""
        value = "%d %s/%d" % (self.payload_type, self.encoding, self.clock_rate)
        if self.channels != 1:
            value += "/%d" % (self.channels,)
        return value

    @classmethod
    def parse(cls, value):
        """
        Parse an attribute value; C{None} if it is malformed.
        """
        try:
            pt, rest = value.split(None, 1)
            parts = rest.strip().split("/")
            channels = int(parts[2]) if len(parts) > 2 and parts[2] else 1
            return cls(int(pt), parts[0], int(parts[1]), channels)
        except (ValueError, IndexError):
            return None


def _text_cache(maxsize, width=256):
    """
    C{functools.lru_cache} for a function of one text that keeps results
    only for texts up to C{width} characters: the texts that repeat from
    offer to offer are short, and a peer's long ones (a message carries up
    to 64 KB) would otherwise be kept, C{maxsize} of them.  Longer texts
    are worked out each time.  C{cache_clear} and C{cache_info} as
    C{lru_cache}'s.
    """
    def decorate(function):
        cached = functools.lru_cache(maxsize=maxsize)(function)

        @functools.wraps(function)
        def lookup(text):
            if len(text) <= width:
                return cached(text)
            return function(text)

        lookup.cache_clear = cached.cache_clear
        lookup.cache_info = cached.cache_info
        return lookup
    return decorate


@_text_cache(maxsize=512)
def _parse_rtpmap(value):
    # RtpMap values are immutable and the same few strings come in every
    # offer ("0 PCMU/8000", "101 telephone-event/8000"): parsed once.
    return RtpMap.parse(value)


#: RFC 3551 static payload types, understood without an rtpmap.
STATIC_PAYLOAD_TYPES = {
    pt: RtpMap(pt, name, rate, channels)
    for pt, name, rate, channels in (
        (0, "PCMU", 8000, 1),
        (3, "GSM", 8000, 1),
        (4, "G723", 8000, 1),
        (5, "DVI4", 8000, 1),
        (6, "DVI4", 16000, 1),
        (7, "LPC", 8000, 1),
        (8, "PCMA", 8000, 1),
        (9, "G722", 8000, 1),
        (10, "L16", 44100, 2),
        (11, "L16", 44100, 1),
        (12, "QCELP", 8000, 1),
        (13, "CN", 8000, 1),
        (14, "MPA", 90000, 1),
        (15, "G728", 8000, 1),
        (16, "DVI4", 11025, 1),
        (17, "DVI4", 22050, 1),
        (18, "G729", 8000, 1),
    )
}


@attrs.frozen
class Origin:
    """
    C{o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>}.

    C{session_id} is kept as a string (it may exceed 64 bits in the wild);
    C{session_version} is an int, as it is compared and incremented.
    """

    username: str
    session_id: str
    session_version: int
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "127.0.0.1"

    def format(self):
        return "%s %s %d %s %s %s" % (
            self.username,
            self.session_id,
            self.session_version,
            self.nettype,
            self.addrtype,
            self.address,
        )


@attrs.frozen
class Connection:
    """
    C{c=<nettype> <addrtype> <address>}; a multicast C{/ttl} suffix stays
    part of C{address}.
    """

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"

    @classmethod
    def for_address(cls, address):
        """A connection line for a unicast IPv4 or IPv6 address."""
        return cls(address, "IP6" if ":" in address else "IP4")

    @property
    def host(self):
        """The address without any C{/ttl} or C{/count} suffix."""
        return self.address.split("/", 1)[0]

    @property
    def is_hold(self):
        """The RFC 2543 hold form: C{c=IN IP4 0.0.0.0} (or C{::})."""
        return self.host in ("0.0.0.0", "::")

    def format(self):
        return "%s %s %s" % (self.nettype, self.addrtype, self.address)


def _pairs(value):
    """
    The converter of C{attributes} and C{lines}: a tuple of C{(name,
    value)} tuples.  A tuple is taken as given (the parser and the
    negotiator build tuples of tuples); anything else is rebuilt.
    """
    if type(value) is tuple:
        return value
    return tuple((name, val) for name, val in value)



def _formats(value):
    return value if type(value) is tuple else tuple(value)


class _AttributesMixin:
    def get_attribute(self, name, default=None):
        """The value of the first attribute called C{name}."""
        for key, value in self.attributes:
            if key == name:
                return value
        return default

    def get_attributes(self, name):
        """The values of every attribute called C{name}, in order."""
        return [value for key, value in self.attributes if key == name]

    def has_attribute(self, name):
        """Whether an attribute called C{name} is present."""
        return any(key == name for key, _ in self.attributes)

    @property
    def direction(self):
        """
        The direction attribute given at this level, or C{None}.
        """
        for key, value in self.attributes:
            if value is None and key in DIRECTIONS:
                return key
        return None

    def with_direction(self, direction):
        """
        A copy whose direction attribute is C{direction} (replacing any,
        added last if there was none).
        """
        if direction not in DIRECTIONS:
            raise ValueError("unknown direction %r" % (direction,))
        attributes = [(k, v) for k, v in self.attributes if not (v is None and k in DIRECTIONS)]
        attributes.append((direction, None))
        return attrs.evolve(self, attributes=attributes)


@attrs.frozen
class MediaDescription(_AttributesMixin):
    """
    One C{m=} section.

    @ivar formats: the format strings (payload type numbers for RTP).
    @ivar lines: other lines of the section, C{(type, value)}, in order.
    """

    media: str
    port: int
    proto: str
    formats: tuple = attrs.field(converter=_formats)
    port_count: int = None
    connection: Connection = None
    attributes: tuple = attrs.field(default=(), converter=_pairs)
    lines: tuple = attrs.field(default=(), converter=_pairs)

    @property
    def payload_types(self):
        """The formats that are integers, in order."""
        out = []
        for fmt in self.formats:
            try:
                out.append(int(fmt))
            except ValueError:
                pass
        return out

    def rtpmaps(self):
        """
        C{{payload_type: RtpMap}} for every listed payload type that has an
        C{a=rtpmap} or is a static one (malformed rtpmaps are skipped).
        """
        listed = self.payload_types
        maps = {}
        for value in self.get_attributes("rtpmap"):
            rtpmap = _parse_rtpmap(value or "")
            if rtpmap is not None and rtpmap.payload_type not in maps:
                maps[rtpmap.payload_type] = rtpmap
        out = {}
        for pt in listed:
            if pt in maps:
                out[pt] = maps[pt]
            elif pt in STATIC_PAYLOAD_TYPES:
                out[pt] = STATIC_PAYLOAD_TYPES[pt]
        return out

    def fmtps(self):
        """C{{payload_type: parameters}} from the C{a=fmtp} lines."""
        out = {}
        for value in self.get_attributes("fmtp"):
            try:
                pt, params = (value or "").split(None, 1)
                out.setdefault(int(pt), params.strip())
            except ValueError:
                pass
        return out

    @property
    def ptime(self):
        """C{a=ptime} in milliseconds, or C{None} (also if malformed)."""
        value = self.get_attribute("ptime")
        try:
            return int(float(value)) if value else None
        except ValueError:
            return None

    @property
    def rtcp(self):
        """
        C{a=rtcp} (RFC 3605) as C{(port, address or None)}, or C{None}.
        """
        value = self.get_attribute("rtcp")
        if not value:
            return None
        parts = value.split()
        try:
            port = int(parts[0])
        except ValueError:
            return None
        address = parts[3] if len(parts) >= 4 else None
        return port, address

    @property
    def rtcp_mux(self):
        """Whether C{a=rtcp-mux} (RFC 5761) is present."""
        return self.has_attribute("rtcp-mux")

    _ORDER = {"i": 0, "c": 1, "b": 2, "k": 3, "a": 5}

    def _text_lines(self):
        """The section's lines, C{"<type>=<value>"}, in RFC order."""
        port = str(self.port)
        if self.port_count is not None:
            port += "/%d" % (self.port_count,)
        out = ["m=" + " ".join((self.media, port, self.proto) + self.formats)]
        if self.lines:
            body = [(self._ORDER.get(kind, 4), kind, value) for kind, value in self.lines]
            if self.connection is not None:
                body.append((1, "c", self.connection.format()))
            body.sort(key=lambda item: item[0])
            out.extend("%s=%s" % (kind, value) for _, kind, value in body)
        elif self.connection is not None:
            out.append("c=" + self.connection.format())
        out.extend(_attribute_lines(self.attributes))
        return out


_DEFAULT_LINES = (("t", "0 0"),)


def _format_attributes(attributes):
    return tuple(["a=" + (name if value is None else "%s:%s" % (name, value))
                  for name, value in attributes])


_format_attributes_cached = functools.lru_cache(maxsize=256)(_format_attributes)


def _attribute_lines(attributes):
    """
    The C{a=} lines of C{attributes}.  A UA's (and our answers') attribute
    sets repeat from call to call: each is formatted once.
    """
    try:
        return _format_attributes_cached(attributes)
    except TypeError:       # pairs given as lists: not hashable
        return _format_attributes(attributes)


@attrs.frozen
class SessionDescription(_AttributesMixin):
    """
    A whole SDP body.

    @ivar lines: session-level lines other than v, o, s, c, a and m
        (i, u, e, p, b, t, r, z, k and unknown types), C{(type, value)}.
    """

    origin: Origin
    session_name: str = "-"
    connection: Connection = None
    attributes: tuple = attrs.field(default=(), converter=_pairs)
    media: tuple = attrs.field(default=(), converter=tuple)
    lines: tuple = attrs.field(default=_DEFAULT_LINES, converter=_pairs)
    version: int = 0

    def media_connection(self, media):
        """The connection for C{media}: its own, else the session's."""
        return media.connection if media.connection is not None else self.connection

    def media_direction(self, media):
        """
        The direction of C{media}: its own attribute, else the session's,
        else C{"sendrecv"}.
        """
        return media.direction or self.direction or "sendrecv"

    _ORDER = {"i": 0, "u": 1, "e": 2, "p": 3, "c": 4, "b": 5, "t": 6, "r": 6, "z": 7, "k": 8}

    def serialize(self):
        """
        The body as bytes, CRLF line endings.
        """
        out = [
            "v=%d" % (self.version,),
            "o=" + self.origin.format(),
            "s=" + (self.session_name or " "),
        ]
        lines = self.lines
        if lines == _DEFAULT_LINES:         # the usual: c= then t=0 0
            if self.connection is not None:
                out.append("c=" + self.connection.format())
            out.append("t=0 0")
        else:
            body = [(self._ORDER.get(kind, 9), kind, value) for kind, value in lines]
            if self.connection is not None:
                body.append((4, "c", self.connection.format()))
            if not any(kind == "t" for kind, _ in lines):
                body.append((6, "t", "0 0"))
            body.sort(key=lambda item: item[0])
            out.extend("%s=%s" % (kind, value) for _, kind, value in body)
        out.extend(_attribute_lines(self.attributes))
        for media in self.media:
            out.extend(media._text_lines())
        return ("\r\n".join(out) + "\r\n").encode("utf-8", "surrogateescape")

    __bytes__ = serialize

    @classmethod
    def parse(cls, data):
        """
        Parse bytes (or str).

        @raise SdpParseError: not SDP.
        """
        return parse(data)


# An attribute's (name, value) and a Connection are immutable, and the same
# few lines come in every offer of a UA (its rtpmaps, ptime and direction;
# its address): each parsed once.
@_text_cache(maxsize=512)
def _parse_attribute(value):
    name, sep, rest = value.partition(":")
    return (name, rest) if sep else (name, None)


@_text_cache(maxsize=512)
def _parse_connection(value):
    parts = value.split()
    if len(parts) != 3:
        raise SdpParseError("malformed c= line: %r" % (value,))
    return Connection(parts[2], parts[1], parts[0])


def _parse_media(value):
    parts = value.split()
    if len(parts) < 3:
        raise SdpParseError("malformed m= line: %r" % (value,))
    port_text, _, count_text = parts[1].partition("/")
    try:
        port = int(port_text)
        count = int(count_text) if count_text else None
    except ValueError:
        raise SdpParseError("malformed m= port: %r" % (parts[1],))
    if not 0 <= port <= 65535:
        raise SdpParseError("m= port out of range: %d" % (port,))
    return parts[0], port, parts[2], tuple(parts[3:]), count


def _lines(text):
    """The lines of C{text} that are not blank, trailing whitespace removed."""
    return [line for line in map(str.rstrip, text.split("\n")) if line]


def _typed_lines(lines):
    """
    C{(type, value)} of each line, in turn; L{SdpParseError} at a line that
    is not C{<letter>=...} (so the errors come in the lines' order).
    """
    for line in lines:
        if line[1:2] != "=" or not ("a" <= line[0] <= "z"):
            raise SdpParseError("malformed SDP line: %r" % (line[:40],))
        yield line[0], line[2:]


#: The longest section body (the lines after the m= line) kept parsed: a
#: phone's or trunk's is a few hundred characters.  Full, with bodies of
#: this length, the cache holds about 3 MB (measured with tracemalloc).
_SECTION_WIDTH = 2048


@_text_cache(maxsize=256, width=_SECTION_WIDTH)
def _parse_section_body(text):
    # The lines after an m= line, up to the next one: its c=, attributes and
    # other lines.  A UA sends the same ones in every offer (its codecs,
    # ptime, direction, address) while the m= port changes: parsed once.
    connection = None
    attributes = []
    lines = []
    for kind, value in _typed_lines(_lines(text)):
        if kind == "a":
            attributes.append(_parse_attribute(value))
        elif kind == "c":
            connection = _parse_connection(value)
        else:
            lines.append((kind, value))
    return connection, tuple(attributes), tuple(lines)


def _parse_section(text):
    # text: an m= section without its "m=" (the line's value, then the
    # section's other lines)
    value, _, body = text.partition("\n")
    media, port, proto, formats, count = _parse_media(value.rstrip())
    connection, attributes, lines = _parse_section_body(body)
    return MediaDescription(media, port, proto, formats, count, connection, attributes, lines)


#: (tests switch the head's fast path off to compare it with the general way)
_fast_head = True

#: The session-level lines as almost every UA writes them: v=0, o=, s=, an
#: optional c=, t=, each value without leading or trailing whitespace and
#: o='s fields one space apart.  Matched at once instead of split and
#: dispatched line by line, with the same result (\\S is what str.split and
#: str.rstrip do not take for whitespace); any other head, the general way.
_HEAD_RE = re.compile(
    r"v=0\r?\n"
    r"o=(\S+) (\S+) ([0-9]+) (\S+) (\S+) (\S+)\r?\n"
    r"s=(\S(?:[^\r\n]*\S)?)\r?\n"
    r"(?:c=(\S(?:[^\r\n]*\S)?)\r?\n)?"
    r"t=(\S(?:[^\r\n]*\S)?)\r?\n?\Z")
_match_head = _HEAD_RE.match


def parse(data):
    """
    Parse an SDP body (bytes or str) into a L{SessionDescription}.

    @raise SdpParseError: not SDP (no C{v=} first, a line that is not
        C{<letter>=...}, a malformed C{o=}, C{c=} or C{m=}).
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data).decode("utf-8", "surrogateescape")
    # The session-level lines, then one text per m= section (a line that
    # starts with "m=" starts one).
    head, *sections = data.split("\nm=")
    m = _match_head(head) if _fast_head else None
    if m is not None:
        (username, session_id, session_version, nettype, addrtype, address, session_name,
         connection, timing) = m.groups()
        origin = Origin(username, session_id, int(session_version), nettype, addrtype, address)
        if connection is not None:
            connection = _parse_connection(connection)
        media = tuple([_parse_section(text) for text in sections])
        return SessionDescription(origin, session_name, connection, (), media,
                                  (("t", timing),), 0)
    lines = _lines(head)
    if not lines or not lines[0].startswith("v="):
        raise SdpParseError("SDP must start with v=")
    try:
        version = int(lines[0][2:].strip())
    except ValueError:
        raise SdpParseError("malformed v= line")
    origin = None
    session_name = "-"
    connection = None
    attributes = []
    other = []
    for kind, value in _typed_lines(islice(lines, 1, None)):
        if kind == "a":
            attributes.append(_parse_attribute(value))
        elif kind == "o":
            parts = value.split()
            if len(parts) != 6:
                raise SdpParseError("malformed o= line: %r" % (value,))
            try:
                sess_version = int(parts[2])
            except ValueError:
                raise SdpParseError("malformed o= session version: %r" % (parts[2],))
            origin = Origin(parts[0], parts[1], sess_version, *parts[3:])
        elif kind == "s":
            session_name = value
        elif kind == "c":
            connection = _parse_connection(value)
        elif kind != "v":
            other.append((kind, value))
    media = tuple([_parse_section(text) for text in sections])
    if origin is None:
        raise SdpParseError("SDP without o= line")
    return SessionDescription(origin, session_name, connection, tuple(attributes), media,
                              tuple(other), version)
