"""Benchmarks of rvoip-twisted (GitHub issue 7): signalling CPS against SIPp, concurrent
echo media calls, and micro benchmarks of the sans-IO core.

Run ``python -m bench all`` (or ``cps``, ``media``, ``micro``; ``--smoke`` for a
10-second-per-benchmark run).  See ``bench/README.md``.
"""
