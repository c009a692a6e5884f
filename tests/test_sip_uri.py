"""
Tests for L{rvoip_twisted.sip.uri}: SIP, SIPS, tel and opaque URIs.
"""

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.sip import uri as urimod
from rvoip_twisted.sip.errors import SIPParseError
from rvoip_twisted.sip.uri import URI, parse_uri, unescape


class SIPURITests(SynchronousTestCase):
    """sip: and sips: URIs."""

    def test_basic(self):
        """User, host, port and parameters of a sip URI are split out."""
        u = parse_uri("sip:alice@atlanta.example.com:5070;transport=tcp;lr")
        self.assertEqual(u.scheme, "sip")
        self.assertEqual(u.user, "alice")
        self.assertIsNone(u.password)
        self.assertEqual(u.host, "atlanta.example.com")
        self.assertEqual(u.port, 5070)
        self.assertEqual(u.params, {"transport": "tcp", "lr": None})
        self.assertIsNone(u.headers)
        self.assertIsNone(u.opaque)
        self.assertTrue(u.is_sip)

    def test_host_only(self):
        """A URI without user part has C{user=None} and no port by default."""
        u = parse_uri("sip:example.com")
        self.assertIsNone(u.user)
        self.assertEqual(u.host, "example.com")
        self.assertIsNone(u.port)
        self.assertEqual(u.hostport(5060), ("example.com", 5060))

    def test_sips(self):
        """The sips scheme is recognised as a SIP URI."""
        u = parse_uri("sips:bob@biloxi.example.com")
        self.assertEqual(u.scheme, "sips")
        self.assertTrue(u.is_sip)
        self.assertEqual(u.user, "bob")

    def test_scheme_case(self):
        """The scheme is case-insensitive and normalised to lower case; the
        text is kept."""
        u = parse_uri("SIP:Bob@Example.COM")
        self.assertEqual(u.scheme, "sip")
        self.assertEqual(u.user, "Bob")
        self.assertEqual(u.host, "Example.COM")
        self.assertEqual(str(u), "SIP:Bob@Example.COM")

    def test_password(self):
        """user:password@host splits the password out."""
        u = parse_uri("sip:alice:secretword@atlanta.com;transport=tcp")
        self.assertEqual(u.user, "alice")
        self.assertEqual(u.password, "secretword")
        self.assertEqual(u.host, "atlanta.com")

    def test_empty_password(self):
        """user:@host has an empty password, not none."""
        u = parse_uri("sip:alice:@atlanta.com")
        self.assertEqual(u.password, "")

    def test_ipv4(self):
        """An IPv4 host and port."""
        u = parse_uri("sip:192.0.2.4:5061")
        self.assertEqual(u.host, "192.0.2.4")
        self.assertEqual(u.port, 5061)

    def test_ipv6_reference_with_port(self):
        """An IPv6 reference keeps its brackets in C{host}; hostport() strips
        them."""
        u = parse_uri("sip:alice@[2001:db8::1]:5070;transport=udp")
        self.assertEqual(u.host, "[2001:db8::1]")
        self.assertEqual(u.port, 5070)
        self.assertEqual(u.hostport(), ("2001:db8::1", 5070))
        self.assertEqual(u.transport, "udp")

    def test_ipv6_reference_without_port(self):
        """An IPv6 reference without a port."""
        u = parse_uri("sip:[2001:db8::10]")
        self.assertEqual(u.host, "[2001:db8::10]")
        self.assertIsNone(u.port)

    def test_ipv6_errors(self):
        """Unterminated or malformed IPv6 references are rejected."""
        for text in ("sip:[2001:db8::1", "sip:[2001:db8::1]x",
                     "sip:[2001:zz8::1]", "sip:[2001:db8::1]:"):
            self.assertRaises(SIPParseError, parse_uri, text)

    def test_param_names_case_insensitive(self):
        """Parameter names are lower-cased; values keep their case; the
        transport property lower-cases the value (a Contact with
        transport=UDP)."""
        u = parse_uri("sip:alice@host.example.com;Transport=UDP;MAddr=X.example")
        self.assertEqual(u.params["transport"], "UDP")
        self.assertEqual(u.transport, "udp")
        self.assertEqual(u.params["maddr"], "X.example")

    def test_no_transport(self):
        """transport is None when the parameter is absent."""
        self.assertIsNone(parse_uri("sip:a@b").transport)

    def test_flag_param(self):
        """A parameter without a value maps to None."""
        u = parse_uri("sip:proxy.example.com;lr")
        self.assertIn("lr", u.params)
        self.assertIsNone(u.params["lr"])

    def test_headers(self):
        """The text after ? is kept raw in C{headers}."""
        u = parse_uri("sip:alice@atlanta.com?subject=project%20x&priority=urgent")
        self.assertEqual(u.headers, "subject=project%20x&priority=urgent")
        self.assertEqual(u.host, "atlanta.com")
        self.assertEqual(u.params, {})

    def test_params_and_headers(self):
        """Parameters come before headers."""
        u = parse_uri("sip:a@b.example;method=INVITE?Route=%3Csip:c%3E")
        self.assertEqual(u.params, {"method": "INVITE"})
        self.assertEqual(u.headers, "Route=%3Csip:c%3E")

    def test_escaped_user(self):
        """Escapes stay in the fields; unescape() decodes them."""
        u = parse_uri("sip:%61lice%20b@atlanta.com")
        self.assertEqual(u.user, "%61lice%20b")
        self.assertEqual(unescape(u.user), "alice b")

    def test_escaped_param_name(self):
        """An escaped parameter name is decoded when it is a plain name
        (RFC 4475 esc01: %6C%72 is lr)."""
        u = parse_uri("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
        self.assertIn("lr", u.params)
        self.assertIn("name", u.params)
        self.assertEqual(u.params["name"], "v%61lue%25%34%31")
        self.assertEqual(unescape(u.params["name"]), "value%41")

    def test_user_with_reserved(self):
        """The user part may hold ; ? / & = + $ , (user-unreserved)."""
        u = parse_uri("sip:user;par=u%40example.net@example.com")
        self.assertEqual(u.user, "user;par=u%40example.net")
        self.assertEqual(u.host, "example.com")
        self.assertEqual(u.params, {})

    def test_round_trip_text(self):
        """str() of a parsed URI is the exact text parsed."""
        for text in ("sip:alice@atlanta.com;Transport=UDP",
                     "sips:%61@[2001:db8::1]:5061;lr?h=v",
                     "tel:+1-201-555-0123;phone-context=example.com",
                     "urn:service:sos"):
            self.assertEqual(str(parse_uri(text)), text)

    def test_errors(self):
        """Malformed URIs raise SIPParseError with status 400."""
        for text in ("", "alice@example.com", ":foo", "1sip:a@b",
                     "sip:", "sip:@example.com", "sip:a@", "sip:a@b:",
                     "sip:a@b:70000", "sip:a@b:12x", "sip:a@b;;x",
                     "sip:a@b;=x", "sip:a@-b.example.com", "sip:a@b?",
                     "sip:a b@c", "sip:a@b\t", "sip:a\x00@b", "sip:\u00e9@b",
                     "sip:a%zz@b", "sip:a@b;x=%4", "sip:a@b c", "tel:",
                     "foo:", "sip:a@b:123456"):
            e = self.assertRaises(SIPParseError, parse_uri, text)
            self.assertEqual(e.status, 400, text)


class OtherSchemeTests(SynchronousTestCase):
    """tel URIs and unknown schemes."""

    def test_tel(self):
        """tel: the number is C{user}, no host, parameters parsed."""
        u = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
        self.assertEqual(u.scheme, "tel")
        self.assertEqual(u.user, "+1-201-555-0123")
        self.assertIsNone(u.host)
        self.assertEqual(u.params, {"phone-context": "example.com"})
        self.assertFalse(u.is_sip)

    def test_unknown_scheme_opaque(self):
        """An unknown scheme is kept with its opaque part; no error."""
        u = parse_uri("nobodyKnowsThisScheme:totallyopaquecontent")
        self.assertEqual(u.scheme, "nobodyknowsthisscheme")
        self.assertEqual(u.opaque, "totallyopaquecontent")
        self.assertIsNone(u.host)
        self.assertFalse(u.is_sip)
        self.assertEqual(str(u), "nobodyKnowsThisScheme:totallyopaquecontent")

    def test_novel_scheme_chars(self):
        """Schemes may hold + - . (RFC 4475 novelsc)."""
        u = parse_uri("soap.beep://192.0.2.103:3002")
        self.assertEqual(u.scheme, "soap.beep")
        self.assertEqual(u.opaque, "//192.0.2.103:3002")

    def test_opaque_equality(self):
        """Opaque URIs compare by scheme and text."""
        self.assertEqual(parse_uri("http://x.example/a"),
                         parse_uri("HTTP://x.example/a"))
        self.assertNotEqual(parse_uri("http://x.example/a"),
                            parse_uri("http://x.example/b"))


class EqualityTests(SynchronousTestCase):
    """URI comparison, RFC 3261 section 19.1.4 (its examples)."""

    EQUAL = [
        ("sip:%61lice@atlanta.com;transport=TCP",
         "sip:alice@AtLanTa.CoM;Transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
        ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
        ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
         "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
        ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
         "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
        ("tel:+1-201-555-0123", "tel:+1.201.555.0123"),
    ]

    NOT_EQUAL = [
        ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
        ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
        ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
        ("sip:bob@biloxi.com", "sips:bob@biloxi.com"),
        ("sip:alice:pw1@atlanta.com", "sip:alice:pw2@atlanta.com"),
        ("sip:alice@atlanta.com;maddr=a.example", "sip:alice@atlanta.com"),
    ]

    def test_equal(self):
        """The RFC's equivalent URIs compare equal and hash alike."""
        for a, b in self.EQUAL:
            ua, ub = parse_uri(a), parse_uri(b)
            self.assertEqual(ua, ub, (a, b))
            self.assertEqual(ub, ua, (b, a))
            self.assertEqual(hash(ua), hash(ub), (a, b))
            self.assertFalse(ua != ub)

    def test_not_equal(self):
        """The RFC's non-equivalent URIs compare unequal."""
        for a, b in self.NOT_EQUAL:
            self.assertNotEqual(parse_uri(a), parse_uri(b), (a, b))
            self.assertNotEqual(parse_uri(b), parse_uri(a), (b, a))

    def test_other_types(self):
        """A URI is not equal to a string."""
        self.assertNotEqual(parse_uri("sip:a@b"), "sip:a@b")

    def test_dict_key(self):
        """Equal URIs find each other in a dict."""
        d = {parse_uri("sip:alice@atlanta.com"): 1}
        self.assertEqual(d[parse_uri("sip:%61lice@ATLANTA.com")], 1)


class BuildTests(SynchronousTestCase):
    """Constructing and changing URIs."""

    def test_format(self):
        """A constructed URI serialises its fields."""
        u = URI("sip", user="bob", host="example.com", port=5060,
                params={"transport": "tcp", "lr": None})
        self.assertEqual(str(u), "sip:bob@example.com:5060;transport=tcp;lr")
        self.assertEqual(parse_uri(str(u)), u)

    def test_format_password_and_headers(self):
        """Password and headers are serialised."""
        u = URI("sips", user="a", password="b", host="h", headers="x=y")
        self.assertEqual(str(u), "sips:a:b@h?x=y")

    def test_format_opaque(self):
        """An opaque URI serialises as scheme:opaque."""
        self.assertEqual(str(URI("urn", opaque="service:sos")), "urn:service:sos")

    def test_replace(self):
        """replace() returns a changed copy; the original is untouched."""
        u = parse_uri("sip:alice@atlanta.com:5060;transport=udp")
        v = u.replace(host="192.0.2.1", port=None)
        self.assertEqual(str(v), "sip:alice@192.0.2.1;transport=udp")
        v.params["lr"] = None
        self.assertNotIn("lr", u.params)
        self.assertEqual(str(u), "sip:alice@atlanta.com:5060;transport=udp")

    def test_repr(self):
        """repr shows the URI."""
        self.assertIn("sip:a@b", repr(parse_uri("sip:a@b")))


class UnescapeTests(SynchronousTestCase):
    """unescape()."""

    def test_none(self):
        """None and text without % come back unchanged."""
        self.assertIsNone(unescape(None))
        self.assertEqual(unescape("abc"), "abc")

    def test_decode(self):
        """%HH escapes decode, including NUL and UTF-8 sequences."""
        self.assertEqual(unescape("null-%00-null"), "null-\x00-null")
        self.assertEqual(unescape("%C3%A9t%C3%A9"), "\u00e9t\u00e9")

    def test_invalid_utf8(self):
        """Escapes that are not UTF-8 survive as surrogate escapes."""
        self.assertEqual(unescape("%FF").encode("utf-8", "surrogateescape"), b"\xff")


_URI_CHARS = st.sampled_from(list(
    "abcAB019-_.!~*'()&=+$,;?/:@[]%<>\" \t") + ["%41", "%4", "sip:", "sips:",
                                               "[2001:db8::1]", ":5060", ";lr"])


class FastPathTests(SynchronousTestCase):
    """The fast path of parse_uri gives what the general parser gives."""

    @settings(max_examples=400, deadline=None, derandomize=True, database=None)
    @given(st.lists(_URI_CHARS, max_size=12).map("".join))
    def test_fast_equals_general(self, tail):
        """For any sip: text, the fast regex path and the general path
        agree: same fields, or both reject."""
        for text in ("sip:" + tail, "sips:" + tail):
            try:
                fast = parse_uri(text)
            except SIPParseError:
                fast = None
            try:
                slow = urimod._parse_sip(text[:text.index(":")], text[text.index(":") + 1:], text)
                if urimod._BAD_CHAR_RE.search(text):
                    slow = None
            except SIPParseError:
                slow = None
            if fast is None or slow is None:
                self.assertIs(fast, slow, text)
            else:
                for field in ("scheme", "user", "password", "host", "port",
                              "params", "headers", "opaque"):
                    self.assertEqual(getattr(fast, field), getattr(slow, field),
                                     (text, field))
