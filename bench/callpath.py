"""The server's CPU cost of one whole call, in process (no SIPp, no kernel round trips):
``python -m bench.callpath [--calls N] [--profile FILE]``.

The real ``SIPServer`` with the echo app, whose SIP UDP socket is replaced by one that
keeps what is sent; every call is the bytes SIPp's built-in UAC sends (INVITE with SDP,
ACK, BYE) fed to ``SIPTransport.datagram_received``.  Time runs on a ``Clock`` advanced
1/RATE s per call (``--rate``, default 1000), so timers fire (Timer J/K/L, the 2xx
retransmission cancelled by the ACK, port recycling) as they would under that load;
RTP ports are real sockets from the media pool.  Prints microseconds of CPU per call,
the best of three runs; ``--profile`` writes a cProfile of one run.

The SIPp CPS benchmark (``python -m bench cps``) is the figure that counts; this one
exists to see the per-call cost of a change in seconds, without the noise of two
processes sharing two cores.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import time

from twisted.internet import reactor as _real_reactor
from twisted.internet.interfaces import IReactorFDSet
from zope.interface import implementer

from rvoip_twisted.testing import HeapClock

SDP = (
    b"v=0\r\n"
    b"o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 6000 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)

INVITE = (
    "INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{n}-1-0\r\n"
    "From: sipp <sip:sipp@127.0.0.1:5061>;tag={n}SIPpTag001\r\n"
    "To: service <sip:service@127.0.0.1:5060>\r\n"
    "Call-ID: {n}-1@127.0.0.1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: sip:sipp@127.0.0.1:5061\r\n"
    "Max-Forwards: 70\r\n"
    "Subject: Performance Test\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: {length}\r\n\r\n"
)

ACK = (
    "ACK sip:service@127.0.0.1:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{n}-1-5\r\n"
    "From: sipp <sip:sipp@127.0.0.1:5061>;tag={n}SIPpTag001\r\n"
    "To: service <sip:service@127.0.0.1:5060>{to_tag}\r\n"
    "Call-ID: {n}-1@127.0.0.1\r\n"
    "CSeq: 1 ACK\r\n"
    "Contact: sip:sipp@127.0.0.1:5061\r\n"
    "Max-Forwards: 70\r\n"
    "Subject: Performance Test\r\n"
    "Content-Length: 0\r\n\r\n"
)

BYE = (
    "BYE sip:service@127.0.0.1:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{n}-1-7\r\n"
    "From: sipp <sip:sipp@127.0.0.1:5061>;tag={n}SIPpTag001\r\n"
    "To: service <sip:service@127.0.0.1:5060>{to_tag}\r\n"
    "Call-ID: {n}-1@127.0.0.1\r\n"
    "CSeq: 2 BYE\r\n"
    "Contact: sip:sipp@127.0.0.1:5061\r\n"
    "Max-Forwards: 70\r\n"
    "Subject: Performance Test\r\n"
    "Content-Length: 0\r\n\r\n"
)


@implementer(IReactorFDSet)
class _Reactor(HeapClock):
    """Simulated time (``task.Clock`` sorts its list on every callLater, too slow for
    thousands of timers: a heap); sockets (RTP ports) from the real reactor."""

    def __init__(self):
        HeapClock.__init__(self, start=1000.0)

    def listenUDP(self, *args, **kwargs):
        return _real_reactor.listenUDP(*args, **kwargs)

    # IReactorFDSet, so the media layer reads RTP through its epoll set as
    # in the server (nothing arrives here: no RTP is sent to it)
    def addReader(self, reader):
        return _real_reactor.addReader(reader)

    def removeReader(self, reader):
        return _real_reactor.removeReader(reader)

    def addWriter(self, writer):
        return _real_reactor.addWriter(writer)

    def removeWriter(self, writer):
        return _real_reactor.removeWriter(writer)

    def getReaders(self):
        return _real_reactor.getReaders()

    def getWriters(self):
        return _real_reactor.getWriters()

    def removeAll(self):
        return _real_reactor.removeAll()


class _Socket:
    """The SIP UDP socket: keeps the last datagram sent."""

    def __init__(self):
        self.last = b""
        self.sent = 0

    def sendto(self, data, addr):
        self.last = data
        self.sent += 1
        return len(data)


def _to_tag(response: bytes) -> str:
    start = response.index(b"\nTo:")
    line = response[start:response.index(b"\r\n", start)]
    return ";tag=" + line.split(b";tag=")[1].decode()


def build():
    from rvoip_twisted.apps.echo import EchoApp
    from rvoip_twisted.service.server import SIPServer

    clock = _Reactor()
    server = SIPServer(reactor=clock, listen=["udp:0:interface=127.0.0.1"], handler=EchoApp(),
                       rtp_ports=(50000, 60000))   # clear of the tests' ranges
    server.startService()
    proto = server.transport._udp[next(iter(server.transport._udp))]
    sock = _Socket()
    proto.socket = sock
    return server, clock, proto, sock


def run_calls(server, clock, proto, sock, first: int, count: int, rate: float) -> float:
    receive = server.transport.datagram_received
    addr = ("127.0.0.1", 5061)
    step = 1.0 / rate
    body = SDP
    elapsed = 0.0
    for n in range(first, first + count):
        invite = INVITE.format(n=n, length=len(body)).encode() + body
        t0 = time.process_time()
        receive(invite, addr, proto)
        elapsed += time.process_time() - t0
        answer = sock.last
        if not answer.startswith(b"SIP/2.0 200"):
            raise SystemExit("call %d: no 200 (last sent: %r)" % (n, answer[:60]))
        tag = _to_tag(answer)
        ack = ACK.format(n=n, to_tag=tag).encode()
        bye = BYE.format(n=n, to_tag=tag).encode()
        t0 = time.process_time()
        receive(ack, addr, proto)
        receive(bye, addr, proto)
        clock.advance(step)
        elapsed += time.process_time() - t0
        if not sock.last.startswith(b"SIP/2.0 200"):
            raise SystemExit("call %d: BYE not answered 200" % n)
    return elapsed


#: the parts of a call that ``--part`` runs alone (``python -m bench.instructions --parts``)
PARTS = {
    "parse_call": "parse SIPp's INVITE with its SDP, its ACK and its BYE (parse_message), "
                  "of the next of 4,000 calls",
    "sdp_answer": "answer its SDP offer: parse, negotiate, serialize (OfferAnswer, as a "
                  "media session's first answer, without applying it)",
    "responses": "build and serialize the two 200s (INVITE, with the SDP answer, Contact "
                 "and Content-Type; BYE)",
}


def part_function(server, name):
    """A no-argument callable doing one ``PARTS`` piece of a call, as the server does it."""
    import random

    from rvoip_twisted.sdp.negotiate import OfferAnswer
    from rvoip_twisted.sip.parser import parse_message

    invite = INVITE.format(n=7, length=len(SDP)).encode() + SDP
    bye = BYE.format(n=7, to_tag=";tag=as7d9f8g").encode()
    if name == "parse_call":
        # A call's three requests in their order, a different call each time: the
        # parser's caches (of lines, From/To, CSeq, Request-URI) find what they
        # would find in the flow, no more: a call's own lines that the line
        # cache keeps are its From and Call-ID (not its Vias), and 4,000 calls'
        # are more than it keeps, so they are never left over from the call's
        # last turn.
        import itertools

        from rvoip_twisted.sip.headers import _CACHE_SIZE
        assert 4000 * 2 > _CACHE_SIZE
        calls = [(INVITE.format(n=n, length=len(SDP)).encode() + SDP,
                  ACK.format(n=n, to_tag=";tag=as7d9f8g").encode(),
                  BYE.format(n=n, to_tag=";tag=as7d9f8g").encode()) for n in range(4000)]
        following = itertools.cycle(calls).__next__

        def parse_call():
            invite, ack, bye = following()
            return parse_message(invite), parse_message(ack), parse_message(bye)

        return parse_call
    media = server.media
    rng = random.Random(7)

    def sdp_answer():
        oa = OfferAnswer(media.public_host, 50000, media.codec_preferences, ptime=media.ptime,
                         rtcp_mux=True, random=rng)
        return oa.answer(SDP)[0].serialize()

    if name == "sdp_answer":
        return sdp_answer
    if name == "responses":
        invite_msg = parse_message(invite)
        bye_msg = parse_message(bye)
        answer = sdp_answer()
        headers = [("Contact", "<sip:%s:5060>" % media.public_host),
                   ("Content-Type", "application/sdp")]

        def responses():
            return (invite_msg.response(200, to_tag="as7d9f8g", headers=headers,
                                        body=answer).to_bytes(),
                    bye_msg.response(200).to_bytes())

        return responses
    raise SystemExit("unknown part %r (one of: %s)" % (name, ", ".join(PARTS)))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.callpath", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=1000.0, help="simulated calls/s")
    parser.add_argument("--profile", help="write a cProfile of the last run here")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--count", type=int, default=None, metavar="N",
                        help="no timing: warm up, then run N calls with the GC off and stop "
                             "(for python -m bench.instructions)")
    from rvoip_twisted.logs import LEVELS
    parser.add_argument("--log-level", default="info", choices=list(LEVELS),
                        help="the server's --log-level (default info, as twistd runs it)")
    parser.add_argument("--part", choices=sorted(PARTS), default=None,
                        help="with --count: run N times this piece of a call alone, not calls")
    args = parser.parse_args(argv)
    from rvoip_twisted import logs
    from rvoip_twisted.service.server import tune_gc

    from twisted.logger import globalLogBeginner, textFileLogObserver

    logs.set_level(args.log_level)
    # as under twistd: every event formatted and written to a file
    globalLogBeginner.beginLoggingTo([textFileLogObserver(open("/dev/null", "w"))],
                                     redirectStandardIO=False)
    server, clock, proto, sock = build()
    tune_gc()
    if args.count is not None and args.part is not None:
        fn = part_function(server, args.part)
        for _ in range(300):
            fn()
        gc.disable()
        for _ in range(args.count):
            fn()
        return
    if args.count is not None:
        # the same warm-up and drain whatever N is, so that the difference
        # between two counts is the cost of the extra calls alone
        run_calls(server, clock, proto, sock, 0, 300, args.rate)
        clock.advance(40)
        gc.disable()
        run_calls(server, clock, proto, sock, 300, args.count, args.rate)
        clock.advance(40)
        if server.stats()["calls"]:
            raise SystemExit("calls left open: %s" % (server.stats(),))
        return
    run_calls(server, clock, proto, sock, 0, 1000, args.rate)   # warm-up: pool, caches
    results = []
    first = 1000
    for i in range(args.runs):
        profiler = cProfile.Profile(time.process_time) if (args.profile and i == args.runs - 1) else None
        if profiler:
            profiler.enable()
        seconds = run_calls(server, clock, proto, sock, first, args.calls, args.rate)
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
        first += args.calls
        results.append(seconds / args.calls * 1e6)
    clock.advance(64)
    stats = server.stats()
    print("us/call: best %.1f  (runs: %s)" % (min(results), ", ".join("%.1f" % r for r in results)))
    print("tables after 64 s: %s" % stats)
    gc.collect()


if __name__ == "__main__":
    main()
