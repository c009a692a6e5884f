"""
RTCP (RFC 3550 section 6): sender and receiver reports, SDES, BYE, compound
packets, NTP timestamps and round-trip time.

A compound packet is a plain list of packet values;
L{parse_compound} and L{serialize_compound} convert.  Packet types this
module does not decode (APP, RTPFB, PSFB, XR, ...) are kept as
L{UnknownRtcp} so a compound packet round-trips.

All values are frozen attrs classes: RTCP runs every few seconds per call,
far from the per-packet hot path.
"""

import struct

import attrs

__all__ = [
    "RtcpParseError",
    "ReportBlock",
    "SenderReport",
    "ReceiverReport",
    "SourceDescription",
    "Bye",
    "UnknownRtcp",
    "parse_compound",
    "serialize_compound",
    "is_rtcp",
    "NTP_EPOCH_OFFSET",
    "ntp_from_unix",
    "unix_from_ntp",
    "ntp_middle32",
    "rtt_seconds",
    "SDES_CNAME",
    "PT_SR",
    "PT_RR",
    "PT_SDES",
    "PT_BYE",
    "PT_APP",
]

PT_SR = 200
PT_RR = 201
PT_SDES = 202
PT_BYE = 203
PT_APP = 204

SDES_CNAME = 1

#: Seconds from the NTP epoch (1900) to the Unix epoch (1970).
NTP_EPOCH_OFFSET = 2208988800

_HEADER = struct.Struct("!BBH")
_SR_INFO = struct.Struct("!IQIII")  # SSRC, NTP, RTP ts, packets, octets
_BLOCK = struct.Struct("!IIIIII")  # SSRC, frac|cumlost, ext seq, jitter, LSR, DLSR
_U32 = struct.Struct("!I")


class RtcpParseError(ValueError):
    """
    The bytes are not a valid RTCP (compound) packet.
    """


# --- time -----------------------------------------------------------------


def ntp_from_unix(seconds):
    """
    A 64-bit NTP timestamp (32.32 fixed point since 1900) for a Unix time.
    """
    return int(round((seconds + NTP_EPOCH_OFFSET) * 4294967296.0)) & 0xFFFFFFFFFFFFFFFF


def unix_from_ntp(ntp):
    """
    The Unix time of a 64-bit NTP timestamp.
    """
    return ntp / 4294967296.0 - NTP_EPOCH_OFFSET


def ntp_middle32(ntp):
    """
    The middle 32 bits of a 64-bit NTP timestamp (16.16 fixed point), the
    form used by LSR and by round-trip arithmetic.
    """
    return (ntp >> 16) & 0xFFFFFFFF


def rtt_seconds(arrival_ntp, lsr, dlsr):
    """
    The round-trip time from a report block (RFC 3550 section 6.4.1):
    C{A - LSR - DLSR}, where C{A} is when the report arrived.

    @param arrival_ntp: the 64-bit NTP time the report arrived.
    @param lsr: the block's last-SR field (middle 32 bits of our SR's NTP).
    @param dlsr: the block's delay-since-last-SR, in 1/65536 s.
    @return: seconds (clamped at 0), or C{None} when C{lsr} is 0 (the peer
        has not seen a sender report from us yet).
    """
    if not lsr:
        return None
    rtt = (ntp_middle32(arrival_ntp) - lsr - dlsr) & 0xFFFFFFFF
    if rtt & 0x80000000:  # negative: clocks or a bogus block
        return 0.0
    return rtt / 65536.0


# --- packets ----------------------------------------------------------------


def _u32(value):
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError("%r is not a 32-bit unsigned value" % (value,))


@attrs.frozen
class ReportBlock:
    """
    One reception report (RFC 3550 section 6.4.1).

    @ivar fraction_lost: 0..255, the fraction lost since the previous
        report, times 256.
    @ivar cumulative_lost: signed 24-bit (duplicates can make it negative).
    @ivar jitter: interarrival jitter in timestamp units.
    """

    ssrc: int = attrs.field(validator=lambda i, a, v: _u32(v))
    fraction_lost: int = attrs.field(default=0, validator=attrs.validators.and_(
        attrs.validators.ge(0), attrs.validators.le(255)))
    cumulative_lost: int = attrs.field(default=0, validator=attrs.validators.and_(
        attrs.validators.ge(-0x800000), attrs.validators.le(0x7FFFFF)))
    highest_seq: int = attrs.field(default=0, validator=lambda i, a, v: _u32(v))
    jitter: int = attrs.field(default=0, validator=lambda i, a, v: _u32(v))
    lsr: int = attrs.field(default=0, validator=lambda i, a, v: _u32(v))
    dlsr: int = attrs.field(default=0, validator=lambda i, a, v: _u32(v))

    def _serialize(self):
        return _BLOCK.pack(
            self.ssrc,
            (self.fraction_lost << 24) | (self.cumulative_lost & 0xFFFFFF),
            self.highest_seq,
            self.jitter,
            self.lsr,
            self.dlsr,
        )

    @classmethod
    def _parse(cls, data, offset):
        ssrc, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        cumulative = lost & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        return cls(ssrc, lost >> 24, cumulative, highest, jitter, lsr, dlsr)


def _blocks(value):
    return tuple(value)


def _check_blocks(instance, attribute, value):
    if len(value) > 31:
        raise ValueError("at most 31 report blocks per packet")


@attrs.frozen
class SenderReport:
    """
    SR (PT 200).

    @ivar ntp_timestamp: 64-bit NTP time of this report.
    @ivar rtp_timestamp: the RTP timestamp of the same instant.
    """

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple = attrs.field(default=(), converter=_blocks, validator=_check_blocks)
    extension: bytes = b""

    packet_type = PT_SR

    def _serialize(self):
        body = _SR_INFO.pack(
            self.ssrc,
            self.ntp_timestamp,
            self.rtp_timestamp & 0xFFFFFFFF,
            self.packet_count & 0xFFFFFFFF,
            self.octet_count & 0xFFFFFFFF,
        )
        body += b"".join(block._serialize() for block in self.reports) + self.extension
        return len(self.reports), body

    @classmethod
    def _parse(cls, count, body):
        if len(body) < 24 + 24 * count:
            raise RtcpParseError("SR too short for %d report blocks" % (count,))
        ssrc, ntp, rtp_ts, packets, octets = _SR_INFO.unpack_from(body, 0)
        reports = [ReportBlock._parse(body, 24 + 24 * i) for i in range(count)]
        return cls(ssrc, ntp, rtp_ts, packets, octets, reports, bytes(body[24 + 24 * count:]))


@attrs.frozen
class ReceiverReport:
    """
    RR (PT 201).
    """

    ssrc: int
    reports: tuple = attrs.field(default=(), converter=_blocks, validator=_check_blocks)
    extension: bytes = b""

    packet_type = PT_RR

    def _serialize(self):
        body = _U32.pack(self.ssrc)
        body += b"".join(block._serialize() for block in self.reports) + self.extension
        return len(self.reports), body

    @classmethod
    def _parse(cls, count, body):
        if len(body) < 4 + 24 * count:
            raise RtcpParseError("RR too short for %d report blocks" % (count,))
        (ssrc,) = _U32.unpack_from(body, 0)
        reports = [ReportBlock._parse(body, 4 + 24 * i) for i in range(count)]
        return cls(ssrc, reports, bytes(body[4 + 24 * count:]))


def _chunks(value):
    return tuple((ssrc, tuple((t, bytes(v)) for t, v in items)) for ssrc, items in value)


@attrs.frozen
class SourceDescription:
    """
    SDES (PT 202): C{chunks} is a tuple of C{(ssrc, ((item_type, value),
    ...))}; item values are bytes (UTF-8 for CNAME).
    """

    chunks: tuple = attrs.field(converter=_chunks)

    packet_type = PT_SDES

    @classmethod
    def cname(cls, ssrc, cname):
        """
        The usual one-chunk SDES carrying a CNAME.
        """
        if isinstance(cname, str):
            cname = cname.encode("utf-8")
        return cls(((ssrc, ((SDES_CNAME, cname),)),))

    def get_cname(self, ssrc):
        """
        The CNAME (str) given for C{ssrc}, or C{None}.
        """
        for chunk_ssrc, items in self.chunks:
            if chunk_ssrc == ssrc:
                for item_type, value in items:
                    if item_type == SDES_CNAME:
                        return value.decode("utf-8", "replace")
        return None

    def _serialize(self):
        out = bytearray()
        for ssrc, items in self.chunks:
            chunk = bytearray(_U32.pack(ssrc))
            for item_type, value in items:
                if len(value) > 255:
                    raise ValueError("SDES item longer than 255 bytes")
                chunk += bytes((item_type, len(value))) + value
            chunk += b"\x00" * (4 - len(chunk) % 4)  # the end item plus padding
            out += chunk
        return len(self.chunks), bytes(out)

    @classmethod
    def _parse(cls, count, body):
        chunks = []
        offset = 0
        size = len(body)
        for _ in range(count):
            if offset + 4 > size:
                raise RtcpParseError("SDES chunk truncated")
            (ssrc,) = _U32.unpack_from(body, offset)
            offset += 4
            items = []
            while True:
                if offset >= size:
                    raise RtcpParseError("SDES items not terminated")
                item_type = body[offset]
                if item_type == 0:
                    offset += 4 - offset % 4  # skip to the next 32-bit boundary
                    break
                if offset + 2 > size or offset + 2 + body[offset + 1] > size:
                    raise RtcpParseError("SDES item truncated")
                length = body[offset + 1]
                items.append((item_type, bytes(body[offset + 2:offset + 2 + length])))
                offset += 2 + length
            chunks.append((ssrc, items))
        return cls(chunks)


@attrs.frozen
class Bye:
    """
    BYE (PT 203): the sources leaving, and an optional reason (bytes).
    """

    ssrcs: tuple = attrs.field(converter=tuple)
    reason: bytes = b""

    packet_type = PT_BYE

    def _serialize(self):
        body = b"".join(_U32.pack(s) for s in self.ssrcs)
        if self.reason:
            if len(self.reason) > 255:
                raise ValueError("BYE reason longer than 255 bytes")
            reason = bytes((len(self.reason),)) + self.reason
            body += reason + b"\x00" * (-len(reason) % 4)
        return len(self.ssrcs), body

    @classmethod
    def _parse(cls, count, body):
        if len(body) < 4 * count:
            raise RtcpParseError("BYE truncated")
        ssrcs = struct.unpack_from("!%dI" % count, body, 0)
        reason = b""
        offset = 4 * count
        if offset < len(body):
            length = body[offset]
            if offset + 1 + length > len(body):
                raise RtcpParseError("BYE reason truncated")
            reason = bytes(body[offset + 1:offset + 1 + length])
        return cls(ssrcs, reason)


@attrs.frozen
class UnknownRtcp:
    """
    An RTCP packet type not decoded here, kept verbatim.

    @ivar count: the 5-bit count/subtype field.
    """

    packet_type: int
    count: int
    body: bytes

    def _serialize(self):
        return self.count, self.body


_PARSERS = {
    PT_SR: SenderReport._parse,
    PT_RR: ReceiverReport._parse,
    PT_SDES: SourceDescription._parse,
    PT_BYE: Bye._parse,
}


def is_rtcp(data):
    """
    Whether a datagram on a multiplexed RTP/RTCP port is RTCP (RFC 5761
    section 4: the second byte is 192..223).
    """
    return len(data) >= 2 and 192 <= data[1] <= 223


def parse_compound(data):
    """
    Parse a (compound) RTCP datagram into a list of packets.

    @raise RtcpParseError: malformed input, including any truncation.
    """
    packets = []
    offset = 0
    size = len(data)
    if size < 4:
        raise RtcpParseError("RTCP packet too short (%d bytes)" % (size,))
    while offset < size:
        if offset + 4 > size:
            raise RtcpParseError("RTCP header truncated")
        first, packet_type, words = _HEADER.unpack_from(data, offset)
        if first >> 6 != 2:
            raise RtcpParseError("RTCP version %d, not 2" % (first >> 6,))
        if not 192 <= packet_type <= 223:
            raise RtcpParseError("RTCP packet type %d out of range" % (packet_type,))
        end = offset + 4 + 4 * words
        if end > size:
            raise RtcpParseError("RTCP packet truncated")
        body_end = end
        if first & 0x20:
            padding = data[end - 1]
            if padding == 0 or padding > end - offset - 4:
                raise RtcpParseError("RTCP padding length %d invalid" % (padding,))
            body_end = end - padding
        body = memoryview(data)[offset + 4:body_end]
        count = first & 0x1F
        parser = _PARSERS.get(packet_type)
        try:
            if parser is None:
                packets.append(UnknownRtcp(packet_type, count, bytes(body)))
            else:
                packets.append(parser(count, body))
        except (struct.error, IndexError, ValueError) as e:
            if isinstance(e, RtcpParseError):
                raise
            raise RtcpParseError("malformed RTCP packet type %d: %s" % (packet_type, e))
        offset = end
    return packets


def serialize_compound(packets):
    """
    Serialize a list of RTCP packets into one datagram.
    """
    out = []
    for packet in packets:
        count, body = packet._serialize()
        if len(body) % 4:
            raise ValueError("RTCP packet body is not 32-bit aligned")
        out.append(_HEADER.pack(0x80 | count, packet.packet_type, len(body) // 4))
        out.append(body)
    return b"".join(out)
