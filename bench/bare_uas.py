"""The bare-bones Twisted UAS the issue names as the CPython ceiling, measured in the
same run as the server: ``python -m bench.bare_uas --port PORT``.

One ``DatagramProtocol`` on ``reactor.listenUDP`` with 4 MiB socket buffers: it splits
a request's head into lines, reads Via, From, To, Call-ID and CSeq, keeps a dict of
dialogs by Call-ID and answers: INVITE -> 200 with a fixed SDP answer (a retransmitted
INVITE gets the same 200 again), ACK -> the dialog confirmed, BYE -> 200 and the
dialog forgotten, anything else -> 200.  No transaction layer, no timers, no
retransmission of its own, no validation beyond what answering needs, no media, no
logging: what a full stack adds on top of this is what the ratio measures.

With ``--echo`` it is also the bare-bones echo the media benchmark compares the echo
app with (the CPython floor of carrying RTP): each new INVITE gets an RTP port of its
own (``reactor.listenUDP`` on an ephemeral port, the receive buffer the server's RTP
sockets have) offered in the SDP answer, every datagram that port receives is written
straight back to its sender, and the BYE closes the port.  No jitter buffer, no media
clock, no codec, no RTCP of its own: the echo leaves when the packet came, so its send
intervals are the sender's.

A reference for the benchmark only; nothing in ``rvoip_twisted`` uses it (its "parser"
is deliberately not one: it would answer garbage with garbage).
"""

from __future__ import annotations

import argparse
import os
import socket

from twisted.internet import reactor
from twisted.internet.protocol import DatagramProtocol

SDP = (
    b"v=0\r\n"
    b"o=bare 1 1 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio %d RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)
#: the receive buffer of an echo port: what the server gives its RTP sockets
ECHO_RECEIVE_BUFFER = 128 * 1024


class Reflector(DatagramProtocol):
    """An echo port: every datagram goes straight back to where it came from."""

    def startProtocol(self):
        self.transport.getHandle().setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, ECHO_RECEIVE_BUFFER)

    def datagramReceived(self, data, addr):
        self.transport.write(data, addr)

# full and compact names of the headers a response copies
_NAMES = {
    b"via": b"Via", b"v": b"Via", b"from": b"From", b"f": b"From",
    b"to": b"To", b"t": b"To", b"call-id": b"Call-ID", b"i": b"Call-ID",
    b"cseq": b"CSeq",
}


class BareUAS(DatagramProtocol):
    def __init__(self, echo=False, interface="127.0.0.1"):
        self.dialogs = {}   # Call-ID -> [to_tag, confirmed, SDP answer, echo port or None]
        self.next_tag = 0
        self.echo = echo
        self.interface = interface
        self.static_sdp = SDP % (9,)

    def startProtocol(self):
        sock = self.transport.getHandle()
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            sock.setsockopt(socket.SOL_SOCKET, option, 4 * 1024 * 1024)
        self.contact = b"Contact: <sip:bare@127.0.0.1:%d>" % (self.transport.getHost().port,)

    def datagramReceived(self, data, addr):
        end = data.find(b"\r\n\r\n")
        head = data[:end] if end >= 0 else data
        lines = head.split(b"\r\n")
        method = lines[0].split(b" ", 1)[0]
        if method.startswith(b"SIP/"):
            return      # a response: we send no requests
        vias = []
        found = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            key = _NAMES.get(name.strip().lower())
            if key == b"Via":
                vias.append(value.strip())
            elif key is not None:
                found[key] = value.strip()
        call_id = found.get(b"Call-ID")
        if not vias or call_id is None or b"CSeq" not in found:
            return
        if method == b"ACK":
            dialog = self.dialogs.get(call_id)
            if dialog is not None:
                dialog[1] = True
            return
        to = found.get(b"To", b"")
        body = b""
        if method == b"INVITE":
            dialog = self.dialogs.get(call_id)
            if dialog is None:
                self.next_tag += 1
                if self.echo:
                    port = reactor.listenUDP(0, Reflector(), interface=self.interface)
                    dialog = [b"%x" % self.next_tag, False, SDP % (port.getHost().port,), port]
                else:
                    dialog = [b"%x" % self.next_tag, False, self.static_sdp, None]
                self.dialogs[call_id] = dialog
            to += b";tag=" + dialog[0]
            body = dialog[2]
        elif method == b"BYE":
            dialog = self.dialogs.pop(call_id, None)
            if dialog is not None and dialog[3] is not None:
                dialog[3].stopListening()
        out = [b"SIP/2.0 200 OK"]
        out.extend(b"Via: " + v for v in vias)
        out.append(b"From: " + found.get(b"From", b""))
        out.append(b"To: " + to)
        out.append(b"Call-ID: " + call_id)
        out.append(b"CSeq: " + found[b"CSeq"])
        if body:
            out.append(self.contact)
            out.append(b"Content-Type: application/sdp")
        out.append(b"Content-Length: %d\r\n\r\n" % (len(body),))
        self.transport.write(b"\r\n".join(out) + body, addr)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.bare_uas", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interface", default="127.0.0.1")
    parser.add_argument("--echo", action="store_true",
                        help="give each call an RTP port that sends every packet back")
    args = parser.parse_args(argv)
    reactor.listenUDP(args.port, BareUAS(args.echo, args.interface), interface=args.interface)
    print(f"bare UAS{' with echo' if args.echo else ''} on {args.interface}:{args.port}, "
          f"pid {os.getpid()}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
