"""
Tests for L{rvoip_twisted.service.media}, L{rvoip_twisted.service.clock}
and L{rvoip_twisted.transport.rtp}.

Most tests drive a L{Clock}-based fake reactor whose UDP ports record what
is sent; L{LoopbackTests} uses real UDP sockets on 127.0.0.1 with a private
reactor instance iterated for a bounded time.
"""

import collections
import random
import socket
import time

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.media import g711
from rvoip_twisted.media.sinks import BufferSink
from rvoip_twisted.media.sources import SequenceSource, ToneSource
from rvoip_twisted.rtp import rtcp
from rvoip_twisted.rtp.dtmf import dtmf_packets, parse_event
from rvoip_twisted.rtp.packet import RtpPacket, pack
from rvoip_twisted.sdp import SdpNegotiationError, SdpParseError, parse
from rvoip_twisted.service.clock import MediaClock
from rvoip_twisted.service import media
from rvoip_twisted.service.media import MediaManager, PortsExhausted, estimate_mos
from rvoip_twisted.transport import rtp as rtp_transport

PEER = ("192.0.2.50", 30000)
PEER_RTCP = ("192.0.2.50", 30001)


def offer_sdp(host="192.0.2.50", port=30000, formats="0 8 101", extra=""):
    lines = [
        "v=0",
        "o=peer 1 1 IN IP4 %s" % host,
        "s=-",
        "c=IN IP4 %s" % host,
        "t=0 0",
        "m=audio %d RTP/AVP %s" % (port, formats),
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
    ]
    lines += [line for line in extra.split("\n") if line]
    return ("\r\n".join(lines) + "\r\n").encode()


# -- the fake reactor --------------------------------------------------------


class FakeSocket:
    family = socket.AF_INET

    def __init__(self):
        self.sent = []  # (data, addr)
        self.peer = None
        self.options = {}
        self.fail_sends = False
        self.unread = []    # (data, addr) in the "kernel buffer", not yet read
        self.reads = 0

    def recvfrom(self, size):
        self.reads += 1
        if not self.unread:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return self.unread.pop(0)

    def send(self, data):
        if self.fail_sends:
            raise OSError(111, "Connection refused")
        self.sent.append((data, self.peer))

    def sendto(self, data, addr):
        if self.fail_sends:
            raise OSError(111, "Connection refused")
        self.sent.append((data, addr))

    def connect(self, addr):
        self.peer = addr

    def getsockopt(self, level, option):
        return self.options.get(option, 4096)

    def setsockopt(self, level, option, value):
        self.options[option] = value

    def fileno(self):
        return -1


class FakePort:
    def __init__(self, reactor, number, protocol, interface):
        self.reactor = reactor
        self.number = number
        self.protocol = protocol
        self.interface = interface
        self.socket = FakeSocket()
        self.closing = None

    def getHandle(self):
        return self.socket

    def getHost(self):
        return IPv4Address("UDP", self.interface, self.number)

    def stopListening(self):
        if self.reactor.async_close:
            self.closing = defer.Deferred()
            self.closing.addCallback(lambda _: self.reactor.ports.pop(self.number))
            return self.closing
        del self.reactor.ports[self.number]
        return None


class FakeReactor(Clock):
    def __init__(self):
        super().__init__()
        self.ports = {}
        self.busy = set()
        self.async_close = False

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
        if port in self.busy or port in self.ports:
            raise CannotListenError(interface, port, OSError(98, "Address already in use"))
        listening = FakePort(self, port, protocol, interface)
        self.ports[port] = listening
        protocol.makeConnection(listening)
        return listening

    def deliver(self, port, data, addr):
        self.ports[port].protocol.datagramReceived(data, addr)

    def sent(self, port):
        return self.ports[port].socket.sent


def rtp_sent(reactor, port):
    return [(RtpPacket.parse(data), addr) for data, addr in reactor.sent(port)
            if not 192 <= data[1] <= 223]


class ManagerTestCase(SynchronousTestCase):
    def setUp(self):
        self.reactor = FakeReactor()
        self.patch(rtp_transport, "disconnect_socket", self._disconnect)

    def _disconnect(self, sock):
        sock.peer = None
        return True

    def manager(self, **kwargs):
        kwargs.setdefault("port_range", (20000, 20100))
        kwargs.setdefault("random", random.Random(7))
        manager = MediaManager(self.reactor, public_host="203.0.113.1", **kwargs)
        manager.startService()
        self.addCleanup(lambda: manager.running and manager.stopService())
        return manager

    def answered(self, manager, call_id="call-1", sdp=None, **kwargs):
        session = manager.new_session(call_id)
        answer = session.answer_offer(sdp or offer_sdp(**kwargs))
        session.start()
        return session, parse(answer)

    def advance(self, seconds, step=0.002):
        for _ in range(int(round(seconds / step))):
            self.reactor.advance(step)


# -- ports ---------------------------------------------------------------------------


class PortAllocationTests(ManagerTestCase):
    """
    RTP/RTCP port pairs.
    """

    def test_even_pairs_never_twice(self):
        """
        Sessions get distinct even RTP ports with RTCP on the next port, both
        bound on the bind host.
        """
        manager = self.manager(port_range=(20001, 20010))
        ports = [manager.new_session("c%d" % i).local_port for i in range(4)]
        self.assertEqual(ports, [20002, 20004, 20006, 20008])
        self.assertEqual(sorted(self.reactor.ports), [20002, 20003, 20004, 20005, 20006,
                                                      20007, 20008, 20009])
        self.assertEqual(self.reactor.ports[20002].interface, "0.0.0.0")
        self.assertEqual(manager.ports_in_use(), 8)

    def test_exhausted(self):
        """
        When no pair is free, L{PortsExhausted} (status 503) is raised.
        """
        manager = self.manager(port_range=(20000, 20003))
        manager.new_session("a")
        manager.new_session("b")
        error = self.assertRaises(PortsExhausted, manager.new_session, "c")
        self.assertEqual(error.status, 503)

    def test_out_of_descriptors(self):
        """
        A bind failing with EMFILE fails on every port alike: the first one
        ends the search with PortsExhausted (503) and a warning, instead of
        trying every port of the range.
        """
        import errno as errno_
        manager = self.manager(port_range=(20000, 20100))
        tried = []
        real = self.reactor.listenUDP

        def no_descriptors(port, protocol, interface="", maxPacketSize=8192):
            tried.append(port)
            raise CannotListenError(interface, port, OSError(errno_.EMFILE, "Too many open files"))

        self.reactor.listenUDP = no_descriptors
        error = self.assertRaises(PortsExhausted, manager.new_session, "a")
        self.assertEqual(error.status, 503)
        self.assertEqual(tried, [20000])
        self.reactor.listenUDP = real
        self.assertEqual(manager.new_session("b").local_port, 20002)

    def test_out_of_descriptors_uses_the_pool(self):
        """
        Out of descriptors with an idle pair in the pool (released too
        recently to be first choice): the pool serves, after one try.
        """
        import errno as errno_
        manager = self.manager(port_range=(20000, 20100))
        first = manager.new_session("a")
        port = first.local_port
        first.stop()
        tried = []

        def no_descriptors(port, protocol, interface="", maxPacketSize=8192):
            tried.append(port)
            raise CannotListenError(interface, port, OSError(errno_.ENFILE, "File table overflow"))

        self.reactor.listenUDP = no_descriptors
        self.assertEqual(manager.new_session("b").local_port, port)
        self.assertEqual(len(tried), 1)

    def test_busy_port_skipped(self):
        """
        A port the OS reports in use (RTP or RTCP) is skipped; the next pair
        is used.
        """
        self.reactor.busy.update({20000, 20003})
        manager = self.manager(port_range=(20000, 20010))
        self.assertEqual(manager.new_session("a").local_port, 20004)
        self.assertNotIn(20002, self.reactor.ports)  # RTP bound then released

    def test_released_on_stop(self):
        """
        Stopping a session releases its pair to the pool of open, idle
        sockets (no close, no bind per call); a new session takes a pooled
        pair only once it has rested RECYCLE_AFTER seconds, and stopService
        closes everything.
        """
        manager = self.manager(port_range=(20000, 20006))
        manager.startService()
        session = manager.new_session("a")
        self.assertEqual(session.local_port, 20000)
        session.stop()
        session.stop()  # idempotent
        self.assertEqual(manager.ports_in_use(), 0)
        self.assertEqual(manager.ports_pooled(), 2)
        self.assertIn(20000, self.reactor.ports)       # still open, idle
        self.assertNotIn("a", manager.sessions)
        self.assertEqual(manager.new_session("b").local_port, 20002)  # too fresh to reuse
        self.reactor.advance(media.RECYCLE_AFTER)
        bound = len(self.reactor.ports)
        self.assertEqual(manager.new_session("c").local_port, 20000)
        self.assertEqual(len(self.reactor.ports), bound)  # reused, nothing bound
        self.assertEqual(manager.ports_pooled(), 0)
        manager.stopService()
        self.assertEqual(self.reactor.ports, {})
        self.assertEqual(manager.ports_in_use(), 0)

    def test_pool_cap(self):
        """
        The pool keeps at most pool_max idle pairs (the oldest beyond are
        closed); the cap is POOL_MAX, lower where the open-files limit is.
        """
        self.assertEqual(media.pool_cap(1048576), media.POOL_MAX)
        self.assertEqual(media.pool_cap(20000), (20000 - 1024) // 4)
        self.assertEqual(media.pool_cap(1024), 16)
        self.assertGreaterEqual(media.pool_cap(), 16)
        # the plugin's raised limit of this machine keeps the pool above what
        # 5,000 calls/s need (calls/s x RECYCLE_AFTER pairs) where it can
        self.assertGreaterEqual(media.POOL_MAX, 5000 * media.RECYCLE_AFTER)
        manager = self.manager(port_range=(20000, 20020))
        manager.startService()
        manager.pool_max = 3
        sessions = [manager.new_session(str(i)) for i in range(5)]
        for session in sessions:
            session.stop()
        self.assertEqual(manager.ports_pooled(), 2 * 3)
        for port in (20000, 20002):                  # the two oldest: closed
            self.assertNotIn(port, self.reactor.ports)
        for port in (20004, 20006, 20008):
            self.assertIn(port, self.reactor.ports)
        manager.stopService()

    def test_pool_used_when_range_exhausted(self):
        """
        With no port left to bind, a pooled pair is reused even if fresh,
        rather than failing the call.
        """
        manager = self.manager(port_range=(20000, 20003))
        manager.startService()
        manager.new_session("a")
        manager.new_session("b").stop()
        self.assertEqual(manager.new_session("c").local_port, 20002)

    def test_stale_packets_dropped_while_pooled(self):
        """
        A datagram reaching an idle pooled socket goes nowhere.
        """
        manager = self.manager(port_range=(20000, 20006))
        manager.startService()
        session = manager.new_session("a")
        rtp = session._rtp
        session.stop()
        rtp.protocol.datagramReceived(b"\x80" * 20, ("192.0.2.1", 4000))
        self.assertEqual(session.packets_received, 0)

    def test_asynchronous_close(self):
        """
        With a reactor whose ports close later, the port stays in use until
        closed and stopService waits for it.
        """
        self.reactor.async_close = True
        manager = self.manager()
        session = manager.new_session("a")
        d = manager.stopService()
        self.assertNoResult(d)
        self.assertEqual(manager.ports_in_use(), 2)
        for port in list(self.reactor.ports.values()):
            port.closing.callback(None)
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(manager.ports_in_use(), 0)
        self.assertEqual(manager.sessions, {})
        self.assertTrue(session._stopped)

    def test_same_call_id(self):
        """
        Asking again for a Call-ID returns its existing session.
        """
        manager = self.manager()
        self.assertIs(manager.new_session("x"), manager.new_session("x"))

    def test_receive_buffer(self):
        """
        The UDP sockets ask for a larger receive buffer.
        """
        manager = self.manager()
        port = manager.new_session("x").local_port
        options = self.reactor.ports[port].socket.options
        self.assertEqual(options[socket.SO_RCVBUF], rtp_transport.RECEIVE_BUFFER)


# -- negotiation ------------------------------------------------------------------------


class NegotiationTests(ManagerTestCase):
    """
    The SDP methods of a session.
    """

    def test_answer(self):
        """
        The answer carries the public host and the session's RTP port.
        """
        manager = self.manager()
        session, answer = self.answered(manager)
        self.assertEqual(answer.connection.address, "203.0.113.1")
        self.assertEqual(answer.media[0].port, session.local_port)
        self.assertEqual(answer.media[0].formats, ("0", "8", "101"))

    def test_errors_propagate(self):
        """
        A bad offer raises the 400 error, an unacceptable one the 488.
        """
        session = self.manager().new_session("a")
        self.assertEqual(self.assertRaises(SdpParseError, session.answer_offer, b"x").status, 400)
        error = self.assertRaises(SdpNegotiationError, session.answer_offer, offer_sdp(formats="18"))
        self.assertEqual(error.status, 488)
        self.assertRaises(SdpNegotiationError, session.accept_answer, offer_sdp())

    def test_hold_resume(self):
        """
        hold() and resume() are re-offers with sendonly / sendrecv and a
        bumped o= version; a recvonly answer keeps us sending.
        """
        session, answer = self.answered(self.manager())
        version = answer.origin.session_version
        held = parse(session.hold())
        self.assertEqual(held.media[0].direction, "sendonly")
        self.assertEqual(held.origin.session_version, version + 1)
        session.accept_answer(offer_sdp(extra="a=recvonly"))
        self.assertEqual(session.negotiated.direction, "sendonly")
        resumed = parse(session.resume())
        self.assertEqual(resumed.media[0].direction, "sendrecv")
        self.assertEqual(resumed.origin.session_version, version + 2)

    def test_outgoing_offer(self):
        """
        create_offer() then accept_answer() sets up sending.
        """
        manager = self.manager()
        session = manager.new_session("out")
        offer = parse(session.create_offer())
        self.assertEqual(offer.media[0].port, session.local_port)
        session.accept_answer(offer_sdp(formats="8"))
        session.start()
        self.advance(0.04)
        packets = rtp_sent(self.reactor, session.local_port)
        self.assertEqual({p.payload_type for p, _ in packets}, {8})


# -- sending -----------------------------------------------------------------------------


class SendTests(ManagerTestCase):
    """
    RTP from the media clock.
    """

    def test_packet_stream(self):
        """
        One 160-byte PCMU packet per 20 ms to the SDP address: sequence +1,
        timestamp +160, one SSRC, the marker only on the first packet.
        """
        session, _ = self.answered(self.manager())
        self.advance(0.2)
        packets = rtp_sent(self.reactor, session.local_port)
        self.assertIn(len(packets), (10, 11))
        first = packets[0][0]
        for i, (packet, addr) in enumerate(packets):
            self.assertEqual(addr, PEER)
            self.assertEqual(packet.payload_type, 0)
            self.assertEqual(packet.ssrc, session.ssrc)
            self.assertEqual(packet.sequence_number, (first.sequence_number + i) & 0xFFFF)
            self.assertEqual(packet.timestamp, (first.timestamp + 160 * i) & 0xFFFFFFFF)
            self.assertEqual(packet.marker, i == 0)
            self.assertEqual(packet.payload, b"\xff" * 160)

    def test_not_sending_before_start(self):
        """
        Nothing is sent until start(); start() is idempotent.
        """
        manager = self.manager()
        session = manager.new_session("a")
        session.answer_offer(offer_sdp())
        self.advance(0.1)
        self.assertEqual(self.reactor.sent(session.local_port), [])
        session.start()
        session.start()
        self.advance(0.1)
        self.assertEqual(len(manager.clock), 1)

    def test_late_reactor_sends_all_due(self):
        """
        A reactor stall of 100 ms gives five packets at once with continuous
        timestamps.
        """
        session, _ = self.answered(self.manager())
        self.advance(0.04)
        before = len(rtp_sent(self.reactor, session.local_port))
        self.reactor.advance(0.1)
        packets = rtp_sent(self.reactor, session.local_port)
        self.assertEqual(len(packets) - before, 5)
        stamps = [p.timestamp for p, _ in packets]
        self.assertEqual([b - a for a, b in zip(stamps, stamps[1:])], [160] * (len(stamps) - 1))

    def test_stopped_within_a_late_burst_sends_no_more(self):
        """
        A session stopped by its application during a late clock call (here
        when its source ends, on the first of five frames due) sends none of
        the frames still due: its port may already serve another call.
        """
        session, _ = self.answered(self.manager())
        session.on_source_done = session.stop
        session.play(SequenceSource(ToneSource(1000, duration=0.2)))
        self.advance(0.04)
        sent = len(rtp_sent(self.reactor, session.local_port))
        self.assertFalse(session._stopped)
        session.play(SequenceSource(ToneSource(1000, duration=0.02)))
        self.reactor.advance(0.1)               # a stall: five frames due at once
        self.assertTrue(session._stopped)
        payloads = [p.payload for p, _ in rtp_sent(self.reactor, session.local_port)][sent:]
        tone = ToneSource(1000)
        self.assertEqual(payloads, [g711.ulaw_encode(tone.read(160))])

    def test_spread_across_slots(self):
        """
        Twenty streams spread over the ten 2 ms slots of the wheel.
        """
        manager = self.manager(port_range=(20000, 20100))
        for i in range(20):
            self.answered(manager, "c%d" % i)
        self.assertEqual(manager.clock.slot_loads(), [2] * 10)

    def test_play_source(self):
        """
        A source's frames are G.711-encoded; when it ends, on_source_done
        is called and silence follows.
        """
        session, _ = self.answered(self.manager())
        done = []
        session.on_source_done = lambda: done.append(True)
        session.play(SequenceSource(ToneSource(1000, duration=0.04)))
        self.advance(0.1)
        payloads = [p.payload for p, _ in rtp_sent(self.reactor, session.local_port)]
        tone = ToneSource(1000)
        self.assertEqual(payloads[:2], [g711.ulaw_encode(tone.read(160)) for _ in range(2)])
        self.assertEqual(done, [True])
        self.assertEqual(payloads[-1], b"\xff" * 160)

    def test_pcma(self):
        """
        When the offer prefers PCMA, PT 8 with A-law silence is sent.
        """
        session, _ = self.answered(self.manager(), formats="8 0")
        self.advance(0.04)
        packet, _ = rtp_sent(self.reactor, session.local_port)[0]
        self.assertEqual((packet.payload_type, packet.payload), (8, b"\xd5" * 160))

    def test_remote_ptime(self):
        """
        A remote a=ptime:40 gives 320-sample packets every 40 ms.
        """
        session, _ = self.answered(self.manager(), extra="a=ptime:40")
        self.advance(0.2)
        packets = rtp_sent(self.reactor, session.local_port)
        self.assertIn(len(packets), (5, 6))
        self.assertEqual(len(packets[0][0].payload), 320)
        self.assertEqual(packets[1][0].timestamp - packets[0][0].timestamp, 320)

    def test_hold_stops_sending(self):
        """
        A re-offer putting us on hold (sendonly from the remote) stops our
        packets; resuming sends again with the marker set and the timestamp
        having advanced in real time.
        """
        session, _ = self.answered(self.manager())
        self.advance(0.04)
        session.answer_offer(offer_sdp(extra="a=sendonly"))
        count = len(rtp_sent(self.reactor, session.local_port))
        self.advance(0.1)
        self.assertEqual(len(rtp_sent(self.reactor, session.local_port)), count)
        session.answer_offer(offer_sdp())
        self.advance(0.04)
        packets = rtp_sent(self.reactor, session.local_port)
        self.assertTrue(packets[count][0].marker)
        self.assertGreaterEqual(packets[count][0].timestamp - packets[count - 1][0].timestamp, 160 * 5)

    def test_old_style_hold(self):
        """
        c=0.0.0.0 stops sending.
        """
        session, _ = self.answered(self.manager(), host="0.0.0.0")
        self.advance(0.1)
        self.assertEqual(self.reactor.sent(session.local_port), [])

    def test_send_errors_counted(self):
        """
        A failing send is counted, not raised.
        """
        session, _ = self.answered(self.manager())
        self.reactor.ports[session.local_port].socket.fail_sends = True
        self.advance(0.06)
        self.assertGreater(session.send_errors, 0)


class DtmfSendTests(ManagerTestCase):
    """
    send_dtmf on the wire.
    """

    def test_event_packets(self):
        """
        A digit becomes the RFC 4733 packets (PT 101, one timestamp, marker
        on the first, three end packets); audio pauses meanwhile and
        resumes after.
        """
        session, _ = self.answered(self.manager())
        self.advance(0.04)
        session.send_dtmf("5", duration_ms=100)
        self.advance(0.4)
        packets = [p for p, _ in rtp_sent(self.reactor, session.local_port)]
        events = [p for p in packets if p.payload_type == 101]
        expected = [payload for _, _, payload in dtmf_packets("5", 100)]
        self.assertEqual([p.payload for p in events], expected)
        self.assertEqual({p.timestamp for p in events}, {events[0].timestamp})
        self.assertEqual([p.marker for p in events], [True] + [False] * 4)
        self.assertEqual(parse_event(events[-1].payload)[:2], (5, True))
        seqs = [p.sequence_number for p in packets]
        self.assertEqual([b - a for a, b in zip(seqs, seqs[1:])], [1] * (len(seqs) - 1))
        first = packets.index(events[0])
        last = packets.index(events[-1])
        self.assertTrue(all(p.payload_type == 101 for p in packets[first:last + 1]))
        self.assertEqual(packets[-1].payload_type, 0)

    def test_invalid_digit(self):
        """
        A character that is not a DTMF digit is refused.
        """
        session, _ = self.answered(self.manager())
        self.assertRaises(ValueError, session.send_dtmf, "1x")

    def test_not_negotiated(self):
        """
        Without telephone-event in the answer, nothing is queued.
        """
        session, _ = self.answered(self.manager(), formats="0")
        session.send_dtmf("1")
        self.advance(0.3)
        self.assertEqual({p.payload_type for p, _ in rtp_sent(self.reactor, session.local_port)}, {0})


# -- receiving ------------------------------------------------------------------------------


def rtp_from_peer(seq, payload=b"\xff" * 160, pt=0, ssrc=0xABCDEF, ts=None, marker=False):
    return pack(pt, seq & 0xFFFF, (ts if ts is not None else seq * 160) & 0xFFFFFFFF,
                ssrc, payload, marker)


class ReceiveTests(ManagerTestCase):
    """
    Incoming RTP: latching, playout, echo, DTMF and bad input.
    """

    def feed(self, session, seqs, addr=PEER, start=0, **kwargs):
        for seq in seqs:
            self.reactor.deliver(session.local_port, rtp_from_peer(seq, **kwargs), addr)
            self.advance(0.02)

    def test_symmetric_latch(self):
        """
        The first packet's source is latched (socket connected, our packets
        go there, not to the SDP address); packets from elsewhere are then
        dropped.
        """
        session, _ = self.answered(self.manager())
        nat = ("198.51.100.9", 41000)
        self.feed(session, [1])
        self.reactor.deliver(session.local_port, rtp_from_peer(2), nat)
        self.assertEqual(self.reactor.ports[session.local_port].socket.peer, PEER)
        self.assertEqual(session.foreign_packets, 1)
        session2, _ = self.answered(self.manager(port_range=(21000, 21010)), "call-2")
        self.reactor.deliver(session2.local_port, rtp_from_peer(1), nat)
        self.advance(0.04)
        self.assertEqual(rtp_sent(self.reactor, session2.local_port)[-1][1], nat)
        self.assertEqual(self.reactor.ports[session2.local_port].socket.peer, nat)

    def test_relatch_after_reinvite(self):
        """
        A re-offer with a new address unlatches (the socket is disconnected)
        and the next source is latched.
        """
        session, _ = self.answered(self.manager())
        self.feed(session, [1, 2])
        session.answer_offer(offer_sdp(host="192.0.2.77", port=32000))
        sock = self.reactor.ports[session.local_port].socket
        self.assertIsNone(sock.peer)
        self.advance(0.04)
        self.assertEqual(rtp_sent(self.reactor, session.local_port)[-1][1], ("192.0.2.77", 32000))
        self.reactor.deliver(session.local_port, rtp_from_peer(3), ("192.0.2.77", 32000))
        self.assertEqual(sock.peer, ("192.0.2.77", 32000))

    def test_no_symmetric(self):
        """
        Without symmetric RTP the socket is connected to the SDP address at
        once and never latches elsewhere.
        """
        session, _ = self.answered(self.manager(symmetric_rtp=False))
        sock = self.reactor.ports[session.local_port].socket
        self.assertEqual(sock.peer, PEER)
        self.reactor.deliver(session.local_port, rtp_from_peer(1), ("198.51.100.9", 41000))
        self.assertEqual(sock.peer, PEER)

    def test_record(self):
        """
        Received audio reaches the sink decoded and in order, after the
        jitter buffer's delay; a reordered packet is put back in place.
        """
        session, _ = self.answered(self.manager())
        sink = BufferSink()
        session.record(sink)
        frames = {seq: bytes([seq]) * 160 for seq in range(1, 9)}
        for seq in (1, 2, 4, 3, 5, 6, 7, 8):
            self.reactor.deliver(session.local_port, rtp_from_peer(seq, frames[seq]), PEER)
            self.advance(0.02)
        self.advance(0.1)
        decoded = [g711.ulaw_decode(frames[seq]) for seq in range(1, 9)]
        self.assertEqual(sink.frames[:8], decoded)
        session.stop()
        self.assertTrue(sink.closed)

    def test_record_conceals_loss(self):
        """
        A lost packet becomes a silent frame; loss shows in quality().
        """
        session, _ = self.answered(self.manager())
        sink = BufferSink()
        session.record(sink)
        for seq in (1, 2, 3, 5, 6, 7):
            self.reactor.deliver(session.local_port, rtp_from_peer(seq, b"\x00" * 160), PEER)
            self.advance(0.02)
        self.advance(0.1)
        loud = g711.ulaw_decode(b"\x00" * 160)
        self.assertEqual(sink.frames[:7], [loud, loud, loud, bytes(320), loud, loud, loud])
        quality = session.quality()
        self.assertEqual(quality["packets_lost"], 1)
        self.assertEqual(quality["packets_received"], 6)
        self.assertAlmostEqual(quality["loss_pct"], 100 / 6.0, places=1)

    def test_playout_start_by_media_time(self):
        """
        A caller sending 10 ms packets (80 samples each) to our 20 ms frames:
        playout waits the jitter buffer's full depth (60 ms of audio, by the
        RTP timestamps), not six packets' worth of 20 ms frames, which would
        have it start after the second packet.
        """
        session, _ = self.answered(self.manager())
        sink = BufferSink()
        session.record(sink)
        for k in range(6):      # at 0, 10, ... 50 ms
            self.reactor.deliver(
                session.local_port, rtp_from_peer(k + 1, b"\x00" * 80, ts=1000 + 80 * k), PEER)
            self.advance(0.01)
        self.assertEqual(sink.frames, [])
        for k in range(6, 12):
            self.reactor.deliver(
                session.local_port, rtp_from_peer(k + 1, b"\x00" * 80, ts=1000 + 80 * k), PEER)
            self.advance(0.01)
        self.assertTrue(sink.frames)

    def test_echo_passthrough(self):
        """
        In echo mode received PCMU payloads go back byte for byte under our
        SSRC and sequence numbers.
        """
        session, _ = self.answered(self.manager())
        session.echo()
        payloads = [bytes([i + 1]) * 160 for i in range(6)]
        for i, payload in enumerate(payloads):
            self.reactor.deliver(session.local_port, rtp_from_peer(i, payload), PEER)
            self.advance(0.02)
        self.advance(0.1)
        sent = [p for p, _ in rtp_sent(self.reactor, session.local_port)]
        echoed = [p.payload for p in sent if p.payload != b"\xff" * 160]
        self.assertEqual(echoed, payloads)
        self.assertEqual({p.ssrc for p in sent}, {session.ssrc})

    def test_echo_after_a_stall_sends_every_frame(self):
        """
        After a reactor stall the echo sends every frame that fell due, in
        order: the packets that arrived meanwhile are those frames, not a
        pile-up for the jitter buffer to skip (it would drop the oldest two
        here: three frames late on top of a 60 ms buffer is past its 40 ms
        of slack).
        """
        session, _ = self.answered(self.manager())
        session.echo()
        payloads = [bytes([i + 1]) * 160 for i in range(12)]
        for i in range(6):
            self.reactor.deliver(session.local_port, rtp_from_peer(i, payloads[i]), PEER)
            self.advance(0.02)
        for i in range(6, 10):      # the reactor stalls: packets arrive, no timer runs
            self.reactor.rightNow += 0.02
            self.reactor.deliver(session.local_port, rtp_from_peer(i, payloads[i]), PEER)
        self.reactor.advance(0)     # the media clock's call, four periods late
        for i in range(10, 12):
            self.reactor.deliver(session.local_port, rtp_from_peer(i, payloads[i]), PEER)
            self.advance(0.02)
        self.advance(0.1)
        sent = [p for p, _ in rtp_sent(self.reactor, session.local_port)]
        echoed = [p.payload for p in sent if p.payload != b"\xff" * 160]
        self.assertEqual(echoed, payloads)
        self.assertEqual(session._jitter.skipped, 0)
        stamps = [p.timestamp for p in sent]
        self.assertEqual([(b - a) & 0xFFFFFFFF for a, b in zip(stamps, stamps[1:])],
                         [160] * (len(sent) - 1))

    def deliver_with_caller_stall(self, session, payloads):
        """
        The caller's 18 packets: six on time, then it stalls for six
        frames, then sends its backlog (seven) at once and the rest on
        time; 200 ms more for the buffer to drain.
        """
        port = session.local_port
        for i in range(6):
            self.reactor.deliver(port, rtp_from_peer(i, payloads[i]), PEER)
            self.advance(0.02)
        self.advance(0.12)          # the caller stalls
        for i in range(6, 13):      # its backlog, at once
            self.reactor.deliver(port, rtp_from_peer(i, payloads[i]), PEER)
        for i in range(13, 18):
            self.advance(0.02)
            self.reactor.deliver(port, rtp_from_peer(i, payloads[i]), PEER)
        self.advance(0.2)

    def test_echo_after_a_caller_stall_plays_the_backlog_early(self):
        """
        The caller stalls for six frames, then sends its backlog at once:
        the buffer, which concealed three frames meanwhile, holds two over
        its depth + slack.  Those two are echoed early, one more packet in
        each of the next two ticks (the next timestamps), rather than
        skipped: every payload the caller sent comes back, in order.
        """
        session, _ = self.answered(self.manager())
        session.echo()
        payloads = [bytes([i + 1]) * 160 for i in range(18)]
        self.deliver_with_caller_stall(session, payloads)
        sent = [p for p, _ in rtp_sent(self.reactor, session.local_port)]
        echoed = [p.payload for p in sent if p.payload != b"\xff" * 160]
        self.assertEqual(echoed, payloads)
        jitter = session._jitter
        self.assertEqual((jitter.skipped, jitter.accelerated), (0, 2))
        stamps = [p.timestamp for p in sent]
        self.assertEqual([(b - a) & 0xFFFFFFFF for a, b in zip(stamps, stamps[1:])],
                         [160] * (len(sent) - 1))

    def test_sink_gets_the_backlog_early(self):
        """
        Recording (no echo), the same backlog goes to the sink: the frames
        played early are written in the tick, none is dropped.
        """
        session, _ = self.answered(self.manager())
        sink = BufferSink()
        session.record(sink)
        self.deliver_with_caller_stall(session, [b"\x00" * 160] * 18)
        jitter = session._jitter
        self.assertEqual((jitter.skipped, jitter.accelerated), (0, 2))
        silence = bytes(320)
        heard = [frame for frame in sink.frames if frame != silence]
        self.assertEqual(len(heard), 18)
        # the stall concealed three frames, between the sixth and the seventh
        self.assertEqual(sink.frames[6:9], [silence] * 3)
        self.assertNotIn(silence, sink.frames[:6] + sink.frames[9:21])

    def test_echo_reads_waiting_packets_before_concealing(self):
        """
        When the reactor falls behind on reading (it runs the media clock
        first), a stream whose buffer runs dry reads its socket before it
        conceals a frame: the packets waiting there are echoed in order,
        nothing concealed.  The socket is read only then, not per frame.
        """
        session, _ = self.answered(self.manager())
        session.echo()
        sock = self.reactor.ports[session.local_port].socket
        payloads = [bytes([i + 1]) * 160 for i in range(14)]
        for i in range(6):
            self.reactor.deliver(session.local_port, rtp_from_peer(i, payloads[i]), PEER)
            self.advance(0.02)
        self.assertEqual(sock.reads, 0, "no read while the buffer holds packets")
        for i in range(6, 12):      # arrive, but the reactor does not get to them
            sock.unread.append((rtp_from_peer(i, payloads[i]), PEER))
            self.advance(0.02)
        for data, addr in sock.unread:      # the reactor catches up with what is left
            self.reactor.deliver(session.local_port, data, addr)
        del sock.unread[:]
        for i in range(12, 14):
            self.reactor.deliver(session.local_port, rtp_from_peer(i, payloads[i]), PEER)
            self.advance(0.02)
        self.assertEqual(session._jitter.concealed, 0)
        self.assertGreater(sock.reads, 0)
        self.advance(0.1)           # (the stream's end: the buffer runs dry for good)
        sent = [p for p, _ in rtp_sent(self.reactor, session.local_port)]
        echoed = [p.payload for p in sent if p.payload != b"\xff" * 160]
        self.assertEqual(echoed, payloads)

    def test_echo_steady_state_numbering(self):
        """
        The echo's steady state (payload passed through) and its other
        frames (a hole concealed, a PCMA packet transcoded) number alike:
        consecutive sequence numbers, timestamps 160 apart, the marker on
        the first packet only, payloads in order.
        """
        session, _ = self.answered(self.manager())
        session.echo()
        ours = [bytes([i + 1]) * 160 for i in range(8)]
        pcma = g711.alaw_encode(ToneSource(500).read(160))
        for seq in range(8):
            if seq == 3:
                self.reactor.deliver(session.local_port, rtp_from_peer(seq, pcma, pt=8), PEER)
            elif seq != 5:          # seq 5 never arrives
                self.reactor.deliver(session.local_port, rtp_from_peer(seq, ours[seq]), PEER)
            self.advance(0.02)
        self.advance(0.1)
        sent = [p for p, _ in rtp_sent(self.reactor, session.local_port)]
        first = next(i for i, p in enumerate(sent) if p.payload == ours[0])
        echoed = sent[first:first + 8]
        self.assertEqual([p.payload for p in echoed], [
            ours[0], ours[1], ours[2], g711.ulaw_encode(g711.alaw_decode(pcma)), ours[4],
            g711.ulaw_encode(bytes(320)), ours[6], ours[7]])
        seqs = [p.sequence_number for p in sent]
        self.assertEqual(seqs, [(seqs[0] + i) & 0xFFFF for i in range(len(sent))])
        stamps = [p.timestamp for p in echoed]
        self.assertEqual([(b - a) & 0xFFFFFFFF for a, b in zip(stamps, stamps[1:])], [160] * 7)
        self.assertEqual([p.marker for p in sent], [True] + [False] * (len(sent) - 1))

    def test_echo_transcodes(self):
        """
        PCMA received while sending PCMU is decoded and re-encoded.
        """
        session, _ = self.answered(self.manager())
        session.echo()
        payload = g711.alaw_encode(ToneSource(500).read(160))
        for seq in range(5):
            self.reactor.deliver(session.local_port, rtp_from_peer(seq, payload, pt=8), PEER)
            self.advance(0.02)
        self.advance(0.1)
        sent = [p.payload for p, _ in rtp_sent(self.reactor, session.local_port)]
        self.assertIn(g711.ulaw_encode(g711.alaw_decode(payload)), sent)

    def test_dtmf_reported_once(self):
        """
        An RFC 4733 event (start, update, three ends) calls on_dtmf once.
        """
        session, _ = self.answered(self.manager())
        digits = []
        session.on_dtmf = lambda digit, ms: digits.append((digit, ms))
        seq = 10
        for _, marker, payload in dtmf_packets("#", 120):
            self.reactor.deliver(
                session.local_port,
                rtp_from_peer(seq, payload, pt=101, ts=9999, marker=marker), PEER)
            seq += 1
        self.assertEqual(digits, [("#", 120)])

    def test_bad_input_counted(self):
        """
        Short, wrong-version, bad-padding RTP and garbage RTCP are counted
        and dropped; unknown payload types too.  Nothing raises.
        """
        session, _ = self.answered(self.manager())
        port = session.local_port
        for data in (b"", b"\x80", b"\x40" + b"\x00" * 20, b"\xa0\x00" + b"\x00" * 10 + b"\xff"):
            self.reactor.deliver(port, data, PEER)
        self.reactor.deliver(port, rtp_from_peer(1, pt=13), PEER)
        self.reactor.deliver(port + 1, b"\x80\xc9\x00\x05garbage", PEER_RTCP)
        self.reactor.deliver(port, b"\x81\xc8\x00\x01\x00\x00\x00\x01", PEER)
        self.assertEqual(session.bad_packets, 4)
        self.assertEqual(session.unknown_payload_types, 1)
        self.assertEqual(session.rtcp_bad, 2)
        self.assertEqual(session.packets_received, 0)

    def test_receiver_exception_contained(self):
        """
        If the receive path raises, the protocol logs and swallows it.
        """
        session, _ = self.answered(self.manager())
        protocol = self.reactor.ports[session.local_port].protocol

        def boom(data, addr):
            raise RuntimeError("boom")

        protocol.receiver = boom
        protocol.datagramReceived(b"x", PEER)
        self.assertEqual(protocol.errors, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_ssrc_change_resets_jitter_buffer(self):
        """
        A new SSRC from the latched peer restarts playout of the new stream.
        """
        session, _ = self.answered(self.manager())
        sink = BufferSink()
        session.record(sink)
        self.feed(session, range(1, 6), payload=b"\x10" * 160)
        self.feed(session, range(40000, 40006), payload=b"\x20" * 160, ssrc=0x1111)
        self.advance(0.1)
        self.assertEqual(session._stats.ssrc_changes, 1)
        self.assertIn(g711.ulaw_decode(b"\x20" * 160), sink.frames)


# -- RTCP ------------------------------------------------------------------------------------


class RtcpTests(ManagerTestCase):
    """
    Reports, RTT, BYE and rtcp-mux.
    """

    def test_sender_report_on_loop(self):
        """
        Every rtcp_interval the session sends an SR (it sent RTP) with SDES
        CNAME to the RTCP port; an RR when it did not send.
        """
        manager = self.manager(rtcp_interval=1.0)
        session, _ = self.answered(manager)
        self.advance(1.0)
        data, addr = self.reactor.sent(session.local_port + 1)[-1]
        self.assertEqual(addr, PEER_RTCP)
        sr, sdes = rtcp.parse_compound(data)
        self.assertIsInstance(sr, rtcp.SenderReport)
        self.assertEqual(sr.ssrc, session.ssrc)
        self.assertEqual(sr.packet_count, session.packets_sent)
        self.assertEqual(sdes.get_cname(session.ssrc), session.cname)
        session.answer_offer(offer_sdp(extra="a=recvonly"))  # we may not send...
        session.answer_offer(offer_sdp(extra="a=inactive"))
        self.advance(1.0)
        self.advance(1.0)
        data, _ = self.reactor.sent(session.local_port + 1)[-1]
        self.assertIsInstance(rtcp.parse_compound(data)[0], rtcp.ReceiverReport)

    def test_report_blocks_and_rtt(self):
        """
        Our report carries a block about the peer; the peer's RR about us
        (LSR/DLSR) gives the RTT and remote loss in quality().
        """
        manager = self.manager(rtcp_interval=1.0)
        session, _ = self.answered(manager)
        for seq in range(1, 6):
            self.reactor.deliver(session.local_port, rtp_from_peer(seq), PEER)
            self.advance(0.02)
        self.advance(1.0)
        data, _ = self.reactor.sent(session.local_port + 1)[-1]
        sr = rtcp.parse_compound(data)[0]
        self.assertEqual(sr.reports[0].ssrc, 0xABCDEF)
        self.assertEqual(sr.reports[0].highest_seq, 5)
        # the peer answers later, having held our SR for 10 ms
        lsr = rtcp.ntp_middle32(sr.ntp_timestamp)
        self.reactor.advance(0.03)
        expected_ms = 1000 * (self.reactor.seconds() - rtcp.unix_from_ntp(sr.ntp_timestamp) - 0.01)
        block = rtcp.ReportBlock(session.ssrc, fraction_lost=64, cumulative_lost=3,
                                 lsr=lsr, dlsr=int(0.01 * 65536))
        reply = rtcp.serialize_compound([rtcp.ReceiverReport(0xABCDEF, [block])])
        self.reactor.deliver(session.local_port + 1, reply, PEER_RTCP)
        quality = session.quality()
        self.assertLess(abs(quality["rtt_ms"] - expected_ms), 0.2)
        self.assertGreater(expected_ms, 19)
        self.assertEqual(quality["remote_loss_pct"], 25.0)
        self.assertEqual(quality["codec"], "PCMU")
        self.assertGreater(quality["mos"], 4.0)

    def test_rtcp_round_spread(self):
        """
        The RTCP round is spread over the interval: with 20 sessions and 10
        slices, each turn of the loop reports about 2 sessions, and every
        session reports once per interval.
        """
        manager = self.manager(rtcp_interval=1.0, port_range=(20000, 20100))
        sessions = [self.answered(manager, call_id="s%d" % i)[0] for i in range(20)]
        def reports():
            return sum(len(self.reactor.sent(s.local_port + 1)) for s in sessions)
        before = reports()
        self.advance(0.1)
        self.assertIn(reports() - before, (2, 3))
        self.advance(0.9)
        self.assertEqual(reports() - before, 20)

    def test_rtt_none_without_report(self):
        """
        rtt_ms is None until a report with LSR arrived.
        """
        session, _ = self.answered(self.manager())
        self.assertIsNone(session.quality()["rtt_ms"])
        self.assertIsNone(session.quality()["remote_loss_pct"])

    def test_sender_report_gives_lsr(self):
        """
        After the peer's SR, our report block carries its LSR and the delay
        since (DLSR).
        """
        manager = self.manager(rtcp_interval=1.0)
        session, _ = self.answered(manager)
        for seq in range(1, 4):
            self.reactor.deliver(session.local_port, rtp_from_peer(seq), PEER)
        ntp = rtcp.ntp_from_unix(12345.5)
        sr = rtcp.SenderReport(0xABCDEF, ntp, 480, 3, 480)
        self.reactor.deliver(session.local_port + 1, rtcp.serialize_compound([sr]), PEER_RTCP)
        received_at = self.reactor.seconds()
        self.advance(1.0)
        data, _ = self.reactor.sent(session.local_port + 1)[-1]
        block = rtcp.parse_compound(data)[0].reports[0]
        self.assertEqual(block.lsr, rtcp.ntp_middle32(ntp))
        self.assertLess(abs(block.dlsr / 65536.0 - (self.reactor.seconds() - received_at)), 0.01)

    def test_bye_on_stop(self):
        """
        stop() sends a final report with SDES and BYE.
        """
        session, _ = self.answered(self.manager())
        self.advance(0.04)
        port = session.local_port
        socket_ = self.reactor.ports[port + 1].socket
        session.stop()
        packets = rtcp.parse_compound(socket_.sent[-1][0])
        self.assertIsInstance(packets[-1], rtcp.Bye)
        self.assertEqual(packets[-1].ssrcs, (session.ssrc,))

    def test_no_bye_when_nothing_was_sent(self):
        """
        RFC 3550 6.3.7: a session that never sent RTP or RTCP (an echo call
        ended before any audio came) sends no BYE when it stops.
        """
        session, _ = self.answered(self.manager())
        session.echo()
        self.advance(0.1)
        port = session.local_port
        sockets = (self.reactor.ports[port].socket, self.reactor.ports[port + 1].socket)
        self.assertEqual([s.sent for s in sockets], [[], []])
        session.stop()
        self.assertEqual([s.sent for s in sockets], [[], []])

    def test_rtcp_mux(self):
        """
        With rtcp-mux negotiated, RTCP is sent on the RTP port to the RTP
        address, and RTCP arriving there is understood.
        """
        manager = self.manager(rtcp_interval=1.0)
        session, answer = self.answered(manager, extra="a=rtcp-mux")
        self.assertTrue(answer.media[0].rtcp_mux)
        self.advance(1.0)
        rtcp_on_rtp = [(d, a) for d, a in self.reactor.sent(session.local_port) if 192 <= d[1] <= 223]
        self.assertEqual(rtcp_on_rtp[-1][1], PEER)
        self.assertEqual(self.reactor.sent(session.local_port + 1), [])
        bye = rtcp.serialize_compound([rtcp.ReceiverReport(0xABCDEF), rtcp.Bye([0xABCDEF])])
        self.reactor.deliver(session.local_port, rtp_from_peer(1), PEER)
        self.reactor.deliver(session.local_port, bye, PEER)
        self.assertTrue(session.remote_bye)
        self.assertEqual(session.rtcp_received, 1)


class ServiceTests(ManagerTestCase):
    """
    Starting and stopping the service.
    """

    def test_stop_service(self):
        """
        stopService stops every session (BYE sent, ports released) and the
        loops: nothing runs afterwards.
        """
        manager = self.manager()
        sessions = [self.answered(manager, "c%d" % i)[0] for i in range(3)]
        self.advance(0.1)
        self.assertIsNone(manager.stopService())
        self.assertEqual(manager.sessions, {})
        self.assertEqual(manager.ports_in_use(), 0)
        self.assertEqual(self.reactor.ports, {})
        self.assertFalse(manager.clock.running)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertTrue(all(s._stopped for s in sessions))

    def test_idle_manager_sleeps(self):
        """
        With no session the media clock and the RTCP loop do not run (an
        idle server is not woken 520 times a second); the first session
        starts both, and they stop once the last one has ended (the clock
        after a second without streams, the RTCP loop at the end of its
        round).
        """
        manager = self.manager()
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertFalse(manager.clock.running)
        session, _ = self.answered(manager)
        self.assertTrue(manager.clock.running)
        self.advance(0.1)
        self.assertTrue(rtp_sent(self.reactor, session.local_port))   # media flows
        session.stop()
        self.advance(0.5)
        self.assertTrue(manager.clock.running)      # a second's grace
        self.advance(manager.rtcp_interval + 1.0)
        self.assertFalse(manager.clock.running)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        # and again for the next call
        again, _ = self.answered(manager, "call-2")
        self.advance(manager.rtcp_interval + 0.1)
        self.assertTrue(rtp_sent(self.reactor, again.local_port))
        self.assertTrue([d for d, _ in self.reactor.sent(again.local_port + 1)
                         if 192 <= d[1] <= 223])                    # RTCP reports too

    def test_estimate_mos(self):
        """
        The E-model: no loss and little delay gives ~4.4; loss and delay
        lower it; the extremes are clamped.
        """
        self.assertEqual(estimate_mos(0, 0), 4.41)
        self.assertLess(estimate_mos(5, 100), estimate_mos(1, 100))
        self.assertLess(estimate_mos(0, 400), estimate_mos(0, 100))
        self.assertEqual(estimate_mos(100, 1000), 1.0)


# -- the clock ----------------------------------------------------------------------------------


class MediaClockTests(SynchronousTestCase):
    """
    The slotted wheel.
    """

    def setUp(self):
        self.reactor = Clock()
        self.clock = MediaClock(self.reactor, tick=0.002, period=0.02)
        self.calls = []

    def recorder(self, name):
        return lambda frames, now: self.calls.append((name, frames, round(now, 3)))

    def test_each_stream_once_per_period(self):
        """
        A stream is called once per 20 ms, in its own slot.
        """
        self.clock.add(self.recorder("a"))
        self.clock.add(self.recorder("b"))
        self.clock.start()
        for _ in range(20):
            self.reactor.advance(0.002)
        names = [name for name, _, _ in self.calls]
        self.assertEqual(names.count("a"), 3)  # t = 0, 0.02, 0.04
        self.assertEqual(names.count("b"), 2)  # t = 0.002, 0.022
        self.assertEqual({frames for _, frames, _ in self.calls}, {1})

    def test_changes_between_runs(self):
        """
        A slot's callbacks are taken as they are when it runs: a stream added
        and removed between two runs is never called; one added by a
        callback of the run is called from the next run on.
        """
        clock = MediaClock(self.reactor, tick=0.02, period=0.02)     # one slot
        clock.start()
        clock.add(self.recorder("a"))
        gone = clock.add(self.recorder("gone"))
        clock.remove(gone)
        added = []

        def adder(frames, now):
            self.calls.append(("adder", frames, round(now, 3)))
            if not added:
                added.append(clock.add(self.recorder("late")))

        clock.add(adder)
        self.reactor.advance(0.02)
        self.assertEqual([name for name, _, _ in self.calls], ["a", "adder"])
        gone = clock.add(self.recorder("gone"))
        self.reactor.advance(0.01)
        clock.remove(gone)
        self.reactor.advance(0.01)
        self.assertEqual([name for name, _, _ in self.calls],
                         ["a", "adder", "a", "adder", "late"])
        self.assertEqual(clock.slot_loads(), [3])

    def test_runs_only_with_streams(self):
        """
        Enabled with no stream, the clock sets no timer; the first stream
        starts its slot's loop (first call at the slot's time, never inside
        add()); a slot's loop stops a second after its last stream left; a
        stream added later starts one again; stop() leaves nothing behind.
        """
        self.clock.start()
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        handle = self.clock.add(self.recorder("a"))
        self.assertTrue(self.clock.running)
        self.assertEqual(self.calls, [])
        for _ in range(50):
            self.reactor.advance(0.002)
        self.assertEqual(self.calls, [("a", 1, t) for t in (0.002, 0.022, 0.042, 0.062, 0.082)])
        self.clock.remove(handle)
        self.assertEqual(len(self.clock), 0)
        for _ in range(450):
            self.reactor.advance(0.002)
        self.assertTrue(self.clock.running)         # a second's grace
        for _ in range(50):
            self.reactor.advance(0.002)
        self.assertFalse(self.clock.running)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.clock.add(self.recorder("b"))
        for _ in range(10):
            self.reactor.advance(0.002)
        self.assertEqual([name for name, _, _ in self.calls].count("b"), 1)
        self.clock.stop()
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.clock.add(self.recorder("c"))          # disabled: no loop until start()
        self.assertFalse(self.clock.running)

    def test_wakes_only_for_slots_in_use(self):
        """
        The reactor is woken once per period for each slot that has
        streams: 50 times a second for one call, 500 for ten or more, as
        the streams spread over every slot.
        """
        wakeups = []
        real_call_later = self.reactor.callLater

        def counting(delay, f, *args, **kw):
            wakeups.append(delay)
            return real_call_later(delay, f, *args, **kw)

        self.reactor.callLater = counting
        self.clock.start()
        self.clock.add(self.recorder("one"))
        for _ in range(500):
            self.reactor.advance(0.002)
        self.assertIn(len(wakeups), (50, 51))
        for i in range(19):
            self.clock.add(self.recorder("s%d" % i))
        self.assertEqual(self.clock.slot_loads(), [2] * 10)
        del wakeups[:]
        self.calls.clear()
        for _ in range(500):
            self.reactor.advance(0.002)
        self.assertIn(len(wakeups), range(495, 511))
        per_stream = collections.Counter(name for name, _, _ in self.calls)
        self.assertEqual(len(per_stream), 20)
        self.assertLessEqual(set(per_stream.values()), {50, 51})   # a second's window
        self.assertEqual({frames for _, frames, _ in self.calls}, {1})

    def test_late_call_counts_frames(self):
        """
        After a 50 ms stall each stream is called once with every frame
        that came due.
        """
        late = []
        self.clock.late_observer = late.append
        self.clock.add(self.recorder("a"))
        self.clock.start()
        self.calls.clear()
        self.reactor.advance(0.05)
        self.assertEqual(self.calls, [("a", 2, 0.05)])
        self.assertEqual(self.clock.late_calls, 1)
        self.assertEqual([round(x, 6) for x in late], [0.03])   # the frame due at 0.02
        self.reactor.advance(0.01)                              # on time again
        self.assertEqual(self.clock.late_calls, 1)

    def test_broken_late_observer(self):
        """A late_observer that raises is logged; the streams go on."""
        def broken(late):
            raise RuntimeError("observer")

        self.clock.late_observer = broken
        self.clock.add(self.recorder("a"))
        self.clock.start()
        self.reactor.advance(0.05)                  # late: the observer raises
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        for _ in range(10):
            self.reactor.advance(0.002)
        self.assertEqual([frames for _, frames, _ in self.calls], [1, 2, 1])
        self.assertTrue(self.clock.running)

    def test_remove_and_failure(self):
        """
        A removed stream is not called; a stream that raises is removed and
        logged, the others go on.
        """
        handle = self.clock.add(self.recorder("gone"))
        self.clock.remove(handle)
        self.clock.remove(handle)

        def bad(frames, now):
            raise ValueError("broken stream")

        self.clock.add(bad)
        self.clock.add(self.recorder("ok"))
        self.clock.start()
        for _ in range(25):
            self.reactor.advance(0.002)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(self.clock.failures, 1)
        self.assertEqual([name for name, _, _ in self.calls], ["ok", "ok", "ok"])
        self.assertEqual(len(self.clock), 1)
        self.clock.stop()
        self.assertEqual(self.reactor.getDelayedCalls(), [])


# -- real sockets --------------------------------------------------------------------------------


class LoopbackTests(SynchronousTestCase):
    """
    Two managers on real UDP sockets on 127.0.0.1, driven by a private
    reactor instance for at most a few seconds.
    """

    def setUp(self):
        from twisted.internet.selectreactor import SelectReactor

        self.reactor = SelectReactor()
        self.addCleanup(self._close_reactor)

    def _close_reactor(self):
        reactor = self.reactor
        for call in reactor.getDelayedCalls():
            call.cancel()
        reactor.removeAll()
        waker = getattr(reactor, "waker", None)
        if waker is not None:
            try:
                waker.connectionLost(None)
            except Exception:
                pass

    def spin(self, condition, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            self.reactor.iterate(0.002)
        return condition()

    def test_call_over_loopback(self):
        """
        A offers, B answers; A plays a tone, B echoes it, A records the echo
        and sends a DTMF digit that B reports; RTCP gives A an RTT.  After
        stopService every port is closed and can be bound again.
        """
        base = random.Random().randrange(30000, 60000, 2)
        managers = [
            MediaManager(self.reactor, public_host="127.0.0.1", bind_host="127.0.0.1",
                         port_range=(base + 100 * i, base + 100 * i + 40), rtcp_interval=0.2)
            for i in range(2)
        ]
        for manager in managers:
            manager.startService()
        a = managers[0].new_session("loop")
        b = managers[1].new_session("loop")
        b_answer = b.answer_offer(a.create_offer())
        a.accept_answer(b_answer)
        self.assertTrue(a.negotiated.rtcp_mux)
        digits = []
        b.on_dtmf = lambda digit, ms: digits.append((digit, ms))
        sink = BufferSink()
        a.record(sink)
        a.play(ToneSource(800, amplitude=12000))
        b.echo()
        a.start()
        b.start()

        def echoed():
            return sum(1 for frame in sink.frames if any(frame)) >= 10

        self.assertTrue(self.spin(echoed), "no echo within 5 s: %r" % (a.quality(),))
        a.send_dtmf("7", duration_ms=80)
        self.assertTrue(self.spin(lambda: digits and a.rtt is not None))
        self.assertEqual(digits, [("7", 80)])
        quality = a.quality()
        self.assertGreater(quality["packets_received"], 10)
        self.assertLess(quality["rtt_ms"], 500)
        ports = [a.local_port, a.local_port + 1, b.local_port, b.local_port + 1]

        results = []
        for manager in managers:
            d = manager.stopService()
            if d is not None:
                d.addCallback(results.append)
            else:
                results.append(None)
        self.assertTrue(self.spin(lambda: len(results) == 2))
        self.assertEqual([m.ports_in_use() for m in managers], [0, 0])
        self.assertEqual([m.sessions for m in managers], [{}, {}])
        for port in ports:
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                probe.bind(("127.0.0.1", port))
            finally:
                probe.close()
        self.assertFalse(any(m.clock.running for m in managers))
