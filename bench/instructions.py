"""Instructions per call: ``python -m bench.instructions [--calls N] [--parts]``.

The CPU cost of one whole call as a count of machine instructions, which the
hypervisor's steal and the other processes on the machine do not change: the
call flow of ``bench.callpath`` (SIPp's INVITE, ACK and BYE through the real
server, timers included) run under valgrind's cachegrind for 200 and for
200 + N calls (same warm-up, the GC off, ``PYTHONHASHSEED=0``); the difference
divided by N.  Runs vary by about 1 %; compare two commits with it, not two
wall-clock timings on a shared VM.  Needs ``valgrind`` (``apt-get install -y
valgrind``); takes about a minute.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = 200


def instructions(calls: int, part: str | None = None) -> int:
    """Instructions of the whole process for ``calls`` calls (or runs of ``part``) after
    the warm-up."""
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--branch-sim=no",
           "--cachegrind-out-file=/dev/null",
           os.path.realpath(sys.executable), "-m", "bench.callpath", "--count", str(calls)]
    if part is not None:
        cmd += ["--part", part]
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    match = re.search(r"I\s+refs:\s+([\d,]+)", proc.stderr)
    if proc.returncode != 0 or match is None:
        raise SystemExit("valgrind run failed (exit %s):\n%s"
                         % (proc.returncode, proc.stderr[-2000:]))
    return int(match.group(1).replace(",", ""))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000,
                        help="calls measured (default 1000)")
    parser.add_argument("--parts", action="store_true",
                        help="then count the main pieces of a call alone (bench.callpath "
                             "PARTS: a call's three parses, the SDP answer, the two responses) "
                             "and print each as a share of the call; about a minute more")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind: apt-get install -y valgrind")
    base = instructions(BASE)
    more = instructions(BASE + args.calls)
    per_call = (more - base) // args.calls
    print("instructions per call: %d  (%d calls; %d and %d instructions in all)"
          % (per_call, args.calls, base, more))
    if args.parts:
        from bench.callpath import PARTS
        runs = 2000
        rows = []
        for name, what in PARTS.items():
            cost = (instructions(runs, name) - instructions(0, name)) // runs
            rows.append((name, cost, what))
        rest = per_call - sum(cost for _, cost, _ in rows)
        print("\n%-13s %12s %7s  %s" % ("part", "instructions", "of call", "what"))
        for name, cost, what in rows + [("rest", rest, "everything else: transport, "
                                         "transactions, dialog, call, media session, timers, "
                                         "log line")]:
            print("%-13s %12d %6.1f%%  %s" % (name, cost, 100.0 * cost / per_call, what))


if __name__ == "__main__":
    main()
