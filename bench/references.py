"""The reference UASs the benchmarks measure the server against, in the same run:

  - SIPp's built-in UAS (``sipp -sn uas``), C++: the ceiling of the box.  With
    ``echo`` it also echoes RTP (``-rtp_echo``: one media port for every call, each
    packet written straight back to its sender);
  - the bare-bones Twisted UAS (``bench/bare_uas.py``), the CPython ceiling; with
    ``echo`` each call gets an RTP port of its own that writes every packet back.

Each runs on 127.0.0.1, pinned where the server runs, as a process stopped by its pid
whatever happens.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .common import HOST, REPO_ROOT, child_options, pin, runner


class _ReferenceUas:
    """A reference UAS on 127.0.0.1, pinned like the server; ``command()`` builds it."""

    name = "uas"

    def __init__(self, workdir: Path, cpu: int | None, echo: bool = False):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = runner.free_port(tcp=False)
        self.cpu = cpu
        self.echo = echo
        self.proc = None
        self._out = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self):
        cmd = pin(self.cpu) + self.command()
        self._out = open(self.workdir / f"{self.name}.out", "wb")
        # the repository as cwd: ``python -m bench.bare_uas`` finds its package
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._out,
                                     **child_options())
        if not runner.wait_udp_bound(self.port, self.proc, 10):
            self.stop()
            raise RuntimeError(f"{self.name} did not bind its port:\n"
                               + runner.read_text(self.workdir / f"{self.name}.out")[-2000:])
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def open_files(self) -> int | None:
        """How many file descriptors the process has open (its sockets among them)."""
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:
            return None

    def stop(self) -> None:
        runner.stop_process(self.proc, timeout=5)
        if self._out is not None:
            self._out.close()
            self._out = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class SippUas(_ReferenceUas):
    """SIPp's built-in UAS (the ceiling of the box)."""

    name = "sipp-uas"

    def command(self) -> list[str]:
        cmd = [runner.require_tool("sipp"), "-sn", "uas", "-i", HOST, "-p", str(self.port),
               "-mp", str(runner.free_udp_block(4)),
               "-buff_size", "4194304", "-nostdin", "-timeout", "3600s"]
        if self.echo:
            cmd += ["-mi", HOST, "-rtp_echo"]
        return cmd


class BareTwistedUas(_ReferenceUas):
    """``bench/bare_uas.py``: the bare-bones Twisted UAS (the CPython ceiling)."""

    name = "bare-twisted-uas"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "bench.bare_uas", "--port", str(self.port),
               "--interface", HOST]
        if self.echo:
            cmd.append("--echo")
        return cmd
