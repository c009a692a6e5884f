"""
In-process loopback tests with real sockets on 127.0.0.1 (and ::1): two
servers, one calling the other through the public API, over UDP and TCP,
with real RTP, DTMF and clean teardown.
"""

import socket

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from rvoip_twisted.apps.echo import EchoApp
from rvoip_twisted.call import CallFailed
from rvoip_twisted.media.sources import ToneSource
from rvoip_twisted.service.server import SIPServer
from rvoip_twisted.sip.parser import parse_message


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


def make_server(host="127.0.0.1", handler=None, rtp=(30000, 30999)):
    esc = host.replace(":", "\\:")
    server = SIPServer(reactor=reactor, listen=["udp:0:interface=" + esc],
                       handler=handler, public_host=host, rtp_ports=rtp,
                       rtcp_interval=0.5)
    server.startService()
    return server


def add_tcp(server, host="127.0.0.1"):
    """Listen on TCP too, on the port number UDP got (RFC 3261 18: one port)."""
    from rvoip_twisted.service.server import _Listener
    listener = _Listener(reactor, server.transport, "TCP", server.port("UDP"), host)
    listener.setServiceParent(server)
    server.listeners.append(listener)
    return listener


@defer.inlineCallbacks
def place_call(caller, callee_uri):
    call = yield caller.call(callee_uri, from_user="alice")
    call.play(ToneSource(440.0))
    return call


@pytest_twisted.inlineCallbacks
def test_call_over_udp_with_media_and_dtmf():
    """A call between two servers over UDP: answered, echo audio comes back, DTMF arrives once per digit, both sides clean up."""
    callee = make_server(handler=EchoApp(), rtp=(30000, 30199))
    caller = make_server(rtp=(30200, 30399))
    try:
        uri = "sip:echo@127.0.0.1:%d" % callee.port()
        call = yield place_call(caller, uri)
        assert call.state == "answered"
        remote = list(callee.sessions.calls.values())[0]
        yield sleep(1.0)
        call.send_dtmf("159#")
        yield sleep(1.5)
        q = call.quality()
        assert q["codec"] == "PCMU"
        assert q["packets_sent"] > 60
        assert q["packets_received"] > 40        # our tone, echoed back
        assert remote.dtmf == "159#"
        call.hangup()
        reason = yield remote.ended
        assert reason == "remote hangup"
        assert remote.quality()["packets_received"] > 60
        yield sleep(0.2)
        assert caller.stats()["dialogs"] == 0 and callee.stats()["dialogs"] == 0
        assert caller.media.ports_in_use() == 0 and callee.media.ports_in_use() == 0
    finally:
        yield caller.stopService()
        yield callee.stopService()


@pytest_twisted.inlineCallbacks
def test_call_over_tcp():
    """The same call over TCP (transport=tcp): requests reuse the connection, the call completes."""
    callee = make_server(handler=EchoApp(), rtp=(30400, 30599))
    add_tcp(callee)
    caller = make_server(rtp=(30600, 30799))
    add_tcp(caller)
    try:
        uri = "sip:echo@127.0.0.1:%d;transport=tcp" % callee.port("TCP")
        call = yield place_call(caller, uri)
        assert call.state == "answered"
        assert call.invite.top_via.transport == "TCP"
        yield sleep(0.5)
        assert call.quality()["packets_received"] > 5
        call.hangup()
        remote = list(callee.sessions.calls.values())
        yield sleep(0.3)
        assert callee.sessions.calls == {}
        assert remote == [] or remote[0].state == "ended"
    finally:
        yield caller.stopService()
        yield callee.stopService()


@pytest_twisted.inlineCallbacks
def test_rejected_call_and_server_keeps_serving():
    """A rejected call fails with the SIP status; the next call still works."""

    class Busy:
        def incomingCall(self, call):
            call.reject(486)

    callee = make_server(handler=Busy(), rtp=(30800, 30899))
    caller = make_server(rtp=(30900, 30999))
    try:
        uri = "sip:busy@127.0.0.1:%d" % callee.port()
        with pytest.raises(CallFailed) as info:
            yield caller.call(uri)
        assert info.value.status == 486
        callee.handler = EchoApp()
        call = yield caller.call(uri)
        assert call.state == "answered"
        call.hangup()
        yield sleep(0.2)
        assert caller.media.ports_in_use() == 0
    finally:
        yield caller.stopService()
        yield callee.stopService()


def _has_ipv6():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


@pytest_twisted.inlineCallbacks
def test_ipv6_options_udp_and_tcp():
    """The server listens on ::1 (UDP and TCP, same port) and answers OPTIONS with 200 on both."""
    assert _has_ipv6(), "this test needs IPv6 on the loopback interface (::1)"
    server = make_server(host="::1", handler=EchoApp(), rtp=(31000, 31099))
    add_tcp(server, "::1")
    port = server.port()
    try:
        request = (
            "OPTIONS sip:svc@[::1]:%d SIP/2.0\r\n"
            "Via: SIP/2.0/%s [::1]:%d;branch=z9hG4bK-v6-%s;rport\r\n"
            "From: <sip:t@[::1]>;tag=1\r\nTo: <sip:svc@[::1]>\r\nCall-ID: v6-%s\r\n"
            "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        udp.bind(("::1", 0))
        udp.setblocking(False)
        udp.sendto((request % (port, "UDP", udp.getsockname()[1], "u", "u")).encode(), ("::1", port))
        data = None
        for _ in range(50):
            yield sleep(0.05)
            try:
                data = udp.recv(65535)
                break
            except BlockingIOError:
                pass
        udp.close()
        assert data is not None, "no answer over UDP/IPv6"
        resp = parse_message(data)
        assert resp.status == 200
        assert resp.top_via.params["received"] == "::1"

        tcp = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        tcp.setblocking(False)
        try:
            tcp.connect(("::1", port))
        except BlockingIOError:
            pass
        yield sleep(0.1)
        tcp.send((request % (port, "TCP", tcp.getsockname()[1], "t", "t")).encode())
        data = b""
        for _ in range(50):
            yield sleep(0.05)
            try:
                data += tcp.recv(65535)
            except BlockingIOError:
                pass
            if b"\r\n\r\n" in data:
                break
        tcp.close()
        assert data.startswith(b"SIP/2.0 200 "), data[:80]
    finally:
        yield server.stopService()


@pytest_twisted.inlineCallbacks
def test_ipv6_call_with_media():
    """A whole call over IPv6: SDP with IN IP6, RTP both ways on ::1."""
    assert _has_ipv6(), "this test needs IPv6 on the loopback interface (::1)"
    callee = make_server(host="::1", handler=EchoApp(), rtp=(31100, 31199))
    caller = make_server(host="::1", rtp=(31200, 31299))
    try:
        call = yield place_call(caller, "sip:echo@[::1]:%d" % callee.port())
        assert b"IN IP6 ::1" in call.invite.body
        yield sleep(0.6)
        assert call.quality()["packets_received"] > 5
        call.hangup()
        yield sleep(0.2)
        assert callee.sessions.calls == {}
    finally:
        yield caller.stopService()
        yield callee.stopService()
