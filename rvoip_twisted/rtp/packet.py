"""
RTP data packets (RFC 3550 section 5.1) and sequence/timestamp arithmetic.

Two ways in, sharing one validator:

  - L{RtpPacket.parse} / L{RtpPacket.serialize}: a small value object with
    every header field (CSRCs, header extension, padding);
  - L{unpack} / L{pack}: the hot path, plain tuples and one precompiled
    C{struct}, used per packet by the media session.

Every malformed input (including every truncated prefix of a valid packet)
raises L{RtpParseError}, never C{struct.error} or C{IndexError}.
"""

import struct

__all__ = [
    "RtpParseError",
    "RtpPacket",
    "unpack",
    "pack",
    "seq_diff",
    "seq_lt",
    "seq_gt",
    "ts_diff",
    "ts_lt",
    "ts_gt",
    "RTP_HEADER",
]

#: The fixed 12-byte header: V/P/X/CC, M/PT, sequence, timestamp, SSRC.
RTP_HEADER = struct.Struct("!BBHII")
_pack_header = RTP_HEADER.pack
_unpack_header = RTP_HEADER.unpack_from
_EXT = struct.Struct("!HH")


class RtpParseError(ValueError):
    """
    The bytes are not a valid RTP packet.
    """


# --- wraparound arithmetic ----------------------------------------------


def seq_diff(a, b):
    """
    The signed distance C{a - b} between two 16-bit sequence numbers,
    in [-32768, 32767] (so 0 - 65535 is +1).
    """
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def seq_lt(a, b):
    """C{a} comes before C{b} in 16-bit sequence space."""
    return seq_diff(a, b) < 0


def seq_gt(a, b):
    """C{a} comes after C{b} in 16-bit sequence space."""
    return seq_diff(a, b) > 0


def ts_diff(a, b):
    """
    The signed distance C{a - b} between two 32-bit RTP timestamps.
    """
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def ts_lt(a, b):
    """C{a} is earlier than C{b} in 32-bit timestamp space."""
    return ts_diff(a, b) < 0


def ts_gt(a, b):
    """C{a} is later than C{b} in 32-bit timestamp space."""
    return ts_diff(a, b) > 0


# --- hot path -------------------------------------------------------------


def pack(payload_type, seq, timestamp, ssrc, payload, marker=False):
    """
    Serialize a packet without CSRCs, extension or padding.
    """
    return (
        _pack_header(
            0x80, (0x80 | payload_type) if marker else payload_type, seq, timestamp, ssrc
        )
        + payload
    )


def _body_bounds(data):
    """
    Validate the variable part of a header; return (first payload byte,
    end of payload, CSRC count, extension or None, padding length).
    """
    size = len(data)
    if size < 12:
        raise RtpParseError("RTP packet too short (%d bytes)" % (size,))
    first = data[0]
    if first >> 6 != 2:
        raise RtpParseError("RTP version %d, not 2" % (first >> 6,))
    offset = 12 + 4 * (first & 0x0F)
    if offset > size:
        raise RtpParseError("RTP CSRC list truncated")
    extension = None
    if first & 0x10:
        if offset + 4 > size:
            raise RtpParseError("RTP header extension truncated")
        profile, words = _EXT.unpack_from(data, offset)
        start = offset + 4
        offset = start + 4 * words
        if offset > size:
            raise RtpParseError("RTP header extension truncated")
        extension = (profile, bytes(data[start:offset]))
    end = size
    padding = 0
    if first & 0x20:
        padding = data[-1]
        if padding == 0 or padding > size - offset:
            raise RtpParseError("RTP padding length %d invalid" % (padding,))
        end = size - padding
    return offset, end, first & 0x0F, extension, padding


def unpack(data):
    """
    Parse a packet on the hot path.

    @return: C{(payload_type, marker, seq, timestamp, ssrc, payload)}.
    @raise RtpParseError: malformed input.
    """
    if len(data) >= 12 and data[0] == 0x80:  # no padding/extension/CSRCs
        _, second, seq, timestamp, ssrc = _unpack_header(data)
        return second & 0x7F, second >> 7, seq, timestamp, ssrc, data[12:]
    offset, end, _, _, _ = _body_bounds(data)
    _, second, seq, timestamp, ssrc = _unpack_header(data)
    return second & 0x7F, second >> 7, seq, timestamp, ssrc, data[offset:end]


class RtpPacket:
    """
    One RTP packet, every field exposed.

    @ivar extension: C{None} or C{(profile, data)} where C{data} is a
        multiple of four bytes.
    @ivar padding: the number of padding bytes to add when serializing (and
        the number found when parsing), 0 for none.
    """

    __slots__ = (
        "payload_type",
        "marker",
        "sequence_number",
        "timestamp",
        "ssrc",
        "payload",
        "csrcs",
        "extension",
        "padding",
    )

    def __init__(
        self,
        payload_type,
        sequence_number,
        timestamp,
        ssrc,
        payload=b"",
        marker=False,
        csrcs=(),
        extension=None,
        padding=0,
    ):
        if not 0 <= payload_type <= 127:
            raise ValueError("payload type %r out of range" % (payload_type,))
        if len(csrcs) > 15:
            raise ValueError("at most 15 CSRCs")
        if extension is not None and len(extension[1]) % 4:
            raise ValueError("header extension data must be 32-bit aligned")
        if not 0 <= padding <= 255:
            raise ValueError("padding %r out of range" % (padding,))
        self.payload_type = payload_type
        self.sequence_number = sequence_number & 0xFFFF
        self.timestamp = timestamp & 0xFFFFFFFF
        self.ssrc = ssrc & 0xFFFFFFFF
        self.payload = bytes(payload)
        self.marker = bool(marker)
        self.csrcs = tuple(csrcs)
        self.extension = extension
        self.padding = padding

    @classmethod
    def parse(cls, data):
        """
        Parse bytes into a packet.

        @raise RtpParseError: malformed input.
        """
        offset, end, count, extension, padding = _body_bounds(data)
        _, second, seq, timestamp, ssrc = _unpack_header(data)
        csrcs = struct.unpack_from("!%dI" % count, data, 12) if count else ()
        return cls(
            second & 0x7F,
            seq,
            timestamp,
            ssrc,
            data[offset:end],
            marker=second >> 7,
            csrcs=csrcs,
            extension=extension,
            padding=padding,
        )

    def serialize(self):
        """
        The packet as bytes.
        """
        first = 0x80 | len(self.csrcs)
        parts = []
        if self.extension is not None:
            first |= 0x10
        if self.padding:
            first |= 0x20
        parts.append(
            _pack_header(
                first,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence_number,
                self.timestamp,
                self.ssrc,
            )
        )
        if self.csrcs:
            parts.append(struct.pack("!%dI" % len(self.csrcs), *self.csrcs))
        if self.extension is not None:
            profile, data = self.extension
            parts.append(_EXT.pack(profile, len(data) // 4))
            parts.append(data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)

    def _key(self):
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other):
        if not isinstance(other, RtpPacket):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return (
            "<RtpPacket pt=%d seq=%d ts=%d ssrc=%08x marker=%d payload=%d bytes>"
            % (
                self.payload_type,
                self.sequence_number,
                self.timestamp,
                self.ssrc,
                self.marker,
                len(self.payload),
            )
        )
