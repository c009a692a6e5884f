"""
A call as the application sees it, and the per-call part of the session
layer: the decisions of one call leg (RFC 3261 sections 13-15) on top of
the transaction layer, the dialog manager and the media session.

A L{Call} never formats a retransmission or touches a socket: it asks its
server transaction to respond, the transaction manager to send requests,
the dialog manager to repeat a 2xx until the ACK, and the media session for
SDP and audio.
"""

import random

from twisted.internet import defer
from zope.interface import implementer

from .logs import Logger
from .interfaces import ICall
from .sip.auth import ClientAuth
from .sip.dialog import Dialog, DialogError, new_branch
from .sdp import SdpError
from .sip.errors import SIPError, SIPParseError
from .sip.headers import NameAddr
from .sip.message import REASONS, Request

SDP = "application/sdp"
#: what SDP negotiation raises; each carries the status to answer with.
MEDIA_ERRORS = (SIPError, SdpError)


class CallFailed(Exception):
    """
    An outgoing call (or an in-dialog request) ended without an answer.

    @ivar status: the SIP status (408 for a timeout, 503 for a transport
        error, 487 when cancelled).
    """

    def __init__(self, status, reason=None):
        self.status = status
        self.reason = reason or REASONS.get(status, "")
        Exception.__init__(self, "%d %s" % (status, self.reason))


class _Owner:
    """Routes a client transaction's events to three callables."""

    __slots__ = ("on_response", "on_timeout", "on_error")

    def __init__(self, on_response, on_timeout=None, on_error=None):
        self.on_response = on_response
        self.on_timeout = on_timeout
        self.on_error = on_error

    def response_received(self, response, txn):
        self.on_response(response)

    def transaction_timeout(self, txn):
        if self.on_timeout is not None:
            self.on_timeout()

    def transport_error(self, txn, reason):
        if self.on_error is not None:
            self.on_error(reason)


_IGNORE = _Owner(lambda response: None)


@implementer(ICall)
class Call:
    """
    One call.  States: C{incoming} (an INVITE we have not answered),
    C{calling} (our INVITE, no provisional yet), C{ringing} (180/183 sent or
    received), C{answered}, C{ended}.

    @ivar ended: a Deferred that fires with the end reason (a str).
    @ivar dtmf: the digits received so far (a str).
    """

    _log = Logger()

    def __init__(self, sessions, call_id, incoming):
        self._sessions = sessions
        self.call_id = call_id
        self.incoming = incoming
        self.state = "incoming" if incoming else "calling"
        self.ended = defer.Deferred()
        self.dtmf = ""
        self._dtmf_handlers = []
        self.dialog = None
        self.media = None
        self.remote_uri = None
        #: the Request-URI of the INVITE (the number or user called), a URI
        self.request_uri = None
        #: the INVITE that started the call (ours or theirs), a Request
        self.invite = None
        self.local_tag = None
        self.start_time = None
        self.answer_time = None
        self.end_reason = None
        self._answered = None      # Deferred for answer() (incoming) / call() (outgoing)
        self._late_offer = False
        self._reinvite = None      # Deferred of our pending re-INVITE
        self._invite_txn = None
        self._invite = None
        self._cancel_wanted = False
        self._provisional = False
        self._followed_redirect = False
        self._auth = None
        self._auth_tries = 0
        self._timers = []

    # ------------------------------------------------------------ app API

    def __repr__(self):
        return "<Call %s %s>" % (self.call_id, self.state)

    def ring(self):
        """Send 180 Ringing to an unanswered incoming call."""
        if self.state not in ("incoming", "ringing") or not self.incoming:
            return
        self.state = "ringing"
        self._respond(180)

    def answer(self):
        """
        Answer an incoming call with 200 and SDP.  Returns a Deferred that
        fires with this call once the ACK arrives.
        """
        if not self.incoming or self.state not in ("incoming", "ringing"):
            if self._answered is not None:
                return self._answered
            return defer.fail(CallFailed(481, "call is " + self.state))
        s = self._sessions
        if self._late_offer:
            body = self.media.create_offer()
        else:
            body = self._answer_sdp
        self.state = "answered"
        self.answer_time = s.reactor.seconds()
        self._answered = defer.Deferred()
        response = self._invite.response(
            200, to_tag=self.local_tag, body=body, headers=self._answer_headers(body))
        txn = self._invite_txn
        txn.respond(response)
        # the bytes and destination the transaction used, not computed again
        s.dialogs.retransmit_answer_until_ack(
            self.dialog.id, txn.final_bytes or response.to_bytes(), txn.dest,
            txn.reliable, self._ack_timeout)
        if not self._late_offer:
            self.media.start()
        self._sessions._log_call_answered(self)
        return self._answered

    def reject(self, code=486, reason=None):
        """Reject an unanswered incoming call with a final response."""
        if not self.incoming or self.state not in ("incoming", "ringing"):
            return
        self._respond(code, reason)
        self._end("rejected %d" % (code,))

    def hangup(self):
        """
        End the call: BYE when answered, CANCEL when our INVITE is still
        ringing, 480 for an incoming call not yet answered.
        """
        if self.state == "ended":
            return
        if self.state == "answered":
            self._send_bye()
            self._end("local hangup")
        elif self.incoming:
            self.reject(480, "Temporarily Unavailable")
        else:
            self._cancel_wanted = True
            if self._provisional:
                self._send_cancel()

    def play(self, source):
        self.media.play(source)

    def record(self, sink):
        self.media.record(sink)

    def echo(self):
        self.media.echo()

    def send_dtmf(self, digits, duration_ms=100):
        self.media.send_dtmf(digits, duration_ms)

    def on_dtmf(self, handler):
        """Call C{handler(digit, duration_ms)} for each DTMF digit received."""
        self._dtmf_handlers.append(handler)

    def quality(self):
        return self.media.quality() if self.media is not None else {}

    def hold(self):
        """Put the remote party on hold (re-INVITE, a=sendonly)."""
        return self._send_reinvite(self.media.hold())

    def resume(self):
        """Take the remote party off hold (re-INVITE, a=sendrecv)."""
        return self._send_reinvite(self.media.resume())

    @property
    def duration(self):
        if self.answer_time is None:
            return 0.0
        end = self._end_time if self.state == "ended" else self._sessions.reactor.seconds()
        return end - self.answer_time

    def call_later(self, delay, f, *args):
        """A timer that is cancelled when the call ends."""
        if self.state == "ended":
            return None
        dc = self._sessions.reactor.callLater(delay, f, *args)
        self._timers.append(dc)
        return dc

    # ------------------------------------------------------------ incoming

    def _start_incoming(self, request, txn):
        """An out-of-dialog INVITE: negotiate media and build the early dialog."""
        s = self._sessions
        self._invite = self.invite = request
        self._invite_txn = txn
        self.remote_uri = str(request.from_.uri)
        self.request_uri = request.uri
        self.local_tag = s.new_tag()
        self.start_time = s.reactor.seconds()
        self.media = s.media.new_session(self.call_id)   # PortsExhausted -> 503
        self.media.on_dtmf = self._dtmf
        if request.body:
            ctype = request.content_type
            if ctype != SDP:
                raise SIPError("Unsupported body type", status=415)
            self._answer_sdp = self.media.answer_offer(request.body)
        else:
            self._late_offer = True
            self._answer_sdp = None
        self.dialog = Dialog.from_uas(request, self.local_tag, s.transport.contact_uri())
        s.dialogs.add(self.dialog.id, self)

    def _respond(self, status, reason=None, body=b""):
        headers = []
        if 100 < status < 300:
            headers = self._answer_headers(body)
        response = self._invite.response(status, reason, to_tag=self.local_tag,
                                         headers=headers, body=body)
        self._invite_txn.respond(response)

    def _answer_headers(self, body):
        headers = [("Contact", "<%s>" % (self.dialog.local_contact,)),
                   ("Allow", self._sessions.ALLOW)]
        if body:
            headers.append(("Content-Type", SDP))
        return headers

    def _ack(self, ack):
        """The ACK for our 2xx arrived."""
        s = self._sessions
        if not s.dialogs.stop_answer(self.dialog.id):
            return  # a retransmitted ACK
        if self.dialog.state == "early":
            self.dialog.confirm()
        if self._late_offer:
            self._late_offer = False
            if not ack.body:
                self._log.warn("call {call}: late-offer ACK without SDP", call=self.call_id)
                self._send_bye()
                self._end("no SDP answer in ACK")
                return
            try:
                self.media.accept_answer(ack.body)
            except MEDIA_ERRORS as e:
                self._log.warn("call {call}: bad SDP answer in ACK: {err}",
                               call=self.call_id, err=e)
                self._send_bye()
                self._end("bad SDP answer in ACK")
                return
            self.media.start()
        d, self._answered = self._answered, None
        if d is not None and not d.called:
            self._answered = d
            d.callback(self)

    def _ack_timeout(self):
        self._log.info("call {call}: no ACK within 64*T1, sending BYE", call=self.call_id)
        d = self._answered
        self._send_bye()
        self._end("no ACK")
        if d is not None and not d.called:
            d.errback(CallFailed(408, "No ACK"))

    def _cancelled(self, cancel, cancel_txn):
        """CANCEL for our INVITE server transaction (RFC 3261 9.2)."""
        cancel_txn.respond(cancel.response(200, to_tag=self.local_tag))
        if self.state in ("incoming", "ringing"):
            self._respond(487)
            self._end("cancelled")

    # ------------------------------------------------------------ in-dialog requests

    def _in_dialog_request(self, request, txn):
        method = request.method
        s = self._sessions
        if method == "BYE":
            txn.respond(request.response(200))
            s.dialogs.stop_answer(self.dialog.id)
            self._end("remote hangup")
            return
        try:
            self.dialog.check_request(request)
        except DialogError as e:
            txn.respond(request.response(e.status, e.reason))
            return
        if method == "INVITE":
            self._reinvite_received(request, txn)
        elif method == "OPTIONS":
            txn.respond(s.options_response(request))
        elif method == "INFO":
            txn.respond(request.response(200))
            self._info(request)
        elif method in ("UPDATE", "PRACK", "REFER", "NOTIFY", "SUBSCRIBE", "MESSAGE"):
            txn.respond(request.response(405, headers=[("Allow", s.ALLOW)]))
        else:
            txn.respond(request.response(501))

    def _reinvite_received(self, request, txn):
        s = self._sessions
        if self._reinvite is not None:
            txn.respond(request.response(491))        # glare (RFC 3261 14.2)
            return
        if s.dialogs.answer_pending(self.dialog.id):
            txn.respond(request.response(
                500, headers=[("Retry-After", str(random.randint(0, 10)))]))
            return
        late = not request.body
        try:
            if late:
                body = self.media.create_offer()
            else:
                if request.content_type != SDP:
                    txn.respond(request.response(415, headers=[("Accept", SDP)]))
                    return
                body = self.media.answer_offer(request.body)
        except MEDIA_ERRORS as e:
            txn.respond(request.response(e.status, e.reason))
            return
        self.dialog.target_refresh(request)
        self._late_offer = late
        self._answered = None
        response = request.response(200, body=body, headers=self._answer_headers(body))
        txn.respond(response)
        s.dialogs.retransmit_answer_until_ack(
            self.dialog.id, response.to_bytes(), s.transport.response_destination(request),
            request.top_via.reliable, self._ack_timeout)
        self.media.start()

    def _info(self, request):
        if (request.content_type or "") == "application/dtmf-relay":
            signal = duration = None
            for line in request.body.decode("utf-8", "replace").splitlines():
                key, _, value = line.partition("=")
                key = key.strip().lower()
                if key == "signal":
                    signal = value.strip()
                elif key == "duration":
                    duration = value.strip()
            if signal:
                self._dtmf(signal[:1], int(duration) if duration and duration.isdigit() else 0)

    def _dtmf(self, digit, duration_ms):
        self.dtmf += digit
        self._sessions._log_dtmf(self, digit, duration_ms)
        for handler in list(self._dtmf_handlers):
            try:
                handler(digit, duration_ms)
            except Exception:
                self._log.failure("DTMF handler failed")

    # ------------------------------------------------------------ requests we send

    def _via(self, dest):
        return self._sessions.transport.via(dest.transport, new_branch())

    def _send_in_dialog(self, method, owner, body=b"", content_type=None, headers=()):
        s = self._sessions
        dest = s.transport.next_hop(self.dialog.route_set, self.dialog.remote_target)
        request = self.dialog.create_request(method, self._via(dest), headers=headers,
                                             body=body, content_type=content_type)
        s.transactions.send_request(request, owner, dest)
        return request

    def _send_bye(self):
        if self.dialog is None:
            return
        try:
            self._send_in_dialog("BYE", _IGNORE)
        except Exception:
            self._log.failure("call {call}: cannot send BYE", call=self.call_id)

    def _send_reinvite(self, offer):
        if self.state != "answered":
            return defer.fail(CallFailed(481, "call is " + self.state))
        if self._reinvite is not None:
            return defer.fail(CallFailed(491, "re-INVITE pending"))
        d = self._reinvite = defer.Deferred()

        def response(resp):
            if resp.status < 200:
                return
            self._reinvite = None
            if resp.status < 300:
                self._ack_2xx(resp, request)
                if resp.body:
                    try:
                        self.media.accept_answer(resp.body)
                    except MEDIA_ERRORS as e:
                        d.errback(CallFailed(e.status, e.reason))
                        return
                d.callback(self)
            elif resp.status == 491:
                # RFC 3261 14.1: retry after a random time.
                delay = random.uniform(2.1, 4.0) if self.dialog.is_uac else random.uniform(0, 2.0)
                self.call_later(delay, lambda: self._send_reinvite(offer).chainDeferred(d))
            else:
                d.errback(CallFailed(resp.status, resp.reason))
                if resp.status in (408, 481):
                    self.hangup()

        def timeout():
            self._reinvite = None
            d.errback(CallFailed(408))
            self.hangup()

        request = self._send_in_dialog("INVITE", _Owner(response, timeout, lambda r: timeout()),
                                       body=offer, content_type=SDP)
        return d

    def _ack_2xx(self, response, invite, dialog=None):
        """Send the ACK for a 2xx (RFC 3261 13.2.2.4); the dialog manager re-sends it."""
        s = self._sessions
        dialog = dialog or self.dialog
        dest = s.transport.next_hop(dialog.route_set, dialog.remote_target)
        ack = dialog.create_ack(invite.cseq[0], self._via(dest))
        dest = s.transport.choose_transport(ack, dest)
        data = ack.to_bytes()
        s.transport.send(data, dest)
        s.dialogs.sent_ack(dialog.id, data, dest)

    # ------------------------------------------------------------ outgoing

    def _start_outgoing(self, uri, from_uri, dest, credentials, headers):
        s = self._sessions
        self.remote_uri = str(uri)
        self.local_tag = s.new_tag()
        self.start_time = s.reactor.seconds()
        self._dest = dest
        self._extra_headers = list(headers)
        self._from = NameAddr.parse("<%s>" % (from_uri,)).with_tag(self.local_tag)
        if credentials:
            self._auth = ClientAuth(*credentials)
        self.media = s.media.new_session(self.call_id)
        self.media.on_dtmf = self._dtmf
        self._offer = self.media.create_offer()
        self._cseq = 1
        self._answered = defer.Deferred()
        self._send_invite(uri, ())
        return self._answered

    def _send_invite(self, uri, extra):
        s = self._sessions
        dest = self._dest or s.transport.uri_destination(uri)
        headers = [
            ("Via", self._via(dest)),
            ("Max-Forwards", "70"),
            ("From", str(self._from)),
            ("To", "<%s>" % (uri,)),
            ("Call-ID", self.call_id),
            ("CSeq", "%d INVITE" % (self._cseq,)),
            ("Contact", "<%s>" % (s.transport.contact_uri(transport=dest.transport),)),
            ("Allow", s.ALLOW),
            ("User-Agent", s.USER_AGENT),
            ("Content-Type", SDP),
        ]
        headers.extend(self._extra_headers)
        headers.extend(extra)
        self._invite = self.invite = Request("INVITE", uri, headers, self._offer)
        self.request_uri = uri
        self._provisional = False
        self._invite_txn = s.transactions.send_request(
            self._invite, _Owner(self._invite_response, self._invite_timeout,
                                 self._invite_error), dest)

    def _invite_timeout(self):
        self._fail(CallFailed(408, "Request Timeout"))

    def _invite_error(self, reason):
        self._fail(CallFailed(503, "Transport error: %s" % (reason,)))

    def _send_cancel(self):
        txn = self._invite_txn
        if txn is None:
            return
        cancel = txn.cancel_request()
        self._sessions.transactions.send_request(cancel, _IGNORE, txn.dest)

    def _invite_response(self, response):
        status = response.status
        if status < 200:
            if status == 100:
                return
            self._provisional = True
            if self.state == "calling":
                self.state = "ringing"
            if response.to_tag and self.dialog is None:
                self.dialog = Dialog.from_uac(self._invite, response,
                                              self._sessions.transport.contact_uri())
            if response.body and response.content_type == SDP and not self._media_answered():
                try:
                    self.media.accept_answer(response.body)
                    self._early_media = True
                    self.media.start()
                except MEDIA_ERRORS:
                    pass
            if self._cancel_wanted:
                self._cancel_wanted = False
                self._send_cancel()
            return
        if status < 300:
            self._invite_2xx(response)
        elif status < 400 and not self._followed_redirect and response.contacts:
            self._followed_redirect = True
            target = response.contacts[0].uri
            self._cseq += 1
            self.dialog = None
            self._dest = None
            self._send_invite(target, ())
        elif status in (401, 407) and self._auth is not None and self._auth_tries < 2:
            auth = self._auth.authorize(self._invite, response)
            if auth is None:
                self._fail(CallFailed(status, response.reason))
                return
            self._auth_tries += 1
            self._cseq += 1
            self.dialog = None
            self._send_invite(self._invite.uri, [auth])
        else:
            self._fail(CallFailed(status, response.reason))

    def _media_answered(self):
        return getattr(self, "_early_media", False)

    def _invite_2xx(self, response):
        s = self._sessions
        did = (self.call_id, self.local_tag, response.to_tag)
        if self.state == "answered" or self.state == "ended":
            if self.dialog is not None and did == self.dialog.id:
                s.dialogs.resend_ack(did)              # a retransmitted 2xx
            elif not s.dialogs.resend_ack(did):
                self._drop_forked(response)            # a 2xx from another fork
            return
        if self.dialog is None or self.dialog.id != did:
            self.dialog = Dialog.from_uac(self._invite, response, s.transport.contact_uri())
        self.dialog.confirm(response)
        s.dialogs.add(self.dialog.id, self)
        self._ack_2xx(response, self._invite)
        self.state = "answered"
        self.answer_time = s.reactor.seconds()
        if response.body and not self._media_answered():
            try:
                self.media.accept_answer(response.body)
            except MEDIA_ERRORS as e:
                self._log.warn("call {call}: bad SDP answer: {err}", call=self.call_id, err=e)
                self._send_bye()
                self._fail(CallFailed(488, "Bad SDP answer"))
                return
        self.media.start()
        s._log_call_answered(self)
        d, self._answered = self._answered, None
        if d is not None and not d.called:
            d.callback(self)

    def _drop_forked(self, response):
        """A second fork answered: ACK it, then BYE it (RFC 3261 13.2.2.4)."""
        s = self._sessions
        try:
            dialog = Dialog.from_uac(self._invite, response, s.transport.contact_uri())
            dialog.confirm(response)
            self._ack_2xx(response, self._invite, dialog)
            dest = s.transport.next_hop(dialog.route_set, dialog.remote_target)
            bye = dialog.create_request("BYE", self._via(dest))
            s.transactions.send_request(bye, _IGNORE, dest)
        except (SIPParseError, DialogError):
            self._log.failure("cannot end a forked dialog")

    def _fail(self, error):
        if self.state == "ended":
            return
        d, self._answered = self._answered, None
        self._end("failed %d" % (error.status,))
        if d is not None and not d.called:
            d.errback(error)

    # ------------------------------------------------------------ ending

    def _end(self, reason):
        if self.state == "ended":
            return
        self.state = "ended"
        self.end_reason = reason
        s = self._sessions
        self._end_time = s.reactor.seconds()
        for dc in self._timers:
            if dc.active():
                dc.cancel()
        self._timers = []
        if self.dialog is not None:
            self.dialog.terminate()
            s.dialogs.remove(self.dialog.id)
        s._call_ended(self)
        if self.media is not None:
            self.media.stop()
            # the media session keeps our bound method: a reference cycle
            self.media.on_dtmf = None
        d, self._answered = self._answered, None
        if d is not None and not d.called and not self.incoming:
            d.errback(CallFailed(487, reason))
        # (a fired _answered holds this call as its result: dropped above,
        # so an ended call is freed by reference counting, not by the GC)
        self.ended.callback(reason)
