"""
C{python -m rvoip_twisted call URI [options]}: place one call on the same
stack as the server, print its progress, outcome and quality figures.

Exit status: 0 when the call was answered and ended cleanly; otherwise the
SIP status class of the failure (4 for 4xx, 5 for 5xx, 6 for 6xx), 2 for a
usage error, 1 for anything else.
"""

import sys

from twisted.python import usage


class CallOptions(usage.Options):
    synopsis = "call URI [options]"
    optParameters = [
        ["duration", "d", "5", "Seconds to stay in the call after it is answered."],
        ["play", None, None, "WAV file to send (8/16 kHz mono 16-bit); default a 440 Hz tone."],
        ["dtmf", None, None, "Digits to send (RFC 4733) one second after answer."],
        ["user", "u", None, "User name for digest authentication (and the From user)."],
        ["password", "p", None, "Password for digest authentication."],
        ["codec", None, "pcmu", "pcmu or pcma."],
        ["local-port", None, "0", "Local SIP port (UDP and TCP); 0 picks a free one."],
        ["local-host", None, "127.0.0.1", "Local address to bind and advertise."],
        ["rtp-ports", None, "20000-30000", "Local RTP port range."],
        ["timeout", None, "32", "Seconds to wait for an answer."],
    ]

    def parseArgs(self, uri):
        self["uri"] = uri

    def postOptions(self):
        try:
            self["duration"] = float(self["duration"])
            self["timeout"] = float(self["timeout"])
            self["local-port"] = int(self["local-port"])
            low, high = (int(x) for x in self["rtp-ports"].split("-"))
            self["rtp-ports"] = (low, high)
        except ValueError:
            raise usage.UsageError("bad number in the options")
        if self["codec"].lower() not in ("pcmu", "pcma"):
            raise usage.UsageError("--codec is pcmu or pcma")
        if bool(self["user"]) != bool(self["password"]) and self["password"]:
            raise usage.UsageError("--password needs --user")


class Options(usage.Options):
    synopsis = "call URI [options]"
    subCommands = [["call", None, CallOptions, "Place one call."]]

    def postOptions(self):
        if self.subCommand is None:
            raise usage.UsageError("a command is needed: call")


def _say(text):
    print(text, flush=True)


def run_call(reactor, opts):
    from twisted.internet import defer, task

    from .media.sources import ToneSource, WavSource
    from .service.server import SIPServer

    codec = opts["codec"].upper()
    codecs = (codec,) + tuple(c for c in ("PCMU", "PCMA") if c != codec)
    host = opts["local-host"]
    port = opts["local-port"]
    listen = ["udp:%d:interface=%s" % (port, host)]
    if port:
        listen.append("tcp:%d:interface=%s" % (port, host))
    server = SIPServer(reactor=reactor, listen=listen, public_host=host,
                       rtp_ports=opts["rtp-ports"], codecs=codecs)
    server.startService()
    result = {"code": 1}

    @defer.inlineCallbacks
    def go():
        from .call import CallFailed
        credentials = None
        if opts["user"]:
            credentials = (opts["user"], opts["password"] or "")
        _say("calling %s" % (opts["uri"],))
        d = server.call(opts["uri"], credentials=credentials,
                        from_user=opts["user"] or "rvoip")
        timer = reactor.callLater(opts["timeout"], d.cancel)
        try:
            call = yield d
        except CallFailed as e:
            _say("failed: %d %s" % (e.status, e.reason))
            result["code"] = max(1, min(e.status // 100, 6))
            return
        except defer.CancelledError:
            _say("failed: no answer within %.0f s" % (opts["timeout"],))
            result["code"] = 1
            return
        finally:
            if timer.active():
                timer.cancel()
        _say("answered: %s" % (call.call_id,))
        if opts["play"]:
            call.play(WavSource(opts["play"], loop=True))
        else:
            call.play(ToneSource(440.0))
        if opts["dtmf"]:
            yield task.deferLater(reactor, min(1.0, opts["duration"] / 2), lambda: None)
            if call.state == "answered":
                call.send_dtmf(opts["dtmf"])
                _say("sent dtmf %s" % (opts["dtmf"],))
        ended = call.ended
        waited = task.deferLater(reactor, opts["duration"], lambda: None)
        yield defer.DeferredList([ended, waited], fireOnOneCallback=True, consumeErrors=True)
        remote = call.state == "ended"
        if not remote:
            call.hangup()
            _say("hung up after %.1f s" % (call.duration,))
        else:
            _say("remote hung up: %s" % (call.end_reason,))
        q = call.quality()
        _say("quality: codec=%s sent=%s received=%s lost=%s loss=%s%% jitter=%sms rtt=%sms mos=%s" % (
            q.get("codec"), q.get("packets_sent"), q.get("packets_received"),
            q.get("packets_lost"), _fmt(q.get("loss_pct")), _fmt(q.get("jitter_ms")),
            _fmt(q.get("rtt_ms")), _fmt(q.get("mos"), "%.2f")))
        result["code"] = 0

    @defer.inlineCallbacks
    def main():
        try:
            yield go()
        except Exception as e:
            _say("error: %s" % (e,))
            result["code"] = 1
        yield server.stopService()

    return main().addCallback(lambda _: result["code"])


def _fmt(value, fmt="%.1f"):
    return "-" if value is None else fmt % (value,)


def _positional_last(argv):
    """
    Move the positional arguments of C{call} after its options, so that
    C{call URI --duration 5} parses like C{call --duration 5 URI}
    (Twisted's parser, like getopt, stops at the first positional one).
    """
    if not argv or argv[0] != "call":
        return argv
    takes_value = set()
    for long, short, _, _ in CallOptions.optParameters:
        takes_value.add("--" + long)
        if short:
            takes_value.add("-" + short)
    options, positional = [], []
    rest = iter(argv[1:])
    for token in rest:
        if token == "--":
            positional.extend(rest)
            break
        if token.startswith("-") and token != "-":
            options.append(token)
            if token in takes_value:
                options.append(next(rest, ""))
        else:
            positional.append(token)
    return ["call"] + options + positional


def main(argv=None):
    argv = _positional_last(sys.argv[1:] if argv is None else argv)
    opts = Options()
    try:
        opts.parseOptions(argv)
    except usage.UsageError as e:
        print("%s\n%s" % (opts, e), file=sys.stderr)
        return 2
    from twisted.internet import reactor

    from .logs import set_level
    set_level("info")
    code = {}

    def done(value):
        code["value"] = value
        reactor.stop()

    def failed(f):
        print("error: %s" % (f.getErrorMessage(),), file=sys.stderr)
        code["value"] = 1
        reactor.stop()

    reactor.callWhenRunning(
        lambda: run_call(reactor, opts.subOptions).addCallbacks(done, failed))
    reactor.run()
    return code.get("value", 1)


if __name__ == "__main__":
    sys.exit(main())
