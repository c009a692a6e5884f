"""Shared pieces of the benchmarks: CPU pinning, /proc figures, percentiles, the
benchmark server (``bench/server.py``, started as a process and asked for its
tables over a control socket), tables and JSON.

Everything binds 127.0.0.1; every process started here is stopped here (by its
own pid) whatever happens, and every wait is bounded.
"""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

sys.path.insert(0, str(REPO_ROOT / "sipp"))
import runner  # noqa: E402  (sipp/runner.py: ports, process stopping, OPTIONS ping)

HOST = runner.HOST
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- CPUs


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def allowed_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return list(range(os.cpu_count() or 1))


def pin(cpu: int | None) -> list[str]:
    """``taskset -c CPU`` (the command is exec'ed, so the pid stays the child's), or
    nothing when pinning is off or the machine has a single CPU."""
    if cpu is None:
        return []
    cpus = allowed_cpus()
    if len(cpus) < 2:
        return []
    return ["taskset", "-c", str(cpus[cpu % len(cpus)])]


def _die_with_parent():  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM this child if the benchmark runner dies (even by SIGKILL), so
    no server or SIPp outlives it; kept across taskset's exec."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)     # PR_SET_PDEATHSIG
    except Exception:
        pass


def child_options() -> dict:
    """Extra ``subprocess.Popen`` arguments for every process the benchmarks start."""
    if sys.platform.startswith("linux"):
        return {"preexec_fn": _die_with_parent}
    return {}


# --------------------------------------------------------------------------- /proc


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, in seconds (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_runq_wait_seconds(pid: int) -> float | None:
    """Time the process spent runnable but waiting for a CPU (other processes on its
    CPU): the second field of /proc/PID/schedstat, in seconds."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return total / 1e9


def proc_rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def loadavg() -> list[float]:
    try:
        return [float(x) for x in open("/proc/loadavg").read().split()[:3]]
    except OSError:  # pragma: no cover
        return []


def machine_steal_seconds() -> float | None:
    """CPU time the hypervisor took from this VM, all CPUs (/proc/stat "steal")."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class CpuMeter:
    """CPU % of one process (100 = one core) between start() and stop(); also the
    % of the time it was runnable but waiting for its CPU (``wait_pct``: how much
    other processes on the machine got in its way), and the machine's steal time
    (``steal_pct``, 100 = one CPU: what the hypervisor took from this VM; steal
    shows up as stalls and jitter no change in the code can remove)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.t0 = self.c0 = self.w0 = self.s0 = None
        self.wait_pct = None
        self.steal_pct = None

    def start(self) -> "CpuMeter":
        self.t0 = time.monotonic()
        self.c0 = proc_cpu_seconds(self.pid)
        self.w0 = proc_runq_wait_seconds(self.pid)
        self.s0 = machine_steal_seconds()
        return self

    def stop(self) -> float | None:
        c1 = proc_cpu_seconds(self.pid)
        w1 = proc_runq_wait_seconds(self.pid)
        s1 = machine_steal_seconds()
        wall = time.monotonic() - self.t0
        if w1 is not None and self.w0 is not None and wall > 0:
            self.wait_pct = round(100.0 * (w1 - self.w0) / wall, 1)
        if s1 is not None and self.s0 is not None and wall > 0:
            self.steal_pct = round(100.0 * (s1 - self.s0) / wall, 1)
        if c1 is None or self.c0 is None or wall <= 0:
            return None
        return round(100.0 * (c1 - self.c0) / wall, 1)


# --------------------------------------------------------------------------- numbers


def percentile(sorted_values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def rnd(value, digits=2):
    return None if value is None else round(value, digits)


# --------------------------------------------------------------------------- the server


class BenchServer:
    """The server under test: ``python -m bench.server`` = the ``twistd rvoip`` service
    (built by ``rvoip_twisted.tap`` from the same options) plus a control socket that
    answers ``stats`` (``SIPServer.stats()``, RSS, fds, media clock figures) and
    ``profile-start`` / ``profile-stop PATH`` (cProfile of the reactor thread).

    Usage::

        with BenchServer(workdir, cpu=0) as srv:
            srv.port, srv.stats(), srv.cpu_seconds(), srv.rss_kb()
    """

    def __init__(self, workdir: Path | str, *, cpu: int | None = 0, app: str = "echo",
                 rtp_ports: tuple[int, int] = (10000, 40000), t1: float = 0.5,
                 log_level: str = "info", extra_args: Sequence[str] = (),
                 ready_timeout: float = 20.0, tcp: bool = False):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cpu = cpu
        self.app = app
        self.rtp_ports = rtp_ports
        self.t1 = t1
        self.log_level = log_level
        self.extra_args = list(extra_args)
        self.ready_timeout = ready_timeout
        self.tcp = tcp      # listen on TCP too, on the same port number
        self.port = runner.free_port(tcp=tcp)
        self.control_port = runner.free_port(tcp=False)
        self.log_path = self.workdir / "server.log"
        self.proc: subprocess.Popen | None = None
        self._out = None

    def command(self) -> list[str]:
        return pin(self.cpu) + [
            sys.executable, "-m", "bench.server",
            "--control-port", str(self.control_port),
            "--log-file", str(self.log_path),
            "--",
            "--listen", f"udp:{self.port}:interface={HOST}",
        ] + (["--listen", f"tcp:{self.port}:interface={HOST}"] if self.tcp else []) + [
            "--app", self.app,
            "--rtp-ports", f"{self.rtp_ports[0]}-{self.rtp_ports[1]}",
            "--t1", repr(self.t1),
            "--log-level", self.log_level,
        ] + self.extra_args

    def start(self) -> "BenchServer":
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env["PYTHONUNBUFFERED"] = "1"
        self._out = open(self.workdir / "server.out", "wb")
        self.proc = subprocess.Popen(self.command(), cwd=REPO_ROOT, env=env,
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=subprocess.STDOUT, **child_options())
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise runner.ServerError(
                    f"the benchmark server exited ({self.proc.returncode}):\n"
                    + runner.tail(runner.read_text(self.workdir / "server.out"), 30))
            try:
                self.control("ping", timeout=0.3)
                break
            except (OSError, TimeoutError):
                time.sleep(0.1)
        else:
            raise runner.ServerError("the benchmark server's control socket did not answer")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((HOST, 0))
            sock.settimeout(0.3)
            attempt = 0
            while time.monotonic() < deadline:
                attempt += 1
                sock.sendto(runner.options_request(HOST, self.port, sock.getsockname()[1],
                                                   attempt), (HOST, self.port))
                try:
                    data, _ = sock.recvfrom(65535)
                except (socket.timeout, ConnectionRefusedError):
                    continue
                if data.startswith(b"SIP/2.0 "):
                    return
        raise runner.ServerError(f"the benchmark server did not answer OPTIONS on {self.port}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def control(self, command: str, timeout: float = 10.0) -> dict:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.connect((HOST, self.control_port))
            sock.send(command.encode())
            try:
                data = sock.recv(65535)
            except socket.timeout:
                raise TimeoutError(f"no answer to {command!r} from the server's control socket")
        return json.loads(data)

    def stats(self, timeout: float = 10.0) -> dict:
        return self.control("stats", timeout)

    def cpu_seconds(self) -> float | None:
        return proc_cpu_seconds(self.pid)

    def rss_kb(self) -> int | None:
        return proc_rss_kb(self.pid)

    def wait_drained(self, timeout: float, keys: Sequence[str] = (
            "server", "client", "dialogs", "pending_2xx", "calls", "media_sessions",
            "rtp_ports_in_use"), poll: float = 0.5) -> tuple[bool, dict, float]:
        """Poll the tables until every ``keys`` figure is 0 or ``timeout`` passes:
        (drained, last stats, seconds waited)."""
        start = time.monotonic()
        stats: dict = {}
        while True:
            try:
                stats = self.stats(timeout=5)
            except (OSError, TimeoutError):
                pass
            if stats and all(not stats.get(k) for k in keys):
                return True, stats, time.monotonic() - start
            if time.monotonic() - start >= timeout or self.proc.poll() is not None:
                return False, stats, time.monotonic() - start
            time.sleep(poll)

    def stop(self, timeout: float = 15.0) -> int | None:
        code = runner.stop_process(self.proc, timeout)
        if self._out is not None:
            self._out.close()
            self._out = None
        return code

    def __enter__(self) -> "BenchServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- output


def table(headers: Sequence[str], rows: Sequence[Sequence], title: str | None = None) -> str:
    def cell(v):
        if v is None:
            return "-"
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            if v == 0:
                return "0"
            if abs(v) >= 100:
                return f"{v:,.0f}"
            if abs(v) >= 10:
                return f"{v:.1f}"
            return f"{v:.2f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    lines = []
    if title:
        lines.append(title)
    last = len(headers) - 1 if headers[-1] in ("clean", "pass") else 0
    left = {0, last}
    lines.append("  ".join(h.ljust(w) if i in left else h.rjust(w)
                           for i, (h, w) in enumerate(zip(headers, widths))).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(c.ljust(w) if i in left else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    return "\n".join(lines)


def environment() -> dict:
    commit = None
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=5)
        if done.returncode == 0:
            commit = done.stdout.strip()
        done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        modified = [line[3:] for line in done.stdout.splitlines()] if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        modified = None
    try:
        from rvoip_twisted.media import g711
        numpy = getattr(g711, "_np", None) is not None
    except Exception:  # pragma: no cover
        numpy = None
    sipp_version = None
    try:
        out = subprocess.run(["sipp", "-v"], capture_output=True, text=True, timeout=5)
        for line in (out.stdout + out.stderr).splitlines():
            if "SIPp v" in line:
                sipp_version = line.strip()
                break
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {
        "commit": commit,
        "modified_files": modified,     # uncommitted changes the figures include
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "numpy_g711": numpy,
        "cpus": cpu_count(),
        "pinned": cpu_count() >= 2,
        "machine": platform.machine(),
        "kernel": platform.release(),
        "sipp": sipp_version,
        "loadavg_start": loadavg(),
    }


def write_json(results_dir: Path, name: str, data: dict) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = results_dir / f"{name}-{stamp}.json"
    n = 1
    while path.exists():
        n += 1
        path = results_dir / f"{name}-{stamp}-{n}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)
    return path


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
