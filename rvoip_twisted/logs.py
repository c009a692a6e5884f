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
