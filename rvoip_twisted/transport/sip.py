"""
SIP over UDP and TCP (RFC 3261 section 18, RFC 3581): the only module that
moves SIP bytes through sockets.

L{SIPTransport} is the layer object the transaction layer talks to: it owns
the UDP protocols and the TCP connections, parses what arrives, stamps the
top Via with C{received}/C{rport}, answers what cannot be parsed (400, 413,
505) when it can, and routes what is sent: responses by their Via (section
18.2.2), requests to a L{Destination}.
"""

import errno
import re
import socket
import struct
import sys
import time

from twisted.internet import main, protocol, tcp, udp
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IReactorFDSet
from twisted.python import log as _legacy_log

from ..logs import LEVEL, Logger
from ..sip.address import destination, udp_destination
from ..sip.errors import SIPParseError
from ..sip.headers import Via, split_list
from ..sip.message import ENCODING, ERRORS, Request
from ..sip.parser import MAX_MESSAGE_SIZE, StreamParser, parse_message

#: RFC 3261 18.1.1: a request larger than this goes over TCP.
UDP_MTU_LIMIT = 1300
RCVBUF = 4 * 1024 * 1024


_ip_literals = {}


def is_ip(host):
    """Whether C{host} is an IPv4 or IPv6 literal (answers kept: asked per send)."""
    known = _ip_literals.get(host)
    if known is not None:
        return known
    answer = False
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            answer = True
            break
        except (OSError, ValueError):
            pass
    if len(_ip_literals) < 4096:
        _ip_literals[host] = answer
    return answer


def _family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


# Python's socket module does not name SO_TIMESTAMPNS; 35 is its Linux
# value on the common architectures (asm-generic), and its control message
# carries a struct timespec (two longs).  A control message of another
# size is ignored.
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS",
                          35 if sys.platform.startswith("linux") else None)
_TIMESPEC = struct.Struct("@ll")
_TIMESPEC_SIZE = _TIMESPEC.size
_unpack_timespec = _TIMESPEC.unpack_from
_ANCILLARY = 64


def _waited(ancillary, now):
    """
    Seconds since the kernel stamped what was just read (the
    C{SCM_TIMESTAMPNS} control message of C{recvmsg}), 0 when there is no
    stamp.
    """
    if ancillary and len(ancillary[0][2]) == _TIMESPEC_SIZE:
        sec, nsec = _unpack_timespec(ancillary[0][2])
        return now - sec - nsec * 1e-9
    return 0.0


def _stamp(sock):
    """Ask the kernel to stamp what C{sock} receives; whether it agreed."""
    if _SO_TIMESTAMPNS is None:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


class SIPUDPPort(udp.Port):
    """
    Twisted's UDP port, reading each datagram with its kernel arrival time
    (C{SO_TIMESTAMPNS}, Linux): the protocol learns how long the datagram
    waited in the socket's receive buffer before we read it.  That wait
    is the measure of overload (see L{SIPTransport.queue_delay}); the
    reactor's own lag is not, since it reads a burst of datagrams per
    turn however long they have waited.

    Where the option is missing it reads as Twisted's port does, and the
    wait is reported as 0.  (Linux switches its receive timestamps on a
    moment after the first socket asks: until then a datagram is stamped
    when it is read, and its wait also reads as about 0.)
    """

    stamped = False

    def startListening(self):
        udp.Port.startListening(self)
        self.stamped = _stamp(self.socket)

    def doRead(self):
        if not self.stamped:
            return udp.Port.doRead(self)
        # Twisted's loop (udp.Port.doRead), with recvmsg for recvfrom.
        read = 0
        recvmsg = self.socket.recvmsg
        proto = self.protocol
        received = proto.datagramReceivedAfter
        now = time.time
        ipv6 = self.addressFamily == socket.AF_INET6
        # What the datagrams of this read cause us to send goes out together
        # at its end (see SIPDatagramProtocol.held).
        proto.held = []
        try:
            while read < self.maxThroughput:
                try:
                    data, ancillary, _, addr = recvmsg(self.maxPacketSize, _ANCILLARY)
                except OSError as se:
                    no = se.args[0]
                    if no in udp._sockErrReadIgnore or no in udp._sockErrReadRefuse:
                        return      # (connectionRefused: SIP's sockets are unconnected)
                    raise
                read += len(data)
                if ipv6:
                    addr = addr[:2]
                try:
                    received(data, addr, _waited(ancillary, now()))
                except BaseException:
                    _legacy_log.err()
        finally:
            proto.release()


def listen_sip_udp(reactor, port, protocol, interface="", maxPacketSize=65535):
    """
    Listen on UDP with L{SIPUDPPort} where the reactor is a file-descriptor
    reactor (every POSIX one), else with C{reactor.listenUDP}.
    """
    if not IReactorFDSet.providedBy(reactor):
        return reactor.listenUDP(port, protocol, interface=interface,
                                 maxPacketSize=maxPacketSize)
    p = SIPUDPPort(port, protocol, interface, maxPacketSize, reactor)
    p.startListening()
    return p


class SIPTCPServer(tcp.Server):
    """
    An accepted SIP TCP connection that reads with the kernel's arrival
    time (C{SO_TIMESTAMPNS}, Linux) and hands it to the protocol's
    C{dataReceivedAfter(data, waited)}.  On TCP the stamp is that of the
    newest segment in the read, so C{waited} is how long the newest bytes
    read had waited: the least any message in them waited.  Under
    overload the receive buffer holds seconds of requests and even the
    newest bytes of a read are old, so it measures the backlog as the
    datagram's wait does on UDP (L{SIPTransport.queue_delay}).  Without the
    option it reads as Twisted's connection does, and the wait is 0.
    """

    def __init__(self, *args, **kwargs):
        tcp.Server.__init__(self, *args, **kwargs)
        self.stamped = (_stamp(self.socket)
                        and hasattr(self.protocol, "dataReceivedAfter"))

    def doRead(self):
        if not self.stamped:
            return tcp.Server.doRead(self)
        # Twisted's read (tcp.Connection.doRead), with recvmsg for recv.
        try:
            data, ancillary, _, _ = self.socket.recvmsg(self.bufferSize, _ANCILLARY)
        except OSError as se:
            if se.args[0] == errno.EWOULDBLOCK:
                return None
            return main.CONNECTION_LOST
        if not data:
            return main.CONNECTION_DONE
        self.protocol.dataReceivedAfter(data, _waited(ancillary, time.time()))
        return None


class SIPTCPPort(tcp.Port):
    """Twisted's TCP port, its connections L{SIPTCPServer}s."""

    transport = SIPTCPServer


def listen_sip_tcp(reactor, port, factory, interface=""):
    """
    Listen on TCP with L{SIPTCPPort} where the reactor is a file-descriptor
    reactor (every POSIX one), else with C{reactor.listenTCP}.
    """
    if not IReactorFDSet.providedBy(reactor):
        return reactor.listenTCP(port, factory, interface=interface)
    p = SIPTCPPort(port, factory, interface=interface, reactor=reactor)
    p.startListening()
    return p


class SIPDatagramProtocol(protocol.DatagramProtocol):
    """SIP over one UDP socket."""

    _log = Logger()

    def __init__(self, layer):
        self.layer = layer

    socket = None
    #: While the port reads a burst of datagrams, the datagrams to send
    #: (C{(data, address, destination)}), else C{None}: they go out
    #: together at the end of the burst (L{release}), or every HELD_MAX.
    #: A burst of sends in a row is cheaper than sends between reads: on
    #: loopback especially, a peer woken by the first datagram is still
    #: awake for the next, where each lone datagram has to wake it again.
    held = None
    HELD_MAX = 32

    def release(self):
        """Send what was held, and stop holding."""
        held, self.held = self.held, None
        if held:
            self.layer._send_held(self, held)

    def flush(self):
        """Send what is held so far, and go on holding."""
        held, self.held = self.held, []
        if held:
            self.layer._send_held(self, held)

    def startProtocol(self):
        self.socket = self.transport.getHandle()
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                self.socket.setsockopt(socket.SOL_SOCKET, option, RCVBUF)
            except (OSError, AttributeError):
                self._log.warn("could not enlarge the SIP UDP socket buffers")
        self.layer._udp_started(self)

    def stopProtocol(self):
        self.socket = None
        self.layer._udp_stopped(self)

    def datagramReceived(self, data, addr):
        layer = self.layer
        layer.queue_delay = 0.0
        layer.datagram_received(data, addr, self)

    def datagramReceivedAfter(self, data, addr, waited):
        """A datagram that waited C{waited} seconds in the receive buffer."""
        layer = self.layer
        layer.queue_delay = waited
        layer.datagram_received(data, addr, self)

    def connectionRefused(self):
        # Only reported for connected UDP sockets, which SIP does not use.
        pass


class SIPStreamProtocol(protocol.Protocol):
    """SIP over one TCP connection, accepted or opened."""

    _log = Logger()

    def __init__(self, layer, outgoing_key=None):
        self.layer = layer
        self.parser = StreamParser()
        self.key = outgoing_key
        self.queue = []

    def connectionMade(self):
        peer = self.transport.getPeer()
        if self.key is None:
            self.key = (peer.host, peer.port)
        self.layer._tcp_connected(self)
        queue, self.queue = self.queue, None
        for data in queue:
            self.transport.write(data)

    def dataReceived(self, data):
        self.dataReceivedAfter(data, 0.0)

    def dataReceivedAfter(self, data, waited):
        """Bytes whose newest part waited C{waited} seconds in the receive
        buffer (see L{SIPTCPServer})."""
        try:
            items = self.parser.feed(data)
        except SIPParseError as e:
            self.layer._answer_error(e, self._source(), self)
            self._log.warn("closing SIP TCP connection from {peer}: {error}",
                           peer=self.key, error=e.reason)
            self.transport.loseConnection()
            return
        source = self._source()
        self.layer.queue_delay = waited
        for item in items:
            if isinstance(item, SIPParseError):
                self.layer._answer_error(item, source, self)
            else:
                self.layer.message_received(item, source)

    def _source(self):
        return destination("TCP", self.key[0], self.key[1])

    def write(self, data):
        if self.queue is not None:
            self.queue.append(data)
        else:
            self.transport.write(data)

    def connectionLost(self, reason=ConnectionDone):
        self.layer._tcp_lost(self, reason)


class _OutgoingFactory(protocol.ClientFactory):
    """Builds the one protocol of an outgoing connection up front, so
    messages sent before the connection is made are queued in it."""

    def __init__(self, layer, key):
        self.layer = layer
        self.key = key
        self.proto = SIPStreamProtocol(layer, key)

    def buildProtocol(self, addr):
        return self.proto

    def clientConnectionFailed(self, connector, reason):
        self.layer._tcp_failed(self.key, reason)


class _IncomingFactory(protocol.Factory):
    def __init__(self, layer):
        self.layer = layer

    def buildProtocol(self, addr):
        return SIPStreamProtocol(self.layer)


#: the lines a stateless 503 copies (any case, compact forms): name, value
#: (its trailing blanks still on).  Possessive quantifiers: no backtracking,
#: linear in the datagram whatever its blanks.
_SHED_LINE_RE = re.compile(
    rb"^(via|v|from|f|to|t|call-id|i|cseq|authorization|proxy-authorization)"
    rb"[ \t]*+:[ \t]*+([^\r\n]*+)", re.I | re.M)
_SHED_NAMES = {b"via": b"Via", b"v": b"Via", b"from": b"From", b"f": b"From", b"to": b"To",
               b"t": b"To", b"call-id": b"Call-ID", b"i": b"Call-ID", b"cseq": b"CSeq",
               b"authorization": b"Auth", b"proxy-authorization": b"Auth"}


class SIPTransport:
    """
    The SIP transport layer.

    @ivar receiver: gets C{message_received(msg, source)} for every parsed
        message and C{transport_error(dest, reason)} when sending failed;
        normally the L{TransactionManager}.
    """

    _log = Logger()
    #: overload protection: while a request waited longer than this many
    #: seconds in its socket's receive buffer (C{queue_delay}), new
    #: INVITEs are answered 503 with C{Retry-After}: statelessly here,
    #: before parsing, when their lines allow, else by the session layer
    #: (L{overloaded}); requests in dialogs (ACK, BYE, re-INVITE) are served
    #: as always.  Below T1, so that the calls let in are answered before
    #: their INVITE is retransmitted.  0 turns it off.
    overload_delay = 0.25
    #: the Retry-After of those 503s, in seconds.
    overload_retry_after = 5
    #: whether we challenge new INVITEs (the registrar's users table): an
    #: INVITE carrying credentials then answers our 407, a call in progress,
    #: and is not refused.  Otherwise credentials mean nothing here and
    #: would only be a way round the refusal.
    challenges_invites = False
    #: the shortest time between two overload warnings, in seconds.
    OVERLOAD_LOG_INTERVAL = 10.0

    def __init__(self, reactor, public_host=None, receiver=None):
        self.reactor = reactor
        self.public_host = public_host
        self.receiver = receiver    # (a property: see below)
        self._udp = {}          # family -> SIPDatagramProtocol
        self._udp_ports = {}    # family -> port number
        self._tcp_ports = {}    # family -> port number
        self._tcp_listening = False
        self._connections = {}  # (host, port) -> SIPStreamProtocol (open or pending)
        self._resolved = {}
        self._bound_host = None     # the advertised host when no public_host
        self.received_count = 0
        self.bad_count = 0
        self.dropped_count = 0
        #: how long the message being handled waited in its socket's
        #: receive buffer before it was read, in seconds (0 when unknown;
        #: over TCP the wait of the newest bytes of its read, see
        #: L{SIPTCPServer}).
        self.queue_delay = 0.0
        #: new calls refused with 503 because the server was overloaded.
        self.shed_calls = 0
        self._shed_unlogged = 0
        self._shed_log_at = None

    @property
    def receiver(self):
        return self._receiver

    @receiver.setter
    def receiver(self, receiver):
        self._receiver = receiver
        # its fast path for byte-identical retransmissions, and its check
        # before an INVITE is refused unparsed, looked up once here rather
        # than per datagram
        self._absorb = getattr(receiver, "retransmission_received", None)
        self._may_match_invite = getattr(receiver, "may_match_invite", None)

    # -- factories for the listening services

    def datagram_protocol(self):
        return SIPDatagramProtocol(self)

    def stream_factory(self):
        self._tcp_listening = True
        return _IncomingFactory(self)

    def listening(self, kind, port):
        """Record the port a listener got (the services call this)."""
        family = _family(getattr(port, "host", "0.0.0.0") or "0.0.0.0")
        number = port.getHost().port
        if kind == "UDP":
            self._udp_ports.setdefault(family, number)
        else:
            self._tcp_ports.setdefault(family, number)
            self._tcp_listening = True

    def _udp_started(self, proto):
        host = proto.transport.getHost()
        family = socket.AF_INET6 if ":" in host.host else socket.AF_INET
        self._udp.setdefault(family, proto)
        self._udp_ports.setdefault(family, host.port)
        self._bound_host = None

    def _udp_stopped(self, proto):
        for family, p in list(self._udp.items()):
            if p is proto:
                del self._udp[family]
        self._bound_host = None

    # -- local addresses

    @property
    def host(self):
        """The address advertised in Via and Contact."""
        if self.public_host:
            return self.public_host
        host = self._bound_host        # asked for every Contact: kept
        if host is None:
            host = "127.0.0.1"
            for proto in self._udp.values():
                h = proto.transport.getHost().host
                if h not in ("0.0.0.0", "::"):
                    host = h
                    break
            self._bound_host = host
        return host

    @property
    def uri_host(self):
        """L{host} as it stands in a URI or Via (IPv6 in brackets)."""
        host = self.host
        if ":" in host and not host.startswith("["):
            host = "[" + host + "]"
        return host

    def port(self, transport="UDP"):
        ports = self._udp_ports if transport == "UDP" else self._tcp_ports
        for family in (socket.AF_INET, socket.AF_INET6):
            if family in ports:
                return ports[family]
        other = self._tcp_ports if transport == "UDP" else self._udp_ports
        for value in other.values():
            return value
        return 5060

    def via(self, transport, branch):
        """A Via value for a request we send over C{transport}."""
        return "SIP/2.0/%s %s:%d;branch=%s;rport" % (
            transport, self.uri_host, self.port(transport), branch)

    def contact_uri(self, user=None, transport="UDP"):
        text = "sip:%s%s:%d" % (user + "@" if user else "", self.uri_host, self.port(transport))
        if transport == "TCP":
            text += ";transport=tcp"
        return text

    # -- receiving

    def datagram_received(self, data, addr, proto):
        if len(data) <= 4 and not data.strip(b"\r\n"):
            return  # keep-alive (RFC 5626 "double CRLF" ping)
        raw_key = hash(data)
        absorb = self._absorb
        if absorb is not None:
            try:
                if absorb(raw_key):
                    self.received_count += 1
                    return      # a byte-identical retransmission, handled unparsed
            except Exception:
                self._log.failure("receiver failed on a retransmission from {addr}", addr=addr)
                return
        if self.overloaded and data[:7] == b"INVITE " and self._shed_invite(data, addr):
            return      # overloaded: a new call refused before any parsing
        source = udp_destination(addr)
        try:
            msg = parse_message(data, MAX_MESSAGE_SIZE)
        except SIPParseError as e:
            self._answer_error(e, source, None)
            return
        if isinstance(msg, Request):
            msg.raw_key = raw_key
        self.message_received(msg, source)

    # -- overload

    @property
    def overloaded(self):
        """Whether the message being handled waited longer than C{overload_delay}."""
        return self.queue_delay > self.overload_delay > 0

    def _shed_invite(self, data, addr):
        """
        Answer a new INVITE 503 statelessly (RFC 3261 8.2.7: no transaction,
        no retransmission, its ACK ignored) from its Via, From, To, Call-ID
        and CSeq lines alone, copied as they are: the server is overloaded
        and this costs a small part of what parsing it would.  C{False}
        when the INVITE cannot be read that way (folded lines, a header
        missing or repeated, a To tag: a re-INVITE within a dialog),
        carries credentials while we challenge INVITEs (it answers our 407:
        refusing it would waste the round already spent on the call,
        L{challenges_invites}) or may be a
        retransmission (its top Via's branch has a live transaction, or is
        not an RFC 3261 one): it is parsed as usual, matched, and the
        session layer refuses it if it is a new call (L{count_shed}).
        """
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = data[:end]
        if (b"\n " in head or b"\n\t" in head
                or head.count(b"\r") != head.count(b"\r\n")):
            return False        # folded lines, a bare CR: the parser decides
        vias = []
        found = {}
        for name, value in _SHED_LINE_RE.findall(head, data.find(b"\n") + 1):
            key = _SHED_NAMES[name.lower()]
            if key == b"Auth":
                if self.challenges_invites:
                    return False    # the answer to our 407: a call in progress
                continue
            value = value.rstrip(b" \t")
            if key == b"Via":
                vias.append(value)
            elif key in found:
                return False
            else:
                found[key] = value
        if not vias or len(found) != 4:
            return False
        to = found[b"To"]
        cseq = found[b"CSeq"].split()
        if b"tag=" in to.lower() or len(cseq) != 2 or cseq[1] != b"INVITE":
            return False
        may_match = self._may_match_invite
        if may_match is not None:
            try:
                top = Via.parse(split_list(vias[0].decode(ENCODING, ERRORS))[0])
            except SIPParseError:
                return False
            if may_match(top):
                return False
        lines = [b"SIP/2.0 503 Service Unavailable"]
        lines.extend([b"Via: " + via for via in vias])
        lines.append(b"From: " + found[b"From"])
        # 8.2.7: the same tag for a retransmission of the same request
        tag = b"ovl%012x" % (hash((found[b"Call-ID"], found[b"From"], vias[0]))
                             & 0xFFFFFFFFFFFF,)
        lines.append(b"To: " + to + b";tag=" + tag)
        lines.append(b"Call-ID: " + found[b"Call-ID"])
        lines.append(b"CSeq: " + found[b"CSeq"])
        lines.append(b"Retry-After: %d" % (self.overload_retry_after,))
        lines.append(b"Content-Length: 0\r\n\r\n")
        self.send(b"\r\n".join(lines), udp_destination(addr))
        self.count_shed()
        return True

    def count_shed(self):
        """A new call refused with 503 while overloaded: counted, and a warning at most
        every C{OVERLOAD_LOG_INTERVAL} seconds."""
        self.shed_calls += 1
        self._shed_unlogged += 1
        now = self.reactor.seconds()
        if self._shed_log_at is None or now >= self._shed_log_at:
            self._shed_log_at = now + self.OVERLOAD_LOG_INTERVAL
            count, self._shed_unlogged = self._shed_unlogged, 0
            self._log.warn(
                "overloaded: {count} new call(s) answered 503 (a request waited "
                "{waited:.3f} s to be read, over {limit} s); {total} so far",
                count=count, waited=self.queue_delay, limit=self.overload_delay,
                total=self.shed_calls)

    def message_received(self, msg, source):
        self.received_count += 1
        msg.source = source
        if LEVEL.debug:
            self._log.debug("recv {what} {call_id} from {source}", what=msg,
                            call_id=msg.get("Call-ID"), source=source)
        if isinstance(msg, Request):
            try:
                self._stamp_via(msg, source)
            except SIPParseError as e:
                self._answer_error(e, source, None)
                return
        receiver = self.receiver
        if receiver is None:
            return
        try:
            receiver.message_received(msg, source)
        except Exception:
            self._log.failure("receiver failed on a message from {source}",
                              source=source)

    def _stamp_via(self, msg, source):
        """RFC 3261 18.2.1 and RFC 3581: received and rport on the top Via."""
        via = msg.top_via
        params = via.params
        if "rport" in params and params["rport"] is None:
            msg.replace_top_via(via.with_received(source.host, str(source.port)))
        elif via.host != source.host and params.get("received") != source.host:
            msg.replace_top_via(via.with_received(source.host))

    def _answer_error(self, error, source, conn):
        """Answer a message we could not parse, if it was a request we can answer."""
        self.bad_count += 1
        partial = error.partial
        self._log.info("bad SIP message from {source}: {status} {reason}",
                       source=source, status=error.status, reason=error.reason)
        if partial is None or not isinstance(partial, Request):
            return
        if partial.method == "ACK":
            return
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            if not partial.has(name):
                return  # not enough of a request to answer
        try:
            self._stamp_via(partial, source)
            response = partial.response(error.status, error.reason)
            dest = self._response_destination(partial, source)
            self.send(response.to_bytes(), dest)
        except SIPParseError:
            # Via itself unusable: answer to where it came from.
            try:
                response = partial.response(error.status, error.reason)
                self.send(response.to_bytes(), source)
            except Exception:
                self._log.failure("cannot answer a bad message from {source}", source=source)

    # -- routing

    def response_destination(self, request):
        """Where responses to C{request} go (RFC 3261 18.2.2, RFC 3581)."""
        return self._response_destination(request, request.source)

    def _response_destination(self, request, source):
        via = request.top_via
        params = via.params
        if via.transport != "UDP" and source is not None and source.transport == "TCP":
            return source
        if "maddr" in params:
            return destination("UDP", params["maddr"], via.port or 5060)
        host = params.get("received") or via.host
        if host.startswith("["):
            host = host[1:-1]
        rport = params.get("rport")
        if rport:
            return destination(via.transport if via.transport == "TCP" else "UDP",
                               host, int(rport))
        if source is not None and source.transport == "UDP" and "received" in params:
            return destination("UDP", host, via.port or 5060)
        return destination("TCP" if via.transport == "TCP" else "UDP",
                           host, via.port or 5060)

    def request_destination(self, request):
        """
        Where a request goes: the first Route if it is a loose router,
        else the Request-URI (RFC 3261 8.1.2, RFC 3263 without DNS SRV).
        """
        routes = request.routes
        uri = routes[0].uri if routes and "lr" in routes[0].uri.params else request.uri
        return self.uri_destination(uri)

    def next_hop(self, route_set, target):
        """
        The destination of an in-dialog request to C{target} (the remote
        target, a URI) through C{route_set} (a dialog's NameAddrs): the
        first route, loose or strict (a strict router is the Request-URI,
        RFC 3261 12.2.1.1), else the target itself.
        """
        if route_set:
            return self.uri_destination(route_set[0].uri)
        return self.uri_destination(target)

    def uri_destination(self, uri):
        if uri is None or not uri.is_sip:
            raise SIPParseError("Cannot route to a non-SIP URI", status=416)
        maddr = uri.params.get("maddr")
        host, port = uri.hostport(None)
        if maddr:
            host = maddr
        transport = uri.transport
        if uri.scheme == "sips":
            transport = "tcp"
        transport = "TCP" if transport == "tcp" else "UDP"
        if port is None:
            port = 5061 if uri.scheme == "sips" else 5060
        return destination(transport, host, port)

    def choose_transport(self, request, dest):
        """
        RFC 3261 18.1.1: a UDP request larger than 1300 bytes goes over TCP
        when we listen on TCP, with its top Via changed to say so.  Returns
        the destination to use.  The size is estimated from the headers
        without serialising the request.
        """
        if dest.transport != "UDP" or not self._tcp_listening:
            return dest
        size = len(request.body) + 64
        for name, value in request.headers:
            size += len(name) + len(value) + 4
        if size <= UDP_MTU_LIMIT or len(request.to_bytes()) <= UDP_MTU_LIMIT:
            return dest
        via = request.top_via
        if via.transport == "UDP":
            request.replace_top_via(via.replace(transport="TCP", port=self.port("TCP")))
        return destination("TCP", dest.host, dest.port)

    # -- sending

    def send(self, data, dest):
        """Send bytes to a L{Destination}; failures reach C{receiver.transport_error}."""
        if LEVEL.debug:
            self._log.debug("send {line} to {dest}", line=data[:data.find(b"\r\n")], dest=dest)
        host = dest.host
        if not is_ip(host):
            self._resolve_and_send(data, dest)
            return
        if dest.transport == "UDP":
            proto = self._udp.get(_family(host))
            if proto is None or proto.socket is None:
                self._error(dest, "no UDP socket for this address family")
                return
            held = proto.held
            if held is None:
                self._send_held(proto, ((data, (host, dest.port), dest),))
                return
            held.append((data, (host, dest.port), dest))
            if len(held) >= proto.HELD_MAX:
                proto.flush()
        else:
            self._send_tcp(data, dest)

    def _send_held(self, proto, held):
        """
        Send C{(data, address, destination)} datagrams on a UDP port: those
        a read burst held (L{SIPDatagramProtocol.held}), or one sent at once.
        """
        sock = proto.socket
        if sock is None:
            for _, _, dest in held:
                self._error(dest, "no UDP socket for this address family")
            return
        # The socket directly: Twisted's Port.write re-validates the
        # address on every datagram, a cost on the per-message path.
        sendto = sock.sendto
        for data, addr, dest in held:
            try:
                sendto(data, addr)
            except BlockingIOError:
                self.dropped_count += 1      # a full buffer: retransmission covers it
            except OSError as e:
                self._error(dest, str(e))

    def _resolve_and_send(self, data, dest):
        cached = self._resolved.get(dest.host)
        if cached is not None:
            self.send(data, dest._replace(host=cached))
            return

        def resolved(address):
            self._resolved[dest.host] = address
            self.send(data, dest._replace(host=address))

        def failed(reason):
            self._error(dest, "cannot resolve %s" % (dest.host,))

        self.reactor.resolve(dest.host).addCallbacks(resolved, failed)

    def _send_tcp(self, data, dest):
        key = (dest.host, dest.port)
        conn = self._connections.get(key)
        if conn is None:
            factory = _OutgoingFactory(self, key)
            conn = self._connections[key] = factory.proto
            self.reactor.connectTCP(dest.host, dest.port, factory, timeout=10)
        conn.write(data)

    def _tcp_connected(self, conn):
        self._connections[conn.key] = conn

    def _tcp_lost(self, conn, reason):
        if self._connections.get(conn.key) is conn:
            del self._connections[conn.key]

    def _tcp_failed(self, key, reason):
        self._connections.pop(key, None)
        self._error(destination("TCP", key[0], key[1]), reason.getErrorMessage())

    def _error(self, dest, reason):
        self._log.info("cannot send to {dest}: {reason}", dest=dest, reason=reason)
        receiver = self.receiver
        if receiver is not None:
            try:
                receiver.transport_error(dest, reason)
            except Exception:
                self._log.failure("receiver failed on a transport error")

    def close_connections(self):
        for conn in list(self._connections.values()):
            if conn.transport is not None:
                conn.transport.loseConnection()
        self._connections.clear()
