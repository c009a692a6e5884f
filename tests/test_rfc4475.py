"""
The RFC 4475 torture-test messages, from the byte-exact copies in
C{tests/fixtures/rfc4475/} (the README table there gives each message's
class; SHA256SUMS guards the bytes).
"""

import hashlib
import os
import re

from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.sip.errors import SIPParseError, VersionNotSupported
from rvoip_twisted.sip.message import Request, Response
from rvoip_twisted.sip.parser import StreamParser, parse_message
from rvoip_twisted.sip.uri import unescape

DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "rfc4475")


def _table():
    with open(os.path.join(DIR, "README.md"), encoding="utf-8") as f:
        text = f.read()
    return dict(re.findall(r"^\| (\w+) \| [^|]*\| ([^|]+?) \|$", text, re.M)[1:])


CLASSES = _table()
VALID = sorted(t for t, c in CLASSES.items() if c == "valid")
INVALID = sorted(t for t, c in CLASSES.items() if c == "invalid")


def load(tag):
    with open(os.path.join(DIR, tag + ".dat"), "rb") as f:
        return f.read()


def parse(tag):
    return parse_message(load(tag)).validate()


class FixtureTests(SynchronousTestCase):
    """The fixture files themselves."""

    def test_checksums(self):
        """Every file matches SHA256SUMS (the copies are byte-exact)."""
        with open(os.path.join(DIR, "SHA256SUMS")) as f:
            sums = [line.split() for line in f if line.strip()]
        self.assertEqual(len(sums), 50)
        for digest, name in sums:
            with open(os.path.join(DIR, name.lstrip("*")), "rb") as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(), digest, name)

    def test_table(self):
        """The README table lists 49 RFC messages plus test.dat, all present."""
        self.assertEqual(len(VALID), 27)
        self.assertEqual(len(INVALID), 22)
        self.assertEqual(CLASSES["test"], "not in the RFC")
        for tag in CLASSES:
            self.assertTrue(os.path.exists(os.path.join(DIR, tag + ".dat")), tag)

    def test_crlf_kept(self):
        """The copies still have their CRLF line ends (no checkout
        conversion)."""
        self.assertIn(b"\r\n", load("wsinv"))
        self.assertIn(b"\x00", load("intmeth"))


class ClassTests(SynchronousTestCase):
    """Every message is handled as its class says."""

    def test_valid(self):
        """Valid messages parse and validate; responses too."""
        for tag in VALID:
            try:
                msg = parse(tag)
            except SIPParseError as e:
                self.fail("%s: %s" % (tag, e))
            self.assertIsInstance(msg, Response if tag in ("unreason", "noreason", "bcast")
                                  else Request, tag)

    def test_invalid(self):
        """Invalid messages raise SIPParseError, 400 (505 for badvers), from
        parse_message or validate(); a request's error carries a partial
        Request that can be answered."""
        for tag in INVALID:
            e = self.assertRaises(SIPParseError, parse, tag)
            self.assertEqual(e.status, 505 if tag == "badvers" else 400, tag)
            if not load(tag).startswith(b"SIP/"):
                self.assertIsInstance(e.partial, Request, tag)
                answer = e.partial.response(e.status, to_tag="srv1")
                self.assertIn(b"SIP/2.0 %d " % e.status, answer.to_bytes())

    def test_badvers(self):
        """badvers is a VersionNotSupported."""
        self.assertRaises(VersionNotSupported, parse_message, load("badvers"))

    def test_stream_no_crash(self):
        """On a stream, every message (and test.dat), in one piece, in
        7-byte pieces or byte by byte, gives messages or SIPParseErrors,
        never another exception; a valid message with Content-Length comes
        out first, as the datagram parser reads it."""
        for tag in CLASSES:
            data = load(tag)
            expected = None
            if tag in VALID:
                expected = parse_message(data)
                if expected.content_length is None:
                    expected = None
            for size in (len(data), 7, 1):
                p = StreamParser()
                items = []
                try:
                    for i in range(0, len(data), size):
                        items.extend(p.feed(data[i:i + size]))
                except SIPParseError:
                    pass
                for item in items:
                    if not isinstance(item, SIPParseError):
                        try:
                            item.validate()
                        except SIPParseError as e:
                            self.assertIn(tag, INVALID)
                            self.assertEqual(e.status, 400)
                if expected is not None:
                    self.assertEqual(items[0].headers, expected.headers, tag)
                    self.assertEqual(items[0].body, expected.body, tag)

    def test_test_dat(self):
        """test.dat (not in the RFC) does not crash the parser: it is a 400."""
        e = self.assertRaises(SIPParseError, parse, "test")
        self.assertEqual(e.status, 400)


class ValidFactsTests(SynchronousTestCase):
    """What the valid messages must parse to (RFC 4475 section 3)."""

    def test_wsinv(self):
        """wsinv: three Via values and their branches, folded values,
        compact and odd-case names, Contact params."""
        m = parse("wsinv")
        self.assertEqual([(v.transport, v.host, v.branch) for v in m.vias], [
            ("UDP", "192.0.2.2", "390skdjuw"),
            ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
            ("UDP", "192.168.255.111", "z9hG4bK30239")])
        self.assertEqual(m.get("NewFangledHeader"),
                         "newfangled value continued newfangled value")
        self.assertEqual(m.get("UnknownHeaderWithUnusualValue"), ";;,,;;,;")
        self.assertEqual(m.contact.params["q"], "0.33")
        self.assertEqual(m.contact.params["newparam"], "newvalue")
        self.assertIsNone(m.contact.params["secondparam"])
        self.assertEqual(m.contact.display_name, 'Quoted string ""')
        self.assertEqual(m.to_tag, "1918181833n")
        self.assertEqual(m.from_tag, "98asjd8")
        self.assertEqual(m.from_.display_name, 'J Rosenberg \\"')
        self.assertEqual(m.max_forwards, 68)
        self.assertEqual(m.cseq, (9, "INVITE"))
        self.assertEqual(m.get("Subject"), "")
        self.assertEqual(m.routes[0].uri.host, "services.example.com")
        self.assertEqual(m.uri.params, {"unknownparam": None})
        self.assertEqual(len(m.body), 150)

    def test_intmeth(self):
        """intmeth: the odd method, the user and password of the R-URI, the
        control characters in the To display name, the non-ASCII bytes."""
        m = parse("intmeth")
        method = "!interesting-Method0123456789_*+`.%indeed'~"
        self.assertEqual(m.method, method)
        self.assertEqual(m.cseq, (139122385, method))
        self.assertEqual(m.uri.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        self.assertEqual(m.uri.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        self.assertEqual(m.uri.host, "example.com")
        self.assertEqual(m.to.display_name, "BEL:\x07 NUL:\x00 DEL:\x7f")
        self.assertEqual(m.to.uri.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        self.assertEqual(m.from_.display, "token1~` token2'+_ token3*%!.-")
        self.assertEqual(m.from_tag, "_token~1'+`*%!-.")
        self.assertEqual(m.call_id, "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
        self.assertEqual(m.top_via.branch, "z9hG4bK-.!%66*_+`'~")
        self.assertEqual(m.get("extensionHeader-!.%*+_`'~").encode("utf-8", "surrogateescape"),
                         b"\xef\xbb\xbf\xe5\xa4\xa7\xe5\x81\x9c\xe9\x9b\xbb")

    def test_esc01(self):
        """esc01: escaped R-URI user, To user, From spaces, Contact params."""
        m = parse("esc01")
        self.assertEqual(m.uri.user, "sips%3Auser%40example.com")
        self.assertEqual(unescape(m.uri.user), "sips:user@example.com")
        self.assertEqual(m.uri.host, "example.net")
        self.assertEqual(unescape(m.to.uri.user), "user")
        self.assertEqual(unescape(m.from_.uri.user), "I have spaces")
        self.assertEqual(unescape(m.contact.uri.user), "caller")
        self.assertIn("lr", m.contact.uri.params)
        self.assertEqual(unescape(m.contact.uri.params["name"]), "value%41")
        self.assertEqual(m.content_type, "application/sdp")

    def test_escnull(self):
        """escnull: %00 in users unescapes to NUL; two Contacts; L:0."""
        m = parse("escnull")
        self.assertEqual(unescape(m.to.uri.user), "null-\x00-null")
        self.assertEqual([unescape(c.uri.user) for c in m.contacts], ["\x00", "\x00\x00"])
        self.assertEqual(m.content_length, 0)

    def test_esc02(self):
        """esc02: RE%47IST%45R is the method (not REGISTER); C%6Fntact is an
        unknown header, not a Contact."""
        m = parse("esc02")
        self.assertEqual(m.method, "RE%47IST%45R")
        self.assertNotEqual(m.method, "REGISTER")
        self.assertEqual(m.cseq.method, "RE%47IST%45R")
        self.assertEqual([c.uri.host for c in m.contacts],
                         ["host1.example.com", "host3.example.com"])
        self.assertEqual(m.get("C%6Fntact"), "<sip:alias2@host2.example.com>")
        self.assertEqual(m.to.display_name, "%Z%45")
        self.assertEqual(m.top_via.branch, "z9hG4bK209%fzsnel234")

    def test_lwsdisp(self):
        """lwsdisp: a display name with no space before <."""
        m = parse("lwsdisp")
        self.assertEqual(m.from_.display, "caller")
        self.assertEqual(m.from_.uri.user, "caller")

    def test_longreq(self):
        """longreq: 34 Vias in mixed name spellings, long values."""
        m = parse("longreq")
        self.assertEqual(len(m.vias), 34)
        self.assertEqual(m.vias[0].host, "sip33.example.com")
        self.assertEqual(m.vias[-1].received, "192.0.2.5")
        self.assertEqual(m.to.uri.port, 6000)
        self.assertEqual(len(m.to.uri.params), 3)
        self.assertTrue(m.to.display_name.startswith("I have a user name of extreme"))
        self.assertEqual(len(m.body), m.content_length)

    def test_dblreq(self):
        """dblreq: the datagram holds two requests; the first (Content-Length
        0) is the message, the rest dropped."""
        m = parse("dblreq")
        self.assertEqual(m.method, "REGISTER")
        self.assertEqual(m.body, b"")
        self.assertEqual(m.call_id, "dblreq.0ha0isndaksdj99sdfafnl3lk233412")

    def test_dblreq_stream(self):
        """On a stream, dblreq's bytes frame as two messages (the SDP lines
        beyond the INVITE's Content-Length then fail as a third)."""
        items = StreamParser().feed(load("dblreq"))
        self.assertEqual([i.method for i in items[:2]], ["REGISTER", "INVITE"])
        self.assertEqual(len(items[1].body), 150)
        self.assertIsInstance(items[2], SIPParseError)

    def test_semiuri(self):
        """semiuri: ; in the user part of the R-URI; folded Accept list."""
        m = parse("semiuri")
        self.assertEqual(m.uri.user, "user;par=u%40example.net")
        self.assertEqual(m.uri.host, "example.com")
        self.assertEqual(m.uri.params, {})
        self.assertEqual(len(m.get_all("Accept")), 6)

    def test_transports(self):
        """transports: five Vias with five transports."""
        m = parse("transports")
        self.assertEqual([v.transport for v in m.vias],
                         ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"])

    def test_mpart01(self):
        """mpart01: a multipart body of 553 bytes; rport flag."""
        m = parse("mpart01")
        self.assertEqual(m.content_type, "multipart/mixed")
        self.assertEqual(len(m.body), 553)
        self.assertTrue(m.top_via.has_rport)
        self.assertIsNone(m.top_via.rport)
        self.assertEqual(m.top_via.port, 5070)

    def test_unreason(self):
        """unreason: a UTF-8 reason phrase."""
        m = parse("unreason")
        self.assertEqual(m.status, 200)
        self.assertTrue(m.reason.startswith("= 2**3 * 5**2 "))
        self.assertIn("\u043f\u0440\u043e\u0441\u0442\u043e\u0435", m.reason)

    def test_noreason(self):
        """noreason: an empty reason phrase."""
        m = parse("noreason")
        self.assertEqual(m.status, 100)
        self.assertEqual(m.reason, "")

    def test_badbranch(self):
        """badbranch: the branch is just the magic cookie; still valid."""
        self.assertEqual(parse("badbranch").top_via.branch, "z9hG4bK")

    def test_unkscm(self):
        """unkscm: an unknown R-URI scheme is kept, opaque."""
        m = parse("unkscm")
        self.assertEqual(m.uri.scheme, "nobodyknowsthisscheme")
        self.assertEqual(m.uri.opaque, "totallyopaquecontent")
        self.assertFalse(m.uri.is_sip)

    def test_novelsc(self):
        """novelsc: a novel scheme with . in it, opaque."""
        m = parse("novelsc")
        self.assertEqual(m.uri.scheme, "soap.beep")
        self.assertEqual(m.uri.opaque, "//192.0.2.103:3002")

    def test_unksm2(self):
        """unksm2: unknown schemes in To, From and Contact."""
        m = parse("unksm2")
        self.assertEqual((m.to.uri.scheme, m.to.uri.opaque), ("isbn", "2983792873"))
        self.assertEqual(m.from_.uri.scheme, "http")
        self.assertEqual(m.contact.uri.scheme, "name")

    def test_bext01(self):
        """bext01: Require and Proxy-Require lists."""
        m = parse("bext01")
        self.assertEqual(m.get_all("Require"),
                         ["nothingSupportsThis", "nothingSupportsThisEither"])
        self.assertEqual(len(m.get_all("Proxy-Require")), 2)

    def test_invut(self):
        """invut: an unknown Content-Type."""
        m = parse("invut")
        self.assertEqual(m.content_type, "application/unknownformat")
        self.assertEqual(len(m.body), 40)

    def test_regaut01(self):
        """regaut01: unknown auth scheme; Content-Length:0 without space."""
        m = parse("regaut01")
        self.assertEqual(m.get("Authorization"), "NoOneKnowsThisScheme opaque-data=here")
        self.assertEqual(m.content_length, 0)

    def test_bcast(self):
        """bcast: a response with a broadcast second Via."""
        m = parse("bcast")
        self.assertEqual(m.vias[1].host, "255.255.255.255")

    def test_zeromf(self):
        """zeromf: Max-Forwards 0 is valid."""
        self.assertEqual(parse("zeromf").max_forwards, 0)

    def test_cparam(self):
        """cparam01: the param of an addr-spec Contact is a header param;
        cparam02: inside <> it is a URI param."""
        c1 = parse("cparam01").contact
        self.assertEqual(c1.params, {"unknownparam": None})
        self.assertEqual(c1.uri.params, {})
        c2 = parse("cparam02").contact
        self.assertEqual(c2.params, {})
        self.assertEqual(c2.uri.params, {"unknownparam": None})

    def test_regescrt(self):
        """regescrt: an escaped Route header in a Contact URI."""
        m = parse("regescrt")
        self.assertEqual(m.contact.uri.headers, "Route=%3Csip:sip.example.com%3E")
        self.assertEqual(unescape(m.contact.uri.headers), "Route=<sip:sip.example.com>")

    def test_sdp01(self):
        """sdp01: SDP body with an Accept that does not list it."""
        m = parse("sdp01")
        self.assertEqual(m.content_type, "application/sdp")
        self.assertEqual(m.get_all("Accept"), ["text/nobodyKnowsThis"])

    def test_inv2543(self):
        """inv2543: an RFC 2543 request: no branch, no Max-Forwards,
        addr-spec To with user=phone, no Content-Length."""
        m = parse("inv2543")
        self.assertIsNone(m.top_via.branch)
        self.assertIsNone(m.max_forwards)
        self.assertIsNone(m.content_length)
        self.assertEqual(m.to.uri.params, {})
        self.assertEqual(m.to.params, {"user": "phone"})
        self.assertEqual(m.from_.uri.params, {"user": "phone"})
        self.assertIsNone(m.from_tag)
        self.assertTrue(m.body.startswith(b"v=0"))


class InvalidFactsTests(SynchronousTestCase):
    """Why the invalid messages fail."""

    def reason(self, tag):
        return self.assertRaises(SIPParseError, parse, tag).reason

    def test_reasons(self):
        """Each invalid message fails for the RFC's reason."""
        expected = {
            "badinv01": "Via", "clerr": "Content-Length", "ncl": "Content-Length",
            "scalar02": "CSeq", "scalarlg": "CSeq", "quotbal": "quote",
            "ltgtruri": "scheme", "lwsruri": "request line",
            "lwsstart": "request line", "trws": "request line",
            "escruri": "Request-URI", "baddate": "Date", "regbadct": "Contact",
            "badaspec": "URI", "baddn": "display name", "badvers": "version",
            "mismatch01": "CSeq method", "mismatch02": "CSeq method",
            "bigcode": "status code", "insuf": "Missing", "multi01": "More than one",
            "mcl01": "More than one Content-Length",
        }
        self.assertEqual(sorted(expected), INVALID)
        for tag, word in expected.items():
            self.assertIn(word.lower(), self.reason(tag).lower(), tag)

    def test_partials(self):
        """The partial requests of invalid requests hold what is needed to
        answer: Via, From, To, Call-ID, CSeq where present."""
        e = self.assertRaises(SIPParseError, parse, "lwsruri")
        self.assertEqual(e.partial.method, "INVITE")
        self.assertEqual(e.partial.call_id,
                         "lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423")
        e = self.assertRaises(SIPParseError, parse, "quotbal")
        self.assertEqual(e.partial.top_via.branch, "z9hG4bKkdjuw39234")
        resp = e.partial.response(400, to_tag="t")
        self.assertEqual(resp.get("To"), '"Mr. J. User <sip:j.user@example.com>')
