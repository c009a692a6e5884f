"""
Tests for L{rvoip_twisted.sip.headers}: header names, Via, name-addr,
CSeq, parameters, lists, integers.
"""

import re

from hypothesis import example, given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.sip import headers as hmod
from rvoip_twisted.sip.errors import SIPParseError
from rvoip_twisted.sip.headers import (
    COMPACT, CSeq, NameAddr, Via, canonical_name, is_token, parse_int,
    parse_params, quote, split_list, unquote,
)


class NameTests(SynchronousTestCase):
    """Header names: compact forms and case."""

    def test_compact_forms(self):
        """Every compact form maps to its canonical name, in either case."""
        expected = {
            "i": "Call-ID", "m": "Contact", "e": "Content-Encoding",
            "l": "Content-Length", "c": "Content-Type", "f": "From",
            "t": "To", "v": "Via", "k": "Supported", "s": "Subject",
            "o": "Event", "u": "Allow-Events", "r": "Refer-To",
            "b": "Referred-By", "x": "Session-Expires",
        }
        for short, full in expected.items():
            self.assertEqual(canonical_name(short), full)
            self.assertEqual(canonical_name(short.upper()), full)
            self.assertEqual(COMPACT[short], full)

    def test_case_insensitive(self):
        """Known names in any case give the canonical spelling."""
        self.assertEqual(canonical_name("cseq"), "CSeq")
        self.assertEqual(canonical_name("CALL-ID"), "Call-ID")
        self.assertEqual(canonical_name("mAx-FoRwArDs"), "Max-Forwards")
        self.assertEqual(canonical_name("www-authenticate"), "WWW-Authenticate")

    def test_unknown_unchanged(self):
        """An unknown name is returned as it is."""
        self.assertEqual(canonical_name("X-My-Header"), "X-My-Header")

    def test_is_token(self):
        """Tokens: RFC 3261 token characters only, not empty."""
        self.assertTrue(is_token("INVITE"))
        self.assertTrue(is_token("!interesting-Method0123456789_*+`.%indeed'~"))
        self.assertFalse(is_token(""))
        self.assertFalse(is_token("a b"))
        self.assertFalse(is_token("a:b"))


class ViaTests(SynchronousTestCase):
    """Via values."""

    def test_basic(self):
        """Protocol, transport, sent-by and branch."""
        v = Via.parse("SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds")
        self.assertEqual(v.protocol, "SIP/2.0")
        self.assertEqual(v.transport, "UDP")
        self.assertEqual(v.host, "pc33.atlanta.com")
        self.assertIsNone(v.port)
        self.assertEqual(v.branch, "z9hG4bK776asdhds")
        self.assertEqual(v.sent_by, ("pc33.atlanta.com", None))
        self.assertFalse(v.reliable)

    def test_port_and_transport_case(self):
        """The port is an int; the transport is upper-cased."""
        v = Via.parse("SIP/2.0/tcp 192.0.2.1:5070;branch=z9hG4bKx")
        self.assertEqual(v.transport, "TCP")
        self.assertEqual(v.port, 5070)
        self.assertTrue(v.reliable)

    def test_ipv6_sent_by(self):
        """An IPv6 reference as sent-by, with and without port."""
        v = Via.parse("SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKas")
        self.assertEqual(v.host, "[2001:db8::9:1]")
        self.assertEqual(v.port, 5070)
        v = Via.parse("SIP/2.0/TLS [2001:db8::1];branch=z9hG4bKbs")
        self.assertEqual(v.host, "[2001:db8::1]")
        self.assertIsNone(v.port)

    def test_received_rport(self):
        """received and rport with a value."""
        v = Via.parse("SIP/2.0/UDP h.example;branch=z9hG4bK1;received=192.0.2.7;rport=5071")
        self.assertEqual(v.received, "192.0.2.7")
        self.assertEqual(v.rport, 5071)
        self.assertTrue(v.has_rport)

    def test_rport_flag(self):
        """rport without a value: present, but no port."""
        v = Via.parse("SIP/2.0/UDP h.example;rport;branch=z9hG4bK1")
        self.assertTrue(v.has_rport)
        self.assertIsNone(v.rport)
        self.assertIn("rport", v.params)

    def test_no_rport(self):
        """No rport parameter at all."""
        v = Via.parse("SIP/2.0/UDP h.example;branch=z9hG4bK1")
        self.assertFalse(v.has_rport)
        self.assertIsNone(v.rport)

    def test_bad_rport_value(self):
        """A non-numeric or non-ASCII-digit rport value reads as None, never raises."""
        for value in ("abc", "\u00b2", "9" * 5000, "70000"):
            v = Via.parse("SIP/2.0/UDP h;rport=" + value)
            self.assertIsNone(v.rport, value[:10])

    def test_with_received_keeps_the_text(self):
        """
        received (and the rport value) are added to the Via's own text:
        its spelling stays as it came; the result parses back to the same
        parameters as formatting them would give.
        """
        cases = [
            ("SIP/2.0/UDP h.example:5062;branch=z9hG4bK1;rport", "40000",
             "SIP/2.0/UDP h.example:5062;branch=z9hG4bK1;rport=40000;received=10.0.0.9"),
            ("SIP/2.0/UDP h.example;RPort;branch=z9hG4bK1", "40000",
             "SIP/2.0/UDP h.example;RPort=40000;branch=z9hG4bK1;received=10.0.0.9"),
            ("SIP/2.0/UDP h.example;rportx=1;rport;branch=z9hG4bK1", "7",
             "SIP/2.0/UDP h.example;rportx=1;rport=7;branch=z9hG4bK1;received=10.0.0.9"),
            ("SIP/2.0/UDP h.example;branch=z9hG4bK1", None,
             "SIP/2.0/UDP h.example;branch=z9hG4bK1;received=10.0.0.9"),
        ]
        for text, rport, expected in cases:
            via = Via.parse(text)
            stamped = via.with_received("10.0.0.9", rport)
            self.assertEqual(str(stamped), expected)
            self.assertEqual(Via.parse(str(stamped)).params, stamped.params)
            self.assertEqual(stamped.received, "10.0.0.9")
            if rport is not None:
                self.assertEqual(stamped.rport, int(rport))
            self.assertNotIn("received", via.params, "the original is unchanged")
            self.assertEqual(str(via), text)

    def test_with_received_formats_when_the_text_cannot_be_kept(self):
        """
        A received already there (replaced) or an rport flag the text
        search does not find (whitespace around it): formatted from the
        parameters.
        """
        via = Via.parse("SIP/2.0/UDP h.example;received=192.0.2.1;branch=z9hG4bK1")
        self.assertEqual(str(via.with_received("10.0.0.9")),
                         "SIP/2.0/UDP h.example;received=10.0.0.9;branch=z9hG4bK1")
        via = Via.parse("SIP/2.0/UDP h.example ; rport ;branch=z9hG4bK1")
        stamped = via.with_received("10.0.0.9", "5")
        self.assertEqual(str(stamped),
                         "SIP/2.0/UDP h.example;rport=5;branch=z9hG4bK1;received=10.0.0.9")

    def test_maddr_ttl(self):
        """maddr and ttl parameters."""
        v = Via.parse("SIP/2.0/UDP h.example;maddr=224.2.0.1;ttl=16;branch=z9hG4bK1")
        self.assertEqual(v.maddr, "224.2.0.1")
        self.assertEqual(v.ttl, 16)
        self.assertIsNone(Via.parse("SIP/2.0/UDP h;ttl=999").ttl)
        self.assertIsNone(Via.parse("SIP/2.0/UDP h").maddr)

    def test_whitespace(self):
        """Whitespace around / : ; = is allowed (RFC 4475 wsinv)."""
        v = Via.parse("SIP  /   2.0 /UDP    192.0.2.2 : 5060 ;  branch  =   390skdjuw")
        self.assertEqual(v.protocol, "SIP/2.0")
        self.assertEqual(v.transport, "UDP")
        self.assertEqual(v.host, "192.0.2.2")
        self.assertEqual(v.port, 5060)
        self.assertEqual(v.branch, "390skdjuw")

    def test_param_names_lowercased(self):
        """Parameter names are case-insensitive."""
        v = Via.parse("SIP/2.0/UDP h;BRANCH=z9hG4bKA;Received=1.2.3.4")
        self.assertEqual(v.branch, "z9hG4bKA")
        self.assertEqual(v.received, "1.2.3.4")

    def test_other_protocol(self):
        """Another protocol name/version is kept."""
        v = Via.parse("SIP/3.0/UDP h")
        self.assertEqual(v.protocol, "SIP/3.0")

    def test_errors(self):
        """Malformed Via values raise SIPParseError (400)."""
        for text in ("", "SIP/2.0/UDP", "SIP/2.0 h", "SIP/2.0/UDP h:70000",
                     "SIP/2.0/UDP h:x", "SIP/2.0/UDP h;;", "SIP/2.0/UDP h;branch=a b",
                     "SIP/2.0/UDP h junk", "SIP/2.0/UDP 192.0.2.15;;,;,,",
                     "SIP/2.0/UDP h;=x", "SIP/2.0/UDP [::1"):
            e = self.assertRaises(SIPParseError, Via.parse, text)
            self.assertEqual(e.status, 400)

    def test_str(self):
        """A parsed Via serialises as parsed; a built one from its fields."""
        text = "SIP/2.0/UDP h.example:5060;branch=z9hG4bK1;rport"
        self.assertEqual(str(Via.parse(text)), text)
        v = Via("TCP", "192.0.2.1", 5061, {"branch": "z9hG4bKx", "rport": None})
        self.assertEqual(str(v), "SIP/2.0/TCP 192.0.2.1:5061;branch=z9hG4bKx;rport")
        self.assertEqual(Via.parse(str(v)).branch, "z9hG4bKx")

    def test_replace(self):
        """replace() gives a changed copy with its own params."""
        v = Via.parse("SIP/2.0/UDP h;branch=z9hG4bK1")
        w = v.replace(host="other")
        w.params["received"] = "1.1.1.1"
        self.assertEqual(w.host, "other")
        self.assertNotIn("received", v.params)
        self.assertIn("other", str(w))


class NameAddrTests(SynchronousTestCase):
    """name-addr and addr-spec values."""

    def test_quoted_display(self):
        """A quoted display name is kept with quotes; display_name unquotes."""
        na = NameAddr.parse('"Alice Liddell" <sip:alice@atlanta.com>;tag=1928301774')
        self.assertEqual(na.display, '"Alice Liddell"')
        self.assertEqual(na.display_name, "Alice Liddell")
        self.assertEqual(na.uri.user, "alice")
        self.assertEqual(na.tag, "1928301774")

    def test_quoted_escapes(self):
        """Quoted-pairs in a display name: \\\" and \\\\."""
        na = NameAddr.parse('"J Rosenberg \\\\\\""       <sip:jdrosen@example.com>')
        self.assertEqual(na.display_name, 'J Rosenberg \\"')
        na = NameAddr.parse('"a,b;c<d>" <sip:x@y>')
        self.assertEqual(na.display_name, "a,b;c<d>")

    def test_token_display(self):
        """Token display names, several words, no space before <."""
        na = NameAddr.parse("A. G. Bell <sip:bell@example.com>")
        self.assertEqual(na.display, "A. G. Bell")
        self.assertEqual(na.display_name, "A. G. Bell")
        na = NameAddr.parse("caller<sip:caller@example.com>;tag=323")
        self.assertEqual(na.display, "caller")
        self.assertEqual(na.tag, "323")

    def test_no_display(self):
        """<URI> alone has no display name."""
        na = NameAddr.parse("<sip:bob@biloxi.com>")
        self.assertIsNone(na.display)
        self.assertIsNone(na.display_name)
        self.assertIsNone(na.tag)

    def test_addr_spec_params_are_header_params(self):
        """Without <>, parameters after the URI belong to the header
        (RFC 4475 cparam01); inside <> they belong to the URI (cparam02)."""
        na = NameAddr.parse("sip:+19725552222@gw1.example.net;unknownparam")
        self.assertEqual(na.uri.params, {})
        self.assertEqual(na.params, {"unknownparam": None})
        na = NameAddr.parse("<sip:+19725552222@gw1.example.net;unknownparam>")
        self.assertEqual(na.uri.params, {"unknownparam": None})
        self.assertEqual(na.params, {})

    def test_addr_spec_tag(self):
        """addr-spec From with a tag."""
        na = NameAddr.parse("sip:caller@example.net;tag=384")
        self.assertEqual(na.tag, "384")
        self.assertEqual(na.uri.host, "example.net")

    def test_header_params(self):
        """Header params: q, expires, quoted values, spaces around ; and =."""
        na = NameAddr.parse('<sip:a@b> ; q = 0.33 ; expires=3600;+sip.instance="<urn:x>"')
        self.assertEqual(na.params["q"], "0.33")
        self.assertEqual(na.params["expires"], "3600")
        self.assertEqual(na.params["+sip.instance"], '"<urn:x>"')
        self.assertEqual(unquote(na.params["+sip.instance"]), "<urn:x>")

    def test_star(self):
        """Contact: * parses as star."""
        na = NameAddr.parse(" * ")
        self.assertTrue(na.star)
        self.assertIsNone(na.uri)
        self.assertEqual(str(na), "*")

    def test_other_schemes(self):
        """Any URI scheme inside <> (RFC 4475 unksm2)."""
        self.assertEqual(NameAddr.parse("<http://www.example.com>;tag=3").uri.scheme, "http")
        self.assertEqual(NameAddr.parse("isbn:2983792873").uri.opaque, "2983792873")
        self.assertEqual(NameAddr.parse("<tel:+1234>").uri.user, "+1234")

    def test_ipv6(self):
        """An IPv6 host inside <>."""
        na = NameAddr.parse("<sip:alice@[2001:db8::1]:5070;transport=UDP>;tag=x")
        self.assertEqual(na.uri.host, "[2001:db8::1]")
        self.assertEqual(na.uri.port, 5070)
        self.assertEqual(na.uri.transport, "udp")

    def test_errors(self):
        """Malformed values raise SIPParseError (RFC 4475 quotbal, baddn,
        regbadct, badaspec and similar)."""
        for text in ('"Mr. J. User <sip:j.user@example.com>',
                     "Bell, Alexander <sip:a.g.bell@bell-tel.com>",
                     "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
                     "< sip:t.watson@example.org >",
                     '"Quoted" sip:a@b', "<sip:a@b", "<sip:a@b> junk",
                     "<sip:a@b>;;", "", "sip:a@b,sip:c@d", "<sip:a@b:99999>",
                     "Name <sip:a@b> <sip:c@d>", "<<sip:a@b>>"):
            e = self.assertRaises(SIPParseError, NameAddr.parse, text)
            self.assertEqual(e.status, 400)

    def test_with_tag(self):
        """with_tag adds a tag, leaving the original alone."""
        na = NameAddr.parse("Bob <sip:bob@biloxi.com>")
        tagged = na.with_tag("a6c85cf")
        self.assertEqual(tagged.tag, "a6c85cf")
        self.assertIsNone(na.tag)
        self.assertEqual(str(tagged), "Bob <sip:bob@biloxi.com>;tag=a6c85cf")
        self.assertEqual(NameAddr.parse(str(tagged)).tag, "a6c85cf")

    def test_str_keeps_text(self):
        """An unchanged parsed value serialises as it was."""
        text = '"J" <sip:j@x.example>;tag=1;x="y z"'
        self.assertEqual(str(NameAddr.parse("  " + text + " ")), text)

    def test_replace(self):
        """replace() builds a new value."""
        na = NameAddr.parse("<sip:a@b>;tag=1")
        other = na.replace(display='"New"')
        self.assertEqual(str(other), '"New" <sip:a@b>;tag=1')

    def test_match_fast_path(self):
        """NameAddr.match accepts the common form and from_match gives what
        parse gives; uncommon forms are left to parse."""
        text = 'sipp <sip:sipp@127.0.1.1:5061>;tag=12345SIPpTag001'
        m = NameAddr.match(text)
        self.assertIsNotNone(m)
        a, b = NameAddr.from_match(m), NameAddr.parse(text)
        self.assertEqual((a.display, a.uri, a.params, str(a)),
                         (b.display, b.uri, b.params, str(b)))
        self.assertIsNone(NameAddr.match("sip:a@b;tag=1"))
        self.assertIsNone(NameAddr.match("<sip:a@b:99999>"))


class CSeqTests(SynchronousTestCase):
    """CSeq values."""

    def test_parse(self):
        """Number and method; a tuple too."""
        c = CSeq.parse("4711 INVITE")
        self.assertEqual(c.seq, 4711)
        self.assertEqual(c.method, "INVITE")
        self.assertEqual(c, (4711, "INVITE"))
        self.assertEqual(str(c), "4711 INVITE")

    def test_whitespace_and_zeros(self):
        """Leading zeros and extra whitespace (RFC 4475 wsinv)."""
        self.assertEqual(CSeq.parse("0009   INVITE"), (9, "INVITE"))
        self.assertEqual(CSeq.parse("  1 NEWMETHOD "), (1, "NEWMETHOD"))

    def test_limits(self):
        """The number must be below 2**31."""
        self.assertEqual(CSeq.parse("2147483647 ACK").seq, 2 ** 31 - 1)
        self.assertRaises(SIPParseError, CSeq.parse, "2147483648 ACK")
        self.assertRaises(SIPParseError, CSeq.parse, "36893488147419103232 REGISTER")

    def test_errors(self):
        """Malformed CSeq values."""
        for text in ("", "INVITE", "1", "x INVITE", "1 INV ITE", "-1 INVITE",
                     "1 INVITE;x", "\u0661 INVITE"):
            self.assertRaises(SIPParseError, CSeq.parse, text)


class ParamTests(SynchronousTestCase):
    """Generic parameters, quoting, lists, integers."""

    def test_parse_params(self):
        """Names lower-cased, flags None, quoted values kept quoted."""
        p = parse_params(';Tag=abc ; lr;x="a;b,c"')
        self.assertEqual(p, {"tag": "abc", "lr": None, "x": '"a;b,c"'})

    def test_parse_params_from_pos(self):
        """Parsing starts at pos."""
        self.assertEqual(parse_params("ignored;a=1", 7), {"a": "1"})
        self.assertEqual(parse_params("abc", 3), {})

    def test_parse_params_errors(self):
        """Garbage in parameters raises."""
        for text in (";", ";;", "x", ";a=", ";a=b c", ';a="unterminated', ";a b"):
            self.assertRaises(SIPParseError, parse_params, text)

    def test_fast_params_same_as_general(self):
        """The fast split and the general regex loop agree."""
        text = ";branch=z9hG4bK-1;rport;received=1.2.3.4;X=a=b"
        fast = parse_params(text)
        general = {}
        pos = 0
        while pos < len(text):
            m = hmod._PARAM_RE.match(text, pos)
            general[m.group(1).lower()] = m.group(2)
            pos = m.end()
        self.assertEqual(fast, general)

    def test_quote_unquote(self):
        """quote and unquote are inverse; unquote leaves tokens alone."""
        for s in ("plain", 'with "quotes"', "back\\slash", ""):
            self.assertEqual(unquote(quote(s)), s)
        self.assertEqual(unquote("token"), "token")
        self.assertEqual(unquote('"a\\"b"'), 'a"b')

    def test_split_list(self):
        """Commas inside quotes or <> do not split; spaces are stripped."""
        self.assertEqual(
            split_list('"Doe, J" <sip:a@b;x=1,2>;q=1 , <sip:c@d>,sip:e@f'),
            ['"Doe, J" <sip:a@b;x=1,2>;q=1', "<sip:c@d>", "sip:e@f"])
        self.assertEqual(split_list('"a\\",b" <sip:x>, <sip:y>'),
                         ['"a\\",b" <sip:x>', "<sip:y>"])
        self.assertEqual(split_list("a"), ["a"])

    def test_split_list_keeps_empty(self):
        """Empty elements are kept so that callers can reject them."""
        self.assertEqual(split_list("a,,b,"), ["a", "", "b", ""])

    def test_parse_int(self):
        """Decimal values, range checked, huge values never crash."""
        self.assertEqual(parse_int(" 0068 ", "Max-Forwards", 255), 68)
        self.assertRaises(SIPParseError, parse_int, "256", "Max-Forwards", 255)
        self.assertRaises(SIPParseError, parse_int, "-1", "Content-Length")
        self.assertRaises(SIPParseError, parse_int, "", "Content-Length")
        self.assertRaises(SIPParseError, parse_int, "\u0663", "Content-Length")
        self.assertRaises(SIPParseError, parse_int, "9" * 5000, "Max-Forwards", 255)
        self.assertGreater(parse_int("9" * 5000, "Expires"), 2 ** 32)
        self.assertEqual(parse_int("0" * 5000 + "7", "Expires"), 7)


_NA_PIECES = st.sampled_from([
    '"', "\\", "<", ">", " ", "\t", ";", "=", ",", "a", "B", "sip:", "@",
    "x.example", ":5060", ";tag=1", "tok", '"q q"', "%41", "*", "?", "[::1]"])


#: addr-specs as phones write them in Contact (no <>), and near misses.
_ADDR_SPECS = st.builds(
    lambda scheme, user, host, port, params: scheme + user + host + port + params,
    st.sampled_from(["sip:", "sips:", "SIP:", "tel:"]),
    st.sampled_from(["", "alice@", "a.b-c@", "u%41@", "u;x@", "u?x@", "u:pw@", "u,v@"]),
    st.sampled_from(["192.0.2.1", "x.example", "[2001:db8::1]", "h_", "-h", ""]),
    st.sampled_from(["", ":5060", ":65536", ":0", ":"]),
    st.sampled_from(["", ";expires=60", ";q=0.5;+sip.instance=\"<urn:x>\"", ";tag", " ;x=1",
                     ";x=1?y", ";transport=tcp,", ";=", ";x=\"q\""]))


class NameAddrFastPathTests(SynchronousTestCase):
    """The name-addr fast paths give what the general code gives."""

    def test_kept_match_builds_fresh_objects(self):
        """A value parsed again (its match kept) gives a NameAddr and URI of
        its own: changing one's parameters leaves the next one as parsed."""
        self.patch(hmod, "_name_addrs", {})
        text = "<sip:alice@192.0.2.10:5062;transport=udp>;expires=60"
        first = NameAddr.parse(text)
        self.assertIn(text, hmod._name_addrs)
        first.params["expires"] = "0"
        second = NameAddr.parse(text)
        self.assertIsNot(second, first)
        self.assertEqual(second.params, {"expires": "60"})
        self.assertEqual((second.uri.host, second.uri.port, second.uri.params),
                         ("192.0.2.10", 5062, {"transport": "udp"}))

    @settings(max_examples=400, deadline=None, derandomize=True, database=None)
    @given(st.one_of(st.lists(_NA_PIECES, max_size=14).map("".join), _ADDR_SPECS))
    def test_fast_equals_general(self, text):
        """With the fast regexes disabled, parse() gives the same result or
        the same rejection; so does a value whose match was kept."""
        def run():
            try:
                na = NameAddr.parse(text)
            except SIPParseError:
                return None
            return (na.display, na.uri and str(na.uri), na.uri and na.uri.params,
                    na.params, na.star, str(na))
        self.patch(hmod, "_name_addrs", {})
        fast = run()
        warm = run()
        saved = hmod._NAME_ADDR_SIP_RE, hmod._NAME_ADDR_FAST_RE, hmod._SIP_URI_RE
        never = hmod.re.compile(r"(?!)")
        hmod._NAME_ADDR_SIP_RE = hmod._NAME_ADDR_FAST_RE = hmod._SIP_URI_RE = never
        hmod._name_addrs.clear()
        try:
            general = run()
        finally:
            hmod._NAME_ADDR_SIP_RE, hmod._NAME_ADDR_FAST_RE, hmod._SIP_URI_RE = saved
        self.assertEqual(fast, general, text)
        self.assertEqual(warm, general, text)


#: Via values as UAs and proxies write them, and near misses of each.
_VIAS = st.builds(
    lambda proto, host, port, params: proto + host + port + params,
    st.sampled_from(["SIP/2.0/UDP ", "SIP/2.0/tcp ", "SIP/2.0/UDP  ", "SIP / 2.0/UDP ",
                     "SIP/3.0/UDP ", "SIP/2.0/U-P ", "SIP/2.0/UDP\t"]),
    st.sampled_from(["192.0.2.1", "H.example", "[2001:db8::1]", "h_", "", "[::1"]),
    st.sampled_from(["", ":5060", ":65536", ":0", ":", " :5060", ":123456"]),
    st.lists(st.sampled_from([
        ";branch=z9hG4bK-1", ";rport", ";rport=5062", ";BRANCH=z9hG4bKA", ";received=192.0.2.9",
        ";branch=", ";branch=a b", ';branch="q"', " ;rport", ";branch=x,y", ";", ";=",
        ";maddr=224.2.0.1", ";ttl=16"]), max_size=4).map("".join))


class ViaFastPathTests(SynchronousTestCase):
    """Via's fast path (the sent-by part cached, the usual branch and rport
    read by one pattern) gives what the general code gives."""

    @settings(max_examples=600, deadline=None, derandomize=True, database=None)
    @given(_VIAS)
    @example("SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK-1")
    @example("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1;rport")
    def test_fast_equals_general(self, text):
        """Parsed cold, parsed again with the sent-by part cached, and parsed
        with the fast patterns disabled: the same Via or the same rejection."""
        def run():
            try:
                v = Via.parse(text)
            except SIPParseError as e:
                return ("error", e.status)
            return (v.protocol, v.transport, v.host, v.port, list(v.params.items()),
                    str(v), v.sent_by, v.branch, v.has_rport, v.rport)
        self.patch(hmod, "_via_cache", {})
        cold = run()
        warm = run()
        never = hmod.re.compile(r"(?!)")
        self.patch(hmod, "_VIA_FAST_RE", never)
        self.patch(hmod, "_VIA_BRANCH_RE", never)
        hmod._via_cache.clear()
        general = run()
        self.assertEqual(cold, general, text)
        self.assertEqual(warm, general, text)

    def test_cache_bounded(self):
        """Every new sent-by part is kept until the cache is full, then the
        cache starts again: it never holds more than its size."""
        self.patch(hmod, "_via_cache", {})
        self.patch(hmod, "_CACHE_SIZE", 8)
        sizes = []
        for port in range(1, 21):
            via = Via.parse("SIP/2.0/UDP 192.0.2.1:%d;branch=z9hG4bK%d" % (port, port))
            self.assertEqual((via.port, via.branch), (port, "z9hG4bK%d" % port))
            sizes.append(len(hmod._via_cache))
        self.assertEqual(max(sizes), 8)
        self.assertEqual(sizes[:9], [1, 2, 3, 4, 5, 6, 7, 8, 1])

    def test_usual_vias_take_the_fast_path(self):
        """The test above would pass with patterns that never match: the
        usual values are read without the general pattern."""
        self.patch(hmod, "_VIA_RE", hmod.re.compile(r"(?!)"))
        for text, params in [
                ("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1;rport",
                 [("branch", "z9hG4bK-1"), ("rport", None)]),
                ("SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK-1",
                 [("rport", None), ("branch", "z9hG4bK-1")]),
                ("SIP/2.0/TCP [2001:db8::1];branch=z9hG4bK-2", [("branch", "z9hG4bK-2")]),
                ("SIP/2.0/UDP h.example;received=192.0.2.9;branch=z9hG4bK-3",
                 [("received", "192.0.2.9"), ("branch", "z9hG4bK-3")])]:
            self.assertEqual(list(Via.parse(text).params.items()), params, text)


def _backtracking(pattern):
    """A fast path's pattern with its possessive runs (C{++}, C{*+}, C{}+})
    made ordinary greedy ones again: the reference the possessive version must
    agree with."""
    plain = re.sub(r"(?<=[+*}])\+", "", pattern.pattern)
    assert plain != pattern.pattern, "no possessive run in " + pattern.pattern
    return re.compile(plain, pattern.flags)


#: pieces of Via values, name-addrs and URIs, and near misses of each.
_FAST_PIECES = st.sampled_from([
    "SIP/2.0/UDP ", "SIP/2.0/TCP ", "sip:", "sips:", "alice", "a-", "b_", "@", ":",
    "5060", "65536", "[2001:db8::1]", "192.0.2.1", "x.example", ";", "=", "branch",
    "tag=1", "lr", ";transport=udp", '"', "\\", '"A B"', "<", ">", " ", "\t", ",", "?",
    "&", "%41", "-", "_", ".", "pw"])


class PossessiveFastPathTests(SynchronousTestCase):
    """The fast paths' possessive patterns match exactly what the same
    patterns with backtracking runs match, with the same groups."""

    PATTERNS = ("_VIA_FAST_RE", "_VIA_BRANCH_RE", "_NAME_ADDR_SIP_RE", "_NAME_ADDR_FAST_RE",
                "_PARAMS_FAST_RE", "_SIP_URI_RE")

    @settings(max_examples=600, deadline=None, derandomize=True, database=None)
    @given(st.lists(_FAST_PIECES, max_size=16).map("".join))
    def test_same_as_backtracking(self, text):
        for name in self.PATTERNS:
            fast = getattr(hmod, name)
            plain = _backtracking(fast)
            for candidate in (text, "SIP/2.0/UDP " + text, "<sip:" + text,
                              "sip:" + text, ";" + text):
                m, r = fast.match(candidate), plain.match(candidate)
                self.assertEqual(m and m.groups(), r and r.groups(), (name, candidate))

    def test_samples_match(self):
        """The usual values take the fast path at all (the test above would
        pass with patterns that never match)."""
        for name, text in [
                ("_VIA_FAST_RE", "SIP/2.0/UDP 192.0.2.1:5060"),
                ("_VIA_FAST_RE", "SIP/2.0/tcp [2001:db8::1]"),
                ("_VIA_BRANCH_RE", ";branch=z9hG4bK-1;rport"),
                ("_VIA_BRANCH_RE", ";rport;branch=z9hG4bK-1"),
                ("_VIA_BRANCH_RE", ";branch=z9hG4bK-1"),
                ("_NAME_ADDR_SIP_RE", '"A B" <sip:alice@x.example:5060;lr>;tag=1'),
                ("_NAME_ADDR_SIP_RE", "sipp <sip:sipp@127.0.0.1:5061>;tag=7SIPpTag001"),
                ("_NAME_ADDR_FAST_RE", "<tel:+1-555>;tag=2"),
                ("_PARAMS_FAST_RE", ";branch=z9hG4bK-1;rport"),
                ("_SIP_URI_RE", "sip:127.0.0.1:5060;transport=udp;lr")]:
            self.assertIsNotNone(getattr(hmod, name).match(text), (name, text))
