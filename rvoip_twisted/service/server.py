"""
The server: one L{MultiService} holding the SIP listeners and the four
managers.  The twistd plugin builds one; an embedding application builds
one and adds it to its own service hierarchy::

    from rvoip_twisted.service.server import SIPServer
    from rvoip_twisted.apps.echo import EchoApp
    server = SIPServer(listen=["udp:5060", "tcp:5060"], handler=EchoApp())
    server.setServiceParent(application)
"""

import gc

from twisted.application import service
from twisted.internet import defer
from twisted.python.usage import UsageError

from ..logs import Logger
from ..sip.transaction import TimerConfig
from ..transport.sip import SIPTransport, listen_sip_tcp, listen_sip_udp
from .dialogs import DialogManager
from .media import MediaManager
from .sessions import SessionManager
from .transactions import TransactionManager


def parse_listen(spec):
    """
    C{udp:PORT[:interface=ADDR]} or C{tcp:PORT[:interface=ADDR]} (strports
    style; colons inside an IPv6 interface escaped as C{\\:}) ->
    C{(kind, port, interface)}.
    """
    parts = []
    current = ""
    i = 0
    while i < len(spec):
        ch = spec[i]
        if ch == "\\" and i + 1 < len(spec):
            current += spec[i + 1]
            i += 2
            continue
        if ch == ":":
            parts.append(current)
            current = ""
        else:
            current += ch
        i += 1
    parts.append(current)
    kind = parts[0].lower()
    if kind not in ("udp", "tcp") or len(parts) < 2:
        raise UsageError("bad --listen %r: use udp:PORT[:interface=ADDR] or tcp:PORT[...]" % (spec,))
    port = None
    interface = ""
    for item in parts[1:]:
        if "=" in item:
            key, _, value = item.partition("=")
            if key == "interface":
                interface = value
            elif key == "port":
                port = value
            else:
                raise UsageError("bad --listen option %r in %r" % (key, spec))
        elif port is None:
            port = item
        else:
            raise UsageError("bad --listen %r" % (spec,))
    try:
        port = int(port)
        if not 0 <= port <= 65535:
            raise ValueError()
    except (TypeError, ValueError):
        raise UsageError("bad port in --listen %r" % (spec,))
    return kind.upper(), port, interface


def tune_gc(threshold=10000, threshold1=100):
    """
    Tune the garbage collector for a server: objects alive at start-up
    (modules, classes, tables) are frozen out of every collection, and the
    youngest generation is collected after C{threshold} allocations
    instead of 700, the middle one after C{threshold1} young collections.

    Measured with bench/:
      - against the defaults (cps, one 8 s step at 700 calls/s, the same
        build): default thresholds gave 631 calls/s achieved, 30 %
        retransmissions and p99 setup 872 ms; (50000, 20, 100) a clean
        700 calls/s with p99 32 ms;
      - (10000, 100, 100) against (50000, 20, 100), cps at 1,000 calls/s,
        four runs each in alternating order: the longest young-generation
        pause went from 26-38 ms to 7-10 ms (a pause is a stall of every
        call's media), the time in the collector stayed at about 80 ms in
        10 s, and CPU and setup times did not move beyond the noise.  The
        middle generation is still collected every 1,000,000 allocations.

    The twistd plugin calls this; an embedding application may.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(threshold, threshold1, 100)


class _Listener(service.Service):
    """Listens on one UDP or TCP port for the SIP transport."""

    def __init__(self, reactor, transport, kind, port, interface):
        self.reactor = reactor
        self.transport = transport
        self.kind = kind
        self.portnum = port
        self.interface = interface
        self.port = None

    def privilegedStartService(self):
        self._listen()
        service.Service.privilegedStartService(self)

    def startService(self):
        if self.port is None:
            self._listen()
        service.Service.startService(self)

    def _listen(self):
        if self.kind == "UDP":
            self.port = listen_sip_udp(
                self.reactor, self.portnum, self.transport.datagram_protocol(),
                interface=self.interface, maxPacketSize=65535)
        else:
            self.port = listen_sip_tcp(
                self.reactor, self.portnum, self.transport.stream_factory(),
                interface=self.interface)
        self.transport.listening(self.kind, self.port)

    def stopService(self):
        service.Service.stopService(self)
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()


class SIPServer(service.MultiService):
    """
    The whole server.  C{transport}, C{transactions}, C{dialogs}, C{media}
    and C{sessions} are its layers; C{call()} places an outgoing call.
    """

    _log = Logger()

    def __init__(self, reactor=None, listen=("udp:5060", "tcp:5060"), handler=None,
                 public_host=None, rtp_ports=(10000, 20000), timers=None,
                 rtcp_interval=5.0, symmetric_rtp=True, codecs=("PCMU", "PCMA"),
                 media_bind_host=None, overload_delay=SIPTransport.overload_delay):
        service.MultiService.__init__(self)
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.timers = timers or TimerConfig()
        self.transport = SIPTransport(reactor, public_host)
        self.transport.overload_delay = overload_delay
        self.listeners = []
        for spec in listen:
            kind, port, interface = parse_listen(spec)
            listener = _Listener(reactor, self.transport, kind, port, interface)
            listener.setServiceParent(self)
            self.listeners.append(listener)
        media_host = public_host or self._first_interface() or "127.0.0.1"
        self.media = MediaManager(
            reactor, public_host=media_host,
            bind_host=media_bind_host or self._first_interface() or "0.0.0.0",
            port_range=rtp_ports, rtcp_interval=rtcp_interval,
            symmetric_rtp=symmetric_rtp, codecs=codecs)
        self.media.setServiceParent(self)
        self.transactions = TransactionManager(reactor, self.transport, config=self.timers)
        self.transactions.setServiceParent(self)
        self.dialogs = DialogManager(reactor, self.transport, self.timers)
        self.dialogs.setServiceParent(self)
        self.sessions = SessionManager(reactor, self.transport, self.transactions,
                                       self.dialogs, self.media, handler)
        self.sessions.setServiceParent(self)
        self.transactions.tu = self.sessions
        self.transport.receiver = self.transactions
        #: the L{Registrar} once one is installed (see L{Registrar.install})
        self.registrar = None
        self._layers = [self.media, self.transactions, self.dialogs, self.sessions]
        self._layers.extend(self.listeners)

    def _first_interface(self):
        for listener in self.listeners:
            if listener.interface and listener.interface not in ("0.0.0.0", "::"):
                return listener.interface
        return None

    @property
    def handler(self):
        return self.sessions.handler

    @handler.setter
    def handler(self, value):
        self.sessions.handler = value

    def call(self, uri, **kwargs):
        """Place an outgoing call; see L{SessionManager.call}."""
        return self.sessions.call(uri, **kwargs)

    def port(self, kind="UDP"):
        """The port number a listener got (useful with port 0)."""
        return self.transport.port(kind)

    @defer.inlineCallbacks
    def stopService(self):
        """
        Stop in order: end calls (BYE) while the listeners still receive,
        let the transactions drain, then release ports and close sockets.
        """
        if not self.running:
            return
        # Services added to the server (registrar, outbound registrations)
        # stop first, newest first, while every layer still works: an
        # unregistering REGISTER still gets its answer.
        extras = [s for s in self if s not in self._layers]
        for extra in reversed(extras):
            if extra.running:
                try:
                    yield defer.maybeDeferred(extra.stopService)
                except Exception:
                    self._log.failure("stopping {service!r}", service=extra)
        yield defer.maybeDeferred(self.sessions.stopService)
        yield defer.maybeDeferred(self.dialogs.stopService)
        yield defer.maybeDeferred(self.transactions.stopService)
        yield defer.maybeDeferred(self.media.stopService)
        self.transport.close_connections()
        for listener in self.listeners:
            yield defer.maybeDeferred(listener.stopService)
        service.Service.stopService(self)

    def stats(self):
        out = {}
        out.update(self.transactions.stats())
        out.update(self.dialogs.stats())
        out.update(self.sessions.stats())
        out["shed_calls"] = self.transport.shed_calls
        out["media_sessions"] = len(self.media.sessions)
        out["rtp_ports_in_use"] = self.media.ports_in_use()
        return out
