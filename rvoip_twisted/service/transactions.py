"""
The transaction layer's Twisted shell: L{TransactionManager} drives the
sans-IO machines of L{rvoip_twisted.sip.transaction} with the reactor's
clock and the SIP transport.

Downward it uses the transport object it is given::

    transport.send(data, dest)                  # dest: a Destination
    transport.response_destination(request)     # RFC 3261 18.2.2 / RFC 3581
    transport.request_destination(request)

and the transport calls L{TransactionManager.message_received} for every
parsed message and L{TransactionManager.transport_error} when sending to a
destination failed.

Upward, the TU (the session layer) implements::

    tu.request_received(request, server_txn)   # every new request but ACK;
                                               # answer with server_txn.respond(r)
    tu.ack_received(ack)                       # an ACK for a 2xx: matched to an
                                               # Accepted INVITE transaction, or stray
    tu.stray_response(response)                # a response matching no client
                                               # transaction (2xx retransmission)
    tu.transaction_failed(server_txn, reason)  # optional: Timer H fired (reason
                                               # "timeout") or a response could not be
                                               # sent (the transport's reason)

CANCEL arrives through C{request_received} like any request, in its own
server transaction; L{TransactionManager.matches_cancel} tells whether it
cancels a given INVITE server transaction, live or answered (else the TU
answers 481), and L{TransactionManager.find_invite_for_cancel} gives the live
one it cancels.  The TU answers the CANCEL (200) and the INVITE (487) itself.

A server transaction that only absorbs retransmissions (non-INVITE
Completed, INVITE Accepted) leaves the tables as an object: the manager
keeps it as a plain tuple until Timer J or L (see L{TransactionManager._absorb}).

The manager answers two things by itself: 482 to a merged request (RFC
3261 8.2.2.2: no To tag, the From tag, Call-ID and CSeq of a request in a
live server transaction, but another branch), and 500 to a request the TU
raised on without answering it (503 when no TU is set).

Client side, L{TransactionManager.send_request} returns a client
transaction; its C{owner} gets C{response_received(response, txn)} for
every response (1xx, and every 2xx including RFC 6026 Accepted-state
retransmissions), C{transaction_timeout(txn)} (Timer B/F, or no final
response 64*T1 after a CANCEL: treat as 408) and C{transport_error(txn,
reason)} (treat as 503).  Build a CANCEL with C{invite_txn.cancel_request()}
and send it with C{send_request}; while the INVITE has had no provisional
response the manager holds the CANCEL back (RFC 3261 9.1) and sends it on
the first 1xx; if a final response comes first the CANCEL is never sent and
its owner gets C{transaction_timeout}.  The ACK for a 2xx is the dialog layer's: send it
with L{TransactionManager.send_stateless}.

An exception raised by a TU or owner callback is logged and never reaches
the transport or the reactor.
"""

import collections

from twisted.application import service
from twisted.internet import defer

from ..logs import Logger
from ..sip.address import INTERN_MAX, destination
from ..sip.ids import BRANCH_MAGIC, new_tag
from ..sip.message import Response
from ..sip.transaction import (
    CALLING, COMPLETED, PROCEEDING, TERMINATED, TRYING, InviteClientTransaction,
    InviteServerTransaction, NonInviteClientTransaction,
    NonInviteServerTransaction, TimerConfig, ack_keys, client_key,
    ensure_branch, server_key,
)
from .timers import TimerQueue


def _discard(data):
    """The send callable of an ended transaction."""


class _Shell:
    """
    What the manager adds to each machine: its key in the table, its
    destination, its timer entry, and (client side) the TU's owner.
    """

    __slots__ = ()

    def _init_shell(self, manager, dest, key, owner=None):
        self.manager = manager
        self.dest = dest
        self.key = key
        self.owner = owner
        self.timer = None
        self.timer_at = None
        self.merge_key = None
        self.pending_cancel = None
        self.raw_key = None


_SHELL_SLOTS = ("manager", "dest", "key", "owner", "timer", "timer_at", "merge_key",
                "pending_cancel", "raw_key")


class _ServerShell(_Shell):
    __slots__ = ()

    def respond(self, response, now=None):
        """
        Send a response through this transaction (see
        L{rvoip_twisted.sip.transaction.ServerTransaction.respond}).
        """
        manager = self.manager
        if now is None:
            now = manager._reactor.seconds()
        sent = super().respond(response, now)
        manager._reschedule(self)
        return sent


class _InviteClient(_Shell, InviteClientTransaction):
    __slots__ = _SHELL_SLOTS

    def __init__(self, manager, request, dest, key, owner):
        InviteClientTransaction.__init__(
            self, request, manager._events, manager._sender(dest), manager.config)
        self._init_shell(manager, dest, key, owner)


class _NonInviteClient(_Shell, NonInviteClientTransaction):
    __slots__ = _SHELL_SLOTS

    def __init__(self, manager, request, dest, key, owner):
        NonInviteClientTransaction.__init__(
            self, request, manager._events, manager._sender(dest), manager.config)
        self._init_shell(manager, dest, key, owner)


class _InviteServer(_ServerShell, InviteServerTransaction):
    __slots__ = _SHELL_SLOTS

    def __init__(self, manager, request, dest, key):
        InviteServerTransaction.__init__(
            self, request, manager._events, manager._sender(dest), manager.config)
        self._init_shell(manager, dest, key)


class _NonInviteServer(_ServerShell, NonInviteServerTransaction):
    __slots__ = _SHELL_SLOTS

    def __init__(self, manager, request, dest, key):
        NonInviteServerTransaction.__init__(
            self, request, manager._events, manager._sender(dest), manager.config)
        self._init_shell(manager, dest, key)


class _Events:
    """The owner of every machine: forwards their events to the TU and owners."""

    __slots__ = ("_m",)

    def __init__(self, manager):
        self._m = manager

    def response_received(self, response, txn):
        m = self._m
        if txn.pending_cancel is not None:
            m._release_cancel(txn, response.status < 200)
        try:
            txn.owner.response_received(response, txn)
        except Exception:
            m._log.failure("owner failed on {response!r}", response=response)

    def ack_received(self, ack, txn):
        self._m._tu_ack(ack)

    def transaction_timeout(self, txn):
        m = self._m
        if txn.is_client:
            try:
                txn.owner.transaction_timeout(txn)
            except Exception:
                m._log.failure("owner failed on a timeout of {txn!r}", txn=txn)
        else:
            m._server_failed(txn, "timeout")

    def transport_error(self, txn, reason):
        m = self._m
        if txn.is_client:
            try:
                txn.owner.transport_error(txn, reason)
            except Exception:
                m._log.failure("owner failed on a transport error of {txn!r}", txn=txn)
        else:
            m._server_failed(txn, reason)

    def transaction_terminated(self, txn):
        self._m._remove(txn)


class TransactionManager(service.Service):
    """
    The RFC 3261 section 17 transaction layer: the table of client and
    server transactions, one timer entry per transaction (all on one
    L{TimerQueue}), matching,
    Timer 100, merged-request detection.

    @ivar tu: the transaction user (may be set after construction).
    @ivar config: the L{TimerConfig}.
    @ivar drain_timeout: how long L{stopService} waits at most for the
        busy transactions to end before it drops them.
    """

    _log = Logger()
    name = "transactions"

    #: how often stopService looks whether the busy transactions are done.
    DRAIN_POLL = 0.05

    def __init__(self, reactor, transport, tu=None, config=None, drain_timeout=5.0):
        self._reactor = reactor
        self._transport = transport
        self.tu = tu
        self.config = config if config is not None else TimerConfig()
        self.drain_timeout = drain_timeout
        self._events = _Events(self)
        self._timers = TimerQueue(reactor)
        self._fire_cb = self._fire      # one bound method for every timer entry
        self._senders = {}              # Destination -> send callable (_sender)
        self._clients = {}
        self._servers = {}
        # (From tag, Call-ID, CSeq) -> server transaction, for requests
        # without a To tag (RFC 3261 8.2.2.2).
        self._merge = {}
        # hash of a request datagram -> its server transaction: the
        # byte-identical retransmissions (what UAs send) are absorbed
        # without being parsed; see retransmission_received.
        self._raw = {}
        # Server transactions that only absorb retransmissions until Timer J
        # or L (see _absorb), oldest first, as plain tuples.
        self._absorbing = collections.deque()
        self._absorbing_timer = None
        self._expire_cb = self._expire_absorbing
        self._waiters = []
        self._drain_call = None
        self._stop_deadline = None

    # ------------------------------------------------------------ from the transport

    def message_received(self, msg, source):
        """A parsed message from C{source} (a Destination)."""
        if isinstance(msg, Response):
            self._response(msg)
        else:
            self._request(msg)

    def retransmission_received(self, raw_key):
        """
        The transport's fast path, before it parses a datagram: C{raw_key}
        is C{hash(datagram)}.  When it is the key of the request that
        created a live server transaction, the datagram is a byte-identical
        retransmission: the transaction handles it (re-sends its last
        response, or absorbs it) and C{True} is returned; the datagram is
        not parsed.  Otherwise C{False}: parse and deliver it as usual.

        A datagram that differs in any byte (a retransmission re-formatted
        by a proxy, say) takes the parsed path and is matched by RFC 3261
        17.2.3 as always.
        """
        txn = self._raw.get(raw_key)
        if txn is None:
            return False
        if type(txn) is tuple:
            self._absorbed(txn)
            return True
        txn.receive_retransmission(self._reactor.seconds())
        self._reschedule(txn)
        return True

    def transport_error(self, dest, reason):
        """
        Sending to C{dest} failed: every transaction bound to it ends, and
        its owner (or the TU) is told.
        """
        self._log.debug("transport error towards {dest}: {reason}", dest=dest, reason=reason)
        for txn in [t for t in self._clients.values() if t.dest == dest]:
            txn.transport_error(reason)
        for txn in list(self._servers.values()):
            if type(txn) is tuple:
                if txn[3:6] == dest:        # it owes nothing: just forget it
                    self._forget(txn)
            elif txn.dest == dest:
                txn.transport_error(reason)

    def _response(self, response):
        key = client_key(response)
        txn = self._clients.get(key)
        if txn is None:
            tu = self.tu
            if tu is not None:
                try:
                    tu.stray_response(response)
                except Exception:
                    self._log.failure("TU failed on a stray {response!r}", response=response)
            return
        txn.receive_response(response, self._reactor.seconds())
        self._reschedule(txn)

    def _request(self, request):
        if request.method == "ACK":
            self._ack(request)
            return
        key = server_key(request)
        txn = self._servers.get(key)
        if txn is not None:
            if type(txn) is tuple:
                self._absorbed(txn)
            else:
                txn.receive_request(request, self._reactor.seconds())   # a retransmission
                self._reschedule(txn)
            return
        now = self._reactor.seconds()

        dest = self._transport.response_destination(request)
        if request.method == "INVITE":
            txn = _InviteServer(self, request, dest, key)
        else:
            txn = _NonInviteServer(self, request, dest, key)
        self._servers[key] = txn
        raw_key = request.raw_key
        if raw_key is not None:
            self._raw[raw_key] = txn
            txn.raw_key = raw_key
        txn.start(now)
        if request.to_tag is None:
            # Flat, of strings and ints: a plain tuple the collector stops
            # tracking (CSeq is a namedtuple, which it never does).
            cseq = request.cseq
            mkey = (request.from_tag, request.call_id, cseq[0], cseq[1])
            other = self._merge.get(mkey)
            if other is not None:
                self._log.debug("merged request {key}: 482", key=key)
                txn.respond(request.response(482, to_tag=new_tag()), now)
                return
            self._merge[mkey] = txn
            txn.merge_key = mkey

        tu = self.tu
        if tu is None:
            self._log.warn("no TU: {method} answered 503", method=request.method)
            txn.respond(request.response(503, to_tag=new_tag()), now)
            return
        try:
            tu.request_received(request, txn)
        except Exception:
            self._log.failure("TU failed on {request!r}", request=request)
            if txn.state == PROCEEDING or txn.state == TRYING:
                if not txn.final_sent:
                    try:
                        txn.respond(request.response(500, to_tag=new_tag()))
                    except Exception:
                        self._log.failure("cannot answer 500")
        self._reschedule(txn)

    def _ack(self, ack):
        servers = self._servers
        for key in ack_keys(ack):
            txn = servers.get(key)
            if type(txn) is tuple:
                break       # an INVITE answered 2xx: its ACK is the TU's (as in Accepted)
            if txn is not None and txn.method == "INVITE" and txn.matches_ack(ack):
                txn.receive_request(ack, self._reactor.seconds())
                self._reschedule(txn)
                return
        self._tu_ack(ack)                            # a stray ACK (for a 2xx)

    def _tu_ack(self, ack):
        tu = self.tu
        if tu is not None:
            try:
                tu.ack_received(ack)
            except Exception:
                self._log.failure("TU failed on {ack!r}", ack=ack)

    def _server_failed(self, txn, reason):
        hook = getattr(self.tu, "transaction_failed", None)
        if hook is not None:
            try:
                hook(txn, reason)
            except Exception:
                self._log.failure("TU failed on a failure of {txn!r}", txn=txn)

    # ------------------------------------------------------------ for the TU

    def send_request(self, request, owner, dest=None):
        """
        Send a request in a new client transaction and return it.

        The request goes out as built, except that a top Via without a
        branch gets a fresh C{z9hG4bK} one.  C{dest} defaults to
        C{transport.request_destination(request)}.  ACK is not sent in a
        transaction: use L{send_stateless}.

        A CANCEL arms the 64*T1 give-up timer of the INVITE it cancels; it is
        held back (its transaction's C{state} stays C{None}) until that
        INVITE has had a provisional response (RFC 3261 9.1).
        """
        method = request.method
        if method == "ACK":
            raise ValueError("an ACK has no client transaction; use send_stateless")
        ensure_branch(request)
        key = client_key(request)
        if key in self._clients:
            raise ValueError("a client transaction %r exists already" % (key,))
        if dest is None:
            dest = self._transport.request_destination(request)
        choose = getattr(self._transport, "choose_transport", None)
        if choose is not None:
            dest = choose(request, dest)
        if method == "INVITE":
            txn = _InviteClient(self, request, dest, key, owner)
        else:
            txn = _NonInviteClient(self, request, dest, key, owner)
        now = self._reactor.seconds()
        self._clients[key] = txn
        if method == "CANCEL":
            invite = self._clients.get((key[0], "INVITE"))
            if invite is not None:
                if invite.state == CALLING:
                    # RFC 3261 9.1: not before a provisional response.
                    invite.pending_cancel = txn
                    return txn
                invite.cancel_sent(now)
                self._reschedule(invite)
        txn.start(now)
        self._reschedule(txn)
        return txn

    def _release_cancel(self, invite, send):
        """
        The INVITE a CANCEL was held for got a response or ended: send the
        CANCEL (after a provisional response), or drop it (a final response
        came first: the CANCEL would be a no-op; its owner gets
        transaction_timeout).
        """
        cancel = invite.pending_cancel
        invite.pending_cancel = None
        if send:
            now = self._reactor.seconds()
            cancel.start(now)
            self._reschedule(cancel)
            invite.cancel_sent(now)
            self._reschedule(invite)
            return
        if self._clients.get(cancel.key) is cancel:
            del self._clients[cancel.key]
        try:
            cancel.owner.transaction_timeout(cancel)
        except Exception:
            self._log.failure("owner failed on a timeout of {txn!r}", txn=cancel)
        if self._waiters and not self._clients and not self._servers:
            self._drained()

    def send_stateless(self, message, dest=None):
        """
        Send a message outside any transaction: the ACK for a 2xx (a top
        Via without a branch gets one), or a 2xx retransmission after its
        transaction ended (C{dest} required for a response).
        """
        if isinstance(message, Response):
            if dest is None:
                raise ValueError("a response sent statelessly needs a dest")
        else:
            ensure_branch(message)
            if dest is None:
                dest = self._transport.request_destination(message)
        self._transport.send(message.to_bytes(), dest)

    def may_match_invite(self, via):
        """
        Whether an INVITE whose top Via is C{via} (a L{Via}) may belong to
        a live server transaction (RFC 3261 17.2.3): its branch key is in
        the table, or it has no C{z9hG4bK} branch, so that only the whole
        request can tell.  The transport asks before it refuses an INVITE
        unparsed: a retransmission must reach its transaction.
        """
        branch = via.branch
        if branch is None or not branch.startswith(BRANCH_MAGIC):
            return True
        sent_by = via.sent_by
        return (branch, sent_by[0], sent_by[1], "INVITE") in self._servers

    def find_invite_for_cancel(self, cancel_request):
        """
        The live INVITE server transaction a received CANCEL cancels (RFC
        3261 9.2: the CANCEL's key with method INVITE), or C{None} (also
        when that INVITE was answered 2xx and only absorbs retransmissions:
        see L{matches_cancel}).
        """
        txn = self._servers.get(server_key(cancel_request, "INVITE"))
        if txn is not None and type(txn) is not tuple and txn.method == "INVITE":
            return txn
        return None

    def matches_cancel(self, cancel_request, invite_txn):
        """
        Whether a received CANCEL is for C{invite_txn} (an INVITE server
        transaction the TU keeps, or C{None}), in whichever state: live,
        or answered 2xx and absorbing retransmissions (which
        L{find_invite_for_cancel} no longer returns).  RFC 3261 9.2: the
        CANCEL's key with method INVITE.
        """
        if invite_txn is None or invite_txn.is_client:
            return False
        key = server_key(cancel_request, "INVITE")
        return invite_txn.key == key and key in self._servers

    def stats(self):
        """The table sizes: C{{"server": n, "client": n}}."""
        return {"server": len(self._servers), "client": len(self._clients)}

    # ------------------------------------------------------------ timers

    def _reschedule(self, txn):
        """Make the machine's one timer entry match its deadline."""
        deadline = txn.deadline
        if deadline == txn.timer_at:
            return
        entry = txn.timer
        if entry is not None:
            self._timers.cancel(entry)
            txn.timer = None
        txn.timer_at = deadline
        if deadline is None:
            return
        if txn.absorbing:
            self._absorb(txn, deadline)
            return
        txn.timer = self._timers.add(deadline, self._fire_cb, txn)

    # ------------------------------------------------------------ absorbing

    # A server transaction that only absorbs retransmissions until Timer J
    # or L is replaced, in the tables, by a plain tuple:
    #     (end time, key, final bytes or None, transport, host, port, raw key,
    #      merge key)
    # of strings, numbers and the two keys (plain tuples the tables hold
    # too), which the garbage collector stops tracking at its first look.
    # (A fresh tuple inside, reachable only through it, would be looked at
    # after it, and keep it tracked until a collection of the middle
    # generation.)  At thousands of calls a second some 64*T1 x 2
    # transactions per call are in that state at once; as objects (each
    # with its timer entry) they made every collection of the middle
    # generation walk them all: a stall of a third of a second at 4,000
    # calls/s (bench/README.md, twelfth session).  Their end times come in
    # order (the same 64*T1 from now), so they wait in one deque, and one
    # timer entry at a time ends those due.  The object itself is no longer
    # the manager's: the TU may still send a 2xx through it while Accepted.

    #: after ending the tuples due, the next are ended no sooner than this
    #: (up to this late), so that under load one timer entry ends a batch.
    ABSORB_SLACK = 0.02

    def _absorb(self, txn, end):
        key = txn.key
        raw_key = txn.raw_key
        mkey = txn.merge_key
        final = None if txn.method == "INVITE" else txn.final_bytes
        dest = txn.dest
        ghost = (end, key, final, dest[0], dest[1], dest[2], raw_key, mkey)
        if self._servers.get(key) is txn:
            self._servers[key] = ghost
        if raw_key is not None and self._raw.get(raw_key) is txn:
            self._raw[raw_key] = ghost
        if mkey is not None and self._merge.get(mkey) is txn:
            self._merge[mkey] = ghost
        self._absorbing.append(ghost)
        if self._absorbing_timer is None:
            self._absorbing_timer = self._timers.add(end, self._expire_cb, None)

    def _absorbed(self, ghost):
        """A retransmission of an absorbing transaction's request."""
        final = ghost[2]
        if final is not None:
            self._sender(destination(ghost[3], ghost[4], ghost[5]))(final)

    def _expire_absorbing(self, _):
        self._absorbing_timer = None
        now = self._reactor.seconds() + 1e-9
        queue = self._absorbing
        forget = self._forget
        while queue and queue[0][0] <= now:
            forget(queue.popleft())
        if queue:
            at = queue[0][0]
            soonest = now + self.ABSORB_SLACK
            self._absorbing_timer = self._timers.add(at if at > soonest else soonest,
                                                     self._expire_cb, None)
        if self._waiters and not self._clients and not self._servers:
            self._drained()

    def _forget(self, ghost):
        """Take an absorbing transaction's tuple out of the tables."""
        key = ghost[1]
        if self._servers.get(key) is ghost:
            del self._servers[key]
        raw_key = ghost[6]
        if raw_key is not None and self._raw.get(raw_key) is ghost:
            del self._raw[raw_key]
        mkey = ghost[7]
        if mkey is not None and self._merge.get(mkey) is ghost:
            del self._merge[mkey]

    def _fire(self, txn):
        at = txn.timer_at
        txn.timer = None
        txn.timer_at = None
        now = self._reactor.seconds()
        if at is not None and now < at:
            now = at                    # float noise: the timer is due
        txn.handle_timer(now)
        if txn.state != TERMINATED:
            self._reschedule(txn)

    def _sender(self, dest):
        """
        The machines' send callable for C{dest}, one per destination (a
        transaction's own bound method would be one more object, and a
        reference cycle, for each of the tens of thousands absorbing
        retransmissions at a high call rate).  The real transport reports
        errors through L{transport_error}; a send that raises is treated
        the same way: every transaction bound to C{dest} ends.
        """
        send = self._senders.get(dest)
        if send is not None:
            return send
        log = self._log

        def send(data):
            try:
                self._transport.send(data, dest)
            except Exception as e:
                log.failure("transport failed sending to {dest}", dest=dest)
                self.transport_error(dest, str(e) or e.__class__.__name__)

        senders = self._senders
        if len(senders) >= INTERN_MAX:
            senders.clear()
        senders[dest] = send
        return send

    def _remove(self, txn):
        if txn.pending_cancel is not None:
            self._release_cancel(txn, False)
        entry = txn.timer
        if entry is not None:
            self._timers.cancel(entry)
            txn.timer = None
            txn.timer_at = None
        txn._send = _discard        # an ended transaction sends nothing more
        table = self._clients if txn.is_client else self._servers
        if table.get(txn.key) is txn:
            del table[txn.key]
        mkey = txn.merge_key
        if mkey is not None and self._merge.get(mkey) is txn:
            del self._merge[mkey]
        raw_key = txn.raw_key
        if raw_key is not None and self._raw.get(raw_key) is txn:
            del self._raw[raw_key]
        if self._waiters and not self._clients and not self._servers:
            self._drained()

    # ------------------------------------------------------------ service

    def stopService(self):
        """
        Wait until no transaction still owes anything, at most
        C{drain_timeout} seconds, then drop what is left (timers cancelled,
        owners not told).

        A transaction owes something while a client one waits for its final
        response, a server one for the TU's final response, or an INVITE
        server one retransmits a non-2xx waiting for its ACK.  Those that
        only absorb retransmissions (timers D, I, J, K, L, M) do not hold
        the shutdown up: the sockets close right after this layer anyway.
        """
        service.Service.stopService(self)
        d = defer.Deferred()
        self._waiters.append(d)
        if self._drain_call is None:
            self._stop_deadline = self._reactor.seconds() + self.drain_timeout
            self._check_drain()
        return d

    def _busy(self):
        for txn in self._clients.values():
            state = txn.state
            if state == CALLING or state == TRYING or state == PROCEEDING or state is None:
                return True
        for txn in self._servers.values():
            if type(txn) is tuple:
                continue            # absorbing: owes nothing
            state = txn.state
            if state == TRYING or state == PROCEEDING or (
                    state == COMPLETED and txn.method == "INVITE"):
                return True
        return False

    def _check_drain(self):
        self._drain_call = None
        now = self._reactor.seconds()
        if self._busy() and now < self._stop_deadline:
            self._drain_call = self._reactor.callLater(
                min(self.DRAIN_POLL, self._stop_deadline - now), self._check_drain)
        else:
            self._abandon()

    def _abandon(self):
        txns = list(self._clients.values()) + list(self._servers.values())
        if self._busy():
            self._log.info("{count} transactions still open at shutdown: dropped",
                           count=len(txns))
        for txn in txns:
            if type(txn) is tuple:
                continue
            txn.timer = None
            txn.timer_at = None
            txn._send = _discard
        self._timers.clear()
        self._absorbing.clear()
        self._absorbing_timer = None
        self._clients.clear()
        self._servers.clear()
        self._merge.clear()
        self._raw.clear()
        self._drained()

    def _drained(self):
        call = self._drain_call
        if call is not None:
            self._drain_call = None
            call.cancel()
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)


__all__ = ["TransactionManager"]
