"""
C{twistd rvoip}: the command line of the server.
"""

from twisted.python import usage

from .apps import make_app
from .apps.wrappers import AnswerAfter, MaxDuration
from .logs import LEVELS
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
        ["overload-delay", None, "0.25",
         "Answer new calls 503 (Retry-After) while requests wait longer than this many "
         "seconds to be read: the server is overloaded (0: never)."],
        ["log-level", None, "info",
         "debug, info, warn or error: the least level of the server's log lines "
         "(info: a line per call ended and per DTMF digit; debug adds one per SIP "
         "message; warn: warnings and errors only)."],
        ["users", None, None,
         "Users file (user:password or user:HA1=hex a line): digest authentication "
         "(401 on REGISTER, 407 on INVITE); turns the registrar on."],
        ["registrar-db", None, None,
         "SQLite file keeping the registrar's bindings across restarts; turns the "
         "registrar on (without it bindings live in memory)."],
        ["realm", None, "rvoip", "Digest realm, and the registrar's domain."],
        ["digest-algorithms", None, "MD5",
         "Digest challenges offered, in order, e.g. SHA-256,MD5 (RFC 8760 UAs pick the "
         "strongest; some older UAs fail on any challenge but MD5, so MD5 alone is the "
         "default)."],
        ["min-expires", None, "60", "Registrar: shortest registration accepted (else 423)."],
        ["max-expires", None, "3600", "Registrar: longest registration granted."],
        ["unrouted", None, "app",
         "Registrar: a call to a user neither registered nor in --users goes to "
         "'app' (--app) or gets '404'."],
        ["ring-timeout", None, "60", "Registrar: seconds to ring a user's contacts (then 480)."],
        ["register-expires", None, "3600", "Expiry asked for by --register."],
    ]
    optFlags = [
        ["no-symmetric-rtp", None, "Send RTP to the SDP address, not where RTP comes from."],
        ["registrar", None,
         "Be a registrar and PBX: REGISTER accepted, calls to registered users bridged "
         "to their contacts (implied by --users and --registrar-db)."],
    ]

    def __init__(self):
        usage.Options.__init__(self)
        self["listen"] = []
        self["register"] = []

    def opt_listen(self, endpoint):
        """Listen on ENDPOINT: udp:PORT[:interface=ADDR] or tcp:PORT[...]
        (repeatable; default udp:5060 and tcp:5060)."""
        from .service.server import parse_listen
        parse_listen(endpoint)
        self["listen"].append(endpoint)

    opt_l = opt_listen

    def opt_register(self, spec):
        """Register with a registrar as sip:user:password@host[:port][;transport=tcp]
        (repeatable); calls to that address then reach --app."""
        from .service.registration import parse_register_spec
        try:
            self["register"].append(parse_register_spec(spec))
        except ValueError as e:
            raise usage.UsageError("bad --register: %s" % (e,))

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
        for name in ("answer-after", "max-duration", "rtcp-interval", "t1", "overload-delay"):
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
        if self["log-level"] not in LEVELS:
            raise usage.UsageError("--log-level is one of " + ", ".join(LEVELS))
        self._registrar_options()
        from twisted.internet import reactor
        self["handler"] = make_app(self["app"], reactor)


    def _registrar_options(self):
        for name in ("min-expires", "max-expires", "register-expires"):
            try:
                self[name] = int(self[name])
            except ValueError:
                raise usage.UsageError("--%s takes a whole number of seconds" % (name,))
            if self[name] < 1:
                raise usage.UsageError("--%s must be at least 1" % (name,))
        if self["min-expires"] > self["max-expires"]:
            raise usage.UsageError("--min-expires cannot exceed --max-expires")
        try:
            self["ring-timeout"] = float(self["ring-timeout"])
        except ValueError:
            raise usage.UsageError("--ring-timeout takes a number of seconds")
        if self["ring-timeout"] <= 0:
            raise usage.UsageError("--ring-timeout must be positive")
        if self["unrouted"] not in ("app", "404"):
            raise usage.UsageError("--unrouted is app or 404")
        if not self["realm"] or '"' in self["realm"] or "\\" in self["realm"]:
            raise usage.UsageError("--realm must be a plain non-empty name")
        from .sip.auth import canonical_algorithm
        algorithms = []
        for name in self["digest-algorithms"].split(","):
            canon = canonical_algorithm(name.strip())
            if canon is None or canon.endswith("-sess"):
                raise usage.UsageError("--digest-algorithms: unsupported %r" % (name.strip(),))
            if canon not in algorithms:
                algorithms.append(canon)
        if not algorithms:
            raise usage.UsageError("--digest-algorithms lists none")
        self["digest-algorithms"] = tuple(algorithms)
        self["user-table"] = None
        if self["users"]:
            from .sip.auth import load_users
            try:
                self["user-table"] = load_users(self["users"])
            except (OSError, ValueError) as e:
                raise usage.UsageError("--users: %s" % (e,))
            if not self["user-table"]:
                raise usage.UsageError("--users: %s lists no user" % (self["users"],))
        self["registrar"] = bool(self["registrar"] or self["users"] or self["registrar-db"])


def build_handler(options):
    handler = options["handler"]
    if options["answer-after"]:
        handler = AnswerAfter(handler, options["answer-after"])
    if options["max-duration"]:
        handler = MaxDuration(handler, options["max-duration"])
    return handler


def raise_open_files():
    """
    Raise the soft limit on open files to the hard one: every call holds
    two RTP/RTCP sockets, and released ones wait in the media pool, so a
    server taking a thousand calls a second needs thousands of descriptors
    (the usual soft limit is 1,024).  The plugin calls this, as it calls
    tune_gc(); an embedding application may.

    @return: the soft limit now in force (C{None} where there is none).
    """
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1048576)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def makeService(options, reactor=None):
    from .logs import set_level
    from .service.server import SIPServer, tune_gc
    set_level(options["log-level"])
    tune_gc()
    raise_open_files()
    t1 = options["t1"]
    server = SIPServer(
        reactor=reactor,
        listen=options["listen"],
        handler=build_handler(options),
        public_host=options["public-host"],
        rtp_ports=options["rtp-ports"],
        timers=TimerConfig(t1=t1, t2=max(4.0, 8 * t1), t4=5.0),
        rtcp_interval=options["rtcp-interval"],
        symmetric_rtp=not options["no-symmetric-rtp"],
        overload_delay=options["overload-delay"],
    )
    add_registration_services(server, options)
    return server


def add_registration_services(server, options):
    """
    The registrar and PBX routing (C{--registrar}, C{--users},
    C{--registrar-db}) and the outbound registrations (C{--register}).
    """
    registrar = None
    if options.get("registrar"):
        from .apps.pbx import PBXApp
        from .registrar.registrar import RegistrarPolicy
        from .registrar.store import MemoryLocationStore, SQLiteLocationStore
        from .service.registrar import Registrar
        if options.get("registrar-db"):
            store = SQLiteLocationStore(options["registrar-db"], server.reactor)
        else:
            store = MemoryLocationStore()
        registrar = Registrar(
            server.reactor, store, users=options.get("user-table"), realm=options["realm"],
            algorithms=options["digest-algorithms"],
            policy=RegistrarPolicy(min_expires=options["min-expires"],
                                   max_expires=options["max-expires"]))
        registrar.install(server)
        app = server.handler
        fallback = app if options["unrouted"] == "app" else None
        server.handler = PBXApp(server, registrar, fallback=fallback,
                                ring_timeout=options["ring-timeout"],
                                max_duration=options["max-duration"] or None, inbound=app)
    if options.get("register"):
        from .service.registration import RegistrationClient
        for aor, password, registrar_uri in options["register"]:
            client = RegistrationClient(server, aor, password, registrar_uri,
                                        expires=options["register-expires"])
            client.setServiceParent(server)
            if registrar is not None:
                registrar.trusted.append(client.is_incoming)
    return registrar
