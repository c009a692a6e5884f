"""The benchmark runner: ``python -m bench {cps,media,micro,all} [--smoke] [options]``.

Each benchmark prints a table and writes ``bench/results/<name>-<stamp>.json``
(``--results-dir`` elsewhere).  ``--smoke`` runs each benchmark for about 10 s
(one small step) to check the machinery; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from . import common
from .common import RESULTS_DIR, environment, log, write_json


def _rates(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of integers")
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError("positive integers")
    return values


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="rvoip-twisted benchmarks (issue 7): signalling CPS, concurrent media "
                    "calls, micro benchmarks.")
    p.add_argument("benchmark", choices=("cps", "media", "micro", "all"))
    p.add_argument("--smoke", action="store_true",
                   help="about 10 s per benchmark: one small step, to check the machinery")
    p.add_argument("--results-dir", default=str(RESULTS_DIR),
                   help="where the JSON goes (default bench/results)")
    p.add_argument("--workdir", default=None,
                   help="SIPp traces, server logs (default: a temporary directory, removed)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    g = p.add_argument_group("cps")
    g.add_argument("--rates", type=_rates, default=None,
                   help="call rates to step through, e.g. 500,1000,2000 (stops at the first "
                        "unclean step)")
    g.add_argument("--step-seconds", type=float, default=None,
                   help="seconds per CPS step (default 10; smoke 3)")
    g.add_argument("--t1", type=float, default=None,
                   help="server T1 (default 0.5, the server's; smoke 0.05 so the tables "
                        "drain within 64*T1 quickly)")
    g.add_argument("--no-ceiling", dest="ceiling", action="store_false",
                   help="skip the reference runs (SIPp's UAS, the bare-bones Twisted UAS; "
                        "for media their echoes)")
    g.add_argument("--no-profile", dest="profile", action="store_false",
                   help="skip the cProfile run of the server under CPS load")
    g.add_argument("--profile-rate", type=int, default=None,
                   help="calls/s for the profile run (default 60 %% of the max clean rate)")
    g.add_argument("--no-refine", dest="refine", action="store_false",
                   help="do not try the midpoints after the first unclean step (cps and media)")
    g.add_argument("--overload", type=float, default=1.5,
                   help="then offer this many times the max clean rate to a fresh server, to "
                        "see how it sheds load (default 1.5; 0 skips; skipped in smoke)")
    g = p.add_argument_group("media")
    g.add_argument("--calls", type=_rates, default=None,
                   help="concurrent call counts to step through (default "
                        "100,250,500,750,1000,1250,1500,2000; stops at the first failing one)")
    g.add_argument("--measure-seconds", type=float, default=None,
                   help="measured seconds per media step (default 10; smoke 3)")
    g.add_argument("--keep-going", action="store_true",
                   help="media: run every step even after one fails the target")
    g.add_argument("--stall-ms", type=float, default=0,
                   help="media: stop the server (SIGSTOP) for this many ms in the middle of "
                        "each measured window, to see what a stall of the machine costs "
                        "(default 0: none)")
    g = p.add_argument_group("micro")
    g.add_argument("--repeat", type=int, default=None, help="best of N (default 7; smoke 3)")
    return p


class Config:
    def __init__(self, args, workdir: Path):
        self.smoke = args.smoke
        self.results_dir = Path(args.results_dir)
        self.workdir = workdir
        self.seconds = args.step_seconds
        self.steps = args.rates
        self.t1 = args.t1
        self.ceiling = args.ceiling
        self.profile = args.profile and not args.smoke
        self.profile_rate = args.profile_rate
        self.refine = args.refine
        self.overload = 0 if args.smoke else args.overload
        self.calls = args.calls
        self.measure_seconds = args.measure_seconds
        self.keep_going = args.keep_going
        self.stall_ms = args.stall_ms
        self.repeat = args.repeat


def _interrupt(signum, frame):
    raise KeyboardInterrupt()


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)     # stop every child, as on Ctrl-C
    signal.signal(signal.SIGINT, signal.default_int_handler)   # even if started with it ignored
    names = ["micro", "cps", "media"] if args.benchmark == "all" else [args.benchmark]
    own_workdir = args.workdir is None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="rvoip-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = Config(args, workdir)
    env = environment()
    if not env["pinned"]:
        log("fewer than 2 CPUs: server and load generators are not pinned")
    written = []
    failures = 0
    try:
        for name in names:
            module = _module(name)
            log(f"{name}: starting" + (" (smoke)" if cfg.smoke else ""))
            started = time.monotonic()
            try:
                result = module.run(cfg)
            except KeyboardInterrupt:
                raise
            except Exception as e:
                failures += 1
                log(f"{name}: FAILED: {e!r}")
                import traceback
                traceback.print_exc()
                continue
            result["duration_s"] = round(time.monotonic() - started, 1)
            result["environment"] = dict(env, loadavg_end=common.loadavg())
            result["command"] = ["python", "-m", "bench"] + list(argv if argv is not None
                                                               else sys.argv[1:])
            name_json = name + ("-smoke" if cfg.smoke else "")
            path = write_json(cfg.results_dir, name_json, result)
            written.append(path)
            print()
            print(module.report(result))
            print(f"\n[{name}: {result['duration_s']} s; JSON: {path}]", flush=True)
    except KeyboardInterrupt:
        log("interrupted: every process started was stopped")
        return 130
    finally:
        if own_workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif args.keep or not own_workdir:
            log(f"work directory kept: {workdir}")
    print("\nNote: figures from a shared 2-CPU machine are noisy; load average at start "
          f"{env['loadavg_start']}, at end {common.loadavg()}.")
    return 1 if failures else 0


def _module(name):
    if name == "cps":
        from . import cps
        return cps
    if name == "media":
        from . import media
        return media
    from . import micro
    return micro
