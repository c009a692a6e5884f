"""
Property tests: whatever bytes arrive, the parser answers with a message or
a L{SIPParseError} (or a subclass), never another exception.

Examples are derandomized (the same on every run, so CI is stable) and
their counts kept moderate; raise them locally to fuzz harder.
"""

import os

from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.sip.errors import SIPParseError
from rvoip_twisted.sip.message import Message, Request
from rvoip_twisted.sip import headers as hmod, parser
from rvoip_twisted.sip.parser import StreamParser, parse_message

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def _load(*path):
    with open(os.path.join(FIXTURES, *path), "rb") as f:
        return f.read()


CORPUS = [_load("sip", "sipp_invite.sip")] + [
    _load("rfc4475", tag + ".dat") for tag in (
        "wsinv", "intmeth", "esc01", "esc02", "mpart01", "unreason", "transports",
        "regescrt", "inv2543", "cparam01", "semiuri", "noreason")]
_head, _, _body = CORPUS[0].partition(b"\r\n\r\n")
CORPUS.append(_head.replace(b"\r\n", b"\n") + b"\n\n" + _body)

INTERESTING = [
    b"\r\n", b"\n", b"\r", b"\r\n\r\n", b" ", b"\t", b"\r\n ", b":", b";", b",",
    b"=", b'"', b"\\", b"<", b">", b"@", b"%", b"%0", b"?", b"[", b"]", b"/",
    b"\x00", b"\xff", b"\xc3", b"SIP/2.0", b"sip:", b"tel:", b"Via: ", b"v: ",
    b"Content-Length: ", b"l: 99999999999", b"0", b"65536", b"9" * 30,
    b";branch=", b";tag=", b"CSeq: 1 INVITE", b"Max-Forwards: 256",
]

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


@st.composite
def mutated(draw):
    """A corpus message with byte flips, insertions, deletions,
    truncations and duplicated header lines."""
    data = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(
            ["flip", "insert", "delete", "truncate", "dup", "swap"]))
        n = len(data)
        if kind == "flip" and n:
            i = draw(st.integers(0, n - 1))
            data[i] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            i = draw(st.integers(0, n))
            data[i:i] = draw(st.one_of(st.sampled_from(INTERESTING),
                                       st.binary(min_size=1, max_size=6)))
        elif kind == "delete" and n:
            i = draw(st.integers(0, n - 1))
            del data[i:draw(st.integers(i + 1, min(n, i + 40)))]
        elif kind == "truncate":
            data = data[:draw(st.integers(0, n))]
        elif kind in ("dup", "swap"):
            lines = bytes(data).split(b"\n")
            k = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if kind == "dup":
                lines.insert(j, lines[k])
            else:
                lines[k], lines[j] = lines[j], lines[k]
            data = bytearray(b"\n".join(lines))
    return bytes(data)


_PIECES = st.sampled_from(INTERESTING + [
    b"INVITE", b"ACK", b"a", b"Z", b"1", b"To", b"From", b"Contact", b"Route",
    b"<sip:a@b>", b'"x y"', b"SIP/2.0/UDP h", b"[::1]", b"*", b"tag", b"q=0.5",
    b"Expires", b"Date", b"GMT", b"Content-Type", b"a/b", b"Call-ID", b"i"])


@st.composite
def assembled(draw):
    """A message built from a start line and header lines made of SIP-ish
    pieces: reaches deeper than random bytes."""
    start = draw(st.sampled_from([
        b"INVITE sip:bob@example.com SIP/2.0", b"SIP/2.0 200 OK",
        b"OPTIONS sip:x SIP/2.0", b"REGISTER sips:[::1]:5061 SIP/2.0"]))
    lines = [start]
    base = [b"Via: SIP/2.0/UDP h;branch=z9hG4bK1", b"From: <sip:a@b>;tag=1",
            b"To: <sip:c@d>", b"Call-ID: x", b"CSeq: 1 INVITE"]
    for line in base:
        if draw(st.integers(0, 4)):
            lines.append(line)
    for _ in range(draw(st.integers(0, 5))):
        name = draw(st.sampled_from([b"Via", b"From", b"To", b"Contact", b"Route",
                                     b"Record-Route", b"CSeq", b"Max-Forwards",
                                     b"Expires", b"Content-Type", b"Date", b"m",
                                     b"v", b"X-Y", b"Content-Length", b"l"]))
        value = b"".join(draw(st.lists(_PIECES, max_size=8)))
        lines.append(name + b": " + value)
    body = draw(st.binary(max_size=20))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _is_request_start(data):
    data = data.lstrip(b"\r\n")
    return bool(data) and not data.startswith(b"SIP/")


class FuzzMixin:
    """Shared checks."""

    def check_message(self, msg):
        """A parsed message: views readable, validate() only raises
        SIPParseError, serialisation parses back to the same message."""
        self.assertIsInstance(msg, Message)
        msg.vias, msg.top_via, msg.cseq, msg.call_id, msg.from_, msg.to
        msg.max_forwards, msg.content_length
        try:
            msg.validate()
        except SIPParseError as e:
            self.assertEqual(e.status, 400)
        msg.top_via.rport, msg.top_via.ttl, msg.from_tag, msg.to_tag
        again = parse_message(msg.to_bytes())
        strip = lambda hs: [h for h in hs if h[0] != "Content-Length"]
        self.assertEqual(strip(again.headers), strip(msg.headers))
        self.assertEqual(again.body, msg.body)
        if isinstance(msg, Request):
            self.assertEqual((again.method, str(again.uri)), (msg.method, str(msg.uri)))
            resp = msg.response(400, to_tag="x")
            parse_message(resp.to_bytes())

    def check_error(self, error, data):
        """A parse error: a known status; a request's error carries a partial
        Request that can be answered."""
        self.assertIn(error.status, (400, 413, 505))
        self.assertIsInstance(error.reason, str)
        if error.partial is not None:
            self.assertIsInstance(error.partial, Request)
            error.partial.response(error.status, to_tag="x").to_bytes()

    def datagram(self, data):
        try:
            msg = parse_message(data)
        except SIPParseError as e:
            self.check_error(e, data)
            if _is_request_start(data) and e.status != 413:
                self.assertIsInstance(e.partial, Request, data)
            return None
        self.check_message(msg)
        return msg

    def stream(self, data, cuts):
        """Feed in pieces cut at C{cuts}: items are messages or
        SIPParseErrors; a raised error is a SIPParseError."""
        p = StreamParser()
        points = sorted(set(c % (len(data) + 1) for c in cuts)) + [len(data)]
        prev = 0
        for cut in points:
            try:
                items = p.feed(data[prev:cut])
            except SIPParseError as e:
                self.check_error(e, data)
                items = []
            for item in items:
                if isinstance(item, SIPParseError):
                    self.check_error(item, data)
                else:
                    self.check_message(item)
            prev = cut


class RandomBytesTests(FuzzMixin, SynchronousTestCase):
    """Arbitrary bytes."""

    @SETTINGS
    @given(st.binary(max_size=400))
    def test_datagram(self, data):
        """parse_message of arbitrary bytes raises only SIPParseError."""
        self.datagram(data)

    @SETTINGS
    @given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=4))
    def test_stream(self, data, cuts):
        """StreamParser.feed of arbitrary bytes raises only SIPParseError."""
        self.stream(data, cuts)

    @SETTINGS
    @given(st.lists(st.sampled_from(INTERESTING), max_size=40).map(b"".join))
    def test_interesting_soup(self, data):
        """Runs of SIP-significant bytes raise only SIPParseError."""
        self.datagram(data)
        self.stream(data, [len(data) // 2])


class MutationTests(FuzzMixin, SynchronousTestCase):
    """Valid messages, mutated."""

    def test_corpus_valid(self):
        """The unmutated corpus parses (so mutations start from valid)."""
        for data in CORPUS:
            self.assertIsNotNone(self.datagram(data))

    @SETTINGS
    @given(mutated())
    def test_datagram(self, data):
        """parse_message (and validate) of a mutated message raises only
        SIPParseError; a request's error carries a partial."""
        self.datagram(data)

    @SETTINGS
    @given(mutated(), st.lists(st.integers(0, 2000), max_size=3))
    def test_stream(self, data, cuts):
        """StreamParser.feed of mutated messages, in pieces, raises only
        SIPParseError."""
        self.stream(data + CORPUS[0], cuts)

    @SETTINGS
    @given(mutated())
    def test_truncations(self, data):
        """Every truncation of a mutated message is handled."""
        for end in range(0, len(data), max(1, len(data) // 25)):
            self.datagram(data[:end])

    @SETTINGS
    @given(assembled())
    def test_assembled(self, data):
        """Messages assembled from SIP-ish pieces raise only SIPParseError,
        on datagrams and streams."""
        self.datagram(data)
        self.stream(data, [len(data) // 3])


def _outcome(data):
    """What parsing C{data} gives, as comparable values: the message's views,
    or the error's class, status and partial request's headers."""
    try:
        m = parse_message(data)
    except SIPParseError as e:
        return ("error", type(e), e.status, e.partial and e.partial.headers)
    views = [type(m), getattr(m, "method", None), getattr(m, "status", None),
             str(getattr(m, "uri", "")), m.headers, m.body]
    try:
        views += [m.cseq, m.call_id, m.from_tag, m.to_tag, str(m.from_), str(m.to),
                  m.from_.params, m.to.params, [str(v) for v in m.vias], m.max_forwards,
                  [(v.transport, v.host, v.port, v.sent_by, list(v.params.items()))
                   for v in m.vias]]
    except SIPParseError as e:
        views.append(("view error", e.status))
    try:
        views.append([(c.display, str(c.uri), c.params, str(c)) for c in m.contacts])
    except SIPParseError as e:
        views.append(("contact error", e.status))
    return views


class ParserCacheTests(SynchronousTestCase):
    """The parser's caches of repeated texts (header lines, From/To, CSeq,
    request line, Via sent-by, Contact) never change what a message parses
    to."""

    CACHES = ((parser, "_line_cache"), (parser, "_name_addr_cache"),
              (parser, "_name_addr_head_cache"), (parser, "_cseq_cache"),
              (parser, "_request_line_cache"), (hmod, "_via_cache"),
              (hmod, "_name_addrs"))

    @SETTINGS
    @given(st.lists(st.one_of(mutated(), assembled()), min_size=2, max_size=6))
    def test_warm_same_as_cold(self, messages):
        """Each message parsed with empty caches, then again after all of
        them went through the caches (twice), gives the same outcome."""
        for module, name in self.CACHES:
            self.patch(module, name, {})
        cold = []
        for data in messages:
            for module, name in self.CACHES:
                getattr(module, name).clear()
            cold.append(_outcome(data))
        for data in messages:
            _outcome(data)
        self.assertEqual([_outcome(data) for data in messages], cold)


#: From and To values: the heads UAs write, near misses, and the tags and
#: parameters that follow (a ">" or ";tag=" inside a value, upper-case names).
_NAME_ADDRS = st.builds(
    lambda head, params: head + params,
    st.sampled_from([
        "<sip:alice@example.com>", '"Alice" <sip:alice@example.com>',
        "Bob <sip:bob@192.0.2.1:5060;transport=udp>", "<sip:a;tag=x@b>",
        '"a>b" <sip:x@y>', "<sip:a@b", "sip:alice@example.com", "<tel:+1-555>",
        "<sip:a@b> ", '"q\\"" <sips:h.example>', "<sip:a@[2001:db8::1]:5060;lr>"]),
    st.lists(st.sampled_from([
        ";tag=f1", ";tag=as7d9f8g", ";tag=a-b.c", ";TAG=Up", ";tag=", ";tag=x>y",
        ";x=1", ";x=y>", ";tag=é", " ;tag=1", ";tag=1 ", ";tag=a;b", ";lr", ";tag=\"q\""]),
        max_size=2).map("".join))


class NameAddrPartsTests(SynchronousTestCase):
    """The parser's From/To fast path (a known head, then the tag read on its
    own) gives what the general code gives."""

    @SETTINGS
    @given(_NAME_ADDRS, _NAME_ADDRS)
    def test_same_as_general(self, from_, to):
        """Parsed cold, then with the heads and values cached: the same From
        and To, tags included, as NameAddr.parse without any fast path, or
        the same rejection."""
        data = ("OPTIONS sip:bob@example.com SIP/2.0\r\n"
                "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n"
                "From: " + from_ + "\r\nTo: " + to + "\r\n"
                "Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()

        def parsed():
            out = []
            for value, name in ((from_, "From"), (to, "To")):
                try:
                    m = parse_message(data)
                except SIPParseError as e:
                    return [("message error", e.status)]
                na, tag = (m.from_, m.from_tag) if name == "From" else (m.to, m.to_tag)
                # the tag read alone (before the object is built) agrees too
                m2 = parse_message(data)
                tag2 = m2.from_tag if name == "From" else m2.to_tag
                out.append((na.display, str(na.uri), na.uri.params, na.params, str(na),
                            tag, tag2))
            return out

        for name in ("_name_addr_cache", "_name_addr_head_cache"):
            self.patch(parser, name, {})
        cold = parsed()
        warm = parsed()
        never = hmod.re.compile(r"(?!)")
        for name in ("_NAME_ADDR_SIP_RE", "_NAME_ADDR_FAST_RE", "_SIP_URI_RE"):
            self.patch(hmod, name, never)
        general = []
        for value in (from_, to):
            try:
                na = hmod.NameAddr.parse(value)
            except SIPParseError:
                general = [("message error", 400)]
                break
            tag = na.params.get("tag")
            general.append((na.display, str(na.uri), na.uri.params, na.params, str(na),
                            tag, tag))
        self.assertEqual(cold, general, (from_, to))
        self.assertEqual(warm, general, (from_, to))
