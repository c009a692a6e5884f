"""The media load generator: N concurrent echo calls against the server, one process,
one epoll loop, raw sockets (``python -m bench.loadgen --sip 127.0.0.1:PORT --calls N
--out FILE.json``; the benchmark runs it pinned to the CPU the server is not on).

Signalling: a minimal hand-built UAC over one UDP socket (INVITE with a PCMU SDP offer
and a=rtcp-mux, ACK, BYE; INVITE and BYE retransmitted every 500 ms up to 6 times;
ACK repeated for a retransmitted 200), paced at ``--setup-rate`` calls/s.

Media: one RTP socket per call (connected to the server's port from the SDP answer),
all paced by one timer: a 2 ms tick sends for a tenth of the calls, so each call sends
one 160-byte PCMU packet every 20 ms and the load is spread over the period.  Each
payload carries a tag (magic, call index, our 32-bit sequence number) that the echo
app returns untouched (G.711 pass-through).

Measurement (the ``--measure`` seconds after ``--warmup`` seconds with every call
up): every RTP packet the server sends is timestamped by the kernel on arrival
(SO_TIMESTAMPNS, so the generator's own loop latency does not count); per stream the
inter-arrival time of consecutive sequence numbers minus 20 ms is the error of the
server's send interval.  Loss is counted two ways: gaps in the server's sequence
numbers (server -> us) and our tagged packets sent in the window that never came back
(us -> server -> us, through its jitter buffer).

Progress lines on stdout (the benchmark samples the server's CPU and RSS on them):
``ESTABLISHED n``, ``MEASURE-START``, ``MEASURE-END``, ``DONE path``.
"""

from __future__ import annotations

import argparse
import array
import json
import os
import random
import re
import resource
import select
import socket
import struct
import sys
import time

HOST = "127.0.0.1"
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
TIMESPEC = struct.Struct("@qq")
ANC_SIZE = socket.CMSG_SPACE(TIMESPEC.size)
RTP_HEADER = struct.Struct("!BBHII")
TAG = struct.Struct("!4sII")
MAGIC = b"RVBN"
FILL = b"\xff" * (160 - TAG.size)
SEQ = struct.Struct("!H")
PERIOD = 0.020
TICK = 0.002
GROUPS = int(round(PERIOD / TICK))
RETRANS_INTERVAL = 0.5
MAX_RETRANS = 6

_TAG_RE = re.compile(rb";\s*tag=([^;>\s,]+)", re.I)
_URI_RE = re.compile(rb"<([^>]+)>")
_M_RE = re.compile(rb"^m=audio (\d+) ", re.M)
_C_RE = re.compile(rb"^c=IN IP4 (\S+)", re.M)
_COMPACT = {b"i": b"call-id", b"t": b"to", b"f": b"from", b"m": b"contact", b"v": b"via",
            b"l": b"content-length", b"c": b"content-type"}


class Call:
    __slots__ = (
        "idx", "call_id", "tag", "sock", "fd", "local_port", "state", "to_tag", "contact",
        "invite", "invite_branch", "ack", "bye", "next_retrans", "retrans", "remote",
        "sending", "seq", "rtp_seq", "ts", "ssrc",
        # receive side
        "ext", "prev_t", "rx_first", "rx_last", "rx_count", "echoed", "silence",
        "win_lo", "win_hi", "echo_bits", "rtcp", "invite_sent_at", "setup_ms",
    )

    def __init__(self, idx, sock):
        self.idx = idx
        self.call_id = "bench-%d-%08x@%s" % (idx, random.getrandbits(32), HOST)
        self.tag = "%08x" % random.getrandbits(32)
        self.sock = sock
        self.fd = sock.fileno()
        self.local_port = sock.getsockname()[1]
        self.state = "new"
        self.to_tag = None
        self.contact = None
        self.invite = self.ack = self.bye = None
        self.invite_branch = None
        self.next_retrans = None
        self.retrans = 0
        self.remote = None
        self.sending = False
        self.seq = 0                      # our 32-bit sequence (in the tag)
        self.rtp_seq = random.getrandbits(16)
        self.ts = random.getrandbits(32)
        self.ssrc = random.getrandbits(32)
        self.ext = None                   # extended seq of the server's last packet
        self.prev_t = None
        self.rx_first = self.rx_last = None
        self.rx_count = 0
        self.echoed = 0
        self.silence = 0
        self.win_lo = self.win_hi = None
        self.echo_bits = None
        self.rtcp = 0
        self.invite_sent_at = None
        self.setup_ms = None


def _branch():
    return "z9hG4bK-bench-%016x" % random.getrandbits(64)


class LoadGen:
    def __init__(self, args):
        self.args = args
        host, _, port = args.sip.rpartition(":")
        self.server = (host or HOST, int(port))
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind((HOST, 0))
        self.sip.setblocking(False)
        try:
            self.sip.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        except OSError:
            pass
        self.sip_port = self.sip.getsockname()[1]
        self.ep = select.epoll()
        self.ep.register(self.sip.fileno(), select.EPOLLIN)
        self.calls: list[Call] = []
        self.by_fd: dict[int, Call] = {}
        self.by_cid: dict[str, Call] = {}
        for i in range(args.calls):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((HOST, 0))
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            c = Call(i, s)
            self.calls.append(c)
            self.by_fd[c.fd] = c
            self.by_cid[c.call_id] = c
            self.ep.register(c.fd, select.EPOLLIN)
        self.groups = [[c for c in self.calls if c.idx % GROUPS == g] for g in range(GROUPS)]
        self.measuring = False
        self.errors = array.array("d")
        self.big: list[tuple[float, float]] = []   # (arrival, error) of late packets
        self.window_t0 = None                       # wall clock of MEASURE-START
        self.counters = {"invites": 0, "invite_retrans": 0, "established": 0, "failed": 0,
                         "bye_sent": 0, "bye_retrans": 0, "bye_ok": 0, "bye_failed": 0,
                         "server_requests": 0, "rtp_sent": 0, "rtp_sent_window": 0,
                         "rtp_received": 0, "rtp_received_window": 0, "rtcp_received": 0,
                         "send_errors": 0, "ticks_skipped": 0, "final_errors": {}}
        self.tick_lateness = array.array("d")
        self.retrans_pending: set[Call] = set()

    # ------------------------------------------------------------------ SIP

    def _invite(self, c: Call) -> bytes:
        sdp = (
            "v=0\r\n"
            f"o=bench {c.idx} 1 IN IP4 {HOST}\r\n"
            "s=-\r\n"
            f"c=IN IP4 {HOST}\r\n"
            "t=0 0\r\n"
            f"m=audio {c.local_port} RTP/AVP 0\r\n"
            "a=rtpmap:0 PCMU/8000\r\n"
            "a=ptime:20\r\n"
            "a=rtcp-mux\r\n"
            "a=sendrecv\r\n"
        )
        c.invite_branch = _branch()
        host, port = self.server
        return (
            f"INVITE sip:echo@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{self.sip_port};branch={c.invite_branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:load@{HOST}:{self.sip_port}>;tag={c.tag}\r\n"
            f"To: <sip:echo@{host}:{port}>\r\n"
            f"Call-ID: {c.call_id}\r\n"
            "CSeq: 1 INVITE\r\n"
            f"Contact: <sip:load@{HOST}:{self.sip_port}>\r\n"
            "Content-Type: application/sdp\r\n"
            f"Content-Length: {len(sdp)}\r\n\r\n" + sdp
        ).encode()

    def _in_dialog(self, c: Call, method: str, cseq: int, branch: str) -> bytes:
        host, port = self.server
        target = c.contact or f"sip:echo@{host}:{port}"
        return (
            f"{method} {target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{self.sip_port};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:load@{HOST}:{self.sip_port}>;tag={c.tag}\r\n"
            f"To: <sip:echo@{host}:{port}>;tag={c.to_tag}\r\n"
            f"Call-ID: {c.call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()

    def _non2xx_ack(self, c: Call, to_value: bytes) -> bytes:
        host, port = self.server
        return (
            f"ACK sip:echo@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{self.sip_port};branch={c.invite_branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:load@{HOST}:{self.sip_port}>;tag={c.tag}\r\n"
        ).encode() + b"To: " + to_value + (
            f"\r\nCall-ID: {c.call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n").encode()

    def _send_sip(self, data: bytes) -> None:
        try:
            self.sip.sendto(data, self.server)
        except OSError:
            self.counters["send_errors"] += 1

    def send_invite(self, c: Call, now: float) -> None:
        c.invite = self._invite(c)
        c.state = "inviting"
        c.invite_sent_at = now
        c.next_retrans = now + RETRANS_INTERVAL
        c.retrans = 0
        self.retrans_pending.add(c)
        self._send_sip(c.invite)
        self.counters["invites"] += 1

    def send_bye(self, c: Call, now: float) -> None:
        c.sending = False
        c.bye = self._in_dialog(c, "BYE", 2, _branch())
        c.state = "bye"
        c.next_retrans = now + RETRANS_INTERVAL
        c.retrans = 0
        self.retrans_pending.add(c)
        self._send_sip(c.bye)
        self.counters["bye_sent"] += 1

    def retransmit(self, now: float) -> None:
        for c in list(self.retrans_pending):
            if c.next_retrans is None or now < c.next_retrans:
                continue
            if c.retrans >= MAX_RETRANS:
                self.retrans_pending.discard(c)
                if c.state == "inviting":
                    c.state = "failed"
                    self.counters["failed"] += 1
                    self._count_error("timeout")
                elif c.state == "bye":
                    c.state = "closed"
                    self.counters["bye_failed"] += 1
                continue
            c.retrans += 1
            c.next_retrans = now + RETRANS_INTERVAL
            if c.state == "inviting":
                self._send_sip(c.invite)
                self.counters["invite_retrans"] += 1
            elif c.state == "bye":
                self._send_sip(c.bye)
                self.counters["bye_retrans"] += 1
            else:
                self.retrans_pending.discard(c)

    def _count_error(self, what) -> None:
        errors = self.counters["final_errors"]
        errors[str(what)] = errors.get(str(what), 0) + 1

    def on_sip(self, data: bytes, now: float) -> None:
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            key = name.strip().lower()
            key = _COMPACT.get(key, key)
            headers.setdefault(key, value.strip())
        cid = headers.get(b"call-id", b"").decode("ascii", "replace")
        c = self.by_cid.get(cid)
        first = lines[0]
        if not first.startswith(b"SIP/2.0 "):
            self._answer_request(first, lines, headers, c)
            return
        if c is None:
            return
        status = int(first.split()[1])
        method = headers.get(b"cseq", b"").split()[-1:]
        method = method[0] if method else b""
        if method == b"INVITE":
            if status < 200:
                if c.state == "inviting":
                    c.next_retrans = None       # Timer A stops on a provisional response
                return
            if status < 300:
                tag = _TAG_RE.search(headers.get(b"to", b""))
                if c.state == "inviting":
                    c.to_tag = tag.group(1).decode() if tag else ""
                    uri = _URI_RE.search(headers.get(b"contact", b""))
                    c.contact = uri.group(1).decode() if uri else None
                    m = _M_RE.search(body)
                    addr = _C_RE.search(body)
                    c.ack = self._in_dialog(c, "ACK", 1, _branch())
                    self._send_sip(c.ack)
                    self.retrans_pending.discard(c)
                    if not m:
                        c.state = "failed"
                        self.counters["failed"] += 1
                        self._count_error("no SDP answer")
                        return
                    c.remote = ((addr.group(1).decode() if addr else HOST), int(m.group(1)))
                    try:
                        c.sock.connect(c.remote)
                    except OSError:
                        pass
                    c.state = "up"
                    c.sending = True
                    c.setup_ms = (now - c.invite_sent_at) * 1000.0
                    self.counters["established"] += 1
                elif c.ack is not None:
                    self._send_sip(c.ack)       # a retransmitted 200: ACK again
                return
            if c.state == "inviting":
                self.retrans_pending.discard(c)
                c.state = "failed"
                self.counters["failed"] += 1
                self._count_error(status)
                self._send_sip(self._non2xx_ack(c, headers.get(b"to", b"")))
            return
        if method == b"BYE" and status >= 200 and c.state == "bye":
            self.retrans_pending.discard(c)
            c.state = "closed"
            if status < 300:
                self.counters["bye_ok"] += 1
            else:
                self.counters["bye_failed"] += 1

    def _answer_request(self, first, lines, headers, c) -> None:
        self.counters["server_requests"] += 1
        method = first.split(b" ", 1)[0]
        if method == b"ACK":
            return
        if method == b"BYE" and c is not None:
            c.sending = False
            c.state = "closed"
            self.retrans_pending.discard(c)
        out = [b"SIP/2.0 200 OK"]
        for line in lines[1:]:
            key = line.partition(b":")[0].strip().lower()
            key = _COMPACT.get(key, key)
            if key in (b"via", b"from", b"to", b"call-id", b"cseq"):
                out.append(line)
        out.append(b"Content-Length: 0")
        self._send_sip(b"\r\n".join(out) + b"\r\n\r\n")

    # ------------------------------------------------------------------ RTP

    def send_group(self, group) -> None:
        sent = 0
        errors = 0
        for c in group:
            if not c.sending:
                continue
            c.seq += 1
            c.rtp_seq = (c.rtp_seq + 1) & 0xFFFF
            c.ts = (c.ts + 160) & 0xFFFFFFFF
            try:
                c.sock.send(RTP_HEADER.pack(0x80, 0, c.rtp_seq, c.ts, c.ssrc)
                            + TAG.pack(MAGIC, c.idx, c.seq) + FILL)
                sent += 1
            except OSError:
                errors += 1
        self.counters["rtp_sent"] += sent
        if self.measuring:
            self.counters["rtp_sent_window"] += sent
        self.counters["send_errors"] += errors

    def on_rtp(self, c: Call) -> None:
        try:
            data, anc, _flags, _addr = c.sock.recvmsg(2048, ANC_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        if len(data) < 12:
            return
        if 192 <= data[1] <= 223:        # RTCP (multiplexed)
            c.rtcp += 1
            self.counters["rtcp_received"] += 1
            return
        t = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = TIMESPEC.unpack_from(payload)
                t = sec + nsec * 1e-9
        if t is None:
            t = time.time()
        self.counters["rtp_received"] += 1
        seq = SEQ.unpack_from(data, 2)[0]
        ext = c.ext
        if ext is None:
            ext = seq + 0x10000
        else:
            delta = (seq - ext) & 0xFFFF
            if delta >= 0x8000:
                delta -= 0x10000
            ext += delta
        if self.measuring:
            self.counters["rtp_received_window"] += 1
            if c.ext is not None and ext == c.ext + 1 and c.prev_t is not None:
                err = (t - c.prev_t) * 1000.0 - 20.0
                self.errors.append(err)
                if err > 5.0 and len(self.big) < 200000:
                    self.big.append((t, err))
            if c.rx_first is None:
                c.rx_first = ext
            if c.rx_last is None or ext > c.rx_last:
                c.rx_last = ext
            c.rx_count += 1
        if c.ext is None or ext > c.ext:
            c.ext = ext
            c.prev_t = t
        if data[12:16] == MAGIC and len(data) >= 12 + TAG.size:
            _, idx, oseq = TAG.unpack_from(data, 12)
            bits = c.echo_bits
            if bits is not None and idx == c.idx:
                off = oseq - c.win_lo
                if 0 <= off < len(bits):
                    bits[off] = 1
            c.echoed += 1
        else:
            c.silence += 1

    # ------------------------------------------------------------------ the loop

    def run(self) -> dict:
        a = self.args
        n = len(self.calls)
        t_start = time.monotonic()
        setup_interval = 1.0 / a.setup_rate
        setup_deadline = t_start + n / a.setup_rate + a.setup_timeout
        next_invite = t_start
        invited = 0
        next_tick = t_start
        tick_no = 0
        next_retrans_scan = t_start
        phase = "setup"
        phase_end = None
        measure_cpu = None
        measure_t0 = measure_t1 = None
        bye_next = None
        bye_index = 0
        up_calls: list[Call] = []
        poll = self.ep.poll
        by_fd = self.by_fd
        sip_fd = self.sip.fileno()
        on_rtp = self.on_rtp
        phases = {}
        while True:
            now = time.monotonic()
            timeout = max(0.0, min(next_tick, next_invite if phase == "setup" else next_tick)
                          - now)
            for fd, _ev in poll(timeout):
                c = by_fd.get(fd)
                if c is not None:
                    on_rtp(c)
                elif fd == sip_fd:
                    now = time.monotonic()
                    while True:
                        try:
                            data = self.sip.recv(65535)
                        except (BlockingIOError, InterruptedError):
                            break
                        except OSError:
                            break
                        self.on_sip(data, now)
            now = time.monotonic()
            # the media timer
            if now >= next_tick:
                late = now - next_tick
                if self.measuring:
                    self.tick_lateness.append(late * 1000.0)
                if late > 0.2:          # far behind: skip rather than burst
                    skip = int(late / TICK)
                    tick_no += skip
                    next_tick += skip * TICK
                    self.counters["ticks_skipped"] += skip
                while now >= next_tick:
                    self.send_group(self.groups[tick_no % GROUPS])
                    tick_no += 1
                    next_tick += TICK
            if now >= next_retrans_scan:
                self.retransmit(now)
                next_retrans_scan = now + 0.05
            # phases
            if phase == "setup":
                while invited < n and now >= next_invite:
                    self.send_invite(self.calls[invited], now)
                    invited += 1
                    next_invite += setup_interval
                if invited >= n:
                    next_invite = float("inf")
                resolved = self.counters["established"] + self.counters["failed"]
                if (invited >= n and resolved >= n) or now > setup_deadline:
                    phases["setup_s"] = round(now - t_start, 2)
                    print(f"ESTABLISHED {self.counters['established']}", flush=True)
                    phase, phase_end = "warmup", now + a.warmup
            elif phase == "warmup":
                if now >= phase_end:
                    up_calls = [c for c in self.calls if c.state == "up"]
                    window = int(a.measure / PERIOD * 1.5) + 100
                    for c in up_calls:
                        c.win_lo = c.seq + 1
                        c.echo_bits = bytearray(window)
                    self.measuring = True
                    measure_cpu = os.times()
                    measure_t0 = now
                    self.window_t0 = time.time()
                    print("MEASURE-START", flush=True)
                    phase, phase_end = "measure", now + a.measure
            elif phase == "measure":
                if now >= phase_end:
                    self.measuring = False
                    measure_t1 = now
                    cpu1 = os.times()
                    self.gen_cpu_pct = 100.0 * ((cpu1.user - measure_cpu.user)
                                                + (cpu1.system - measure_cpu.system)) / (
                        measure_t1 - measure_t0)
                    print("MEASURE-END", flush=True)
                    for c in up_calls:
                        c.win_hi = c.seq
                        c.sending = False
                    phase, phase_end = "drain", now + a.drain
            elif phase == "drain":
                if now >= phase_end:
                    phase = "teardown"
                    bye_next = now
                    to_close = [c for c in self.calls if c.state == "up"]
                    teardown_deadline = now + len(to_close) / a.setup_rate + a.setup_timeout
                    t_teardown = now
            elif phase == "teardown":
                while bye_index < len(to_close) and now >= bye_next:
                    self.send_bye(to_close[bye_index], now)
                    bye_index += 1
                    bye_next += setup_interval
                if bye_index >= len(to_close) and not any(
                        c.state == "bye" for c in to_close):
                    phases["teardown_s"] = round(now - t_teardown, 2)
                    break
                if now > teardown_deadline:
                    phases["teardown_s"] = round(now - t_teardown, 2)
                    break
        return self.summary(up_calls, measure_t0, measure_t1, phases)

    def summary(self, up_calls, t0, t1, phases) -> dict:
        errs = sorted(self.errors)
        abs_errs = sorted(abs(e) for e in self.errors)

        def pct(values, p):
            if not values:
                return None
            k = max(1, -(-len(values) * p // 100))
            return round(values[int(min(k, len(values))) - 1], 3)

        window = (t1 - t0) if (t0 is not None and t1 is not None) else None
        server_gaps = 0
        echo_missing = 0
        echo_expected = 0
        streams_without_packets = 0
        missing_by_stream = []
        first_missing = []
        for c in up_calls:
            if c.rx_first is None:
                streams_without_packets += 1
            else:
                server_gaps += (c.rx_last - c.rx_first + 1) - c.rx_count
            if c.echo_bits is not None and c.win_hi is not None:
                expected = c.win_hi - c.win_lo + 1
                got = sum(c.echo_bits[:expected])
                echo_expected += expected
                echo_missing += expected - got
                if got < expected:
                    missing_by_stream.append(expected - got)
                    # when in the window the stream's first echo went missing (s)
                    first_missing.append(c.echo_bits.index(0) * 0.020)
        setup = sorted(c.setup_ms for c in self.calls if c.setup_ms is not None)
        # late packets (> 5 ms) grouped into stalls: runs of arrivals less than 20 ms
        # apart; a stall of the server's loop delays every stream sending in it
        stalls = []
        for t, err in sorted(self.big):
            if stalls and t - stalls[-1]["_last"] < 0.020:
                st = stalls[-1]
                st["_last"] = t
                st["packets"] += 1
                st["max_err_ms"] = max(st["max_err_ms"], round(err, 1))
            else:
                stalls.append({"at_s": round(t - (self.window_t0 or t), 3), "_last": t,
                               "packets": 1, "max_err_ms": round(err, 1)})
        for st in stalls:
            del st["_last"]
        worst = sorted(stalls, key=lambda st: -st["max_err_ms"])[:20]
        lateness = sorted(self.tick_lateness)
        cnt = self.counters
        return {
            "calls": len(self.calls),
            "established": cnt["established"],
            "failed": cnt["failed"],
            "final_errors": cnt["final_errors"],
            "measured_streams": len(up_calls),
            "measure_s": round(window, 3) if window else None,
            "phases": phases,
            "rtp_sent_window": cnt["rtp_sent_window"],
            "rtp_received_window": cnt["rtp_received_window"],
            "pps_in_to_server": round(cnt["rtp_sent_window"] / window, 1) if window else None,
            "pps_out_of_server": round(cnt["rtp_received_window"] / window, 1) if window else None,
            "intervals": len(errs),
            "err_ms_p50": pct(abs_errs, 50),
            "err_ms_p99": pct(abs_errs, 99),
            "err_ms_max": round(abs_errs[-1], 3) if abs_errs else None,
            "err_ms_signed_p1": pct(errs, 1),
            "err_ms_signed_p50": pct(errs, 50),
            "err_ms_signed_p99": pct(errs, 99),
            "server_seq_gaps": server_gaps,
            "echo_expected": echo_expected,
            "echo_missing": echo_missing,
            "packets_lost": server_gaps + echo_missing,
            "streams_without_packets": streams_without_packets,
            # where the missing echoes were: how many streams lost any, the most one
            # stream lost, and when (s into the window) streams first lost one
            "streams_missing_echoes": len(missing_by_stream),
            "missing_echoes_per_stream_max": max(missing_by_stream, default=0),
            "first_missing_at_s": sorted(round(t, 2) for t in first_missing)[:: max(1, len(first_missing) // 20)],
            "rtcp_received": cnt["rtcp_received"],
            "send_errors": cnt["send_errors"],
            "generator_ticks_skipped": cnt["ticks_skipped"],
            "invite_retrans": cnt["invite_retrans"],
            "bye_sent": cnt["bye_sent"],
            "bye_ok": cnt["bye_ok"],
            "bye_failed": cnt["bye_failed"],
            "bye_retrans": cnt["bye_retrans"],
            "server_requests": cnt["server_requests"],
            "late_packets_over_5ms": len(self.big),
            "stalls": len(stalls),
            "worst_stalls": sorted(worst, key=lambda st: st["at_s"]),
            "setup_ms_p50": pct(setup, 50),
            "setup_ms_p99": pct(setup, 99),
            "generator_cpu_pct": round(getattr(self, "gen_cpu_pct", 0.0), 1),
            "generator_tick_late_ms_p99": pct(lateness, 99),
            "generator_tick_late_ms_max": round(lateness[-1], 3) if lateness else None,
        }

    def close(self):
        for c in self.calls:
            try:
                c.sock.close()
            except OSError:
                pass
        self.sip.close()
        self.ep.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen")
    p.add_argument("--sip", required=True, help="the server's SIP address HOST:PORT (UDP)")
    p.add_argument("--calls", type=int, required=True)
    p.add_argument("--setup-rate", type=float, default=200.0, help="INVITEs (and BYEs) per second")
    p.add_argument("--setup-timeout", type=float, default=15.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--measure", type=float, default=10.0)
    p.add_argument("--drain", type=float, default=0.5)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    gen = LoadGen(args)
    try:
        result = gen.run()
    finally:
        gen.close()
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"DONE {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
