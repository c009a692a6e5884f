"""
RTP/RTCP over UDP: the only media module that touches sockets.

L{RtpProtocol} hands every datagram to a callable (the media session's
sans-IO receive path).  L{RtpEndpoint} wraps one bound UDP socket and sends
with it directly: C{send()} on a C{connect()}ed socket once the remote
address is known (the kernel then also filters other sources), C{sendto()}
before that.  Send errors (ICMP port unreachable reported as
C{ECONNREFUSED}, a full buffer) are counted, never raised.

Two ways to own the sockets, both handing out the same L{RtpEndpoint}:

  - L{RtpSocketSet} (where C{select.epoll} exists and the reactor takes
    file descriptors, i.e. Linux): plain non-blocking sockets in one epoll
    of our own, whose single fd is the only thing the reactor sees.  Why:
    with one reactor reader per stream, every datagram pays Twisted's
    per-descriptor dispatch (C{callWithLogger}, the log context, and
    C{udp.Port.doRead} reading until C{recvfrom} raises C{EAGAIN}), about
    half of the server's time per packet with a few hundred calls.
  - L{TwistedRtpListener}: C{reactor.listenUDP} per port, everywhere else.

L{default_listener} picks one for a reactor.
"""

import ctypes
import ctypes.util
import select
import socket
import struct
import sys

from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorFDSet, IReadDescriptor
from twisted.internet.protocol import DatagramProtocol
from zope.interface import implementer

from ..logs import Logger

__all__ = [
    "RtpProtocol",
    "RtpEndpoint",
    "RtpSocketSet",
    "TwistedRtpListener",
    "default_listener",
    "disconnect_socket",
    "RECEIVE_BUFFER",
    "MAX_EVENTS",
    "READ_WAITING",
]

#: SO_RCVBUF asked for (only ever raised, never lowered).
RECEIVE_BUFFER = 128 * 1024
#: Datagrams an L{RtpSocketSet} reads per reactor turn at most: a flood
#: (or a thousand streams) never holds the reactor, and the media clock
#: due in it, for more than about half a millisecond (the rest is read
#: next turn; a turn costs the reactor a few microseconds).
MAX_EVENTS = 64
#: Datagrams L{RtpEndpoint.read_waiting} reads at most at a time.
READ_WAITING = 8
#: The largest datagram read (as Twisted's C{udp.Port.maxPacketSize}).
MAX_PACKET = 8192


def _raise_receive_buffer(sock, size):
    try:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < size:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    except OSError:
        pass  # not fatal: the default buffer works, only less well


class RtpProtocol(DatagramProtocol):
    """
    Delivers datagrams to C{receiver(data, addr)}.  An exception from the
    receiver is logged and swallowed: bad input never reaches the reactor.

    Under L{TwistedRtpListener} this is the port's protocol; under
    L{RtpSocketSet} it only holds the receiver, which the set calls
    directly (one Python call less per packet), and L{receive_failed}.
    """

    noisy = False
    _log = Logger()

    def __init__(self, receiver, receive_buffer=RECEIVE_BUFFER):
        self.receiver = receiver
        self.receive_buffer = receive_buffer
        self.errors = 0

    def startProtocol(self):
        _raise_receive_buffer(self.transport.getHandle(), self.receive_buffer)

    def datagramReceived(self, data, addr):
        try:
            self.receiver(data, addr)
        except Exception:
            self.receive_failed()

    def receive_failed(self):
        """
        Count (and log now and then) an exception the receiver raised; call
        from within the C{except} clause.
        """
        self.errors += 1
        if self.errors == 1 or self.errors % 1000 == 0:
            self._log.failure("media receive path raised ({count} so far)", count=self.errors)


_libc = None


def disconnect_socket(sock):
    """
    Dissolve a UDP socket's association (connect to C{AF_UNSPEC}), so it
    receives from any source again.  Python's socket API cannot express
    this; it is done with libc where available.

    @return: whether it worked.
    """
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        address = struct.pack("=H14x", socket.AF_UNSPEC)
        return _libc.connect(sock.fileno(), address, len(address)) == 0
    except (OSError, AttributeError, ValueError):
        return False


class RtpEndpoint:
    """
    A bound UDP socket plus the fast send path.  Made by
    L{RtpSocketSet.listen} or L{TwistedRtpListener.listen}.

    @ivar socket: the socket (sends go straight to it).
    @ivar recvfrom: C{socket.recvfrom}, with the source as C{(host, port)}
        whatever the family (the IPv6 flow and scope IDs trimmed).
    @ivar protocol: the L{RtpProtocol} whose C{receiver} gets the datagrams.
    @ivar local_port: the bound port number.
    @ivar connected_to: the address the socket is connected to, or C{None}.
    @ivar send_errors: sends that failed (the datagram is dropped).
    """

    def __init__(self, sock, protocol, local_port, stop):
        """
        @param stop: a callable that stops receiving and closes the socket,
            returning a Deferred or C{None} (see L{close}).
        """
        self.socket = sock
        # (socket.family makes an enum member on each read: read it once)
        self._v6 = sock.family == socket.AF_INET6
        self.recvfrom = _host_port_recvfrom(sock) if self._v6 else sock.recvfrom
        self.protocol = protocol
        self.local_port = local_port
        self._stop = stop
        self.connected_to = None
        self.send_errors = 0
        self.closed = False

    def _map(self, addr):
        # An IPv6 socket reaches IPv4 peers through mapped addresses.
        if self._v6 and ":" not in addr[0]:
            return ("::ffff:" + addr[0], addr[1])
        return addr

    def connect(self, addr):
        """
        Connect the socket to C{addr} (re-connecting replaces the peer).

        @return: whether it worked (a failure leaves sendto in use).
        """
        try:
            self.socket.connect(self._map(addr))
        except (OSError, ValueError, TypeError):
            return False
        self.connected_to = addr
        return True

    def disconnect(self):
        """
        Receive from anyone again.

        @return: whether the socket is now unconnected.
        """
        if self.connected_to is None:
            return True
        if disconnect_socket(self.socket):
            self.connected_to = None
            return True
        return False

    def sender(self, addr):
        """
        A callable sending one datagram to C{addr}: the connected socket's
        C{send} when connected there, else a C{sendto} closure.
        """
        sock = self.socket
        if addr is not None and addr == self.connected_to:
            return sock.send
        if addr is None:
            return None
        target = self._map(addr)
        sendto = sock.sendto
        return lambda data: sendto(data, target)

    def sendto(self, data, addr):
        """
        Send one datagram, counting (not raising) failures.
        """
        try:
            if addr == self.connected_to:
                self.socket.send(data)
            else:
                self.socket.sendto(data, self._map(addr))
        except (OSError, ValueError, TypeError):
            self.send_errors += 1

    def read_waiting(self, limit=READ_WAITING):
        """
        Read the datagrams already waiting in the socket, at most C{limit},
        and hand them to the receiver now rather than when the reactor next
        gets round to the socket.  For a stream about to conceal a frame
        for want of its packet: when the reactor is behind (it runs its
        timers, the media clock, before it reads), the packet is often in
        the socket buffer, unread.  Errors (nothing waiting, a refused
        send reported, a closed socket) end the read quietly.

        @return: the number of datagrams read.
        """
        recvfrom = self.recvfrom
        protocol = self.protocol
        count = 0
        while count < limit:
            try:
                data, addr = recvfrom(MAX_PACKET)
            except OSError:
                break
            count += 1
            try:
                protocol.receiver(data, addr)
            except Exception:
                protocol.receive_failed()
        return count

    def recycle(self):
        """
        Make the endpoint idle for reuse by another session: received
        datagrams are dropped, the socket receives from anyone again.

        @return: whether it worked (if not, close it instead).
        """
        if self.closed:
            return False
        self.protocol.receiver = _drop
        if not self.disconnect():
            return False
        self.send_errors = 0
        return True

    def close(self):
        """
        Stop listening.  Idempotent.

        @return: a Deferred fired when the socket is closed, or C{None} when
            that is already done (always so under L{RtpSocketSet}).
        """
        if self.closed:
            return None
        self.closed = True
        return self._stop()


@implementer(IReadDescriptor)
class RtpSocketSet:
    """
    RTP/RTCP sockets read through one epoll of our own (see the module
    docstring for why), added to the reactor as a single reader while the
    set holds any socket.

    The inner epoll is level-triggered and each turn takes at most
    C{max_events} ready sockets, reading one datagram from each: no
    C{recvfrom} ever runs into C{EAGAIN} (no exception per read), a socket
    with more queued is simply reported again next turn, and since the
    epoll fd stays readable while anything is ready, the reactor comes back
    after its timers (the media clock) have run.

    A receive error (C{ECONNREFUSED}: an ICMP port unreachable answering
    an earlier send on a connected socket) drops nothing but the error, as
    Twisted's C{udp.Port} does.
    """

    def __init__(self, reactor, max_events=MAX_EVENTS, receive_buffer=RECEIVE_BUFFER):
        if max_events < 1:
            raise ValueError("max_events must be >= 1")
        self.reactor = reactor
        self.max_events = max_events
        self.receive_buffer = receive_buffer
        self._epoll = None
        self._reading = False  # added to the reactor
        self._entries = {}  # fd -> (recvfrom, RtpProtocol)

    def __len__(self):
        return len(self._entries)

    def listen(self, port, interface, receiver):
        """
        Bind a UDP port (C{0}: any) on C{interface} (an IPv4 or IPv6
        literal; C{""} is IPv4 any).

        @raise twisted.internet.error.CannotListenError: the port is in use
            (or cannot be bound at all).
        @rtype: L{RtpEndpoint}
        """
        family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            _raise_receive_buffer(sock, self.receive_buffer)
            sock.bind((interface, port))
            if self._epoll is None:
                self._epoll = select.epoll()
        except OSError as e:
            sock.close()
            raise CannotListenError(interface, port, e)
        protocol = RtpProtocol(receiver, self.receive_buffer)
        fd = sock.fileno()
        endpoint = RtpEndpoint(sock, protocol, sock.getsockname()[1],
                               lambda: self._close(fd, sock))
        self._epoll.register(fd, select.EPOLLIN)
        self._entries[fd] = (endpoint.recvfrom, protocol)
        if not self._reading:
            self._reading = True
            self.reactor.addReader(self)
        return endpoint

    def _close(self, fd, sock):
        """
        Unregister and close one socket, synchronously; the epoll (and the
        reactor reader) goes with the last one, so an idle service holds
        no descriptor.
        """
        del self._entries[fd]
        self._epoll.unregister(fd)
        sock.close()
        if not self._entries:
            if self._reading:
                self._reading = False
                self.reactor.removeReader(self)
            self._epoll.close()
            self._epoll = None

    # IReadDescriptor

    def fileno(self):
        return self._epoll.fileno() if self._epoll is not None else -1

    def logPrefix(self):
        return "RTP"

    def doRead(self):
        """
        One datagram from each of up to C{max_events} ready sockets.
        """
        entries = self._entries
        for fd, _ in self._epoll.poll(0, self.max_events):
            entry = entries.get(fd)
            if entry is None:  # closed by a receiver earlier in this turn
                continue
            recvfrom, protocol = entry
            try:
                data, addr = recvfrom(MAX_PACKET)
            except OSError:
                continue
            try:
                protocol.receiver(data, addr)
            except Exception:
                protocol.receive_failed()

    def connectionLost(self, reason):
        """
        The reactor dropped the reader (it is shutting down): forget the
        registration.  The sockets stay with their endpoints, which close
        them; a socket bound afterwards adds the reader again.
        """
        self._reading = False


def _host_port_recvfrom(sock):
    """
    C{recvfrom} for an IPv6 socket, trimming the flow and scope IDs off the
    source address as Twisted's C{udp.Port} does: addresses compare as
    C{(host, port)} everywhere.
    """
    recvfrom = sock.recvfrom

    def receive(size):
        data, addr = recvfrom(size)
        return data, addr[:2]

    return receive


class TwistedRtpListener:
    """
    Binds RTP ports with C{reactor.listenUDP}: one reactor reader per
    socket.  The fallback where L{RtpSocketSet} cannot run.
    """

    def __init__(self, reactor):
        self.reactor = reactor

    def listen(self, port, interface, receiver):
        """
        See L{RtpSocketSet.listen}; L{RtpEndpoint.close} may return a
        Deferred here.
        """
        protocol = RtpProtocol(receiver)
        listening = self.reactor.listenUDP(port, protocol, interface=interface)
        return RtpEndpoint(listening.getHandle(), protocol, listening.getHost().port,
                           listening.stopListening)


def default_listener(reactor):
    """
    An L{RtpSocketSet} where C{select.epoll} exists and C{reactor} takes
    file descriptors (L{IReactorFDSet}), else a L{TwistedRtpListener}.
    """
    if hasattr(select, "epoll") and IReactorFDSet.providedBy(reactor):
        return RtpSocketSet(reactor)
    return TwistedRtpListener(reactor)


def _drop(data, addr):
    """The receiver of an idle endpoint."""
