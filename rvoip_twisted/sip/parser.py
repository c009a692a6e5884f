"""
Turning bytes into L{Request}s and L{Response}s (RFC 3261 sections 7 and
18.3).

L{parse_message} takes one datagram; L{StreamParser} frames messages out of
a TCP byte stream.  Both check the start line and the headers every SIP
element depends on (Via, From, To, Call-ID, CSeq, Max-Forwards,
Content-Length) and raise L{SIPParseError} with the status to answer; a
parse error never leaves state behind that outlives the message.

An error about a message whose start line is not a status line carries
C{partial}: a L{Request} with the headers that could be read, so that a
transport can still answer 400/413/505 (RFC 3261 8.2.6: Via, From, To,
Call-ID and CSeq are copied from it).
"""

import re
from itertools import islice

from .errors import (
    MessageTooLarge, MissingContentLength, SIPParseError, VersionNotSupported,
)
from .headers import (
    _NAME_ADDR_PARAMS, _NAME_ADDR_SIP_RE, _PARAMS_FAST_RE, CANONICAL,
    CANONICAL_FAST, METHODS, SINGLE_HEADERS, TOKEN_RE, CSeq, NameAddr, Via,
    _remember, parse_int, split_list,
)
from .message import ENCODING, ERRORS, Message, Request, Response
from .uri import parse_uri

#: the largest message accepted (a UDP datagram's maximum payload).
MAX_MESSAGE_SIZE = 65535

_CRLFS_RE = re.compile(b"[\r\n]*")
#: a Content-Length line, to frame a stream message whose head is broken.
_RAW_LENGTH_RE = re.compile(
    b"^(?:content-length|l)[ \t]*:[ \t]*([0-9]{1,10})[ \t]*\r?$",
    re.I | re.M)
_LINE_SPLIT_RE = re.compile("\r?\n|\r")

#: the headers the parser indexes while reading the head.
_TRACKED = SINGLE_HEADERS | frozenset(["Via"])


def _find_head(data, start=0):
    """
    (end of the head, start of the body) in C{data}, or C{None} when the
    blank line that ends the headers has not arrived.  C{start}: where to
    begin looking.  The blank line is C{LF [CR] LF}: CRLF and LF line ends
    are both accepted.
    """
    crlf = data.find(b"\n\r\n", start)
    lf = data.find(b"\n\n", start, crlf + 1 if crlf >= 0 else len(data))
    if lf >= 0:
        end, body = lf, lf + 2
    elif crlf >= 0:
        end, body = crlf, crlf + 3
    else:
        return None
    if end and data[end - 1] == 13:
        end -= 1
    return end, body


def _is_token(text):
    return TOKEN_RE.match(text) is not None


def _header_name(name):
    """The canonical name of a header line's name part (not in CANONICAL_FAST)."""
    raw = name.rstrip(" \t")
    key = CANONICAL.get(raw.lower())
    if key is None:
        if not TOKEN_RE.match(raw):
            raise SIPParseError("Bad header name")
        key = raw
    return key


def _index(headers):
    """
    C{(index, dups)}: C{index} maps each header name to its first value;
    C{dups}, C{None} when no name repeats, maps each C{_TRACKED} name that
    repeats to all its values.
    """
    index = dict(headers)
    if len(index) == len(headers):
        return index, None
    index = {}
    dups = {}
    tracked = _TRACKED
    for name, value in headers:
        if name in index:
            if name in tracked:
                values = dups.get(name)
                if values is None:
                    dups[name] = [index[name], value]
                else:
                    values.append(value)
        else:
            index[name] = value
    return index, dups


def _unfold(lines):
    """Join continuation lines to their header line (RFC 3261 7.3.1)."""
    merged = [lines[0]]
    for i in range(1, len(lines)):
        line = lines[i]
        if not line:
            raise SIPParseError("Empty line in message head")
        first = line[0]
        if first == " " or first == "\t":
            if len(merged) == 1:
                raise SIPParseError("Continuation line before any header")
            merged[-1] = merged[-1] + " " + line.strip(" \t")
        else:
            if ":" not in line:
                raise SIPParseError("Header line without a colon")
            merged.append(line)
    return merged


#: Caches of what a text parsed to, for the texts that repeat from message to
#: message, each a dict: header line -> its (canonical name, value) pair
#: (Max-Forwards, Content-Type, User-Agent, Allow, a device's Contact, the
#: From and Call-ID of every request in a dialog...); From or To value -> its
#: parts (L{_name_addr_parts}); the part of one up to its C{>} -> its match;
#: CSeq value -> its CSeq; request line -> its method and Request-URI (every
#: request of a kind within a dialog has the same one, the Request-URI being
#: the Contact its peer was given; every new call to a number too).
#: The results are immutable (a URI is a value: it is never changed in place,
#: L{URI.replace} makes a changed copy), so messages share them.  Each is
#: bounded by L{_remember} (see L{headers._remember}).
_line_cache = {}
_name_addr_cache = {}
_name_addr_head_cache = {}
_cseq_cache = {}
_request_line_cache = {}


def _header_lines(lines):
    """
    The (canonical name, value) pairs of a head's header lines
    (C{lines[1:]}); C{None} when one is a continuation line (the caller
    unfolds them first: they are rare, and looking for them up front would
    cost every message a scan of its head).
    """
    cached = _line_cache.get
    cget = CANONICAL_FAST.get
    headers = []
    append = headers.append
    for line in islice(lines, 1, None):
        pair = cached(line)
        if pair is not None:
            append(pair)
            continue
        name, colon, value = line.partition(":")
        key = cget(name)
        if key is None:
            first = line[:1]
            if first == " " or first == "\t":
                return None
            if not colon:
                raise SIPParseError("Header line without a colon")
            key = _header_name(name)
        elif not colon:
            raise SIPParseError("Header line without a colon")
        pair = (key, value.strip(" \t"))
        append(pair)
        if key != "Via":
            # (a Via line carries its transaction's branch: it is met again
            # only in a retransmission, and would crowd the others out)
            _remember(_line_cache, line, pair)
    return headers


def _parse_head(head, crlf_only=False):
    """
    Parse the start line and header lines (bytes, without the blank line).
    Returns a Request or Response with an empty body.  Raises
    SIPParseError.

    With C{crlf_only} (the head's end was found by looking for CRLF CRLF
    alone), returns C{None} when a line ends otherwise than in CRLF: the
    caller then finds the head's end again, by the general rule.
    """
    text = head.decode(ENCODING, ERRORS)
    try:
        lines = text.split("\r\n")
        # A bare LF or CR is left inside a line; joining the lines and
        # looking for one (memchr) is cheaper than counting.
        joined = "".join(lines)
        if "\n" in joined or "\r" in joined:
            if crlf_only:
                return None
            # LF line ends, or stray CRs.
            text = text.replace("\r\n", "\n")
            if "\r" in text:
                raise SIPParseError("Bare CR in message head")
            lines = text.split("\n")
        headers = _header_lines(lines)
        if headers is None:
            headers = _header_lines(_unfold(lines))
    except SIPParseError as e:
        e.partial = _partial(text)
        raise
    start = lines[0]
    if start.startswith("SIP/"):
        return _parse_status_line(start, headers)
    return _parse_request_line(start, headers)


def _parse_status_line(start, headers):
    parts = start.split(" ", 2)
    if len(parts) < 2:
        raise SIPParseError("Bad status line")
    version = parts[0]
    if version.upper() != "SIP/2.0":
        raise VersionNotSupported("SIP version not supported")
    code = parts[1]
    if len(code) != 3 or not code.isdigit() or not code.isascii() or code[0] == "0":
        raise SIPParseError("Bad status code")
    status = int(code)
    if status >= 700:
        raise SIPParseError("Bad status code")
    reason = parts[2] if len(parts) > 2 else ""
    return Response(status, reason, headers)


def _parse_request_line(start, headers):
    parsed = _request_line_cache.get(start)
    if parsed is None:
        parsed = _request_line(start, headers)
        _remember(_request_line_cache, start, parsed)
    # Request.__init__ without the call overhead (the same slots).
    req = _new_message(Request)
    req.headers = headers
    req.body = b""
    req._cache = {}
    req.source = None
    req.raw_key = None
    req.method, req.uri = parsed
    return req


def _request_line(start, headers):
    """C{(method, Request-URI)} of a request line; raises L{SIPParseError}."""
    parts = start.split(" ")
    if len(parts) != 3:
        raise SIPParseError(
            "Bad request line", partial=_partial_request(start, headers))
    method, uritext, version = parts
    if version != "SIP/2.0" and version.upper() != "SIP/2.0":
        raise VersionNotSupported(
            "SIP version not supported",
            partial=_partial_request(start, headers))
    if method not in METHODS and not _is_token(method):
        raise SIPParseError(
            "Bad method", partial=_partial_request(start, headers))
    try:
        uri = parse_uri(uritext)
        if uri.headers is not None:
            raise SIPParseError("Headers in the Request-URI")
    except SIPParseError as e:
        e.partial = _partial_request(start, headers)
        raise
    return method, uri


_new_message = object.__new__
# NameAddr.match without the call: the common From/To form, or None.
_match_name_addr = _NAME_ADDR_SIP_RE.match
_head_of = NameAddr.head_of


def _partial_request(start, headers):
    """
    A Request for answering a message whose request line or headers are
    broken: the method is the first word if it is a token (else
    C{"UNKNOWN"}), C{uri} the Request-URI if it parses (else C{None}).
    """
    parts = start.split(" ")
    method = parts[0] if _is_token(parts[0]) else "UNKNOWN"
    uri = None
    if len(parts) > 1:
        try:
            uri = parse_uri(parts[1])
        except SIPParseError:
            pass
    req = Request.__new__(Request)
    Message.__init__(req, headers, b"")
    req.raw_key = None
    req.method = method
    req.uri = uri
    return req


def _partial(text):
    """
    The partial Request for a head whose header lines are broken: the
    header lines that can be read, the others skipped.  C{None} when the
    start line is a status line.
    """
    lines = _LINE_SPLIT_RE.split(text)
    start = lines[0]
    if start.startswith("SIP/"):
        return None
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            if headers:
                name, value = headers[-1]
                headers[-1] = (name, (value + " " + line.strip(" \t")).strip(" \t"))
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not _is_token(name):
            continue
        headers.append((CANONICAL.get(name.lower(), name), value.strip(" \t")))
    return _partial_request(start, headers)


def _framing_length(head):
    """
    The Content-Length of a head that did not parse, if it has exactly one
    (a stream can then skip the broken message and go on); else C{None}.
    """
    values = set(int(v) for v in _RAW_LENGTH_RE.findall(head))
    if len(values) == 1:
        return values.pop()
    return None


def _int(value, what, maximum=None):
    if value.isdigit() and len(value) < 10 and value.isascii():
        number = int(value)
        if maximum is None or number <= maximum:
            return number
    return parse_int(value, what, maximum)


def _content_length(msg, index, dups):
    value = index.get("Content-Length")
    if value is None:
        length = None
    else:
        if dups and "Content-Length" in dups:
            _no_conflict("Content-Length", dups["Content-Length"])
        length = _int(value, "Content-Length")
    msg._cache["content-length"] = length
    return length


def _no_conflict(name, values):
    # Identical repeats are tolerated, conflicting ones are not.
    first = values[0].strip()
    for value in values:
        if value.strip() != first:
            raise SIPParseError("More than one " + name + " header")


def _check_name_addr(cache, index, name, key, match_key):
    """
    Check the From or To header (C{name}): the parts of its common form
    (L{_name_addr_parts}) are left in the message's C{cache} under
    C{match_key} (the object is built on first use), any other form parsed
    into C{cache[key]}.
    """
    value = index.get(name)
    if value is None:
        raise SIPParseError("Missing " + name + " header")
    parts = _name_addr_cache.get(value)
    if parts is None:
        parts = _name_addr_parts(value)
        if parts is None:
            cache[key] = NameAddr.parse(value, name)
            return
        _remember(_name_addr_cache, value, parts)
    cache[match_key] = parts


def _name_addr_parts(value):
    """
    C{(head, params, value)}, L{NameAddr.from_head}'s arguments, for a
    From or To C{value} in the common form (C{[display] <sip:...>} then
    parameters without whitespace or quotes); else C{None}.  The part up
    to the C{>} is the same in every request of a UA, so what it parses to
    (L{NameAddr.head_of}: the display name and the URI) is kept
    (C{_name_addr_head_cache}); the parameters (a tag, new in each dialog)
    are checked on their own.
    """
    # The usual value: a known head, then no parameter or a tag of letters
    # and digits (which the parameters' pattern would accept).
    head, tag, rest = value.partition(";tag=")
    parsed = _name_addr_head_cache.get(head)
    if parsed is not None:
        if not tag:
            return (parsed, "", value)
        if rest.isalnum():
            return (parsed, tag + rest, value)
    # Any other: the head is what comes up to the last ">".
    gt = value.rfind(">")
    if gt < 0:
        return None
    gt += 1
    head = value[:gt] if gt < len(value) else value
    parsed = _name_addr_head_cache.get(head)
    if parsed is None:
        m = _match_name_addr(head)
        if m is None or m.group(_NAME_ADDR_PARAMS):
            # (a ">" in a parameter's value: left to NameAddr.parse)
            return None
        parsed = _head_of(m)
        _remember(_name_addr_head_cache, head, parsed)
    if head is value:
        return (parsed, "", value)
    params = value[gt:]
    if _PARAMS_FAST_RE.match(params) is None:
        return None
    return (parsed, params, value)


#: Max-Forwards values as written -> the number (0 is checked the long way).
_MAX_FORWARDS = {str(n): n for n in range(1, 256)}


def _check(msg, index, dups):
    """
    The checks every element needs before it can act on a message; fills
    the message's cached views of the headers checked.
    """
    if dups:
        for name, values in dups.items():
            if name != "Via":
                _no_conflict(name, values)
    cache = msg._cache
    call_id = index.get("Call-ID")
    if call_id is None:
        raise SIPParseError("Missing Call-ID header")
    call_id = call_id.strip()
    if not call_id:
        raise SIPParseError("Empty Call-ID header")
    cache["call-id"] = call_id
    value = index.get("CSeq")
    if value is None:
        raise SIPParseError("Missing CSeq header")
    cseq = _cseq_cache.get(value)
    if cseq is None:
        cseq = CSeq.parse(value)
        _remember(_cseq_cache, value, cseq)
    cache["cseq"] = cseq
    # From and To: checked now, the objects built on first use.
    _check_name_addr(cache, index, "From", "from", "from?")
    _check_name_addr(cache, index, "To", "to", "to?")
    value = index.get("Max-Forwards")
    if value is not None:
        value = _MAX_FORWARDS.get(value) or _int(value, "Max-Forwards", 255)
    cache["max-forwards"] = value
    value = index.get("Via")
    if value is None:
        raise SIPParseError("Missing Via header")
    if dups and "Via" in dups:
        values = dups["Via"]
    else:
        values = (value,)
    vias = []
    for value in values:
        if "," in value:
            for item in split_list(value):
                if not item:
                    raise SIPParseError("Empty Via value")
                vias.append(Via.parse(item))
        else:
            if not value:
                raise SIPParseError("Empty Via value")
            vias.append(Via.parse(value))
    cache["via"] = vias
    if cseq[1] != getattr(msg, "method", cseq[1]):
        raise SIPParseError("CSeq method does not match the request method")


def _fail(error, msg):
    if error.partial is None and isinstance(msg, Request):
        error.partial = msg
    return error


def parse_message(data, max_size=MAX_MESSAGE_SIZE):
    """
    Parse one datagram.  Content-Length may be absent (the body is the rest
    of the datagram); bytes beyond Content-Length are dropped; a
    Content-Length larger than the datagram is an error (RFC 3261 18.3).
    CRLFs before the start line are skipped; LF line ends are accepted.

    @raise SIPParseError: (or a subclass) with the C{status} to answer and,
        for a request, C{partial}.
    """
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) > max_size:
        raise MessageTooLarge("Message too large")
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
    # The usual message: CRLF line ends, so its head ends at the first CRLF
    # CRLF (one search instead of _find_head's two).
    end = data.find(b"\r\n\r\n")
    msg = _parse_head(data[:end], True) if end > 0 else None
    if msg is not None:
        offset = end + 4
    else:
        found = _find_head(data)
        if found is None:
            # No blank line: a message without a body whose final CRLF is
            # missing.
            head = data.rstrip(b"\r\n")
            offset = len(data)
        else:
            end, offset = found
            head = data[:end]
        if not head:
            raise SIPParseError("Empty message")
        msg = _parse_head(head)
    try:
        headers = msg.headers
        index = dict(headers)
        if len(index) == len(headers):
            dups = None
            # (no name repeats: the message answers lookups from it)
            msg._cache["index"] = index
            value = index.get("Content-Length")
            if value is None:
                length = None
            elif value.isdigit() and len(value) < 10 and value.isascii():
                length = int(value)
            else:
                length = parse_int(value, "Content-Length")
            msg._cache["content-length"] = length
        else:
            index, dups = _index(headers)
            length = _content_length(msg, index, dups)
        _check(msg, index, dups)
    except SIPParseError as e:
        raise _fail(e, msg)
    if length is None:
        msg.body = data[offset:]
    else:
        if offset + length > len(data):
            raise _fail(
                SIPParseError("Content-Length larger than the message"), msg)
        msg.body = data[offset:offset + length]
    return msg


class StreamParser:
    """
    Frames SIP messages out of a byte stream (RFC 3261 18.3: Content-Length
    is mandatory on a stream).  Feed it bytes as they arrive; it returns the
    complete messages.  CRLFs between messages (keep-alives, RFC 5626
    4.4.1) are skipped.

    A message that is framed (its Content-Length is known) but malformed
    only drops that message: it comes out as a L{SIPParseError} item (with
    C{partial} for a request) and parsing goes on.

    A framing error (no usable Content-Length, a message over C{max_size})
    is fatal for the stream: the buffered bytes are dropped and the parser
    is closed, since where the next message starts is unknown.  L{feed}
    raises it; or, when complete messages came before it in the same
    read, returns them with the error as the last item (so that they are
    delivered and the error answered at once).  Every later L{feed} raises
    a L{SIPParseError} without C{partial}: the transport closes the
    connection.

    @ivar error: the framing error once the stream has failed, else
        C{None}.
    """

    def __init__(self, max_size=MAX_MESSAGE_SIZE):
        self.max_size = max_size
        self.error = None
        self._buffer = b""
        # (message or None, index, dups, error or None, body offset,
        # length) of a message whose head is parsed and whose body has not
        # all arrived.
        self._pending = None
        # bytes at the buffer's start already searched for the blank line.
        self._scanned = 0

    def _reset(self):
        self._buffer = b""
        self._pending = None
        self._scanned = 0

    def feed(self, data):
        """
        Add bytes; return a list of items, each a message or a
        L{SIPParseError} (see the class docstring).  Raises L{SIPParseError}
        when the stream cannot be framed any more.
        """
        if self.error is not None:
            raise SIPParseError(
                "Stream closed after a framing error: " + self.error.reason)
        buf = self._buffer + data if self._buffer else bytes(data)
        out = []
        pending = self._pending
        scanned = self._scanned
        pos = 0
        n = len(buf)
        max_size = self.max_size
        while True:
            if pending is None:
                if pos < n and (buf[pos] == 13 or buf[pos] == 10):
                    pos = _CRLFS_RE.match(buf, pos).end()
                    scanned = pos
                if pos >= n:
                    break
                found = _find_head(buf, max(pos, scanned - 2))
                if found is None:
                    if n - pos > max_size:
                        return self._fatal(
                            out, MessageTooLarge("Message head too large"))
                    scanned = n
                    break
                end, offset = found
                head = buf[pos:end]
                msg = index = dups = error = None
                try:
                    msg = _parse_head(head)
                    index, dups = _index(msg.headers)
                    length = _content_length(msg, index, dups)
                except SIPParseError as e:
                    if msg is not None:
                        # The head parsed but its Content-Length is bad or
                        # ambiguous: the stream cannot be framed.
                        return self._fatal(out, _fail(e, msg))
                    error = e
                    length = _framing_length(head)
                    if length is None:
                        return self._fatal(out, e)
                if length is None:
                    return self._fatal(out, _fail(MissingContentLength(
                        "Missing Content-Length on a stream"), msg))
                if offset - pos + length > max_size:
                    return self._fatal(
                        out, _fail(MessageTooLarge("Message too large"), msg))
                pending = (msg, index, dups, error, offset - pos, length)
            msg, index, dups, error, offset, length = pending
            start = pos + offset
            end = start + length
            if end > n:
                break
            pending = None
            pos = scanned = end
            if error is not None:
                out.append(error)
                continue
            msg.body = buf[start:end]
            try:
                _check(msg, index, dups)
            except SIPParseError as e:
                out.append(_fail(e, msg))
                continue
            out.append(msg)
        self._buffer = buf[pos:] if pos else buf
        self._pending = pending
        self._scanned = scanned - pos
        return out

    def _fatal(self, out, error):
        self._reset()
        self.error = error
        if out:
            out.append(error)
            return out
        raise error
