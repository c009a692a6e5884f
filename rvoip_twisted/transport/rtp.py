"""
RTP/RTCP over UDP: the only media module that touches sockets.

L{RtpProtocol} hands every datagram to a callable (the media session's
sans-IO receive path).  L{RtpEndpoint} wraps the listening port and sends
with the socket directly: C{send()} on a C{connect()}ed socket once the
remote address is known (the kernel then also filters other sources),
C{sendto()} before that.  Send errors (ICMP port unreachable reported as
C{ECONNREFUSED}, a full buffer) are counted, never raised.
"""

import ctypes
import ctypes.util
import socket
import struct
import sys

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

__all__ = ["RtpProtocol", "RtpEndpoint", "listen_rtp", "disconnect_socket", "RECEIVE_BUFFER"]

#: SO_RCVBUF asked for (only ever raised, never lowered).
RECEIVE_BUFFER = 128 * 1024


class RtpProtocol(DatagramProtocol):
    """
    Delivers datagrams to C{receiver(data, addr)}.  An exception from the
    receiver is logged and swallowed: bad input never reaches the reactor.
    """

    noisy = False
    _log = Logger()

    def __init__(self, receiver, receive_buffer=RECEIVE_BUFFER):
        self.receiver = receiver
        self.receive_buffer = receive_buffer
        self.errors = 0

    def startProtocol(self):
        sock = self.transport.getHandle()
        try:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < self.receive_buffer:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        except OSError:
            pass  # not fatal: the default buffer works, only less well

    def datagramReceived(self, data, addr):
        try:
            self.receiver(data, addr)
        except Exception:
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
    A listening UDP port plus the fast send path.

    @ivar connected_to: the address the socket is connected to, or C{None}.
    @ivar send_errors: sends that failed (the datagram is dropped).
    """

    def __init__(self, port, protocol):
        self.port = port
        self.protocol = protocol
        self.socket = port.getHandle()
        self.connected_to = None
        self.send_errors = 0
        self.closed = False

    @property
    def local_port(self):
        return self.port.getHost().port

    def _map(self, addr):
        # An IPv6 socket reaches IPv4 peers through mapped addresses.
        if self.socket.family == socket.AF_INET6 and ":" not in addr[0]:
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
        Stop listening.

        @return: a Deferred fired when the socket is closed, or C{None} when
            that is already done.
        """
        if self.closed:
            return None
        self.closed = True
        return self.port.stopListening()


def listen_rtp(reactor, port, interface, receiver):
    """
    Bind a UDP port for RTP or RTCP.

    @raise twisted.internet.error.CannotListenError: the port is in use.
    @rtype: L{RtpEndpoint}
    """
    protocol = RtpProtocol(receiver)
    listening = reactor.listenUDP(port, protocol, interface=interface)
    return RtpEndpoint(listening, protocol)


def _drop(data, addr):
    """The receiver of an idle endpoint."""
