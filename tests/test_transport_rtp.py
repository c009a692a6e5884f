"""
Tests for L{rvoip_twisted.transport.rtp}: the epoll-based L{RtpSocketSet},
the L{TwistedRtpListener} fallback and the choice between them.

The socket-set tests use real UDP sockets on 127.0.0.1 and a stand-in
reactor that only records C{addReader} / C{removeReader}; each test calls
C{doRead} itself once the kernel says the sockets are readable (waits are
bounded, nothing is timed).  L{LoopbackTests} runs two media managers over
a real reactor instance on either path.
"""

import random
import select
import socket
import time
import types

from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorFDSet
from twisted.internet.task import Clock
from twisted.trial.unittest import SkipTest, SynchronousTestCase
from zope.interface import implementer

from rvoip_twisted.media.sinks import BufferSink
from rvoip_twisted.media.sources import ToneSource
from rvoip_twisted.service.media import MediaManager
from rvoip_twisted.transport import rtp as rtp_transport
from rvoip_twisted.transport.rtp import RtpSocketSet, TwistedRtpListener, default_listener

HOST = "127.0.0.1"
WAIT = 5.0  # seconds at most for the kernel to deliver a datagram on loopback


@implementer(IReactorFDSet)
class ReaderRecorder:
    """The part of a reactor an L{RtpSocketSet} uses: its readers."""

    def __init__(self):
        self.readers = []

    def addReader(self, reader):
        self.readers.append(reader)

    def removeReader(self, reader):
        self.readers.remove(reader)


def wait_readable(*socks):
    """Block (boundedly) until every socket has a datagram queued."""
    deadline = time.monotonic() + WAIT
    for sock in socks:
        readable, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not readable:
            raise AssertionError("no datagram arrived on %r" % (sock.getsockname(),))


class SocketSetTestCase(SynchronousTestCase):
    def setUp(self):
        self.reactor = ReaderRecorder()
        self.set = RtpSocketSet(self.reactor)
        self.received = []
        self.client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.client.bind((HOST, 0))
        self.addCleanup(self.client.close)

    def listen(self, port=0, receiver=None, socket_set=None):
        if socket_set is None:
            socket_set = self.set
        endpoint = socket_set.listen(port, HOST, receiver or self.record)
        self.addCleanup(endpoint.close)
        return endpoint

    def record(self, data, addr):
        self.received.append((data, addr))

    def send(self, endpoint, data):
        self.client.sendto(data, (HOST, endpoint.local_port))


class SocketSetTests(SocketSetTestCase):
    """
    L{RtpSocketSet}: sockets read through one epoll, one reactor reader.
    """

    def test_delivery(self):
        """
        Datagrams to any socket of the set reach that endpoint's receiver
        with the source address; the reactor sees one reader, the set.
        """
        a = self.listen()
        b_received = []
        b = self.listen(receiver=lambda data, addr: b_received.append((data, addr)))
        self.assertEqual(self.reactor.readers, [self.set])
        self.assertEqual(len(self.set), 2)
        self.send(a, b"to a")
        self.send(b, b"to b")
        wait_readable(a.socket, b.socket)
        self.set.doRead()
        source = self.client.getsockname()
        self.assertEqual(self.received, [(b"to a", source)])
        self.assertEqual(b_received, [(b"to b", source)])
        self.set.doRead()  # nothing more: no error, nothing delivered
        self.assertEqual(len(self.received) + len(b_received), 2)

    def test_read_waiting(self):
        """
        C{read_waiting} reads what is queued in one endpoint's socket now,
        without the reactor, at most C{limit} datagrams a call, in order,
        with the source address; then nothing is left for the set to read,
        and with nothing waiting it returns 0 without raising.
        """
        endpoint = self.listen()
        other = self.listen()
        for i in range(5):
            self.send(endpoint, b"%d" % i)
        self.send(other, b"other")
        deadline = time.monotonic() + WAIT
        while len(self.received) < 5 and time.monotonic() < deadline:
            got = endpoint.read_waiting(limit=3)
            self.assertLessEqual(got, 3)
        self.assertEqual([data for data, _ in self.received], [b"0", b"1", b"2", b"3", b"4"])
        self.assertEqual({addr for _, addr in self.received}, {self.client.getsockname()})
        self.assertEqual(endpoint.read_waiting(), 0)
        wait_readable(other.socket)
        self.set.doRead()       # the other socket's datagram only
        self.assertEqual([data for data, _ in self.received][5:], [b"other"])
        endpoint.close()
        self.assertEqual(endpoint.read_waiting(), 0, "a closed endpoint reads nothing")

    def test_receiver_replaced(self):
        """
        The receiver is looked up per datagram: a media session attaches
        itself by setting C{protocol.receiver}.
        """
        endpoint = self.listen(receiver=lambda data, addr: None)
        endpoint.protocol.receiver = self.record
        self.send(endpoint, b"x")
        wait_readable(endpoint.socket)
        self.set.doRead()
        self.assertEqual([data for data, _ in self.received], [b"x"])

    def test_endpoint_api(self):
        """
        The endpoint binds a non-blocking socket on the interface with a
        raised receive buffer and sends through it, connected or not.
        """
        endpoint = self.listen()
        sock = endpoint.socket
        self.assertEqual(sock.getsockname(), (HOST, endpoint.local_port))
        self.assertFalse(sock.getblocking())
        self.assertGreaterEqual(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
                                rtp_transport.RECEIVE_BUFFER)
        peer = self.client.getsockname()
        endpoint.sendto(b"unconnected", peer)
        self.assertTrue(endpoint.connect(peer))
        endpoint.sender(peer)(b"connected")
        self.client.settimeout(WAIT)
        self.assertEqual(self.client.recvfrom(100), (b"unconnected", sock.getsockname()))
        self.assertEqual(self.client.recvfrom(100), (b"connected", sock.getsockname()))
        self.assertTrue(endpoint.recycle())
        self.assertIsNone(endpoint.connected_to)

    def test_raising_receiver_contained(self):
        """
        A receiver that raises is counted and logged on its protocol; the
        other sockets' datagrams are still delivered, and so are the
        raising one's next datagrams.
        """
        def boom(data, addr):
            raise RuntimeError("boom")

        bad = self.listen(receiver=boom)
        good = self.listen()
        self.send(bad, b"1")
        self.send(good, b"2")
        wait_readable(bad.socket, good.socket)
        self.set.doRead()
        self.assertEqual([data for data, _ in self.received], [b"2"])
        self.assertEqual(bad.protocol.errors, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        bad.protocol.receiver = self.record
        self.send(bad, b"3")
        wait_readable(bad.socket)
        self.set.doRead()
        self.assertEqual([data for data, _ in self.received], [b"2", b"3"])

    def test_close_unregisters(self):
        """
        close() unregisters and closes the socket at once (it returns
        C{None}, and again when called twice); the port can be bound
        again, and the last close removes the reader from the reactor.
        """
        a = self.listen()
        b = self.listen()
        port = a.local_port
        self.assertIsNone(a.close())
        self.assertIsNone(a.close())
        self.assertEqual(a.socket.fileno(), -1)
        self.assertEqual(len(self.set), 1)
        self.assertEqual(self.reactor.readers, [self.set])
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind((HOST, port))
        finally:
            probe.close()
        self.assertIsNone(b.close())
        self.assertEqual(len(self.set), 0)
        self.assertEqual(self.reactor.readers, [])
        self.assertEqual(self.set.fileno(), -1)  # the epoll went with the last socket
        c = self.listen()
        self.assertEqual(self.reactor.readers, [self.set])
        self.send(c, b"again")
        wait_readable(c.socket)
        self.set.doRead()
        self.assertEqual([data for data, _ in self.received], [b"again"])

    def test_closed_during_turn(self):
        """
        A receiver closing another endpoint whose datagram is due in the
        same turn: that datagram is not read, nothing fails.
        """
        first = self.listen()
        second = self.listen()
        others = {first: second, second: first}
        delivered = []

        def closer(endpoint):
            def receive(data, addr):
                delivered.append(data)
                others[endpoint].close()
            return receive

        first.protocol.receiver = closer(first)
        second.protocol.receiver = closer(second)
        self.send(first, b"1")
        self.send(second, b"2")
        wait_readable(first.socket, second.socket)
        self.set.doRead()
        self.assertEqual(len(delivered), 1)
        self.assertEqual(len(self.set), 1)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_port_in_use(self):
        """
        A port already bound raises L{CannotListenError} (as listenUDP
        does), leaving nothing registered.
        """
        holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        holder.bind((HOST, 0))
        self.addCleanup(holder.close)
        port = holder.getsockname()[1]
        error = self.assertRaises(CannotListenError, self.set.listen, port, HOST, self.record)
        self.assertEqual(error.port, port)
        self.assertEqual(len(self.set), 0)
        self.assertEqual(self.reactor.readers, [])

    def test_port_in_use_skipped_by_manager(self):
        """
        The media manager on the socket set skips a pair whose RTP or RTCP
        port is in use, as with listenUDP.
        """
        holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        holder.bind((HOST, 0))
        self.addCleanup(holder.close)
        busy = holder.getsockname()[1]
        low = busy - 1 if busy % 2 else busy  # the pair holding the busy port
        manager = MediaManager(Clock(), bind_host=HOST, port_range=(low, low + 3),
                               rtp_listener=self.set, random=random.Random(1))
        session = manager.new_session("a")
        self.addCleanup(session.stop)
        self.assertEqual(session.local_port, low + 2)
        self.assertEqual(len(self.set), 2)

    def test_bounded_turn(self):
        """
        One turn reads from at most C{max_events} sockets; the rest are read
        on the next turns.
        """
        small = RtpSocketSet(self.reactor, max_events=2)
        endpoints = [self.listen(socket_set=small) for _ in range(5)]
        for i, endpoint in enumerate(endpoints):
            self.send(endpoint, b"%d" % i)
        wait_readable(*[e.socket for e in endpoints])
        counts = []
        for _ in range(4):
            before = len(self.received)
            small.doRead()
            counts.append(len(self.received) - before)
        self.assertEqual(counts, [2, 2, 1, 0])
        self.assertEqual(sorted(data for data, _ in self.received), [b"0", b"1", b"2", b"3", b"4"])

    def test_one_datagram_per_socket_per_turn(self):
        """
        A socket with several datagrams queued gives one per turn (so a
        busy stream cannot hold the turn), in order, until it is empty.
        """
        endpoint = self.listen()
        for i in range(3):
            self.send(endpoint, b"%d" % i)
        deadline = time.monotonic() + WAIT
        while len(self.received) < 3 and time.monotonic() < deadline:
            wait_readable(endpoint.socket)
            before = len(self.received)
            self.set.doRead()
            self.assertLessEqual(len(self.received) - before, 1)
        self.assertEqual([data for data, _ in self.received], [b"0", b"1", b"2"])

    def test_receive_error_dropped(self):
        """
        An ICMP port unreachable reported on a connected socket
        (C{ECONNREFUSED} from recvfrom) is dropped; the socket goes on.
        """
        # an explicit port: disconnecting unbinds a socket bound to port 0
        # (Linux), the media manager's ports are all explicit
        probes = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        for probe in probes:
            probe.bind((HOST, 0))
        ports = [probe.getsockname()[1] for probe in probes]
        for probe in probes:
            probe.close()
        endpoint = self.listen(ports[0])
        address = (HOST, ports[1])
        endpoint.connect(address)
        endpoint.sendto(b"nobody", address)
        wait_readable(endpoint.socket)  # the pending error makes it readable
        self.set.doRead()
        self.assertEqual(self.received, [])
        endpoint.disconnect()
        self.send(endpoint, b"still here")
        wait_readable(endpoint.socket)
        self.set.doRead()
        self.assertEqual([data for data, _ in self.received], [b"still here"])

    def test_ipv6_source_address(self):
        """
        On an IPv6 socket the source address is C{(host, port)}, as
        Twisted's udp.Port gives it.
        """
        if not socket.has_ipv6:
            raise SkipTest("no IPv6")
        try:
            endpoint = self.set.listen(0, "::1", self.record)
        except CannotListenError:
            raise SkipTest("cannot bind ::1")
        self.addCleanup(endpoint.close)
        client = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.addCleanup(client.close)
        client.bind(("::1", 0))
        client.sendto(b"v6", ("::1", endpoint.local_port))
        wait_readable(endpoint.socket)
        self.set.doRead()
        self.assertEqual(self.received, [(b"v6", client.getsockname()[:2])])
        # read_waiting (a stream about to conceal a frame) gives it alike
        client.sendto(b"v6 again", ("::1", endpoint.local_port))
        wait_readable(endpoint.socket)
        self.assertEqual(endpoint.read_waiting(), 1)
        self.assertEqual(self.received[1:], [(b"v6 again", client.getsockname()[:2])])

    def test_reactor_drops_reader(self):
        """
        After the reactor dropped the reader (shutdown), the endpoints
        still close cleanly and a new socket adds the reader again.
        """
        a = self.listen()
        self.reactor.readers.remove(self.set)
        self.set.connectionLost(None)
        b = self.listen()
        self.assertEqual(self.reactor.readers, [self.set])
        a.close()
        b.close()
        self.assertEqual(self.reactor.readers, [])

    def test_bad_max_events(self):
        """
        A turn must read at least one datagram.
        """
        self.assertRaises(ValueError, RtpSocketSet, self.reactor, max_events=0)


class DefaultListenerTests(SynchronousTestCase):
    """
    L{default_listener}: the socket set where it can run.
    """

    def test_fd_reactor(self):
        """
        A reactor taking file descriptors gets an L{RtpSocketSet} when
        C{select.epoll} exists.
        """
        if not hasattr(select, "epoll"):
            raise SkipTest("no epoll here")
        self.assertIsInstance(default_listener(ReaderRecorder()), RtpSocketSet)

    def test_no_epoll(self):
        """
        Without C{select.epoll}, C{listenUDP} is used.
        """
        self.patch(rtp_transport, "select", types.SimpleNamespace())
        self.assertIsInstance(default_listener(ReaderRecorder()), TwistedRtpListener)

    def test_clock_reactor(self):
        """
        A reactor without file descriptors (a fake with listenUDP) gets
        the listenUDP path.
        """
        self.assertIsInstance(default_listener(Clock()), TwistedRtpListener)


class LoopbackTests(SynchronousTestCase):
    """
    Two media managers echoing over real UDP on a private epoll reactor,
    once per listener: audio goes round, RTCP gives an RTT, and after
    stopService every port is closed.
    """

    def setUp(self):
        from twisted.internet.epollreactor import EPollReactor

        self.reactor = EPollReactor()
        self.addCleanup(self._close_reactor)

    def _close_reactor(self):
        for call in self.reactor.getDelayedCalls():
            call.cancel()
        self.reactor.removeAll()
        self.reactor.waker.connectionLost(None)

    def spin(self, condition):
        deadline = time.monotonic() + WAIT
        while not condition() and time.monotonic() < deadline:
            self.reactor.iterate(0.002)
        return condition()

    def echo_call(self, listener):
        base = random.Random().randrange(30000, 60000, 2)
        managers = [
            MediaManager(self.reactor, public_host=HOST, bind_host=HOST,
                         port_range=(base + 100 * i, base + 100 * i + 40), rtcp_interval=0.2,
                         rtp_listener=listener(self.reactor))
            for i in range(2)
        ]
        for manager in managers:
            manager.startService()
        a = managers[0].new_session("loop")
        b = managers[1].new_session("loop")
        a.accept_answer(b.answer_offer(a.create_offer()))
        sink = BufferSink()
        a.record(sink)
        a.play(ToneSource(800, amplitude=12000))
        b.echo()
        a.start()
        b.start()
        self.assertTrue(self.spin(lambda: sum(1 for f in sink.frames if any(f)) >= 10
                                  and a.rtt is not None), a.quality())
        ports = [a.local_port, a.local_port + 1, b.local_port, b.local_port + 1]
        done = []
        for manager in managers:
            d = manager.stopService()
            if d is None:
                done.append(None)
            else:
                d.addCallback(done.append)
        self.assertTrue(self.spin(lambda: len(done) == 2))
        self.assertEqual([m.ports_in_use() for m in managers], [0, 0])
        for port in ports:
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                probe.bind((HOST, port))
            finally:
                probe.close()
        return managers

    def test_socket_set(self):
        """
        On the socket set the reactor reads one descriptor for all the
        ports, and none once the managers stopped.
        """
        if not hasattr(select, "epoll"):
            raise SkipTest("no epoll here")
        managers = self.echo_call(RtpSocketSet)
        for manager in managers:
            self.assertEqual(len(manager.rtp_listener), 0)
            self.assertNotIn(manager.rtp_listener, self.reactor.getReaders())

    def test_listen_udp(self):
        """
        The listenUDP fallback does the same.
        """
        self.echo_call(TwistedRtpListener)
