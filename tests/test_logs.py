"""
The server's log level (rvoip_twisted.logs, --log-level): the server's loggers pass their
events through a level filter before Twisted's global publisher.
"""

from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from rvoip_twisted import logs
from rvoip_twisted.logs import LEVEL, Logger, set_level


class _Source:
    log = Logger()


class LevelTests(SynchronousTestCase):
    def setUp(self):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.addCleanup(set_level, "info")

    def logged(self):
        source = _Source()
        for level in ("debug", "info", "warn", "error"):
            getattr(source.log, level)("a {what} line", what=level)
        return [e["log_level"] for e in self.events if e.get("log_namespace", "").endswith("_Source")]

    def test_info_is_the_default(self):
        """At info (the default), info and above reach the publisher; the flags say so."""
        set_level("info")
        self.assertEqual(self.logged(), [LogLevel.info, LogLevel.warn, LogLevel.error])
        self.assertEqual((LEVEL.debug, LEVEL.info), (False, True))

    def test_warn(self):
        """At warn, the info lines go nowhere; warnings and errors pass."""
        set_level("warn")
        self.assertEqual(self.logged(), [LogLevel.warn, LogLevel.error])
        self.assertEqual((LEVEL.debug, LEVEL.info), (False, False))

    def test_error(self):
        set_level("error")
        self.assertEqual(self.logged(), [LogLevel.error])

    def test_debug(self):
        """At debug, every level, and the per-message flag is on."""
        set_level("debug")
        self.assertEqual(self.logged(),
                         [LogLevel.debug, LogLevel.info, LogLevel.warn, LogLevel.error])
        self.assertEqual((LEVEL.debug, LEVEL.info), (True, True))

    def test_failures_pass_at_error(self):
        """A failure logged by the server (critical) passes at any level."""
        set_level("error")
        try:
            1 / 0
        except ZeroDivisionError:
            _Source().log.failure("it broke")
        [event] = [e for e in self.events if e.get("log_format") == "it broke"]
        self.assertEqual(event["log_level"], LogLevel.critical)
        self.flushLoggedErrors(ZeroDivisionError)

    def test_unknown_level(self):
        self.assertRaises(ValueError, set_level, "loud")

    def test_loggers_use_the_filter(self):
        """The server's classes log through the filter (not straight to the publisher)."""
        from rvoip_twisted.service.sessions import SessionManager
        from rvoip_twisted.transport.sip import SIPTransport
        for cls in (SessionManager, SIPTransport):
            self.assertIs(cls._log.observer, logs.observer)
