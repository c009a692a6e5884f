"""
The dialog manager: the table of dialogs, and the part of the RFC 3261
mechanics that lives above the transaction layer because it outlives the
INVITE transaction (RFC 3261 13.3.1.4, 13.2.2.4; RFC 6026):

 - a UAS retransmits its 2xx to an INVITE, T1 doubling to T2, until the ACK
   arrives, and gives up after 64*T1;
 - a UAC answers every retransmission of a 2xx with the same ACK.
"""

from twisted.application import service

from ..logs import Logger
from ..sip.transaction import TimerConfig
from .timers import TimerQueue


class _PendingAnswer:
    __slots__ = ("data", "dest", "interval", "call", "deadline", "on_timeout")


class DialogManager(service.Service):
    """
    Dialogs by ID, 2xx retransmission until ACK, ACK re-sending.

    @ivar dialogs: C{(call_id, local_tag, remote_tag) -> owner}; the owner is
        whatever the session layer keeps per dialog (its call leg).
    """

    _log = Logger()
    name = "dialogs"

    def __init__(self, reactor, transport, config=None):
        self.reactor = reactor
        self.transport = transport
        self.config = config or TimerConfig()
        self.dialogs = {}
        self._pending = {}   # dialog id -> _PendingAnswer
        self._acks = {}      # dialog id -> (ack bytes, dest, cleanup timer entry)
        # Every timer of this layer (one per unacknowledged 2xx, one per ACK
        # kept for 2xx retransmissions) on one reactor delayed call.
        self._timers = TimerQueue(reactor)

    # -- table

    def add(self, dialog_id, owner):
        self.dialogs[dialog_id] = owner

    def get(self, dialog_id):
        return self.dialogs.get(dialog_id)

    def remove(self, dialog_id):
        self.dialogs.pop(dialog_id, None)
        self.stop_answer(dialog_id)
        entry = self._acks.pop(dialog_id, None)
        if entry is not None:
            self._timers.cancel(entry[2])

    # -- UAS: 2xx retransmission (RFC 3261 13.3.1.4)

    def retransmit_answer_until_ack(self, dialog_id, data, dest, reliable, on_timeout):
        """
        A 2xx to an INVITE has just been sent (by its server transaction):
        over UDP send it again at T1, 2*T1 ... capped at T2 until
        L{stop_answer} (the ACK); after 64*T1 without ACK call
        C{on_timeout()}.  A new 2xx (a re-INVITE's) replaces an older one.
        """
        self.stop_answer(dialog_id)
        p = _PendingAnswer()
        p.data = data
        p.dest = dest
        p.on_timeout = on_timeout
        p.interval = self.config.t1
        now = self.reactor.seconds()
        p.deadline = now + 64 * self.config.t1
        if reliable:
            p.call = self._timers.add(p.deadline, self._give_up, dialog_id)
        else:
            p.call = self._timers.add(now + p.interval, self._retransmit, dialog_id)
        self._pending[dialog_id] = p

    def _retransmit(self, dialog_id):
        p = self._pending.get(dialog_id)
        if p is None:
            return
        now = self.reactor.seconds()
        if now >= p.deadline - 1e-9:
            self._give_up(dialog_id)
            return
        self.transport.send(p.data, p.dest)
        p.interval = min(p.interval * 2, self.config.t2)
        p.call = self._timers.add(min(now + p.interval, p.deadline), self._retransmit, dialog_id)

    def _give_up(self, dialog_id):
        p = self._pending.pop(dialog_id, None)
        if p is None:
            return
        self._log.info("no ACK for the 2xx of dialog {dialog}: giving up", dialog=dialog_id)
        try:
            p.on_timeout()
        except Exception:
            self._log.failure("ACK timeout handler failed")

    def stop_answer(self, dialog_id):
        p = self._pending.pop(dialog_id, None)
        if p is not None:
            self._timers.cancel(p.call)
        return p is not None

    def answer_pending(self, dialog_id):
        return dialog_id in self._pending

    def retransmit_answer(self, dialog_id):
        """An INVITE retransmission reached us: the 2xx goes again (RFC 6026)."""
        p = self._pending.get(dialog_id)
        if p is not None:
            self.transport.send(p.data, p.dest)

    # -- UAC: ACK for every 2xx (RFC 3261 13.2.2.4)

    def sent_ack(self, dialog_id, data, dest):
        """Remember the ACK sent for a 2xx so 2xx retransmissions get it again."""
        old = self._acks.get(dialog_id)
        if old is not None:
            self._timers.cancel(old[2])
        cleanup = self._timers.add(
            self.reactor.seconds() + 64 * self.config.t1, self._forget_ack, dialog_id)
        self._acks[dialog_id] = (data, dest, cleanup)

    def _forget_ack(self, dialog_id):
        self._acks.pop(dialog_id, None)

    def resend_ack(self, dialog_id):
        entry = self._acks.get(dialog_id)
        if entry is None:
            return False
        self.transport.send(entry[0], entry[1])
        return True

    # -- service

    def stopService(self):
        self._timers.clear()
        self._pending.clear()
        self._acks.clear()
        return service.Service.stopService(self)

    def stats(self):
        return {"dialogs": len(self.dialogs), "pending_2xx": len(self._pending),
                "acks": len(self._acks)}
