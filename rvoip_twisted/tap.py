"""
C{twistd rvoip}: the command line of the server.
"""

from twisted.python import usage

from .apps import make_app
from .apps.wrappers import AnswerAfter, MaxDuration
from .sip.transaction import TimerConfig


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = ("A SIP/RTP voice application server. Example: twistd -n rvoip "
                "--listen udp:5060:interface=127.0.0.1 --app echo")

    optParameters = [
        ["rtp-ports", None, "10000-20000", "RTP port range LOW-HIGH (even RTP ports, RTCP on +1)."],
        ["public-host", None, None, "Address advertised in Via, Contact and SDP."],
        ["app", "a", "echo", "Application: echo, tone[:HZ], play:FILE.wav, record:DIR."],
        ["answer-after", None, "0", "Ring this many seconds before answering."],
        ["max-duration", None, "0", "Hang up (BYE) calls after this many seconds (0: never)."],
        ["rtcp-interval", None, "5", "Seconds between RTCP reports."],
        ["t1", None, "0.5", "SIP timer T1 in seconds."],
        ["log-level", None, "info", "debug logs one line per SIP message."],
    ]
    optFlags = [
        ["no-symmetric-rtp", None, "Send RTP to the SDP address, not where RTP comes from."],
    ]

    def __init__(self):
        usage.Options.__init__(self)
        self["listen"] = []

    def opt_listen(self, endpoint):
        """Listen on ENDPOINT: udp:PORT[:interface=ADDR] or tcp:PORT[...]
        (repeatable; default udp:5060 and tcp:5060)."""
        from .service.server import parse_listen
        parse_listen(endpoint)
        self["listen"].append(endpoint)

    opt_l = opt_listen

    def postOptions(self):
        if not self["listen"]:
            self["listen"] = ["udp:5060", "tcp:5060"]
        try:
            low, high = (int(x) for x in self["rtp-ports"].split("-"))
        except ValueError:
            raise usage.UsageError("--rtp-ports takes LOW-HIGH, e.g. 10000-20000")
        if not (1024 <= low < high <= 65535) or high - low < 3:
            raise usage.UsageError("--rtp-ports must be a range within 1024-65535")
        self["rtp-ports"] = (low, high)
        for name in ("answer-after", "max-duration", "rtcp-interval", "t1"):
            try:
                self[name] = float(self[name])
            except ValueError:
                raise usage.UsageError("--%s takes a number of seconds" % (name,))
            if self[name] < 0:
                raise usage.UsageError("--%s cannot be negative" % (name,))
        if self["rtcp-interval"] < 0.5:
            raise usage.UsageError("--rtcp-interval must be at least 0.5 s")
        if not 0.05 <= self["t1"] <= 10:
            raise usage.UsageError("--t1 must be within 0.05-10 s")
        if self["log-level"] not in ("debug", "info", "warn", "error"):
            raise usage.UsageError("--log-level is debug, info, warn or error")
        from twisted.internet import reactor
        self["handler"] = make_app(self["app"], reactor)


def build_handler(options):
    handler = options["handler"]
    if options["answer-after"]:
        handler = AnswerAfter(handler, options["answer-after"])
    if options["max-duration"]:
        handler = MaxDuration(handler, options["max-duration"])
    return handler


def makeService(options, reactor=None):
    from .logs import set_level
    from .service.server import SIPServer
    set_level(options["log-level"])
    t1 = options["t1"]
    return SIPServer(
        reactor=reactor,
        listen=options["listen"],
        handler=build_handler(options),
        public_host=options["public-host"],
        rtp_ports=options["rtp-ports"],
        timers=TimerConfig(t1=t1, t2=max(4.0, 8 * t1), t4=5.0),
        rtcp_interval=options["rtcp-interval"],
        symmetric_rtp=not options["no-symmetric-rtp"],
    )
