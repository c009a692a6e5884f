"""
Log verbosity (C{--log-level}: debug, info, warn or error).

The server's loggers are L{Logger}s whose events pass a level filter
before they reach Twisted's global log publisher (and twistd's file): an
event below the level set with L{set_level} goes nowhere.  twistd's own
observer writes every level, so without the filter C{--log-level warn}
would still write a line per call.  Twisted's own lines (ports opened and
closed, the reactor's start and stop) do not pass the filter; twistd
writes them as it does for any application.

The lines logged per SIP message (debug) or per call (info) are also
guarded at their source by a flag (L{LEVEL}), checked before the event or
its text is built: below their level, the per-message and per-call paths
pay one attribute read.
"""

from twisted.logger import (
    FilteringLogObserver, LogLevel, PredicateResult, globalLogPublisher,
)
from twisted.logger import Logger as _TwistedLogger

__all__ = ["LEVEL", "Logger", "set_level", "LineBatch"]

#: the names C{--log-level} takes, and the least level each lets through.
LEVELS = {"debug": LogLevel.debug, "info": LogLevel.info, "warn": LogLevel.warn,
          "error": LogLevel.error}
_PRIORITY = {LogLevel.debug: 0, LogLevel.info: 1, LogLevel.warn: 2, LogLevel.error: 3,
             LogLevel.critical: 4}


class _Level:
    #: the per-message lines are on (C{--log-level debug})
    debug = False
    #: the per-call lines are on (info or debug)
    info = True
    #: the least level logged
    least = LogLevel.info


LEVEL = _Level()


def _at_level(event):
    level = event.get("log_level")
    if _PRIORITY.get(level, 4) >= _PRIORITY[LEVEL.least]:
        return PredicateResult.maybe
    return PredicateResult.no


#: where the server's loggers send their events: the level filter, then
#: Twisted's global publisher.
observer = FilteringLogObserver(globalLogPublisher, [_at_level])


def Logger(namespace=None, source=None):
    """A Twisted C{Logger} whose events go through the server's level filter."""
    return _TwistedLogger(namespace, source, observer=observer)


def set_level(name):
    """
    Log C{name} (C{"debug"}, C{"info"}, C{"warn"} or C{"error"}) and above;
    C{"debug"} also turns the per-message lines on.

    @raise ValueError: another name.
    """
    if name not in LEVELS:
        raise ValueError("log level is one of %s, not %r" % (", ".join(LEVELS), name))
    LEVEL.least = LEVELS[name]
    LEVEL.debug = name == "debug"
    LEVEL.info = name in ("debug", "info")


class LineBatch:
    """
    Info lines logged a batch at a time: the lines added within C{delay}
    seconds go out as one event, its text the lines joined by newlines
    (Twisted's text observers put a tab before each line after the first).

    For lines written once per call: twistd's text observer formats the
    time, the system and the text of every event and flushes its file
    after each one, which cost about a tenth of a call's CPU when every
    call had an event of its own.  Batched, that is paid once a second.

    @ivar field: the event field that carries the batch's items (one per
        line, for structured observers).
    @ivar closed: whether L{close} was called (and not L{open} since): each
        line added is then logged at once, with no delayed call.
    """

    def __init__(self, reactor, log, field, delay=1.0):
        self._reactor = reactor
        self._log = log
        self.field = field
        self.delay = delay
        self._lines = []
        self._items = []
        self._call = None
        self.closed = False

    def add(self, line, item):
        """Add one line (plain text, logged as it is) and its item."""
        self._lines.append(line)
        self._items.append(item)
        if self.closed:
            self.flush()
        elif self._call is None:
            self._call = self._reactor.callLater(self.delay, self._due)

    def close(self):
        """Log what has been added; from now on, log each line when added."""
        self.closed = True
        self.flush()

    def open(self):
        """Batch again (after L{close})."""
        self.closed = False

    def _due(self):
        self._call = None
        self.flush()

    def flush(self):
        """Log what has been added now (nothing if nothing has)."""
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None
        lines, items = self._lines, self._items
        if not lines:
            return
        self._lines = []
        self._items = []
        text = "\n".join(lines)
        if "{" in text or "}" in text:
            # The text is the event's format: doubled braces come out single,
            # and the formatter finds no field to substitute.
            text = text.replace("{", "{{").replace("}", "}}")
        self._log.info(text, **{self.field: items})
