"""
SDP: the session description model (L{model}) and RFC 3264 offer/answer
(L{negotiate}).  Sans-IO: bytes in, values and bytes out.
"""

from .model import (
    DIRECTIONS,
    STATIC_PAYLOAD_TYPES,
    Connection,
    MediaDescription,
    Origin,
    RtpMap,
    SdpError,
    SdpParseError,
    SessionDescription,
    parse,
)
from .negotiate import (
    CodecSpec,
    NegotiatedStream,
    OfferAnswer,
    SdpNegotiationError,
    intersect_directions,
    reverse_direction,
)

__all__ = [
    "DIRECTIONS",
    "STATIC_PAYLOAD_TYPES",
    "Connection",
    "MediaDescription",
    "Origin",
    "RtpMap",
    "SdpError",
    "SdpParseError",
    "SessionDescription",
    "parse",
    "CodecSpec",
    "NegotiatedStream",
    "OfferAnswer",
    "SdpNegotiationError",
    "intersect_directions",
    "reverse_direction",
]
