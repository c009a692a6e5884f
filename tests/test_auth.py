"""
Tests for L{rvoip_twisted.sip.auth}.
"""

import hashlib
import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.sip.auth import (
    ClientAuth, DigestError, DigestServer, build_authorization,
    canonical_algorithm, digest_response, load_users, parse_challenge,
    parse_credentials,
)
from rvoip_twisted.sip.parser import parse_message

# RFC 7616 section 3.9.1
RFC_CHALLENGE = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", '
    'algorithm=%s, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
RFC_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def md5(text):
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def parse(text, body=b""):
    head = text.strip("\n").replace("\n", "\r\n") + "\r\n\r\n"
    return parse_message(head.encode("utf-8") + body)


def register(cseq=1, uri="sip:biloxi.com", method="REGISTER"):
    return parse("""
{method} {uri} SIP/2.0
Via: SIP/2.0/UDP bobspc.biloxi.com:5060;branch=z9hG4bKnashds{cseq}
Max-Forwards: 70
To: Bob <sip:bob@biloxi.com>
From: Bob <sip:bob@biloxi.com>;tag=456248
Call-ID: 843817637684230@998sdasdh09
CSeq: {cseq} {method}
Contact: <sip:bob@192.0.2.4>
""".format(cseq=cseq, uri=uri, method=method))


class Clock:
    """A settable clock."""

    def __init__(self, now=1000000.0):
        self.now = now

    def __call__(self):
        return self.now


def server(users=None, **kw):
    kw.setdefault("clock", Clock())
    kw.setdefault("secret", b"test secret")
    return DigestServer("biloxi.com", users if users is not None else {"bob": "zanzibar"}, **kw)


def answered(srv, client, request, status=401, algorithm="MD5", retry_cseq=None, stale=False):
    """
    The challenge round: C{srv} challenges C{request}, C{client} answers,
    returns the resent request carrying the credentials (or C{None}).
    """
    name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    response = request.response(status, headers=[(name, srv.challenge(stale, algorithm))])
    answer = client.authorize(request, response)
    if answer is None:
        return None
    again = register(retry_cseq or request.cseq.seq + 1, str(request.uri), request.method)
    again.add(*answer)
    return again


class RFCExampleTests(SynchronousTestCase):
    """
    The worked examples of RFC 7616 and RFC 2617, reproduced exactly.
    """

    def test_rfc7616MD5(self):
        """RFC 7616 3.9.1, MD5: response 8ca523f5e9506fed4657c9700eebdbec."""
        value = build_authorization(
            parse_challenge(RFC_CHALLENGE % "MD5"), "GET", "/dir/index.html",
            "Mufasa", "Circle of Life", nc=1, cnonce=RFC_CNONCE)
        creds = parse_credentials(value)
        self.assertEqual(creds["response"], "8ca523f5e9506fed4657c9700eebdbec")
        self.assertEqual(creds["qop"], "auth")
        self.assertEqual(creds["nc"], "00000001")
        self.assertEqual(creds["cnonce"], RFC_CNONCE)
        self.assertEqual(creds["opaque"], "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        self.assertEqual(creds["algorithm"], "MD5")
        self.assertEqual(creds["uri"], "/dir/index.html")
        self.assertEqual(creds["username"], "Mufasa")

    def test_rfc7616SHA256(self):
        """RFC 7616 3.9.1, SHA-256: response 753927fa...b6c1."""
        value = build_authorization(
            RFC_CHALLENGE % "SHA-256", "GET", "/dir/index.html",
            "Mufasa", "Circle of Life", nc=1, cnonce=RFC_CNONCE)
        creds = parse_credentials(value)
        self.assertEqual(
            creds["response"],
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")
        self.assertEqual(creds["algorithm"], "SHA-256")

    def test_rfc2617(self):
        """RFC 2617 3.5: response 6629fae49393a05397450978507c4ef1."""
        self.assertEqual(digest_response(
            "MD5", "Mufasa", "testrealm@host.com", "Circle Of Life", "GET",
            "/dir/index.html", "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "00000001", "0a4f113b", "auth"), "6629fae49393a05397450978507c4ef1")

    def test_precomputedHA1(self):
        """A precomputed HA1 gives the same response as the password."""
        ha1 = md5("Mufasa:http-auth@example.org:Circle of Life")
        self.assertEqual(digest_response(
            "MD5", "Mufasa", "http-auth@example.org", None, "GET", "/dir/index.html",
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "00000001", RFC_CNONCE,
            "auth", ha1=ha1), "8ca523f5e9506fed4657c9700eebdbec")


class ParseTests(SynchronousTestCase):
    """
    L{parse_challenge} and L{parse_credentials}.
    """

    def test_challenge(self):
        """Parameters are unquoted, qop a list, stale a bool, scheme Digest."""
        c = parse_challenge(RFC_CHALLENGE % "SHA-256")
        self.assertEqual(c["scheme"], "Digest")
        self.assertEqual(c["realm"], "http-auth@example.org")
        self.assertEqual(c["nonce"], "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v")
        self.assertEqual(c["opaque"], "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        self.assertEqual(c["qop"], ["auth", "auth-int"])
        self.assertEqual(c["algorithm"], "SHA-256")
        self.assertIs(c["stale"], False)

    def test_challengeDefaults(self):
        """Without algorithm it is MD5; without qop, an empty list; case is ignored."""
        c = parse_challenge('digest REALM="a",nonce=b,stale=TRUE')
        self.assertEqual(c["algorithm"], "MD5")
        self.assertEqual(c["qop"], [])
        self.assertIs(c["stale"], True)
        self.assertEqual(c["realm"], "a")
        self.assertEqual(c["nonce"], "b")

    def test_quotedPairs(self):
        """Quoted-pairs are unescaped; commas inside quotes do not split."""
        c = parse_challenge(r'Digest realm="a \"b\", c", nonce="x,y"')
        self.assertEqual(c["realm"], 'a "b", c')
        self.assertEqual(c["nonce"], "x,y")

    def test_badChallenges(self):
        """
        A Basic challenge, a missing nonce or realm, a repeated parameter
        and garbage raise L{DigestError}, a 400.
        """
        for value in ('Basic realm="a"', 'Digest realm="a"', 'Digest nonce="a"',
                      'Digest realm="a", realm="b", nonce=c', 'Digest realm="a, nonce=b',
                      "", "Digest", 'Digest realm="a" nonce="b"'):
            exc = self.assertRaises(DigestError, parse_challenge, value)
            self.assertEqual(exc.status, 400)
            self.assertIsInstance(exc, ValueError)

    def test_credentials(self):
        """Credentials parse; every required parameter must be there."""
        value = ('Digest username="bob", realm="biloxi.com", nonce="n", '
                 'uri="sip:biloxi.com", response="abc", qop=auth, nc=00000002, cnonce="c"')
        c = parse_credentials(value)
        self.assertEqual((c["username"], c["uri"], c["qop"], c["nc"], c["algorithm"]),
                         ("bob", "sip:biloxi.com", "auth", "00000002", "MD5"))
        for name in ("username", "realm", "nonce", "uri", "response"):
            without = ", ".join(p for p in value[7:].split(", ") if not p.startswith(name + "="))
            self.assertRaises(DigestError, parse_credentials, "Digest " + without)

    def test_algorithmNames(self):
        """Algorithm names match case-insensitively; unknown ones are C{None}."""
        self.assertEqual(canonical_algorithm("sha-256-SESS"), "SHA-256-sess")
        self.assertEqual(canonical_algorithm(None), "MD5")
        self.assertIsNone(canonical_algorithm("SHA-1"))


class BuildTests(SynchronousTestCase):
    """
    L{build_authorization} beyond the RFC examples.
    """

    def test_rfc2069(self):
        """
        Without qop: no nc, cnonce or qop, and the response is
        H(HA1:nonce:HA2).
        """
        value = build_authorization('Digest realm="r", nonce="n"', "INVITE",
                                    "sip:bob@biloxi.com", "alice", "pw")
        c = parse_credentials(value)
        for name in ("nc", "cnonce", "qop", "opaque"):
            self.assertNotIn(name, c)
        ha1 = md5("alice:r:pw")
        ha2 = md5("INVITE:sip:bob@biloxi.com")
        self.assertEqual(c["response"], md5("%s:n:%s" % (ha1, ha2)))

    def test_authInt(self):
        """With only auth-int offered the body is in the hash."""
        challenge = 'Digest realm="r", nonce="n", qop="auth-int"'
        value = build_authorization(challenge, "MESSAGE", "sip:b@r", "a", "pw",
                                    cnonce="c", body=b"hello")
        c = parse_credentials(value)
        self.assertEqual(c["qop"], "auth-int")
        ha2 = md5("MESSAGE:sip:b@r:" + md5("hello"))
        self.assertEqual(c["response"], md5("%s:n:00000001:c:auth-int:%s" % (md5("a:r:pw"), ha2)))
        other = build_authorization(challenge, "MESSAGE", "sip:b@r", "a", "pw",
                                    cnonce="c", body=b"hellO")
        self.assertNotEqual(parse_credentials(other)["response"], c["response"])

    def test_sess(self):
        """MD5-sess hashes HA1 with the nonce and cnonce."""
        value = build_authorization('Digest realm="r", nonce="n", qop="auth", algorithm=MD5-sess',
                                    "BYE", "sip:b@r", "a", "pw", nc=3, cnonce="c")
        c = parse_credentials(value)
        self.assertEqual(c["algorithm"], "MD5-sess")
        self.assertEqual(c["nc"], "00000003")
        ha1 = md5("%s:n:c" % (md5("a:r:pw"),))
        self.assertEqual(c["response"], md5("%s:n:00000003:c:auth:%s" % (ha1, md5("BYE:sip:b@r"))))

    def test_randomCnonce(self):
        """Without a given cnonce each answer has a new one."""
        challenge = 'Digest realm="r", nonce="n", qop="auth"'
        a = parse_credentials(build_authorization(challenge, "BYE", "sip:b@r", "a", "pw"))
        b = parse_credentials(build_authorization(challenge, "BYE", "sip:b@r", "a", "pw"))
        self.assertNotEqual(a["cnonce"], b["cnonce"])
        self.assertGreaterEqual(len(a["cnonce"]), 16)

    def test_unsupported(self):
        """An unknown algorithm or qop raises L{DigestError}."""
        for challenge in ('Digest realm="r", nonce="n", algorithm=SHA-1',
                          'Digest realm="r", nonce="n", qop="auth-conf"'):
            self.assertRaises(DigestError, build_authorization,
                              challenge, "BYE", "sip:b@r", "a", "p")

    def test_quoting(self):
        """A user name with a quote is escaped and parses back."""
        value = build_authorization('Digest realm="r", nonce="n"', "BYE", "sip:b@r", 'a"b', "p")
        self.assertEqual(parse_credentials(value)["username"], 'a"b')


class ClientAuthTests(SynchronousTestCase):
    """
    L{ClientAuth}: answering SIP challenges.
    """

    def test_401(self):
        """A 401's WWW-Authenticate is answered with Authorization."""
        request = register()
        response = request.response(401, headers=[
            ("WWW-Authenticate", 'Digest realm="biloxi.com", nonce="n1", qop="auth"')])
        name, value = ClientAuth("bob", "zanzibar").authorize(request, response)
        self.assertEqual(name, "Authorization")
        self.assertEqual(parse_credentials(value)["realm"], "biloxi.com")

    def test_407(self):
        """A 407's Proxy-Authenticate is answered with Proxy-Authorization."""
        request = register(method="INVITE", uri="sip:alice@atlanta.com")
        response = request.response(407, headers=[
            ("Proxy-Authenticate", 'Digest realm="atlanta.com", nonce="n1", qop="auth"')])
        name, value = ClientAuth("bob", "zanzibar").authorize(request, response)
        self.assertEqual(name, "Proxy-Authorization")
        self.assertEqual(parse_credentials(value)["realm"], "atlanta.com")

    def test_notChallenge(self):
        """
        Other responses, a 401 without a challenge, or with an unusable
        one, get no answer.
        """
        client = ClientAuth("bob", "zanzibar")
        request = register()
        challenge = ("WWW-Authenticate", 'Digest realm="r", nonce="n"')
        self.assertIsNone(client.authorize(request, request.response(403, headers=[challenge])))
        self.assertIsNone(client.authorize(request, request.response(401)))
        for value in ('Basic realm="r"', 'Digest realm="r", nonce="n", algorithm=SHA-1',
                      'Digest realm="r", nonce="n", qop="auth-conf"', 'Digest ='):
            self.assertIsNone(client.authorize(request, request.response(
                401, headers=[("WWW-Authenticate", value)])), value)
        self.assertIsNone(client.authorize(request, request.response(407, headers=[challenge])))

    def test_methodAndRequestUri(self):
        """
        The hash covers the SIP method and the Request-URI, which is the
        C{uri} parameter.
        """
        request = register(method="INVITE", uri="sip:alice@atlanta.com;transport=tcp")
        response = request.response(407, headers=[
            ("Proxy-Authenticate", 'Digest realm="r", nonce="n", qop="auth"')])
        _, value = ClientAuth("bob", "pw").authorize(request, response)
        c = parse_credentials(value)
        self.assertEqual(c["uri"], "sip:alice@atlanta.com;transport=tcp")
        ha2 = md5("INVITE:sip:alice@atlanta.com;transport=tcp")
        self.assertEqual(c["response"], md5("%s:n:00000001:%s:auth:%s" % (
            md5("bob:r:pw"), c["cnonce"], ha2)))

    def test_noLoop(self):
        """
        A request that already carried our credentials for the realm,
        challenged again without C{stale}, is not answered again (wrong
        password); with C{stale=true} it is.
        """
        client = ClientAuth("bob", "wrong")
        srv = server()
        again = answered(srv, client, register())
        self.assertEqual(srv.check(again)[0], "bad")
        self.assertIsNone(answered(srv, client, again))
        third = answered(srv, client, again, stale=True)
        self.assertIsNotNone(third)

    def test_otherUserDoesNotBlock(self):
        """Credentials of another user in the request do not count as ours."""
        request = register()
        request.add("Authorization", build_authorization(
            'Digest realm="biloxi.com", nonce="n"', "REGISTER", "sip:biloxi.com", "carol", "x"))
        self.assertIsNotNone(answered(server(), ClientAuth("bob", "zanzibar"), request))

    def test_strongestAlgorithm(self):
        """Offered SHA-256 and MD5 for one realm, the client answers SHA-256."""
        request = register()
        response = request.response(401, headers=[
            ("WWW-Authenticate", 'Digest realm="r", nonce="m", algorithm=MD5, qop="auth"'),
            ("WWW-Authenticate", 'Digest realm="r", nonce="s", algorithm=SHA-256, qop="auth"')])
        _, value = ClientAuth("bob", "pw").authorize(request, response)
        c = parse_credentials(value)
        self.assertEqual((c["algorithm"], c["nonce"]), ("SHA-256", "s"))

    def test_severalRealms(self):
        """L{ClientAuth.authorize_all} answers each realm of a 407."""
        request = register(method="INVITE", uri="sip:alice@atlanta.com")
        response = request.response(407, headers=[
            ("Proxy-Authenticate", 'Digest realm="one", nonce="a", qop="auth"'),
            ("Proxy-Authenticate", 'Digest realm="two", nonce="b", qop="auth"')])
        answers = ClientAuth("bob", "pw").authorize_all(request, response)
        self.assertEqual([(n, parse_credentials(v)["realm"]) for n, v in answers],
                         [("Proxy-Authorization", "one"), ("Proxy-Authorization", "two")])

    def test_nonceCount(self):
        """
        Reusing a realm's nonce pre-emptively counts up; a new nonce starts
        again at 1.
        """
        client = ClientAuth("bob", "zanzibar")
        srv = server()
        again = answered(srv, client, register())
        self.assertEqual(parse_credentials(again.get("Authorization"))["nc"], "00000001")
        self.assertEqual(srv.check(again), ("ok", "bob"))
        refresh = register(10)
        [(name, value)] = client.credentials_for(refresh)
        self.assertEqual(name, "Authorization")
        self.assertEqual(parse_credentials(value)["nc"], "00000002")
        refresh.add(name, value)
        self.assertEqual(srv.check(refresh), ("ok", "bob"))
        fresh = answered(srv, client, register(20))
        self.assertEqual(parse_credentials(fresh.get("Authorization"))["nc"], "00000001")

    def test_reprHidesPassword(self):
        """The password appears in no repr."""
        client = ClientAuth("bob", "s3cret-pw")
        self.assertNotIn("s3cret-pw", repr(client))
        self.assertNotIn("s3cret-pw", repr(server({"bob": "s3cret-pw"})))


class DigestServerTests(SynchronousTestCase):
    """
    L{DigestServer}: challenges and checks.
    """

    def test_challenge(self):
        """
        A challenge carries the realm, a 44-character nonce, an opaque,
        the algorithm and qop=auth; stale only when asked.
        """
        c = parse_challenge(server().challenge())
        self.assertEqual(c["realm"], "biloxi.com")
        self.assertEqual(len(c["nonce"]), 44)
        self.assertEqual(c["qop"], ["auth"])
        self.assertEqual(c["algorithm"], "MD5")
        self.assertTrue(c["opaque"])
        self.assertIs(c["stale"], False)
        c = parse_challenge(server().challenge(stale=True, algorithm="sha-256"))
        self.assertIs(c["stale"], True)
        self.assertEqual(c["algorithm"], "SHA-256")
        self.assertRaises(ValueError, server().challenge, algorithm="SHA-1")

    def test_noncesDiffer(self):
        """Two challenges in the same second have different nonces."""
        srv = server()
        self.assertNotEqual(parse_challenge(srv.challenge())["nonce"],
                            parse_challenge(srv.challenge())["nonce"])

    def test_challenges(self):
        """L{DigestServer.challenges} offers SHA-256 then MD5."""
        values = server().challenges()
        self.assertEqual([parse_challenge(v)["algorithm"] for v in values], ["SHA-256", "MD5"])

    def test_roundTripMD5(self):
        """A client with the right password passes: C{("ok", user)}."""
        srv = server()
        self.assertEqual(srv.check(register()), ("missing", None))
        again = answered(srv, ClientAuth("bob", "zanzibar"), register())
        self.assertEqual(srv.check(again), ("ok", "bob"))

    def test_roundTripSHA256(self):
        """The same with SHA-256, chosen by the client among both challenges."""
        srv = server()
        request = register()
        response = request.response(401, headers=[
            ("WWW-Authenticate", v) for v in srv.challenges()])
        name, value = ClientAuth("bob", "zanzibar").authorize(request, response)
        self.assertEqual(parse_credentials(value)["algorithm"], "SHA-256")
        again = register(2)
        again.add(name, value)
        self.assertEqual(srv.check(again), ("ok", "bob"))

    def test_sessAlgorithm(self):
        """MD5-sess answers are verified too."""
        srv = server()
        challenge = parse_challenge(srv.challenge())
        challenge["algorithm"] = "MD5-sess"
        request = register()
        request.add("Authorization", build_authorization(
            challenge, "REGISTER", "sip:biloxi.com", "bob", "zanzibar"))
        self.assertEqual(srv.check(request), ("ok", "bob"))

    def test_proxy(self):
        """A proxy checks Proxy-Authorization after a 407."""
        srv = server()
        again = answered(srv, ClientAuth("bob", "zanzibar"), register(), status=407)
        self.assertEqual(srv.check(again), ("missing", None))
        self.assertEqual(srv.check(again, "Proxy-Authorization"), ("ok", "bob"))

    def test_wrongPassword(self):
        """A wrong password is C{"bad"}, naming the user."""
        srv = server()
        again = answered(srv, ClientAuth("bob", "guess"), register())
        self.assertEqual(srv.check(again), ("bad", "bob"))

    def test_unknownUser(self):
        """An unknown user is C{"bad"}."""
        srv = server()
        again = answered(srv, ClientAuth("mallory", "zanzibar"), register())
        self.assertEqual(srv.check(again), ("bad", "mallory"))

    def test_otherRealm(self):
        """Credentials for another realm only are C{"missing"} here."""
        request = register()
        request.add("Authorization", build_authorization(
            'Digest realm="atlanta.com", nonce="n", qop="auth"', "REGISTER",
            "sip:biloxi.com", "bob", "zanzibar"))
        self.assertEqual(server().check(request), ("missing", None))

    def test_malformed(self):
        """Unparsable credentials are C{"bad"}."""
        request = register()
        request.add("Authorization", 'Digest username="bob"')
        self.assertEqual(server().check(request), ("bad", None))

    def test_stale(self):
        """
        A right answer with a nonce older than the TTL is C{"stale"}; a
        wrong one is still C{"bad"}.
        """
        clock = Clock()
        srv = server(clock=clock, nonce_ttl=300)
        good = answered(srv, ClientAuth("bob", "zanzibar"), register())
        bad = answered(srv, ClientAuth("bob", "nope"), register())
        clock.now += 301
        self.assertEqual(srv.check(good), ("stale", "bob"))
        self.assertEqual(srv.check(bad), ("bad", "bob"))

    def test_notYetStale(self):
        """At the TTL exactly the nonce is still good."""
        clock = Clock()
        srv = server(clock=clock, nonce_ttl=300)
        good = answered(srv, ClientAuth("bob", "zanzibar"), register())
        clock.now += 300
        self.assertEqual(srv.check(good), ("ok", "bob"))

    def test_staleRetry(self):
        """After a stale challenge the client answers again and passes."""
        clock = Clock()
        srv = server(clock=clock)
        client = ClientAuth("bob", "zanzibar")
        first = answered(srv, client, register())
        clock.now += 1000
        self.assertEqual(srv.check(first)[0], "stale")
        second = answered(srv, client, first, stale=True)
        self.assertEqual(srv.check(second), ("ok", "bob"))

    def test_replay(self):
        """
        The same nonce count twice is refused (C{"stale"}: only the password
        holder can answer the new challenge); a higher count passes, a
        lower one is refused.
        """
        srv = server()
        challenge = parse_challenge(srv.challenge())

        def with_nc(nc):
            request = register(nc)
            request.add("Authorization", build_authorization(
                challenge, "REGISTER", "sip:biloxi.com", "bob", "zanzibar", nc=nc))
            return request

        first = with_nc(1)
        self.assertEqual(srv.check(first), ("ok", "bob"))
        self.assertEqual(srv.check(first), ("stale", "bob"))
        self.assertEqual(srv.check(with_nc(5)), ("ok", "bob"))
        self.assertEqual(srv.check(with_nc(3)), ("stale", "bob"))
        self.assertEqual(srv.check(with_nc(6)), ("ok", "bob"))

    def test_evictionDoesNotOpenReplay(self):
        """
        When the nonce table is full the oldest nonce is forgotten, and it
        is then answered C{"stale"}, not accepted again.
        """
        clock = Clock()
        srv = server(clock=clock, max_nonces=2)
        client = ClientAuth("bob", "zanzibar")
        requests = []
        for i in range(3):
            requests.append(answered(srv, client, register(10 * i + 1)))
            clock.now += 1
        for request in requests:
            self.assertEqual(srv.check(request), ("ok", "bob"))
        self.assertEqual(srv.check(requests[0]), ("stale", "bob"))
        # a fresh nonce still works
        self.assertEqual(srv.check(answered(srv, client, register(99))), ("ok", "bob"))

    def test_forgedNonce(self):
        """
        A nonce we did not sign is C{"bad"}, even with a right answer; a
        server sharing the secret accepts it.
        """
        challenge = 'Digest realm="biloxi.com", nonce="%s", qop="auth"' % ("A" * 44,)
        request = register()
        request.add("Authorization", build_authorization(
            challenge, "REGISTER", "sip:biloxi.com", "bob", "zanzibar"))
        self.assertEqual(server().check(request), ("bad", "bob"))
        again = answered(server(secret=b"one"), ClientAuth("bob", "zanzibar"), register())
        self.assertEqual(server(secret=b"two").check(again), ("bad", "bob"))
        self.assertEqual(server(secret=b"one").check(again), ("ok", "bob"))

    def test_requestUriMustMatch(self):
        """
        Credentials whose uri is not the Request-URI are C{"bad"}; so are
        credentials computed for another method.
        """
        srv = server()
        challenge = srv.challenge()
        request = register(uri="sip:biloxi.com")
        request.add("Authorization", build_authorization(
            challenge, "REGISTER", "sip:atlanta.com", "bob", "zanzibar"))
        self.assertEqual(srv.check(request), ("bad", "bob"))
        invite = register(uri="sip:biloxi.com", method="INVITE")
        invite.add("Authorization", build_authorization(
            challenge, "REGISTER", "sip:biloxi.com", "bob", "zanzibar"))
        self.assertEqual(srv.check(invite), ("bad", "bob"))

    def test_equivalentUri(self):
        """A uri equal to the Request-URI under RFC 3261 comparison passes."""
        srv = server()
        request = register(uri="sip:biloxi.com")
        request.add("Authorization", build_authorization(
            srv.challenge(), "REGISTER", "sip:BILOXI.com", "bob", "zanzibar"))
        self.assertEqual(srv.check(request), ("ok", "bob"))

    def test_qopRequired(self):
        """An answer without qop (RFC 2069 style) is C{"bad"}: it has no count."""
        srv = server()
        challenge = parse_challenge(srv.challenge())
        challenge["qop"] = []
        request = register()
        request.add("Authorization", build_authorization(
            challenge, "REGISTER", "sip:biloxi.com", "bob", "zanzibar"))
        self.assertEqual(srv.check(request), ("bad", "bob"))

    def test_opaqueMismatch(self):
        """A changed opaque is C{"bad"}."""
        srv = server()
        challenge = parse_challenge(srv.challenge())
        challenge["opaque"] = "something-else"
        request = register()
        request.add("Authorization", build_authorization(
            challenge, "REGISTER", "sip:biloxi.com", "bob", "zanzibar"))
        self.assertEqual(srv.check(request), ("bad", "bob"))

    def test_ha1Users(self):
        """
        An C{HA1:} MD5 entry verifies MD5 answers and refuses SHA-256 ones;
        a SHA-256 HA1 entry verifies SHA-256.
        """
        md5_ha1 = md5("bob:biloxi.com:zanzibar")
        sha_ha1 = hashlib.sha256(b"bob:biloxi.com:zanzibar").hexdigest()
        client = ClientAuth("bob", "zanzibar")
        srv = server({"bob": "HA1:" + md5_ha1.upper()})
        self.assertEqual(srv.check(answered(srv, client, register())), ("ok", "bob"))
        self.assertEqual(srv.check(answered(srv, client, register(), algorithm="SHA-256")),
                         ("bad", "bob"))
        srv = server({"bob": "HA1:" + sha_ha1})
        self.assertEqual(srv.check(answered(srv, client, register(), algorithm="SHA-256")),
                         ("ok", "bob"))

    def test_badHA1Entry(self):
        """A malformed C{HA1:} entry is refused when the server is built."""
        for value in ("HA1:xyz", "HA1:" + "0" * 31, "HA1:" + "g" * 32):
            self.assertRaises(ValueError, server, {"bob": value})


class LoadUsersTests(SynchronousTestCase):
    """
    L{load_users}.
    """

    def write(self, text):
        # not self.mktemp(): under pytest it litters the working directory
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "users")
        with open(path, "wb") as f:
            f.write(text if isinstance(text, bytes) else text.encode("utf-8"))
        return path

    def test_load(self):
        """
        Comments and blank lines are skipped; a password runs to the end of
        the line (colons included); C{HA1=} entries become C{HA1:} values.
        """
        ha1 = md5("carol:biloxi.com:pw")
        path = self.write(
            "# users\n\nbob:zanzibar\n  alice : a:b:c  \r\ncarol:HA1=%s\n" % (ha1.upper(),))
        users = load_users(path)
        self.assertEqual(users, {"bob": "zanzibar", "alice": " a:b:c", "carol": "HA1:" + ha1})
        srv = server({k: v for k, v in users.items() if k != "alice"})
        client = ClientAuth("carol", "pw")
        self.assertEqual(srv.check(answered(srv, client, register())), ("ok", "carol"))

    def test_errors(self):
        """
        Bad lines raise ValueError naming the file and line number, never
        the secret on the line.
        """
        cases = [
            ("bob zanzibar-secret\n", 1),
            ("# ok\n:zanzibar-secret\n", 2),
            ("bob:\n", 1),
            ("bob:zanzibar-secret\nbob:zanzibar-secret\n", 2),
            ("x:y\nbob:HA1=zanzibar-secret\n", 2),
            ("bob:HA1=" + "a" * 40 + "\n", 1),
            ("bob:HA1:zanzibar-secret\n", 1),
            ("bo b:zanzibar-secret\n", 1),
        ]
        for text, lineno in cases:
            path = self.write(text)
            exc = self.assertRaises(ValueError, load_users, path)
            self.assertIn("%s:%d:" % (path, lineno), str(exc), text)
            self.assertNotIn("zanzibar-secret", str(exc))

    def test_notUtf8(self):
        """A line that is not UTF-8 is an error with its line number."""
        path = self.write(b"a:b\nbob:\xff\xfe\n")
        exc = self.assertRaises(ValueError, load_users, path)
        self.assertIn(":2:", str(exc))
