"""Benchmark 2: concurrent media calls.

For each N (100, 250, 500, 750, 1000, ...): a fresh echo server pinned to one CPU,
and ``bench/loadgen.py`` pinned to the other: N calls set up, each sending 50 RTP
packets/s and receiving the echo (see loadgen.py for how the send-interval errors
and the losses are measured).  The server's CPU % (/proc/PID/stat) is taken over the
measured window, its RSS before the calls and at the end of the window (RSS per call
= delta / N), and after the BYEs its RTP ports and media sessions must return to 0
(through the server's control socket).

A step passes when every call was set up, p99 of |inter-arrival - 20 ms| <= 5 ms,
no packet was lost either way, and every port was released.  The highest N that
passes is the figure.  Stepping goes on past a step that only missed the p99 target
by a little, stops at a hard failure (see ``_hard_failure``; ``--keep-going`` runs them
all), then bisects twice between the highest N that passed and the next failure.

Then the same load, at the same N, against two reference echoes (``--no-ceiling`` skips
them): the bare-bones Twisted echo (``bench/bare_uas.py --echo``, the CPython floor) and
SIPp's UAS with ``-rtp_echo`` (``reference_step``, judged as the server is; bench/README.md
says what they are).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .common import (
    HOST, REPO_ROOT, BenchServer, CpuMeter, child_options, log, pin, proc_rss_kb, rnd, runner,
    table,
)
from .references import BareTwistedUas, SippUas

FULL_STEPS = (100, 250, 500, 750, 1000, 1250, 1500, 2000)
SMOKE_STEPS = (20,)
TARGETS = {"concurrent_calls": 500, "err_p99_ms": 5.0, "loss": 0}
SETUP_RATE = 200.0


def _reader(stream, q):
    for line in iter(stream.readline, b""):
        q.put(line.decode(errors="replace").strip())
    q.put(None)


def _drive(workdir: Path, port: int, pid: int, n: int, measure: float, warmup: float,
           step: dict, on_start=None, on_end=None) -> None:
    """Run ``bench/loadgen.py`` (pinned to the other CPU) against the UAS on ``port``:
    ``n`` calls, ``warmup`` then ``measure`` seconds of media; the CPU of process
    ``pid`` over the measured window, and what the load generator found, go into
    ``step``.  ``on_start()`` / ``on_end(wall0)`` run when the window opens / closes."""
    out_path = workdir / "loadgen.json"
    cmd = pin(1) + [sys.executable, "-m", "bench.loadgen", "--sip", f"{HOST}:{port}",
                    "--calls", str(n), "--setup-rate", str(SETUP_RATE),
                    "--warmup", str(warmup), "--measure", str(measure),
                    "--out", str(out_path)]
    budget = n / SETUP_RATE * 2 + warmup + measure + 60
    lines: "queue.Queue[str | None]" = queue.Queue()
    err = open(workdir / "loadgen.err", "wb")
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=err, **child_options())
    reader = threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True)
    reader.start()
    meter = wall0 = None
    deadline = time.monotonic() + budget
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the load generator did not finish in {budget:.0f} s")
            try:
                line = lines.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            if line is None:
                break
            if line == "MEASURE-START":
                meter = CpuMeter(pid).start()
                wall0 = time.time()
                if on_start is not None:
                    on_start()
            elif line == "MEASURE-END" and meter is not None:
                step["server_cpu_pct"] = meter.stop()
                step["server_runq_wait_pct"] = meter.wait_pct
                step["machine_steal_pct"] = meter.steal_pct
                if on_end is not None:
                    on_end(wall0)
            elif line.startswith("ESTABLISHED"):
                log(f"media N={n}: {line.lower()}")
        proc.wait(timeout=30)
    finally:
        runner.stop_process(proc, timeout=5)
        err.close()
    step["loadgen_returncode"] = proc.returncode
    if out_path.exists():
        step.update(json.loads(out_path.read_text()))
    else:
        step["error"] = "the load generator wrote no result:\n" + runner.read_text(
            workdir / "loadgen.err")[-2000:]


def _stall(pid: int, after: float, seconds: float, step: dict) -> None:
    """``after`` seconds from now, stop process ``pid`` (SIGSTOP) for ``seconds``: what a
    stall of the machine does to the server, on demand.  Recorded in ``step["stall"]``."""
    start = time.time()
    time.sleep(after)
    try:
        os.kill(pid, signal.SIGSTOP)
    except OSError:
        return
    stopped = time.time()
    try:
        time.sleep(seconds)
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except OSError:         # (it ended meanwhile)
            pass
        step["stall"] = {"ms": round((time.time() - stopped) * 1000, 1),
                         "at_s": round(stopped - start, 3)}


def media_step(workdir: Path, n: int, measure: float, warmup: float,
               stall_ms: float = 0) -> dict:
    """``stall_ms``: stop the server for that long in the middle of the measured window."""
    workdir.mkdir(parents=True, exist_ok=True)
    step: dict = {"calls": n}
    staller = None
    with BenchServer(workdir / "server", cpu=0, rtp_ports=(10000, 40000)) as server:
        time.sleep(0.5)
        base = server.stats()
        step["rss_kb_idle"] = base.get("rss_kb")

        def on_start():
            nonlocal staller
            try:
                server.control("reset-diagnostics", timeout=5)
            except (OSError, TimeoutError):
                pass
            if stall_ms > 0:
                staller = threading.Thread(
                    target=_stall, args=(server.pid, measure / 2, stall_ms / 1000.0, step),
                    daemon=True)
                staller.start()

        def on_end(wall0):
            step["rss_kb_loaded"] = server.rss_kb()
            try:
                loaded = server.stats(timeout=5)
            except (OSError, TimeoutError):
                return
            step["media_sessions_loaded"] = loaded.get("media_sessions")
            step["clock_late_calls"] = loaded.get("clock_late_calls", 0) - base.get(
                "clock_late_calls", 0)
            step["server_gc"] = loaded.get("gc")
            step["server_jitter_buffers"] = loaded.get("jitter_buffers")
            step["server_clock_stalls_over_10ms"] = loaded.get("clock_stalls_over_10ms")
            step["server_rtcp_rounds"] = [
                [round(t - wall0, 3), ms, k] for t, ms, k in loaded.get("rtcp_rounds", [])]
            step["server_clock_stalls"] = [
                [round(t - wall0, 3), ms] for t, ms in loaded.get("clock_stalls", [])]

        try:
            _drive(workdir, server.port, server.pid, n, measure, warmup, step, on_start, on_end)
        finally:
            if staller is not None:
                staller.join(measure + stall_ms / 1000.0)   # the server is never left stopped
        drained, after, waited = server.wait_drained(
            10.0, keys=("media_sessions", "rtp_ports_in_use", "calls", "dialogs"))
        step["ports_released"] = drained
        step["rtp_ports_in_use_after"] = after.get("rtp_ports_in_use")
        step["media_sessions_after"] = after.get("media_sessions")
        step["rtp_ports_pooled_after"] = after.get("rtp_ports_pooled")
    return _judge(step)


def _judge(step: dict) -> dict:
    """A step passes with every call set up, p99 within the target, nothing lost, the
    ports released and the generator under 90 %; ``pass`` and ``why_not`` set (and
    ``rss_kb_per_call`` from the RSS idle and loaded)."""
    n = step["calls"]
    if step.get("rss_kb_loaded") and step.get("rss_kb_idle") and n:
        step["rss_kb_per_call"] = rnd((step["rss_kb_loaded"] - step["rss_kb_idle"]) / n, 1)
    reasons = []
    if step.get("error"):
        reasons.append("no result")
    if step.get("established", 0) < n:
        reasons.append(f"{n - step.get('established', 0)} calls not set up")
    p99 = step.get("err_ms_p99")
    if p99 is None or p99 > TARGETS["err_p99_ms"]:
        reasons.append(f"p99 {p99} ms > {TARGETS['err_p99_ms']:g}")
    if step.get("packets_lost", 1):
        reasons.append(f"{step.get('packets_lost')} lost")
    if not step.get("ports_released"):
        reasons.append("ports not released")
    if (step.get("generator_cpu_pct") or 0) > 90:
        reasons.append("generator saturated")
    step["pass"] = not reasons
    step["why_not"] = "; ".join(reasons) or None
    return step


def reference_step(workdir: Path, uas_class, n: int, measure: float, warmup: float) -> dict:
    """The same load against a reference echo (``bench/references.py``, ``echo=True``),
    judged as the server is (``_judge``).  Its ports are released when the process has
    no more files open after the BYEs than before the calls."""
    workdir.mkdir(parents=True, exist_ok=True)
    step: dict = {"calls": n}
    with uas_class(workdir / "uas", cpu=0, echo=True) as uas:
        time.sleep(0.5)
        files_idle = uas.open_files()
        step["rss_kb_idle"] = proc_rss_kb(uas.pid)

        def on_end(wall0):
            step["rss_kb_loaded"] = proc_rss_kb(uas.pid)

        _drive(workdir, uas.port, uas.pid, n, measure, warmup, step, on_end=on_end)
        files = uas.open_files()
        deadline = time.monotonic() + 10.0
        while (files is not None and files_idle is not None and files > files_idle
               and time.monotonic() < deadline):
            time.sleep(0.2)
            files = uas.open_files()
        step["files_open_after"] = (files - files_idle
                                    if files is not None and files_idle is not None else None)
        step["ports_released"] = step["files_open_after"] == 0
    return _judge(step)


REFERENCE_ECHOES = (
    ("bare_echo", "bare-twisted-echo", "the bare-bones Twisted echo (bench/bare_uas.py --echo)",
     BareTwistedUas),
    ("sipp_echo", "sipp-uas-echo", "SIPp's UAS with -rtp_echo", SippUas),
)


def _lossless(step: dict) -> bool:
    return step.get("established") == step["calls"] and step.get("packets_lost") == 0


def _references(workdir: Path, steps, measure: float, warmup: float, result: dict) -> None:
    """Step each reference echo through ``steps`` as the server was stepped (on past a
    step that only missed p99, to a hard failure), without the bisection."""
    for key, label, _title, uas_class in REFERENCE_ECHOES:
        ref: dict = {"steps": []}
        result[key] = ref
        try:
            for n in steps:
                log(f"media: {label}, N={n}")
                step = reference_step(workdir / label / f"n{n}", uas_class, n, measure, warmup)
                log(f"media: {label} N={n} -> cpu {step.get('server_cpu_pct')} %, "
                    f"err p50/p99/max {step.get('err_ms_p50')}/{step.get('err_ms_p99')}/"
                    f"{step.get('err_ms_max')} ms, lost {step.get('packets_lost')}"
                    + ("" if step["pass"] else f"  FAIL: {step['why_not']}"))
                ref["steps"].append(step)
                if not step["pass"] and _hard_failure(step):
                    break
        except Exception as e:      # the server's figures stay valid without a reference
            log(f"media: {label} failed: {e!r}")
            ref["error"] = repr(e)
        passed = [s["calls"] for s in ref["steps"] if s["pass"]]
        ref["max_calls_within_target"] = max(passed) if passed else 0
        # the reference may do more than its figure: every N asked passed, or the first
        # one that did not failed only on the generator's CPU
        last = ref["steps"][-1] if ref["steps"] else None
        ref["passed_every_step"] = bool(last and last["pass"])
        ref["limited_by_generator"] = bool(last and last["why_not"] == "generator saturated")
        best = result["max_calls_within_target"]
        if best and ref["max_calls_within_target"]:
            result[f"ratio_vs_{key}"] = round(best / ref["max_calls_within_target"], 3)
        # the CPU each used at the largest N both carried without loss
        mine = {s["calls"]: s for s in result["steps"] if _lossless(s)}
        common = [s for s in ref["steps"] if _lossless(s) and s["calls"] in mine]
        if common:
            at = max(common, key=lambda s: s["calls"])
            ours = mine[at["calls"]].get("server_cpu_pct")
            theirs = at.get("server_cpu_pct")
            if ours and theirs:
                result[f"cpu_vs_{key}"] = {"calls": at["calls"], "server_cpu_pct": ours,
                                           "reference_cpu_pct": theirs,
                                           "ratio": round(ours / theirs, 2)}


def _hard_failure(step: dict) -> bool:
    """Stepping goes on past a step whose only fault is a p99 a little over the
    target (the scaling is worth seeing), and stops at loss, calls not set up, ports
    not released, a saturated server or generator, or p99 beyond 20 ms."""
    p99 = step.get("err_ms_p99")
    return bool(step.get("error") or step.get("packets_lost")
                or step.get("established", 0) < step["calls"]
                or not step.get("ports_released")
                or p99 is None or p99 > 20.0
                or (step.get("server_cpu_pct") or 0) >= 95
                or (step.get("generator_cpu_pct") or 0) > 90)


def run(cfg) -> dict:
    smoke = cfg.smoke
    steps = cfg.calls or (SMOKE_STEPS if smoke else FULL_STEPS)
    measure = cfg.measure_seconds or (3.0 if smoke else 10.0)
    warmup = 1.0 if smoke else 2.0
    workdir = Path(cfg.workdir) / "media"
    result = {"benchmark": "media", "smoke": smoke, "measure_seconds": measure,
              "warmup_seconds": warmup, "setup_rate": SETUP_RATE, "targets": TARGETS,
              "stall_ms": getattr(cfg, "stall_ms", 0) or 0, "steps": []}

    def one(n):
        log(f"media: N={n} concurrent echo calls, {measure:g} s measured")
        step = media_step(workdir / f"n{n}", n, measure, warmup,
                          getattr(cfg, "stall_ms", 0) or 0)
        log(f"media: N={n} -> cpu {step.get('server_cpu_pct')} %, "
            f"err p50/p99/max {step.get('err_ms_p50')}/{step.get('err_ms_p99')}/"
            f"{step.get('err_ms_max')} ms, lost {step.get('packets_lost')}, "
            f"ports released {step.get('ports_released')}"
            + (f", server stopped {step['stall']['ms']} ms at {step['stall']['at_s']} s"
               if step.get("stall") else "")
            + ("" if step["pass"] else f"  FAIL: {step['why_not']}"))
        result["steps"].append(step)
        return step

    for n in steps:
        step = one(n)
        if not step["pass"] and not cfg.keep_going and _hard_failure(step):
            break
    # bisect twice between the highest N that passed and the first failure above it
    # (25-call resolution)
    passed = [s["calls"] for s in result["steps"] if s["pass"]]
    low = max(passed) if passed else 0
    above = [s["calls"] for s in result["steps"] if not s["pass"] and s["calls"] > low]
    if above and not smoke and getattr(cfg, "refine", True):
        high = min(above)
        for _ in range(2):
            mid = int((low + high) / 2 // 25 * 25)
            if not low < mid < high:
                break
            if one(mid)["pass"]:
                low = mid
            else:
                high = mid
    result["steps"].sort(key=lambda s: s["calls"])
    passed = [s["calls"] for s in result["steps"] if s["pass"]]
    result["max_calls_within_target"] = max(passed) if passed else 0
    result["all_ports_released"] = all(s.get("ports_released") for s in result["steps"])
    result["meets_targets"] = result["max_calls_within_target"] >= TARGETS["concurrent_calls"]
    if getattr(cfg, "ceiling", True):
        # the references at the N asked for (not the bisection's), from the smallest
        _references(workdir, sorted(set(steps)), measure, warmup, result)
    return result


def report(result: dict) -> str:
    headers = ["N", "up", "srvCPU%", "srv wait%", "steal%", "pps in", "pps out", "err p50", "err p99",
               "err max", "lost", "seq gaps", "echo miss", "RSS/call KB", "ports freed",
               "stalls>10ms", "RTCP round ms", "gen CPU%", "pass"]
    rows = []
    for s in result["steps"]:
        rows.append([s["calls"], s.get("established"), s.get("server_cpu_pct"),
                     s.get("server_runq_wait_pct"), s.get("machine_steal_pct"),
                     s.get("pps_in_to_server"), s.get("pps_out_of_server"),
                     s.get("err_ms_p50"), s.get("err_ms_p99"), s.get("err_ms_max"),
                     s.get("packets_lost"), s.get("server_seq_gaps"), s.get("echo_missing"),
                     s.get("rss_kb_per_call"), s.get("ports_released"),
                     s.get("server_clock_stalls_over_10ms"),
                     max((r[1] for r in s.get("server_rtcp_rounds") or []), default=None),
                     s.get("generator_cpu_pct"),
                     "yes" if s["pass"] else "no: " + (s["why_not"] or "")])
    t = result["targets"]
    out = [table(headers, rows,
                 "Concurrent echo calls (50 pps each way per call; err = |inter-arrival - 20 ms| "
                 f"of the server's packets per stream, ms; {result['measure_seconds']:g} s "
                 "measured per N; srv wait% = time the server was runnable but another "
                 "process had its CPU; steal% = CPU time the hypervisor took from this VM "
                 "(both CPUs, 100 = one CPU); stalls>10ms = times the media clock's calls came more than 10 ms late; "
                 "RTCP round = the longest all-sessions RTCP round in the window)"),
           f"highest N with p99 within +/-{t['err_p99_ms']:g} ms and no loss: "
           f"{result['max_calls_within_target']:,}   target >= {t['concurrent_calls']:,}\n"
           f"RTP ports and media sessions back to 0 after every step: "
           f"{'yes' if result['all_ports_released'] else 'NO'}"]
    if result.get("stall_ms"):
        out.append(f"the server was stopped (SIGSTOP) for {result['stall_ms']:g} ms in the middle "
                   "of each measured window (--stall-ms); the references were not")
    out.extend(_report_references(result))
    return "\n".join(out)


def _report_references(result: dict) -> list[str]:
    refs = [(key, title, result[key]) for key, _label, title, _cls in REFERENCE_ECHOES
            if key in result]
    if not refs:
        return []
    headers = ["reference", "N", "up", "srvCPU%", "steal%", "pps out", "err p50", "err p99",
               "err max", "lost", "RSS/call KB", "files left", "gen CPU%", "pass"]
    rows = []
    for key, title, ref in refs:
        for s in ref["steps"]:
            rows.append([key, s["calls"], s.get("established"), s.get("server_cpu_pct"),
                         s.get("machine_steal_pct"), s.get("pps_out_of_server"),
                         s.get("err_ms_p50"), s.get("err_ms_p99"), s.get("err_ms_max"),
                         s.get("packets_lost"), s.get("rss_kb_per_call"),
                         s.get("files_open_after"), s.get("generator_cpu_pct"),
                         "yes" if s["pass"] else "no: " + (s["why_not"] or "")])
    out = ["", table(headers, rows,
                     "References, same load, same run, judged the same way: each echo is "
                     "written straight back as its packet comes (no jitter buffer, no media "
                     "clock), so its send intervals are the generator's plus the reference's "
                     "own delay; files left = files still open after the BYEs (its echo ports)")]
    for key, title, ref in refs:
        if ref.get("error"):
            out.append(f"{title}: not measured ({ref['error']})")
            continue
        more = ref["passed_every_step"] or ref["limited_by_generator"]
        line = f"{title}: highest N within target {ref['max_calls_within_target']:,}"
        if ref["passed_every_step"]:
            line += " (every N asked)"
        elif ref["limited_by_generator"]:
            line += " (beyond it the load generator ran out of CPU, not the reference)"
        ratio = result.get(f"ratio_vs_{key}")
        if ratio is not None:
            line += f"; ratio rvoip/{key} {'<= ' if more else ''}{ratio:g}"
        cpu = result.get(f"cpu_vs_{key}")
        if cpu:
            line += (f"; at N = {cpu['calls']:,} (both without loss) rvoip used "
                     f"{cpu['server_cpu_pct']:g} % of a CPU against {cpu['reference_cpu_pct']:g}"
                     f" % ({cpu['ratio']:g} x)")
        out.append(line)
    return out
