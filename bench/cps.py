"""Benchmark 1: signalling calls per second.

SIPp's built-in UAC (``sipp -sn uac -d 0``: INVITE with SDP / 100? / 180? / 200 / ACK /
pause 0 / BYE / 200, no media) against the echo server pinned to one CPU (SIPp on the
other), stepping the call rate; a step is clean when every call succeeded, SIPp's
retransmissions (sent and received) stay within 1 % of the calls and SIPp achieved
at least 95 % of the asked rate.  The same steps are then run against SIPp's own UAS
(``sipp -sn uas``) on the same CPU, as the ceiling of the box.

Per step: achieved rate, failed calls, retransmissions, call-setup time (SIPp's
response time INVITE -> 200, from ``-trace_rtt``) p50/p99/max, the server's CPU %
(/proc/PID/stat over the step) and its table sizes when the step ended.  After the
last step the server's transaction / dialog / call tables and RTP ports are polled
until they are empty (64*T1 for Timer J/L, plus a margin).  Then, optionally, the
server is profiled (cProfile in-process) under a steady CPS load.
"""

from __future__ import annotations

import csv
import io
import pstats
import shutil
import subprocess
import time
from pathlib import Path

from .common import (
    HOST, BenchServer, CpuMeter, child_options, log, percentile, pin, rnd, runner, table,
)
from .references import BareTwistedUas, SippUas

FULL_STEPS = (100, 250, 500, 1000, 2000, 3000, 4000, 5000, 6000, 8000, 10000, 12000, 15000,
              20000, 25000, 30000)
SMOKE_STEPS = (100,)
RETRANS_LIMIT_PCT = 1.0
MIN_ACHIEVED = 0.95

TARGETS = {"cps_clean": 3000, "setup_p99_ms": 50}
REFERENCES = [
    ("Rust rvoip", "~1,857 cps"),
    ("sippy (Python B2BUA)", "clean at 50 cps"),
    ("bare-bones Twisted UAS", "~10,000 cps"),
]


# --------------------------------------------------------------------------- SIPp


def _last_row(path: Path) -> dict[str, str]:
    text = runner.read_text(path)
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=";") if r]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1]))


def _int(value, default=0) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


def sipp_uac_step(workdir: Path, target_port: int, rate: int, seconds: float,
                  cpu: int | None, server_pid: int | None = None, tcp: bool = False) -> dict:
    """One step: SIPp's uac at ``rate`` calls/s for ``seconds`` against 127.0.0.1:port
    (over UDP, or over one TCP connection with ``tcp``)."""
    sipp = runner.require_tool("sipp")
    workdir.mkdir(parents=True, exist_ok=True)
    calls = max(1, int(round(rate * seconds)))
    local_port = runner.free_port(tcp=tcp)
    media_port = runner.free_udp_block(4)
    limit = max(200, rate * 4)     # open calls at most: 4 s worth
    timeout = int(seconds + 30)
    cmd = pin(cpu) + [
        sipp, f"{HOST}:{target_port}", "-sn", "uac", "-d", "0",
        "-r", str(rate), "-m", str(calls), "-l", str(limit),
        "-i", HOST, "-p", str(local_port), "-mp", str(media_port),
        "-buff_size", "4194304", "-nostdin",
    ] + (["-t", "t1"] if tcp else []) + [
        "-trace_stat", "-stf", "stat.csv", "-fd", "1",
        "-trace_rtt", "-rtt_freq", "1",
        "-trace_counts",
        "-trace_err", "-error_file", "errors.log",
        "-timeout", f"{timeout}s",
    ]
    meter = CpuMeter(server_pid).start() if server_pid else None
    started = time.monotonic()
    with open(workdir / "sipp.out", "wb") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, **child_options())
        timed_out = False
        try:
            proc.wait(timeout=timeout + 15)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            runner.stop_process(proc, timeout=5)
    wall = time.monotonic() - started
    server_cpu = meter.stop() if meter else None
    step = _collect(workdir, rate, calls, proc.returncode, timed_out, wall, server_cpu)
    step["server_runq_wait_pct"] = meter.wait_pct if meter else None
    step["machine_steal_pct"] = meter.steal_pct if meter else None
    return step


def _collect(workdir: Path, rate: int, calls: int, returncode, timed_out: bool,
             wall: float, server_cpu) -> dict:
    stat = _last_row(workdir / "stat.csv")
    counts: dict[str, int] = {}
    for path in workdir.glob("uac_*_counts.csv"):
        counts = {k: _int(v) for k, v in _last_row(path).items() if k and k[0].isdigit()}
    rtts: list[float] = []
    stamps: list[float] = []
    for path in workdir.glob("uac_*_rtt.csv"):
        for line in runner.read_text(path).splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 3 and parts[2].strip() == "1":
                try:
                    stamps.append(float(parts[0]))
                    rtts.append(float(parts[1]))
                except ValueError:
                    pass
    rtts = sorted(int(x) if x.is_integer() else x for x in rtts)
    successful = _int(stat.get("SuccessfulCall(C)"))
    failed = _int(stat.get("FailedCall(C)"))
    retrans_sent = sum(v for k, v in counts.items() if k.endswith("_Retrans")
                       and ("_INVITE_" in k or "_BYE_" in k or "_ACK_" in k))
    retrans_recv = sum(v for k, v in counts.items() if k.endswith("_Retrans")) - retrans_sent
    unexpected = sum(v for k, v in counts.items() if k.endswith("_Unexp"))
    timeouts = sum(v for k, v in counts.items() if k.endswith("_Timeout"))
    retrans = retrans_sent + retrans_recv
    done = successful + failed
    retrans_pct = 100.0 * retrans / done if done else None
    achieved = None
    if len(stamps) >= 2 and max(stamps) > min(stamps):
        achieved = (len(stamps) - 1) / ((max(stamps) - min(stamps)) / 1000.0)
    elif successful:
        achieved = successful / wall
    reasons = []
    if timed_out:
        reasons.append("SIPp timed out")
    if failed:
        reasons.append(f"{failed} failed calls")
    if successful < calls:
        reasons.append(f"{calls - successful} calls not completed")
    if retrans_pct is not None and retrans_pct > RETRANS_LIMIT_PCT:
        reasons.append(f"retransmissions {retrans_pct:.1f} %")
    if achieved is not None and achieved < MIN_ACHIEVED * rate:
        reasons.append(f"achieved {achieved:.0f}/s < {int(MIN_ACHIEVED * 100)} % of target")
    if not successful:
        reasons.append("no call completed")
    return {
        "rate": rate,
        "calls": calls,
        "successful": successful,
        "failed": failed,
        "achieved_cps": rnd(achieved, 1),
        "retransmissions_sent": retrans_sent,
        "retransmissions_received": retrans_recv,
        "retrans_pct": rnd(retrans_pct, 3),
        "unexpected": unexpected,
        "timeouts": timeouts,
        "setup_ms_p50": percentile(rtts, 50),
        "setup_ms_p90": percentile(rtts, 90),
        "setup_ms_p99": percentile(rtts, 99),
        "setup_ms_max": rtts[-1] if rtts else None,
        "server_cpu_pct": server_cpu,
        "sipp_returncode": returncode,
        "wall_s": rnd(wall, 2),
        "clean": not reasons,
        "why_not_clean": "; ".join(reasons) or None,
    }


def _step_rows(steps):
    return [[f"{s['rate']}*" if s.get("fresh_server") else s["rate"], s["achieved_cps"], s["successful"], s["failed"], s["retrans_pct"],
             s["setup_ms_p50"], s["setup_ms_p99"], s["setup_ms_max"], s["server_cpu_pct"],
             s.get("server_runq_wait_pct"), s.get("machine_steal_pct"),
             s.get("server_ended_by_bye"),
             s.get("tables_after", {}).get("server"), s.get("tables_after", {}).get("dialogs"),
             "yes" if s["clean"] else "no: " + (s["why_not_clean"] or "")] for s in steps]


def _max_clean(steps) -> int:
    clean = [s["rate"] for s in steps if s["clean"]]
    return max(clean) if clean else 0


def _one_step(label: str, workdir: Path, port: int, rate: int, seconds: float, cpu_sipp,
              server: BenchServer | None = None, peer_pid: int | None = None,
              tcp: bool = False) -> dict:
    log(f"{label}: {rate} calls/s for {seconds:g} s")
    before = {}
    if server is not None:
        try:
            before = server.stats(timeout=10).get("calls_ended", {})
        except (OSError, TimeoutError):
            pass
    step = sipp_uac_step(workdir / f"{label}-{rate}", port, rate, seconds, cpu_sipp,
                         server.pid if server else peer_pid, tcp=tcp)
    if server is not None:
        _server_side(step, server, before)
    log(f"{label}: {rate}/s -> {step['successful']} ok, {step['failed']} failed, "
        f"achieved {step['achieved_cps']}/s, p99 {step['setup_ms_p99']} ms, "
        f"retrans {step['retrans_pct']} %, cpu {step['server_cpu_pct']} %"
        + ("" if step["clean"] else f"  NOT CLEAN: {step['why_not_clean']}"))
    return step


def _server_side(step: dict, server: BenchServer, before: dict, settle: float = 3.0) -> None:
    """The server's view of the step: how many calls it ended on the caller's BYE.
    SIPp's built-in uac accepts a retransmitted 200 to the INVITE as the 200 to its
    BYE, so when the server drops an ACK and a BYE (a full receive buffer under
    overload) SIPp still counts the call successful; the server knows better."""
    deadline = time.monotonic() + settle
    stats: dict = {}
    while True:
        try:
            stats = server.stats(timeout=10)
        except (OSError, TimeoutError) as e:
            stats = {"error": str(e)}
            break
        ended = stats.get("calls_ended", {})
        byes = ended.get("remote hangup", 0) - before.get("remote hangup", 0)
        if byes >= step["successful"] or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    step["tables_after"] = stats
    ended = stats.get("calls_ended", {})
    delta = {k: v - before.get(k, 0) for k, v in ended.items() if v - before.get(k, 0)}
    step["server_calls_ended"] = delta
    step["server_ended_by_bye"] = delta.get("remote hangup", 0)
    missing = step["successful"] - step["server_ended_by_bye"]
    if missing > 0:
        step["clean"] = False
        why = f"{missing} calls SIPp counted ok were not ended by BYE on the server"
        step["why_not_clean"] = "; ".join(x for x in (step["why_not_clean"], why) if x)


def _run_steps(label: str, workdir: Path, port: int, steps, seconds: float, cpu_sipp,
               server: BenchServer | None, gap: float,
               peer_pid: int | None = None) -> list[dict]:
    """Step up the rates on one server until a step is not clean (that one included)."""
    done: list[dict] = []
    for rate in steps:
        step = _one_step(label, workdir, port, rate, seconds, cpu_sipp, server, peer_pid)
        done.append(step)
        if not step["clean"]:
            break
        time.sleep(gap)
    return done


def _bisect(done: list[dict], new_server, workdir: Path, seconds: float, gap: float,
            warmup: float, rounds: int = 2) -> None:
    """Twice halve the interval between the last clean rate and the first unclean one
    (50/s resolution), each try on a fresh server (an overloaded server is left with
    retransmissions, stuck calls and full tables that would spoil the next step),
    first warmed up for ``warmup`` s (64*T1) at the last clean rate so its tables hold
    what they hold in the steady state of the stepping server."""
    clean = [s["rate"] for s in done if s["clean"]]
    unclean = [s["rate"] for s in done if not s["clean"]]
    if not unclean:
        return
    low, high = (max(clean) if clean else 0), min(unclean)
    for _ in range(rounds):
        mid = int((low + high) / 2 // 50 * 50)
        if not low < mid < high:
            break
        time.sleep(gap)
        with new_server(f"server-{mid}") as server:
            if low and warmup > 0:
                log(f"rvoip: warm-up of a fresh server, {low} calls/s for {warmup:g} s")
                sipp_uac_step(workdir / f"warmup-{mid}", server.port, low, warmup, 1)
            step = _one_step("rvoip", workdir, server.port, mid, seconds, 1, server)
        step["fresh_server"] = True
        step["warmup"] = {"rate": low, "seconds": warmup} if low else None
        done.append(step)
        if step["clean"]:
            low = mid
        else:
            high = mid


#: reactor dispatch frames, left out of the cumulative listing (they wrap everything)
_DISPATCH_FILES = (
    "twisted/internet/epollreactor.py", "twisted/internet/posixbase.py",
    "twisted/python/log.py", "twisted/python/context.py",
    "bench/server.py",      # the benchmark's own observation wrappers
)
_DISPATCH_FUNCS = {
    ("twisted/internet/udp.py", "doRead"),
    ("twisted/internet/base.py", "runUntilCurrent"),
    ("rvoip_twisted/transport/sip.py", "datagramReceived"),
    ("rvoip_twisted/transport/sip.py", "datagram_received"),
    ("rvoip_twisted/transport/sip.py", "message_received"),
    ("rvoip_twisted/service/transactions.py", "message_received"),
    ("rvoip_twisted/service/transactions.py", "_request"),
    ("rvoip_twisted/service/sessions.py", "request_received"),
}


#: waiting for events (idle), left out of the listings; % are of the busy time
_IDLE = {"<method 'poll' of 'select.epoll' objects>", "<method 'poll' of 'select.poll' objects>"}


def _overload(new_server, workdir: Path, max_clean: int, factor: float,
              seconds: float, tcp: bool = False, later: float = 5.0) -> dict:
    """Offer ``factor`` times the max clean rate to a fresh server: how much of the
    load it still completes (goodput), how many new calls it refuses with 503
    (overload protection: a request that waited too long in the socket buffer),
    and whether the calls it let in all ended on their BYE.  With ``tcp``, SIPp's
    calls go over one TCP connection (no retransmissions there: what the protection
    bounds is the backlog in the connection, so the setup time)."""
    rate = max(50, int(max_clean * factor) // 50 * 50)
    name = "overload-tcp" if tcp else "overload"
    with new_server("server-" + name, tcp=tcp) as server:
        before = server.stats(timeout=10)
        step = _one_step("rvoip-" + name, workdir, server.port, rate, seconds, 1, server,
                         tcp=tcp)
        after = step.get("tables_after") or {}
        time.sleep(later)
        try:
            still = server.stats(timeout=10)
        except (OSError, TimeoutError):
            still = {}
    shed = after.get("shed_calls", 0) - before.get("shed_calls", 0)
    return {
        "offered_cps": rate,
        "factor": factor,
        "transport": "TCP" if tcp else "UDP",
        "goodput_cps": rnd(step["successful"] / seconds, 1),
        "successful": step["successful"],
        "refused_503": shed,
        "failed": step["failed"],
        "retrans_pct": step["retrans_pct"],
        "setup_ms_p50": step["setup_ms_p50"],
        "setup_ms_p99": step["setup_ms_p99"],
        "server_cpu_pct": step["server_cpu_pct"],
        "steal_pct": step.get("machine_steal_pct"),
        "server_ended_by_bye": step.get("server_ended_by_bye"),
        "calls_open_later": still.get("calls"),
        "later_s": later,
        "step": step,
    }


def _is_dispatch(filename: str, name: str) -> bool:
    return (any(filename.endswith(f) for f in _DISPATCH_FILES)
            or any(filename.endswith(f) and name == n for f, n in _DISPATCH_FUNCS))


def _profile(server: BenchServer, workdir: Path, rate: int, seconds: float, cpu_sipp,
             out_path: Path) -> dict:
    log(f"profile: cProfile in the server, SIPp at {rate} calls/s for {seconds:g} s")
    server.control("profile-start")
    try:
        step = sipp_uac_step(workdir / f"profile-{rate}", server.port, rate, seconds, cpu_sipp,
                             server.pid)
    finally:
        server.control(f"profile-stop {out_path}", timeout=60)
    stats = pstats.Stats(str(out_path))
    total = stats.total_tt
    idle = sum(v[2] for (f, _l, name), v in stats.stats.items()
               if name in _IDLE and f == "~")
    busy = total - idle

    def top(key, n=15, skip_dispatch=False):
        rows = []
        items = sorted(stats.stats.items(), key=lambda kv: kv[1][2 if key == "tottime" else 3],
                       reverse=True)
        for func, (cc, nc, tt, ct, _callers) in items:
            if len(rows) >= n:
                break
            filename, line, name = func
            if skip_dispatch and _is_dispatch(filename, name):
                continue
            if filename == "~" and name in _IDLE:
                continue
            short = filename
            for marker in ("/rvoip_twisted/", "/twisted/", "/lib/python"):
                if marker in filename:
                    short = filename[filename.index(marker) + 1:]
                    break
            rows.append({"function": f"{short}:{line}({name})", "calls": nc,
                         "tottime_s": round(tt, 3), "cumtime_s": round(ct, 3),
                         "tottime_pct": round(100 * tt / busy, 1) if busy > 0 else None,
                         "cumtime_pct": round(100 * ct / busy, 1) if busy > 0 else None})
        return rows

    return {"rate": rate, "seconds": seconds, "calls": step["successful"],
            "failed": step["failed"], "profile_file": str(out_path),
            "total_s": round(total, 2), "idle_s": round(idle, 2), "busy_s": round(busy, 2),
            "by_tottime": top("tottime"),
            "by_cumtime": top("cumtime", skip_dispatch=True),
            "by_cumtime_raw": top("cumtime", n=30)}


def run(cfg) -> dict:
    """``cfg``: smoke, seconds, steps, workdir, results_dir, t1, profile, refine, ceiling.

    The rates are stepped up on one server (steady state: the tables keep 64*T1 of
    finished transactions) until a step is not clean.  The bisection steps and the
    profile each use a fresh server.  The drain check (every table back to 0 within
    64*T1 + margin) is made on the stepping server when every step was clean, else on
    the profile server (a clean load), since an overloaded server legitimately keeps
    the calls whose ACK and BYE it dropped."""
    smoke = cfg.smoke
    seconds = cfg.seconds or (3.0 if smoke else 10.0)
    steps = cfg.steps or (SMOKE_STEPS if smoke else FULL_STEPS)
    t1 = cfg.t1 or (0.05 if smoke else 0.5)
    gap = 0.5 if smoke else 2.0
    workdir = Path(cfg.workdir) / "cps"
    result: dict = {"benchmark": "cps", "smoke": smoke, "step_seconds": seconds,
                    "t1": t1, "steps": [], "sipp_uas_steps": [], "targets": TARGETS,
                    "references": dict(REFERENCES)}
    def new_server(name, tcp=False):
        return BenchServer(workdir / name, cpu=0, t1=t1, rtp_ports=(10000, 40000), tcp=tcp)

    drain_timeout = 64 * t1 + (5 if smoke else 15)

    def drain_check(server, where):
        log(f"waiting up to {drain_timeout:g} s for the server's tables to drain ({where})")
        drained, tables, waited = server.wait_drained(drain_timeout)
        result["drained"] = drained
        result["tables_drained"] = tables
        result["drain_wait_s"] = round(waited, 1)
        result["drain_checked_on"] = where
        log(f"drained={drained} after {waited:.1f} s: "
            + ", ".join(f"{k}={tables.get(k)}" for k in (
                "server", "client", "dialogs", "calls", "media_sessions", "rtp_ports_in_use")))

    with new_server("server") as server:
        result["server_command"] = server.command()
        result["server_rss_kb_start"] = server.rss_kb()
        steps_done = _run_steps("rvoip", workdir, server.port, steps, seconds, 1, server, gap)
        result["server_rss_kb_end"] = server.rss_kb()
        overloaded = not steps_done[-1]["clean"]
        if not overloaded:
            drain_check(server, "the stepping server (every step clean)")
        else:
            # an overloaded server drops datagrams: a call whose ACK and BYE were both
            # dropped stays up (nothing ends a call without BYE), so its tables are not
            # expected to drain; a snapshot, for information
            time.sleep(min(5.0, drain_timeout))
            try:
                result["tables_after_overload"] = server.stats(timeout=10)
            except (OSError, TimeoutError):
                pass
    if cfg.refine and not smoke:
        _bisect(steps_done, new_server, workdir, seconds, gap, warmup=64 * t1)
    steps_done.sort(key=lambda s: s["rate"])
    result["steps"] = steps_done
    max_clean = _max_clean(steps_done)
    result["max_clean_cps"] = max_clean
    if getattr(cfg, "overload", 0) and max_clean:
        result["overload"] = _overload(new_server, workdir, max_clean, cfg.overload, seconds)
        result["overload_tcp"] = _overload(new_server, workdir, max_clean, cfg.overload,
                                           seconds, tcp=True)
    elif smoke and max_clean:
        # not an overload: the TCP path of the step above, so that it cannot rot
        result["overload_tcp"] = _overload(new_server, workdir, max_clean, 1.0, seconds,
                                           tcp=True, later=0.5)
    if cfg.profile or overloaded:
        # a fresh server at a clean load: the profile (if asked) and the drain check
        prate = cfg.profile_rate or max(50, int(max_clean * 0.6) // 50 * 50)
        pseconds = 3.0 if smoke else 10.0
        with new_server("server-profile") as server:
            if cfg.profile:
                prof_path = (Path(cfg.results_dir)
                             / f"cps-profile-{time.strftime('%Y%m%d-%H%M%S')}.prof")
                prof_path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    result["profile"] = _profile(server, workdir, prate, pseconds, 1, prof_path)
                except Exception as e:  # the figures above stay valid
                    log(f"profiling failed: {e!r}")
                    result["profile"] = {"error": repr(e)}
            else:
                _one_step("rvoip-drain", workdir, server.port, prate, seconds, 1, server)
            if overloaded:
                drain_check(server, f"a fresh server after {pseconds if cfg.profile else seconds:g}"
                                    f" s at {prate} calls/s")
    if cfg.ceiling:
        # below the rate the server sustained, a reference UAS is clean as well: start there
        below = [r for r in steps if r <= max_clean]
        start = max(below) if below else min(steps)
        ceiling_rates = [r for r in steps if r >= start]
        top_rate = max(steps)
        for key, label, uas_class in (("sipp_uas", "sipp-uas", SippUas),
                                      ("bare_uas", "bare-twisted-uas", BareTwistedUas)):
            with uas_class(workdir / label, cpu=0) as uas:
                ref_steps = _run_steps(label, workdir, uas.port, ceiling_rates, seconds,
                                       1, None, gap, peer_pid=uas.proc.pid)
            result[f"{key}_steps"] = ref_steps
            result[f"{key}_max_clean_cps"] = best_ref = _max_clean(ref_steps)
            result[f"{key}_ceiling_reached_top_step"] = bool(
                ref_steps and ref_steps[-1]["clean"] and ref_steps[-1]["rate"] == top_rate)
            if best_ref:
                result[f"ratio_vs_{key}"] = round(max_clean / best_ref, 3)
    clean_steps = [s for s in result["steps"] if s["clean"]]
    best = max(clean_steps, key=lambda s: s["rate"]) if clean_steps else None
    result["setup_ms_p50_at_max"] = best["setup_ms_p50"] if best else None
    result["setup_ms_p99_at_max"] = best["setup_ms_p99"] if best else None
    result["meets_targets"] = bool(best and max_clean >= TARGETS["cps_clean"]
                                   and (best["setup_ms_p99"] or 0) < TARGETS["setup_p99_ms"])
    return result


def report(result: dict) -> str:
    headers = ["rate", "achieved", "ok", "failed", "retr%", "p50ms", "p99ms", "maxms",
               "srvCPU%", "srv wait%", "steal%", "srv BYEd", "txns", "dialogs", "clean"]
    out = [table(headers, _step_rows(result["steps"]),
                 "Signalling CPS: SIPp uac (-d 0, no media) -> rvoip echo server "
                 f"({result['step_seconds']:g} s/step; srv wait% = time the server was "
                 "runnable but another process had its CPU; steal% = CPU time the "
                 "hypervisor took from this VM (both CPUs, 100 = one CPU); txns/dialogs = table sizes at "
                 "the end of the step; srv BYEd = calls the server ended on the caller's "
                 "BYE; * = bisection step, on a fresh server warmed up for 64*T1 at the last "
                 "clean rate)")]
    for key, title in (("sipp_uas", "SIPp's own uas (sipp -sn uas)"),
                       ("bare_uas", "the bare-bones Twisted UAS (bench/bare_uas.py)")):
        if result.get(f"{key}_steps"):
            rows = [r[:9] + [r[-1]] for r in _step_rows(result[f"{key}_steps"])]
            out.append(table(headers[:8] + ["UAS CPU%", "clean"], rows,
                             f"Reference: the same SIPp uac -> {title}"))
    t = result["targets"]
    lines = [
        f"max clean CPS (rvoip):           {result['max_clean_cps']:,}   "
        f"target >= {t['cps_clean']:,}",
        f"setup time at that rate:         p50 {result['setup_ms_p50_at_max']} ms, "
        f"p99 {result['setup_ms_p99_at_max']} ms   target p99 < {t['setup_p99_ms']} ms",
    ]
    for key, name, short in (("sipp_uas", "SIPp UAS", "SIPp"),
                             ("bare_uas", "bare Twisted UAS", "bare")):
        if f"{key}_max_clean_cps" in result:
            ceil = result[f"{key}_max_clean_cps"]
            more = " (the top step: the real ceiling is higher)" if result.get(
                f"{key}_ceiling_reached_top_step") else ""
            lines.append(f"{name + ' max clean CPS:':33s}{ceil:,}{more}   "
                         f"ratio rvoip/{short} = {result.get(f'ratio_vs_{key}')}")
    tab = result.get("tables_drained") or {}
    lines.append(
        f"tables after drain ({result.get('drain_wait_s')} s, on "
        f"{result.get('drain_checked_on')}): transactions "
        f"{tab.get('server')}+{tab.get('client')}, dialogs {tab.get('dialogs')}, calls "
        f"{tab.get('calls')}, media sessions {tab.get('media_sessions')}, RTP ports "
        f"{tab.get('rtp_ports_in_use')}  -> {'OK (all 0)' if result.get('drained') else 'NOT DRAINED'}")
    over = result.get("tables_after_overload")
    if over:
        lines.append(
            f"after the overloaded step (5 s later, for information): calls {over.get('calls')}, "
            f"dialogs {over.get('dialogs')}, transactions {over.get('server')}+"
            f"{over.get('client')}; calls ended so far by reason: {over.get('calls_ended')}")
    for ov in (result.get("overload"), result.get("overload_tcp")):
        if not ov:
            continue
        lines.append(
            f"overload over {ov.get('transport', 'UDP')} ({ov['factor']:g} x max clean = "
            f"{ov['offered_cps']:,} calls/s offered to a fresh server): goodput "
            f"{ov['goodput_cps']} calls/s, {ov['refused_503']:,} new calls "
            f"refused 503, {ov['failed'] - ov['refused_503']:,} other failures, retransmissions "
            f"{ov['retrans_pct']} %, setup p99 {ov['setup_ms_p99']} ms, CPU "
            f"{ov['server_cpu_pct']} %, steal {ov['steal_pct']} %; of {ov['successful']:,} "
            f"calls SIPp completed the server ended {ov['server_ended_by_bye']:,} on their BYE, "
            f"{ov['calls_open_later']} still open {ov['later_s']:g} s later")
    lines.append("references: " + "; ".join(f"{k} {v}" for k, v in REFERENCES)
                 + "; SIPp UAS and the bare Twisted UAS measured above")
    out.append("\n".join(lines))
    prof = result.get("profile")
    if prof and "by_tottime" in prof:
        for key, title in (("by_tottime", "own time"),
                           ("by_cumtime", "cumulative time, reactor/transport dispatch frames "
                                          "left out")):
            rows = [[r["function"], r["calls"], r["tottime_s"], r["tottime_pct"],
                     r["cumtime_s"], r["cumtime_pct"]] for r in prof[key]]
            out.append(table(["function", "calls", "own s", "own%", "cum s", "cum%"], rows,
                             f"Profile (cProfile, server at {prof['rate']} calls/s for "
                             f"{prof['seconds']:g} s, {prof['calls']} calls; busy "
                             f"{prof.get('busy_s')} s, idle in epoll {prof.get('idle_s')} s left "
                             f"out, % of busy time; top 15 by {title}; "
                             f"{prof['profile_file']})"))
    elif prof:
        out.append(f"profile: {prof}")
    return "\n\n".join(out)


def sipp_available() -> bool:
    return shutil.which("sipp") is not None
