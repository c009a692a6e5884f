"""
RFC 3264 offer/answer for one audio stream.

L{OfferAnswer} is the local side of an SDP session: it builds offers (an
outgoing call, a late offer in a 200, hold and resume re-offers), answers
offers, and accepts answers.  Each successful negotiation yields a
L{NegotiatedStream}, everything the RTP layer needs.

Rules implemented:
  - the first acceptable C{m=audio} stream is used; every other stream
    (video, a second audio, SRTP profiles, disabled streams, streams with no
    common codec) is answered with port 0;
  - codecs are intersected in the offerer's order and the offer's payload
    type numbers are kept in the answer (dynamic ones too, e.g.
    telephone-event 96 or 101); static types 0 and 8 need no rtpmap;
  - directions: the answer reverses the offer's (sendonly -> recvonly,
    recvonly -> sendonly, inactive -> inactive), intersected with the local
    preference (C{OfferAnswer.direction}, e.g. C{"sendonly"} while we hold);
  - hold is understood both as C{a=sendonly}/C{a=inactive} and as the
    RFC 2543 C{c=IN IP4 0.0.0.0};
  - the C{o=} session version is incremented only when the body we send
    differs from the previous one we sent;
  - nothing acceptable raises L{SdpNegotiationError} (C{status} 488).

Codec descriptions are duck-typed: anything with C{name}, C{clock_rate},
C{payload_type}, C{channels} and C{fmtp} (L{CodecSpec}, or
L{rvoip_twisted.media.codecs.Codec}).
"""

import functools
import random
import socket

import attrs

from .model import (
    Connection,
    MediaDescription,
    Origin,
    SdpError,
    SessionDescription,
    parse,
)

__all__ = [
    "SdpNegotiationError",
    "CodecSpec",
    "NegotiatedStream",
    "OfferAnswer",
    "reverse_direction",
    "intersect_directions",
    "ACCEPTED_PROTOCOLS",
]

TELEPHONE_EVENT = "telephone-event"

#: RTP profiles we can answer (no SRTP).
ACCEPTED_PROTOCOLS = ("RTP/AVP", "RTP/AVPF")

_SENDS = {"sendrecv": True, "sendonly": True, "recvonly": False, "inactive": False}
_RECVS = {"sendrecv": True, "sendonly": False, "recvonly": True, "inactive": False}


def _direction(sends, receives):
    if sends:
        return "sendrecv" if receives else "sendonly"
    return "recvonly" if receives else "inactive"


def reverse_direction(direction):
    """
    The direction seen from the other end (sendonly <-> recvonly).
    """
    return _direction(_RECVS[direction], _SENDS[direction])


def intersect_directions(a, b):
    """
    The direction allowed by both C{a} and C{b} (same point of view).
    """
    return _direction(_SENDS[a] and _SENDS[b], _RECVS[a] and _RECVS[b])


class SdpNegotiationError(SdpError):
    """
    No acceptable media (answer 488 Not Acceptable Here), or an answer that
    does not fit our offer.
    """

    status = 488


@attrs.frozen
class CodecSpec:
    """
    A codec as negotiation sees it.
    """

    name: str
    clock_rate: int
    payload_type: int
    channels: int = 1
    fmtp: str = None


@attrs.frozen
class NegotiatedStream:
    """
    The outcome of a negotiation for the audio stream.

    @ivar remote_address: where to send RTP, or C{None} (the remote is on
        old-style hold, or gave no usable address).
    @ivar remote_rtcp: C{(host, port)} for RTCP, or C{None}.
    @ivar send_payload_type: the payload type of the codec we send.
    @ivar send_codec: its name (e.g. C{"PCMU"}).
    @ivar receive_payload_types: C{{payload_type: codec name}} we accept.
    @ivar send_dtmf_payload_type: telephone-event PT to send, or C{None}.
    @ivar receive_dtmf_payload_types: telephone-event PTs we accept.
    @ivar direction: our direction for the stream.
    @ivar ptime: milliseconds per packet to send.
    @ivar remote_hold: the remote asked not to receive media.
    """

    remote_address: str
    remote_port: int
    remote_rtcp: tuple
    rtcp_mux: bool
    send_payload_type: int
    send_codec: str
    clock_rate: int
    receive_payload_types: dict = attrs.field(hash=False)
    send_dtmf_payload_type: int
    receive_dtmf_payload_types: frozenset
    direction: str
    ptime: int
    remote_hold: bool = False
    media_index: int = 0

    @property
    def sending(self):
        """Whether we send RTP (direction allows it and there is an address)."""
        return _SENDS[self.direction] and self.remote_address is not None

    @property
    def receiving(self):
        """Whether we expect RTP."""
        return _RECVS[self.direction]


def _usable_address(host):
    """C{host} if it is an IP address we can send to, else C{None}."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            packed = socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        if not any(packed):
            return None  # 0.0.0.0 or ::, the old hold form
        return host
    return None  # a hostname: the media layer resolves nothing


def _matches(spec, rtpmap):
    return (
        spec.name.lower() == rtpmap.encoding.lower()
        and spec.clock_rate == rtpmap.clock_rate
        and (spec.channels or 1) == rtpmap.channels
    )


#: the c= of our descriptions: one immutable value per address, shared.
_connection_for = functools.lru_cache(maxsize=64)(Connection.for_address)


class OfferAnswer:
    """
    The local side of offer/answer for one session (one call).

    @ivar direction: the local direction preference; offers carry it and
        answers are intersected with it.
    @ivar negotiated: the last L{NegotiatedStream}, or C{None}.
    @ivar pending_offer: the offer we sent and await an answer for.
    """

    def __init__(
        self,
        address,
        port,
        codecs,
        ptime=20,
        rtcp_port=None,
        rtcp_mux=True,
        username="-",
        session_id=None,
        session_name="-",
        random=random,
    ):
        self.address = address
        self.port = port
        self.codecs = list(codecs)
        if not any(c.name.lower() != TELEPHONE_EVENT for c in self.codecs):
            raise ValueError("at least one audio codec is needed")
        self.ptime = ptime
        self.rtcp_port = rtcp_port if rtcp_port is not None else port + 1
        self.rtcp_mux = rtcp_mux
        self.username = username
        # getrandbits: randrange's argument checks cost more than the draw.
        self.session_id = str(session_id if session_id is not None
                              else random.getrandbits(53) or 1)
        self.session_version = random.getrandbits(31) or 1
        self.session_name = session_name
        self.direction = "sendrecv"
        self.negotiated = None
        self.pending_offer = None
        self._last_key = None
        self._pt_by_name = {}  # (name lower, rate) -> PT agreed earlier
        self._template = None  # the m= lines of our previous description
        self._origin = None  # the o= (and c=) of it, reused while unchanged
        self._connection = None
        self._audio_index = 0

    # -- building descriptions ---------------------------------------------

    def _finish(self, media):
        """
        Wrap media sections in a session description, bumping the version
        only if the media differ from the previous description we produced
        (RFC 3264 8: o= version changes only when the session does).
        """
        media = tuple(media)
        key = (media, self.address)
        if self._last_key is not None and key != self._last_key:
            self.session_version += 1
        self._last_key = key
        self._template = media
        address = self.address
        origin = self._origin
        if (origin is None or origin.session_version != self.session_version
                or origin.address != address):
            origin = self._origin = Origin(
                self.username,
                self.session_id,
                self.session_version,
                "IN",
                "IP6" if ":" in address else "IP4",
                address,
            )
            self._connection = _connection_for(address)
        return SessionDescription(
            origin=origin,
            session_name=self.session_name,
            connection=self._connection,
            media=media,
        )

    def _local_pt(self, spec):
        return self._pt_by_name.get((spec.name.lower(), spec.clock_rate), spec.payload_type)

    def _audio_section(self, direction, entries, proto="RTP/AVP", rtcp_mux=None):
        """
        entries: [(payload_type, spec, fmtp)] in order.
        """
        attributes = []
        for pt, spec, _ in entries:
            rtpmap = "%d %s/%d" % (pt, spec.name, spec.clock_rate)
            if (spec.channels or 1) != 1:
                rtpmap += "/%d" % (spec.channels,)
            attributes.append(("rtpmap", rtpmap))
        for pt, spec, fmtp in entries:
            if fmtp:
                attributes.append(("fmtp", "%d %s" % (pt, fmtp)))
        attributes.append(("ptime", str(self.ptime)))
        if self.rtcp_port != self.port + 1:
            attributes.append(("rtcp", str(self.rtcp_port)))
        if rtcp_mux:
            attributes.append(("rtcp-mux", None))
        attributes.append((direction, None))
        return MediaDescription(
            "audio", self.port, proto, tuple([str(pt) for pt, _, _ in entries]),
            attributes=tuple(attributes),
        )

    def create_offer(self, direction=None):
        """
        An offer for a new session or a re-offer (hold, resume, refresh,
        late offer).  A re-offer keeps the previous m= lines (rejected ones
        stay at port 0) and the payload types agreed before.

        @param direction: the new local direction preference, or C{None} to
            keep the current one.
        @rtype: L{SessionDescription}
        """
        if direction is not None:
            if direction not in _SENDS:
                raise ValueError("unknown direction %r" % (direction,))
            self.direction = direction
        entries = [(self._local_pt(c), c, c.fmtp) for c in self.codecs]
        audio = self._audio_section(self.direction, entries, rtcp_mux=self.rtcp_mux)
        if self._template:
            media = list(self._template)
            previous = media[self._audio_index]
            media[self._audio_index] = attrs.evolve(audio, proto=previous.proto)
        else:
            media = [audio]
            self._audio_index = 0
        offer = self._finish(media)
        self.pending_offer = offer
        return offer

    # -- answering -----------------------------------------------------------

    def _select(self, media, pt_source):
        """
        Intersect C{media}'s payload types with our codecs, in C{media}'s
        order.  Return (audio [(pt, spec, rtpmap)], dtmf [(pt, spec, rtpmap)]).
        """
        rtpmaps = media.rtpmaps()
        audio, dtmf = [], []
        for pt in media.payload_types:
            rtpmap = rtpmaps.get(pt)
            if rtpmap is None:
                continue
            for spec in pt_source:
                if _matches(spec, rtpmap):
                    if spec.name.lower() == TELEPHONE_EVENT:
                        dtmf.append((pt, spec, rtpmap))
                    else:
                        audio.append((pt, spec, rtpmap))
                    break
        if audio:
            rate = audio[0][2].clock_rate
            dtmf = [entry for entry in dtmf if entry[2].clock_rate == rate]
        return audio, dtmf

    def _remote_state(self, description, media):
        """
        (address or None, remote direction, remote_hold) for a stream.
        """
        connection = description.media_connection(media)
        direction = description.media_direction(media)
        if direction not in _SENDS:
            direction = "sendrecv"
        old_hold = connection is not None and connection.is_hold
        if old_hold:  # RFC 2543 hold: "do not send to me"
            direction = _direction(_SENDS[direction], False)
        address = _usable_address(connection.host) if connection is not None else None
        return address, direction, not _RECVS[direction]

    def _stream(self, description, media, index, audio, dtmf, our_direction, receive, rtcp_mux,
                remote=None):
        address, _, remote_hold = remote or self._remote_state(description, media)
        ptime = media.ptime if media.ptime and 10 <= media.ptime <= 120 and media.ptime % 10 == 0 else self.ptime
        if address is None:
            remote_rtcp = None
        elif rtcp_mux:
            remote_rtcp = (address, media.port)
        elif media.rtcp is not None:
            port, rtcp_address = media.rtcp
            remote_rtcp = (_usable_address(rtcp_address) or address if rtcp_address else address, port)
        else:
            remote_rtcp = (address, media.port + 1)
        pt, spec, rtpmap = audio[0]
        return NegotiatedStream(
            remote_address=address,
            remote_port=media.port,
            remote_rtcp=remote_rtcp,
            rtcp_mux=rtcp_mux,
            send_payload_type=pt,
            send_codec=spec.name,
            clock_rate=rtpmap.clock_rate,
            receive_payload_types=receive,
            send_dtmf_payload_type=dtmf[0][0] if dtmf else None,
            receive_dtmf_payload_types=frozenset(pt for pt, _, _ in dtmf),
            direction=our_direction,
            ptime=ptime,
            remote_hold=remote_hold,
            media_index=index,
        )

    def answer(self, offer):
        """
        Answer an offer.

        @param offer: bytes or a L{SessionDescription}.
        @return: C{(answer, negotiated)}: a L{SessionDescription} and a
            L{NegotiatedStream}.
        @raise SdpParseError: unparseable offer (400).
        @raise SdpNegotiationError: nothing acceptable (488).
        """
        if not isinstance(offer, SessionDescription):
            offer = parse(offer)
        if self._template is not None and len(offer.media) < len(self._template):
            raise SdpNegotiationError("re-offer has fewer m= lines than the session")
        answer_media = []
        negotiated = None
        for index, media in enumerate(offer.media):
            section = None
            if (
                negotiated is None
                and media.media == "audio"
                and media.port != 0
                and media.proto.upper() in ACCEPTED_PROTOCOLS
            ):
                audio, dtmf = self._select(media, self.codecs)
                if audio:
                    remote = self._remote_state(offer, media)
                    direction = intersect_directions(self.direction, reverse_direction(remote[1]))
                    rtcp_mux = self.rtcp_mux and media.rtcp_mux
                    fmtps = media.fmtps()
                    entries = [(pt, spec, fmtps.get(pt, spec.fmtp)) for pt, spec, _ in audio + dtmf]
                    section = self._audio_section(direction, entries, media.proto, rtcp_mux)
                    receive = {pt: spec.name for pt, spec, _ in audio}
                    negotiated = self._stream(offer, media, index, audio, dtmf, direction, receive,
                                              rtcp_mux, remote)
                    self._audio_index = index
                    for pt, spec, _ in audio + dtmf:
                        self._pt_by_name[spec.name.lower(), spec.clock_rate] = pt
            if section is None:
                section = MediaDescription(
                    media.media, 0, media.proto, media.formats or ("0",)
                )
            answer_media.append(section)
        if negotiated is None:
            raise SdpNegotiationError("no acceptable audio stream in the offer")
        self.pending_offer = None
        self.negotiated = negotiated
        return self._finish(answer_media), negotiated

    def accept_answer(self, answer):
        """
        Take the answer to our pending offer.

        @param answer: bytes or a L{SessionDescription}.
        @return: the L{NegotiatedStream}.
        @raise SdpParseError: unparseable answer.
        @raise SdpNegotiationError: no offer pending, the answer rejects the
            audio stream or picks nothing we offered.
        """
        if not isinstance(answer, SessionDescription):
            answer = parse(answer)
        offer = self.pending_offer
        if offer is None:
            raise SdpNegotiationError("an answer without a pending offer")
        if len(answer.media) != len(offer.media):
            raise SdpNegotiationError(
                "the answer has %d m= lines, the offer %d" % (len(answer.media), len(offer.media))
            )
        index = self._audio_index
        media = answer.media[index]
        if media.port == 0 or media.media != "audio":
            raise SdpNegotiationError("the answer rejected the audio stream")
        audio, dtmf = self._select(media, self.codecs)
        if not audio:
            raise SdpNegotiationError("the answer has no codec we offered")
        _, remote_direction, _ = self._remote_state(answer, media)
        direction = intersect_directions(self.direction, reverse_direction(remote_direction))
        offered = offer.media[index]
        rtcp_mux = self.rtcp_mux and offered.rtcp_mux and media.rtcp_mux
        receive = {}
        for pt, spec, _ in audio:
            receive[self._local_pt(spec)] = spec.name
            receive.setdefault(pt, spec.name)
        negotiated = self._stream(answer, media, index, audio, dtmf, direction, receive, rtcp_mux)
        if dtmf:
            ours = self._local_pt(dtmf[0][1])
            negotiated = attrs.evolve(
                negotiated,
                receive_dtmf_payload_types=negotiated.receive_dtmf_payload_types | {ours},
            )
        self.pending_offer = None
        self.negotiated = negotiated
        return negotiated
