"""Drive rvoip-twisted with SIPp (and watch the media with tshark).

A small library used by ``sipp/test_sipp.py``; it has no pytest dependency and can be
used by hand from a Python prompt (see ``sipp/README.md``).

What it does:

* finds free loopback ports (UDP and TCP both free, for the server's SIP port);
* starts the server (``twistd -n rvoip ...``) with a chosen app and options, waits until
  it answers a SIP OPTIONS sent over UDP from a raw socket, and stops it (SIGTERM, wait,
  SIGKILL on timeout);
* runs one SIPp scenario with every trace file SIPp can write (message log, error log,
  per-message counts, statistics, screen, ``<log>`` actions) in a run directory, and
  parses the message log and the counts, so tests can assert on facts;
* captures the loopback interface with tshark and lists the RTP / RTCP packets;
* builds a readable diagnostic (SIPp error log tail, message summary, server log tail)
  for failures.

Everything binds 127.0.0.1 only; every wait is bounded; every process started here is
stopped here (``stop_process``), whatever happens.
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

HOST = "127.0.0.1"
SIPP_DIR = Path(__file__).resolve().parent
REPO_ROOT = SIPP_DIR.parent

#: the Debian package (or other hint) that brings each peer binary
INSTALL_HINTS = {
    "sipp": "apt-get install sip-tester   (Debian's SIPp package; .ci/run installs it)",
    "tshark": "DEBIAN_FRONTEND=noninteractive apt-get install tshark   (.ci/run installs it)",
    "baresip": "apt-get install baresip   (.ci/run installs it)",
    "capinfos": "apt-get install tshark (capinfos comes with wireshark-common)",
}

#: where distributions put SIPp's sample captures (Debian: /usr/share/sip-tester)
PCAP_DIR_CANDIDATES = (
    "/usr/share/sip-tester/pcap",
    "/usr/share/sip-tester",
    "/usr/share/sipp/pcap",
    "/usr/local/share/sipp/pcap",
)


class MissingTool(RuntimeError):
    """A peer binary (or its data) is not installed: the message says what to install."""


class ServerError(RuntimeError):
    """The server did not start, or did not answer OPTIONS in time."""


# --------------------------------------------------------------------------- tools


def require_tool(name: str) -> str:
    """Absolute path of ``name`` on PATH, or MissingTool saying how to install it."""
    path = shutil.which(name)
    if path is None:
        hint = INSTALL_HINTS.get(name, f"install {name}")
        raise MissingTool(f"{name} is not installed (not on PATH): {hint}")
    return path


def pcap_dir() -> Path:
    """The directory holding SIPp's sample captures (g711a.pcap, dtmf_2833_*.pcap)."""
    for candidate in PCAP_DIR_CANDIDATES:
        path = Path(candidate)
        if (path / "g711a.pcap").is_file():
            return path
    raise MissingTool(
        "SIPp's sample captures (g711a.pcap, dtmf_2833_*.pcap) were not found in "
        + ", ".join(PCAP_DIR_CANDIDATES)
        + ": " + INSTALL_HINTS["sipp"]
    )


def tail(text: str, lines: int = 60) -> str:
    parts = text.splitlines()
    if len(parts) > lines:
        parts = [f"... ({len(parts) - lines} earlier lines cut)"] + parts[-lines:]
    return "\n".join(parts)


def read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


# --------------------------------------------------------------------------- ports

_handed_out: set[int] = set()


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _tcp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(tcp: bool = True, attempts: int = 200) -> int:
    """A loopback port free for UDP (and TCP too unless tcp=False), never handed out
    twice by this process.  Ports come from a random spot of 20000-59999, away from
    the kernel's ephemeral range (32768-60999 on Linux is still possible, so check)."""
    rng = random.Random()
    for _ in range(attempts):
        port = rng.randrange(20000, 60000)
        if port in _handed_out:
            continue
        if _udp_free(port) and (not tcp or _tcp_free(port)):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free loopback port found in {attempts} attempts")


def free_udp_block(count: int, attempts: int = 200) -> int:
    """First port of ``count`` consecutive free UDP ports, starting on an even port
    (RTP on even, RTCP on the next odd one)."""
    rng = random.Random()
    for _ in range(attempts):
        base = rng.randrange(20000, 60000 - count) & ~1
        block = range(base, base + count)
        if any(p in _handed_out for p in block):
            continue
        if all(_udp_free(p) for p in block):
            _handed_out.update(block)
            return base
    raise RuntimeError(f"no block of {count} free UDP ports found in {attempts} attempts")


# --------------------------------------------------------------------------- processes


def stop_process(proc: subprocess.Popen | None, timeout: float = 10.0,
                 sig: int = signal.SIGTERM) -> int | None:
    """Stop one process we started: signal, wait up to ``timeout``, SIGKILL, wait."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    return proc.returncode


def wait_udp_bound(port: int, proc: subprocess.Popen | None = None,
                   timeout: float = 10.0) -> bool:
    """Wait until something has bound UDP 127.0.0.1:port (binding it fails)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _udp_free(port):
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


# --------------------------------------------------------------------------- SIP bits

_COMPACT = {
    "i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
    "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
    "v": "via", "o": "event", "r": "refer-to", "u": "allow-events",
}


@dataclass
class SipMessage:
    """One message from SIPp's message log (-trace_msg)."""

    direction: str          # "sent" or "received" (from SIPp's point of view)
    time: float             # epoch seconds, from SIPp's log
    transport: str          # UDP / TCP
    raw: str
    start_line: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""

    @classmethod
    def parse(cls, direction: str, when: float, transport: str, raw: str) -> "SipMessage":
        text = raw.replace("\r\n", "\n").strip("\n")
        head, _, body = text.partition("\n\n")
        lines = head.split("\n")
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and headers:      # folded line
                name, value = headers[-1]
                headers[-1] = (name, value + " " + line.strip())
            elif ":" in line:
                name, value = line.split(":", 1)
                name = name.strip().lower()
                headers.append((_COMPACT.get(name, name), value.strip()))
        return cls(direction, when, transport, raw, lines[0].strip(), headers, body)

    # -- accessors
    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]

    @property
    def is_response(self) -> bool:
        return self.start_line.startswith("SIP/2.0 ")

    @property
    def status(self) -> int | None:
        if not self.is_response:
            return None
        try:
            return int(self.start_line.split()[1])
        except (IndexError, ValueError):
            return None

    @property
    def method(self) -> str:
        """The request method, or for a response the method of its CSeq."""
        if self.is_response:
            return self.cseq_method
        return self.start_line.split(" ", 1)[0]

    @property
    def request_uri(self) -> str | None:
        if self.is_response:
            return None
        parts = self.start_line.split()
        return parts[1] if len(parts) > 1 else None

    @property
    def cseq_number(self) -> int | None:
        value = self.header("cseq") or ""
        try:
            return int(value.split()[0])
        except (IndexError, ValueError):
            return None

    @property
    def cseq_method(self) -> str:
        value = (self.header("cseq") or "").split()
        return value[1] if len(value) > 1 else ""

    @property
    def call_id(self) -> str | None:
        return self.header("call-id")

    @property
    def to_tag(self) -> str | None:
        match = re.search(r";\s*tag=([^;>\s]+)", self.header("to") or "")
        return match.group(1) if match else None

    @property
    def branch(self) -> str | None:
        match = re.search(r";\s*branch=([^;\s,]+)", self.header("via") or "")
        return match.group(1) if match else None

    def sdp(self) -> "Sdp | None":
        ctype = (self.header("content-type") or "").lower()
        if "application/sdp" not in ctype or not self.body.strip():
            return None
        return Sdp.parse(self.body)

    def summary(self) -> str:
        arrow = "<-" if self.direction == "received" else "->"
        what = self.start_line
        if self.is_response:
            what += f"  (CSeq {self.header('cseq')})"
        return f"{time.strftime('%H:%M:%S', time.localtime(self.time))}" \
               f".{int(self.time * 1000) % 1000:03d} {arrow} {what}"


@dataclass
class Sdp:
    """Just enough SDP for the checks: the first audio m= line and its attributes."""

    raw: str
    origin_version: int | None
    connection: str | None
    port: int | None
    payload_types: list[int]
    attributes: list[str]

    @classmethod
    def parse(cls, text: str) -> "Sdp":
        version = connection = port = None
        pts: list[int] = []
        attrs: list[str] = []
        in_audio = False
        for line in text.replace("\r\n", "\n").split("\n"):
            line = line.strip()
            if line.startswith("o="):
                parts = line[2:].split()
                if len(parts) >= 3 and parts[2].isdigit():
                    version = int(parts[2])
            elif line.startswith("c=") and (connection is None or in_audio):
                connection = line[2:].split()[-1]
            elif line.startswith("m="):
                parts = line[2:].split()
                in_audio = parts[0] == "audio" and port is None
                if in_audio:
                    port = int(parts[1])
                    pts = [int(p) for p in parts[3:] if p.isdigit()]
            elif line.startswith("a=") and (in_audio or port is None):
                attrs.append(line[2:])
        return cls(text, version, connection, port, pts, attrs)

    @property
    def direction(self) -> str:
        for attr in reversed(self.attributes):
            if attr in ("sendrecv", "sendonly", "recvonly", "inactive"):
                return attr
        return "sendrecv"


_MSG_SEP = re.compile(
    r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\s*$", re.M)
_MSG_KIND = re.compile(
    r"^(\w+) message (sent|received)\b[^\n]*\n", re.M)


def parse_message_log(text: str) -> list[SipMessage]:
    """SIPp's -trace_msg file: blocks that start with a dashed line and a timestamp,
    then ``UDP message sent (N bytes):`` / ``UDP message received [N] bytes :``."""
    messages: list[SipMessage] = []
    matches = list(_MSG_SEP.finditer(text))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        block = text[match.end():end].lstrip("\n")
        kind = _MSG_KIND.match(block)
        if not kind:
            continue          # "retransmission ignored" notes and the like
        stamp = match.group(1)
        seconds, _, frac = stamp.partition(".")
        when = time.mktime(time.strptime(seconds, "%Y-%m-%d %H:%M:%S")) + float("0." + frac)
        raw = block[kind.end():]
        if not raw.strip():
            continue
        messages.append(SipMessage.parse(kind.group(2), when, kind.group(1), raw))
    return messages


def digest_problems(credentials: str, *, method: str, username: str, password: str,
                    realm: str | None = None, nonce: str | None = None,
                    request_uri: str | None = None, opaque: str | None = None) -> list[str]:
    """Check an (Proxy-)Authorization Digest value (RFC 2617 / 3261 22.4, MD5, with or
    without qop=auth).  Returns what is wrong with it (empty: it is right)."""
    value = credentials.strip()
    if not value.lower().startswith("digest"):
        return [f"not a Digest credential: {value!r}"]
    params = {k.lower(): (v1 if v1 is not None and v1 != "" else v2)
              for k, v1, v2 in re.findall(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))', value[6:])}
    problems = []
    for name in ("username", "realm", "nonce", "uri", "response"):
        if name not in params:
            problems.append(f"no {name}= parameter")
    if problems:
        return problems
    if params["username"] != username:
        problems.append(f"username {params['username']!r}, expected {username!r}")
    if realm is not None and params["realm"] != realm:
        problems.append(f"realm {params['realm']!r}, expected {realm!r}")
    if nonce is not None and params["nonce"] != nonce:
        problems.append(f"nonce {params['nonce']!r}, expected the challenge's {nonce!r}")
    if opaque is not None and params.get("opaque") != opaque:
        problems.append(f"opaque {params.get('opaque')!r}, expected {opaque!r}")
    if request_uri is not None and params["uri"] != request_uri:
        problems.append(f"uri {params['uri']!r} is not the Request-URI {request_uri!r}")
    algorithm = params.get("algorithm", "MD5")
    if algorithm.upper() != "MD5":
        problems.append(f"algorithm {algorithm!r}, expected MD5")

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1 = md5(f"{params['username']}:{params['realm']}:{password}")
    ha2 = md5(f"{method}:{params['uri']}")
    qop = params.get("qop")
    if qop:
        if qop != "auth":
            problems.append(f"qop {qop!r}, expected auth")
        if "cnonce" not in params or "nc" not in params:
            problems.append("qop given without cnonce and nc")
            return problems
        if not re.fullmatch(r"[0-9a-fA-F]{8}", params["nc"]):
            problems.append(f"nc {params['nc']!r} is not 8 hex digits")
        expected = md5(f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:{qop}:{ha2}")
    else:
        expected = md5(f"{ha1}:{params['nonce']}:{ha2}")
    if params["response"].lower() != expected:
        problems.append(f"response {params['response']!r} is wrong (expected {expected!r} "
                        f"for user {username!r} and the given password)")
    return problems


# --------------------------------------------------------------------------- the server


class Server:
    """The rvoip server under test: ``twistd -n --pidfile= rvoip ...``.

    Usage::

        with Server(workdir, app="echo", answer_after=None) as srv:
            ...   # srv.port, srv.rtp_low, srv.rtp_high, srv.log_text()
    """

    def __init__(self, workdir: Path | str, app: str = "echo", *,
                 answer_after: float | None = None, max_duration: float | None = None,
                 users: Path | str | None = None, rtp_ports: int = 20,
                 log_level: str = "debug", public_host: str = HOST,
                 extra_args: Sequence[str] = (), ready_timeout: float = 10.0) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.app = app
        self.answer_after = answer_after
        self.max_duration = max_duration
        self.users = users
        self.log_level = log_level
        self.public_host = public_host
        self.extra_args = list(extra_args)
        self.ready_timeout = ready_timeout
        self.port = free_port(tcp=True)
        self.rtp_low = free_udp_block(rtp_ports)
        self.rtp_high = self.rtp_low + rtp_ports - 1
        self.log_path = self.workdir / "server.log"
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        self._log_file = None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
               "-n", "--pidfile=", "rvoip",
               "--listen", f"udp:{self.port}:interface={HOST}",
               "--listen", f"tcp:{self.port}:interface={HOST}",
               "--app", self.app,
               "--rtp-ports", f"{self.rtp_low}-{self.rtp_high}",
               "--public-host", self.public_host,
               "--log-level", self.log_level]
        if self.answer_after is not None:
            cmd += ["--answer-after", _num(self.answer_after)]
        if self.max_duration is not None:
            cmd += ["--max-duration", _num(self.max_duration)]
        if self.users is not None:
            cmd += ["--users", str(self.users)]
        return cmd + self.extra_args

    def start(self) -> "Server":
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env["PYTHONUNBUFFERED"] = "1"
        self._log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.command(), cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
            stdout=self._log_file, stderr=subprocess.STDOUT)
        try:
            self.wait_ready(self.ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Send OPTIONS over UDP until a SIP response comes back (bounded)."""
        deadline = time.monotonic() + timeout
        attempt = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((HOST, 0))
            sock.settimeout(0.25)
            local_port = sock.getsockname()[1]
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise ServerError(
                        f"the server exited with status {self.proc.returncode} before "
                        f"answering OPTIONS\ncommand: {' '.join(self.command())}\n"
                        f"--- server log (tail) ---\n{self.log_tail()}")
                attempt += 1
                sock.sendto(options_request(HOST, self.port, local_port, attempt),
                            (HOST, self.port))
                try:
                    data, _ = sock.recvfrom(65535)
                except socket.timeout:
                    continue
                except ConnectionRefusedError:      # ICMP port unreachable: not yet up
                    time.sleep(0.1)
                    continue
                if data.startswith(b"SIP/2.0 "):
                    break
            else:
                raise ServerError(
                    f"the server did not answer OPTIONS on udp {HOST}:{self.port} within "
                    f"{timeout:.0f} s ({attempt} tries)\ncommand: {' '.join(self.command())}\n"
                    f"--- server log (tail) ---\n{self.log_tail()}")
        # TCP should be listening by now as well
        while time.monotonic() < deadline + 2:
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise ServerError(f"the server answers on UDP but does not accept TCP on "
                          f"{HOST}:{self.port}\n--- server log (tail) ---\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> int | None:
        self.returncode = stop_process(self.proc, timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return self.returncode

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the log
    def log_text(self) -> str:
        return read_text(self.log_path)

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_text(), lines)

    def wait_for_log(self, pattern: str, timeout: float = 5.0) -> re.Match | None:
        """Poll the log until ``pattern`` (a regexp) matches; None on timeout."""
        regex = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.log_text())
            if match or time.monotonic() >= deadline:
                return match
            time.sleep(0.1)

    def dtmf_digits(self, call_id: str | None = None) -> list[tuple[str, int | None]]:
        """(digit, duration ms) for each ``dtmf digit=D duration=MS call=CALLID`` line."""
        found = []
        for match in re.finditer(r"dtmf digit=(\S+)(?: duration=(\d+))?[^\n]*?"
                                 r"(?: call=(\S+))?\s*$", self.log_text(), re.M):
            if call_id is not None and match.group(3) not in (None, call_id):
                continue
            found.append((match.group(1),
                          int(match.group(2)) if match.group(2) else None))
        return found

    def call_ended(self, call_id: str, timeout: float = 5.0) -> dict[str, str] | None:
        """The ``call ended call=CALLID ... key=value ...`` line as a dict (None if the
        server did not log it within ``timeout``)."""
        match = self.wait_for_log(r"call ended call=" + re.escape(call_id) + r"(?=\s|$)(.*)$",
                                  timeout)
        if match is None:
            return None
        return dict(re.findall(r"(\w+)=(\S+)", match.group(1)))


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def options_request(host: str, port: int, local_port: int, attempt: int = 1) -> bytes:
    tag = uuid.uuid4().hex[:10]
    return (
        f"OPTIONS sip:ping@{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{local_port};branch=z9hG4bK-ready-{tag}-{attempt};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:runner@{host}:{local_port}>;tag={tag}\r\n"
        f"To: <sip:ping@{host}:{port}>\r\n"
        f"Call-ID: ready-{tag}@{host}\r\n"
        f"CSeq: {attempt} OPTIONS\r\n"
        f"Accept: application/sdp\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


# --------------------------------------------------------------------------- SIPp


@dataclass
class SippResult:
    scenario: str
    command: list[str]
    returncode: int | None
    timed_out: bool
    rundir: Path
    messages: list[SipMessage]
    counts: dict[str, int]
    errors: str
    logs: str
    screen: str
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def received(self, status: int | None = None, method: str | None = None) -> list[SipMessage]:
        """Messages SIPp received; ``status`` picks responses with that code, ``method``
        picks requests of that method, or responses whose CSeq has it."""
        return self._pick("received", status, method)

    def sent(self, status: int | None = None, method: str | None = None) -> list[SipMessage]:
        return self._pick("sent", status, method)

    def _pick(self, direction, status, method) -> list[SipMessage]:
        out = []
        for msg in self.messages:
            if msg.direction != direction:
                continue
            if status is not None and msg.status != status:
                continue
            if method is not None and msg.method != method:
                continue
            out.append(msg)
        return out

    def requests_received(self, method: str) -> list[SipMessage]:
        return [m for m in self.messages
                if m.direction == "received" and not m.is_response and m.method == method]

    def responses_received(self, method: str | None = None) -> list[SipMessage]:
        return [m for m in self.messages if m.direction == "received" and m.is_response
                and (method is None or m.cseq_method == method)]

    @property
    def call_id(self) -> str | None:
        for msg in self.messages:
            if msg.call_id:
                return msg.call_id
        return None

    def count(self, key: str) -> int:
        """A value of the -trace_counts file, e.g. ``count('4_200_Retrans')``; the key's
        leading index may be left out (``'200_Retrans'`` sums all 200 recv elements)."""
        if key in self.counts:
            return self.counts[key]
        return sum(v for k, v in self.counts.items() if k.split("_", 1)[-1] == key)

    def diagnostics(self, lines: int = 40) -> str:
        parts = [f"SIPp scenario {self.scenario}: exit status {self.returncode}"
                 + (" (killed after its time limit)" if self.timed_out else "")
                 + f"  [{_sipp_status(self.returncode)}]",
                 f"command: {' '.join(self.command)}",
                 f"run directory: {self.rundir}"]
        if self.errors.strip():
            parts.append("--- SIPp error log (tail) ---\n" + tail(self.errors, lines))
        if self.logs.strip():
            parts.append("--- SIPp <log> actions ---\n" + tail(self.logs, lines))
        if self.messages:
            parts.append("--- SIP messages seen by SIPp ---\n"
                         + tail("\n".join(m.summary() for m in self.messages), lines))
        else:
            parts.append("--- SIPp output (tail) ---\n" + tail(self.output, 20))
        return "\n".join(parts)


def _sipp_status(code: int | None) -> str:
    return {
        0: "all calls successful",
        1: "at least one call failed",
        97: "exit on internal command",
        99: "normal exit without calls processed",
        255: "fatal error (-1)",
        254: "fatal error binding a socket (-2)",
        None: "did not finish",
    }.get(code, "see SIPp's documentation")


def run_sipp(scenario: str, rundir: Path | str, *, remote_port: int | None = None,
             local_port: int | None = None, media_port: int | None = None,
             transport: str = "udp", calls: int = 1, timeout: float = 30.0,
             extra_args: Sequence[str] = (), background: bool = False,
             timeout_error: bool = True):
    """Run one SIPp scenario from ``sipp/`` (name with or without .xml) against
    127.0.0.1:remote_port (UAC) or, with remote_port None, as a UAS on local_port.
    ``timeout`` (whole seconds) is SIPp's global -timeout; with timeout_error (the
    default) reaching it fails the run.

    The scenario is copied into ``rundir`` next to a ``pcap`` link to SIPp's captures,
    and SIPp runs there, so all its trace files land in ``rundir``.  Returns a
    SippResult, or with background=True a SippProcess (call .finish()).
    """
    sipp = require_tool("sipp")
    rundir = Path(rundir)
    rundir.mkdir(parents=True, exist_ok=True)
    name = scenario[:-4] if scenario.endswith(".xml") else scenario
    source = SIPP_DIR / f"{name}.xml"
    if not source.is_file():
        raise FileNotFoundError(source)
    shutil.copyfile(source, rundir / source.name)
    link = rundir / "pcap"
    if not link.exists():
        try:
            link.symlink_to(pcap_dir(), target_is_directory=True)
        except MissingTool:
            pass      # only the media scenarios need it; they check for it themselves
    if local_port is None:
        local_port = free_port(tcp=True)
    if media_port is None:
        media_port = free_udp_block(4)
    cmd = [sipp]
    if remote_port is not None:
        cmd.append(f"{HOST}:{remote_port}")
    cmd += ["-sf", source.name, "-m", str(calls), "-l", str(calls),
            "-i", HOST, "-p", str(local_port), "-mp", str(media_port),
            "-t", {"udp": "u1", "tcp": "t1"}[transport],
            "-nostdin",
            "-trace_err", "-error_file", "errors.log",
            "-trace_msg", "-message_file", "messages.log",
            "-trace_logs", "-log_file", "actions.log",
            "-trace_screen", "-screen_file", "screen.log",
            "-trace_stat", "-stf", "stat.csv",
            "-trace_counts",
            "-timeout", f"{max(1, int(timeout))}s"]
    if timeout_error:
        cmd.append("-timeout_error")      # SIPp's global timeout fails the run
    cmd += list(extra_args)
    out = open(rundir / "sipp.out", "wb")
    proc = subprocess.Popen(cmd, cwd=rundir, stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT)
    handle = SippProcess(name, cmd, proc, out, rundir, local_port, media_port, timeout)
    if background:
        return handle
    return handle.finish()


@dataclass
class SippProcess:
    scenario: str
    command: list[str]
    proc: subprocess.Popen
    out: object
    rundir: Path
    local_port: int
    media_port: int
    timeout: float

    def wait_listening(self, timeout: float = 10.0) -> bool:
        """For a UAS: wait until SIPp has bound its SIP port."""
        return wait_udp_bound(self.local_port, self.proc, timeout)

    def finish(self, grace: float = 15.0) -> SippResult:
        """Wait for SIPp (its own -timeout plus ``grace``), stop it if it overstays,
        and collect what it wrote."""
        timed_out = False
        try:
            self.proc.wait(timeout=self.timeout + grace)
        except subprocess.TimeoutExpired:
            timed_out = True
        stop_process(self.proc, timeout=5, sig=signal.SIGINT)
        self.out.close()
        return collect_sipp(self.scenario, self.command, self.proc.returncode, timed_out,
                            self.rundir)

    def kill(self) -> None:
        stop_process(self.proc, timeout=5, sig=signal.SIGINT)
        self.out.close()


def collect_sipp(scenario: str, command: list[str], returncode: int | None,
                 timed_out: bool, rundir: Path) -> SippResult:
    counts: dict[str, int] = {}
    for path in sorted(rundir.glob(f"{scenario}_*_counts.csv")):
        rows = list(csv.reader(read_text(path).splitlines(), delimiter=";"))
        if len(rows) >= 2:
            for key, value in zip(rows[0][2:], rows[-1][2:]):
                if key:
                    try:
                        counts[key] = int(value)
                    except ValueError:
                        pass
    return SippResult(
        scenario=scenario, command=command, returncode=returncode, timed_out=timed_out,
        rundir=rundir,
        messages=parse_message_log(read_text(rundir / "messages.log")),
        counts=counts,
        errors=read_text(rundir / "errors.log"),
        logs=read_text(rundir / "actions.log"),
        screen=read_text(rundir / "screen.log"),
        output=read_text(rundir / "sipp.out"),
    )


# --------------------------------------------------------------------------- tshark


@dataclass
class RtpPacket:
    time: float
    src_port: int
    dst_port: int
    payload_type: int | None
    seq: int | None
    timestamp: int | None
    ssrc: str | None
    marker: bool
    payload_len: int
    event: int | None = None


@dataclass
class RtcpPacket:
    time: float
    src_port: int
    dst_port: int
    packet_types: list[int]
    malformed: bool


class Capture:
    """tshark on the loopback interface, written to a file, read back with decode-as.

    Usage::

        with Capture(rundir, f"udp portrange {a}-{b}") as cap:
            ...
        packets = cap.rtp(decode_ports=[sipp_media_port])
    """

    def __init__(self, rundir: Path | str, bpf: str, name: str = "capture.pcapng",
                 interface: str = "lo") -> None:
        self.rundir = Path(rundir)
        self.rundir.mkdir(parents=True, exist_ok=True)
        self.bpf = bpf
        self.path = self.rundir / name
        self.interface = interface
        self.proc: subprocess.Popen | None = None
        self._err_path = self.rundir / (name + ".tshark.log")
        self._err = None

    def start(self, timeout: float = 20.0) -> "Capture":
        tshark = require_tool("tshark")
        self._err = open(self._err_path, "wb")
        self.proc = subprocess.Popen(
            [tshark, "-i", self.interface, "-f", self.bpf, "-w", str(self.path), "-q"],
            cwd=self.rundir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self._err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Capturing on" in read_text(self._err_path):
                time.sleep(0.2)      # the message comes just before the loop starts
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        err = read_text(self._err_path)
        self.stop()
        raise RuntimeError(f"tshark did not start capturing on {self.interface} "
                           f"within {timeout:.0f} s:\n{tail(err, 20)}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            time.sleep(0.3)          # let the last packets reach the capture
        stop_process(self.proc, timeout=10, sig=signal.SIGINT)
        if self._err is not None:
            self._err.close()
            self._err = None

    def __enter__(self) -> "Capture":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _fields(self, decode: Iterable[str], display_filter: str, fields: Sequence[str]
                ) -> list[list[str]]:
        tshark = require_tool("tshark")
        cmd = [tshark, "-r", str(self.path), "-n"]
        for rule in decode:
            cmd += ["-d", rule]
        cmd += ["-Y", display_filter, "-T", "fields", "-E", "separator=\t",
                "-E", "occurrence=a", "-E", "aggregator=,"]
        for name in fields:
            cmd += ["-e", name]
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"tshark -r failed ({done.returncode}): {done.stderr[-2000:]}")
        return [line.split("\t") for line in done.stdout.splitlines() if line.strip()]

    def rtp(self, decode_ports: Iterable[int]) -> list[RtpPacket]:
        """RTP packets to or from any of ``decode_ports`` (decoded as RTP)."""
        decode = [f"udp.port=={p},rtp" for p in decode_ports]
        rows = self._fields(decode, "rtp", [
            "frame.time_epoch", "udp.srcport", "udp.dstport", "rtp.p_type", "rtp.seq",
            "rtp.timestamp", "rtp.ssrc", "rtp.marker", "udp.length", "rtp.cc",
            "rtp.ext", "rtp.ext.len", "rtp.padding", "rtpevent.event_id"])
        packets = []
        for row in rows:
            row += [""] * (14 - len(row))
            header = 12 + 4 * _int(row[9], 0)
            if row[10] in ("1", "True"):
                header += 4 + 4 * _int(row[11], 0)
            packets.append(RtpPacket(
                time=float(row[0]), src_port=int(row[1]), dst_port=int(row[2]),
                payload_type=_int(row[3]), seq=_int(row[4]), timestamp=_int(row[5]),
                ssrc=row[6] or None, marker=row[7] in ("1", "True"),
                payload_len=max(0, _int(row[8], 8) - 8 - header),
                event=_int(row[13])))
        return packets

    def rtcp(self, decode_ports: Iterable[int]) -> list[RtcpPacket]:
        """RTCP packets to or from any of ``decode_ports`` (decoded as RTCP)."""
        decode = [f"udp.port=={p},rtcp" for p in decode_ports]
        rows = self._fields(decode, "rtcp", [
            "frame.time_epoch", "udp.srcport", "udp.dstport", "rtcp.pt", "_ws.malformed",
            "_ws.expert.severity"])
        packets = []
        for row in rows:
            row += [""] * (6 - len(row))
            types = [_int(p) for p in row[3].split(",") if p.strip()]
            packets.append(RtcpPacket(
                time=float(row[0]), src_port=int(row[1]), dst_port=int(row[2]),
                packet_types=[t for t in types if t is not None],
                malformed=bool(row[4].strip()) or "error" in row[5].lower()))
        return packets


def _int(text: str, default: int | None = None) -> int | None:
    text = (text or "").split(",")[0].strip()
    if not text:
        return default
    try:
        return int(text, 0) if text.startswith("0x") else int(text)
    except ValueError:
        return default


def audio_seconds(packets: Sequence[RtpPacket], bytes_per_second: int = 8000) -> float:
    """Audio carried by G.711 packets (one byte a sample at 8 kHz)."""
    return sum(p.payload_len for p in packets) / bytes_per_second


# --------------------------------------------------------------------------- a caller


def run_caller(args: Sequence[str], rundir: Path | str, timeout: float = 60.0
               ) -> tuple[int | None, str]:
    """``python -m rvoip_twisted <args>`` with a time limit; (exit status, output)."""
    rundir = Path(rundir)
    rundir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONUNBUFFERED"] = "1"
    log_path = rundir / "caller.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "rvoip_twisted", *args],
                                cwd=rundir, env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        code = proc.returncode
        stop_process(proc, timeout=5)
    return code, read_text(log_path)


def write_tone_wav(path: Path | str, seconds: float = 2.0, hz: float = 440.0,
                   rate: int = 8000) -> Path:
    """A mono 16-bit WAV with a sine tone (for --play)."""
    import math
    import struct
    import wave
    path = Path(path)
    frames = int(seconds * rate)
    data = b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * hz * i / rate)))
                    for i in range(frames))
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(data)
    return path
