"""
The media service: RTP port allocation, one L{MediaSession} per call, the
media clock and the RTCP loop.

The per-packet paths (L{MediaSession._rtp_received} and
L{MediaSession._on_tick}) use plain ints, tuples and precompiled structs:
no logging, no per-packet objects beyond the bytes themselves, no timers.
Everything else (SDP, RTCP, statistics) is delegated to the sans-IO
modules in L{rvoip_twisted.sdp}, L{rvoip_twisted.rtp} and
L{rvoip_twisted.media}.
"""

import collections
import errno
import random as _random
import struct

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.task import LoopingCall

from ..logs import Logger
from ..media.codecs import REGISTRY
from ..rtp.dtmf import DtmfParseError, DtmfReceiver, digit_to_event, dtmf_packets
from ..rtp.jitter import MISSING, JitterBuffer
from ..rtp.packet import RtpParseError, unpack
from ..rtp.rtcp import (
    Bye,
    ReceiverReport,
    RtcpParseError,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
    parse_compound,
    rtt_seconds,
    serialize_compound,
)
from ..rtp.stats import ReceiveStats
from ..sdp.negotiate import OfferAnswer
from ..transport.rtp import default_listener
from .clock import MediaClock

__all__ = ["PortsExhausted", "MediaManager", "MediaSession", "estimate_mos"]

#: "the jitter buffer was not asked for this frame yet" (None is an answer)
_NOT_POPPED = object()

_HEADER = struct.Struct("!BBHII")
_pack_header = _HEADER.pack
_unpack_seq_ts_ssrc = struct.Struct("!HII").unpack_from

#: Frames sent at once at most after a reactor stall; the RTP timestamp
#: still advances over the frames beyond this (the receiver conceals them).
MAX_BURST = 10
#: A released port pair is handed to a new session only after this many
#: seconds, so late packets of the old call cannot be taken for the new one
#: (symmetric RTP latches on the first source it hears).
RECYCLE_AFTER = 0.5
#: The RTCP round is spread evenly over this many turns of the RTCP loop
#: (50 ms apart with the default 5 s interval): a turn reports a few
#: sessions, so a thousand calls' reports (about 30 us each) never hold the
#: reactor, and the media clock due in it, for milliseconds.
RTCP_SLICES = 100
#: At most this many idle port pairs stay open; older ones are closed.  A
#: released pair waits RECYCLE_AFTER seconds, so the pool needs about
#: calls/s x RECYCLE_AFTER pairs (2,500 at 5,000 calls/s); past its cap every
#: call binds two new sockets and closes two old ones (at 2,048 that cliff
#: was at 4,096 calls/s and cost a quarter of the server's CPU there).  Two
#: descriptors a pair, which the twistd plugin makes room for (see
#: tap.raise_open_files); with fewer the cap is lower (L{pool_cap}).
POOL_MAX = 8192
#: Pause between two digits of L{MediaSession.send_dtmf}, in ms.
DTMF_GAP_MS = 60

# ITU-T G.107 simplified E-model, G.711 values (G.113 Appendix I: Ie = 0,
# Bpl = 25.1 with packet-loss concealment, as G.711 endpoints apply).
_R0 = 93.2
_G711_IE = 0.0
_G711_BPL = 25.1


def estimate_mos(loss_pct, delay_ms, ie=_G711_IE, bpl=_G711_BPL):
    """
    A MOS estimate from the simplified E-model (ITU-T G.107): R = 93.2 -
    Id(delay) - Ie,eff(loss), random loss (BurstR = 1), then the G.107
    R-to-MOS mapping.
    """
    d = max(0.0, delay_ms)
    delay_impairment = 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)
    ppl = max(0.0, min(100.0, loss_pct))
    ie_eff = ie + (95.0 - ie) * ppl / (ppl + bpl)
    r = _R0 - delay_impairment - ie_eff
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return round(1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6, 2)


class PortsExhausted(Exception):
    """
    No free RTP port pair: the session layer answers 503.
    """

    status = 503


class MediaSession:
    """
    The media of one call.  See L{MediaManager.new_session}.

    @ivar local_port: the RTP port (RTCP is C{local_port + 1}, unless
        rtcp-mux is negotiated).
    @ivar on_dtmf: C{callable(digit, duration_ms)}, once per RFC 4733 event.
    @ivar on_source_done: C{callable()} called when the playing source
        ends (silence is sent from then on).
    """

    on_dtmf = None
    on_source_done = None

    _log = Logger()

    # The state every session starts with that is an immutable value lives
    # here, on the class: an instance stores it only once it changes, so
    # setting up a session assigns a third as many attributes.
    # negotiated state (set by _apply)
    negotiated = None
    _codec = None
    _pt = None
    _silence = b""
    _frame_payload_len = None
    _dtmf_recv_pts = frozenset()
    _dtmf_send_pt = None
    _sending = False
    _remote = None  # RTP address from SDP
    _remote_rtcp = None
    _rtcp_mux = False
    _latched = None
    _rtcp_latched = None
    _send = None  # callable(data) or None
    _credit_ms = 0
    # media endpoints
    _source = None
    _sink = None
    _echo = False
    _playout = False
    # DTMF sending
    _dtmf_event = None  # [packets, index, elapsed_ms, timestamp]
    _dtmf_gap = 0
    # counters
    packets_sent = 0
    octets_sent = 0
    packets_received = 0
    bad_packets = 0
    foreign_packets = 0
    unknown_payload_types = 0
    rtcp_received = 0
    rtcp_bad = 0
    send_errors = 0
    remote_bye = False
    rtt = None
    remote_fraction_lost = None
    remote_cumulative_lost = None
    _sent_since_report = False
    _rtcp_sent = False
    _started = False
    _stopped = False
    _clock_handle = None
    # relay (see relay()): the other session, and the SSRC and offsets
    # mapping the received stream onto ours
    _relay = None
    _relay_ssrc = None
    _relay_seq_off = 0
    _relay_ts_off = 0

    def __init__(self, manager, call_id, port, rtp, rtcp, rng):
        self.manager = manager
        self.call_id = call_id
        self.local_port = port
        self._rtp = rtp
        self._rtcp = rtcp
        rtp.protocol.receiver = self._rtp_received
        rtcp.protocol.receiver = self._rtcp_received
        # before the jitter buffer conceals a frame: read the socket
        self._read_waiting = rtp.read_waiting
        self._seconds = manager.reactor.seconds
        self._codecs = manager.codec_preferences
        self._oa = OfferAnswer(
            manager.public_host, port, self._codecs, ptime=manager.ptime, rtcp_mux=True, random=rng
        )
        self.ssrc = rng.getrandbits(32)
        self.cname = "%08x@%s" % (rng.getrandbits(32), manager.public_host)
        self._seq = rng.getrandbits(16)
        self._ts = rng.getrandbits(32)
        self._marker = True
        self._symmetric = manager.symmetric_rtp
        self._period_ms = manager.ptime
        self._ptime = manager.ptime
        self._frame_samples = 8 * manager.ptime
        self._ts_inc = 8 * manager.ptime
        self._recv_codecs = {}
        # receive side
        self._stats = ReceiveStats()
        self._jitter = JitterBuffer(depth=manager.jitter_depth, frame_duration=manager.ptime / 1000.0)
        self._dtmf_rx = DtmfReceiver()
        self._fifo = bytearray()
        self._dtmf_queue = collections.deque()

    # -- SDP -------------------------------------------------------------------

    def create_offer(self, direction="sendrecv"):
        """An SDP offer (outgoing call, late offer, re-offer), as bytes."""
        return self._oa.create_offer(direction).serialize()

    def answer_offer(self, sdp):
        """
        Answer an SDP offer; the negotiated parameters apply at once.

        @raise rvoip_twisted.sdp.SdpParseError: status 400.
        @raise rvoip_twisted.sdp.SdpNegotiationError: status 488.
        """
        answer, stream = self._oa.answer(sdp)
        self._apply(stream)
        return answer.serialize()

    def accept_answer(self, sdp):
        """
        Take the answer to our last offer.

        @raise rvoip_twisted.sdp.SdpError: status 488 (or 400).
        """
        self._apply(self._oa.accept_answer(sdp))

    def hold(self):
        """A re-offer with a=sendonly (o= version bumped)."""
        return self._oa.create_offer("sendonly").serialize()

    def resume(self):
        """A re-offer with a=sendrecv (o= version bumped)."""
        return self._oa.create_offer("sendrecv").serialize()

    def _apply(self, stream):
        codec = self.manager.registry.get(stream.send_codec, stream.clock_rate)
        if codec is not self._codec or stream.send_payload_type != self._pt:
            self._marker = True
        self.negotiated = stream
        self._codec = codec
        self._pt = stream.send_payload_type
        self._ptime = stream.ptime
        self._frame_samples = 8 * stream.ptime
        self._ts_inc = codec.timestamp_increment(stream.ptime)
        self._jitter.clock_rate = stream.clock_rate
        self._silence = codec.silence_payload(self._frame_samples)
        self._frame_payload_len = (
            self._frame_samples * codec.bytes_per_sample if codec.bytes_per_sample else None
        )
        self._recv_codecs = {
            pt: self.manager.registry.get(name, stream.clock_rate)
            for pt, name in stream.receive_payload_types.items()
        }
        self._dtmf_recv_pts = stream.receive_dtmf_payload_types
        self._dtmf_send_pt = stream.send_dtmf_payload_type
        if self._dtmf_send_pt is None:
            self._dtmf_queue.clear()
        self._rtcp_mux = stream.rtcp_mux
        self._remote_rtcp = stream.remote_rtcp
        remote = (stream.remote_address, stream.remote_port) if stream.remote_address else None
        if remote != self._remote:
            self._remote = remote
            if self._latched is not None:  # a new peer: latch again
                self._latched = None
                self._rtcp_latched = None
                self._rtp.disconnect()
            if not self._symmetric and remote is not None:
                self._rtp.connect(remote)
        was_sending = self._sending
        self._sending = stream.sending
        if self._sending and not was_sending:
            self._marker = True
        self._update_send()

    def _update_send(self):
        target = self._latched or self._remote
        if target is not None and self._symmetric and self._latched is not None:
            if self._rtp.connected_to != target:
                self._rtp.connect(target)
        self._send = self._rtp.sender(target)

    # -- control -----------------------------------------------------------------

    def start(self):
        """
        Begin sending and receiving on the media clock.  Idempotent.
        """
        if self._started or self._stopped:
            return
        self._started = True
        if self._relay is None:
            self._clock_handle = self.manager.clock.add(self._on_tick)

    def stop(self):
        """
        RTCP BYE (if we sent anything), close the sockets, release the
        ports.  Idempotent.
        """
        if self._stopped:
            return
        self._stopped = True
        if self._clock_handle is not None:
            self.manager.clock.remove(self._clock_handle)
            self._clock_handle = None
        other, self._relay = self._relay, None
        if other is not None:
            other._unlink()
        if self._started and (self.packets_sent or self._rtcp_sent):
            # RFC 3550 6.3.7: a participant that never sent an RTP or RTCP
            # packet must not send a BYE (a call ended before any media).
            report = self._report(self._seconds())
            bye = Bye([self.ssrc], b"")
            self._send_rtcp(serialize_compound(
                [report, SourceDescription.cname(self.ssrc, self.cname), bye]))
        events = self._dtmf_rx.flush()
        if events and self.on_dtmf is not None:
            self._deliver_dtmf(events)
        if self._sink is not None:
            sink, self._sink = self._sink, None
            self._close_sink(sink)
        self._source = None
        self._playout = False
        self.manager._session_stopped(self, self._rtp, self._rtcp)

    def play(self, source):
        """
        Send audio from an L{IAudioSource} (C{None}: silence).  Ends echo.
        """
        self._source = source
        self._echo = False
        self._playout = self._sink is not None

    def record(self, sink):
        """
        Deliver decoded, de-jittered frames to an L{IAudioSink} (C{None}:
        stop recording).  A sink replaced or still attached at L{stop} is
        closed.
        """
        previous, self._sink = self._sink, sink
        if previous is not None and previous is not sink:
            self._close_sink(previous)
        self._playout = self._echo or sink is not None

    def echo(self):
        """
        Send the received audio back through the jitter buffer; G.711
        payloads pass untouched when the codec and frame size match.
        """
        self._echo = True
        self._source = None
        self._playout = True

    def relay(self, other):
        """
        Bridge this session with C{other}, another L{MediaSession}, both
        ways (a B2BUA's media path): every RTP packet received on one is
        sent out of the other at once, with the sending side's SSRC,
        payload type and sequence/timestamp bases (each leg sees one
        source, the B2BUA; sequence and timestamp gaps pass through, so
        loss and silence suppression stay visible).  The payload passes
        untouched when both legs use the same codec, and is transcoded
        through linear PCM when they do not (PCMU <-> PCMA).  RFC 4733
        events pass as events when both legs negotiated telephone-event
        (and are still reported to C{on_dtmf}).

        While relaying, neither session is on the media clock: no source,
        echo, recording or silence of its own.  RTCP goes on per leg.
        C{relay(None)} ends the bridge; so does L{stop} on either side
        (the other one goes back to sending silence).
        """
        previous = self._relay
        if previous is other:
            return
        if previous is not None:
            self._unlink()
            previous._unlink()
        if other is None:
            return
        if other is self:
            raise ValueError("a session cannot relay to itself")
        if other._stopped or self._stopped:
            raise ValueError("cannot relay a stopped session")
        if other._relay is not None:
            other.relay(None)
        self._link(other)
        other._link(self)

    @property
    def relaying(self):
        """The session this one relays to, or C{None}."""
        return self._relay

    def _link(self, other):
        self._relay = other
        self._relay_ssrc = None
        self._source = None
        self._echo = False
        self._playout = False
        self._jitter.reset()
        self._fifo.clear()
        self._dtmf_queue.clear()
        self._dtmf_event = None
        if self._clock_handle is not None:
            self.manager.clock.remove(self._clock_handle)
            self._clock_handle = None

    def _unlink(self):
        self._relay = None
        self._marker = True
        if self._started and not self._stopped and self._clock_handle is None:
            self._clock_handle = self.manager.clock.add(self._on_tick)

    def _relay_out(self, marker, seq, ts, ssrc, payload, codec):
        """Send a packet the other leg received (C{codec} None: an RFC 4733 event)."""
        send = self._send
        if send is None or not self._sending or self._stopped:
            return
        if codec is None:
            pt = self._dtmf_send_pt
            if pt is None:
                return
        else:
            mine = self._codec
            if mine is None:
                return
            pt = self._pt
            if codec is not mine:
                payload = mine.encode(codec.decode(payload))
        if ssrc != self._relay_ssrc:
            # A new source: map its numbering onto where ours stands.
            self._relay_ssrc = ssrc
            self._relay_seq_off = (self._seq - seq) & 0xFFFF
            self._relay_ts_off = (self._ts - ts) & 0xFFFFFFFF
            marker = 0x80
        seq = (seq + self._relay_seq_off) & 0xFFFF
        ts = (ts + self._relay_ts_off) & 0xFFFFFFFF
        try:
            send(_pack_header(0x80, pt | marker, seq, ts, self.ssrc) + payload)
        except OSError:
            self.send_errors += 1
        self._seq = (seq + 1) & 0xFFFF
        self._ts = ts
        self.packets_sent += 1
        self.octets_sent += len(payload)
        self._sent_since_report = True

    def send_dtmf(self, digits, duration_ms=100):
        """
        Queue RFC 4733 events.  Nothing is sent when telephone-event was not
        negotiated.

        @raise ValueError: a character that is not a DTMF digit.
        """
        for digit in digits:
            digit_to_event(digit)
        if self._dtmf_send_pt is None and self.negotiated is not None:
            return
        self._dtmf_queue.extend((digit, duration_ms) for digit in digits)

    def quality(self):
        """
        Call-quality figures, a dict:
          - C{codec}: the send codec name (C{None} before negotiation);
          - C{packets_sent}, C{packets_received} (RTP, DTMF included);
          - C{packets_lost}, C{loss_pct}: receive loss (RFC 3550 A.3);
          - C{jitter_ms}: interarrival jitter (RFC 3550 A.8);
          - C{rtt_ms}: from the peer's report blocks (LSR/DLSR), C{None}
            until one arrived;
          - C{remote_loss_pct}: the fraction the peer last reported losing
            of our packets, C{None} until reported;
          - C{mos}: L{estimate_mos} of our receive loss and a one-way delay
            of RTT/2 + jitter buffer depth + packetization;
          - C{bad_packets}: malformed RTP dropped.
        """
        stats = self._stats
        expected = stats.expected
        lost = max(0, stats.lost) if expected else 0
        loss_pct = round(100.0 * lost / expected, 2) if expected else 0.0
        jitter_ms = round(stats.jitter_seconds * 1000.0, 2)
        rtt_ms = None if self.rtt is None else round(self.rtt * 1000.0, 1)
        remote_loss = None
        if self.remote_fraction_lost is not None:
            remote_loss = round(self.remote_fraction_lost * 100.0 / 256, 2)
        delay_ms = (rtt_ms or 0.0) / 2 + self.manager.jitter_depth * 1000.0 + self._ptime
        return {
            "codec": self._codec.name if self._codec is not None else None,
            "packets_sent": self.packets_sent,
            "packets_received": self.packets_received,
            "packets_lost": lost,
            "loss_pct": loss_pct,
            "jitter_ms": jitter_ms,
            "rtt_ms": rtt_ms,
            "remote_loss_pct": remote_loss,
            "mos": estimate_mos(loss_pct, delay_ms) if expected else None,
            "bad_packets": self.bad_packets,
        }

    # -- the media clock -----------------------------------------------------------

    def _on_tick(self, frames, now):
        if self._stopped:
            return
        if self._ptime == self._period_ms:
            count = frames
        else:
            self._credit_ms += frames * self._period_ms
            count, self._credit_ms = divmod(self._credit_ms, self._ptime)
        if count == 1:  # the steady state
            if (self._echo and self._sink is None and not self._fifo and self._sending
                    and self._send is not None and self._dtmf_event is None
                    and not self._dtmf_queue and self._dtmf_gap <= 0 and not self._marker):
                self._echo_frame(now)
            else:
                self._frame(now)
            if self._jitter.ahead and not self._stopped:
                self._play_early(now)
            return
        if count > MAX_BURST:
            skipped = count - MAX_BURST
            self._ts = (self._ts + skipped * self._ts_inc) & 0xFFFFFFFF
            self._marker = True
            count = MAX_BURST
        for due in range(count, 0, -1):
            self._frame(now, due=due)
            if self._stopped:   # the application ended the call on this frame
                return
        if self._jitter.ahead:
            self._play_early(now)

    def _play_early(self, now):
        """
        One received frame more in this tick: the jitter buffer holds more
        than its depth + slack (a burst after the caller, the network or
        this process stalled), and a frame played early each tick brings
        the delay back without dropping any (L{JitterBuffer.ahead}).  For
        the echo, the frame goes back now: one packet more in this tick,
        with the next timestamp (L{_frame}'s general path: this runs only
        after a stall).  Otherwise it goes to the sink (L{_playout_frame}
        alone: the source's frames keep the ticks' pace).  Not while DTMF is
        being sent (its packets are timed by the ticks) or decoded audio
        waits in the FIFO (the frame sizes differ): the buffer then skips
        past C{accelerate} frames as it would.
        """
        if (not self._playout or self._fifo or self._dtmf_event is not None
                or self._dtmf_queue or self._dtmf_gap > 0 or self._codec is None):
            return
        self._jitter.played_early()
        if self._echo:
            self._frame(now)
        else:
            self._playout_frame(now)

    def _echo_frame(self, now):
        """
        L{_frame} for the echo line's steady state (echo, no sink, sending,
        no DTMF, no marker due): the received payload goes back untouched
        when its codec and size are ours; anything else takes L{_frame}'s
        general path for this frame.
        """
        item = self._jitter.pop(now, 1, self._read_waiting)
        if self._stopped:   # (an app callback during the read ended the call)
            return
        if item is None or item is MISSING:
            # not playing yet, idle or a hole: the general path, given the
            # buffer's answer for this frame
            self._frame(now, item)
            return
        payload = item[1]
        codec = self._recv_codecs.get(item[0])
        if codec is None or codec is not self._codec or len(payload) != self._frame_payload_len:
            self._frame(now, item)
            return
        seq = self._seq
        ts = self._ts
        try:
            self._send(_pack_header(0x80, self._pt, seq, ts, self.ssrc) + payload)
        except OSError:
            self.send_errors += 1
        self._seq = (seq + 1) & 0xFFFF
        self.packets_sent += 1
        self.octets_sent += len(payload)
        self._sent_since_report = True
        self._ts = (ts + self._ts_inc) & 0xFFFFFFFF

    def _frame(self, now, item=_NOT_POPPED, due=1):
        """
        One frame's worth of media.  C{item}: the jitter buffer's answer for
        this frame when the caller already asked for it (L{_echo_frame});
        C{due}: the frames sent now, this one included (after a stall, see
        L{JitterBuffer.pop}).
        """
        payload = None
        if self._playout:
            payload = self._playout_frame(now, item, due)
            if self._stopped:
                return
        if self._codec is None:
            return
        if self._dtmf_event is not None or (self._dtmf_queue and self._dtmf_gap <= 0):
            if self._dtmf_frame():
                self._ts = (self._ts + self._ts_inc) & 0xFFFFFFFF
                return
        elif self._dtmf_gap > 0:
            self._dtmf_gap -= self._ptime
        send = self._send
        if self._sending and send is not None:
            if not self._echo:
                source = self._source
                if source is None:
                    payload = self._silence
                else:
                    pcm = source.read(self._frame_samples)
                    if pcm is None:
                        payload = self._silence
                        self._source_ended()
                        if self._stopped:  # the callback ended the call
                            return
                    else:
                        payload = self._codec.encode(pcm)
            elif payload is None:
                if not self.packets_received:
                    # Echo of nothing: stay silent until the caller's audio
                    # arrives (then gaps are filled with silence).
                    self._ts = (self._ts + self._ts_inc) & 0xFFFFFFFF
                    return
                payload = self._silence
            pt = self._pt
            if self._marker:
                pt |= 0x80
                self._marker = False
            try:
                send(_pack_header(0x80, pt, self._seq, self._ts, self.ssrc) + payload)
            except OSError:
                self.send_errors += 1
            self._seq = (self._seq + 1) & 0xFFFF
            self.packets_sent += 1
            self.octets_sent += len(payload)
            self._sent_since_report = True
        else:
            self._marker = True
        self._ts = (self._ts + self._ts_inc) & 0xFFFFFFFF

    def _playout_frame(self, now, item=_NOT_POPPED, due=1):
        """
        Pull one frame from the jitter buffer: write PCM to the sink and
        return the payload to echo (or C{None}).
        """
        sink = self._sink
        echo_payload = None
        pcm = None
        if not self._fifo:
            if item is _NOT_POPPED:
                item = self._jitter.pop(now, due, self._read_waiting)
                if self._stopped:   # (see _echo_frame)
                    return None
            if item is None:
                return None
            codec = None if item is MISSING else self._recv_codecs.get(item[0])
            if codec is None:  # lost (or a payload type renegotiated away)
                pcm = bytes(2 * self._frame_samples)
            else:
                payload = item[1]
                if self._echo and codec is self._codec and len(payload) == self._frame_payload_len:
                    echo_payload = payload  # pass-through, no transcoding
                    if sink is not None:
                        pcm = codec.decode(payload)
                else:
                    pcm = codec.decode(payload)
                    if len(pcm) != 2 * self._frame_samples:
                        self._fifo += pcm
                        pcm = None
        if pcm is None and echo_payload is None:
            pcm = self._fill_from_fifo(now, 2 * self._frame_samples)
            if pcm is None:
                return None
        if sink is not None and pcm is not None:
            sink.write(pcm)
        if self._echo and echo_payload is None:
            echo_payload = self._codec.encode(pcm)
        return echo_payload

    def _fill_from_fifo(self, now, need):
        fifo = self._fifo
        while len(fifo) < need:
            item = self._jitter.pop(now)
            if item is None:
                if not fifo:
                    return None
                fifo += bytes(need - len(fifo))
            else:
                codec = None if item is MISSING else self._recv_codecs.get(item[0])
                fifo += bytes(need) if codec is None else codec.decode(item[1])
        pcm = bytes(fifo[:need])
        del fifo[:need]
        return pcm

    def _source_ended(self):
        self._source = None
        callback = self.on_source_done
        if callback is not None:
            try:
                callback()
            except Exception:
                self._log.failure("on_source_done raised")

    def _dtmf_frame(self):
        """
        Send the telephone-event packets due in this frame.

        @return: whether the frame belongs to an event (audio is suppressed).
        """
        event = self._dtmf_event
        if event is None:
            if self._dtmf_send_pt is None or not (self._sending and self._send is not None):
                return False
            digit, duration = self._dtmf_queue.popleft()
            event = self._dtmf_event = [
                dtmf_packets(digit, duration, clock_rate=self._codec.clock_rate,
                             end_spacing_ms=self._ptime),
                0, 0, self._ts,
            ]
        packets, index, elapsed, timestamp = event
        send = self._send
        while index < len(packets) and packets[index][0] <= elapsed:
            _, marker, payload = packets[index]
            pt = self._dtmf_send_pt | (0x80 if marker else 0)
            if send is not None:
                try:
                    send(_pack_header(0x80, pt, self._seq, timestamp, self.ssrc) + payload)
                except OSError:
                    self.send_errors += 1
            self._seq = (self._seq + 1) & 0xFFFF
            self.packets_sent += 1
            self.octets_sent += len(payload)
            index += 1
        self._sent_since_report = True
        if index >= len(packets):
            self._dtmf_event = None
            self._dtmf_gap = DTMF_GAP_MS
        else:
            event[1] = index
            event[2] = elapsed + self._ptime
        return True

    # -- receiving -------------------------------------------------------------------

    def _rtp_received(self, data, addr):
        if self._stopped:
            return
        size = len(data)
        if size >= 8 and 192 <= data[1] <= 223:  # RTCP multiplexed on the RTP port
            self._rtcp_received(data, addr, True)
            return
        if size < 12:
            self.bad_packets += 1
            return
        second = data[1]
        latched = self._latched
        if latched is not None and addr != latched:
            self.foreign_packets += 1
            return
        if data[0] == 0x80:
            seq, ts, ssrc = _unpack_seq_ts_ssrc(data, 2)
            payload = data[12:]
        else:
            try:
                _, _, seq, ts, ssrc, payload = unpack(data)
            except RtpParseError:
                self.bad_packets += 1
                return
        pt = second & 0x7F
        codec = self._recv_codecs.get(pt)
        if codec is None and pt not in self._dtmf_recv_pts:
            self.unknown_payload_types += 1
            return
        if latched is None and self._symmetric:
            self._latch(addr)
        now = self._seconds()
        stats = self._stats
        if ssrc != stats.ssrc and stats.ssrc is not None:
            self._jitter.reset()
            self._fifo.clear()
            self._dtmf_rx = DtmfReceiver(self._dtmf_rx.clock_rate)
        stats.update(ssrc, seq, ts, now)
        self.packets_received += 1
        relay = self._relay
        if relay is not None:
            relay._relay_out(second & 0x80, seq, ts, ssrc, payload, codec)
            if codec is not None:
                return
        if codec is None:
            try:
                events = self._dtmf_rx.receive(ts, payload)
            except DtmfParseError:
                self.bad_packets += 1
                return
            if events and self.on_dtmf is not None:
                self._deliver_dtmf(events)
        elif self._playout:
            self._jitter.push(seq, (pt, payload), now, ts)

    def _deliver_dtmf(self, events):
        for digit, duration in events:
            try:
                self.on_dtmf(digit, duration)
            except Exception:
                self._log.failure("on_dtmf raised")

    def _latch(self, addr):
        self._latched = addr
        self._rtp.connect(addr)
        self._send = self._rtp.sender(addr)

    def _rtcp_received(self, data, addr, on_rtp_port=False):
        if self._stopped:
            return
        try:
            packets = parse_compound(data)
        except RtcpParseError:
            self.rtcp_bad += 1
            return
        self.rtcp_received += 1
        if not on_rtp_port and self._symmetric and self._rtcp_latched is None:
            self._rtcp_latched = addr
        now = self._seconds()
        for packet in packets:
            if isinstance(packet, SenderReport):
                if packet.ssrc == self._stats.ssrc:
                    self._stats.on_sender_report(packet.ntp_timestamp, now)
                self._reception_reports(packet.reports, now)
            elif isinstance(packet, ReceiverReport):
                self._reception_reports(packet.reports, now)
            elif isinstance(packet, Bye):
                if self._stats.ssrc in packet.ssrcs:
                    self.remote_bye = True

    def _reception_reports(self, blocks, now):
        for block in blocks:
            if block.ssrc != self.ssrc:
                continue
            self.remote_fraction_lost = block.fraction_lost
            self.remote_cumulative_lost = block.cumulative_lost
            rtt = rtt_seconds(ntp_from_unix(now), block.lsr, block.dlsr)
            if rtt is not None:
                self.rtt = rtt

    # -- RTCP sending --------------------------------------------------------------------

    def _report(self, now):
        block = self._stats.report_block(now)
        blocks = [block] if block is not None else []
        if self._sent_since_report:
            report = SenderReport(
                ssrc=self.ssrc,
                ntp_timestamp=ntp_from_unix(now),
                rtp_timestamp=self._ts,
                packet_count=self.packets_sent & 0xFFFFFFFF,
                octet_count=self.octets_sent & 0xFFFFFFFF,
                reports=blocks,
            )
        else:
            report = ReceiverReport(self.ssrc, blocks)
        self._sent_since_report = False
        return report

    def send_rtcp(self, now=None):
        """
        Send one RTCP compound packet (SR or RR, SDES CNAME).  Called by the
        manager's RTCP loop.
        """
        if self._stopped or not self._started or self.negotiated is None:
            return
        if now is None:
            now = self._seconds()
        self._send_rtcp(serialize_compound(
            [self._report(now), SourceDescription.cname(self.ssrc, self.cname)]))

    def _send_rtcp(self, data):
        if self._rtcp_mux:
            target = self._latched or self._remote
            if target is not None:
                self._rtcp_sent = True
                self._rtp.sendto(data, target)
        else:
            target = self._rtcp_latched or self._remote_rtcp
            if target is None and self._latched is not None:
                target = (self._latched[0], self._latched[1] + 1)
            if target is not None:
                self._rtcp_sent = True
                self._rtcp.sendto(data, target)

    @staticmethod
    def _close_sink(sink):
        try:
            sink.close()
        except Exception:
            MediaSession._log.failure("closing a media sink raised")


class MediaManager(Service):
    """
    The media service.

      - Ports: RTP on even ports of C{port_range}, RTCP on the next one,
        handed out in rotation (a released pair goes to the back of the
        queue); a port the OS says is in use is skipped.
      - Symmetric RTP (default): before the first packet arrives RTP is
        sent with C{sendto} to the SDP address; the first valid packet's
        source is latched, the socket C{connect()}ed to it (faster sends,
        and the kernel drops other sources; the session drops any that
        slipped in).  A re-negotiated remote address unlatches (the socket
        is disconnected) and the next source is latched.  Without symmetric
        RTP the socket is connected to the SDP address at once.
      - The media clock (L{MediaClock}) calls every started session once per
        frame; after a reactor stall a session sends every due frame, up to
        C{MAX_BURST} (200 ms), beyond which the RTP timestamp still advances
        with real time but those frames are not sent.
      - RTCP: one C{LoopingCall} visits every session once per
        C{rtcp_interval} seconds, a few per turn (SR if it sent since the
        last report, else RR; SDES CNAME); BYE on stop.  rtcp-mux is
        offered and used when the peer agrees.
      - Sockets: bound by C{rtp_listener} (C{listen(port, interface,
        receiver)} returning an L{rvoip_twisted.transport.rtp.RtpEndpoint});
        by default L{rvoip_twisted.transport.rtp.default_listener}: every
        RTP/RTCP socket read through one epoll on Linux,
        C{reactor.listenUDP} elsewhere.

    @ivar sessions: C{{call_id: MediaSession}} of the sessions not stopped.
    @ivar clock: the L{MediaClock}.
    @ivar rtp_listener: what binds the ports (see above).
    """

    _log = Logger()

    def __init__(
        self,
        reactor,
        public_host="127.0.0.1",
        bind_host="0.0.0.0",
        port_range=(10000, 20000),
        rtcp_interval=5.0,
        symmetric_rtp=True,
        codecs=("PCMU", "PCMA"),
        ptime=20,
        tick=0.002,
        jitter_depth=0.06,
        registry=REGISTRY,
        random=None,
        rtp_listener=None,
    ):
        low, high = port_range
        low += low & 1  # RTP on even ports
        if high - low < 1:
            raise ValueError("port range %r holds no even/odd port pair" % (port_range,))
        self.reactor = reactor
        self.public_host = public_host
        self.bind_host = bind_host
        self.port_range = (low, high)
        self.rtcp_interval = rtcp_interval
        self.symmetric_rtp = symmetric_rtp
        self.ptime = ptime
        self.jitter_depth = jitter_depth
        self.registry = registry
        # (one tuple for every session: see negotiate._codecs_key)
        self.codec_preferences = tuple(registry.preferences(codecs))
        self.rtp_listener = rtp_listener if rtp_listener is not None else default_listener(reactor)
        self._random = random if random is not None else _random.Random()
        self._free = collections.deque(range(low, high, 2))  # RTP ports; RTCP = +1 <= high
        if self._free and self._free[-1] + 1 > high:
            self._free.pop()
        self._in_use = set()
        self._closing = set()
        #: idle open port pairs, oldest first: (released_at, port, rtp, rtcp)
        self._pool = collections.deque()
        #: at most this many of them (L{pool_cap}, read when the manager is made)
        self.pool_max = pool_cap()
        self._rtcp_round = []
        self._rtcp_turn = RTCP_SLICES  # the next turn starts a round
        self._rtcp_done = 0
        self.sessions = {}
        self.clock = MediaClock(reactor, tick=tick, period=ptime / 1000.0)
        self._rtcp_loop = None

    # -- service ---------------------------------------------------------------------

    def startService(self):
        Service.startService(self)
        self.clock.start()
        if self.sessions:
            self._start_rtcp_loop()

    def _start_rtcp_loop(self):
        """The RTCP loop runs while there are sessions (see L{_send_reports})."""
        self._rtcp_loop = LoopingCall(self._send_reports)
        self._rtcp_loop.clock = self.reactor
        self._rtcp_loop.start(self.rtcp_interval / RTCP_SLICES, now=False).addErrback(
            lambda f: self._log.failure("RTCP loop stopped", failure=f)
        )

    def stopService(self):
        """
        Stop every session (RTCP BYE, ports released) and the loops.

        @return: a Deferred fired when every port is closed, or C{None} when
            nothing is pending.
        """
        Service.stopService(self)
        for session in list(self.sessions.values()):
            session.stop()
        while self._pool:
            _, port, rtp, rtcp = self._pool.popleft()
            self._release_later(port, [rtp.close(), rtcp.close()])
        self.clock.stop()
        if self._rtcp_loop is not None and self._rtcp_loop.running:
            self._rtcp_loop.stop()
        self._rtcp_loop = None
        if self._closing:
            return defer.DeferredList(list(self._closing)).addCallback(lambda _: None)
        return None

    def _send_reports(self):
        """
        One turn of the RTCP round: every session reports once per
        C{rtcp_interval} (a round is RTCP_SLICES turns), the sessions spread
        evenly over the turns (a lone session at the round's end), so a
        thousand reports never stall the reactor (and the media clock) at
        once.  A session that ends during the round is skipped; one that
        starts waits for the next round.
        """
        if self._rtcp_turn >= RTCP_SLICES:
            if not self.sessions:
                # no session: the loop stops until the next one (no wake-ups
                # for an idle server)
                self._rtcp_round = []
                self._rtcp_loop.stop()
                self._rtcp_loop = None
                return
            self._rtcp_round = list(self.sessions.values())
            self._rtcp_turn = 0
            self._rtcp_done = 0
        self._rtcp_turn += 1
        end = self._rtcp_turn * len(self._rtcp_round) // RTCP_SLICES
        batch = self._rtcp_round[self._rtcp_done:end]
        self._rtcp_done = end
        now = self.reactor.seconds()
        for session in batch:
            try:
                session.send_rtcp(now)
            except Exception:
                self._log.failure("RTCP report for {call_id} failed", call_id=session.call_id)

    # -- sessions ------------------------------------------------------------------------

    def new_session(self, call_id):
        """
        A media session with a fresh RTP/RTCP port pair (or the existing
        session of that Call-ID, e.g. for a re-INVITE).

        @raise PortsExhausted: no port pair could be bound.
        """
        session = self.sessions.get(call_id)
        if session is not None:
            return session
        port, rtp, rtcp = self._allocate()
        session = MediaSession(self, call_id, port, rtp, rtcp, self._random)
        self.sessions[call_id] = session
        if self._rtcp_loop is None and self.running:
            self._start_rtcp_loop()
        return session

    def ports_in_use(self):
        """The number of UDP ports held by sessions (two per session, until closed)."""
        return 2 * len(self._in_use)

    def ports_pooled(self):
        """The number of idle UDP ports kept open for reuse."""
        return 2 * len(self._pool)

    def _allocate(self):
        pool = self._pool
        if pool and self.reactor.seconds() - pool[0][0] >= RECYCLE_AFTER:
            return self._from_pool()
        free = self._free
        listen = self.rtp_listener.listen
        reason = "no free RTP port in %d-%d" % self.port_range
        for _ in range(len(free)):
            port = free.popleft()
            try:
                rtp = listen(port, self.bind_host, _drop)
            except CannotListenError as e:
                free.append(port)
                if _out_of_descriptors(e):
                    reason = "out of file descriptors"
                    break
                continue
            try:
                rtcp = listen(port + 1, self.bind_host, _drop)
            except CannotListenError as e:
                self._release_later(port, [rtp.close()])
                if _out_of_descriptors(e):
                    reason = "out of file descriptors"
                    break
                continue
            self._in_use.add(port)
            return port, rtp, rtcp
        else:
            if pool:
                return self._from_pool()
            raise PortsExhausted(reason)
        # Out of descriptors: every port would fail alike, so stop trying.
        self._log.warn("no file descriptor left for RTP ports: raise the open files limit "
                       "(ulimit -n)")
        if pool:
            return self._from_pool()
        raise PortsExhausted(reason)

    def _from_pool(self):
        _, port, rtp, rtcp = self._pool.popleft()
        self._in_use.add(port)
        return port, rtp, rtcp

    def _session_stopped(self, session, rtp, rtcp):
        """
        Keep a stopped session's port pair open for a later session (no
        bind, no close per call), unless the service is stopping or the
        sockets cannot be made to receive from anyone again.
        """
        if self.sessions.get(session.call_id) is session:
            del self.sessions[session.call_id]
        port = session.local_port
        if self.running and rtp.recycle() and rtcp.recycle():
            self._in_use.discard(port)
            pool = self._pool
            pool.append((self.reactor.seconds(), port, rtp, rtcp))
            if len(pool) > self.pool_max:
                _, old_port, old_rtp, old_rtcp = pool.popleft()
                self._in_use.add(old_port)
                self._release_later(old_port, [old_rtp.close(), old_rtcp.close()])
        else:
            self._release_later(port, [rtp.close(), rtcp.close()])

    def _release_later(self, port, closing):
        pending = [d for d in closing if d is not None]
        if not pending:
            self._release(port)
            return
        d = defer.gatherResults(pending, consumeErrors=True)
        self._closing.add(d)

        def done(result):
            self._closing.discard(d)
            self._release(port)
            return result

        d.addBoth(done)
        d.addErrback(lambda f: self._log.failure("closing RTP port {port}", failure=f, port=port))

    def _release(self, port):
        self._in_use.discard(port)
        self._free.append(port)


def pool_cap(open_files=None):
    """
    How many idle port pairs the pool keeps: L{POOL_MAX}, or a quarter of
    the open-files limit beyond 1,024 kept for everything else, when that is
    less (at least 16).  C{open_files}: the limit (default: the soft
    RLIMIT_NOFILE now).
    """
    if open_files is None:
        try:
            import resource
            open_files, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            if open_files == resource.RLIM_INFINITY:
                return POOL_MAX
        except (ImportError, ValueError, OSError):
            return POOL_MAX
    return max(16, min(POOL_MAX, (open_files - 1024) // 4))


def _drop(data, addr):
    """The receiver of a port before its session is attached."""


def _out_of_descriptors(error):
    """
    Whether a bind failed because the process (EMFILE) or the system
    (ENFILE) has no file descriptor left: then it fails alike on every
    port, and trying them all is pointless.
    """
    return getattr(error.socketError, "errno", None) in (errno.EMFILE, errno.ENFILE)
