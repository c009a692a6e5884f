"""
Log verbosity.  twistd's observer writes every level, so the one-line-per-
SIP-message debug events are guarded by a flag checked before the event is
built: with debug off, the per-message path pays one attribute read.
"""


class _Level:
    debug = False


LEVEL = _Level()


def set_level(name):
    """C{"debug"} turns the per-message lines on; anything else turns them off."""
    LEVEL.debug = name == "debug"


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
