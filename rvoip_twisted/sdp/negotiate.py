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
    _text_cache,
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


@_text_cache(maxsize=256)
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


#: the c= of our descriptions: one immutable value per address, shared.
_connection_for = functools.lru_cache(maxsize=64)(Connection.for_address)


def _codec_key(codecs):
    """What of our codecs an answer depends on, hashable (codecs are duck-typed)."""
    return tuple([(c.name, c.clock_rate, c.channels, c.fmtp) for c in codecs])


#: (codecs tuple, its key) of the last OfferAnswer made: the sessions of a
#: media manager all get its one tuple, so their key is made once.  Codecs
#: are values (L{Codec} is frozen), as the key already assumes.
_last_codecs = (None, None)


def _codecs_key(codecs):
    """L{_codec_key} of a tuple of codecs; C{ValueError} without an audio codec."""
    global _last_codecs
    last, key = _last_codecs
    if codecs is last:
        return key
    key = _codec_key(codecs)
    if not any(k[0].lower() != TELEPHONE_EVENT for k in key):
        raise ValueError("at least one audio codec is needed")
    _last_codecs = (codecs, key)
    return key


def _section_attributes(entries, ptime, rtcp_port, rtcp_mux):
    """
    The attributes of an audio section of ours, but its direction.
    entries: [(payload_type, name, clock_rate, channels, fmtp)] in order.
    """
    attributes = []
    for pt, name, rate, channels, _ in entries:
        rtpmap = "%d %s/%d" % (pt, name, rate)
        if (channels or 1) != 1:
            rtpmap += "/%d" % (channels,)
        attributes.append(("rtpmap", rtpmap))
    for pt, _, _, _, fmtp in entries:
        if fmtp:
            attributes.append(("fmtp", "%d %s" % (pt, fmtp)))
    attributes.append(("ptime", str(ptime)))
    if rtcp_port is not None:
        attributes.append(("rtcp", str(rtcp_port)))
    if rtcp_mux:
        attributes.append(("rtcp-mux", None))
    return attributes


def _selection(media, codecs):
    """
    Intersect C{media}'s payload types with C{codecs} (a L{_codec_key}), in
    C{media}'s order: (audio, dtmf), each a tuple of (payload type, index
    in C{codecs}, L{RtpMap}).
    """
    rtpmaps = media.rtpmaps()
    audio, dtmf = [], []
    for pt in media.payload_types:
        rtpmap = rtpmaps.get(pt)
        if rtpmap is None:
            continue
        encoding = rtpmap.encoding.lower()
        for index, (name, rate, channels, _) in enumerate(codecs):
            if (name.lower() == encoding and rate == rtpmap.clock_rate
                    and (channels or 1) == rtpmap.channels):
                if encoding == TELEPHONE_EVENT:
                    dtmf.append((pt, index, rtpmap))
                else:
                    audio.append((pt, index, rtpmap))
                break
    if audio:
        rate = audio[0][2].clock_rate
        dtmf = [entry for entry in dtmf if entry[2].clock_rate == rate]
    return tuple(audio), tuple(dtmf)


@functools.lru_cache(maxsize=256)
def _answer_plan(formats, attributes, codecs, ptime, rtcp_port, rtcp_mux):
    """
    What an offered audio section's formats and attributes make of our
    C{codecs} (a L{_codec_key}) and settings: everything of the answer that
    does not depend on the offer's address, port and direction.  A UA's
    offers differ from call to call in those, hardly ever in the rest (its
    codecs, ptime, rtcp-mux): that is worked out once.  C{None} when no
    codec is common.
    """
    media = MediaDescription("audio", 0, "RTP/AVP", formats, attributes=attributes)
    audio, dtmf = _selection(media, codecs)
    if not audio:
        return None
    fmtps = media.fmtps()
    rtcp_mux = rtcp_mux and media.rtcp_mux
    entries = [(pt,) + codecs[index][:3] + (fmtps.get(pt, codecs[index][3]),)
               for pt, index, _ in audio + dtmf]
    return (
        audio,
        dtmf,
        tuple([str(entry[0]) for entry in entries]),
        tuple(_section_attributes(entries, ptime, rtcp_port, rtcp_mux)),
        rtcp_mux,
        _send_ptime(media.ptime, ptime),
        media.rtcp,
    )


#: Offered sections with more attributes or formats than this are answered
#: without keeping their plan (a phone offers a dozen or two of each).  A
#: kept plan holds its section's attributes: 256 plans of sections of 64
#: attributes of 1 KB each (which the parser does not keep) come to about
#: 19 MB (tracemalloc), less than the transaction table keeps of the same
#: INVITEs while their transactions last.
_PLAN_WIDTH = 64


def _plan_answer(media, codecs, ptime, rtcp_port, rtcp_mux):
    """L{_answer_plan} for C{media}."""
    formats, attributes = media.formats, media.attributes
    if len(attributes) <= _PLAN_WIDTH and len(formats) <= _PLAN_WIDTH:
        try:
            return _answer_plan(formats, attributes, codecs, ptime, rtcp_port, rtcp_mux)
        except TypeError:       # a description built with lists for pairs: not hashable
            pass
    return _answer_plan.__wrapped__(formats, attributes, codecs, ptime, rtcp_port, rtcp_mux)


def _send_ptime(offered, ours):
    """The peer's a=ptime if it is one we can send (10-120 ms, whole 10s), else ours."""
    return offered if offered and 10 <= offered <= 120 and offered % 10 == 0 else ours


class OfferAnswer:
    """
    The local side of offer/answer for one session (one call).

    @ivar direction: the local direction preference; offers carry it and
        answers are intersected with it.
    @ivar negotiated: the last L{NegotiatedStream}, or C{None}.
    @ivar pending_offer: the offer we sent and await an answer for.
    """

    @property
    def codecs(self):
        """Our codecs in preference order (a tuple, fixed at construction)."""
        return self._codecs

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
        self._codecs = codecs = tuple(codecs)
        self._codecs_key = _codecs_key(codecs)
        self.ptime = ptime
        self.rtcp_port = rtcp_port if rtcp_port is not None else port + 1
        # the a=rtcp we write: none for the usual port + 1
        self._rtcp_attribute = None if self.rtcp_port == port + 1 else self.rtcp_port
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
        attributes = _section_attributes(
            [(pt, spec.name, spec.clock_rate, spec.channels, fmtp) for pt, spec, fmtp in entries],
            self.ptime, self._rtcp_attribute, rtcp_mux)
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

    def _stream(self, media, index, audio, dtmf, our_direction, receive, rtcp_mux, remote,
                ptime, rtcp):
        """
        The L{NegotiatedStream}: audio and dtmf from L{_selection}; remote
        from L{_remote_state}; ptime to send; rtcp, C{media}'s a=rtcp.
        """
        address, _, remote_hold = remote
        if address is None:
            remote_rtcp = None
        elif rtcp_mux:
            remote_rtcp = (address, media.port)
        elif rtcp is not None:
            port, rtcp_address = rtcp
            remote_rtcp = (_usable_address(rtcp_address) or address if rtcp_address else address, port)
        else:
            remote_rtcp = (address, media.port + 1)
        pt, codec, rtpmap = audio[0]
        return NegotiatedStream(
            remote_address=address,
            remote_port=media.port,
            remote_rtcp=remote_rtcp,
            rtcp_mux=rtcp_mux,
            send_payload_type=pt,
            send_codec=self._codecs[codec].name,
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
                plan = _plan_answer(media, self._codecs_key, self.ptime, self._rtcp_attribute,
                                    self.rtcp_mux)
                if plan is not None:
                    audio, dtmf, formats, attributes, rtcp_mux, ptime, rtcp = plan
                    remote = self._remote_state(offer, media)
                    direction = intersect_directions(self.direction, reverse_direction(remote[1]))
                    section = MediaDescription("audio", self.port, media.proto, formats, None,
                                               None, attributes + ((direction, None),))
                    codecs = self._codecs
                    receive = {pt: codecs[i].name for pt, i, _ in audio}
                    negotiated = self._stream(media, index, audio, dtmf, direction, receive,
                                              rtcp_mux, remote, ptime, rtcp)
                    self._audio_index = index
                    for pt, i, _ in audio + dtmf:
                        spec = codecs[i]
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
        audio, dtmf = _selection(media, self._codecs_key)
        if not audio:
            raise SdpNegotiationError("the answer has no codec we offered")
        remote = self._remote_state(answer, media)
        direction = intersect_directions(self.direction, reverse_direction(remote[1]))
        offered = offer.media[index]
        rtcp_mux = self.rtcp_mux and offered.rtcp_mux and media.rtcp_mux
        receive = {}
        codecs = self._codecs
        for pt, i, _ in audio:
            spec = codecs[i]
            receive[self._local_pt(spec)] = spec.name
            receive.setdefault(pt, spec.name)
        negotiated = self._stream(media, index, audio, dtmf, direction, receive, rtcp_mux, remote,
                                  _send_ptime(media.ptime, self.ptime), media.rtcp)
        if dtmf:
            ours = self._local_pt(codecs[dtmf[0][1]])
            negotiated = attrs.evolve(
                negotiated,
                receive_dtmf_payload_types=negotiated.receive_dtmf_payload_types | {ours},
            )
        self.pending_offer = None
        self.negotiated = negotiated
        return negotiated
