"""
The transaction layer over real UDP sockets on 127.0.0.1: two
L{TransactionManager}s, a tiny datagram transport written here, and a
lossy wrapper that drops the first datagrams one side sends.  The
transactions must still complete through their retransmissions.
"""

import pytest_twisted
from twisted.internet import defer, protocol, reactor, task

from rvoip_twisted.service.transactions import TransactionManager
from rvoip_twisted.sip.address import Destination
from rvoip_twisted.sip.errors import SIPParseError
from rvoip_twisted.sip.message import Request
from rvoip_twisted.sip.parser import parse_message
from rvoip_twisted.sip.transaction import TimerConfig

#: a small T1 so that retransmissions take tens of milliseconds.
CONFIG = TimerConfig(t1=0.05, t2=0.4, t4=0.25, timer_d=0.25)
TIMEOUT = 10


class UDPTransport(protocol.DatagramProtocol):
    """The transport interface the manager expects, over one UDP socket."""

    def __init__(self):
        self.manager = None
        self.received = []

    def datagramReceived(self, data, addr):
        try:
            msg = parse_message(data)
        except SIPParseError:
            return
        source = Destination("UDP", addr[0], addr[1])
        msg.source = source
        self.received.append(msg)
        self.manager.message_received(msg, source)

    def send(self, data, dest):
        self.transport.write(data, (dest.host, dest.port))

    def response_destination(self, request):
        # RFC 3581 style: back where the request came from.
        return request.source

    def request_destination(self, request):
        host, port = request.uri.hostport(5060)
        return Destination("UDP", host, port)


class Lossy:
    """Wraps a transport and drops the first C{drop} datagrams it is asked to send."""

    def __init__(self, inner, drop=0):
        self.inner = inner
        self.drop = drop
        self.dropped = 0
        self.sent = 0

    def send(self, data, dest):
        if self.dropped < self.drop:
            self.dropped += 1
            return
        self.sent += 1
        self.inner.send(data, dest)

    def response_destination(self, request):
        return self.inner.response_destination(request)

    def request_destination(self, request):
        return self.inner.request_destination(request)


class ServerTU:
    """Answers INVITE with 180 at once and 200 after 100 ms; anything else with 200."""

    def __init__(self):
        self.requests = []
        self.acked = defer.Deferred()

    def request_received(self, request, txn):
        self.requests.append(request.method)
        if request.method == "INVITE":
            txn.respond(request.response(180, to_tag="uas"))
            reactor.callLater(0.1, txn.respond, request.response(200, to_tag="uas"))
        else:
            txn.respond(request.response(200, to_tag="uas"))

    def ack_received(self, ack):
        if not self.acked.called:
            self.acked.callback(ack)

    def stray_response(self, response):
        pass


class ClientTU:
    def request_received(self, request, txn):
        txn.respond(request.response(501))

    def ack_received(self, ack):
        pass

    def stray_response(self, response):
        pass


class Owner:
    """Collects responses; C{final} fires with the first final response."""

    def __init__(self):
        self.statuses = []
        self.final = defer.Deferred()

    def response_received(self, response, txn):
        self.statuses.append(response.status)
        if response.status >= 200 and not self.final.called:
            self.final.callback(response)

    def transaction_timeout(self, txn):
        if not self.final.called:
            self.final.errback(AssertionError("transaction timed out"))

    def transport_error(self, txn, reason):
        if not self.final.called:
            self.final.errback(AssertionError("transport error: %s" % (reason,)))


class Pair:
    """Two managers on two UDP ports of 127.0.0.1."""

    def __init__(self, client_drop=0, server_drop=0):
        self.server_proto = UDPTransport()
        self.client_proto = UDPTransport()
        self.server_port = reactor.listenUDP(0, self.server_proto, interface="127.0.0.1")
        self.client_port = reactor.listenUDP(0, self.client_proto, interface="127.0.0.1")
        self.client_transport = Lossy(self.client_proto, client_drop)
        self.server_transport = Lossy(self.server_proto, server_drop)
        self.server_tu = ServerTU()
        self.server = TransactionManager(reactor, self.server_transport, self.server_tu,
                                         CONFIG, drain_timeout=0.2)
        self.client = TransactionManager(reactor, self.client_transport, ClientTU(),
                                         CONFIG, drain_timeout=0.2)
        self.server_proto.manager = self.server
        self.client_proto.manager = self.client
        self.server.startService()
        self.client.startService()

    def request(self, method, cseq=1, to_tag=None):
        cport = self.client_port.getHost().port
        sport = self.server_port.getHost().port
        to = "<sip:bob@127.0.0.1>" + (";tag=" + to_tag if to_tag else "")
        return Request(method, "sip:bob@127.0.0.1:%d" % (sport,), [
            ("Via", "SIP/2.0/UDP 127.0.0.1:%d" % (cport,)),
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@127.0.0.1>;tag=uac"),
            ("To", to),
            ("Call-ID", "loopback-%s-%d@127.0.0.1" % (method, cseq)),
            ("CSeq", "%d %s" % (cseq, method)),
        ])

    @defer.inlineCallbacks
    def close(self):
        yield self.client.stopService()
        yield self.server.stopService()
        yield self.client_port.stopListening()
        yield self.server_port.stopListening()


@pytest_twisted.inlineCallbacks
def test_invite_through_loss():
    """
    The client's first two INVITE datagrams are lost: Timer A's third copy
    gets through, the server answers 180 then 200 once (its TU sees one
    INVITE), and the ACK for the 2xx, sent by the client's TU outside the
    transaction, reaches the server's TU.
    """
    pair = Pair(client_drop=2)
    try:
        owner = Owner()
        invite = pair.request("INVITE")
        txn = pair.client.send_request(invite, owner)
        final = yield owner.final.addTimeout(TIMEOUT, reactor)
        assert final.status == 200
        assert owner.statuses == [180, 200]
        assert txn.state == "Accepted"
        assert pair.client_transport.dropped == 2
        assert pair.server_tu.requests == ["INVITE"]

        ack = Request("ACK", invite.uri, [
            ("Via", "SIP/2.0/UDP 127.0.0.1:%d" % (pair.client_port.getHost().port,)),
            ("Max-Forwards", "70"),
            ("From", invite.get("From")),
            ("To", final.get("To")),
            ("Call-ID", invite.call_id),
            ("CSeq", "1 ACK"),
        ])
        pair.client.send_stateless(ack)
        got = yield pair.server_tu.acked.addTimeout(TIMEOUT, reactor)
        assert got.to_tag == "uas"
    finally:
        yield pair.close()


@pytest_twisted.inlineCallbacks
def test_invite_lost_provisional():
    """
    The server's first datagram (the 180) is lost: the INVITE retransmission
    is absorbed by the server transaction, which resends the 180; the 200
    follows.
    """
    pair = Pair(server_drop=1)
    try:
        owner = Owner()
        pair.client.send_request(pair.request("INVITE"), owner)
        final = yield owner.final.addTimeout(TIMEOUT, reactor)
        assert final.status == 200
        assert owner.statuses == [180, 200]
        assert pair.server_tu.requests == ["INVITE"]
        invites = [m for m in pair.server_proto.received if m.method == "INVITE"]
        assert len(invites) >= 2
    finally:
        yield pair.close()


@pytest_twisted.inlineCallbacks
def test_non_invite_through_loss():
    """
    The client's first three OPTIONS datagrams are lost: Timer E's
    retransmissions get one through and the 200 completes the transaction;
    the server transaction answers later copies from its Completed state.
    """
    pair = Pair(client_drop=3)
    try:
        owner = Owner()
        txn = pair.client.send_request(pair.request("OPTIONS"), owner)
        final = yield owner.final.addTimeout(TIMEOUT, reactor)
        assert final.status == 200
        assert owner.statuses == [200]
        assert txn.state == "Completed"
        assert pair.client_transport.dropped == 3
        assert pair.server_tu.requests == ["OPTIONS"]
        # Timer K (T4 = 0.25 s) then empties the client's table.
        yield task.deferLater(reactor, 0.5, lambda: None)
        assert pair.client.stats() == {"server": 0, "client": 0}
    finally:
        yield pair.close()
