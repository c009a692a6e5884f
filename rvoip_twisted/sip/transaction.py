"""
RFC 3261 section 17 transactions as sans-IO state machines, with the
RFC 6026 "Accepted" state for INVITE.

Four machines, one per figure of RFC 3261:

  - L{InviteClientTransaction} (figure 5, RFC 6026 figure 5): Calling,
    Proceeding, Completed, Accepted, Terminated; timers A, B, D, M.
  - L{NonInviteClientTransaction} (figure 6): Trying, Proceeding,
    Completed, Terminated; timers E, F, K.
  - L{InviteServerTransaction} (figure 7, RFC 6026 figure 7): Proceeding,
    Completed, Confirmed, Accepted, Terminated; timers G, H, I, L and
    "Timer 100" (the 100 Trying sent by the transaction when the TU has
    not answered within 200 ms).
  - L{NonInviteServerTransaction} (figure 8): Trying, Proceeding,
    Completed, Terminated; timer J.

Shape (aioquic / h11): a machine never reads a clock and never does I/O.
Every input takes C{now} (seconds, a float on any monotonic scale); the
machine's L{Transaction.deadline} is the time of its next timer (or
C{None}) and its driver calls L{Transaction.handle_timer} at or after that
time.  Bytes leave through the C{send(data)} callable given at
construction (already bound to the transaction's destination); events go to
the C{owner} object given at construction, which implements::

    # client machines
    owner.response_received(response, txn)   # every 1xx, every 2xx (also in
                                             # Accepted), the first non-2xx
    owner.transaction_timeout(txn)           # Timer B / F: treat as 408
    # server machines
    owner.ack_received(ack, txn)             # an ACK matching an Accepted
                                             # INVITE server transaction
    owner.transaction_timeout(txn)           # Timer H: the ACK never came
    # both
    owner.transport_error(txn, reason)       # RFC 3261 17.1.4 / 17.2.4
    owner.transaction_terminated(txn)        # the last event of every machine

The informative event of a termination (timeout, transport error) comes
before C{transaction_terminated}.  A machine changes its state and timers
before it sends or tells its owner anything, so an owner may call back into
it from an event.

On a reliable transport (the top Via's transport is not UDP) nothing is
retransmitted and timers D, I, J and K are zero: the machine terminates as
soon as it would have entered the waiting state.  Timers B, F, H, L, M and
Timer 100 do not depend on the transport.

Matching (RFC 3261 17.1.3, 17.2.3) is done by L{client_key} and
L{server_key}; the table that uses the keys belongs to the driver (the
Twisted shell is L{rvoip_twisted.service.transactions}).
"""

from .ids import BRANCH_MAGIC, new_branch
from .message import Request

# States (RFC 3261 figures 5-8, RFC 6026).
CALLING = "Calling"
TRYING = "Trying"
PROCEEDING = "Proceeding"
COMPLETED = "Completed"
CONFIRMED = "Confirmed"
ACCEPTED = "Accepted"
TERMINATED = "Terminated"


class TransactionStateError(Exception):
    """
    The TU asked a server transaction for something its state forbids (a
    second final response, a provisional response after the final one).
    """


class TimerConfig:
    """
    The RFC 3261 timer values (table 4), in seconds.

    @ivar t1: the round-trip estimate (500 ms).
    @ivar t2: the longest retransmission interval for non-INVITE requests
        and INVITE responses (4 s).
    @ivar t4: how long a message may stay in the network (5 s).
    @ivar timer_d: how long an INVITE client transaction absorbs response
        retransmissions over UDP (at least 32 s).
    @ivar timer_100: how long an INVITE server transaction waits for the TU
        before it sends 100 Trying itself (200 ms, RFC 3261 17.2.1).
    """

    __slots__ = ("t1", "t2", "t4", "timer_d", "timer_100")

    def __init__(self, t1=0.5, t2=4.0, t4=5.0, timer_d=32.0, timer_100=0.2):
        if not (0 < t1 <= t2) or t4 <= 0 or timer_d < 0 or timer_100 < 0:
            raise ValueError("bad timer values")
        self.t1 = t1
        self.t2 = t2
        self.t4 = t4
        self.timer_d = timer_d
        self.timer_100 = timer_100

    @property
    def timeout(self):
        """64*T1: timers B, F, H, J, L and M."""
        return 64 * self.t1

    def __repr__(self):
        return "<TimerConfig t1=%r t2=%r t4=%r timer_d=%r timer_100=%r>" % (
            self.t1, self.t2, self.t4, self.timer_d, self.timer_100)


DEFAULT_CONFIG = TimerConfig()


# ---------------------------------------------------------------- matching

def client_key(message):
    """
    The client transaction key of a request we send or a response we
    receive (RFC 3261 17.1.3): the top Via branch and the CSeq method.
    """
    return (message.top_via.branch, message.cseq[1])


def _via_key(via):
    # RFC 2543 "top Via matches": every part except what a server adds.
    params = via.params
    if params:
        params = tuple(sorted(
            (k.lower(), v) for k, v in params.items()
            if k.lower() not in ("received", "rport")))
    else:
        params = ()
    return (via.transport, via.host.lower(), via.port, params)


def server_key(request, method=None, to_tag=False):
    """
    The server transaction key of a received request (RFC 3261 17.2.3).

    With a C{z9hG4bK} branch: C{(branch, sent-by host, sent-by port,
    method)}, where an ACK
    takes the method INVITE.  Without (RFC 2543): the Request-URI, To tag,
    From tag, Call-ID, CSeq number, method and top Via.

    @param method: the method to key on instead of the request's (a
        CANCEL looks for its INVITE with C{"INVITE"}).
    @param to_tag: the To tag to key on instead of the request's, for
        RFC 2543 ACK matching (C{False}: the request's own).
    """
    via = request.top_via
    if method is None:
        method = request.method
        if method == "ACK":
            method = "INVITE"
    branch = via.branch
    if branch is not None and branch.startswith(BRANCH_MAGIC):
        # Flat, of strings and ints: a plain tuple the garbage collector
        # stops tracking at its first look (see the transaction manager's
        # absorbing transactions).
        sent_by = via.sent_by
        return (branch, sent_by[0], sent_by[1], method)
    if to_tag is False:
        to_tag = request.to_tag
    return (request.uri, to_tag, request.from_tag, request.call_id,
            request.cseq[0], method, _via_key(via))


def is_rfc3261(request):
    """Whether the top Via branch carries the RFC 3261 magic cookie."""
    branch = request.top_via.branch
    return branch is not None and branch.startswith(BRANCH_MAGIC)


def ack_keys(ack):
    """
    The server keys an ACK may match: for an RFC 3261 ACK the INVITE's key;
    for an RFC 2543 ACK the INVITE keys with the ACK's To tag (a re-INVITE)
    and without a To tag (an initial INVITE).  The transaction found must
    also pass L{InviteServerTransaction.matches_ack}.
    """
    if is_rfc3261(ack):
        return (server_key(ack),)
    return (server_key(ack, "INVITE"), server_key(ack, "INVITE", None))


def ensure_branch(request):
    """
    Give the top Via of a request we originate a fresh C{z9hG4bK} branch if
    it has none.  Returns the branch.
    """
    via = request.top_via
    branch = via.branch
    if branch:
        return branch
    branch = new_branch()
    values = request.get_all("Via")
    values[0] = values[0].rstrip() + ";branch=" + branch
    request.set("Via", ", ".join(values))
    return branch


# ---------------------------------------------------------------- requests built by the layer

def _hop_headers(request):
    """The top Via, the Route headers and Max-Forwards of a request."""
    hdrs = [("Via", str(request.top_via))]
    for name, value in request.headers:
        if name == "Route":
            hdrs.append((name, value))
    hdrs.append(("Max-Forwards", "70"))
    return hdrs


def make_ack(request, response):
    """
    The ACK for a non-2xx final response to an INVITE (RFC 3261 17.1.1.3):
    the INVITE's Request-URI, top Via (same branch), Route headers, From
    and Call-ID, the To of the response, and the CSeq number with method
    ACK.
    """
    hdrs = _hop_headers(request)
    hdrs.append(("From", request.get("From")))
    hdrs.append(("To", response.get("To")))
    hdrs.append(("Call-ID", request.call_id))
    hdrs.append(("CSeq", "%d ACK" % (request.cseq[0],)))
    return Request("ACK", request.uri, hdrs)


def make_cancel(request):
    """
    The CANCEL for a pending request (RFC 3261 9.1): the same Request-URI,
    top Via (same branch), Route headers, From, To, Call-ID and CSeq
    number, with method CANCEL.
    """
    hdrs = _hop_headers(request)
    hdrs.append(("From", request.get("From")))
    hdrs.append(("To", request.get("To")))
    hdrs.append(("Call-ID", request.call_id))
    hdrs.append(("CSeq", "%d CANCEL" % (request.cseq[0],)))
    return Request("CANCEL", request.uri, hdrs)


# ---------------------------------------------------------------- machines

class Transaction:
    """
    What the four machines share.

    Each machine has at most two timers running at once: a repeating one
    (A, E, G or Timer 100) and the one that ends the current state (B, D,
    F, H, I, J, K, L, M).  L{deadline} is the earlier of the two.

    @ivar request: the request that created the transaction (a server
        transaction drops it once its final response is sent, see
        L{ServerTransaction}).
    @ivar method: the request's method.
    @ivar state: one of the module's state constants.
    @ivar reliable: whether the transport is reliable (no retransmissions,
        zero D/I/J/K).
    @ivar config: the L{TimerConfig}.
    """

    __slots__ = (
        "request", "method", "state", "reliable", "config", "_send", "_owner",
        "_retx_at", "_retx_name", "_interval", "_end_at", "_end_name",
    )

    #: whether this is a client transaction (class constant).
    is_client = None

    #: Whether all the transaction still does, until its end timer, is
    #: absorb retransmissions of its request: a non-INVITE server one
    #: Completed (each gets L{ServerTransaction.final_bytes} again, until
    #: Timer J) or an INVITE server one Accepted (each is dropped, and an
    #: ACK that matches goes to the owner, until Timer L).  A manager may
    #: then keep it as plain data (its key, final bytes, destination and
    #: end time) instead of the object.  Never for a client transaction.
    absorbing = False

    def __init__(self, request, owner, send, config=None, reliable=None):
        self.request = request
        self.method = request.method
        self.state = None
        self.config = config if config is not None else DEFAULT_CONFIG
        if reliable is None:
            reliable = request.top_via.reliable
        self.reliable = reliable
        self._send = send
        self._owner = owner
        self._retx_at = None
        self._retx_name = None
        self._interval = 0.0
        self._end_at = None
        self._end_name = None

    @property
    def branch(self):
        """The top Via branch (C{None} once a server transaction let its request go)."""
        request = self.request
        return request.top_via.branch if request is not None else None

    @property
    def terminated(self):
        return self.state == TERMINATED

    @property
    def deadline(self):
        """When L{handle_timer} must next be called, or C{None}."""
        a = self._retx_at
        b = self._end_at
        if a is None:
            return b
        if b is None or a < b:
            return a
        return b

    @property
    def timers(self):
        """The running timers, C{{name: due time}} (for tests and logs)."""
        out = {}
        if self._retx_at is not None:
            out[self._retx_name] = self._retx_at
        if self._end_at is not None:
            out[self._end_name] = self._end_at
        return out

    def handle_timer(self, now):
        """Run every timer due at C{now}."""
        at = self._retx_at
        if at is not None and at <= now:
            self._retx_at = None
            self._retransmit_timer(at, now)
        at = self._end_at
        if at is not None and at <= now and self.state != TERMINATED:
            self._end_at = None
            self._end_timer(self._end_name)

    def transport_error(self, reason):
        """
        Sending failed (ICMP unreachable, connection refused): the
        transaction ends and its owner is told (RFC 3261 17.1.4, 17.2.4).
        """
        if self.state == TERMINATED or self.state is None:
            return
        self.state = TERMINATED
        self._retx_at = self._end_at = None
        owner = self._owner
        owner.transport_error(self, reason)
        owner.transaction_terminated(self)

    # -- internals

    def _start_retx(self, name, at, interval):
        self._retx_name = name
        self._retx_at = at
        self._interval = interval

    def _next_retx(self, at, now, interval):
        # The next retransmission counts from when the last one was due, so
        # a late reactor does not stretch the schedule; a very late one
        # does not cause a burst either.
        self._interval = interval
        nxt = at + interval
        if nxt <= now:
            nxt = now + interval
        self._retx_at = nxt

    def _set_end(self, name, at):
        self._end_name = name
        self._end_at = at

    def _terminate(self):
        self.state = TERMINATED
        self._retx_at = self._end_at = None
        self._owner.transaction_terminated(self)

    def _timeout(self):
        self.state = TERMINATED
        self._retx_at = self._end_at = None
        owner = self._owner
        owner.transaction_timeout(self)
        owner.transaction_terminated(self)

    def _retransmit_timer(self, at, now):
        raise NotImplementedError()

    def _end_timer(self, name):
        raise NotImplementedError()

    def __repr__(self):
        return "<%s %s %s %s>" % (
            type(self).__name__, self.method, self.branch, self.state)


class ClientTransaction(Transaction):
    """A client transaction: it sends C{request} and receives responses."""

    __slots__ = ("_request_bytes",)

    is_client = True

    def __init__(self, request, owner, send, config=None, reliable=None):
        Transaction.__init__(self, request, owner, send, config, reliable)
        self._request_bytes = None

    @property
    def key(self):
        return client_key(self.request)

    def start(self, now):
        """Send the request and start the timers.  Call once."""
        raise NotImplementedError()

    def receive_response(self, response, now):
        """A response matching this transaction (L{client_key})."""
        raise NotImplementedError()


class InviteClientTransaction(ClientTransaction):
    """
    RFC 3261 figure 5 with RFC 6026's Accepted state.

    Calling: the INVITE is retransmitted on Timer A (T1, doubling, no cap)
    until a response or Timer B (64*T1, timeout).  Proceeding (after a
    1xx): no retransmissions, no timer; if the TU sends a CANCEL for it
    (L{cancel_sent}) and no final response comes within 64*T1 the
    transaction times out (RFC 3261 9.1).  Completed (after a 300-699): the
    transaction ACKs the response, and every retransmission of it, for
    Timer D.  Accepted (after a 2xx, RFC 6026): every 2xx is passed up (the
    dialog layer ACKs them) until Timer M (64*T1).
    """

    __slots__ = ("_ack_bytes",)

    def __init__(self, request, owner, send, config=None, reliable=None):
        if request.method != "INVITE":
            raise ValueError("not an INVITE")
        ClientTransaction.__init__(self, request, owner, send, config, reliable)
        self._ack_bytes = None

    def start(self, now):
        self.state = CALLING
        cfg = self.config
        data = self._request_bytes = self.request.to_bytes()
        if not self.reliable:
            self._start_retx("A", now + cfg.t1, cfg.t1)
        self._set_end("B", now + 64 * cfg.t1)
        self._send(data)

    def receive_response(self, response, now):
        status = response.status
        state = self.state
        if status < 200:
            if state == CALLING:
                self.state = PROCEEDING
                self._retx_at = None
                self._end_at = None          # Timer B guards Calling only
            elif state != PROCEEDING:
                return
            self._owner.response_received(response, self)
        elif status < 300:
            if state == CALLING or state == PROCEEDING:
                self.state = ACCEPTED
                self._retx_at = None
                self._set_end("M", now + 64 * self.config.t1)
            elif state != ACCEPTED:
                return
            self._owner.response_received(response, self)
        elif state == CALLING or state == PROCEEDING:
            self.state = COMPLETED
            self._retx_at = None
            wait = 0 if self.reliable else self.config.timer_d
            self._set_end("D", now + wait)
            data = self._ack_bytes = make_ack(self.request, response).to_bytes()
            self._send(data)
            self._owner.response_received(response, self)
            if not wait and self.state == COMPLETED:
                self._terminate()
        elif state == COMPLETED:
            # a retransmission of the final response: ACK it again
            self._send(self._ack_bytes)

    def cancel_request(self):
        """
        The CANCEL for this INVITE (RFC 3261 9.1).  The TU sends it with
        its own client transaction; RFC 3261 says to send it only once a
        provisional response has arrived (state Proceeding).
        """
        return make_cancel(self.request)

    def cancel_sent(self, now):
        """
        A CANCEL for this INVITE was sent: if no final response arrives in
        64*T1 the transaction gives up with a timeout (RFC 3261 9.1).
        """
        if self.state == PROCEEDING and self._end_at is None:
            self._set_end("cancel", now + 64 * self.config.t1)

    def _retransmit_timer(self, at, now):
        # Timer A
        if self.state == CALLING:
            self._next_retx(at, now, self._interval * 2)
            self._send(self._request_bytes)

    def _end_timer(self, name):
        if name == "B" or name == "cancel":
            self._timeout()
        else:                                # D, M
            self._terminate()


class NonInviteClientTransaction(ClientTransaction):
    """
    RFC 3261 figure 6.  Trying: the request is retransmitted on Timer E
    (T1, doubling, capped at T2); Proceeding (after a 1xx): retransmitted
    every T2; Timer F (64*T1) times out either; Completed (after a final
    response): response retransmissions are absorbed for Timer K (T4).
    """

    __slots__ = ()

    def __init__(self, request, owner, send, config=None, reliable=None):
        if request.method in ("INVITE", "ACK"):
            raise ValueError("%s is not a non-INVITE transaction" % (request.method,))
        ClientTransaction.__init__(self, request, owner, send, config, reliable)

    def start(self, now):
        self.state = TRYING
        cfg = self.config
        data = self._request_bytes = self.request.to_bytes()
        if not self.reliable:
            self._start_retx("E", now + cfg.t1, cfg.t1)
        self._set_end("F", now + 64 * cfg.t1)
        self._send(data)

    def receive_response(self, response, now):
        state = self.state
        if state != TRYING and state != PROCEEDING:
            return                           # Completed absorbs them
        if response.status < 200:
            self.state = PROCEEDING
        else:
            self.state = COMPLETED
            self._retx_at = None
            wait = 0 if self.reliable else self.config.t4
            self._set_end("K", now + wait)
            self._owner.response_received(response, self)
            if not wait and self.state == COMPLETED:
                self._terminate()
            return
        self._owner.response_received(response, self)

    def _retransmit_timer(self, at, now):
        # Timer E
        state = self.state
        if state == TRYING:
            interval = self._interval * 2
            t2 = self.config.t2
            self._next_retx(at, now, interval if interval < t2 else t2)
        elif state == PROCEEDING:
            self._next_retx(at, now, self.config.t2)
        else:
            return
        self._send(self._request_bytes)

    def _end_timer(self, name):
        if name == "F":
            self._timeout()
        else:                                # K
            self._terminate()


class ServerTransaction(Transaction):
    """
    A server transaction: created by a received request, answered by the
    TU through L{respond}.

    Once the final response is sent, all a non-INVITE transaction (or an
    INVITE one answered 2xx) does is absorb retransmissions for 32 s,
    re-sending bytes: it then drops C{request} and C{last_response}, so
    the tens of thousands lingering at a high call rate hold a few small
    objects each, not two parsed messages.  (An INVITE answered 300-699
    keeps them: it needs C{last_response} to match an RFC 2543 ACK.)

    @ivar last_response: the last response the TU sent through it
        (C{None} once released).
    """

    __slots__ = ("last_response", "_last_bytes", "_provisional", "_final")

    is_client = False

    def __init__(self, request, owner, send, config=None, reliable=None):
        Transaction.__init__(self, request, owner, send, config, reliable)
        self.last_response = None
        self._last_bytes = None
        self._provisional = None             # bytes of the last 1xx
        self._final = None                   # bytes of the final response

    @property
    def key(self):
        return server_key(self.request)

    @property
    def final_sent(self):
        """Whether a final response went out through this transaction."""
        return self._final is not None

    @property
    def final_bytes(self):
        """The final response as sent (bytes), or C{None}."""
        return self._final

    def _release(self):
        """Let the request and the response objects go (see the class docstring)."""
        self.request = None
        self.last_response = None

    def start(self, now):
        """Enter the first state and start its timers.  Call once."""
        raise NotImplementedError()

    def receive_request(self, request, now):
        """A retransmission of the request, or (INVITE) an ACK matching it."""
        raise NotImplementedError()

    def receive_retransmission(self, now):
        """
        A retransmission of the request known without parsing it (its bytes
        are those of the request that created the transaction): the same
        as L{receive_request} with a copy of the request.
        """
        raise NotImplementedError()

    def respond(self, response, now):
        """
        Send a response from the TU: any number of 1xx, then one final
        (and, for INVITE, further 2xx while Accepted).  Returns C{False}
        when the transaction has already ended (the response is dropped);
        raises L{TransactionStateError} for a response the state forbids.
        """
        raise NotImplementedError()

    def _bytes(self, response):
        # The dialog layer retransmits the same 2xx object: serialise it once.
        if response is self.last_response:
            return self._last_bytes
        data = response.to_bytes()
        self.last_response = response
        self._last_bytes = data
        return data

    def _refuse(self, response):
        raise TransactionStateError(
            "cannot send %d in state %s of %r" % (response.status, self.state, self))


class InviteServerTransaction(ServerTransaction):
    """
    RFC 3261 figure 7 with RFC 6026's Accepted state.

    Proceeding: the TU's provisional responses are sent, and resent on each
    INVITE retransmission; if the TU sends nothing within Timer 100 (200
    ms) the transaction sends 100 Trying.  Completed (after a 300-699): the
    final response is retransmitted on Timer G (T1 doubling, capped at T2)
    until the ACK (to Confirmed) or Timer H (64*T1: a timeout).  Confirmed:
    ACKs are absorbed for Timer I (T4).  Accepted (after a 2xx, RFC 6026):
    INVITE retransmissions are absorbed (the dialog layer retransmits the
    2xx), further 2xx from the TU are sent, ACKs matching it are passed to
    the owner, until Timer L (64*T1).
    """

    __slots__ = ()

    def __init__(self, request, owner, send, config=None, reliable=None):
        if request.method != "INVITE":
            raise ValueError("not an INVITE")
        ServerTransaction.__init__(self, request, owner, send, config, reliable)

    def start(self, now):
        self.state = PROCEEDING
        self._start_retx("100", now + self.config.timer_100, 0.0)

    @property
    def absorbing(self):
        return self.state == ACCEPTED

    def matches_ack(self, ack):
        """
        Whether an ACK found under one of L{ack_keys} belongs here: always
        for an RFC 3261 ACK (the key says it all); for an RFC 2543 one its
        To tag must be the one of the response this transaction sent (RFC
        3261 17.2.3).
        """
        if is_rfc3261(ack):
            return True
        r = self.last_response
        return r is not None and r.status >= 200 and r.to_tag == ack.to_tag

    def receive_request(self, request, now):
        state = self.state
        if request.method == "ACK":
            if state == COMPLETED:
                self.state = CONFIRMED
                self._retx_at = None
                if self.reliable:
                    self._terminate()
                else:
                    self._set_end("I", now + self.config.t4)
            elif state == ACCEPTED:
                self._owner.ack_received(request, self)
            return                           # else absorbed
        self.receive_retransmission(now)

    def receive_retransmission(self, now):
        state = self.state
        if state == PROCEEDING:
            data = self._provisional
            if data is None:
                # retransmitted before Timer 100: the client needs to hear
                # from us now, not 200 ms after the first copy.
                self._retx_at = None
                data = self._send_100()
            else:
                self._send(data)
        elif state == COMPLETED:
            self._send(self._final)
        # Confirmed, Accepted: absorbed

    def respond(self, response, now):
        state = self.state
        status = response.status
        if state == PROCEEDING:
            data = self._bytes(response)
            self._retx_at = None             # Timer 100: the TU answered
            if status < 200:
                self._provisional = data
            elif status < 300:
                self.state = ACCEPTED
                self._final = data
                self._set_end("L", now + 64 * self.config.t1)
                self._release()
            else:
                self.state = COMPLETED
                self._final = data
                cfg = self.config
                if not self.reliable:
                    self._start_retx("G", now + cfg.t1, cfg.t1)
                self._set_end("H", now + 64 * cfg.t1)
            self._send(data)
            return True
        if state == ACCEPTED:
            end = self._end_at
            if end is not None and now >= end:
                # Timer L is due though no one ran it (a manager that keeps
                # absorbing transactions as plain data lets go of the
                # object): it ends now.
                self._terminate()
                return False
            if 200 <= status < 300:
                self._send(response.to_bytes())
                return True
        if state == TERMINATED:
            return False
        self._refuse(response)

    def _send_100(self):
        data = self.request.response(100).to_bytes()
        self._provisional = data
        self._send(data)
        return data

    def _retransmit_timer(self, at, now):
        state = self.state
        if self._retx_name == "100":
            if state == PROCEEDING and self._provisional is None:
                self._send_100()
        elif state == COMPLETED:             # Timer G
            interval = self._interval * 2
            t2 = self.config.t2
            self._next_retx(at, now, interval if interval < t2 else t2)
            self._send(self._final)

    def _end_timer(self, name):
        if name == "H":
            self._timeout()
        else:                                # I, L
            self._terminate()


class NonInviteServerTransaction(ServerTransaction):
    """
    RFC 3261 figure 8.  Trying: request retransmissions are absorbed.
    Proceeding (after a 1xx): each retransmission gets the last 1xx again.
    Completed (after the final response): each retransmission gets the
    final response again, for Timer J (64*T1).
    """

    __slots__ = ()

    def __init__(self, request, owner, send, config=None, reliable=None):
        if request.method in ("INVITE", "ACK"):
            raise ValueError("%s is not a non-INVITE transaction" % (request.method,))
        ServerTransaction.__init__(self, request, owner, send, config, reliable)

    def start(self, now):
        self.state = TRYING

    @property
    def absorbing(self):
        return self.state == COMPLETED

    def receive_request(self, request, now):
        self.receive_retransmission(now)

    def receive_retransmission(self, now):
        state = self.state
        if state == PROCEEDING:
            self._send(self._provisional)
        elif state == COMPLETED:
            self._send(self._final)

    def respond(self, response, now):
        state = self.state
        if state != TRYING and state != PROCEEDING:
            if state == TERMINATED:
                return False
            self._refuse(response)
        data = self._bytes(response)
        if response.status < 200:
            self.state = PROCEEDING
            self._provisional = data
            self._send(data)
            return True
        self.state = COMPLETED
        self._final = data
        self._release()
        if self.reliable:
            self._send(data)
            if self.state == COMPLETED:
                self._terminate()
        else:
            self._set_end("J", now + 64 * self.config.t1)
            self._send(data)
        return True

    def _retransmit_timer(self, at, now):
        pass

    def _end_timer(self, name):
        self._terminate()                    # J


__all__ = [
    "CALLING", "TRYING", "PROCEEDING", "COMPLETED", "CONFIRMED", "ACCEPTED",
    "TERMINATED", "TimerConfig", "DEFAULT_CONFIG", "TransactionStateError",
    "Transaction", "ClientTransaction", "ServerTransaction",
    "InviteClientTransaction", "NonInviteClientTransaction",
    "InviteServerTransaction", "NonInviteServerTransaction",
    "client_key", "server_key", "ack_keys", "is_rfc3261", "ensure_branch",
    "make_ack", "make_cancel",
]
