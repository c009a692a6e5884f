"""
The codec registry.

A L{Codec} is everything the session layer needs to know about an audio
codec: its SDP name, static payload type (if any), RTP clock rate, and
functions between slin16 at 8 kHz and RTP payloads.  Adding G.722 or Opus
means registering one more L{Codec} here; nothing in the session layer
changes.

L{Codec} objects also satisfy what L{rvoip_twisted.sdp.negotiate} expects of
a codec description (C{name}, C{clock_rate}, C{channels}, C{payload_type},
C{fmtp}), so a list of them is a negotiation preference.
"""

import attrs

from . import g711

__all__ = [
    "Codec",
    "CodecRegistry",
    "REGISTRY",
    "PCMU",
    "PCMA",
    "TELEPHONE_EVENT",
    "get_codec",
]


@attrs.frozen
class Codec:
    """
    One codec.

    @ivar name: the SDP encoding name (C{a=rtpmap}), e.g. C{"PCMU"}.
    @ivar payload_type: the static payload type, or the dynamic one offered
        by default.
    @ivar clock_rate: the RTP clock rate (timestamp units per second).
    @ivar encode: slin16 at 8 kHz bytes -> payload bytes, or C{None} for a
        codec that carries no audio (telephone-event).
    @ivar decode: payload bytes -> slin16 at 8 kHz bytes, or C{None}.
    @ivar silence_byte: for byte-per-sample codecs, the byte a silent frame
        is made of (C{None} otherwise: silence is then encoded).
    @ivar bytes_per_sample: payload bytes per 8 kHz sample, for
        constant-rate codecs (1 for G.711), else C{None}.
    """

    name: str
    payload_type: int
    clock_rate: int
    encode: object = attrs.field(default=None, eq=False, repr=False)
    decode: object = attrs.field(default=None, eq=False, repr=False)
    channels: int = 1
    fmtp: str = None
    silence_byte: int = None
    bytes_per_sample: int = None

    @property
    def is_audio(self):
        """Whether this codec carries audio (telephone-event does not)."""
        return self.encode is not None

    @property
    def static(self):
        """Whether the payload type is a static (RFC 3551) one."""
        return self.payload_type < 96

    def timestamp_increment(self, ptime_ms):
        """RTP timestamp units in one packet of C{ptime_ms} milliseconds."""
        return self.clock_rate * ptime_ms // 1000

    def silence_payload(self, samples=160):
        """
        The payload of a silent frame of C{samples} 8 kHz samples.
        """
        if self.silence_byte is not None:
            return bytes((self.silence_byte,)) * (samples * self.bytes_per_sample)
        return self.encode(bytes(2 * samples))


class CodecRegistry:
    """
    Codecs by (case-insensitive) name and by static payload type.
    """

    def __init__(self, codecs=()):
        self._by_name = {}
        self._by_static_pt = {}
        for codec in codecs:
            self.register(codec)

    def register(self, codec):
        """
        Add (or replace) a codec.
        """
        self._by_name[codec.name.lower(), codec.clock_rate] = codec
        self._by_name.setdefault(codec.name.lower(), codec)
        if codec.static:
            self._by_static_pt[codec.payload_type] = codec

    def get(self, name, clock_rate=None):
        """
        The codec called C{name} (at C{clock_rate} if given), or C{None}.
        """
        key = (name.lower(), clock_rate) if clock_rate is not None else name.lower()
        return self._by_name.get(key)

    def by_static_payload_type(self, payload_type):
        """The codec with this static payload type, or C{None}."""
        return self._by_static_pt.get(payload_type)

    def names(self):
        """The registered names, in registration order."""
        return [key for key in self._by_name if isinstance(key, str)]

    def preferences(self, names, dtmf=True):
        """
        The codecs for a negotiation, in preference order, plus
        telephone-event when C{dtmf}.

        @raise KeyError: an unknown codec name.
        """
        out = []
        for name in names:
            codec = self.get(name)
            if codec is None:
                raise KeyError("unknown codec %r" % (name,))
            out.append(codec)
        if dtmf and not any(c.name.lower() == "telephone-event" for c in out):
            out.append(self.get("telephone-event"))
        return out


PCMU = Codec(
    name="PCMU",
    payload_type=0,
    clock_rate=8000,
    encode=g711.ulaw_encode,
    decode=g711.ulaw_decode,
    silence_byte=g711.ULAW_SILENCE,
    bytes_per_sample=1,
)

PCMA = Codec(
    name="PCMA",
    payload_type=8,
    clock_rate=8000,
    encode=g711.alaw_encode,
    decode=g711.alaw_decode,
    silence_byte=g711.ALAW_SILENCE,
    bytes_per_sample=1,
)

#: RFC 4733 events: known for SDP, carries no audio (see L{rvoip_twisted.rtp.dtmf}).
TELEPHONE_EVENT = Codec(name="telephone-event", payload_type=101, clock_rate=8000, fmtp="0-16")

REGISTRY = CodecRegistry([PCMU, PCMA, TELEPHONE_EVENT])


def get_codec(name):
    """
    A codec from the default registry.

    @raise KeyError: unknown.
    """
    codec = REGISTRY.get(name)
    if codec is None:
        raise KeyError("unknown codec %r" % (name,))
    return codec
