"""
Dialog state (RFC 3261 section 12), sans-IO.

A L{Dialog} holds what RFC 3261 12 says a dialog remembers: its ID (Call-ID,
local tag, remote tag), the local and remote sequence numbers, the local and
remote URIs (kept here as the From/To name-addrs without their tags), the
remote target and the route set.  It builds the requests we send inside the
dialog (12.2.1.1), checks the requests we receive (12.2.2) and applies
target refreshes.  It sends nothing and sets no timers: 2xx retransmission
and ACK re-sending belong to the dialog manager in C{service/}.

Dialog IDs are C{(call_id, local_tag, remote_tag)} from our side.  A peer
that sent no tag (an RFC 2543 element) has the empty string as its tag, so
an ID is always three strings except for a UAC dialog created before any
tagged response, whose remote tag is C{None}.
"""


from .errors import SIPError
from .headers import CSeq, NameAddr
from .ids import BRANCH_MAGIC, new_branch, new_call_id, new_tag, random_below
from .message import Request

#: requests that carry our Contact (RFC 3261 12.2.1.1, RFC 3311, 3515, 6665).
CONTACT_METHODS = frozenset(["INVITE", "UPDATE", "SUBSCRIBE", "REFER", "NOTIFY"])

#: target refresh requests (RFC 3261 12.2, RFC 3311 5.1, RFC 6665 4.1.2 / 4.2.1).
TARGET_REFRESH_METHODS = frozenset(["INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY"])

#: CSeq numbers are below 2**31 (RFC 3261 8.1.1.5).
MAX_CSEQ = 2 ** 31 - 1

#: a UAS dialog's first CSeq number is drawn below this, leaving plenty of
#: room below L{MAX_CSEQ}.
UAS_CSEQ_RANGE = 2 ** 16

EARLY = "early"
CONFIRMED = "confirmed"
TERMINATED = "terminated"


class DialogError(SIPError):
    """
    A dialog rule was broken.  C{status} is what a UAS answers a received
    request with: 500 for an out-of-order CSeq (RFC 3261 12.2.2), 481 for a
    request that belongs to no (live) dialog, 400 for a dialog-creating
    request without a usable Contact.
    """

    status = 500


def _without_tag(name_addr):
    params = name_addr.params
    if len(params) == 1 and "tag" in params:
        params = {}         # (the usual From or To)
    else:
        params = {k: v for k, v in params.items() if k != "tag"}
    return NameAddr(name_addr.uri, name_addr.display, params)


def _with_tag(name_addr, tag):
    # An empty tag is RFC 2543's "no tag": the header goes without one.
    if not tag:
        return name_addr
    return name_addr.with_tag(tag)


def _request_uri(uri):
    """A URI made fit for a Request-URI: no headers, no method parameter (19.1.1)."""
    if uri.headers is None and "method" not in uri.params:
        return uri
    params = {k: v for k, v in uri.params.items() if k != "method"}
    return uri.replace(headers=None, params=params)


def _contact_uri(msg, what):
    contact = msg.contact
    if contact is None:
        return None
    if contact.star or contact.uri is None:
        raise DialogError("Contact: * in " + what, 400)
    return contact.uri


def request_dialog_id(request):
    """
    The ID of the dialog a request we received belongs to, from our side:
    C{(call_id, to_tag, from_tag)}, a missing tag as C{""}.  An initial
    request (no To tag) gives C{""} as the local tag, which no dialog has.
    """
    return (request.call_id, request.to_tag or "", request.from_tag or "")


def response_dialog_id(response):
    """
    The ID of the dialog a response we received belongs to, from our (the
    UAC's) side: C{(call_id, from_tag, to_tag)}, a missing tag as C{""}.
    """
    return (response.call_id, response.from_tag or "", response.to_tag or "")


class Dialog:
    """
    One dialog (RFC 3261 12).  Build it with L{from_uas} or L{from_uac}.

    @ivar call_id: the Call-ID.
    @ivar local_tag: our tag (From tag as a UAC, To tag as a UAS).
    @ivar remote_tag: the peer's tag; C{""} if the peer sent none (RFC
        2543); C{None} only for a UAC dialog created before any tagged
        response (L{from_uac} with C{response=None}).
    @ivar local_party: our From/To (a L{NameAddr} without its tag).
    @ivar remote_party: the peer's From/To (a L{NameAddr} without its tag).
    @ivar local_cseq: the CSeq number of the last request we sent; the next
        one is C{local_cseq + 1}.  A UAC starts from its initial request's;
        a UAS, whose local sequence number is "empty" in RFC 3261 12.1.1,
        starts from a random number below 2**16 (8.1.1.5 allows any start
        below 2**31; a random one makes our CSeq numbers not guessable
        across dialogs and leaves room for 2**31 - 2**16 requests).
    @ivar remote_cseq: the highest CSeq number received from the peer, or
        C{None} (a UAC before the peer's first request).
    @ivar route_set: a list of L{NameAddr}, in the order the Route headers
        of our requests list them.
    @ivar remote_target: the peer's Contact URI (a L{URI}).
    @ivar local_contact: the URI text of our Contact (with or without
        angle brackets).
    @ivar state: C{"early"}, C{"confirmed"} or C{"terminated"}.
    @ivar is_uac: C{True} if we sent the request that created the dialog.
    @ivar secure: C{True} if the creating request's Request-URI was sips
        (RFC 3261 12.1.1).
    """

    __slots__ = (
        "call_id", "local_tag", "remote_tag", "local_party", "remote_party",
        "local_cseq", "remote_cseq", "route_set", "remote_target",
        "local_contact", "state", "is_uac", "secure",
    )

    def __init__(self, call_id, local_tag, remote_tag, local_party,
                 remote_party, local_cseq, remote_cseq, route_set,
                 remote_target, local_contact, state=EARLY, is_uac=False,
                 secure=False):
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_party = local_party
        self.remote_party = remote_party
        self.local_cseq = local_cseq
        self.remote_cseq = remote_cseq
        self.route_set = list(route_set)
        self.remote_target = remote_target
        self.local_contact = local_contact
        self.state = state
        self.is_uac = is_uac
        self.secure = secure

    # ------------------------------------------------------------ creation

    @classmethod
    def from_uas(cls, request, local_tag, local_contact, local_cseq=None):
        """
        The dialog a UAS creates when it answers C{request} with a 1xx or
        2xx carrying C{local_tag} as the To tag (RFC 3261 12.1.1).  It
        starts C{"early"}; call L{confirm} when the 2xx goes out.

        Route set: the request's Record-Route values in order.  Remote
        target: its Contact (a 400 L{DialogError} if it has none, or C{*}).
        Remote CSeq: the request's.  Local CSeq: C{local_cseq}, else a
        random start (see L{Dialog}).

        @raise DialogError: 481 if the request already has a To tag (it is
            not dialog-creating), 400 without a usable Contact.
        """
        if not local_tag:
            raise ValueError("a UAS dialog needs a local tag")
        if request.to_tag:
            raise DialogError("Request already has a To tag", 481)
        target = _contact_uri(request, request.method)
        if target is None:
            raise DialogError("Missing Contact in " + request.method, 400)
        if local_cseq is None:
            local_cseq = random_below(UAS_CSEQ_RANGE)
        # (positional: one dialog per incoming call)
        return cls(
            request.call_id,                    # call_id
            local_tag,                          # local_tag
            request.from_tag or "",             # remote_tag
            _without_tag(request.to),           # local_party
            _without_tag(request.from_),        # remote_party
            local_cseq,                         # local_cseq
            request.cseq[0],                    # remote_cseq
            request.record_routes,              # route_set
            target,                             # remote_target
            local_contact,                      # local_contact
            EARLY,                              # state
            False,                              # is_uac
            request.uri is not None and request.uri.scheme == "sips",   # secure
        )

    @classmethod
    def from_uac(cls, request, response, local_contact):
        """
        The dialog a UAC creates from its C{request} and a C{response} to it
        (RFC 3261 12.1.2): a 101-199 with a To tag makes it C{"early"}, a
        2xx C{"confirmed"}.  Route set: the response's Record-Route values
        reversed.  Remote target: the response's Contact (the request URI
        if the response has none, which RFC 3261 forbids for a 2xx but
        leniency costs nothing here).  Local CSeq: the request's.

        C{response=None} gives an early dialog with no remote tag yet, its
        remote target the Request-URI and its route set the request's
        Route headers; L{confirm} with the 2xx completes it.

        @raise DialogError: for a response that cannot create a dialog (a
            100, a 1xx without a To tag, a final non-2xx) or one to another
            request.
        """
        if not request.from_tag:
            raise ValueError("the request has no From tag")
        dialog = cls(
            call_id=request.call_id,
            local_tag=request.from_tag,
            remote_tag=None,
            local_party=_without_tag(request.from_),
            remote_party=_without_tag(request.to),
            local_cseq=request.cseq.seq,
            remote_cseq=None,
            route_set=request.routes,
            remote_target=_request_uri(request.uri),
            local_contact=local_contact,
            state=EARLY,
            is_uac=True,
            secure=request.uri.scheme == "sips",
        )
        if response is None:
            return dialog
        _check_response_to(request, response)
        status = response.status
        if 101 <= status <= 199:
            if not response.to_tag:
                raise DialogError("Provisional response without a To tag")
            dialog._take_response(response)
        elif 200 <= status <= 299:
            dialog._take_response(response)
            dialog.state = CONFIRMED
        else:
            raise DialogError("A %d response creates no dialog" % (status,))
        return dialog

    def _take_response(self, response):
        """Tag, route set and target from a response (12.1.2)."""
        self.remote_tag = response.to_tag or ""
        self.route_set = list(reversed(response.record_routes))
        target = _contact_uri(response, "response")
        if target is not None:
            self.remote_target = target

    # ------------------------------------------------------------ identity

    @property
    def id(self):
        return (self.call_id, self.local_tag, self.remote_tag)

    def matches_request(self, request):
        """Whether a request we received belongs to this dialog."""
        return request_dialog_id(request) == self.id

    def matches_response(self, response):
        """Whether a response we received belongs to this dialog."""
        return response_dialog_id(response) == self.id

    request_dialog_id = staticmethod(request_dialog_id)
    response_dialog_id = staticmethod(response_dialog_id)

    # ------------------------------------------------------------ state

    def confirm(self, response=None):
        """
        Early to confirmed.  A UAC passes the 2xx: the remote tag (if it
        had none), route set and remote target are taken from it (RFC 3261
        13.2.2.4: the route set is recomputed from the 2xx).  A UAS may pass
        the 2xx it sends (checked against the dialog ID, nothing taken from
        it: its route set is fixed by the request).  Confirming a confirmed
        dialog changes nothing (a 2xx retransmission).

        @raise DialogError: if the dialog is terminated, or the response is
            not a 2xx or carries another dialog's tags.
        """
        if self.state == TERMINATED:
            raise DialogError("Dialog is terminated", 481)
        if response is not None:
            if not 200 <= response.status <= 299:
                raise DialogError("Only a 2xx confirms a dialog")
            if self.is_uac:
                call_id, local, remote = response_dialog_id(response)
            else:
                # a UAS passes the 2xx it sends: the To tag is ours
                call_id, local, remote = (
                    response.call_id, response.to_tag or "", response.from_tag or "")
            if (call_id, local) != (self.call_id, self.local_tag) or (
                    self.remote_tag is not None and remote != self.remote_tag):
                raise DialogError("Response belongs to another dialog", 481)
        if self.state == CONFIRMED:
            return
        if self.is_uac and response is not None:
            self._take_response(response)
        elif self.remote_tag is None:
            raise DialogError("A dialog without a remote tag needs its 2xx")
        self.state = CONFIRMED

    def terminate(self):
        """The dialog is over (BYE sent or received, early dialog failed)."""
        self.state = TERMINATED

    @property
    def terminated(self):
        return self.state == TERMINATED

    # ------------------------------------------------------------ sending

    def _routing(self):
        """(Request-URI, Route values) per RFC 3261 12.2.1.1."""
        routes = self.route_set
        target = self.remote_target
        if not routes:
            return _request_uri(target), []
        first = routes[0]
        if "lr" in first.uri.params or "lr" in first.params:
            return _request_uri(target), [str(r) for r in routes]
        # strict routing: the first route becomes the Request-URI, the
        # remote target goes last in the Route header
        return (_request_uri(routes[0].uri),
                [str(r) for r in routes[1:]] + ["<%s>" % (target,)])

    def _build(self, method, cseq, via, headers, body, content_type,
               max_forwards, contact):
        if self.remote_tag is None:
            raise DialogError("Dialog has no remote tag yet", 481)
        ruri, routes = self._routing()
        extra = list(headers)
        extra_names = {n.lower() for n, _ in extra}
        hdrs = [("Via", via), ("Max-Forwards", str(max_forwards))]
        hdrs.extend(("Route", r) for r in routes)
        hdrs.append(("From", str(_with_tag(self.local_party, self.local_tag))))
        hdrs.append(("To", str(_with_tag(self.remote_party, self.remote_tag))))
        hdrs.append(("Call-ID", self.call_id))
        hdrs.append(("CSeq", str(CSeq(cseq, method))))
        if contact and "contact" not in extra_names and "m" not in extra_names:
            c = self.local_contact
            hdrs.append(("Contact", c if c.lstrip().startswith("<") else "<%s>" % (c,)))
        hdrs.extend(extra)
        if body and content_type is None and "content-type" not in extra_names \
                and "c" not in extra_names:
            raise ValueError("a body needs a Content-Type")
        if content_type is not None:
            hdrs.append(("Content-Type", content_type))
        return Request(method, ruri, hdrs, body)

    def create_request(self, method, via, headers=(), body=b"",
                       content_type=None, max_forwards=70):
        """
        A request inside this dialog (RFC 3261 12.2.1.1).

        To is the remote party with the remote tag, From the local party
        with the local tag; CSeq is C{local_cseq + 1} (and C{local_cseq}
        moves on) except for ACK and CANCEL, which reuse C{local_cseq}
        (for the ACK of a 2xx use L{create_ack}).  Request-URI and Route:
        no route set, the remote target and no Route; a first route with
        C{;lr} (loose routing), the remote target and the whole route set;
        otherwise (strict routing) the first route's URI and the rest of
        the route set followed by the remote target.  Contact (C{<local
        contact>}) goes on INVITE, UPDATE, SUBSCRIBE, REFER and NOTIFY
        unless C{headers} has one.  C{via} is the whole Via value (the
        transport builds it, branch included).  C{headers} are extra
        C{(name, value)} pairs, added after the dialog's own.

        @raise DialogError: 481 if the dialog is terminated or has no
            remote tag yet, 500 if the CSeq space is exhausted.
        @raise ValueError: for a body without a Content-Type.
        """
        if self.state == TERMINATED:
            raise DialogError("Dialog is terminated", 481)
        method = method.upper()
        if method in ("ACK", "CANCEL"):
            cseq = self.local_cseq
        else:
            if self.local_cseq >= MAX_CSEQ:
                raise DialogError("CSeq space exhausted", 500)
            cseq = self.local_cseq + 1
        request = self._build(method, cseq, via, headers, body, content_type,
                              max_forwards, method in CONTACT_METHODS)
        self.local_cseq = cseq
        return request

    def create_ack(self, invite_cseq, via, body=b"", content_type=None,
                   headers=(), max_forwards=70):
        """
        The ACK for a 2xx to the INVITE numbered C{invite_cseq} (RFC 3261
        13.2.2.4): CSeq C{invite_cseq ACK}, routed like any request of the
        dialog, C{local_cseq} unchanged.  Allowed in any state: the 2xx was
        received, so it is ACKed even if the dialog has just ended.
        """
        return self._build("ACK", invite_cseq, via, headers, body,
                           content_type, max_forwards, False)

    # ------------------------------------------------------------ receiving

    def check_request(self, request):
        """
        Check a request we received inside this dialog (RFC 3261 12.2.2)
        and update the remote CSeq.

        ACK and CANCEL are exempt from the CSeq check (an ACK carries its
        INVITE's number; a CANCEL its request's).  A CSeq number lower than
        the remote CSeq is out of order: a 500.  An equal number is
        accepted (a retransmission is absorbed by the transaction layer
        before it gets here).

        @raise DialogError: 481 if the request is not of this dialog or the
            dialog is terminated; 500 if out of order.
        """
        if not self.matches_request(request):
            raise DialogError("Request does not match the dialog", 481)
        if self.state == TERMINATED:
            raise DialogError("Dialog is terminated", 481)
        if request.method in ("ACK", "CANCEL"):
            return
        seq = request.cseq.seq
        remote = self.remote_cseq
        if remote is not None and seq < remote:
            raise DialogError("CSeq out of order", 500)
        self.remote_cseq = seq

    def target_refresh(self, msg):
        """
        Apply a target refresh: the remote target becomes the message's
        Contact, if it has one.  Refreshes are requests whose method is
        INVITE, UPDATE, SUBSCRIBE or NOTIFY, 2xx responses to them, and
        101-199 responses to an INVITE while the dialog is early.  Other
        messages change nothing.  Returns whether the target changed.

        @raise DialogError: 400 for C{Contact: *}.
        """
        if isinstance(msg, Request):
            refresh = msg.method in TARGET_REFRESH_METHODS
        else:
            method = msg.cseq.method
            refresh = (200 <= msg.status <= 299 and method in TARGET_REFRESH_METHODS) or (
                101 <= msg.status <= 199 and method == "INVITE" and self.state == EARLY)
        if not refresh:
            return False
        target = _contact_uri(msg, "target refresh")
        if target is None or str(target) == str(self.remote_target):
            return False
        self.remote_target = target
        return True

    def __repr__(self):
        return "<Dialog %s %s/%s/%s cseq=%s/%s>" % (
            self.state, self.call_id, self.local_tag, self.remote_tag,
            self.local_cseq, self.remote_cseq)


def _check_response_to(request, response):
    if (response.call_id != request.call_id
            or (response.from_tag or "") != (request.from_tag or "")
            or response.cseq.seq != request.cseq.seq
            or response.cseq.method != request.method):
        raise DialogError("Response is not for this request")


__all__ = [
    "Dialog", "DialogError", "request_dialog_id", "response_dialog_id",
    "new_tag", "new_call_id", "new_branch", "BRANCH_MAGIC",
    "CONTACT_METHODS", "TARGET_REFRESH_METHODS",
    "EARLY", "CONFIRMED", "TERMINATED",
]
