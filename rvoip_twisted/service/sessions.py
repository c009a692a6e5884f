"""
The session coordinator: the transaction user of the server.

It reacts to the transaction layer's events, answers what needs no
application (OPTIONS, unknown methods, requests for unknown dialogs),
creates a L{Call} for each new INVITE and hands it to the application, and
places outgoing calls.  It decides; the layers below do the mechanics.
"""

from twisted.application import service
from twisted.internet import defer

from ..call import Call, CallFailed
from ..logs import LEVEL, LineBatch, Logger
from ..sip.auth import carries_credentials
from ..sip.dialog import new_call_id
from ..sip.ids import new_tag
from ..sip.errors import SIPError, SIPParseError
from ..sip.headers import split_list

#: methods we implement outside a dialog, and the ones we know but refuse.
SUPPORTED = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO")
KNOWN = ("REGISTER", "PRACK", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER",
         "MESSAGE", "PUBLISH")


def _log_value(value, fmt="%.1f"):
    return "-" if value is None else fmt % (value,)


class SessionManager(service.Service):
    """
    @ivar handler: the application, an L{ICallHandler}.
    @ivar calls: C{call_id -> Call} for every call not yet ended.
    @ivar stopping: C{True} from L{stopService} until L{startService}: a new
        call (an INVITE without a To tag) and an OPTIONS are answered 503,
        so that a peer or a proxy turns to another server, while the calls
        in progress end.
    """

    _log = Logger()
    name = "sessions"
    ALLOW = ", ".join(SUPPORTED)
    USER_AGENT = "rvoip-twisted/0.1"

    def __init__(self, reactor, transport, transactions, dialogs, media, handler=None,
                 registrar=None):
        self.reactor = reactor
        self.transport = transport
        self.transactions = transactions
        self.dialogs = dialogs
        self.media = media
        self.handler = handler
        self.registrar = registrar
        self.calls = {}
        self.completed_calls = 0
        #: extra request handlers by method (the registrar adds REGISTER).
        self.methods = {}
        #: the "call ended" lines; the event's C{calls} field holds
        #: C{(call_id, quality)} for each line.
        self._ended_lines = LineBatch(reactor, self._log, "calls")
        self.stopping = False

    new_tag = staticmethod(new_tag)

    # ------------------------------------------------------------ TU events

    def request_received(self, request, txn):
        method = request.method
        try:
            request.validate()
            if request.uri is None or request.uri.scheme not in ("sip", "sips", "tel"):
                txn.respond(request.response(416))
                return
            if method not in ("ACK", "CANCEL") and "Require" in request.header_names():
                unsupported = [
                    opt for value in request.get_all("Require")
                    for opt in split_list(value) if opt]
                if unsupported:
                    txn.respond(request.response(
                        420, headers=[("Unsupported", ", ".join(unsupported))]))
                    return
            if request.to_tag is not None:
                self._in_dialog(request, txn)
            else:
                self._out_of_dialog(request, txn)
        except SIPError as e:
            self._answer_error(request, txn, e)
        except Exception:
            self._log.failure("handling {method} {call_id}", method=method,
                              call_id=request.get("Call-ID"))
            self._answer_error(request, txn, SIPError("Server Internal Error", 500))

    def _answer_error(self, request, txn, error):
        if txn is None or txn.final_sent:
            return
        try:
            txn.respond(request.response(error.status, error.reason))
        except Exception:
            self._log.failure("cannot answer a failed request")

    def _out_of_dialog(self, request, txn):
        method = request.method
        if self.stopping and (method == "INVITE" or method == "OPTIONS"):
            txn.respond(request.response(503))
            return
        if method == "INVITE":
            if self.transport.overloaded and not self._answers_challenge(request):
                self._shed(request, txn)
            else:
                self._new_call(request, txn)
        elif method == "OPTIONS":
            txn.respond(self.options_response(request))
        elif method == "CANCEL":
            self._cancel(request, txn)
        elif method in self.methods:
            self.methods[method](request, txn)
        elif method == "BYE" or method == "INFO":
            txn.respond(request.response(481))
        elif method in KNOWN:
            txn.respond(request.response(405, headers=[("Allow", self.allow())]))
        else:
            txn.respond(request.response(501))

    def _shed(self, request, txn):
        """
        Refuse a new call while overloaded: 503, retry later (RFC 3261
        21.5.4).  The transport refuses most of them before parsing; these
        are the INVITEs it had to parse first.  An INVITE with credentials,
        when we challenge INVITEs (the answer to our 407), is a call in
        progress and is served.
        """
        txn.respond(request.response(503, headers=[
            ("Retry-After", str(self.transport.overload_retry_after))]))
        self.transport.count_shed()

    def _answers_challenge(self, request):
        """Whether C{request} carries credentials that answer our challenge
        (only when we challenge INVITEs: see L{SIPTransport.challenges_invites})."""
        return self.transport.challenges_invites and carries_credentials(request)

    def allow(self):
        return ", ".join(SUPPORTED + tuple(self.methods))

    def options_response(self, request):
        return request.response(200, to_tag=self.new_tag(), headers=[
            ("Allow", self.allow()),
            ("Accept", "application/sdp"),
            ("Accept-Encoding", "identity"),
            ("Accept-Language", "en"),
            ("Supported", ""),
            ("Contact", "<%s>" % (self.transport.contact_uri(),)),
            ("User-Agent", self.USER_AGENT),
        ])

    def _in_dialog(self, request, txn):
        call = self.dialogs.get((request.call_id, request.to_tag, request.from_tag))
        if call is None:
            if request.method == "CANCEL":
                self._cancel(request, txn)
            else:
                txn.respond(request.response(481))
            return
        call._in_dialog_request(request, txn)

    def _cancel(self, request, txn):
        call = self.calls.get(request.call_id)
        if call is None or not self.transactions.matches_cancel(request, call._invite_txn):
            txn.respond(request.response(481))
            return
        call._cancelled(request, txn)

    def _new_call(self, request, txn):
        call_id = request.call_id
        if call_id in self.calls:
            # Same Call-ID, no To tag, new branch: a second INVITE for a call
            # we already have (the transaction layer caught true merges).
            txn.respond(request.response(482))
            return
        call = Call(self, call_id, incoming=True)
        try:
            call._start_incoming(request, txn)
        except SIPError as e:
            if call.media is not None:
                call.media.stop()
            if call.dialog is not None:
                self.dialogs.remove(call.dialog.id)
            extra = [("Accept", "application/sdp")] if e.status == 415 else []
            txn.respond(request.response(e.status, e.reason, to_tag=call.local_tag,
                                         headers=extra))
            return
        except Exception as e:
            status = getattr(e, "status", None)
            if call.media is not None:
                call.media.stop()
            if call.dialog is not None:
                self.dialogs.remove(call.dialog.id)
            if status is None:
                raise
            txn.respond(request.response(status, to_tag=call.local_tag))
            return
        self.calls[call_id] = call
        if LEVEL.debug:
            self._log.debug("call {call_id} from {caller}", call_id=call_id,
                            caller=call.remote_uri)
        handler = self.handler
        if handler is None:
            call.reject(480, "No application")
            return
        d = defer.maybeDeferred(handler.incomingCall, call)
        d.addErrback(self._handler_failed, call)

    def _handler_failed(self, failure, call):
        if failure.check(CallFailed):
            # e.g. the answer() Deferred the app returned: no ACK came.
            self._log.info("call {call_id}: {error}", call_id=call.call_id,
                           error=failure.getErrorMessage())
            return
        self._log.failure("application failed on call {call_id}", failure,
                          call_id=call.call_id)
        if call.state in ("incoming", "ringing"):
            call.reject(500, "Server Internal Error")
        elif call.state == "answered":
            call.hangup()

    def ack_received(self, ack):
        call = self.dialogs.get((ack.call_id, ack.to_tag, ack.from_tag))
        if call is not None:
            call._ack(ack)

    def stray_response(self, response):
        """A 2xx retransmission after the INVITE client transaction ended."""
        try:
            did = (response.call_id, response.from_tag, response.to_tag)
        except SIPParseError:
            return
        if response.status >= 200 and response.cseq[1] == "INVITE":
            call = self.dialogs.get(did)
            if call is not None and not call.incoming:
                call._invite_2xx(response)
            else:
                self.dialogs.resend_ack(did)

    # ------------------------------------------------------------ outgoing

    def call(self, uri, from_user="rvoip", dest=None, credentials=None, headers=()):
        """
        Place a call.  C{uri} is a SIP URI (str or L{URI}) or C{host:port};
        C{credentials} a C{(username, password)} for 401/407 challenges.
        Returns a Deferred that fires with the answered L{Call} or fails
        with L{CallFailed}.
        """
        from ..sip.uri import parse_uri
        if isinstance(uri, str):
            if not uri.startswith(("sip:", "sips:", "tel:")):
                uri = "sip:" + uri
            try:
                uri = parse_uri(uri)
            except SIPParseError as e:
                return defer.fail(CallFailed(400, "Bad URI: %s" % (e.reason,)))
        call_id = new_call_id(self.transport.host)
        call = Call(self, call_id, incoming=False)
        from_uri = "sip:%s@%s" % (from_user, self.transport.uri_host)
        if credentials:
            from_uri = "sip:%s@%s" % (credentials[0], uri.host or self.transport.uri_host)
        try:
            d = call._start_outgoing(uri, from_uri, dest, credentials, headers)
        except SIPError as e:
            if call.media is not None:
                call.media.stop()
            return defer.fail(CallFailed(e.status, e.reason))
        except Exception as e:
            status = getattr(e, "status", None)
            if call.media is not None:
                call.media.stop()
            if status is None:
                return defer.fail(e)
            return defer.fail(CallFailed(status, str(e)))
        self.calls[call_id] = call
        return d

    # ------------------------------------------------------------ logging

    def _log_call_answered(self, call):
        if LEVEL.debug:
            self._log.debug("call {call_id} answered", call_id=call.call_id)

    def _log_dtmf(self, call, digit, duration_ms):
        self._log.info("dtmf digit={digit} duration={duration} call={call_id}",
                       digit=digit, duration=duration_ms, call_id=call.call_id)

    def _call_ended(self, call):
        self.calls.pop(call.call_id, None)
        self.completed_calls += 1
        if not LEVEL.info:
            return      # (--log-level warn or error: no line, nothing to work out)
        q = call.quality()
        # Formatted here in one step, and logged with the other calls that
        # ended within a second (one event: see LineBatch).
        line = ("call ended call=%s remote=%s reason=%s duration=%.1fs codec=%s sent=%d "
                "received=%d lost=%d loss=%s%% jitter=%sms rtt=%sms mos=%s") % (
            call.call_id, call.remote_uri, call.end_reason, call.duration,
            q.get("codec") or "-", q.get("packets_sent", 0), q.get("packets_received", 0),
            q.get("packets_lost", 0), _log_value(q.get("loss_pct")),
            _log_value(q.get("jitter_ms")), _log_value(q.get("rtt_ms")),
            _log_value(q.get("mos"), "%.2f"))
        self._ended_lines.add(line, (call.call_id, q))

    # ------------------------------------------------------------ service

    def startService(self):
        service.Service.startService(self)
        self.stopping = False
        self._ended_lines.open()

    @defer.inlineCallbacks
    def stopService(self):
        """
        End every call (BYE or final response) before the layers below
        stop; new calls are refused from now on (L{stopping}).  The "call
        ended" lines still batched are logged, and from then on each is
        logged at once (no delayed call outlives the service).
        """
        service.Service.stopService(self)
        self.stopping = True
        calls = list(self.calls.values())
        for call in calls:
            try:
                call.hangup()
            except Exception:
                self._log.failure("hanging up {call_id}", call_id=call.call_id)
        if calls:
            yield defer.DeferredList([c.ended for c in calls if c.state != "ended"])
        self._ended_lines.close()

    def stats(self):
        return {"calls": len(self.calls), "completed_calls": self.completed_calls}


__all__ = ["SessionManager", "CallFailed"]
