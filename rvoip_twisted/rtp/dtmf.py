"""
RFC 4733 telephone-events (DTMF digits carried in RTP).

The payload is four bytes: event (8 bits), E (end) bit, R bit, volume
(6 bits, -dBm0), duration (16 bits, timestamp units).  All the packets of
one event share the RTP timestamp of the event's start; that is what the
receiver keys on.
"""

import struct

__all__ = [
    "DtmfParseError",
    "EVENT_CODES",
    "digit_to_event",
    "event_to_digit",
    "parse_event",
    "serialize_event",
    "DtmfReceiver",
    "dtmf_packets",
]

_EVENT = struct.Struct("!BBH")

#: Digits in event-code order: 0-9 are events 0-9, then * # A B C D.
EVENT_CODES = "0123456789*#ABCD"
_FLASH = 16
_MAX_DURATION = 0xFFFF


class DtmfParseError(ValueError):
    """
    A telephone-event payload shorter than four bytes.
    """


def digit_to_event(digit):
    """
    The event code of a DTMF digit (C{"0"}-C{"9"}, C{"*"}, C{"#"},
    C{"A"}-C{"D"}, case-insensitive; C{"!"} for a hook flash).

    @raise ValueError: not a DTMF digit.
    """
    if digit == "!":
        return _FLASH
    code = EVENT_CODES.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise ValueError("%r is not a DTMF digit" % (digit,))
    return code


def event_to_digit(event):
    """
    The digit for an event code, C{"!"} for a flash, C{None} for events
    that are not DTMF (tones, line events).
    """
    if event < 16:
        return EVENT_CODES[event]
    if event == _FLASH:
        return "!"
    return None


def parse_event(payload):
    """
    @return: C{(event, end, volume, duration)}.
    @raise DtmfParseError: fewer than four bytes.
    """
    if len(payload) < 4:
        raise DtmfParseError("telephone-event payload of %d bytes" % (len(payload),))
    event, flags, duration = _EVENT.unpack_from(payload)
    return event, bool(flags & 0x80), flags & 0x3F, duration


def serialize_event(event, end, volume, duration):
    """
    The four-byte payload.
    """
    return _EVENT.pack(
        event, (0x80 if end else 0) | (volume & 0x3F), min(duration, _MAX_DURATION)
    )


class DtmfReceiver:
    """
    Turns telephone-event packets into one report per event.

    An event is identified by its RTP timestamp.  It is reported on its
    first end packet (the two retransmitted end packets are then ignored),
    or, if every end packet was lost, when a packet with a new timestamp
    arrives (with the last duration seen) or when L{flush} is called.
    """

    def __init__(self, clock_rate=8000):
        self.clock_rate = clock_rate
        self._current = None  # (timestamp, event, duration) not yet reported
        self._done = []  # recently reported timestamps (a few suffice)

    def receive(self, timestamp, payload):
        """
        Account for one telephone-event packet.

        @return: a list of C{(digit, duration_ms)} newly completed (usually
            empty, at most two).
        @raise DtmfParseError: a short payload.
        """
        event, end, _volume, duration = parse_event(payload)
        if timestamp in self._done:
            return []
        out = []
        current = self._current
        if current is not None and current[0] != timestamp:
            out.extend(self._report(current))
            current = None
        if end:
            self._current = None
            out.extend(self._report((timestamp, event, duration)))
        elif current is None or duration >= current[2]:
            self._current = (timestamp, event, duration)
        return out

    def flush(self):
        """
        Report an event whose end packets never came (call ended, or the
        sender fell silent).
        """
        current, self._current = self._current, None
        return self._report(current) if current is not None else []

    def _report(self, item):
        timestamp, event, duration = item
        self._done.append(timestamp)
        if len(self._done) > 8:
            del self._done[0]
        digit = event_to_digit(event)
        if digit is None:
            return []
        return [(digit, duration * 1000 // self.clock_rate)]


def dtmf_packets(digit, duration_ms=100, volume=10, clock_rate=8000,
                 interval_ms=50, end_spacing_ms=20):
    """
    The packets for one event, as C{(send_offset_ms, marker, payload)}: all
    of them carry the same RTP timestamp (the event start) and each its own
    sequence number, both chosen by the caller.

      - the first packet has the marker bit, at offset 0;
      - an update every C{interval_ms}, the duration field counting the
        elapsed time of the event including the current interval;
      - three end packets (E bit) with the final duration, at
        C{duration_ms}, then C{end_spacing_ms} apart.

    Durations longer than the 16-bit field (about 8 s at 8 kHz) are
    clamped; long-event segmentation is not implemented.
    """
    event = digit_to_event(digit)
    if duration_ms <= 0:
        raise ValueError("duration must be positive")
    units_per_ms = clock_rate / 1000.0
    total = min(_MAX_DURATION, int(round(duration_ms * units_per_ms)))
    packets = []
    offset = 0
    while offset < duration_ms:
        elapsed = min(total, int(round((offset + interval_ms) * units_per_ms)))
        packets.append((offset, offset == 0, serialize_event(event, False, volume, elapsed)))
        offset += interval_ms
    end = serialize_event(event, True, volume, total)
    for i in range(3):
        packets.append((duration_ms + i * end_spacing_ms, False, end))
    return packets
