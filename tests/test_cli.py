"""
Tests for the command lines: C{twistd rvoip} options and C{python -m
rvoip_twisted call}.
"""

from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted.__main__ import Options as CallerOptions, _positional_last
from rvoip_twisted.service.server import parse_listen
from rvoip_twisted.tap import Options


class TapOptionsTests(SynchronousTestCase):
    def test_defaults(self):
        """Without --listen the server listens on UDP and TCP 5060 with the echo app."""
        o = Options()
        o.parseOptions([])
        self.assertEqual(o["listen"], ["udp:5060", "tcp:5060"])
        self.assertEqual(o["rtp-ports"], (10000, 20000))
        self.assertEqual(o["app"], "echo")

    def test_listen_repeatable(self):
        """--listen can be given several times."""
        o = Options()
        o.parseOptions(["--listen", "udp:5070:interface=127.0.0.1", "--listen", "tcp:5070"])
        self.assertEqual(o["listen"], ["udp:5070:interface=127.0.0.1", "tcp:5070"])

    def test_bad_values(self):
        """Bad option values are usage errors, not tracebacks."""
        for argv in (["--listen", "sctp:5060"], ["--listen", "udp:99999"],
                     ["--rtp-ports", "20000-10000"], ["--rtp-ports", "x"],
                     ["--app", "nosuchapp"], ["--app", "tone:abc"],
                     ["--app", "play:/nonexistent.wav"], ["--answer-after", "-1"],
                     ["--log-level", "loud"]):
            o = Options()
            self.assertRaises(UsageError, o.parseOptions, argv)

    def test_overload_delay(self):
        """--overload-delay reaches the session layer; 0 turns it off; negative is refused."""
        from rvoip_twisted.tap import makeService
        o = Options()
        o.parseOptions(["--listen", "udp:0:interface=127.0.0.1"])
        self.assertEqual(o["overload-delay"], 0.25)
        self.assertEqual(makeService(o).transport.overload_delay, 0.25)
        o = Options()
        o.parseOptions(["--listen", "udp:0:interface=127.0.0.1", "--overload-delay", "0"])
        self.assertEqual(makeService(o).transport.overload_delay, 0)
        self.assertRaises(UsageError, Options().parseOptions, ["--overload-delay", "-1"])
        self.assertRaises(UsageError, Options().parseOptions, ["--overload-delay", "x"])

    def test_parse_listen_ipv6(self):
        """An IPv6 interface is given with escaped colons, strports style."""
        self.assertEqual(parse_listen(r"udp:5060:interface=\:\:1"), ("UDP", 5060, "::1"))
        self.assertEqual(parse_listen("tcp:0"), ("TCP", 0, ""))


class CallerOptionsTests(SynchronousTestCase):
    def test_options_after_uri(self):
        """call URI --duration 2 parses as well as call --duration 2 URI."""
        argv = _positional_last(["call", "sip:a@127.0.0.1:5060", "--duration", "2",
                                 "--dtmf", "12", "-u", "bob", "--codec=pcma"])
        o = CallerOptions()
        o.parseOptions(argv)
        sub = o.subOptions
        self.assertEqual(sub["uri"], "sip:a@127.0.0.1:5060")
        self.assertEqual(sub["duration"], 2.0)
        self.assertEqual(sub["dtmf"], "12")
        self.assertEqual(sub["user"], "bob")
        self.assertEqual(sub["codec"], "pcma")

    def test_missing_uri(self):
        """call without a URI is a usage error."""
        o = CallerOptions()
        self.assertRaises(UsageError, o.parseOptions, ["call"])
