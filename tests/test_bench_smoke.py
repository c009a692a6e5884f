"""The benchmarks' smoke run (``python -m bench all --smoke``, about 40 s): checks the
benchmark machinery end to end on every test run: SIPp against the server (CPS), the
media load generator (concurrent echo calls), the micro benchmarks, the tables
draining and the RTP ports coming back.  The figures of a smoke run mean nothing;
only their sanity is asserted.  Needs SIPp (``apt-get install sip-tester``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.interop      # drives SIPp


def _run_smoke(results: Path, timeout: float = 90.0,
               args=("all",)) -> subprocess.CompletedProcess:
    """The smoke run (``python -m bench ARGS --smoke``), bounded: past ``timeout`` it gets
    SIGTERM (the runner then stops its server and SIPp) and, if it still runs, SIGKILL."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    cmd = [sys.executable, "-m", "bench", *args, "--smoke", "--results-dir", str(results)]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        pytest.fail(f"the smoke run took more than {timeout:.0f} s\n--- stdout ---\n"
                    f"{out[-3000:]}\n--- stderr ---\n{err[-3000:]}", pytrace=False)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _load(results: Path, name: str) -> dict:
    found = sorted(results.glob(f"{name}-smoke-*.json"))
    assert found, f"no {name} JSON written in {results}: {list(results.iterdir())}"
    return json.loads(found[-1].read_text())


def test_bench_smoke(tmp_path):
    if shutil.which("sipp") is None:
        pytest.fail("sipp is not installed: apt-get install sip-tester "
                    "(.ci/run installs it)", pytrace=False)
    results = tmp_path / "results"
    done = _run_smoke(results)
    report = f"--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-4000:]}"
    assert done.returncode == 0, report

    cps = _load(results, "cps")
    step = cps["steps"][0]
    assert step["successful"] > 0 and step["successful"] == step["calls"], report
    assert step["failed"] == 0, report
    assert step["server_ended_by_bye"] == step["successful"], step   # the server agrees
    assert step["achieved_cps"] and step["achieved_cps"] > 0, report
    assert step["setup_ms_p50"] is not None and step["setup_ms_p99"] is not None, report
    assert step["server_cpu_pct"] and step["server_cpu_pct"] > 0, report
    assert cps["max_clean_cps"] > 0, report
    # everything the calls used is released once Timer J/L (64*T1) has run
    assert cps["drained"], cps["tables_drained"]
    for key in ("server", "client", "dialogs", "calls", "media_sessions", "rtp_ports_in_use"):
        assert cps["tables_drained"][key] == 0, cps["tables_drained"]
    assert cps["sipp_uas_steps"] and cps["sipp_uas_steps"][0]["successful"] > 0, report
    # the bare-bones Twisted UAS answered every call of its step, and both ratios are there
    bare = cps["bare_uas_steps"][0]
    assert bare["successful"] == bare["calls"] > 0 and bare["failed"] == 0, report
    assert cps["ratio_vs_sipp_uas"] > 0 and cps["ratio_vs_bare_uas"] > 0, report
    # the same load over TCP (the overload step's machinery, at the clean rate here)
    tcp = cps["overload_tcp"]
    assert tcp["transport"] == "TCP" and tcp["step"]["calls"] > 0, tcp
    assert tcp["successful"] == tcp["step"]["calls"] and tcp["failed"] == 0, tcp
    assert tcp["server_ended_by_bye"] == tcp["successful"], tcp

    media = _load(results, "media")
    mstep = media["steps"][0]
    assert mstep["established"] == mstep["calls"] > 0, report
    assert mstep["pps_out_of_server"] and mstep["pps_out_of_server"] > 0, report
    assert mstep["intervals"] > 0 and mstep["err_ms_p50"] is not None, report
    assert mstep["echo_expected"] > 0, report
    assert mstep["ports_released"], mstep
    assert mstep["rtp_ports_in_use_after"] == 0, mstep
    # the same load against both reference echoes, measured in the same run
    for key in ("bare_echo", "sipp_echo"):
        ref = media[key]
        assert "error" not in ref, ref
        rstep = ref["steps"][0]
        assert rstep["established"] == rstep["calls"] == mstep["calls"], rstep
        assert rstep["echo_expected"] > 0 and rstep["echo_missing"] == 0, rstep
        assert rstep["files_open_after"] == 0 and rstep["ports_released"], rstep
        assert rstep["intervals"] > 0 and rstep["err_ms_p99"] is not None, rstep
        assert rstep["server_cpu_pct"] and rstep["server_cpu_pct"] > 0, rstep
        assert media[f"cpu_vs_{key}"]["ratio"] > 0, media

    micro = _load(results, "micro")
    assert micro["cases"], report
    for key, case in micro["cases"].items():
        assert case["best_us"] > 0, (key, case)
    assert "Signalling CPS" in done.stdout and "Micro benchmarks" in done.stdout, report


def test_bench_media_stall_smoke(tmp_path):
    """
    ``bench media --stall-ms``: the server is stopped for that long in the middle of the
    measured window, then continued; the step records it, and every call still ends and
    gives its ports back.
    """
    results = tmp_path / "results"
    done = _run_smoke(results, 60.0, ("media", "--no-ceiling", "--stall-ms", "60"))
    report = f"--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-4000:]}"
    assert done.returncode == 0, report
    media = _load(results, "media")
    assert media["stall_ms"] == 60, media
    step = media["steps"][0]
    assert step["stall"]["ms"] >= 60 and 0 < step["stall"]["at_s"] < media["measure_seconds"], step
    assert step["established"] == step["calls"] > 0 and step["bye_ok"] == step["calls"], step
    assert step["ports_released"] and step["rtp_ports_in_use_after"] == 0, step
    assert "stopped (SIGSTOP) for 60 ms" in done.stdout, report
