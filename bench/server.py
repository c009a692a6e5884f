"""The server under test: ``python -m bench.server --control-port P --log-file F --
<twistd rvoip options>``.

It is what ``twistd -n --pidfile= rvoip <options>`` runs (``rvoip_twisted.tap``
parses the options and builds the same ``SIPServer``; logging goes to a file
through the same text observer), plus a small debug hook the server itself has
no API for: a UDP control socket on 127.0.0.1 answering

  ``ping``                 ``{"ok": true}``
  ``stats``                ``SIPServer.stats()`` (transaction, dialog, call tables,
                           media sessions, RTP ports in use) + RSS, CPU, fds, media clock
  ``profile-start``        cProfile the reactor thread from now
  ``profile-stop PATH``    stop and dump the profile to PATH (pstats format)

and SIGUSR1, which logs the same stats line to the log file.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import signal
import sys


def _raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def _rss_kb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.server")
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--log-file", required=True)
    parser.add_argument("tap_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    tap_args = args.tap_args[1:] if args.tap_args[:1] == ["--"] else args.tap_args
    _raise_nofile()

    from twisted.internet import reactor
    from twisted.internet.protocol import DatagramProtocol
    from twisted.logger import Logger, globalLogBeginner, textFileLogObserver

    from rvoip_twisted import tap

    logfile = open(args.log_file, "a")
    globalLogBeginner.beginLoggingTo([textFileLogObserver(logfile)], redirectStandardIO=False)
    log = Logger(namespace="bench.server")

    options = tap.Options()
    options.parseOptions(tap_args)
    server = tap.makeService(options, reactor)

    state = {"profiler": None}

    # Diagnostics the server has no API for (observation only, nothing changes):
    # garbage-collector pauses, and media clock calls that came more than 10 ms late
    # (the reactor was busy or stalled).
    import time as _time
    gc_info = {"collections": [0, 0, 0], "total_ms": [0.0, 0.0, 0.0], "max_ms": [0.0, 0.0, 0.0],
               "pauses_over_10ms": []}
    gc_start = [0.0]

    def on_gc(phase, info):
        if phase == "start":
            gc_start[0] = _time.perf_counter()
            return
        ms = (_time.perf_counter() - gc_start[0]) * 1000.0
        gen = info.get("generation", 0)
        gc_info["collections"][gen] += 1
        gc_info["total_ms"][gen] += ms
        if ms > gc_info["max_ms"][gen]:
            gc_info["max_ms"][gen] = ms
        if ms > 10 and len(gc_info["pauses_over_10ms"]) < 200:
            gc_info["pauses_over_10ms"].append([round(_time.time(), 3), gen, round(ms, 1)])

    gc.callbacks.append(on_gc)
    clock = server.media.clock
    stalls = []

    last_stall = [0.0]

    def late(seconds):
        # one stall of the reactor makes every slot due in it late: one entry
        now = _time.time()
        if seconds > 0.010 and len(stalls) < 1000 and now - last_stall[0] > seconds:
            stalls.append([round(now, 3), round(seconds * 1000.0, 1)])
            last_stall[0] = now

    clock.late_observer = late

    # A 50 ms tick that notes when it ran more than 20 ms late: a reactor stall seen
    # with or without media (the media clock above only ticks while streams run).
    from twisted.internet import task as _task
    ticks = {"last": None, "late": []}

    def tick():
        now = _time.monotonic()
        last = ticks["last"]
        ticks["last"] = now
        if last is not None and now - last > 0.070 and len(ticks["late"]) < 1000:
            ticks["late"].append([round(_time.time(), 3), round((now - last - 0.05) * 1000.0, 1)])

    _task.LoopingCall(tick).start(0.05, now=False)

    # how long each RTCP round (every session's SR/RR at once) holds the reactor
    rtcp_rounds = []
    original_reports = server.media._send_reports

    def timed_reports():
        t0 = _time.perf_counter()
        try:
            return original_reports()
        finally:
            if len(rtcp_rounds) < 1000:
                rtcp_rounds.append([round(_time.time(), 3),
                                    round((_time.perf_counter() - t0) * 1000.0, 2),
                                    len(server.media.sessions)])

    server.media._send_reports = timed_reports

    # how the calls ended, by reason ("remote hangup" = the caller's BYE was answered):
    # SIPp's built-in uac takes a retransmitted 200 to the INVITE for the 200 to its
    # BYE, so only the server can tell whether a BYE was lost
    ended = {}
    original_ended = server.sessions._call_ended

    def counted_ended(call):
        reason = str(getattr(call, "end_reason", None))
        ended[reason] = ended.get(reason, 0) + 1
        return original_ended(call)

    server.sessions._call_ended = counted_ended

    def jitter_totals():
        """The jitter buffers' counters summed over the live media sessions (why an
        echoed packet may be missing: late, skipped, concealed; and how many frames were
        played early to take a burst back to the target delay)."""
        totals = {"accepted": 0, "duplicates": 0, "late": 0, "concealed": 0, "underruns": 0,
                  "skipped": 0, "accelerated": 0}
        for session in list(server.media.sessions.values()):
            jb = getattr(session, "_jitter", None)
            for key in totals:
                totals[key] += getattr(jb, key, 0) or 0
        return totals

    def stats():
        out = dict(server.stats())
        times = os.times()
        clock = server.media.clock
        out.update({
            "rss_kb": _rss_kb(),
            "cpu_user": times.user,
            "cpu_system": times.system,
            "fds": len(os.listdir("/proc/self/fd")),
            "clock_streams": len(clock),
            "clock_late_calls": clock.late_calls,
            "clock_failures": clock.failures,
            "sip_received": server.transport.received_count,
            "sip_bad": server.transport.bad_count,
            "gc_counts": gc.get_count(),
            "gc": {"collections": gc_info["collections"],
                   "total_ms": [round(x, 1) for x in gc_info["total_ms"]],
                   "max_ms": [round(x, 1) for x in gc_info["max_ms"]],
                   "pauses_over_10ms": gc_info["pauses_over_10ms"][-50:]},
            "calls_ended": dict(ended),
            "jitter_buffers": jitter_totals(),
            "rtp_ports_pooled": (server.media.ports_pooled()
                                 if hasattr(server.media, "ports_pooled") else None),
            "clock_stalls_over_10ms": len(stalls),
            "clock_stalls": stalls[-50:],
            "reactor_stalls_over_20ms": len(ticks["late"]),
            "reactor_stalls": ticks["late"][-50:],
            "rtcp_rounds": rtcp_rounds[-20:],
        })
        return out

    def command(text):
        word, _, rest = text.strip().partition(" ")
        if word == "ping":
            return {"ok": True, "pid": os.getpid()}
        if word == "stats":
            return stats()
        if word == "gc-census":
            # what the collector tracks, by generation and type (the 12 commonest)
            out = {}
            for gen in (0, 1, 2):
                counts = {}
                for o in gc.get_objects(gen):
                    name = type(o).__qualname__
                    counts[name] = counts.get(name, 0) + 1
                out[gen] = sorted(counts.items(), key=lambda kv: -kv[1])[:12]
            out["frozen"] = gc.get_freeze_count()
            if rest.strip() == "samples":
                young = [o for o in gc.get_objects(1) if type(o) is tuple]
                out["samples"] = [repr(o)[:160] + " " + repr([gc.is_tracked(x) for x in o])
                                  for o in young[:: max(1, len(young) // 8)]]
            return out
        if word == "reset-diagnostics":
            stalls.clear()
            del ticks["late"][:]
            del rtcp_rounds[:]
            gc_info.update(collections=[0, 0, 0], total_ms=[0.0, 0.0, 0.0],
                           max_ms=[0.0, 0.0, 0.0], pauses_over_10ms=[])
            return {"ok": True}
        if word == "profile-start":
            import cProfile
            if state["profiler"] is None:
                state["profiler"] = cProfile.Profile()
                state["profiler"].enable()
            return {"ok": True}
        if word == "profile-stop":
            profiler, state["profiler"] = state["profiler"], None
            if profiler is None:
                return {"ok": False, "error": "not profiling"}
            profiler.disable()
            profiler.dump_stats(rest.strip())
            return {"ok": True, "path": rest.strip()}
        return {"ok": False, "error": "unknown command %r" % (word,)}

    class Control(DatagramProtocol):
        noisy = False

        def datagramReceived(self, data, addr):
            try:
                reply = command(data.decode("utf-8", "replace"))
            except Exception as e:  # the hook must never take the server down
                reply = {"ok": False, "error": repr(e)}
            self.transport.write(json.dumps(reply).encode(), addr)

    def log_stats(*_):
        reactor.callFromThread(lambda: log.info("bench stats {stats}", stats=json.dumps(stats())))

    signal.signal(signal.SIGUSR1, log_stats)
    reactor.listenUDP(args.control_port, Control(), interface="127.0.0.1")
    server.startService()
    reactor.addSystemEventTrigger("before", "shutdown", server.stopService)
    reactor.run()
    logfile.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
