"""
Tests for the SIP transport layer: Via stamping (RFC 3261 18.2.1, RFC
3581), response routing (18.2.2), request routing, the MTU rule (18.1.1)
and answering what cannot be parsed.
"""

import os
import socket
import sys

import pytest
import pytest_twisted
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.sip.address import Destination
from rvoip_twisted.sip.message import Request
from rvoip_twisted.sip.parser import parse_message
from rvoip_twisted.transport.sip import SIPDatagramProtocol, SIPTransport


class FakeUDPTransport:
    def __init__(self, host="127.0.0.1", port=5060):
        self.written = []
        self._host = IPv4Address("UDP", host, port)

    def write(self, data, addr):
        self.written.append((data, addr))

    sendto = write

    def getHandle(self):
        return self

    def getHost(self):
        return self._host


class Receiver:
    def __init__(self):
        self.messages = []
        self.errors = []

    def message_received(self, msg, source):
        self.messages.append((msg, source))

    def transport_error(self, dest, reason):
        self.errors.append((dest, reason))


def invite(via="SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKabc;rport", extra=b""):
    return (
        b"INVITE sip:svc@127.0.0.1 SIP/2.0\r\n"
        b"Via: " + via.encode() + b"\r\n"
        b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:svc@127.0.0.1>\r\n"
        b"Call-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n" + extra +
        b"Content-Length: 0\r\n\r\n")


def make_layer():
    receiver = Receiver()
    layer = SIPTransport(Clock(), receiver=receiver)
    proto = SIPDatagramProtocol(layer)
    proto.transport = proto.socket = FakeUDPTransport()
    layer._udp_started(proto)
    return layer, proto, receiver


class ViaStampingTests(SynchronousTestCase):
    def test_rport_filled(self):
        """A request whose top Via asks for rport gets received and rport set."""
        layer, proto, receiver = make_layer()
        proto.datagramReceived(invite(), ("10.0.0.9", 40000))
        msg, source = receiver.messages[0]
        self.assertEqual(source, Destination("UDP", "10.0.0.9", 40000))
        via = msg.top_via
        self.assertEqual(via.params["received"], "10.0.0.9")
        self.assertEqual(via.params["rport"], "40000")
        self.assertIn("received=10.0.0.9", msg.get("Via"))

    def test_received_when_host_differs(self):
        """Without rport, received is added only when the source differs from sent-by."""
        layer, proto, receiver = make_layer()
        proto.datagramReceived(invite("SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKx"),
                               ("10.0.0.9", 5062))
        self.assertEqual(receiver.messages[0][0].top_via.received, "10.0.0.9")
        proto.datagramReceived(invite("SIP/2.0/UDP 10.0.0.9:5062;branch=z9hG4bKy"),
                               ("10.0.0.9", 5062))
        self.assertIsNone(receiver.messages[1][0].top_via.received)

    def test_only_top_via_changed(self):
        """Only the first Via value is stamped, also when Vias share a line."""
        layer, proto, receiver = make_layer()
        proto.datagramReceived(
            invite("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa;rport, SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKb"),
            ("10.0.0.9", 1234))
        msg = receiver.messages[0][0]
        self.assertEqual(len(msg.vias), 2)
        self.assertNotIn("received", msg.vias[1].params)
        reparsed = parse_message(msg.to_bytes())
        self.assertEqual(reparsed.vias[0].rport, 1234)
        self.assertEqual(reparsed.vias[1].host, "192.0.2.2")


class OverloadSheddingTests(SynchronousTestCase):
    """
    While overloaded, a new INVITE is answered 503 from its lines, before
    parsing; anything else takes the parsed path.
    """

    def shed(self, data, waited=1.0):
        layer, proto, receiver = make_layer()
        proto.datagramReceivedAfter(data, ("10.0.0.9", 5062), waited)
        sent = proto.transport.written
        return layer, receiver, sent

    def test_compact_forms_and_case(self):
        """Compact and lower-case names are read; the lines are copied as they are,
        every Via in order."""
        data = (b"INVITE sip:svc@127.0.0.1 SIP/2.0\r\n"
                b"v: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKp1\r\n"
                b"via:SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKabc;rport\r\n"
                b"f: \"A b\" <sip:a@example.com>;tag=1\r\nt: <sip:svc@127.0.0.1>  \r\n"
                b"i: c-42@x\r\ncseq: 7  INVITE\r\nMax-Forwards: 70\r\nl: 0\r\n\r\n")
        layer, receiver, sent = self.shed(data)
        self.assertEqual(receiver.messages, [], "not parsed, not delivered")
        [(out, addr)] = sent
        self.assertEqual(addr, ("10.0.0.9", 5062))
        resp = parse_message(out)
        self.assertEqual((resp.status, resp.reason), (503, "Service Unavailable"))
        self.assertEqual([v.branch for v in resp.vias], ["z9hG4bKp1", "z9hG4bKabc"])
        self.assertEqual(resp.call_id, "c-42@x")
        self.assertEqual((resp.cseq.seq, resp.cseq.method), (7, "INVITE"))
        self.assertEqual(resp.from_.display_name, "A b")
        self.assertEqual(resp.from_tag, "1")
        self.assertTrue(resp.to_tag.startswith("ovl"))
        self.assertEqual(str(resp.to.uri), "sip:svc@127.0.0.1")
        self.assertEqual(resp.get("Retry-After"), "5")
        self.assertEqual(resp.body, b"")
        self.assertEqual(layer.shed_calls, 1)

    def test_linear_in_blanks(self):
        """
        A 60 KB INVITE of blanks (a line that would make a backtracking
        pattern try every split) is read in one pass: refused or parsed,
        at once.
        """
        import time
        blanks = b" " * 30000
        data = invite().replace(b"Call-ID: c1", b"Call-ID:" + blanks + b"c" + blanks + b"1\r")
        started = time.perf_counter()
        layer, receiver, sent = self.shed(data)
        self.assertLess(time.perf_counter() - started, 2.0)
        self.assertEqual(layer.shed_calls, 0, "a bare CR: the parser decides")
        data = invite().replace(b"Call-ID: c1", b"Call-ID:" + blanks + b"c" + blanks + b"1 ")
        started = time.perf_counter()
        layer, receiver, sent = self.shed(data)
        self.assertLess(time.perf_counter() - started, 2.0)
        self.assertEqual(layer.shed_calls, 1)
        [(out, addr)] = sent
        self.assertIn(b"Call-ID: c" + blanks + b"1\r\n", out)

    def test_parsed_path_otherwise(self):
        """A re-INVITE (To tag), a missing or repeated header, a request other than
        INVITE, or no wait: parsed and delivered (or answered 400) as always."""
        cases = [
            invite().replace(b"To: <sip:svc@127.0.0.1>", b"To: <sip:svc@127.0.0.1>;tag=x"),
            invite().replace(b"Call-ID: c1\r\n", b""),
            invite().replace(b"Call-ID: c1\r\n", b"Call-ID: c1\r\nCall-ID: c2\r\n"),
            invite().replace(b"INVITE", b"OPTIONS"),
        ]
        for data in cases:
            layer, receiver, sent = self.shed(data)
            self.assertEqual(layer.shed_calls, 0, data)
            self.assertTrue(receiver.messages or layer.bad_count, "parsed: %r" % (data,))
            for out, addr in sent:
                self.assertNotIn(b" 503 ", out.split(b"\r\n")[0], data)
        layer, receiver, sent = self.shed(invite(), waited=0.1)
        self.assertEqual(len(receiver.messages), 1)
        self.assertEqual(layer.shed_calls, 0)


    def test_credentials_are_a_call_in_progress(self):
        """
        When we challenge INVITEs, one with credentials answers our 407:
        served, not refused.  When we do not, credentials are no way round
        the refusal.
        """
        for header in (b"Proxy-Authorization", b"authorization"):
            data = invite(extra=header + b': Digest username="bob"\r\n')
            layer, proto, receiver = make_layer()
            layer.challenges_invites = True
            proto.datagramReceivedAfter(data, ("10.0.0.9", 5062), 1.0)
            self.assertEqual(layer.shed_calls, 0, header)
            self.assertEqual(len(receiver.messages), 1, header)
            layer, receiver, sent = self.shed(data)
            self.assertEqual(layer.shed_calls, 1, header)
            self.assertEqual(receiver.messages, [], header)


class ResponseRoutingTests(SynchronousTestCase):
    def route(self, via, source):
        layer, proto, receiver = make_layer()
        proto.datagramReceived(invite(via), source)
        msg = receiver.messages[0][0]
        return layer.response_destination(msg)

    def test_rport(self):
        """RFC 3581: with rport the response goes to the source address and port."""
        self.assertEqual(
            self.route("SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa;rport", ("10.0.0.9", 40000)),
            Destination("UDP", "10.0.0.9", 40000))

    def test_received_without_rport(self):
        """Without rport: the received address and the sent-by port."""
        self.assertEqual(
            self.route("SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa", ("10.0.0.9", 40000)),
            Destination("UDP", "10.0.0.9", 5062))

    def test_default_port(self):
        """Without a sent-by port the response goes to 5060."""
        self.assertEqual(
            self.route("SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKa", ("10.0.0.9", 40000)),
            Destination("UDP", "10.0.0.9", 5060))

    def test_maddr(self):
        """A maddr in the Via takes precedence over received (18.2.2)."""
        self.assertEqual(
            self.route("SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKa;maddr=239.1.1.1",
                       ("10.0.0.9", 40000)),
            Destination("UDP", "239.1.1.1", 5070))

    def test_tcp_same_connection(self):
        """A request over TCP is answered over the connection it came on."""
        layer, proto, receiver = make_layer()
        msg = parse_message(invite("SIP/2.0/TCP 192.0.2.1:5062;branch=z9hG4bKa"))
        layer.message_received(msg, Destination("TCP", "10.0.0.9", 41000))
        self.assertEqual(layer.response_destination(receiver.messages[0][0]),
                         Destination("TCP", "10.0.0.9", 41000))


class RequestRoutingTests(SynchronousTestCase):
    def test_request_uri(self):
        """Without Route, a request goes to the Request-URI's host and port."""
        layer, _, _ = make_layer()
        req = Request("OPTIONS", "sip:bob@192.0.2.5:5070")
        self.assertEqual(layer.request_destination(req), Destination("UDP", "192.0.2.5", 5070))

    def test_transport_param_case_insensitive(self):
        """transport=TCP in capitals still selects TCP (the sippy crash)."""
        layer, _, _ = make_layer()
        req = Request("BYE", "sip:bob@192.0.2.5;transport=TCP")
        self.assertEqual(layer.request_destination(req), Destination("TCP", "192.0.2.5", 5060))

    def test_loose_route(self):
        """A loose-routing first Route decides the next hop."""
        layer, _, _ = make_layer()
        req = Request("BYE", "sip:bob@192.0.2.5",
                      [("Route", "<sip:proxy.example;lr>, <sip:p2;lr>")])
        req.set("Route", "<sip:192.0.2.7:5080;lr>")
        self.assertEqual(layer.request_destination(req), Destination("UDP", "192.0.2.7", 5080))

    def test_mtu_switch_to_tcp(self):
        """A request over 1300 bytes goes over TCP with its Via changed (18.1.1)."""
        layer, _, _ = make_layer()
        layer._tcp_listening = True
        layer._tcp_ports[2] = 5060
        req = parse_message(invite("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKq",
                                   b"X-Big: " + b"a" * 1400 + b"\r\n"))
        dest = layer.choose_transport(req, Destination("UDP", "192.0.2.5", 5060))
        self.assertEqual(dest, Destination("TCP", "192.0.2.5", 5060))
        self.assertEqual(parse_message(req.to_bytes()).top_via.transport, "TCP")

    def test_small_stays_udp(self):
        """A small request stays on UDP."""
        layer, _, _ = make_layer()
        layer._tcp_listening = True
        req = parse_message(invite("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKq"))
        dest = layer.choose_transport(req, Destination("UDP", "192.0.2.5", 5060))
        self.assertEqual(dest.transport, "UDP")
        self.assertEqual(req.top_via.transport, "UDP")


class BadInputTests(SynchronousTestCase):
    def test_bad_request_answered_400(self):
        """A malformed request with a usable Via is answered 400 to its source."""
        layer, proto, receiver = make_layer()
        bad = invite().replace(b"CSeq: 1 INVITE", b"CSeq: 1 OPTIONS")
        proto.datagramReceived(bad, ("10.0.0.9", 40000))
        self.assertEqual(receiver.messages, [])
        data, addr = proto.transport.written[0]
        self.assertEqual(addr, ("10.0.0.9", 40000))
        self.assertTrue(data.startswith(b"SIP/2.0 400 "))

    def test_bad_version_505(self):
        """SIP/7.0 is answered 505."""
        layer, proto, receiver = make_layer()
        proto.datagramReceived(invite().replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1),
                               ("10.0.0.9", 40000))
        self.assertTrue(proto.transport.written[0][0].startswith(b"SIP/2.0 505 "))

    def test_garbage_dropped(self):
        """Garbage that cannot be answered is dropped, and later messages still work."""
        layer, proto, receiver = make_layer()
        proto.datagramReceived(b"\x00\xff garbage", ("10.0.0.9", 1))
        proto.datagramReceived(b"\r\n\r\n", ("10.0.0.9", 1))
        self.assertEqual(proto.transport.written, [])
        proto.datagramReceived(invite(), ("10.0.0.9", 40000))
        self.assertEqual(len(receiver.messages), 1)
        self.assertEqual(layer.bad_count, 1)

    def test_receiver_exception_contained(self):
        """An exception in the layer above is logged, not raised into the reactor."""
        layer, proto, receiver = make_layer()

        def boom(msg, source):
            raise RuntimeError("boom")
        receiver.message_received = boom
        proto.datagramReceived(invite(), ("10.0.0.9", 40000))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class TCPTests(SynchronousTestCase):
    def test_stream_answers_and_frames(self):
        """Messages split across TCP reads are framed; the peer's connection is reused."""
        layer, proto, receiver = make_layer()
        factory = layer.stream_factory()
        conn = factory.buildProtocol(None)
        tr = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.9", 41000))
        conn.makeConnection(tr)
        data = invite("SIP/2.0/TCP 10.0.0.9:41000;branch=z9hG4bKt")
        conn.dataReceived(data[:50])
        self.assertEqual(receiver.messages, [])
        conn.dataReceived(data[50:] + data)
        self.assertEqual(len(receiver.messages), 2)
        layer.send(b"SIP/2.0 200 OK\r\n\r\n", Destination("TCP", "10.0.0.9", 41000))
        self.assertEqual(tr.value(), b"SIP/2.0 200 OK\r\n\r\n")

    def test_framing_error_closes(self):
        """A stream that cannot be framed (no Content-Length) is answered and closed."""
        layer, proto, receiver = make_layer()
        conn = layer.stream_factory().buildProtocol(None)
        tr = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.9", 41000))
        conn.makeConnection(tr)
        conn.dataReceived(invite("SIP/2.0/TCP 10.0.0.9;branch=z9hG4bKt").replace(
            b"Content-Length: 0\r\n", b""))
        self.assertTrue(tr.value().startswith(b"SIP/2.0 400 "))
        self.assertTrue(tr.disconnecting)


class DebugLoggingTests(SynchronousTestCase):
    def test_one_line_per_message_at_debug(self):
        """With --log-level debug each message received and sent is one debug event; none otherwise."""
        from twisted.logger import LogLevel, globalLogPublisher

        from rvoip_twisted.logs import set_level
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.addCleanup(set_level, "info")
        layer, proto, receiver = make_layer()
        set_level("info")
        proto.datagramReceived(invite(), ("10.0.0.9", 40000))
        self.assertEqual([e for e in events if e["log_level"] == LogLevel.debug], [])
        set_level("debug")
        proto.datagramReceived(invite(), ("10.0.0.9", 40000))
        layer.send(b"SIP/2.0 200 OK\r\n\r\n", Destination("UDP", "10.0.0.9", 40000))
        debug = [e for e in events if e["log_level"] == LogLevel.debug]
        self.assertEqual(len(debug), 2)
        self.assertIn("recv", debug[0]["log_format"])
        self.assertEqual(debug[1]["line"], b"SIP/2.0 200 OK")


class NextHopTests(SynchronousTestCase):
    def test_dialog_route_set(self):
        """next_hop goes to the first route of a dialog's route set (loose or strict), else the remote target."""
        from rvoip_twisted.sip.headers import NameAddr
        from rvoip_twisted.sip.uri import parse_uri
        layer, _, _ = make_layer()
        target = parse_uri("sip:bob@192.0.2.5:5070")
        self.assertEqual(layer.next_hop([], target), Destination("UDP", "192.0.2.5", 5070))
        loose = [NameAddr.parse("<sip:192.0.2.7:5080;lr;transport=tcp>")]
        self.assertEqual(layer.next_hop(loose, target), Destination("TCP", "192.0.2.7", 5080))
        strict = [NameAddr.parse("<sip:192.0.2.7:5080>")]
        self.assertEqual(layer.next_hop(strict, target), Destination("UDP", "192.0.2.7", 5080))


class ByteIdenticalRetransmissionTests(SynchronousTestCase):
    """
    A byte-identical retransmission of a request in a live server
    transaction is handled by the transaction without being parsed; one
    that differs in any byte takes the parsed path and still matches.
    """

    def setUp(self):
        from rvoip_twisted.service.transactions import TransactionManager
        from rvoip_twisted.transport import sip as sip_transport

        from .test_transaction_manager import FakeTU, answer_with
        self.answer_with = answer_with
        self.clock = Clock()
        self.layer = SIPTransport(self.clock)
        self.proto = SIPDatagramProtocol(self.layer)
        self.proto.transport = self.proto.socket = FakeUDPTransport()
        self.layer._udp_started(self.proto)
        self.tu = FakeTU(answer_with(180))
        self.manager = TransactionManager(self.clock, self.layer, self.tu)
        self.layer.receiver = self.manager
        self.parsed = []
        real = sip_transport.parse_message

        def counting(data, *args):
            self.parsed.append(data)
            return real(data, *args)
        self.patch(sip_transport, "parse_message", counting)

    def statuses(self):
        return [parse_message(data).status for data, _ in self.proto.transport.written]

    def test_identical_retransmission_not_parsed(self):
        """The same bytes again: the 180 is re-sent, the TU sees one request, one parse."""
        data = invite()
        self.proto.datagramReceived(data, ("10.0.0.9", 40000))
        self.proto.datagramReceived(bytes(bytearray(data)), ("10.0.0.9", 40000))
        self.assertEqual(self.statuses(), [180, 180])
        self.assertEqual(len(self.tu.requests), 1)
        self.assertEqual(len(self.parsed), 1)
        self.assertEqual(self.layer.received_count, 2)
        # the re-sent 180 still carries the received/rport stamp
        resent = parse_message(self.proto.transport.written[1][0])
        self.assertEqual(resent.top_via.params["rport"], "40000")

    def test_different_bytes_parsed_and_matched(self):
        """A retransmission differing in one byte is parsed and matched by its branch."""
        self.proto.datagramReceived(invite(), ("10.0.0.9", 40000))
        self.proto.datagramReceived(invite(extra=b"Subject: x\r\n"), ("10.0.0.9", 40000))
        self.assertEqual(self.statuses(), [180, 180])
        self.assertEqual(len(self.tu.requests), 1)
        self.assertEqual(len(self.parsed), 2)

    def test_ended_transaction_forgotten(self):
        """Once the transaction has ended, the same bytes are a new request again."""
        self.tu.answer = self.answer_with(486)
        data = invite()
        self.proto.datagramReceived(data, ("10.0.0.9", 40000))
        self.proto.datagramReceived(data, ("10.0.0.9", 40000))     # Completed: 486 again
        self.assertEqual(self.statuses(), [486, 486])
        self.assertEqual(len(self.manager._raw), 1)
        self.clock.advance(33)                                     # Timer H, no ACK
        self.assertEqual(self.manager._raw, {})
        self.assertEqual(self.manager.stats(), {"server": 0, "client": 0})
        self.proto.datagramReceived(data, ("10.0.0.9", 40000))
        self.assertEqual(len(self.tu.requests), 2)


@defer.inlineCallbacks
def _warm_busy_idle(write, waiting):
    """
    C{write("warm")}, C{write("busy")} with the reactor blocked for 0.3 s
    so that it waits unread, then C{write("idle")}, each time waiting for
    the receiver to fire the Deferred put in C{waiting}.  The kernel turns
    its receive timestamps on a moment after the first socket asks (a
    deferred static-key switch), until then a message is stamped when it
    is read: the first one is let through, and the test waits, before the
    others.
    """
    import time

    from twisted.internet import reactor

    def send(call_id):
        d = defer.Deferred()
        waiting.append(d)
        write(call_id)
        return d.addTimeout(5, reactor)

    yield send("warm")
    yield task.deferLater(reactor, 0.2, lambda: None)
    d = send("busy")
    time.sleep(0.3)
    yield d
    yield send("idle")


@pytest_twisted.inlineCallbacks
def test_queue_delay_measured():
    """
    The SIP UDP port reads each datagram's kernel arrival time: the
    transport's C{queue_delay} is how long the datagram waited in the
    socket buffer (real sockets on 127.0.0.1; the reactor is blocked on
    purpose so that the first datagram waits).
    """
    from twisted.internet import reactor
    from rvoip_twisted.transport.sip import SIPUDPPort, listen_sip_udp

    layer = SIPTransport(reactor, public_host="127.0.0.1")
    seen = []
    waiting = []

    class Receiver:
        def message_received(self, msg, source):
            seen.append((msg.call_id, layer.queue_delay))
            if waiting:
                waiting.pop().callback(None)

    layer.receiver = Receiver()
    port = listen_sip_udp(reactor, 0, layer.datagram_protocol(), interface="127.0.0.1")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert isinstance(port, SIPUDPPort)
        if not port.stamped:
            pytest.skip("no SO_TIMESTAMPNS on this platform")

        def write(call_id):
            sock.sendto((OPTIONS % (call_id, call_id)).encode(),
                        ("127.0.0.1", port.getHost().port))

        yield _warm_busy_idle(write, waiting)
    finally:
        sock.close()
        yield port.stopListening()
    [(first, busy), (second, idle)] = seen[1:]
    assert (first, second) == ("busy", "idle")
    assert 0.29 <= busy < 5, busy
    assert 0 <= idle < busy, (idle, busy)


OPTIONS = (
    "OPTIONS sip:svc@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-%s\r\n"
    "From: <sip:probe@127.0.0.1>;tag=p1\r\n"
    "To: <sip:svc@127.0.0.1>\r\n"
    "Call-ID: %s\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Max-Forwards: 70\r\n"
    "Content-Length: 0\r\n\r\n"
)


def _drain_responses(sock, parser):
    """Every SIP message that has arrived on the client socket (non-blocking)."""
    sock.setblocking(False)
    out = []
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return out
        if not data:
            return out
        out.extend(parser.feed(data))


@pytest_twisted.inlineCallbacks
def test_tcp_queue_delay_measured():
    """
    An accepted SIP TCP connection reads with the kernel's arrival time:
    the transport's C{queue_delay} is how long the newest bytes of the
    read waited in the receive buffer (real sockets on 127.0.0.1; the
    reactor is blocked on purpose so that the second request waits).
    """
    from twisted.internet import reactor
    from rvoip_twisted.transport.sip import SIPTCPPort, listen_sip_tcp

    if not sys.platform.startswith("linux"):
        pytest.skip("TCP arrival stamps (SO_TIMESTAMPNS) are read on Linux only")
    layer = SIPTransport(reactor, public_host="127.0.0.1")
    seen = []
    waiting = []

    class Receiver:
        def message_received(self, msg, source):
            seen.append((msg.call_id, layer.queue_delay, source.transport))
            if waiting:
                waiting.pop().callback(None)

    layer.receiver = Receiver()
    port = listen_sip_tcp(reactor, 0, layer.stream_factory(), interface="127.0.0.1")
    assert isinstance(port, SIPTCPPort)
    sock = socket.create_connection(("127.0.0.1", port.getHost().port), timeout=5)
    try:
        def write(call_id):
            sock.sendall((OPTIONS % (call_id, call_id)).replace("UDP", "TCP").encode())

        yield _warm_busy_idle(write, waiting)
    finally:
        sock.close()
        layer.close_connections()
        yield port.stopListening()
    [(first, busy, kind), (second, idle, _)] = seen[1:]
    assert (first, second, kind) == ("busy", "idle", "TCP")
    assert 0.29 <= busy < 5, busy
    assert 0 <= idle < busy, (idle, busy)


@pytest_twisted.inlineCallbacks
def test_tcp_overloaded_new_call_refused():
    """
    Overload protection on TCP, end to end with real sockets: an INVITE
    read after waiting longer than C{overload_delay} in the connection's
    receive buffer is answered 503 with Retry-After and leaves no call; on
    the same connection an INVITE read at once is answered 200.
    """
    import time

    from twisted.internet import reactor
    from rvoip_twisted.apps.echo import EchoApp
    from rvoip_twisted.service.server import SIPServer
    from rvoip_twisted.sip.parser import StreamParser

    if not sys.platform.startswith("linux"):
        pytest.skip("TCP arrival stamps (SO_TIMESTAMPNS) are read on Linux only")
    server = SIPServer(reactor=reactor, listen=["tcp:0:interface=127.0.0.1"],
                       handler=EchoApp(), public_host="127.0.0.1",
                       rtp_ports=(31000, 31099), overload_delay=0.1)
    server.startService()
    sock = socket.create_connection(("127.0.0.1", server.port("TCP")), timeout=5)
    parser = StreamParser()
    try:
        def invite_bytes(call_id):
            # SIPp's INVITE (tests/fixtures), over TCP, one Call-ID, branch and tag per call
            tag = call_id.encode()
            return (SIPP_INVITE.replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP")
                    .replace(b"z9hG4bK-12345-1-0", b"z9hG4bK-" + tag)
                    .replace(b"1-12345@127.0.1.1", tag)
                    .replace(b"12345SIPpTag001", b"t-" + tag))

        # warm up: the kernel turns its stamps on a moment after the first ask
        sock.sendall(invite_bytes("warm"))
        yield task.deferLater(reactor, 0.3, lambda: None)
        sock.sendall(invite_bytes("late"))
        time.sleep(0.3)         # the reactor is blocked: the INVITE waits
        yield task.deferLater(reactor, 0.3, lambda: None)
        messages = _drain_responses(sock, parser)
        responses = [(m.call_id, m.status) for m in messages]
        late = [status for call_id, status in responses if call_id == "late"]
        assert late == [503], responses
        assert ("warm", 200) in responses, responses
        assert "late" not in server.sessions.calls
        assert server.transport.shed_calls == 1
        sock.sendall(invite_bytes("prompt"))
        yield task.deferLater(reactor, 0.3, lambda: None)
        messages += _drain_responses(sock, parser)
        responses = [(m.call_id, m.status) for m in messages]
        assert ("prompt", 200) in responses, responses
        assert server.transport.shed_calls == 1
        # end both calls as a UA would (ACK, BYE) and ACK the 503 (its
        # transaction's ACK: the INVITE's branch), so that nothing waits
        [refusal] = [m for m in messages if m.call_id == "late"]
        sock.sendall(TCP_IN_DIALOG.format(
            method="ACK", seq=1, call_id="late", to_tag=refusal.to_tag).replace(
                "-late-ACK", "-late").encode())
        tags = {m.call_id: m.to_tag for m in messages if m.status == 200}
        for call_id in ("warm", "prompt"):
            for method, seq in (("ACK", 1), ("BYE", 2)):
                sock.sendall(TCP_IN_DIALOG.format(
                    method=method, seq=seq, call_id=call_id, to_tag=tags[call_id]).encode())
        yield task.deferLater(reactor, 0.3, lambda: None)
        byes = [m for m in _drain_responses(sock, parser) if m.cseq.method == "BYE"]
        assert sorted((m.call_id, m.status) for m in byes) == [("prompt", 200), ("warm", 200)]
        assert server.sessions.calls == {}
    finally:
        sock.close()
        yield server.stopService()


with open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "fixtures", "sip", "sipp_invite.sip"), "rb") as _f:
    SIPP_INVITE = _f.read()

TCP_IN_DIALOG = (
    "{method} sip:echo@127.0.0.1;transport=tcp SIP/2.0\r\n"
    "Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-{call_id}-{method}\r\n"
    "From: <sip:probe@127.0.0.1>;tag=t-{call_id}\r\n"
    "To: <sip:echo@127.0.0.1>;tag={to_tag}\r\n"
    "Call-ID: {call_id}\r\n"
    "CSeq: {seq} {method}\r\n"
    "Max-Forwards: 70\r\n"
    "Content-Length: 0\r\n\r\n"
)


class HeldSendTests(SynchronousTestCase):
    """While the UDP port reads a burst, what it causes us to send is held
    and goes out together, in order, at the end of the burst (or every
    HELD_MAX datagrams); outside a burst a send goes out at once."""

    def dest(self, port):
        return Destination("UDP", "192.0.2.9", port)

    def test_held_until_release(self):
        layer, proto, receiver = make_layer()
        layer.send(b"now", self.dest(1))
        self.assertEqual(proto.socket.written, [(b"now", ("192.0.2.9", 1))])
        proto.held = []
        for n in range(5):
            layer.send(b"m%d" % n, self.dest(10 + n))
        self.assertEqual(len(proto.socket.written), 1)
        proto.release()
        self.assertEqual(proto.socket.written[1:],
                         [(b"m%d" % n, ("192.0.2.9", 10 + n)) for n in range(5)])
        self.assertIsNone(proto.held)
        layer.send(b"after", self.dest(2))
        self.assertEqual(proto.socket.written[-1], (b"after", ("192.0.2.9", 2)))

    def test_flushed_every_held_max(self):
        layer, proto, receiver = make_layer()
        proto.held = []
        for n in range(proto.HELD_MAX + 3):
            layer.send(b"m%d" % n, self.dest(n + 1))
        self.assertEqual([d for d, _ in proto.socket.written],
                         [b"m%d" % n for n in range(proto.HELD_MAX)])
        self.assertEqual(len(proto.held), 3)
        proto.release()
        self.assertEqual([d for d, _ in proto.socket.written],
                         [b"m%d" % n for n in range(proto.HELD_MAX + 3)])

    def test_errors_reported_at_release(self):
        """A send that fails when the held datagrams go out reaches the
        receiver's transport_error, each with its destination; a full
        buffer is counted as a drop."""
        layer, proto, receiver = make_layer()

        class Failing:
            def __init__(self):
                self.calls = 0

            def sendto(self, data, addr):
                self.calls += 1
                if data == b"full":
                    raise BlockingIOError()
                if data == b"bad":
                    raise OSError("unreachable")

        proto.socket = Failing()
        proto.held = []
        layer.send(b"full", self.dest(1))
        layer.send(b"bad", self.dest(2))
        layer.send(b"ok", self.dest(3))
        self.assertEqual(receiver.errors, [])
        proto.release()
        self.assertEqual(proto.socket.calls, 3)
        self.assertEqual(layer.dropped_count, 1)
        self.assertEqual(receiver.errors, [(self.dest(2), "unreachable")])

    def test_socket_gone_at_release(self):
        layer, proto, receiver = make_layer()
        proto.held = []
        layer.send(b"x", self.dest(1))
        proto.socket = None
        proto.release()
        self.assertEqual(receiver.errors,
                         [(self.dest(1), "no UDP socket for this address family")])


@pytest_twisted.inlineCallbacks
def test_burst_answered_in_order():
    """
    Real sockets on 127.0.0.1: a burst of requests read in one turn of the
    port (the reactor is blocked while they arrive) gets every answer, in
    the requests' order, and the sends were held to the end of the burst.
    """
    from twisted.internet import reactor
    from rvoip_twisted.transport.sip import SIPUDPPort, listen_sip_udp

    layer = SIPTransport(reactor, public_host="127.0.0.1")
    held_sizes = []
    send_held = layer._send_held

    def recording(proto, held):
        held_sizes.append(len(held))
        send_held(proto, held)

    layer._send_held = recording

    class Echo:
        def message_received(self, msg, source):
            layer.send(msg.response(200, to_tag="t").to_bytes(),
                       layer.response_destination(msg))

    layer.receiver = Echo()
    port = listen_sip_udp(reactor, 0, layer.datagram_protocol(), interface="127.0.0.1")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    try:
        assert isinstance(port, SIPUDPPort)
        if not port.stamped:
            pytest.skip("no SO_TIMESTAMPNS: the port reads as Twisted's does")
        client_port = sock.getsockname()[1]
        count = 10
        for n in range(count):      # all queued before the reactor reads
            sock.sendto((OPTIONS % (n, n)).replace("5999", str(client_port)).encode(),
                        ("127.0.0.1", port.getHost().port))
        got = []
        for _ in range(200):
            yield task.deferLater(reactor, 0.01, lambda: None)
            try:
                while len(got) < count:
                    sock.settimeout(0)
                    got.append(parse_message(sock.recv(65536)).call_id)
            except (BlockingIOError, OSError):
                pass
            if len(got) == count:
                break
    finally:
        sock.close()
        yield port.stopListening()
    assert got == [str(n) for n in range(count)]
    assert held_sizes and max(held_sizes) > 1, held_sizes
    assert sum(held_sizes) == count
