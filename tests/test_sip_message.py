"""
Tests for L{rvoip_twisted.sip.message}: header access, structured views,
serialisation, responses.
"""

import copy
import os
import pickle

from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.sip.errors import SIPParseError
from rvoip_twisted.sip.headers import CSeq, NameAddr, Via
from rvoip_twisted.sip.message import REASONS, Request, Response
from rvoip_twisted.sip.parser import parse_message
from rvoip_twisted.sip.uri import URI

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"Via: SIP/2.0/TCP p1.example.com;branch=z9hG4bK1, SIP/2.0/UDP p2.example.com;branch=z9hG4bK2\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com;transport=UDP>;expires=60, \"X, Y\" <sip:x@y>\r\n"
    b"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b"Record-Route: <sip:rr.example.com;lr>\r\n"
    b"Expires: 7200\r\n"
    b"Timestamp: 54\r\n"
    b"X-Custom: One\r\n"
    b"x-custom: Two\r\n"
    b"Content-Type: application/sdp;charset=utf-8\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def sipp_invite():
    with open(os.path.join(FIXTURES, "sip", "sipp_invite.sip"), "rb") as f:
        return f.read()


class AccessTests(SynchronousTestCase):
    """Raw header access."""

    def setUp(self):
        self.msg = parse_message(INVITE)

    def test_get_case_insensitive(self):
        """get() finds a header by any case of its name or its compact form."""
        for name in ("Call-ID", "call-id", "CALL-ID", "i", "I"):
            self.assertEqual(self.msg.get(name), "a84b4c76e66710@pc33.atlanta.example.com")
        self.assertEqual(self.msg.get("x-CUSTOM"), "One")

    def test_get_default(self):
        """get() of an absent header gives the default."""
        self.assertIsNone(self.msg.get("Subject"))
        self.assertEqual(self.msg.get("Subject", "none"), "none")

    def test_get_list_header_first_element(self):
        """get() of a list header gives its first element."""
        self.assertEqual(self.msg.get("v"),
                         "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds")
        self.assertEqual(self.msg.get("Route"), "<sip:p1.example.com;lr>")

    def test_get_all_splits_lists(self):
        """get_all() splits list headers on commas outside quotes and <>,
        across header lines, in order."""
        self.assertEqual(len(self.msg.get_all("Via")), 3)
        self.assertEqual(self.msg.get_all("m"), [
            "<sip:alice@pc33.atlanta.example.com;transport=UDP>;expires=60",
            '"X, Y" <sip:x@y>'])
        self.assertEqual(self.msg.get_all("Route"),
                         ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"])

    def test_get_all_unknown_not_split(self):
        """Unknown headers are not split; all instances in order, any case."""
        self.assertEqual(self.msg.get_all("X-Custom"), ["One", "Two"])
        self.assertEqual(self.msg.get_all("Subject"), [])

    def test_has(self):
        """has() is case-insensitive and knows compact forms."""
        self.assertTrue(self.msg.has("f"))
        self.assertTrue(self.msg.has("record-route"))
        self.assertFalse(self.msg.has("Subject"))

    def test_order_kept(self):
        """Headers keep the order they came in, with canonical names."""
        names = [n for n, _ in self.msg.headers]
        self.assertEqual(names[:8], ["Via", "Via", "Max-Forwards", "To", "From",
                                     "Call-ID", "CSeq", "Contact"])
        self.assertEqual(names[-4:], ["X-Custom", "x-custom", "Content-Type",
                                      "Content-Length"])

    def test_set(self):
        """set() replaces all instances at the first one's place."""
        self.msg.set("x-custom", "Three")
        self.assertEqual(self.msg.get_all("X-Custom"), ["Three"])
        names = [n.lower() for n, _ in self.msg.headers]
        self.assertEqual(names.index("x-custom"), 12)
        self.assertEqual(names.count("x-custom"), 1)

    def test_set_new(self):
        """set() of an absent header appends it, canonically named."""
        self.msg.set("s", "Hello")
        self.assertEqual(self.msg.headers[-1], ("Subject", "Hello"))

    def test_add(self):
        """add() appends with the canonical name."""
        self.msg.add("v", "SIP/2.0/UDP last.example.com")
        self.assertEqual(self.msg.headers[-1], ("Via", "SIP/2.0/UDP last.example.com"))
        self.assertEqual(self.msg.vias[-1].host, "last.example.com")

    def test_insert(self):
        """insert() puts a value before the first of its name."""
        self.msg.insert("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKnew")
        self.assertEqual(self.msg.headers[0][0], "Via")
        self.assertEqual(self.msg.top_via.host, "proxy.example.com")
        self.assertEqual(len(self.msg.vias), 4)

    def test_insert_absent(self):
        """insert() of an absent header puts it first."""
        self.msg.insert("Subject", "hi")
        self.assertEqual(self.msg.headers[0], ("Subject", "hi"))

    def test_replace_top_via(self):
        """replace_top_via changes only the first Via value, also when it
        shares its header line, and refreshes the views."""
        m = parse_message(INVITE.replace(
            b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n", b""))
        self.assertEqual(len(m.vias), 2)
        top = m.top_via
        m.replace_top_via(top.replace(params=dict(top.params, received="192.0.2.9")))
        self.assertEqual(m.top_via.received, "192.0.2.9")
        self.assertEqual(len(m.get_all("Via")), 2)
        self.assertEqual(parse_message(m.to_bytes()).top_via.received, "192.0.2.9")
        self.assertEqual(parse_message(m.to_bytes()).vias[1].host, "p2.example.com")

    def test_remove(self):
        """remove() drops every instance, any case."""
        self.msg.remove("ROUTE")
        self.assertFalse(self.msg.has("Route"))
        self.assertEqual(self.msg.routes, [])


class ViewTests(SynchronousTestCase):
    """The cached structured views."""

    def setUp(self):
        self.msg = parse_message(INVITE)

    def test_views(self):
        """Each view parses its header."""
        m = self.msg
        self.assertEqual(m.call_id, "a84b4c76e66710@pc33.atlanta.example.com")
        self.assertEqual(m.cseq, CSeq(314159, "INVITE"))
        self.assertIsInstance(m.from_, NameAddr)
        self.assertEqual(m.from_.display_name, "Alice")
        self.assertEqual(m.from_tag, "1928301774")
        self.assertEqual(m.to.uri.user, "bob")
        self.assertIsNone(m.to_tag)
        self.assertEqual(m.max_forwards, 70)
        self.assertEqual(m.content_length, 4)
        self.assertEqual(m.content_type, "application/sdp")
        self.assertEqual(m.expires, 7200)

    def test_vias(self):
        """vias lists every Via value in order; top_via is the first."""
        vias = self.msg.vias
        self.assertEqual([v.host for v in vias],
                         ["pc33.atlanta.example.com", "p1.example.com", "p2.example.com"])
        self.assertEqual([v.branch for v in vias],
                         ["z9hG4bK776asdhds", "z9hG4bK1", "z9hG4bK2"])
        self.assertIs(self.msg.top_via, vias[0])
        self.assertIsInstance(vias[0], Via)

    def test_contacts(self):
        """contacts parses the Contact list; contact is the first."""
        contacts = self.msg.contacts
        self.assertEqual(len(contacts), 2)
        self.assertEqual(contacts[0].uri.transport, "udp")
        self.assertEqual(contacts[0].params["expires"], "60")
        self.assertEqual(contacts[1].display_name, "X, Y")
        self.assertIs(self.msg.contact, contacts[0])

    def test_routes(self):
        """routes and record_routes."""
        self.assertEqual([str(r.uri) for r in self.msg.routes],
                         ["sip:p1.example.com;lr", "sip:p2.example.com;lr"])
        self.assertEqual(self.msg.record_routes[0].uri.host, "rr.example.com")

    def test_cached(self):
        """Views are cached: the same object on every access."""
        for name in ("from_", "to", "vias", "contacts", "routes", "cseq"):
            self.assertIs(getattr(self.msg, name), getattr(self.msg, name), name)

    def test_cache_dropped_on_change(self):
        """Changing a header through the API refreshes the views."""
        m = self.msg
        self.assertIsNone(m.to_tag)
        m.set("To", "Bob <sip:bob@biloxi.example.com>;tag=xyz")
        self.assertEqual(m.to_tag, "xyz")
        m.set("Max-Forwards", "69")
        self.assertEqual(m.max_forwards, 69)
        m.set("Content-Type", "text/plain")
        self.assertEqual(m.content_type, "text/plain")
        m.remove("Expires")
        self.assertIsNone(m.expires)
        m.set("From", "<sip:carol@chicago.example.com>;tag=9")
        self.assertEqual(m.from_.uri.user, "carol")

    def test_absent_optional(self):
        """Absent optional headers read as None / empty."""
        m = Request("OPTIONS", "sip:a@b", [])
        self.assertIsNone(m.max_forwards)
        self.assertIsNone(m.content_length)
        self.assertIsNone(m.content_type)
        self.assertIsNone(m.expires)
        self.assertIsNone(m.contact)
        self.assertEqual(m.contacts, [])
        self.assertEqual(m.routes, [])

    def test_missing_required(self):
        """Absent required headers raise SIPParseError when read."""
        m = Request("OPTIONS", "sip:a@b", [])
        for name in ("call_id", "cseq", "from_", "to", "top_via"):
            self.assertRaises(SIPParseError, getattr, m, name)

    def test_expires_capped(self):
        """A huge Expires is capped at 2**32-1."""
        m = Request("REGISTER", "sip:a@b", [("Expires", "9" * 40)])
        self.assertEqual(m.expires, 2 ** 32 - 1)

    def test_content_type_case(self):
        """The media type is lower-cased, parameters dropped."""
        m = Request("MESSAGE", "sip:a@b", [("Content-Type", "Text/Plain ; charset=UTF-8")])
        self.assertEqual(m.content_type, "text/plain")

    def test_bad_content_type(self):
        """A Content-Type without type/subtype raises."""
        for value in ("text", "/plain", "text/", "te xt/plain"):
            m = Request("MESSAGE", "sip:a@b", [("Content-Type", value)])
            self.assertRaises(SIPParseError, getattr, m, "content_type")

    def test_conflicting_single_header(self):
        """Two different values of a single-valued header raise."""
        m = Request("OPTIONS", "sip:a@b", [("Max-Forwards", "70"), ("Max-Forwards", "69")])
        self.assertRaises(SIPParseError, getattr, m, "max_forwards")
        m = Request("OPTIONS", "sip:a@b", [("Max-Forwards", "70"), ("Max-Forwards", " 70")])
        self.assertEqual(m.max_forwards, 70)


class ValidateTests(SynchronousTestCase):
    """Message.validate()."""

    def test_valid(self):
        """A good message validates and returns itself."""
        m = parse_message(INVITE)
        self.assertIs(m.validate(), m)

    def test_bad_date(self):
        """A Date not in GMT is rejected (RFC 4475 baddate)."""
        m = Request("INVITE", "sip:a@b", [("Date", "Fri, 01 Jan 2010 16:00:00 EST")])
        e = self.assertRaises(SIPParseError, m.validate)
        self.assertIs(e.partial, m)

    def test_bad_contact(self):
        """A malformed Contact is found by validate()."""
        m = parse_message(INVITE)
        m.add("Contact", "sip:user@example.com?Route=x")
        self.assertRaises(SIPParseError, m.validate)

    def test_response_error_no_partial(self):
        """A response's validate error has no partial request."""
        m = Response(200, headers=[("Route", "<sip:a@b")])
        e = self.assertRaises(SIPParseError, m.validate)
        self.assertIsNone(e.partial)


class CopyTests(SynchronousTestCase):
    """Parsed messages copy and pickle."""

    def test_deepcopy(self):
        """deepcopy of a fresh parse gives an equal, independent message."""
        m = parse_message(INVITE)
        c = copy.deepcopy(m)
        self.assertEqual(c.to_bytes(), m.to_bytes())
        self.assertEqual(c.from_tag, "1928301774")
        self.assertEqual(c.cseq, CSeq(314159, "INVITE"))
        c.set("To", "<sip:x@y>;tag=1")
        self.assertIsNone(m.to_tag)

    def test_pickle(self):
        """A fresh parse pickles; the views survive."""
        m = parse_message(INVITE)
        p = pickle.loads(pickle.dumps(m))
        self.assertEqual(p.to_bytes(), m.to_bytes())
        self.assertEqual(p.to.display, "Bob")
        self.assertEqual(p.cseq.method, "INVITE")
        self.assertEqual(p.uri, m.uri)

    def test_copy_cseq(self):
        """CSeq survives copy and pickle as a CSeq."""
        c = CSeq(7, "BYE")
        for other in (copy.copy(c), copy.deepcopy(c), pickle.loads(pickle.dumps(c))):
            self.assertIsInstance(other, CSeq)
            self.assertEqual((other.seq, other.method), (7, "BYE"))


class SerialiseTests(SynchronousTestCase):
    """to_bytes() and round trips."""

    def assertRoundTrip(self, data):
        first = parse_message(data)
        second = parse_message(first.to_bytes())
        self.assertEqual(type(first), type(second))
        if isinstance(first, Request):
            self.assertEqual((first.method, str(first.uri)),
                             (second.method, str(second.uri)))
        else:
            self.assertEqual((first.status, first.reason),
                             (second.status, second.reason))
        self.assertEqual(first.body, second.body)
        strip = lambda hs: [h for h in hs if h[0] != "Content-Length"]
        self.assertEqual(strip(first.headers), strip(second.headers))
        self.assertEqual(second.content_length, len(second.body))
        return first, second

    def test_round_trip(self):
        """parse -> to_bytes -> parse gives the same start line, headers and
        body; a message with Content-Length serialises to the same headers."""
        first, second = self.assertRoundTrip(INVITE)
        self.assertEqual(first.headers, second.headers)
        first, second = self.assertRoundTrip(sipp_invite())
        self.assertEqual(first.headers, second.headers)
        self.assertEqual(first.to_bytes(), sipp_invite())

    def test_round_trip_rfc4475(self):
        """Every valid RFC 4475 message round-trips (folding, compact forms,
        odd whitespace and bytes included)."""
        d = os.path.join(FIXTURES, "rfc4475")
        for tag in ("wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp",
                    "longreq", "semiuri", "transports", "mpart01", "unreason",
                    "noreason", "unkscm", "novelsc", "unksm2", "bext01", "invut",
                    "regaut01", "bcast", "zeromf", "cparam01", "cparam02",
                    "regescrt", "sdp01", "inv2543", "badbranch", "dblreq"):
            with open(os.path.join(d, tag + ".dat"), "rb") as f:
                self.assertRoundTrip(f.read())

    def test_content_length_updated(self):
        """Content-Length follows the body, in place of the old header."""
        m = parse_message(INVITE)
        m.body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
        data = m.to_bytes()
        self.assertIn(b"Content-Length: %d\r\n" % len(m.body), data)
        self.assertNotIn(b"Content-Length: 4\r\n", data)
        again = parse_message(data)
        self.assertEqual(again.body, m.body)
        self.assertEqual([n for n, _ in again.headers][-1], "Content-Length")

    def test_content_length_added(self):
        """A message without Content-Length gets one, last; duplicates go."""
        m = Request("OPTIONS", "sip:a@b", [("Via", "SIP/2.0/UDP h")], b"")
        self.assertTrue(m.to_bytes().endswith(b"Via: SIP/2.0/UDP h\r\nContent-Length: 0\r\n\r\n"))
        m = Request("OPTIONS", "sip:a@b", [("Content-Length", "5"), ("Via", "v"),
                                            ("Content-Length", "9")], b"abc")
        self.assertEqual(m.to_bytes(),
                         b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\nVia: v\r\n\r\nabc")

    def test_bytes(self):
        """bytes(msg) is to_bytes()."""
        m = parse_message(INVITE)
        self.assertEqual(bytes(m), m.to_bytes())

    def test_non_utf8_round_trip(self):
        """Bytes that are not UTF-8 survive a round trip."""
        data = INVITE.replace(b"X-Custom: One", b"X-Custom: \xff\xfe\x80")
        m = parse_message(data)
        self.assertIn(b"X-Custom: \xff\xfe\x80\r\n", m.to_bytes())

    def test_request_str_uri(self):
        """A Request built with a str URI parses it."""
        r = Request("OPTIONS", "sip:alice@example.com;transport=tcp")
        self.assertIsInstance(r.uri, URI)
        self.assertEqual(r.uri.transport, "tcp")
        self.assertTrue(r.to_bytes().startswith(b"OPTIONS sip:alice@example.com;transport=tcp SIP/2.0\r\n"))

    def test_response_start_line(self):
        """A response's start line; the reason defaults from the status."""
        self.assertTrue(Response(486).to_bytes().startswith(b"SIP/2.0 486 Busy Here\r\n"))
        self.assertTrue(Response(299).to_bytes().startswith(b"SIP/2.0 299 Unknown\r\n"))
        self.assertEqual(REASONS[200], "OK")

    def test_repr(self):
        """repr names the method/URI or status."""
        self.assertIn("INVITE", repr(parse_message(INVITE)))
        self.assertIn("404", repr(Response(404)))


class ResponseTests(SynchronousTestCase):
    """Request.response()."""

    def setUp(self):
        self.req = parse_message(INVITE)

    def test_copies_headers(self):
        """Via (all), From, To, Call-ID and CSeq are copied in order."""
        resp = self.req.response(180, to_tag="a6c85cf")
        self.assertEqual([n for n, _ in resp.headers],
                         ["Via", "Via", "To", "From", "Call-ID", "CSeq"])
        self.assertEqual(resp.get_all("Via"), self.req.get_all("Via"))
        self.assertEqual(resp.from_tag, "1928301774")
        self.assertEqual(resp.call_id, self.req.call_id)
        self.assertEqual(resp.cseq, self.req.cseq)
        self.assertEqual(resp.status, 180)
        self.assertEqual(resp.reason, "Ringing")

    def test_to_tag_added(self):
        """The To tag is added to a To without one."""
        resp = self.req.response(200, to_tag="a6c85cf")
        self.assertEqual(resp.to_tag, "a6c85cf")
        self.assertEqual(resp.to.uri.user, "bob")
        self.assertIsNone(self.req.to_tag)

    def test_to_tag_generated(self):
        """Without to_tag a response above 100 gets a fresh random To tag."""
        a = self.req.response(200).to_tag
        b = self.req.response(200).to_tag
        self.assertTrue(a)
        self.assertNotEqual(a, b)

    def test_to_tag_kept(self):
        """An existing To tag is not replaced."""
        self.req.set("To", "<sip:bob@biloxi.example.com>;tag=old")
        resp = self.req.response(200, to_tag="new")
        self.assertEqual(resp.to_tag, "old")

    def test_to_tag_kept_parsed(self):
        """A received request's To tag (read by the parser's fast path) is
        kept, and a To with a valueless tag parameter gets no second tag."""
        for to, expected in [(b"To: Bob <sip:bob@biloxi.example.com>;tag=old\r\n",
                              "Bob <sip:bob@biloxi.example.com>;tag=old"),
                             (b"To: Bob <sip:bob@biloxi.example.com>;tag\r\n",
                              "Bob <sip:bob@biloxi.example.com>;tag")]:
            req = parse_message(INVITE.replace(b"To: Bob <sip:bob@biloxi.example.com>\r\n", to))
            resp = req.response(200, to_tag="new")
            self.assertEqual(resp.get_all("To"), [expected])

    def test_from_head_shared_params_own(self):
        """Two requests whose From differs only in its tag get the display
        name and URI the parser kept for that From (a value, shared), and
        parameters of their own: changing one's leaves the other's."""
        one = parse_message(INVITE)
        two = parse_message(INVITE.replace(b";tag=1928301774", b";tag=other;x=1"))
        self.assertIs(one.from_.uri, two.from_.uri)
        self.assertEqual(one.from_.display, two.from_.display)
        self.assertEqual(one.from_.params, {"tag": "1928301774"})
        self.assertEqual(two.from_.params, {"tag": "other", "x": "1"})
        one.from_.params["y"] = "2"
        self.assertEqual(two.from_.params, {"tag": "other", "x": "1"})
        self.assertEqual(parse_message(INVITE).from_.params, {"tag": "1928301774"})

    def test_100_no_tag_timestamp(self):
        """100 Trying gets no To tag and copies Timestamp."""
        resp = self.req.response(100, to_tag="x")
        self.assertIsNone(resp.to_tag)
        self.assertEqual(resp.get("Timestamp"), "54")
        self.assertIsNone(self.req.response(180).get("Timestamp"))

    def test_repeated_to(self):
        """A request with a repeated (identical) To gets one tagged To in
        the response, which parses."""
        data = INVITE.replace(b"To: Bob <sip:bob@biloxi.example.com>\r\n",
                              b"To: Bob <sip:bob@biloxi.example.com>\r\n" * 2)
        req = parse_message(data)
        resp = parse_message(req.response(200, to_tag="t9").to_bytes())
        self.assertEqual(resp.get_all("To"), ["Bob <sip:bob@biloxi.example.com>;tag=t9"])
        self.assertEqual(len(resp.get_all("Via")), 3)

    def test_partial_with_bad_to(self):
        """response() of a request whose To does not parse copies the To
        as it is instead of raising."""
        req = Request("INVITE", "sip:a@b", [("Via", "SIP/2.0/UDP h"), ("To", '"unbalanced <sip:a@b>')])
        resp = req.response(400, to_tag="x")
        self.assertEqual(resp.get("To"), '"unbalanced <sip:a@b>')

    def test_extra_headers_body(self):
        """Extra headers and a body; the wire form parses back."""
        resp = self.req.response(200, "Fine", "t1", [("Contact", "<sip:b@h>")], b"v=0\r\n")
        data = resp.to_bytes()
        again = parse_message(data)
        self.assertEqual(again.status, 200)
        self.assertEqual(again.reason, "Fine")
        self.assertEqual(again.contact.uri.host, "h")
        self.assertEqual(again.body, b"v=0\r\n")
        self.assertEqual(again.to_tag, "t1")


#: INVITE without its repeated names (a second Via, X-Custom), its Route,
#: Record-Route and Timestamp, its Content-Type spelled otherwise: the parser
#: leaves its index in the message, and the views answer from it.
UNIQUE = (INVITE
          .replace(b"Via: SIP/2.0/TCP p1.example.com;branch=z9hG4bK1, "
                   b"SIP/2.0/UDP p2.example.com;branch=z9hG4bK2\r\n", b"")
          .replace(b"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n", b"")
          .replace(b"Record-Route: <sip:rr.example.com;lr>\r\n", b"")
          .replace(b"Timestamp: 54\r\n", b"")
          .replace(b"X-Custom: One\r\nx-custom: Two\r\n", b"")
          .replace(b"application/sdp;charset=utf-8", b"Application/SDP ;charset=utf-8"))


def _views(m):
    """What a message's views say (errors by class and text)."""
    out = {}
    for name in ("header_names", "contacts", "routes", "record_routes", "content_type",
                 "expires", "max_forwards", "content_length", "call_id", "cseq"):
        try:
            value = getattr(m, name)
            value = value() if name == "header_names" else value
            out[name] = (set(value) if name == "header_names"
                         else [str(v) for v in value] if isinstance(value, list) else value)
        except SIPParseError as e:
            out[name] = ("error", e.reason)
    return out


class IndexedMessageTests(SynchronousTestCase):
    """The views of a parsed message whose header names are all different
    answer from the parser's index, and say what the general code says."""

    def parse(self, data=UNIQUE, index=True):
        m = parse_message(data)
        self.assertIn("index", m._cache)
        if not index:
            m._cache.clear()
        return m

    def test_same_as_without_index(self):
        """Every view, with and without the index, for the message as
        received and after each kind of change."""
        changes = [
            lambda m: None,
            lambda m: m.add("Record-Route", "<sip:rr.example.com;lr>"),
            lambda m: m.add("Route", "<sip:p1.example.com;lr>"),
            lambda m: m.remove("Contact"),
            lambda m: m.set("Content-Type", "text/plain"),
            lambda m: m.add("Content-Type", "application/sdp"),   # two: an error
            lambda m: m.insert("Expires", "30"),
            lambda m: m.set("Max-Forwards", "9"),
        ]
        for change in changes:
            with_index = self.parse()
            change(with_index)
            without = self.parse(index=False)
            change(without)
            self.assertEqual(_views(with_index), _views(without))

    def test_changes_seen(self):
        """A header added or removed after the parse is seen by the views
        (the index goes with the other cached views)."""
        m = self.parse()
        self.assertEqual(m.record_routes, [])
        self.assertNotIn("Record-Route", m.header_names())
        m.add("Record-Route", "<sip:rr.example.com;lr>")
        self.assertIn("Record-Route", m.header_names())
        self.assertEqual([str(r) for r in m.record_routes], ["<sip:rr.example.com;lr>"])
        m.remove("Contact")
        self.assertEqual(m.contacts, [])
        self.assertEqual(self.parse().content_type, "application/sdp")

    def test_bad_content_type_each_time(self):
        """A malformed Content-Type is refused on every message (only good
        ones are kept)."""
        bad = UNIQUE.replace(b"Application/SDP ;charset=utf-8", b"application")
        for _ in range(2):
            m = parse_message(bad)
            self.assertRaises(SIPParseError, lambda: m.content_type)
            self.assertRaises(SIPParseError, m.validate)

    def test_response_copies(self):
        """A response to it copies Via, From, To, Call-ID and CSeq in the
        request's order, as for a request whose names repeat, and tags a To
        without parameters."""
        for index in (True, False):
            req = self.parse(index=index)
            resp = req.response(200, to_tag="t1")
            self.assertEqual([n for n, _ in resp.headers],
                             ["Via", "To", "From", "Call-ID", "CSeq"])
            self.assertEqual(resp.get("To"), "Bob <sip:bob@biloxi.example.com>;tag=t1")
        req = parse_message(UNIQUE.replace(b"Bob <sip:bob@biloxi.example.com>",
                                           b"Bob <sip:bob@biloxi.example.com>;tag"))
        self.assertEqual(req.response(200, to_tag="t1").get("To"),
                         "Bob <sip:bob@biloxi.example.com>;tag")
