"""Interop with real softphones (GitHub issue 6, part 2): baresip against the rvoip
server, both ways, over 127.0.0.1 only.

* ``test_baresip_calls_echo``: baresip (headless, audio from a WAV written at test
  time through its ``aufile`` module, config in a temp dir) calls the server's echo
  app, stays 5 s after "Call established" and hangs up (SIGINT: baresip's
  ``ua_stop_all`` sends the BYE).  Checks: baresip logged the call established and
  terminated; tshark on ``lo`` saw RTP both ways between the call's media ports
  (> 100 packets each way); the server logged ``call ended call=... codec=...
  sent=N received=N lost=N loss=...% jitter=...ms rtt=... mos=...`` with N > 0.
* ``test_server_calls_baresip``: baresip listens with an auto-answer account
  (``answermode=auto;regint=0``, tone from ``ausine``); ``python -m rvoip_twisted
  call sip:bs@127.0.0.1:PORT --duration 4 --local-port P`` must exit 0, print
  ``answered`` and a ``quality:`` line with received > 0; baresip logged the call
  established and terminated; tshark saw RTP both ways.
* ``test_linphonec_calls_echo``: the same as the first test with Linphone's console
  client ``linphonec`` (Debian ``linphone-cli``): no sound card (``soundcard use
  files``, a WAV played into the call), driven through its stdin (``call URI``,
  ``terminate``, ``quit``).

Headless facts these tests rely on (see also sipp/README.md for baresip):

* baresip 1.0.0: the first SIGINT runs ``ua_stop_all``, which sends the BYE and then
  quits (logs "terminated by signal 2", "Call with ... terminated"); ``-t N`` is kept
  only as a backstop.  ``aufile`` needs ``ausrc_srate 8000`` / ``ausrc_channels 1`` for
  an 8 kHz mono WAV, ``ausine`` 48000 / 2.
* linphonec 5.1 (Debian ``linphone-cli``) reads commands from a pipe on stdin and
  prints its call events on stdout ("Call 1 with URI connected.", "Media streams
  established ...", "Call 1 with URI ended (No error).").  In a container it needs
  ``[sip] auto_net_state_mon=0``, otherwise it never considers the network up and opens
  no SIP socket; ``bind_address=127.0.0.1`` binds its SIP socket to loopback; its
  database lives under ``$HOME`` (set to the test's temp dir).
* Neither peer has a setting to bind its RTP sockets to one address (baresip's RTP and
  linphonec's RTP/RTCP sockets are on the wildcard address); all traffic still goes to
  and from 127.0.0.1, as the SDP c= lines say.

A missing peer (baresip, linphonec, tshark) FAILS the test, naming the package to
install (``.ci/run`` installs them); nothing is skipped.  Every wait is bounded, every
process started here is stopped here (terminate, wait, kill) in ``finally`` blocks, and
every port is a free one picked at run time.

The helpers (free ports, the server process and its readiness check, the tshark capture)
come from ``sipp/runner.py``.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Sequence

import pytest

from sipp import runner

pytestmark = pytest.mark.interop

HOST = runner.HOST
BARESIP_MODULES = Path("/usr/lib/baresip/modules")
INSTALL = {
    "baresip": "apt-get install -y baresip",
    "linphonec": "apt-get install -y linphone-cli",
    "tshark": "DEBIAN_FRONTEND=noninteractive apt-get install -y tshark",
}
MIN_PACKETS = 100          # per direction, for ~4-5 s of 20 ms G.711 packets (200-250)
CALL_SECONDS = 5


# --------------------------------------------------------------------------- helpers


def need(tool: str) -> str:
    """The peer binary's path, or FAIL (never skip) saying which package brings it."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed (not on PATH): {INSTALL[tool]}  "
                    f"(.ci/run installs it)", pytrace=False)
    return path


def clean_log(text: str) -> str:
    """A softphone's stdout without the status lines it rewrites with ``\\r``."""
    lines = []
    for line in text.replace("\r", "\n").splitlines():
        line = line.rstrip()
        if not line or re.match(r"^\[\d+:\d\d:\d\d\] audio=", line):
            continue
        lines.append(line)
    return "\n".join(lines)


class Peer:
    """A softphone process with its stdout (and stderr) in a log file."""

    name = "peer"
    stop_signal = signal.SIGTERM

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.command: list[str] = []

    def _spawn(self, cmd: Sequence[str], stdin=subprocess.DEVNULL,
               env: dict | None = None) -> None:
        self.command = list(cmd)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.command, cwd=self.workdir, stdin=stdin,
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def log_text(self) -> str:
        return clean_log(runner.read_text(self.log_path))

    def wait_for(self, pattern: str, timeout: float, what: str = "",
                 diag: Callable[[], str] | None = None) -> re.Match:
        """Poll the log until ``pattern`` matches; fail (with ``diag()``, by default the
        log) after ``timeout`` or if the process exits first."""
        diag = diag or self.diagnostics
        regex = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.log_text())
            if match:
                return match
            if self.proc is not None and self.proc.poll() is not None:
                time.sleep(0.2)          # its last words
                match = regex.search(self.log_text())
                if match:
                    return match
                pytest.fail(f"{self.name} exited with status {self.proc.returncode} "
                            f"before logging {what or pattern!r}\n{diag()}",
                            pytrace=False)
            if time.monotonic() >= deadline:
                pytest.fail(f"{self.name} did not log {what or pattern!r} within "
                            f"{timeout:.0f} s\n{diag()}", pytrace=False)
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        code = runner.stop_process(self.proc, timeout=timeout, sig=self.stop_signal)
        if self.proc is not None and self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def diagnostics(self, lines: int = 50) -> str:
        return (f"{self.name} command: {' '.join(self.command)}\n"
                f"--- {self.name} log (tail) ---\n{runner.tail(self.log_text(), lines)}")


class Baresip(Peer):
    """baresip 1.0.0, headless: config dir in ``workdir``, no sound card, no stdio."""

    name = "baresip"
    stop_signal = signal.SIGINT       # its handler hangs up (BYE) before quitting

    def __init__(self, workdir: Path, *, user: str = "bs",
                 audio_source: str = "ausine,440") -> None:
        super().__init__(workdir)
        self.binary = need("baresip")
        if not (BARESIP_MODULES / "g711.so").is_file():
            pytest.fail(f"baresip's modules are not in {BARESIP_MODULES}: "
                        f"{INSTALL['baresip']}", pytrace=False)
        self.user = user
        self.sip_port = runner.free_port(tcp=True)
        self.rtp_low = runner.free_udp_block(4)
        self.rtp_high = self.rtp_low + 3
        self.confdir = self.workdir / "config"
        self.confdir.mkdir(exist_ok=True)
        if audio_source.startswith("ausine"):
            rate, channels = 48000, 2        # ausine makes 48 kHz stereo only
        else:
            rate, channels = 8000, 1         # aufile: the WAV's own format
        (self.confdir / "config").write_text(
            "poll_method        epoll\n"
            f"sip_listen         {HOST}:{self.sip_port}\n"
            f"net_interface      {HOST}\n"
            f"rtp_ports          {self.rtp_low}-{self.rtp_high}\n"
            f"audio_source       {audio_source}\n"
            f"ausrc_srate        {rate}\n"
            f"ausrc_channels     {channels}\n"
            "audio_player       aufile,/dev/null\n"
            "audio_alert        aufile,/dev/null\n"
            "rtp_stats          yes\n"
            f"module_path        {BARESIP_MODULES}\n"
            "module             g711.so\n"
            "module             aufile.so\n"
            "module             ausine.so\n"
            "module_tmp         account.so\n"
            "module_app         menu.so\n")
        (self.confdir / "accounts").write_text(
            f"<sip:{user}@{HOST}:{self.sip_port};transport=udp>"
            ";regint=0;answermode=auto\n")
        (self.confdir / "contacts").write_text("")

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@{HOST}:{self.sip_port}"

    def start(self, *, dial: str | None = None, quit_after: int = 30) -> "Baresip":
        """Start baresip; ``quit_after`` (its ``-t``) is only a backstop."""
        cmd = [self.binary, "-f", str(self.confdir), "-t", str(quit_after)]
        if dial:
            cmd += ["-e", f"/dial {dial}"]
        self._spawn(cmd)
        self.wait_for(r"baresip is ready", 10, "baresip is ready")
        if not runner.wait_udp_bound(self.sip_port, self.proc, timeout=5):
            pytest.fail(f"baresip did not bind udp {HOST}:{self.sip_port}\n"
                        f"{self.diagnostics()}", pytrace=False)
        return self

    def hangup(self, timeout: float = 10.0, diag: Callable[[], str] | None = None) -> None:
        """baresip's SIGINT handler runs ``ua_stop_all``: BYE for the call, then exit."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
        self.wait_for(r"Call with \S+ terminated", timeout, "Call with ... terminated", diag)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass


class Linphonec(Peer):
    """Linphone's console client, headless: ``soundcard use files`` (no sound card, a
    WAV played into the call), driven by commands on its stdin; HOME in ``workdir``
    (it keeps a database under ~/.local/share/linphone)."""

    name = "linphonec"

    def __init__(self, workdir: Path, *, user: str = "lp") -> None:
        super().__init__(workdir)
        self.binary = need("linphonec")
        self.user = user
        self.sip_port = runner.free_port(tcp=True)
        self.rtp_low = runner.free_udp_block(4)
        self.rtp_high = self.rtp_low + 3
        self.home = self.workdir / "home"
        (self.home / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
        self.rc = self.workdir / "linphonerc"
        # auto_net_state_mon=0: without it linphonec 5.1 never thinks the network is up
        # in a container and opens no SIP socket; sip_tcp_port/sip_tls_port=0: none;
        # guess_hostname=0: the From host is the contact's, not some global address.
        self.rc.write_text(
            "[sip]\n"
            f"sip_port={self.sip_port}\n"
            "sip_tcp_port=0\n"
            "sip_tls_port=0\n"
            f"bind_address={HOST}\n"
            "use_ipv6=0\n"
            "auto_net_state_mon=0\n"
            "guess_hostname=0\n"
            f"contact=<sip:{user}@{HOST}:{self.sip_port}>\n"
            "[rtp]\n"
            f"audio_rtp_port={self.rtp_low}\n"
            "audio_rtcp_mux=0\n"
            "[sound]\n"
            "echocancellation=0\n"
            "[video]\n"
            "enabled=0\n"
            "capture=0\n"
            "display=0\n")

    def start(self) -> "Linphonec":
        env = dict(os.environ, HOME=str(self.home))
        self._spawn([self.binary, "-c", str(self.rc), "-d", "0"], stdin=subprocess.PIPE,
                    env=env)
        if not runner.wait_udp_bound(self.sip_port, self.proc, timeout=10):
            pytest.fail(f"linphonec did not bind udp {HOST}:{self.sip_port}\n"
                        f"{self.diagnostics()}", pytrace=False)
        return self

    def send(self, command: str) -> None:
        """One linphonec command (as typed at its prompt)."""
        if not self.alive():
            pytest.fail(f"linphonec exited (status {self.proc.returncode}) before "
                        f"{command!r}\n{self.diagnostics()}", pytrace=False)
        self.proc.stdin.write((command + "\n").encode())
        self.proc.stdin.flush()

    def quit(self, timeout: float = 10.0) -> None:
        if self.alive():
            self.send("quit")
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass


def rtp_flows(cap: runner.Capture, a_ports: range, b_ports: range
              ) -> collections.Counter:
    """RTP packet counts per (source port, destination port) between the two ranges."""
    packets = cap.rtp(decode_ports=[*a_ports, *b_ports])
    flows: collections.Counter = collections.Counter()
    for pkt in packets:
        if (pkt.src_port in a_ports and pkt.dst_port in b_ports) or \
                (pkt.src_port in b_ports and pkt.dst_port in a_ports):
            flows[(pkt.src_port, pkt.dst_port)] += 1
    return flows


def one_way(flows: collections.Counter, src: range, dst: range) -> int:
    """Packets of the biggest flow from ``src`` ports to ``dst`` ports (the call's)."""
    counts = [n for (s, d), n in flows.items() if s in src and d in dst]
    return max(counts, default=0)


def sip_trace(cap: runner.Capture, ports: Sequence[int]) -> str:
    """One line per SIP message in the capture (for failure messages)."""
    tshark = shutil.which("tshark")
    if tshark is None or not cap.path.exists():
        return "(no capture)"
    cmd = [tshark, "-r", str(cap.path), "-n"]
    for port in ports:
        cmd += ["-d", f"udp.port=={port},sip"]
    cmd += ["-Y", "sip", "-T", "fields", "-e", "frame.time_relative", "-e", "udp.srcport",
            "-e", "udp.dstport", "-e", "sip.Request-Line", "-e", "sip.Status-Line"]
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "(tshark -r timed out)"
    rows = []
    for line in done.stdout.splitlines():
        parts = (line.split("\t") + [""] * 5)[:5]
        rows.append(f"{float(parts[0] or 0):7.3f} {parts[1]} -> {parts[2]}  "
                    f"{parts[3] or parts[4]}")
    return "\n".join(rows) or "(no SIP in the capture)"


def flows_text(flows: collections.Counter) -> str:
    return ", ".join(f"{s}->{d}: {n}" for (s, d), n in sorted(flows.items())) or "none"


def check_call_ended(srv: runner.Server, caller_user: str, diag) -> dict[str, str]:
    """The server's ``call ended`` line for the call from ``caller_user``, checked."""
    match = srv.wait_for_log(r"call (\S+) from sip:" + re.escape(caller_user) + r"@", 5)
    assert match, f"the server did not log the incoming call\n{diag()}"
    call_id = match.group(1)
    ended = srv.call_ended(call_id, timeout=5)
    assert ended is not None, f"the server did not log 'call ended call={call_id}'\n{diag()}"
    for key in ("codec", "sent", "received", "lost", "loss", "jitter", "rtt", "mos"):
        assert key in ended, f"'call ended' has no {key}=: {ended}\n{diag()}"
    assert ended["codec"] in ("PCMU", "PCMA"), ended
    assert int(ended["sent"]) > 0 and int(ended["received"]) > 0, \
        f"no packets in the server's figures: {ended}\n{diag()}"
    assert int(ended["lost"]) >= 0, ended
    assert re.fullmatch(r"[\d.]+%", ended["loss"]), ended
    assert re.fullmatch(r"[\d.]+ms", ended["jitter"]), ended
    assert re.fullmatch(r"\d+(\.\d+)?", ended["mos"]), ended
    return ended


# --------------------------------------------------------------------------- tests


def test_baresip_calls_echo(tmp_path: Path) -> None:
    """baresip -> the echo app: 5 s of audio from a WAV, RTP both ways, quality logged."""
    need("tshark")
    wav = runner.write_tone_wav(tmp_path / "tone.wav", seconds=15.0, hz=440.0)
    with runner.Server(tmp_path / "server", "echo") as srv:
        bs = Baresip(tmp_path / "baresip", user="bs", audio_source=f"aufile,{wav}")
        server_rtp = range(srv.rtp_low, srv.rtp_high + 1)
        peer_rtp = range(bs.rtp_low, bs.rtp_high + 1)
        cap = runner.Capture(
            tmp_path, f"udp portrange {srv.rtp_low}-{srv.rtp_high} or "
                      f"udp portrange {bs.rtp_low}-{bs.rtp_high} or udp port {srv.port}")

        def diag() -> str:
            return (f"{bs.diagnostics()}\n--- SIP seen by tshark ---\n"
                    f"{sip_trace(cap, [srv.port, bs.sip_port])}\n"
                    f"--- server log (tail) ---\n{srv.log_tail(40)}")

        cap.start()
        try:
            bs.start(dial=f"sip:echo@{HOST}:{srv.port}", quit_after=25)
            bs.wait_for(r"Call established", 10, "Call established", diag)
            time.sleep(CALL_SECONDS)
            assert bs.alive(), f"baresip left the call early\n{diag()}"
            bs.hangup(timeout=10, diag=diag)
        finally:
            bs.stop()
            cap.stop()

        log = bs.log_text()
        assert re.search(r"Call established: sip:echo@", log), diag()
        assert re.search(r"incoming rtp for 'audio' established", log), diag()
        ended = re.search(r"Call with sip:echo@\S+ terminated \(duration: (\d+) secs\)", log)
        assert ended and int(ended.group(1)) >= CALL_SECONDS - 1, diag()

        flows = rtp_flows(cap, peer_rtp, server_rtp)
        to_server = one_way(flows, peer_rtp, server_rtp)
        from_server = one_way(flows, server_rtp, peer_rtp)
        assert to_server > MIN_PACKETS and from_server > MIN_PACKETS, (
            f"RTP seen by tshark: baresip -> server {to_server}, server -> baresip "
            f"{from_server} (flows: {flows_text(flows)})\n{diag()}")

        check_call_ended(srv, "bs", diag)


def test_server_calls_baresip(tmp_path: Path) -> None:
    """python -m rvoip_twisted call -> baresip answering automatically."""
    need("tshark")
    bs = Baresip(tmp_path / "baresip", user="bs", audio_source="ausine,440")
    caller_sip = runner.free_port(tcp=True)
    caller_rtp_low = runner.free_udp_block(10)
    caller_rtp = range(caller_rtp_low, caller_rtp_low + 10)
    peer_rtp = range(bs.rtp_low, bs.rtp_high + 1)
    cap = runner.Capture(
        tmp_path, f"udp portrange {caller_rtp.start}-{caller_rtp.stop - 1} or "
                  f"udp portrange {bs.rtp_low}-{bs.rtp_high} or udp port {bs.sip_port}")
    output = ""
    code = None

    def diag() -> str:
        return (f"--- caller output (exit status {code}) ---\n{runner.tail(output, 40)}\n"
                f"{bs.diagnostics()}\n--- SIP seen by tshark ---\n"
                f"{sip_trace(cap, [bs.sip_port, caller_sip])}")

    cap.start()
    try:
        bs.start(quit_after=30)
        code, output = runner.run_caller(
            ["call", bs.uri, "--duration", "4", "--local-port", str(caller_sip),
             "--rtp-ports", f"{caller_rtp.start}-{caller_rtp.stop - 1}", "--timeout", "10"],
            tmp_path / "caller", timeout=20)
        if code == 0:
            bs.wait_for(r"Call with \S+ terminated", 5, "Call with ... terminated", diag)
    finally:
        bs.stop()
        cap.stop()

    assert code == 0, f"the caller exited with {code}\n{diag()}"
    assert re.search(r"^answered\b", output, re.M), diag()
    quality = re.search(r"^quality: .*\breceived=(\d+)", output, re.M)
    assert quality and int(quality.group(1)) > 0, diag()
    sent = re.search(r"^quality: .*\bsent=(\d+)", output, re.M)
    assert sent and int(sent.group(1)) > 0, diag()

    log = bs.log_text()
    assert re.search(r"answering call .* with 200", log), diag()
    assert re.search(r"Call established", log), diag()
    assert re.search(r"Call with \S+ terminated", log), diag()

    flows = rtp_flows(cap, caller_rtp, peer_rtp)
    to_peer = one_way(flows, caller_rtp, peer_rtp)
    from_peer = one_way(flows, peer_rtp, caller_rtp)
    assert to_peer > MIN_PACKETS and from_peer > MIN_PACKETS, (
        f"RTP seen by tshark: caller -> baresip {to_peer}, baresip -> caller {from_peer} "
        f"(flows: {flows_text(flows)})\n{diag()}")


def test_linphonec_calls_echo(tmp_path: Path) -> None:
    """linphonec -> the echo app: 5 s of audio from a WAV, RTP both ways, quality logged."""
    need("tshark")
    wav = runner.write_tone_wav(tmp_path / "tone.wav", seconds=15.0, hz=440.0)
    with runner.Server(tmp_path / "server", "echo") as srv:
        lp = Linphonec(tmp_path / "linphonec", user="lp")
        server_rtp = range(srv.rtp_low, srv.rtp_high + 1)
        peer_rtp = range(lp.rtp_low, lp.rtp_high + 1)
        cap = runner.Capture(
            tmp_path, f"udp portrange {srv.rtp_low}-{srv.rtp_high} or "
                      f"udp portrange {lp.rtp_low}-{lp.rtp_high} or udp port {srv.port}")

        def diag() -> str:
            return (f"{lp.diagnostics()}\n--- SIP seen by tshark ---\n"
                    f"{sip_trace(cap, [srv.port, lp.sip_port])}\n"
                    f"--- server log (tail) ---\n{srv.log_tail(40)}")

        cap.start()
        try:
            lp.start()
            lp.send("soundcard use files")
            lp.send(f"play {wav}")
            lp.send(f"call sip:echo@{HOST}:{srv.port}")
            lp.wait_for(r"Call \d+ with \S+ connected", 10, "Call N with ... connected", diag)
            lp.wait_for(r"Media streams established", 5, "Media streams established", diag)
            time.sleep(CALL_SECONDS)
            assert lp.alive(), f"linphonec exited during the call\n{diag()}"
            lp.send("terminate")
            lp.wait_for(r"Call \d+ with \S+ ended", 10, "Call N with ... ended", diag)
            lp.quit()
        finally:
            lp.stop()
            cap.stop()

        log = lp.log_text()
        assert re.search(r"Call \d+ with sip:echo@\S+ connected", log), diag()
        assert re.search(r"Call \d+ with sip:echo@\S+ ended \(No error\)", log), diag()

        flows = rtp_flows(cap, peer_rtp, server_rtp)
        to_server = one_way(flows, peer_rtp, server_rtp)
        from_server = one_way(flows, server_rtp, peer_rtp)
        assert to_server > MIN_PACKETS and from_server > MIN_PACKETS, (
            f"RTP seen by tshark: linphonec -> server {to_server}, server -> linphonec "
            f"{from_server} (flows: {flows_text(flows)})\n{diag()}")

        check_call_ended(srv, "lp", diag)
