"""
Turning bytes into L{Request}s and L{Response}s (RFC 3261 sections 7 and
18.3).

L{parse_message} takes one datagram; L{StreamParser} frames messages out of
a TCP byte stream.  Both check the start line and the headers every SIP
element depends on (Via, From, To, Call-ID, CSeq, Max-Forwards,
Content-Length) and raise L{SIPParseError} with the status to answer; a
parse error never leaves state behind that outlives the message.
"""

from .errors import MessageTooLarge, SIPParseError, VersionNotSupported
from .headers import CANONICAL, SINGLE_HEADERS, TOKEN_CHARS, parse_int
from .message import ENCODING, ERRORS, Request, Response
from .uri import parse_uri

#: the largest message accepted (a UDP datagram's maximum payload).
MAX_MESSAGE_SIZE = 65535

_CRLF2 = b"\r\n\r\n"
_LF2 = b"\n\n"


def _split_head(data):
    """
    (head text, body offset) of a message, or None when the blank line
    that ends the headers has not arrived.
    """
    end = data.find(_CRLF2)
    lf = data.find(_LF2)
    if lf >= 0 and (end < 0 or lf < end):
        return data[:lf], lf + 2
    if end < 0:
        return None
    return data[:end], end + 4


def _is_token(text):
    if not text:
        return False
    for ch in text:
        if ch not in TOKEN_CHARS:
            return False
    return True


def _parse_head(head):
    """
    Parse the start line and header lines.  Returns a Request or Response
    with an empty body; raises SIPParseError.
    """
    text = head.decode(ENCODING, ERRORS)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            raise SIPParseError("Bare CR in message head")
    lines = text.split("\n")
    start = lines[0]

    # Header lines, continuation lines unfolded (RFC 3261 7.3.1).
    headers = []
    append = headers.append
    canonical = CANONICAL
    name = None
    value = None
    for line in lines[1:]:
        if not line:
            raise SIPParseError("Empty line in message head")
        first = line[0]
        if first == " " or first == "\t":
            if name is None:
                raise SIPParseError("Continuation line before any header")
            value = value + " " + line.strip(" \t")
            continue
        if name is not None:
            append((name, value.strip(" \t")))
        colon = line.find(":")
        if colon <= 0:
            raise SIPParseError("Header line without a colon")
        raw = line[:colon].rstrip(" \t")
        name = canonical.get(raw.lower())
        if name is None:
            if not _is_token(raw):
                raise SIPParseError("Bad header name")
            name = raw
        value = line[colon + 1:]
    if name is not None:
        append((name, value.strip(" \t")))

    if start.startswith("SIP/"):
        msg = _parse_status_line(start, headers)
    else:
        msg = _parse_request_line(start, headers)
    return msg


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
    parts = start.split(" ")
    if len(parts) != 3:
        partial = Request.__new__(Request)
        _init_partial(partial, headers)
        raise SIPParseError("Bad request line", partial=partial)
    method, uritext, version = parts
    if version.upper() != "SIP/2.0":
        partial = Request.__new__(Request)
        _init_partial(partial, headers, method)
        raise VersionNotSupported("SIP version not supported", partial=partial)
    if not _is_token(method):
        raise SIPParseError("Bad method")
    try:
        uri = parse_uri(uritext)
        if uri.headers is not None:
            raise SIPParseError("Headers in the Request-URI")
    except SIPParseError as e:
        partial = Request.__new__(Request)
        _init_partial(partial, headers, method)
        e.partial = partial
        raise
    return Request(method, uri, headers)


def _init_partial(req, headers, method="UNKNOWN"):
    from .message import Message
    Message.__init__(req, headers, b"")
    req.method = method
    req.uri = None


def _check(msg):
    """The checks every element needs before it can act on a message."""
    headers = msg.headers
    seen = set()
    for n, v in headers:
        if n in SINGLE_HEADERS:
            if n in seen:
                # Identical repeats are tolerated, conflicting ones are not.
                msg._single(n)
            seen.add(n)
    msg.call_id
    cseq = msg.cseq
    msg.from_
    msg.to
    msg.max_forwards
    if not msg.vias:
        raise SIPParseError("Missing Via header")
    if isinstance(msg, Request) and cseq[1] != msg.method:
        raise SIPParseError("CSeq method does not match the request method")


def _fail(error, msg):
    if isinstance(msg, Request) and error.partial is None:
        error.partial = msg
    return error


def parse_message(data, max_size=MAX_MESSAGE_SIZE):
    """
    Parse one datagram.  Content-Length may be absent (the body is the rest
    of the datagram); bytes beyond Content-Length are dropped; a
    Content-Length larger than the datagram is an error (RFC 3261 18.3).
    """
    if len(data) > max_size:
        raise MessageTooLarge("Message too large")
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
    split = _split_head(data)
    if split is None:
        # No blank line: a message without a body whose final CRLF is missing.
        head, offset = data.rstrip(b"\r\n"), len(data)
    else:
        head, offset = split
    if not head:
        raise SIPParseError("Empty message")
    msg = _parse_head(head)
    try:
        _check(msg)
        length = msg.content_length
    except SIPParseError as e:
        raise _fail(e, msg)
    if length is None:
        msg.body = data[offset:]
    else:
        if offset + length > len(data):
            raise _fail(SIPParseError("Content-Length larger than the message"), msg)
        msg.body = data[offset:offset + length]
    return msg


class StreamParser:
    """
    Frames SIP messages out of a byte stream (RFC 3261 18.3: Content-Length
    is mandatory on a stream).  Feed it bytes as they arrive; it returns the
    complete messages.  A framing error is fatal for the stream (the
    transport answers it if it can and closes the connection); a parse
    error in one message whose length is known only drops that message.
    """

    def __init__(self, max_size=MAX_MESSAGE_SIZE):
        self._buffer = b""
        self.max_size = max_size

    def feed(self, data):
        """
        Add bytes; return a list of items, each a message or a
        L{SIPParseError} for a well-framed but malformed message.  Raises
        L{SIPParseError} when the stream cannot be framed any more.
        """
        buf = self._buffer + data if self._buffer else data
        out = []
        while buf:
            if buf[:1] in (b"\r", b"\n"):
                # keep-alive CRLFs between messages (RFC 5626 4.4.1)
                buf = buf.lstrip(b"\r\n")
                continue
            split = _split_head(buf)
            if split is None:
                if len(buf) > self.max_size:
                    self._buffer = b""
                    raise MessageTooLarge("Message head too large")
                break
            head, offset = split
            try:
                msg = _parse_head(head)
            except SIPParseError as e:
                # No usable Content-Length: the stream cannot be re-synced.
                self._buffer = b""
                raise e
            try:
                length = msg.content_length
            except SIPParseError as e:
                self._buffer = b""
                raise _fail(e, msg)
            if length is None:
                self._buffer = b""
                raise _fail(SIPParseError("Missing Content-Length on a stream"), msg)
            if offset + length > self.max_size:
                self._buffer = b""
                raise _fail(MessageTooLarge("Message too large"), msg)
            if len(buf) < offset + length:
                break
            msg.body = buf[offset:offset + length]
            buf = buf[offset + length:]
            try:
                _check(msg)
            except SIPParseError as e:
                out.append(_fail(e, msg))
                continue
            out.append(msg)
        self._buffer = buf
        return out
