"""
The built-in applications, by name for C{--app NAME[:ARG]}: C{echo},
C{tone[:HZ]}, C{play:FILE.wav}, C{record:DIR}.
"""

from twisted.python.usage import UsageError


def make_app(spec, reactor):
    """Build the L{ICallHandler} named by C{NAME[:ARG]}; UsageError if unknown."""
    name, _, arg = spec.partition(":")
    name = name.strip().lower()
    if name == "echo":
        from .echo import EchoApp
        return EchoApp()
    if name == "tone":
        from .tone import ToneApp
        try:
            hz = float(arg) if arg else 440.0
        except ValueError:
            raise UsageError("tone takes a frequency in Hz: --app tone:440")
        if not 20 <= hz <= 3900:
            raise UsageError("tone frequency must be within 20-3900 Hz")
        return ToneApp(hz)
    if name == "play":
        from .play import PlayApp
        if not arg:
            raise UsageError("play needs a file: --app play:FILE.wav")
        return PlayApp(arg)
    if name == "record":
        from .record import RecordApp
        if not arg:
            raise UsageError("record needs a directory: --app record:DIR")
        return RecordApp(arg, reactor)
    raise UsageError("unknown app %r (echo, tone[:HZ], play:FILE.wav, record:DIR)" % (name,))
