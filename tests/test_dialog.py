"""
Tests for L{rvoip_twisted.sip.dialog} and L{rvoip_twisted.sip.ids}.

The messages are the RFC 3261 section 24 call between Alice and Bob, through
two record-routing proxies (p1 next to Alice, p2 next to Bob), parsed from
literal text.
"""

import re

from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.sip import dialog as dialog_module
from rvoip_twisted.sip.dialog import (
    CONFIRMED, EARLY, TERMINATED, Dialog, DialogError, request_dialog_id,
    response_dialog_id,
)
from rvoip_twisted.sip.errors import SIPError
from rvoip_twisted.sip.headers import NameAddr, Via
from rvoip_twisted.sip.ids import BRANCH_MAGIC, new_branch, new_call_id, new_tag
from rvoip_twisted.sip.message import Request
from rvoip_twisted.sip.parser import parse_message


def parse(text, body=b""):
    """Parse literal SIP text written with plain newlines."""
    head = text.strip("\n").replace("\n", "\r\n") + "\r\n\r\n"
    return parse_message(head.encode("utf-8") + body)


CALL_ID = "a84b4c76e66710@pc33.atlanta.com"
ALICE_TAG = "1928301774"
BOB_TAG = "a6c85cf"

# The INVITE as Alice's UA sends it.
INVITE_SENT = """
INVITE sip:bob@biloxi.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8
Max-Forwards: 70
To: Bob <sip:bob@biloxi.com>
From: Alice <sip:alice@atlanta.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.com
CSeq: 314159 INVITE
Contact: <sip:alice@pc33.atlanta.com>
Content-Type: application/sdp
"""

# The same INVITE as Bob's UA receives it: two Via and Record-Route more.
INVITE_RECEIVED = """
INVITE sip:bob@192.0.2.4 SIP/2.0
Via: SIP/2.0/UDP p2.biloxi.com;branch=z9hG4bK4b43c2ff8.1
Via: SIP/2.0/UDP p1.atlanta.com;branch=z9hG4bK77ef4c2312983.1
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8
Max-Forwards: 68
Record-Route: <sip:p2.biloxi.com;lr>
Record-Route: <sip:p1.atlanta.com;lr>
To: Bob <sip:bob@biloxi.com>
From: Alice <sip:alice@atlanta.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.com
CSeq: 314159 INVITE
Contact: <sip:alice@pc33.atlanta.com>
Content-Type: application/sdp
"""

# Bob's 180 and 200 as Alice receives them (Record-Route copied in order).
RINGING = """
SIP/2.0 180 Ringing
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8
Record-Route: <sip:p2.biloxi.com;lr>
Record-Route: <sip:p1.atlanta.com;lr>
To: Bob <sip:bob@biloxi.com>;tag=a6c85cf
From: Alice <sip:alice@atlanta.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.com
CSeq: 314159 INVITE
Contact: <sip:bob@192.0.2.4>
"""

OK = """
SIP/2.0 200 OK
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8
Record-Route: <sip:p2.biloxi.com;lr>, <sip:p1.atlanta.com;lr>
To: Bob <sip:bob@biloxi.com>;tag=a6c85cf
From: Alice <sip:alice@atlanta.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.com
CSeq: 314159 INVITE
Contact: <sip:bob@192.0.2.4>
Content-Type: application/sdp
"""

ALICE_VIA = "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnew1"
BOB_VIA = "SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnew2"


def in_dialog(method, cseq, from_tag=ALICE_TAG, to_tag=BOB_TAG, extra=""):
    """A request Alice sends to Bob inside the dialog, as Bob receives it."""
    text = """
{method} sip:bob@192.0.2.4 SIP/2.0
Via: SIP/2.0/UDP p2.biloxi.com;branch=z9hG4bKx{cseq}
Max-Forwards: 69
To: Bob <sip:bob@biloxi.com>;tag={to_tag}
From: Alice <sip:alice@atlanta.com>{from_tag}
Call-ID: a84b4c76e66710@pc33.atlanta.com
CSeq: {cseq} {method}
""".format(method=method, cseq=cseq, to_tag=to_tag,
           from_tag=";tag=" + from_tag if from_tag else "")
    return parse(text + extra)


def uas_dialog(local_cseq=4000, text=INVITE_RECEIVED):
    return Dialog.from_uas(parse(text), BOB_TAG, "sip:bob@192.0.2.4", local_cseq=local_cseq)


def uac_dialog(response=OK):
    return Dialog.from_uac(parse(INVITE_SENT), parse(response), "sip:alice@pc33.atlanta.com")


def route_values(request):
    return [str(r.uri) for r in request.routes]


class IdsTests(SynchronousTestCase):
    """
    L{new_tag}, L{new_call_id} and L{new_branch}.
    """

    def test_tag(self):
        """A tag is 16 lower-case hex digits and different every time."""
        tags = {new_tag() for _ in range(100)}
        self.assertEqual(len(tags), 100)
        for tag in tags:
            self.assertRegex(tag, r"\A[0-9a-f]{16}\Z")

    def test_callIdWithHost(self):
        """A Call-ID is 24 hex digits, then C{@host} when a host is given."""
        self.assertRegex(new_call_id("192.0.2.1"), r"\A[0-9a-f]{24}@192\.0\.2\.1\Z")
        self.assertRegex(new_call_id(), r"\A[0-9a-f]{24}\Z")
        self.assertNotEqual(new_call_id("h"), new_call_id("h"))

    def test_branch(self):
        """
        A branch starts with the RFC 3261 magic cookie, is unique, and
        makes a valid Via parameter.
        """
        branches = {new_branch() for _ in range(100)}
        self.assertEqual(len(branches), 100)
        branch = branches.pop()
        self.assertTrue(branch.startswith(BRANCH_MAGIC))
        self.assertEqual(BRANCH_MAGIC, "z9hG4bK")
        via = Via.parse("SIP/2.0/UDP 192.0.2.1:5060;branch=" + branch)
        self.assertEqual(via.branch, branch)

    def test_reexported(self):
        """The dialog module re-exports the ID helpers."""
        self.assertIs(dialog_module.new_tag, new_tag)
        self.assertIs(dialog_module.new_call_id, new_call_id)
        self.assertIs(dialog_module.new_branch, new_branch)


class UASCreationTests(SynchronousTestCase):
    """
    L{Dialog.from_uas} (RFC 3261 12.1.1).
    """

    def test_identity(self):
        """
        The ID is (Call-ID, our To tag, the From tag); the parties are the
        To and From without their tags.
        """
        d = uas_dialog()
        self.assertEqual(d.id, (CALL_ID, BOB_TAG, ALICE_TAG))
        self.assertEqual(d.call_id, CALL_ID)
        self.assertEqual(d.local_tag, BOB_TAG)
        self.assertEqual(d.remote_tag, ALICE_TAG)
        self.assertEqual(str(d.local_party), "Bob <sip:bob@biloxi.com>")
        self.assertEqual(str(d.remote_party), "Alice <sip:alice@atlanta.com>")
        self.assertNotIn("tag", d.remote_party.params)
        self.assertFalse(d.is_uac)
        self.assertFalse(d.secure)

    def test_state(self):
        """A UAS dialog starts early and is confirmed by L{Dialog.confirm}."""
        d = uas_dialog()
        self.assertEqual(d.state, EARLY)
        d.confirm()
        self.assertEqual(d.state, CONFIRMED)
        d.confirm()
        self.assertEqual(d.state, CONFIRMED)

    def test_confirmWithOwn2xx(self):
        """
        A UAS may pass the 2xx it sends to L{Dialog.confirm}; one with
        another To tag is refused with 481.
        """
        request = parse(INVITE_RECEIVED)
        d = Dialog.from_uas(request, BOB_TAG, "sip:bob@192.0.2.4")
        other = request.response(200, to_tag="other")
        exc = self.assertRaises(DialogError, d.confirm, other)
        self.assertEqual(exc.status, 481)
        self.assertEqual(d.state, EARLY)
        d.confirm(request.response(200, to_tag=BOB_TAG))
        self.assertEqual(d.state, CONFIRMED)

    def test_cseqs(self):
        """
        The remote CSeq is the INVITE's; the local one is the given start,
        else a random number below 2**16.
        """
        d = uas_dialog(local_cseq=4000)
        self.assertEqual(d.remote_cseq, 314159)
        self.assertEqual(d.local_cseq, 4000)
        starts = {uas_dialog(local_cseq=None).local_cseq for _ in range(20)}
        self.assertGreater(len(starts), 1)
        for start in starts:
            self.assertTrue(0 <= start < 2 ** 16)

    def test_routeSetInOrder(self):
        """The route set is the request's Record-Route values, in order."""
        d = uas_dialog()
        self.assertEqual([str(r) for r in d.route_set],
                         ["<sip:p2.biloxi.com;lr>", "<sip:p1.atlanta.com;lr>"])
        self.assertIsInstance(d.route_set[0], NameAddr)

    def test_remoteTarget(self):
        """The remote target is the request's Contact URI."""
        d = uas_dialog()
        self.assertEqual(str(d.remote_target), "sip:alice@pc33.atlanta.com")

    def test_noContact(self):
        """A dialog-creating request without Contact is answered 400."""
        text = INVITE_RECEIVED.replace("Contact: <sip:alice@pc33.atlanta.com>\n", "")
        exc = self.assertRaises(DialogError, uas_dialog, 1, text)
        self.assertEqual(exc.status, 400)
        self.assertIsInstance(exc, SIPError)

    def test_starContact(self):
        """C{Contact: *} cannot be a remote target: 400."""
        text = INVITE_RECEIVED.replace("<sip:alice@pc33.atlanta.com>", "*")
        exc = self.assertRaises(DialogError, uas_dialog, 1, text)
        self.assertEqual(exc.status, 400)

    def test_alreadyTagged(self):
        """A request with a To tag creates no dialog: 481."""
        text = INVITE_RECEIVED.replace(
            "To: Bob <sip:bob@biloxi.com>", "To: Bob <sip:bob@biloxi.com>;tag=x")
        exc = self.assertRaises(DialogError, uas_dialog, 1, text)
        self.assertEqual(exc.status, 481)

    def test_untaggedFrom(self):
        """
        A From without a tag (RFC 2543) gives the empty remote tag, and our
        requests carry a To without a tag.
        """
        text = INVITE_RECEIVED.replace(";tag=1928301774", "")
        d = uas_dialog(text=text)
        self.assertEqual(d.remote_tag, "")
        self.assertEqual(d.id, (CALL_ID, BOB_TAG, ""))
        bye = d.create_request("BYE", BOB_VIA)
        self.assertIsNone(bye.to_tag)
        self.assertTrue(d.matches_request(in_dialog("BYE", 314160, from_tag="")))
        self.assertFalse(d.matches_request(in_dialog("BYE", 314160)))

    def test_secure(self):
        """A sips Request-URI makes a secure dialog."""
        text = INVITE_RECEIVED.replace("INVITE sip:bob@192.0.2.4", "INVITE sips:bob@192.0.2.4")
        self.assertTrue(uas_dialog(text=text).secure)


class UACCreationTests(SynchronousTestCase):
    """
    L{Dialog.from_uac} (RFC 3261 12.1.2) and the UAC's L{Dialog.confirm}.
    """

    def test_fromProvisional(self):
        """
        A 180 with a To tag makes an early dialog: ID (Call-ID, From tag,
        To tag), local CSeq the INVITE's, no remote CSeq yet.
        """
        d = uac_dialog(RINGING)
        self.assertEqual(d.state, EARLY)
        self.assertTrue(d.is_uac)
        self.assertEqual(d.id, (CALL_ID, ALICE_TAG, BOB_TAG))
        self.assertEqual(d.local_cseq, 314159)
        self.assertIsNone(d.remote_cseq)
        self.assertEqual(str(d.local_party), "Alice <sip:alice@atlanta.com>")
        self.assertEqual(str(d.remote_party), "Bob <sip:bob@biloxi.com>")
        self.assertEqual(d.local_contact, "sip:alice@pc33.atlanta.com")

    def test_from2xx(self):
        """A 200 makes a confirmed dialog."""
        d = uac_dialog(OK)
        self.assertEqual(d.state, CONFIRMED)
        self.assertEqual(d.remote_tag, BOB_TAG)

    def test_routeSetReversed(self):
        """The route set is the response's Record-Route values reversed."""
        for response in (RINGING, OK):
            d = uac_dialog(response)
            self.assertEqual([str(r) for r in d.route_set],
                             ["<sip:p1.atlanta.com;lr>", "<sip:p2.biloxi.com;lr>"])

    def test_remoteTarget(self):
        """The remote target is the response's Contact URI."""
        self.assertEqual(str(uac_dialog(RINGING).remote_target), "sip:bob@192.0.2.4")

    def test_noDialogResponses(self):
        """A 100, a 180 without a To tag and a 486 create no dialog."""
        untagged = RINGING.replace(";tag=a6c85cf", "")
        trying = untagged.replace("180 Ringing", "100 Trying")
        busy = RINGING.replace("180 Ringing", "486 Busy Here")
        for text in (trying, untagged, busy):
            self.assertRaises(DialogError, uac_dialog, text)

    def test_responseToAnotherRequest(self):
        """A response whose CSeq or tags are not the request's is refused."""
        self.assertRaises(DialogError, uac_dialog, RINGING.replace("314159", "1"))
        self.assertRaises(DialogError, uac_dialog, RINGING.replace(ALICE_TAG, "zz"))

    def test_confirmRecomputes(self):
        """
        The 2xx that confirms an early dialog replaces its route set and
        remote target (RFC 3261 13.2.2.4).
        """
        d = uac_dialog(RINGING)
        ok = parse(OK.replace(
            "Record-Route: <sip:p2.biloxi.com;lr>, <sip:p1.atlanta.com;lr>",
            "Record-Route: <sip:p3.biloxi.com;lr>, <sip:p1.atlanta.com;lr>").replace(
            "Contact: <sip:bob@192.0.2.4>", "Contact: <sip:bob@192.0.2.99:5070>"))
        d.confirm(ok)
        self.assertEqual(d.state, CONFIRMED)
        self.assertEqual([str(r.uri) for r in d.route_set],
                         ["sip:p1.atlanta.com;lr", "sip:p3.biloxi.com;lr"])
        self.assertEqual(str(d.remote_target), "sip:bob@192.0.2.99:5070")

    def test_confirmedRouteSetFixed(self):
        """A 2xx retransmission does not change a confirmed dialog."""
        d = uac_dialog(OK)
        d.confirm(parse(OK.replace("sip:bob@192.0.2.4", "sip:bob@192.0.2.99")))
        self.assertEqual(str(d.remote_target), "sip:bob@192.0.2.4")

    def test_confirmOtherFork(self):
        """
        A 2xx with another To tag is another dialog (a fork): 481, the
        early dialog is unchanged.
        """
        d = uac_dialog(RINGING)
        exc = self.assertRaises(DialogError, d.confirm, parse(OK.replace(BOB_TAG, "fork2")))
        self.assertEqual(exc.status, 481)
        self.assertEqual(d.state, EARLY)

    def test_confirmNeedsSuccess(self):
        """Only a 2xx confirms."""
        d = uac_dialog(RINGING)
        progress = parse(RINGING.replace("180 Ringing", "183 Progress"))
        self.assertRaises(DialogError, d.confirm, progress)

    def test_withoutResponse(self):
        """
        Without a response the dialog has no remote tag, targets the
        Request-URI, cannot send requests, and takes the tag, route set
        and target from the 2xx that confirms it.
        """
        d = Dialog.from_uac(parse(INVITE_SENT), None, "sip:alice@pc33.atlanta.com")
        self.assertIsNone(d.remote_tag)
        self.assertEqual(d.id, (CALL_ID, ALICE_TAG, None))
        self.assertEqual(str(d.remote_target), "sip:bob@biloxi.com")
        exc = self.assertRaises(DialogError, d.create_request, "BYE", ALICE_VIA)
        self.assertEqual(exc.status, 481)
        self.assertRaises(DialogError, d.confirm)
        d.confirm(parse(OK))
        self.assertEqual(d.id, (CALL_ID, ALICE_TAG, BOB_TAG))
        self.assertEqual(str(d.remote_target), "sip:bob@192.0.2.4")
        self.assertEqual(len(d.route_set), 2)

    def test_missingContactKeepsRequestUri(self):
        """A 1xx without Contact leaves the Request-URI as the remote target."""
        d = uac_dialog(RINGING.replace("Contact: <sip:bob@192.0.2.4>\n", ""))
        self.assertEqual(str(d.remote_target), "sip:bob@biloxi.com")


class DialogIdTests(SynchronousTestCase):
    """
    L{request_dialog_id}, L{response_dialog_id} and matching.
    """

    def test_requestId(self):
        """A received request's dialog ID is (Call-ID, To tag, From tag)."""
        self.assertEqual(request_dialog_id(in_dialog("BYE", 2)), (CALL_ID, BOB_TAG, ALICE_TAG))
        self.assertEqual(Dialog.request_dialog_id(in_dialog("BYE", 2)),
                         (CALL_ID, BOB_TAG, ALICE_TAG))

    def test_initialRequestId(self):
        """An initial request (no To tag) has the empty local tag."""
        self.assertEqual(request_dialog_id(parse(INVITE_RECEIVED)), (CALL_ID, "", ALICE_TAG))

    def test_responseId(self):
        """A received response's dialog ID is (Call-ID, From tag, To tag)."""
        self.assertEqual(response_dialog_id(parse(OK)), (CALL_ID, ALICE_TAG, BOB_TAG))
        self.assertEqual(Dialog.response_dialog_id(parse(OK)), (CALL_ID, ALICE_TAG, BOB_TAG))

    def test_matchesRequest(self):
        """
        A request matches when Call-ID and both tags match; another tag or
        Call-ID does not.
        """
        d = uas_dialog()
        self.assertTrue(d.matches_request(in_dialog("BYE", 314160)))
        self.assertFalse(d.matches_request(in_dialog("BYE", 314160, from_tag="other")))
        self.assertFalse(d.matches_request(in_dialog("BYE", 314160, to_tag="other")))
        other_call = parse_message(in_dialog("BYE", 314160).to_bytes().replace(
            CALL_ID.encode("ascii"), b"elsewhere"))
        self.assertFalse(d.matches_request(other_call))

    def test_matchesResponse(self):
        """The UAC's dialog matches the responses of its peer."""
        d = uac_dialog(RINGING)
        self.assertTrue(d.matches_response(parse(OK)))
        self.assertFalse(d.matches_response(parse(OK.replace(BOB_TAG, "fork2"))))

    def test_idsAgree(self):
        """
        The request Bob's UAS builds, as Alice receives it, matches Alice's
        dialog; and the other way round.
        """
        bob = uas_dialog()
        alice = uac_dialog(OK)
        self.assertTrue(alice.matches_request(parse_message(
            bob.create_request("BYE", BOB_VIA).to_bytes())))
        self.assertTrue(bob.matches_request(parse_message(
            alice.create_request("BYE", ALICE_VIA).to_bytes())))


class CSeqCheckTests(SynchronousTestCase):
    """
    L{Dialog.check_request} (RFC 3261 12.2.2).
    """

    def test_higherAccepted(self):
        """A higher CSeq is accepted and becomes the remote CSeq."""
        d = uas_dialog()
        d.check_request(in_dialog("INFO", 314160))
        self.assertEqual(d.remote_cseq, 314160)
        d.check_request(in_dialog("BYE", 314170))
        self.assertEqual(d.remote_cseq, 314170)

    def test_equalAccepted(self):
        """An equal CSeq is not out of order (retransmissions are the transaction layer's)."""
        d = uas_dialog()
        d.check_request(in_dialog("INFO", 314160))
        d.check_request(in_dialog("INFO", 314160))
        self.assertEqual(d.remote_cseq, 314160)

    def test_lowerRejected(self):
        """A lower CSeq is out of order: 500, remote CSeq unchanged."""
        d = uas_dialog()
        d.check_request(in_dialog("INFO", 314165))
        exc = self.assertRaises(DialogError, d.check_request, in_dialog("BYE", 314160))
        self.assertEqual(exc.status, 500)
        self.assertEqual(d.remote_cseq, 314165)

    def test_ackAndCancelExempt(self):
        """
        ACK and CANCEL are not checked against the remote CSeq and leave
        it alone.
        """
        d = uas_dialog()
        d.check_request(in_dialog("INFO", 314165))
        d.check_request(in_dialog("ACK", 314159))
        d.check_request(in_dialog("CANCEL", 314159))
        self.assertEqual(d.remote_cseq, 314165)

    def test_firstRemoteRequest(self):
        """
        A UAC has no remote CSeq until the peer's first request, which any
        number satisfies.
        """
        d = uac_dialog(OK)
        bye = parse_message(uas_dialog(local_cseq=7).create_request("BYE", BOB_VIA).to_bytes())
        d.check_request(bye)
        self.assertEqual(d.remote_cseq, 8)

    def test_notThisDialog(self):
        """A request of another dialog is answered 481."""
        d = uas_dialog()
        exc = self.assertRaises(DialogError, d.check_request,
                                in_dialog("BYE", 314160, from_tag="nope"))
        self.assertEqual(exc.status, 481)

    def test_terminated(self):
        """A request for a terminated dialog is answered 481."""
        d = uas_dialog()
        d.terminate()
        exc = self.assertRaises(DialogError, d.check_request, in_dialog("BYE", 314160))
        self.assertEqual(exc.status, 481)


class RoutingTests(SynchronousTestCase):
    """
    Request-URI and Route of the requests a dialog builds (RFC 3261
    12.2.1.1).
    """

    def test_looseUAS(self):
        """
        Loose routing from the UAS: Request-URI the remote target, Route
        the route set in order.
        """
        bye = uas_dialog().create_request("BYE", BOB_VIA)
        self.assertEqual(str(bye.uri), "sip:alice@pc33.atlanta.com")
        self.assertEqual(route_values(bye), ["sip:p2.biloxi.com;lr", "sip:p1.atlanta.com;lr"])

    def test_looseUAC(self):
        """Loose routing from the UAC: the reversed route set."""
        bye = uac_dialog(OK).create_request("BYE", ALICE_VIA)
        self.assertEqual(str(bye.uri), "sip:bob@192.0.2.4")
        self.assertEqual(route_values(bye), ["sip:p1.atlanta.com;lr", "sip:p2.biloxi.com;lr"])

    def test_strict(self):
        """
        Strict routing (first route without C{lr}): the first route's URI,
        without parameters a Request-URI may not have, is the
        Request-URI; Route holds the other routes then the remote target.
        """
        text = OK.replace(
            "Record-Route: <sip:p2.biloxi.com;lr>, <sip:p1.atlanta.com;lr>",
            "Record-Route: <sip:p2.biloxi.com;lr>, <sip:p1.atlanta.com;method=INVITE>")
        d = uac_dialog(text)
        bye = d.create_request("BYE", ALICE_VIA)
        self.assertEqual(str(bye.uri), "sip:p1.atlanta.com")
        self.assertEqual(route_values(bye), ["sip:p2.biloxi.com;lr", "sip:bob@192.0.2.4"])
        # the route set itself is unchanged
        self.assertEqual(str(d.route_set[0].uri), "sip:p1.atlanta.com;method=INVITE")

    def test_strictUAS(self):
        """Strict routing from the UAS side."""
        text = INVITE_RECEIVED.replace("<sip:p2.biloxi.com;lr>", "<sip:p2.biloxi.com>")
        bye = uas_dialog(text=text).create_request("BYE", BOB_VIA)
        self.assertEqual(str(bye.uri), "sip:p2.biloxi.com")
        self.assertEqual(route_values(bye),
                         ["sip:p1.atlanta.com;lr", "sip:alice@pc33.atlanta.com"])

    def test_noRouteSet(self):
        """No route set: the remote target and no Route header."""
        text = INVITE_RECEIVED.replace("Record-Route: <sip:p2.biloxi.com;lr>\n", "").replace(
            "Record-Route: <sip:p1.atlanta.com;lr>\n", "")
        bye = uas_dialog(text=text).create_request("BYE", BOB_VIA)
        self.assertEqual(str(bye.uri), "sip:alice@pc33.atlanta.com")
        self.assertFalse(bye.has("Route"))

    def test_targetHeadersStripped(self):
        """URI headers of the remote target do not go in the Request-URI."""
        text = INVITE_RECEIVED.replace(
            "<sip:alice@pc33.atlanta.com>", "<sip:alice@pc33.atlanta.com;transport=tcp?X=1>")
        bye = uas_dialog(text=text).create_request("BYE", BOB_VIA)
        self.assertEqual(str(bye.uri), "sip:alice@pc33.atlanta.com;transport=tcp")
        # and the result parses as a request
        self.assertEqual(parse_message(bye.to_bytes()).method, "BYE")


class CreateRequestTests(SynchronousTestCase):
    """
    The headers of in-dialog requests (RFC 3261 12.2.1.1).
    """

    def test_bye(self):
        """
        A BYE from the UAS: From is Bob with his tag, To is Alice with
        hers, the Call-ID, CSeq local+1, Max-Forwards, the given Via, no
        Contact; it survives serialisation and parsing.
        """
        d = uas_dialog(local_cseq=4000)
        bye = parse_message(d.create_request("BYE", BOB_VIA).to_bytes())
        self.assertIsInstance(bye, Request)
        self.assertEqual(bye.method, "BYE")
        self.assertEqual(bye.get("From"), "Bob <sip:bob@biloxi.com>;tag=a6c85cf")
        self.assertEqual(bye.get("To"), "Alice <sip:alice@atlanta.com>;tag=1928301774")
        self.assertEqual(bye.call_id, CALL_ID)
        self.assertEqual(bye.cseq, (4001, "BYE"))
        self.assertEqual(bye.max_forwards, 70)
        self.assertEqual(bye.get_all("Via"), [BOB_VIA])
        self.assertIsNone(bye.contact)
        self.assertEqual(bye.body, b"")
        self.assertEqual(d.local_cseq, 4001)

    def test_cseqIncrements(self):
        """Each request takes the next CSeq number."""
        d = uac_dialog(OK)
        self.assertEqual(d.create_request("INFO", ALICE_VIA).cseq.seq, 314160)
        self.assertEqual(d.create_request("INFO", ALICE_VIA).cseq.seq, 314161)
        self.assertEqual(d.local_cseq, 314161)

    def test_cancelDoesNotIncrement(self):
        """A CANCEL (or ACK) built by L{Dialog.create_request} reuses the local CSeq."""
        d = uac_dialog(OK)
        d.create_request("INVITE", ALICE_VIA)
        cancel = d.create_request("CANCEL", ALICE_VIA)
        self.assertEqual(cancel.cseq, (314160, "CANCEL"))
        self.assertEqual(d.local_cseq, 314160)

    def test_contactMethods(self):
        """
        INVITE, UPDATE, SUBSCRIBE, REFER and NOTIFY carry our Contact;
        BYE, INFO, MESSAGE and OPTIONS do not.
        """
        d = uac_dialog(OK)
        for method in ("INVITE", "UPDATE", "SUBSCRIBE", "REFER", "NOTIFY"):
            request = d.create_request(method, ALICE_VIA)
            self.assertEqual(request.get("Contact"), "<sip:alice@pc33.atlanta.com>", method)
        for method in ("BYE", "INFO", "MESSAGE", "OPTIONS"):
            self.assertFalse(d.create_request(method, ALICE_VIA).has("Contact"), method)

    def test_contactAlreadyBracketed(self):
        """A local contact given with angle brackets is used as it is."""
        d = Dialog.from_uas(parse(INVITE_RECEIVED), BOB_TAG, "<sip:bob@192.0.2.4>;expires=60")
        self.assertEqual(d.create_request("INVITE", BOB_VIA).get("Contact"),
                         "<sip:bob@192.0.2.4>;expires=60")

    def test_body(self):
        """A body goes with its Content-Type; Content-Length is right on the wire."""
        d = uac_dialog(OK)
        sdp = b"v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\n"
        invite = d.create_request("INVITE", ALICE_VIA, body=sdp, content_type="application/sdp")
        parsed = parse_message(invite.to_bytes())
        self.assertEqual(parsed.body, sdp)
        self.assertEqual(parsed.content_type, "application/sdp")
        self.assertEqual(parsed.content_length, len(sdp))

    def test_bodyNeedsContentType(self):
        """A body without a Content-Type is a programming error, and uses no CSeq."""
        d = uac_dialog(OK)
        self.assertRaises(ValueError, d.create_request, "INFO", ALICE_VIA, body=b"x")
        self.assertEqual(d.local_cseq, 314159)
        info = d.create_request("INFO", ALICE_VIA, headers=[("Content-Type", "text/plain")],
                                body=b"x")
        self.assertEqual(info.content_type, "text/plain")

    def test_extraHeaders(self):
        """Extra headers follow the dialog's; an extra Contact replaces ours."""
        d = uac_dialog(OK)
        invite = d.create_request("INVITE", ALICE_VIA, headers=[
            ("Supported", "timer"), ("Contact", "<sip:alice@pc33.atlanta.com>;+sip.instance=x")])
        self.assertEqual(invite.get_all("Contact"),
                         ["<sip:alice@pc33.atlanta.com>;+sip.instance=x"])
        self.assertEqual(invite.headers[-1], (
            "Contact", "<sip:alice@pc33.atlanta.com>;+sip.instance=x"))
        self.assertEqual(invite.get("Supported"), "timer")

    def test_maxForwards(self):
        """Max-Forwards can be chosen."""
        d = uac_dialog(OK)
        self.assertEqual(d.create_request("BYE", ALICE_VIA, max_forwards=10).max_forwards, 10)

    def test_headerOrder(self):
        """Via comes first, then Max-Forwards, Route, From, To, Call-ID, CSeq."""
        names = [n for n, _ in uas_dialog().create_request("BYE", BOB_VIA).headers]
        self.assertEqual(names, ["Via", "Max-Forwards", "Route", "Route", "From", "To",
                                 "Call-ID", "CSeq"])

    def test_terminated(self):
        """A terminated dialog sends no requests (send the BYE, then terminate)."""
        d = uac_dialog(OK)
        d.terminate()
        self.assertEqual(d.state, TERMINATED)
        exc = self.assertRaises(DialogError, d.create_request, "BYE", ALICE_VIA)
        self.assertEqual(exc.status, 481)

    def test_cseqExhausted(self):
        """The CSeq number stays below 2**31."""
        d = uac_dialog(OK)
        d.local_cseq = 2 ** 31 - 1
        self.assertRaises(DialogError, d.create_request, "BYE", ALICE_VIA)


class AckTests(SynchronousTestCase):
    """
    L{Dialog.create_ack}: the ACK for a 2xx (RFC 3261 13.2.2.4).
    """

    def test_ack(self):
        """
        The ACK carries the INVITE's CSeq number with method ACK, is routed
        like the dialog's requests, carries no Contact and leaves the local
        CSeq alone.
        """
        d = uac_dialog(OK)
        ack = parse_message(d.create_ack(314159, ALICE_VIA).to_bytes())
        self.assertEqual(ack.method, "ACK")
        self.assertEqual(ack.cseq, (314159, "ACK"))
        self.assertEqual(str(ack.uri), "sip:bob@192.0.2.4")
        self.assertEqual(route_values(ack), ["sip:p1.atlanta.com;lr", "sip:p2.biloxi.com;lr"])
        self.assertEqual(ack.to_tag, BOB_TAG)
        self.assertEqual(ack.from_tag, ALICE_TAG)
        self.assertEqual(ack.get_all("Via"), [ALICE_VIA])
        self.assertFalse(ack.has("Contact"))
        self.assertEqual(d.local_cseq, 314159)

    def test_reinviteAck(self):
        """The ACK of a re-INVITE's 2xx carries the re-INVITE's number."""
        d = uac_dialog(OK)
        reinvite = d.create_request("INVITE", ALICE_VIA)
        ack = d.create_ack(reinvite.cseq.seq, ALICE_VIA)
        self.assertEqual(ack.cseq, (314160, "ACK"))
        self.assertEqual(d.create_request("BYE", ALICE_VIA).cseq.seq, 314161)

    def test_ackWithBody(self):
        """An ACK may carry the SDP answer."""
        d = uac_dialog(OK)
        ack = d.create_ack(314159, ALICE_VIA, body=b"v=0\r\n", content_type="application/sdp")
        self.assertEqual(ack.body, b"v=0\r\n")
        self.assertEqual(ack.get("Content-Type"), "application/sdp")

    def test_ackAfterTerminate(self):
        """A 2xx received is ACKed even if the dialog has just ended."""
        d = uac_dialog(OK)
        d.terminate()
        self.assertEqual(d.create_ack(314159, ALICE_VIA).method, "ACK")


class TargetRefreshTests(SynchronousTestCase):
    """
    L{Dialog.target_refresh} (RFC 3261 12.2).
    """

    def test_reinvite(self):
        """
        A re-INVITE with a new Contact moves the remote target; the next
        request goes there.
        """
        d = uas_dialog()
        d.confirm()
        reinvite = in_dialog("INVITE", 314160, extra="Contact: <sip:alice@198.51.100.7:5062>\n")
        d.check_request(reinvite)
        self.assertTrue(d.target_refresh(reinvite))
        self.assertEqual(str(d.remote_target), "sip:alice@198.51.100.7:5062")
        self.assertEqual(str(d.create_request("BYE", BOB_VIA).uri), "sip:alice@198.51.100.7:5062")

    def test_update(self):
        """UPDATE is a target refresh too."""
        d = uas_dialog()
        update = in_dialog("UPDATE", 314160, extra="Contact: <sip:alice@198.51.100.8>\n")
        self.assertTrue(d.target_refresh(update))
        self.assertEqual(str(d.remote_target), "sip:alice@198.51.100.8")

    def test_reinvite2xx(self):
        """The 2xx to our re-INVITE refreshes the target."""
        d = uac_dialog(OK)
        reinvite = d.create_request("INVITE", ALICE_VIA)
        ok = reinvite.response(200, headers=[("Contact", "<sip:bob@203.0.113.9>")])
        self.assertTrue(d.target_refresh(ok))
        self.assertEqual(str(d.remote_target), "sip:bob@203.0.113.9")

    def test_notRefresh(self):
        """
        BYE and INFO, a non-2xx final response, and a re-INVITE without
        Contact or with the same one leave the target alone.
        """
        d = uas_dialog()
        for request in (
                in_dialog("INFO", 314160, extra="Contact: <sip:x@198.51.100.9>\n"),
                in_dialog("BYE", 314161, extra="Contact: <sip:x@198.51.100.9>\n"),
                in_dialog("INVITE", 314162),
                in_dialog("INVITE", 314163, extra="Contact: <sip:alice@pc33.atlanta.com>\n")):
            self.assertFalse(d.target_refresh(request))
        reinvite = d.create_request("INVITE", BOB_VIA)
        self.assertFalse(d.target_refresh(reinvite.response(
            491, headers=[("Contact", "<sip:x@198.51.100.9>")])))
        self.assertEqual(str(d.remote_target), "sip:alice@pc33.atlanta.com")

    def test_provisionalWhileEarly(self):
        """
        A 1xx to the INVITE refreshes the target while the dialog is early,
        not once it is confirmed.
        """
        d = uac_dialog(RINGING)
        progress = parse(RINGING.replace("180 Ringing", "183 Session Progress").replace(
            "sip:bob@192.0.2.4", "sip:bob@192.0.2.5"))
        self.assertTrue(d.target_refresh(progress))
        self.assertEqual(str(d.remote_target), "sip:bob@192.0.2.5")
        d.confirm(parse(OK))
        self.assertFalse(d.target_refresh(parse(RINGING.replace(
            "180 Ringing", "183 Session Progress").replace("192.0.2.4", "192.0.2.6"))))
        self.assertEqual(str(d.remote_target), "sip:bob@192.0.2.4")

    def test_starContact(self):
        """C{Contact: *} in a target refresh is a 400."""
        d = uas_dialog()
        exc = self.assertRaises(DialogError, d.target_refresh,
                                in_dialog("INVITE", 314160, extra="Contact: *\n"))
        self.assertEqual(exc.status, 400)


class TerminateTests(SynchronousTestCase):
    """
    L{Dialog.terminate}.
    """

    def test_terminate(self):
        """Terminating moves any dialog to the terminated state, for good."""
        for d in (uas_dialog(), uac_dialog(RINGING), uac_dialog(OK)):
            d.terminate()
            self.assertEqual(d.state, TERMINATED)
            self.assertTrue(d.terminated)
            self.assertRaises(DialogError, d.confirm, parse(OK))
            self.assertEqual(d.state, TERMINATED)

    def test_repr(self):
        """The repr names the state and the ID."""
        self.assertTrue(re.search(r"confirmed .*a6c85cf", repr(uac_dialog(OK))))
