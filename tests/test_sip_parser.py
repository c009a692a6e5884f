"""
Tests for L{rvoip_twisted.sip.parser}: datagrams (L{parse_message}) and
stream framing (L{StreamParser}).
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.sip.errors import (
    MessageTooLarge, MissingContentLength, SIPParseError, VersionNotSupported,
)
from rvoip_twisted.sip.message import Request, Response
from rvoip_twisted.sip import headers as hmod, parser
from rvoip_twisted.sip.parser import MAX_MESSAGE_SIZE, StreamParser, parse_message

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def request(method=b"OPTIONS", body=b"", extra=b"", length=True, uri=b"sip:bob@example.com"):
    head = (
        method + b" " + uri + b" SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-" + method + b"\r\n"
        b"From: <sip:alice@example.com>;tag=f1\r\n"
        b"To: <sip:bob@example.com>\r\n"
        b"Call-ID: call-" + method + b"@192.0.2.1\r\n"
        b"CSeq: 1 " + method + b"\r\n"
        b"Max-Forwards: 70\r\n" + extra)
    if length:
        head += b"Content-Length: %d\r\n" % len(body)
    return head + b"\r\n" + body


def response(status=b"200 OK", body=b"", extra=b""):
    return (
        b"SIP/2.0 " + status + b"\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-r\r\n"
        b"From: <sip:alice@example.com>;tag=f1\r\n"
        b"To: <sip:bob@example.com>;tag=t1\r\n"
        b"Call-ID: call-r@192.0.2.1\r\n"
        b"CSeq: 1 INVITE\r\n" + extra +
        b"Content-Length: %d\r\n\r\n" % len(body) + body)


SDP = (b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.1\r\ns=-\r\n"
       b"c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\n"
       b"a=rtpmap:0 PCMU/8000\r\n")


class DatagramTests(SynchronousTestCase):
    """parse_message() on one datagram."""

    def test_request(self):
        """A request parses to a Request with its method, URI and body."""
        m = parse_message(request(b"INVITE", SDP, b"Content-Type: application/sdp\r\n"))
        self.assertIsInstance(m, Request)
        self.assertEqual(m.method, "INVITE")
        self.assertEqual(m.uri.user, "bob")
        self.assertEqual(m.body, SDP)
        self.assertEqual(m.content_length, len(SDP))

    def test_response(self):
        """A response parses to a Response with status and reason."""
        m = parse_message(response(b"486 Busy Here"))
        self.assertIsInstance(m, Response)
        self.assertEqual(m.status, 486)
        self.assertEqual(m.reason, "Busy Here")
        self.assertEqual(m.body, b"")

    def test_sipp_invite(self):
        """The SIPp INVITE fixture parses with its SDP."""
        with open(os.path.join(FIXTURES, "sip", "sipp_invite.sip"), "rb") as f:
            m = parse_message(f.read())
        self.assertEqual(m.method, "INVITE")
        self.assertEqual(m.from_.display_name, "sipp")
        self.assertEqual(m.from_tag, "12345SIPpTag001")
        self.assertEqual(m.to.display, "service")
        self.assertEqual(m.top_via.port, 5061)
        self.assertEqual(m.contact.uri.host, "127.0.1.1")
        self.assertTrue(m.body.startswith(b"v=0\r\n"))
        self.assertEqual(len(m.body), m.content_length)

    def test_no_content_length(self):
        """Without Content-Length on a datagram the body is the rest."""
        m = parse_message(request(body=b"hello\r\nworld", length=False))
        self.assertEqual(m.body, b"hello\r\nworld")
        self.assertIsNone(m.content_length)

    def test_extra_bytes_dropped(self):
        """Bytes beyond Content-Length are dropped."""
        m = parse_message(request(body=b"abc") + b"garbage\r\n\r\nINVITE x")
        self.assertEqual(m.body, b"abc")

    def test_content_length_too_large(self):
        """A Content-Length larger than the datagram is a 400 with partial."""
        data = request(body=b"abc").replace(b"Content-Length: 3", b"Content-Length: 9999")
        e = self.assertRaises(SIPParseError, parse_message, data)
        self.assertEqual(e.status, 400)
        self.assertIsInstance(e.partial, Request)
        self.assertEqual(e.partial.call_id, "call-OPTIONS@192.0.2.1")

    def test_huge_content_length(self):
        """A Content-Length of thousands of digits is a 400, not a crash."""
        data = request().replace(b"Content-Length: 0", b"Content-Length: " + b"9" * 5000)
        e = self.assertRaises(SIPParseError, parse_message, data)
        self.assertEqual(e.status, 400)

    def test_leading_crlf(self):
        """CRLFs before the start line are ignored."""
        m = parse_message(b"\r\n\r\n\n" + request())
        self.assertEqual(m.method, "OPTIONS")

    def test_lf_only(self):
        """LF-only line ends are accepted, body too."""
        data = request(body=b"x\ny").replace(b"\r\n", b"\n")
        m = parse_message(data)
        self.assertEqual(m.method, "OPTIONS")
        self.assertEqual(m.call_id, "call-OPTIONS@192.0.2.1")
        self.assertEqual(m.body, b"x\ny")

    def test_lf_head_crlf_blank(self):
        """LF header lines ended by a CRLF blank line."""
        head, _, body = request(body=b"ab").partition(b"\r\n\r\n")
        m = parse_message(head.replace(b"\r\n", b"\n") + b"\n\r\n" + body)
        self.assertEqual(m.body, b"ab")
        self.assertEqual(m.max_forwards, 70)

    def test_lf_blank_line_first(self):
        """An LF blank line before a later CRLF CRLF ends the head."""
        data = request(length=False).replace(b"\r\n\r\n", b"\n\n") + b"body\r\n\r\nmore"
        m = parse_message(data)
        self.assertEqual(m.body, b"body\r\n\r\nmore")

    def test_no_blank_line(self):
        """A datagram whose final blank line is missing still parses."""
        m = parse_message(request()[:-2])
        self.assertEqual(m.body, b"")

    def test_bare_cr(self):
        """A bare CR in the head is a 400."""
        data = request().replace(b"Max-Forwards: 70", b"Max-Forwards: 70\rX: y")
        e = self.assertRaises(SIPParseError, parse_message, data)
        self.assertIsInstance(e.partial, Request)

    def test_empty(self):
        """Empty and CRLF-only datagrams are 400s."""
        for data in (b"", b"\r\n", b"\r\n\r\n\r\n"):
            self.assertRaises(SIPParseError, parse_message, data)

    def test_too_large(self):
        """A datagram over max_size is a 413."""
        e = self.assertRaises(MessageTooLarge, parse_message,
                              request(body=b"x" * MAX_MESSAGE_SIZE))
        self.assertEqual(e.status, 413)
        e = self.assertRaises(SIPParseError, parse_message, request(body=b"x" * 200),
                              max_size=100)
        self.assertEqual(e.status, 413)

    def test_bytes_like(self):
        """bytearray and memoryview input works; the body is bytes."""
        for data in (bytearray(request(body=b"ab")), memoryview(request(body=b"ab"))):
            m = parse_message(data)
            self.assertEqual(m.body, b"ab")
            self.assertIs(type(m.body), bytes)


class HeaderParsingTests(SynchronousTestCase):
    """Header lines: names, compact forms, folding, lists, duplicates."""

    def test_compact_forms_normalised(self):
        """Compact names become canonical names in the headers list."""
        data = (b"INVITE sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                b"f: <sip:x@y>;tag=1\r\nt: <sip:a@b>\r\ni: abc\r\nCSeq: 1 INVITE\r\n"
                b"m: <sip:x@h>\r\nc: application/sdp\r\nk: 100rel\r\ns: subj\r\n"
                b"o: presence\r\nu: talk\r\nr: <sip:c@d>\r\nb: <sip:e@f>\r\n"
                b"x: 1800\r\ne: gzip\r\nl: 3\r\n\r\nabc")
        m = parse_message(data)
        self.assertEqual([n for n, _ in m.headers], [
            "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Type",
            "Supported", "Subject", "Event", "Allow-Events", "Refer-To",
            "Referred-By", "Session-Expires", "Content-Encoding", "Content-Length"])
        self.assertEqual(m.body, b"abc")
        self.assertEqual(m.get("Session-Expires"), "1800")

    def test_name_case_and_spaces(self):
        """Names in any case and with space before the colon."""
        data = request().replace(b"Max-Forwards: 70", b"mAx-FoRwArDs  : 0068")
        m = parse_message(data)
        self.assertEqual(m.max_forwards, 68)
        self.assertIn(("Max-Forwards", "0068"), m.headers)

    def test_unknown_name_kept(self):
        """Unknown names keep their spelling; values are stripped."""
        m = parse_message(request(extra=b"X-Weird.Name!:   v a l  \r\n"))
        self.assertIn(("X-Weird.Name!", "v a l"), m.headers)

    def test_empty_value(self):
        """An empty header value is allowed."""
        m = parse_message(request(extra=b"Subject:\r\n"))
        self.assertEqual(m.get("Subject"), "")

    def test_folding(self):
        """Continuation lines (spaces or tabs) are unfolded with one space."""
        data = request(extra=b"Subject: I know you're there,\r\n   pick up the phone\r\n"
                             b"\t and talk to me!\r\n")
        m = parse_message(data)
        self.assertEqual(m.get("Subject"),
                         "I know you're there, pick up the phone and talk to me!")

    def test_folded_structured(self):
        """Folding inside structured headers (RFC 4475 wsinv style)."""
        data = request().replace(b"CSeq: 1 OPTIONS", b"cseq: 0009\r\n\t OPTIONS").replace(
            b"Via: SIP/2.0/UDP", b"Via: SIP  /   2.0\r\n /UDP\r\n   ")
        m = parse_message(data)
        self.assertEqual(m.cseq, (9, "OPTIONS"))
        self.assertEqual(m.top_via.transport, "UDP")
        self.assertEqual(m.top_via.port, 5060)

    def test_cached_line_then_folded(self):
        """A line the header-line cache holds, followed in a later message by
        a continuation line, is unfolded all the same."""
        parse_message(request(extra=b"Subject: I know you're there,\r\n"))
        m = parse_message(request(extra=b"Subject: I know you're there,\r\n pick up\r\n"))
        self.assertEqual(m.get("Subject"), "I know you're there, pick up")
        self.assertEqual(parse_message(request(extra=b"Subject: I know you're there,\r\n"))
                         .get("Subject"), "I know you're there,")

    def test_line_cache_bounded(self):
        """The header-line cache empties itself when full and keeps no long
        lines; what a message parses to does not depend on it."""
        self.patch(hmod, "_CACHE_SIZE", 16)
        self.patch(parser, "_line_cache", {})
        long_value = b"x" * (hmod._CACHE_WIDTH + 1)
        sizes = []
        for i in range(50):
            m = parse_message(request(extra=b"X-Unique: %d\r\nX-Long: %s\r\n" % (i, long_value)))
            self.assertEqual(m.get("X-Unique"), str(i))
            self.assertEqual(m.get("X-Long"), long_value.decode())
            sizes.append(len(parser._line_cache))
            self.assertNotIn(("X-Long: " + long_value.decode()), parser._line_cache)
        self.assertLessEqual(max(sizes), 16)
        self.assertLess(min(sizes[8:]), max(sizes))     # it was emptied on the way
        again = parse_message(request(extra=b"X-Unique: 49\r\nX-Long: %s\r\n" % long_value))
        self.assertEqual(again.headers, m.headers)

    def test_value_caches_same_result(self):
        """A From, To or CSeq found in the caches gives what parsing it gives,
        and the objects built from it are each message's own."""
        self.patch(parser, "_name_addr_cache", {})
        self.patch(parser, "_cseq_cache", {})
        data = response(extra=b"Contact: <sip:c@192.0.2.9>\r\n")
        first, second = parse_message(data), parse_message(data)
        self.assertIn("<sip:alice@example.com>;tag=f1", parser._name_addr_cache)
        self.assertIn("1 INVITE", parser._cseq_cache)
        for m in (first, second):
            self.assertEqual(m.cseq, (1, "INVITE"))
            self.assertEqual((m.from_tag, m.to_tag), ("f1", "t1"))
            self.assertEqual(str(m.from_.uri), "sip:alice@example.com")
            self.assertEqual(m.to.params, {"tag": "t1"})
        self.assertIsNot(first.from_, second.from_)
        self.assertIsNot(first.to.params, second.to.params)

    def test_request_line_cache(self):
        """Requests with the same request line share its (immutable) URI; one
        the parser rejects is rejected every time."""
        self.patch(parser, "_request_line_cache", {})
        uri = b"sip:bob@192.0.2.7:5070;transport=udp"
        first, second = parse_message(request(uri=uri)), parse_message(request(uri=uri))
        self.assertIs(first.uri, second.uri)
        self.assertEqual((second.uri.host, second.uri.port, second.uri.params),
                         ("192.0.2.7", 5070, {"transport": "udp"}))
        for _ in range(2):
            e = self.assertRaises(SIPParseError, parse_message,
                                  request(uri=b"sip:bob@example.com?Subject=x"))
            self.assertEqual(e.status, 400)
        self.assertEqual(list(parser._request_line_cache),
                         ["OPTIONS " + uri.decode() + " SIP/2.0"])

    def test_continuation_first(self):
        """A continuation line before any header is a 400."""
        data = request().replace(b"SIP/2.0\r\nVia", b"SIP/2.0\r\n Via")
        self.assertRaises(SIPParseError, parse_message, data)

    def test_line_without_colon(self):
        """A header line without a colon is a 400, with a partial request
        holding the readable headers."""
        data = request(extra=b"Foobar roobar\r\n")
        e = self.assertRaises(SIPParseError, parse_message, data)
        self.assertEqual(e.status, 400)
        self.assertIsInstance(e.partial, Request)
        self.assertEqual(e.partial.method, "OPTIONS")
        self.assertEqual(e.partial.uri.user, "bob")
        self.assertEqual(e.partial.call_id, "call-OPTIONS@192.0.2.1")
        resp = e.partial.response(400, to_tag="x")
        self.assertEqual(parse_message(resp.to_bytes()).to_tag, "x")

    def test_bad_header_name(self):
        """A header name that is not a token is a 400."""
        for line in (b"Bad Name: x\r\n", b": x\r\n", b"N\xc3\xa4me: x\r\n"):
            self.assertRaises(SIPParseError, parse_message, request(extra=line))

    def test_list_headers_split(self):
        """Via, Contact, Route, Record-Route split on commas outside quotes
        and angle brackets, across lines."""
        data = request(extra=(
            b'Contact: "Lee, M." <sip:lee@h1;x=a,b>, <sip:lee@h2>\r\n'
            b"Route: <sip:r1;lr>,<sip:r2;lr>\r\nRoute: <sip:r3;lr>\r\n"
            b"Record-Route: <sip:rr1;lr>, <sip:rr2;lr>\r\n")).replace(
            b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-OPTIONS",
            b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1 , SIP/2.0/TCP h2;branch=z9hG4bK-2")
        m = parse_message(data)
        self.assertEqual([v.branch for v in m.vias], ["z9hG4bK-1", "z9hG4bK-2"])
        self.assertEqual([c.uri.host for c in m.contacts], ["h1", "h2"])
        self.assertEqual(m.contacts[0].display_name, "Lee, M.")
        self.assertEqual([str(r.uri) for r in m.routes],
                         ["sip:r1;lr", "sip:r2;lr", "sip:r3;lr"])
        self.assertEqual(len(m.record_routes), 2)

    def test_empty_via_element(self):
        """An empty element in a Via list is a 400."""
        data = request().replace(b"branch=z9hG4bK-OPTIONS", b"branch=z9hG4bK-OPTIONS,")
        self.assertRaises(SIPParseError, parse_message, data)

    def test_duplicate_identical_tolerated(self):
        """An identical repeat of a single header is tolerated."""
        m = parse_message(request(extra=b"Max-Forwards:  70\r\n"))
        self.assertEqual(m.max_forwards, 70)

    def test_duplicate_conflicting(self):
        """Conflicting repeats of single headers are 400s (RFC 4475 multi01,
        mcl01)."""
        for extra in (b"Max-Forwards: 69\r\n", b"CSeq: 2 OPTIONS\r\n",
                      b"Call-ID: other\r\n", b"To: <sip:x@y>\r\n",
                      b"Content-Length: 5\r\n", b"Content-Type: a/b\r\nc: c/d\r\n"):
            e = self.assertRaises(SIPParseError, parse_message, request(extra=extra))
            self.assertIsInstance(e.partial, Request)

    def test_missing_required(self):
        """Missing Via, From, To, Call-ID or CSeq is a 400 with partial."""
        for prefix in (b"Via:", b"From:", b"To:", b"Call-ID:", b"CSeq:"):
            lines = [l for l in request().split(b"\r\n") if not l.startswith(prefix)]
            e = self.assertRaises(SIPParseError, parse_message, b"\r\n".join(lines))
            self.assertEqual(e.status, 400)
            self.assertIsInstance(e.partial, Request)

    def test_bad_max_forwards(self):
        """Max-Forwards must be 0..255."""
        for value in (b"256", b"-1", b"x", b""):
            data = request().replace(b"Max-Forwards: 70", b"Max-Forwards: " + value)
            self.assertRaises(SIPParseError, parse_message, data)
        m = parse_message(request().replace(b"Max-Forwards: 70", b"Max-Forwards: 0"))
        self.assertEqual(m.max_forwards, 0)

    def test_cseq_method_mismatch(self):
        """The CSeq method must be the request's (RFC 4475 mismatch01)."""
        data = request().replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
        e = self.assertRaises(SIPParseError, parse_message, data)
        self.assertEqual(e.partial.method, "OPTIONS")

    def test_empty_call_id(self):
        """An empty Call-ID is a 400."""
        data = request().replace(b"Call-ID: call-OPTIONS@192.0.2.1", b"Call-ID: ")
        self.assertRaises(SIPParseError, parse_message, data)


class StartLineTests(SynchronousTestCase):
    """Request and status lines."""

    def test_unknown_method(self):
        """Any token is a method."""
        m = parse_message(request(b"NEWMETHOD"))
        self.assertEqual(m.method, "NEWMETHOD")

    def test_bad_version_request(self):
        """Another SIP version is a 505 with a partial request."""
        data = request().replace(b"SIP/2.0\r\nVia", b"SIP/7.0\r\nVia")
        e = self.assertRaises(VersionNotSupported, parse_message, data)
        self.assertEqual(e.status, 505)
        self.assertEqual(e.partial.method, "OPTIONS")
        self.assertEqual(e.partial.top_via.branch, "z9hG4bK-OPTIONS")

    def test_version_case(self):
        """The version is case-insensitive."""
        m = parse_message(request().replace(b"SIP/2.0\r\nVia", b"sip/2.0\r\nVia"))
        self.assertEqual(m.method, "OPTIONS")

    def test_bad_request_lines(self):
        """Extra spaces, missing parts, bad method or URI are 400s with a
        partial request."""
        for line in (b"OPTIONS  sip:bob@example.com SIP/2.0",
                     b"OPTIONS sip:bob@example.com SIP/2.0 ",
                     b"OPTIONS sip:bob@example.com",
                     b"OPT:IONS sip:bob@example.com SIP/2.0",
                     b"OPTIONS <sip:bob@example.com> SIP/2.0",
                     b"OPTIONS sip:bob@example.com?Subject=x SIP/2.0",
                     b"OPTIONS sip:bob@example.com; lr SIP/2.0"):
            data = request().replace(b"OPTIONS sip:bob@example.com SIP/2.0", line, 1)
            e = self.assertRaises(SIPParseError, parse_message, data)
            self.assertEqual(e.status, 400, line)
            self.assertIsInstance(e.partial, Request, line)
            self.assertEqual(e.partial.call_id, "call-OPTIONS@192.0.2.1")

    def test_partial_method(self):
        """The partial request's method is the first word when it is a token."""
        data = request().replace(b"OPTIONS sip:bob@example.com SIP/2.0",
                                 b"ACK  sip:bob@example.com SIP/2.0", 1)
        e = self.assertRaises(SIPParseError, parse_message, data)
        self.assertEqual(e.partial.method, "ACK")

    def test_status_codes(self):
        """Status codes are three digits, 100 to 699."""
        for code in (b"100 Trying", b"699 Whatever", b"183 Session Progress"):
            self.assertEqual(parse_message(response(code)).status, int(code[:3]))
        for code in (b"099 x", b"700 x", b"1000 x", b"20 x", b"2x0 x",
                     b"4294967301 better not break the receiver"):
            e = self.assertRaises(SIPParseError, parse_message, response(code))
            self.assertIsNone(e.partial)

    def test_reason_phrase(self):
        """A reason may hold spaces and UTF-8, or be empty."""
        m = parse_message(response("200 = 2**3 \u043d\u043e".encode("utf-8")))
        self.assertEqual(m.reason, "= 2**3 \u043d\u043e")
        self.assertEqual(parse_message(response(b"100 ")).reason, "")
        self.assertEqual(parse_message(response(b"100")).reason, "")

    def test_bad_version_response(self):
        """A response with another version is a 505 without partial."""
        e = self.assertRaises(SIPParseError, parse_message,
                              response().replace(b"SIP/2.0 200", b"SIP/3.0 200"))
        self.assertEqual(e.status, 505)
        self.assertIsNone(e.partial)


class StreamTests(SynchronousTestCase):
    """StreamParser framing."""

    def messages(self):
        return [
            request(b"INVITE", SDP, b"Content-Type: application/sdp\r\n"),
            response(b"200 OK", b"\r\n\r\nINVITE sip:not@a.message SIP/2.0\r\n\r\n"),
            request(b"MESSAGE", b"Hello\r\n\r\nworld", b"Content-Type: text/plain\r\n"),
        ]

    def check(self, items, expected):
        self.assertEqual(len(items), len(expected))
        for item, data in zip(items, expected):
            want = parse_message(data)
            self.assertEqual(type(item), type(want))
            self.assertEqual(item.headers, want.headers)
            self.assertEqual(item.body, want.body)
            self.assertEqual(item.to_bytes(), want.to_bytes())

    def test_one_read(self):
        """Several messages in one read all come out, in order."""
        msgs = self.messages()
        self.check(StreamParser().feed(b"".join(msgs)), msgs)

    def test_every_split(self):
        """Split in two at every byte boundary, the stream yields exactly the
        three messages."""
        msgs = self.messages()
        stream = b"".join(msgs)
        for i in range(len(stream) + 1):
            p = StreamParser()
            items = p.feed(stream[:i]) + p.feed(stream[i:])
            self.check(items, msgs)
            self.assertEqual(p._buffer, b"")

    def test_byte_by_byte(self):
        """Fed one byte at a time, the stream yields the three messages, each
        as soon as its last byte arrives."""
        msgs = self.messages()
        stream = b"".join(msgs)
        p = StreamParser()
        items = []
        ends = set()
        total = 0
        for m in msgs:
            total += len(m)
            ends.add(total)
        for i in range(len(stream)):
            out = p.feed(stream[i:i + 1])
            if out:
                self.assertIn(i + 1, ends)
            items.extend(out)
        self.check(items, msgs)

    def test_keepalives(self):
        """CRLF keep-alives before, between and after messages are skipped."""
        msgs = self.messages()
        stream = (b"\r\n\r\n" + msgs[0] + b"\r\n" + msgs[1] + b"\r\n\r\n\r\n"
                  + msgs[2] + b"\r\n\r\n")
        p = StreamParser()
        self.check(p.feed(stream), msgs)
        self.assertEqual(p.feed(b"\r\n\r\n"), [])
        for i in range(len(stream) + 1):
            p = StreamParser()
            self.check(p.feed(stream[:i]) + p.feed(stream[i:]), msgs)

    def test_lf_only(self):
        """LF line ends on a stream."""
        data = request(body=b"ab").replace(b"\r\n", b"\n")
        items = StreamParser().feed(data + data)
        self.assertEqual([m.body for m in items], [b"ab", b"ab"])

    def test_missing_content_length(self):
        """A message without Content-Length on a stream raises a typed 400
        with a partial request; the buffer is dropped and the stream closed."""
        p = StreamParser()
        e = self.assertRaises(MissingContentLength, p.feed, request(length=False))
        self.assertEqual(e.status, 400)
        self.assertIsInstance(e, SIPParseError)
        self.assertEqual(e.partial.method, "OPTIONS")
        self.assertEqual(p._buffer, b"")
        self.assertIs(p.error, e)
        later = self.assertRaises(SIPParseError, p.feed, request())
        self.assertIsNone(later.partial)

    def test_oversize_declared(self):
        """A Content-Length taking the message over max_size is a 413."""
        p = StreamParser(max_size=1000)
        data = request(body=b"x" * 2000)
        e = self.assertRaises(MessageTooLarge, p.feed, data[:400])
        self.assertEqual(e.status, 413)
        self.assertIsInstance(e.partial, Request)

    def test_oversize_head(self):
        """A head that never ends is a 413 once it passes max_size."""
        p = StreamParser(max_size=1000)
        self.assertEqual(p.feed(b"INVITE sip:a@b SIP/2.0\r\n"), [])
        e = self.assertRaises(MessageTooLarge, p.feed, b"X: " + b"y" * 1000)
        self.assertEqual(e.status, 413)

    def test_malformed_framed(self):
        """A well-framed but malformed message comes out as an error item
        with its partial; the next message still parses."""
        bad = request(body=b"abc").replace(b"CSeq: 1 OPTIONS", b"CSeq: x OPTIONS")
        good = request(b"INFO", b"123")
        items = StreamParser().feed(bad + good)
        self.assertEqual(len(items), 2)
        self.assertIsInstance(items[0], SIPParseError)
        self.assertEqual(items[0].partial.method, "OPTIONS")
        self.assertEqual(items[1].method, "INFO")
        self.assertEqual(items[1].body, b"123")

    def test_broken_head_framed(self):
        """A message whose request line is broken but whose Content-Length
        is readable is skipped as an error item, not fatal."""
        bad = request(body=b"abc").replace(b"SIP/2.0\r\nVia", b"SIP/7.0\r\nVia")
        good = request(b"INFO")
        p = StreamParser()
        items = p.feed(bad + good)
        self.assertEqual(len(items), 2)
        self.assertIsInstance(items[0], VersionNotSupported)
        self.assertEqual(items[0].partial.method, "OPTIONS")
        self.assertEqual(items[1].method, "INFO")

    def test_fatal_after_good(self):
        """A framing error after complete messages in one read: the good
        messages come out, then the error as the last item; the stream is
        closed."""
        good = request(b"INFO")
        p = StreamParser()
        items = p.feed(good + request(length=False) + b"body")
        self.assertEqual(len(items), 2)
        self.assertEqual(items[0].method, "INFO")
        self.assertIsInstance(items[1], MissingContentLength)
        self.assertEqual(items[1].partial.method, "OPTIONS")
        self.assertIs(p.error, items[1])
        e = self.assertRaises(SIPParseError, p.feed, b"")
        self.assertIsNone(e.partial)

    def test_conflicting_content_length_fatal(self):
        """Two different Content-Lengths on a stream cannot be framed: fatal."""
        p = StreamParser()
        e = self.assertRaises(SIPParseError, p.feed,
                              request(body=b"abc", extra=b"l: 4\r\n") + request())
        self.assertEqual(e.status, 400)
        self.assertEqual(p._buffer, b"")

    def test_fatal_unframeable_head(self):
        """A broken head without Content-Length is fatal."""
        p = StreamParser()
        self.assertRaises(SIPParseError, p.feed, b"garbage\r\n\r\n")
        self.assertEqual(p._buffer, b"")

    def test_partial_body_then_rest(self):
        """A body arriving over several reads is waited for."""
        data = request(body=b"0123456789")
        p = StreamParser()
        self.assertEqual(p.feed(data[:-5]), [])
        self.assertEqual(p.feed(data[-5:-1]), [])
        items = p.feed(data[-1:] + b"\r\n")
        self.assertEqual(items[0].body, b"0123456789")

    def test_bytes_like(self):
        """feed() takes bytearray and memoryview."""
        p = StreamParser()
        items = p.feed(bytearray(request()[:30])) + p.feed(memoryview(request()[30:]))
        self.assertEqual(items[0].method, "OPTIONS")
