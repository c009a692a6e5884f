"""Interop tests: SIPp (and tshark) against the rvoip server, and SIPp as the peer of
rvoip's outgoing calls.

Each test starts its own server (``twistd -n rvoip`` on free loopback ports), runs one
scenario from this directory, and asserts on SIPp's exit status and on facts: response
codes and counts from SIPp's message log, retransmission counts, RTP/RTCP seen by
tshark on ``lo``, and the server's log lines.  A missing peer (sipp, tshark, SIPp's
sample captures) FAILS the test with what to install; .ci/run installs them.

The ``test_selftest_*`` tests need no server: they check the scenarios (and the
helpers) against SIPp itself.

By hand: see sipp/README.md.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runner  # noqa: E402  (sipp/ is not a package)

pytestmark = pytest.mark.interop

DTMF_SEQUENCE = ["1", "2", "5", "9", "*", "#"]     # what uac_dtmf.xml plays, in order
G711A_PCAP_PACKETS = 236                           # g711a.pcap: 236 x 30 ms PCMA


# --------------------------------------------------------------------------- helpers


def need(tool: str) -> str:
    try:
        return runner.require_tool(tool)
    except runner.MissingTool as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def sipp_bin() -> str:
    return need("sipp")


@pytest.fixture
def tshark_bin() -> str:
    return need("tshark")


@pytest.fixture
def pcaps(sipp_bin) -> Path:
    try:
        return runner.pcap_dir()
    except runner.MissingTool as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def start_server(tmp_path, sipp_bin):
    """start_server(app, **options) -> a started runner.Server; all stopped at the end."""
    servers: list[runner.Server] = []

    def start(app: str = "echo", **options) -> runner.Server:
        server = runner.Server(tmp_path / f"server{len(servers)}", app, **options)
        servers.append(server)
        try:
            server.start()
        except runner.ServerError as exc:
            pytest.fail(str(exc), pytrace=False)
        return server

    yield start
    for server in servers:
        server.stop()


class Report:
    """Collects what a failure message should show: SIPp's diagnostics, the server log,
    packet summaries."""

    def __init__(self, server: runner.Server | None = None,
                 result: runner.SippResult | None = None, **extra: str) -> None:
        self.server = server
        self.result = result
        self.extra = dict(extra)

    def note(self, name: str, text: str) -> None:
        self.extra[name] = text

    def text(self) -> str:
        parts = []
        if self.result is not None:
            parts.append(self.result.diagnostics())
        for name, value in self.extra.items():
            parts.append(f"--- {name} ---\n{value}")
        if self.server is not None:
            parts.append(f"--- server log (tail), {self.server.log_path} ---\n"
                         + self.server.log_tail(50))
        return "\n".join(parts)

    def fail(self, message: str) -> None:
        pytest.fail(f"{message}\n\n{self.text()}", pytrace=False)

    def check(self, condition, message: str) -> None:
        if not condition:
            self.fail(message)

    def sipp_ok(self) -> None:
        res = self.result
        self.check(res is not None and res.ok,
                   f"SIPp scenario {res.scenario if res else '?'} failed: exit status "
                   f"{res.returncode if res else None}")


def sipp_uac(server: runner.Server, scenario: str, rundir: Path, **kw) -> runner.SippResult:
    return runner.run_sipp(scenario, rundir, remote_port=server.port, **kw)


def final_responses(res: runner.SippResult, method: str = "INVITE") -> list[runner.SipMessage]:
    return [m for m in res.responses_received(method) if m.status and m.status >= 200]


def media_capture(rundir: Path, server: runner.Server, media_port: int) -> runner.Capture:
    bpf = (f"udp portrange {server.rtp_low}-{server.rtp_high} "
           f"or udp portrange {media_port}-{media_port + 3}")
    return runner.Capture(rundir, bpf)


def split_rtp(packets, server: runner.Server, media_port: int):
    """(server -> SIPp media port, SIPp media port -> server)"""
    def in_range(port):
        return server.rtp_low <= port <= server.rtp_high
    to_sipp = [p for p in packets if in_range(p.src_port) and p.dst_port == media_port]
    to_server = [p for p in packets if p.src_port == media_port and in_range(p.dst_port)]
    return to_sipp, to_server


def rtp_summary(packets) -> str:
    if not packets:
        return "(none)"
    pts = sorted({p.payload_type for p in packets if p.payload_type is not None})
    flows = sorted({(p.src_port, p.dst_port) for p in packets})
    return (f"{len(packets)} packets, payload types {pts}, flows {flows}, "
            f"{runner.audio_seconds(packets):.2f} s of G.711 audio, "
            f"from {packets[0].time:.3f} to {packets[-1].time:.3f}")


def answer_sdp(res: runner.SippResult, report: Report) -> runner.Sdp:
    oks = [m for m in final_responses(res) if m.status == 200]
    report.check(oks, "no 200 to the INVITE")
    sdp = oks[0].sdp()
    report.check(sdp is not None, "the 200 to the INVITE has no SDP body "
                 "(Content-Type application/sdp)")
    return sdp


def check_answer_addr(sdp: runner.Sdp, server: runner.Server, report: Report) -> None:
    report.check(sdp.connection == runner.HOST,
                 f"SDP c= address {sdp.connection!r}, expected {runner.HOST} (--public-host)")
    report.check(sdp.port is not None and server.rtp_low <= sdp.port <= server.rtp_high,
                 f"SDP m=audio port {sdp.port} is outside --rtp-ports "
                 f"{server.rtp_low}-{server.rtp_high}")
    report.check(sdp.port % 2 == 0, f"RTP port {sdp.port} is odd (RTP on even ports)")


def stats_of(server: runner.Server, call_id: str, report: Report) -> dict[str, str]:
    stats = server.call_ended(call_id, timeout=5.0)
    report.check(stats is not None,
                 f"the server did not log 'call ended call={call_id}' within 5 s of the end")
    return stats


# --------------------------------------------------------------------------- 1


def test_options_unknown_method_and_stray_bye(start_server, tmp_path):
    """OPTIONS -> 200 with Allow; FOO -> 501 (or 405 with Allow); BYE without a
    dialog -> 481."""
    server = start_server("echo")
    res = sipp_uac(server, "options_methods", tmp_path / "sipp")
    report = Report(server, res)
    report.sipp_ok()

    options = [m for m in res.responses_received("OPTIONS") if m.status >= 200]
    report.check([m.status for m in options] == [200],
                 f"OPTIONS final responses {[m.status for m in options]}, expected [200]")
    allow = ",".join(options[0].header_all("allow"))
    methods = {x.strip().upper() for x in allow.split(",") if x.strip()}
    missing = {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"} - methods
    report.check(not missing, f"Allow: {allow!r} lacks {sorted(missing)}")

    foo = [m for m in res.responses_received("FOO") if m.status >= 200]
    report.check(len(foo) == 1 and foo[0].status in (501, 405),
                 f"FOO got {[m.status for m in foo]}, expected one 501 (or 405)")
    if foo[0].status == 405:
        report.check(foo[0].header("allow"), "405 without an Allow header (RFC 3261 21.4.6)")

    bye = [m for m in res.responses_received("BYE") if m.status >= 200]
    report.check([m.status for m in bye] == [481],
                 f"BYE outside any dialog got {[m.status for m in bye]}, expected [481]")
    for msg in options + foo + bye:
        report.check(msg.to_tag, f"final response without a To tag: {msg.start_line}")


# --------------------------------------------------------------------------- 2


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_basic_call_without_media(start_server, tmp_path, transport):
    """INVITE / 100? / 180? / 200 (SDP answer PCMU) / ACK / BYE / 200; one dialog."""
    server = start_server("echo")
    res = sipp_uac(server, "uac_basic", tmp_path / "sipp", transport=transport)
    report = Report(server, res)
    report.sipp_ok()

    finals = final_responses(res)
    report.check({m.status for m in finals} == {200},
                 f"INVITE final responses {[m.status for m in finals]}, expected 200")
    report.check(len({m.raw for m in finals}) == 1,
                 "several different 200s to the INVITE (more than one dialog?)")
    provisional = [m.status for m in res.responses_received("INVITE") if m.status < 200]
    report.check(provisional.count(100) <= 1 and provisional.count(180) <= 1,
                 f"provisional responses {provisional}: at most one 100 and one 180 expected")
    sdp = answer_sdp(res, report)
    report.check(sdp.payload_types == [0] or sdp.payload_types[:1] == [0],
                 f"answer payload types {sdp.payload_types}, offer was [0]")
    check_answer_addr(sdp, server, report)
    report.check(finals[0].header("contact"), "the 200 has no Contact")
    bye_ok = [m.status for m in res.responses_received("BYE")]
    report.check(bye_ok == [200], f"BYE got {bye_ok}, expected [200]")
    stats_of(server, res.call_id, report)


# --------------------------------------------------------------------------- 3


def test_pcma_echo_rtp(start_server, tmp_path, tshark_bin, pcaps):
    """PCMA-only offer, g711a.pcap played to the echo app: the server answers PT 8 and
    sends back about as much audio as it got (within 20 %), and RTCP."""
    server = start_server("echo")
    rundir = tmp_path / "sipp"
    media_port = runner.free_udp_block(4)
    with media_capture(tmp_path, server, media_port) as cap:
        res = sipp_uac(server, "uac_pcma_echo", rundir, media_port=media_port)
    report = Report(server, res)
    report.sipp_ok()
    sdp = answer_sdp(res, report)
    report.check(sdp.payload_types[:1] == [8], f"answer payload types {sdp.payload_types}")
    check_answer_addr(sdp, server, report)

    packets = cap.rtp([media_port])
    to_sipp, to_server = split_rtp(packets, server, media_port)
    report.note("RTP server -> SIPp", rtp_summary(to_sipp))
    report.note("RTP SIPp -> server", rtp_summary(to_server))
    report.check(len(to_server) >= G711A_PCAP_PACKETS * 0.95,
                 f"tshark saw only {len(to_server)} of SIPp's {G711A_PCAP_PACKETS} packets "
                 f"(pcap play broken?)")
    report.check(to_sipp, "the server sent no RTP to SIPp's media port")
    report.check(all(p.src_port == sdp.port for p in to_sipp),
                 f"the server sent RTP from ports {sorted({p.src_port for p in to_sipp})}, "
                 f"not from its SDP port {sdp.port} (symmetric RTP)")
    report.check({p.payload_type for p in to_sipp} == {8},
                 f"server RTP payload types {sorted({p.payload_type for p in to_sipp})}, "
                 f"expected only 8 (PCMA)")
    sent_audio = runner.audio_seconds(to_server)
    echoed = runner.audio_seconds(to_sipp)
    report.check(0.8 * sent_audio <= echoed <= 1.2 * sent_audio,
                 f"the echo sent {echoed:.2f} s of audio back for {sent_audio:.2f} s "
                 f"received (outside 20 %)")

    rtcp = [p for p in cap.rtcp([media_port + 1])
            if p.dst_port == media_port + 1 and server.rtp_low <= p.src_port <= server.rtp_high]
    report.note("RTCP server -> SIPp", "\n".join(
        f"{p.time:.3f} {p.src_port}->{p.dst_port} types {p.packet_types}"
        + (" MALFORMED" if p.malformed else "") for p in rtcp) or "(none)")
    report.check(rtcp, "no RTCP from the server to SIPp's media port + 1 during a 7.6 s call")
    report.check(all(p.src_port == sdp.port + 1 for p in rtcp),
                 f"RTCP not sent from RTP port + 1 ({sdp.port + 1})")
    report.check(not any(p.malformed for p in rtcp), "tshark finds malformed RTCP")
    report.check(all(p.packet_types and p.packet_types[0] in (200, 201) for p in rtcp),
                 "an RTCP compound packet does not start with SR or RR")
    report.check(any(203 in p.packet_types for p in rtcp), "no RTCP BYE at the end of the call")

    stats = stats_of(server, res.call_id, report)
    report.check("pcma" in stats.get("codec", "").lower(), f"call ended codec= {stats}")
    received = int(re.sub(r"\D", "", stats.get("received", "")) or -1)
    sent = int(re.sub(r"\D", "", stats.get("sent", "")) or -1)
    report.check(abs(received - len(to_server)) <= max(3, 0.02 * len(to_server)),
                 f"server counted received={received}, tshark saw {len(to_server)}")
    report.check(abs(sent - len(to_sipp)) <= max(3, 0.02 * len(to_sipp)),
                 f"server counted sent={sent}, tshark saw {len(to_sipp)}")


# --------------------------------------------------------------------------- 4


def test_rfc4733_dtmf(start_server, tmp_path, pcaps):
    """Six RFC 4733 digits replayed from SIPp's captures: each logged once, in order."""
    server = start_server("echo")
    res = sipp_uac(server, "uac_dtmf", tmp_path / "sipp")
    report = Report(server, res)
    report.sipp_ok()
    sdp = answer_sdp(res, report)
    report.check(101 in sdp.payload_types,
                 f"answer payload types {sdp.payload_types} lack telephone-event 101")
    stats_of(server, res.call_id, report)
    digits = server.dtmf_digits(res.call_id)
    report.note("dtmf lines", "\n".join(map(str, digits)) or "(none)")
    report.check([d for d, _ in digits] == DTMF_SEQUENCE,
                 f"server logged digits {[d for d, _ in digits]}, expected {DTMF_SEQUENCE} "
                 f"(each once, in order)")
    for digit, duration in digits:
        report.check(duration is not None and 200 <= duration <= 400,
                     f"digit {digit} duration {duration} ms, the captures hold 280 ms")


# --------------------------------------------------------------------------- 5


def test_cancel_while_ringing(start_server, tmp_path):
    """180, CANCEL -> 200 (CANCEL) and 487 (INVITE), ACK; no 200 to the INVITE, no 487
    retransmission after the ACK."""
    server = start_server("echo", answer_after=5)
    res = sipp_uac(server, "uac_cancel", tmp_path / "sipp")
    report = Report(server, res)
    report.sipp_ok()
    cancel = [m.status for m in res.responses_received("CANCEL")]
    report.check(cancel == [200], f"CANCEL got {cancel}, expected [200]")
    finals = final_responses(res)
    report.check([m.status for m in finals] == [487],
                 f"INVITE final responses {[m.status for m in finals]}, expected exactly "
                 f"one 487 (a second one is a retransmission: the ACK was not matched)")
    ringing = [m for m in res.responses_received("INVITE") if m.status == 180]
    report.check(ringing, "no 180 before the CANCEL")
    report.check(finals[0].to_tag == ringing[0].to_tag,
                 "the 487's To tag differs from the 180's")
    stats_of(server, res.call_id, report)


# --------------------------------------------------------------------------- 6


def test_invite_retransmission_same_branch(start_server, tmp_path):
    """The INVITE sent three times with one branch: the 180 resent for each copy, one
    dialog, one 200."""
    server = start_server("echo", answer_after=3)
    res = sipp_uac(server, "uac_invite_retrans", tmp_path / "sipp", extra_args=["-nr"])
    report = Report(server, res)
    report.sipp_ok()
    invites = res.sent(method="INVITE")
    report.check(len(invites) == 3 and len({m.branch for m in invites}) == 1,
                 "the scenario did not send the INVITE three times with one branch")
    statuses = [m.status for m in res.responses_received("INVITE")]
    report.check(statuses.count(180) == 3,
                 f"INVITE responses {statuses}: expected the 180 once per INVITE copy (3)")
    oks = [m for m in res.responses_received("INVITE") if m.status == 200]
    report.check(len(oks) == 1, f"{len(oks)} 200s to the INVITE, expected exactly one")
    tags = {m.to_tag for m in res.responses_received("INVITE") if m.status > 100}
    report.check(len(tags) == 1, f"responses carry {len(tags)} To tags: {tags}")
    stats_of(server, res.call_id, report)
    ended = re.findall(r"call ended call=" + re.escape(res.call_id) + r"(?=\s|$)",
                       server.log_text())
    report.check(len(ended) == 1, f"'call ended' logged {len(ended)} times for one call")


# --------------------------------------------------------------------------- 7


def test_server_hangs_up(start_server, tmp_path):
    """--max-duration 3 with the tone app: the server sends BYE about 3 s after the
    answer, SIPp answers 200; the tone reached SIPp meanwhile."""
    server = start_server("tone:440", max_duration=3)
    media_port = runner.free_udp_block(4)
    with media_capture(tmp_path, server, media_port) as cap:
        res = sipp_uac(server, "uac_server_bye", tmp_path / "sipp", media_port=media_port)
    report = Report(server, res)
    report.sipp_ok()
    byes = res.requests_received("BYE")
    report.check(byes, "no BYE from the server")
    ack = res.sent(method="ACK")[0]
    delay = byes[0].time - ack.time
    report.check(2.5 <= delay <= 4.5, f"BYE came {delay:.2f} s after the ACK, expected ~3 s")
    report.check(byes[0].call_id == res.call_id, "BYE with another Call-ID")
    ok200 = [m for m in res.responses_received("INVITE") if m.status == 200][0]
    report.check(byes[0].header("from") and ok200.to_tag and
                 ok200.to_tag in (byes[0].header("from") or ""),
                 "the BYE's From tag is not the tag of the server's 200")
    report.check(len(byes) == 1, f"{len(byes)} BYEs (retransmitted: our 200 not matched?)")

    to_sipp, _ = split_rtp(cap.rtp([media_port]), server, media_port)
    report.note("RTP server -> SIPp", rtp_summary(to_sipp))
    report.check(to_sipp and {p.payload_type for p in to_sipp} == {0},
                 "the tone app sent no PCMU RTP to SIPp")
    seconds = runner.audio_seconds(to_sipp)
    report.check(2.0 <= seconds <= 4.0, f"{seconds:.2f} s of tone for a 3 s call")
    stats_of(server, res.call_id, report)


# --------------------------------------------------------------------------- 8


def test_reinvite_hold_resume_codec_change(start_server, tmp_path):
    """Hold (sendonly -> recvonly), resume (sendrecv), codec change to PCMA; the media
    follows: no RTP while held, RTP again after the resume, PT 8 after the change."""
    server = start_server("tone:440")
    media_port = runner.free_udp_block(4)
    with media_capture(tmp_path, server, media_port) as cap:
        res = sipp_uac(server, "uac_reinvite", tmp_path / "sipp", media_port=media_port)
    report = Report(server, res)
    report.sipp_ok()

    oks = {m.cseq_number: m for m in res.responses_received("INVITE") if m.status == 200}
    report.check(sorted(oks) == [1, 2, 3, 4], f"200s for INVITE CSeqs {sorted(oks)}")
    sdps = {n: oks[n].sdp() for n in oks}
    report.check(all(sdps.values()), "a 200 to a (re-)INVITE without SDP")
    report.check(sdps[2].direction == "recvonly", f"hold answer direction {sdps[2].direction}")
    report.check(sdps[3].direction == "sendrecv", f"resume answer direction {sdps[3].direction}")
    report.check(sdps[4].payload_types[:1] == [8],
                 f"codec change answer payload types {sdps[4].payload_types}")
    report.check(len({oks[n].to_tag for n in oks}) == 1, "To tag changed within the dialog")
    versions = [sdps[n].origin_version for n in (1, 2, 3, 4)]
    for n in (2, 3, 4):
        if _sdp_core(sdps[n]) != _sdp_core(sdps[n - 1]):
            report.check(versions[n - 1] == versions[n - 2] + 1,
                         f"o= versions {versions}: the answer to CSeq {n} changed the SDP "
                         f"but its version is not the previous + 1 (RFC 3264 8)")

    packets = cap.rtp([media_port])
    to_sipp, _ = split_rtp(packets, server, media_port)
    report.note("RTP server -> SIPp", rtp_summary(to_sipp))

    def between(start, end):
        return [p for p in to_sipp if start < p.time < end]
    t = {n: oks[n].time for n in oks}
    bye_time = res.sent(method="BYE")[0].time
    phase1 = between(t[1] + 0.2, t[2])
    held = between(t[2] + 0.3, t[3])
    resumed = between(t[3] + 0.3, t[4])
    changed = between(t[4] + 0.3, bye_time)
    report.note("RTP per phase", f"before hold {len(phase1)}, held {len(held)}, "
                f"resumed {len(resumed)}, after codec change {len(changed)} "
                f"(PTs {sorted({p.payload_type for p in changed})})")
    report.check(len(phase1) >= 50, "too little RTP before the hold")
    report.check(len(held) <= 2, f"{len(held)} RTP packets sent while held (recvonly)")
    report.check(len(resumed) >= 50, "too little RTP after the resume")
    report.check(len(changed) >= 50 and {p.payload_type for p in changed} == {8},
                 "after the codec change the server must send PCMA (PT 8) only")
    stats_of(server, res.call_id, report)


def _sdp_core(sdp: runner.Sdp):
    return (sdp.connection, sdp.port, tuple(sdp.payload_types), sdp.direction,
            tuple(a for a in sdp.attributes if not a.startswith("ptime")))


# --------------------------------------------------------------------------- 9


def test_late_offer(start_server, tmp_path):
    """INVITE without SDP: the 200 carries the offer, the ACK the answer; the server
    then sends RTP to the port from the ACK."""
    server = start_server("tone:440")
    media_port = runner.free_udp_block(4)
    with media_capture(tmp_path, server, media_port) as cap:
        res = sipp_uac(server, "uac_late_offer", tmp_path / "sipp", media_port=media_port)
    report = Report(server, res)
    report.sipp_ok()
    offer = answer_sdp(res, report)
    report.check(0 in offer.payload_types, f"offer payload types {offer.payload_types}")
    check_answer_addr(offer, server, report)
    report.check(offer.direction == "sendrecv", f"offer direction {offer.direction}")
    to_sipp, _ = split_rtp(cap.rtp([media_port]), server, media_port)
    report.note("RTP server -> SIPp", rtp_summary(to_sipp))
    report.check(len(to_sipp) >= 50, "the server sent (almost) no RTP to the port given "
                 "in the ACK's answer")
    report.check({p.payload_type for p in to_sipp} == {0}, "RTP not PCMU as answered")
    stats_of(server, res.call_id, report)


# --------------------------------------------------------------------------- 10


def test_options_in_dialog(start_server, tmp_path):
    server = start_server("echo")
    res = sipp_uac(server, "uac_options_in_dialog", tmp_path / "sipp")
    report = Report(server, res)
    report.sipp_ok()
    options = [m for m in res.responses_received("OPTIONS") if m.status >= 200]
    report.check([m.status for m in options] == [200],
                 f"in-dialog OPTIONS got {[m.status for m in options]}")
    invite_tag = final_responses(res)[0].to_tag
    report.check(options[0].to_tag == invite_tag, "OPTIONS 200 with another To tag")
    bye = [m.status for m in res.responses_received("BYE")]
    report.check(bye == [200], f"BYE got {bye}")


# --------------------------------------------------------------------------- 11


def test_unsupported_codec_488(start_server, tmp_path):
    server = start_server("echo")
    res = sipp_uac(server, "uac_488", tmp_path / "sipp")
    report = Report(server, res)
    report.sipp_ok()
    finals = [m.status for m in final_responses(res)]
    report.check(finals == [488], f"INVITE final responses {finals}, expected exactly one "
                 f"488 (a second one is a retransmission: the ACK was not matched)")
    report.check(res.count("488_Retrans") == 0, "the 488 was retransmitted after the ACK")


# --------------------------------------------------------------------------- 12


def test_lost_ack_2xx_retransmission_then_bye(start_server, tmp_path):
    """No ACK: the 200 is retransmitted at 0.5, 1, 2, 4, 4, ... s for 32 s, then the
    server sends BYE.  (~35 s)"""
    server = start_server("echo")
    res = sipp_uac(server, "uac_lost_ack", tmp_path / "sipp", timeout=60)
    report = Report(server, res)
    report.sipp_ok()
    oks = [m for m in res.responses_received("INVITE") if m.status == 200]
    times = [m.time for m in oks]
    gaps = [round(b - a, 2) for a, b in zip(times, times[1:])]
    report.note("200 retransmission gaps (s)", str(gaps))
    report.check(len(oks) >= 8, f"the 200 came {len(oks)} times; with T1=0.5 s, T2=4 s "
                 f"over 32 s it is sent about 11 times (>= 8 expected)")
    report.check(len(oks) <= 13, f"the 200 came {len(oks)} times: too many")
    report.check(res.count("200_Retrans") >= 7 or len(oks) >= 8,
                 f"SIPp counted {res.count('200_Retrans')} retransmissions")
    report.check(len({m.raw for m in oks}) == 1, "the retransmitted 200s differ")
    report.check(0.3 <= gaps[0] <= 0.8, f"first retransmission after {gaps[0]} s, T1=0.5 s")
    report.check(max(gaps) <= 4.6, f"a gap of {max(gaps)} s, T2 is 4 s")
    report.check(all(b >= a * 0.8 for a, b in zip(gaps, gaps[1:])),
                 f"gaps {gaps} do not grow (double up to T2)")
    byes = res.requests_received("BYE")
    report.check(byes, "no BYE after the ACK timeout")
    after = byes[0].time - oks[0].time
    report.check(28 <= after <= 40, f"BYE {after:.1f} s after the first 200, expected "
                 f"about 64*T1 = 32 s")
    stats_of(server, res.call_id, report)


# --------------------------------------------------------------------------- 13


def _caller(tmp_path, sipp: runner.SippProcess, extra=(), duration=2):
    wav = runner.write_tone_wav(tmp_path / "tone.wav", seconds=duration + 1)
    return runner.run_caller(
        ["call", "--duration", str(duration), "--play", str(wav),
         "--local-port", str(runner.free_port()), *extra,
         f"sip:service@{runner.HOST}:{sipp.local_port}"],
        tmp_path / "caller", timeout=30)


def _uas_run(tmp_path, scenario, caller_extra=(), capture=True):
    """SIPp UAS in the background, the rvoip caller against it, tshark meanwhile."""
    media_port = runner.free_udp_block(4)
    sipp = runner.run_sipp(scenario, tmp_path / "sipp", media_port=media_port, timeout=30,
                           extra_args=["-rtp_echo"], background=True)
    cap = None
    code, output, listening = None, "", False
    try:
        listening = sipp.wait_listening(10)
        if listening:
            if capture:
                cap = runner.Capture(tmp_path, f"udp portrange {media_port}-{media_port + 3}"
                                               f" or udp port {sipp.local_port}").start()
            code, output = _caller(tmp_path, sipp, caller_extra)
    finally:
        if cap is not None:
            cap.stop()
        res = sipp.finish(grace=5)
    if not listening:
        Report(result=res).fail("SIPp (UAS) did not bind its SIP port within 10 s")
    return res, code, output, cap, media_port


def _check_uas_call(res, code, output, cap, media_port):
    report = Report(result=res)
    report.note("caller output (tail)", runner.tail(output, 40))
    report.check(code == 0, f"python -m rvoip_twisted call exited {code}, expected 0")
    report.sipp_ok()
    byes = res.requests_received("BYE")
    report.check(len(byes) == 1, f"{len(byes)} BYEs from the caller")
    acks = res.requests_received("ACK")
    report.check(acks, "no ACK from the caller")
    if cap is not None:
        rtp = [p for p in cap.rtp([media_port]) if p.dst_port == media_port]
        report.note("RTP caller -> SIPp", rtp_summary(rtp))
        report.check(len(rtp) >= 50, "the caller sent (almost) no RTP during a 2 s call")
        report.check({p.payload_type for p in rtp} == {0}, "caller RTP is not PCMU as answered")
    return report


def test_outgoing_call_plain(tmp_path, sipp_bin, tshark_bin):
    """rvoip as UAC against SIPp's plain UAS: INVITE, 200, ACK, BYE after 2 s."""
    res, code, output, cap, media_port = _uas_run(tmp_path, "uas")
    report = _check_uas_call(res, code, output, cap, media_port)
    invite = res.requests_received("INVITE")
    bye = res.requests_received("BYE")
    ack = res.requests_received("ACK")
    report.check(len(invite) == 1, f"{len(invite)} INVITEs")
    duration = bye[0].time - ack[0].time
    report.check(1.5 <= duration <= 3.5, f"BYE {duration:.2f} s after the ACK, --duration 2")


def test_outgoing_call_proxy_auth_407(tmp_path, sipp_bin, tshark_bin):
    """rvoip as UAC, challenged with 407: the re-INVITE carries a correct
    Proxy-Authorization (MD5, qop=auth, user u, password p), CSeq + 1."""
    res, code, output, cap, media_port = _uas_run(
        tmp_path, "uas_auth", ["--user", "u", "--password", "p"])
    report = _check_uas_call(res, code, output, cap, media_port)
    invites = res.requests_received("INVITE")
    report.check(len(invites) == 2, f"{len(invites)} INVITEs, expected 2 (challenge, retry)")
    _check_digest(report, res, invites, "proxy-authorization", "Proxy-Authenticate")


def test_outgoing_call_auth_401(tmp_path, sipp_bin, tshark_bin):
    """rvoip as UAC, challenged with 401: SIPp's verifyauth checks the Authorization."""
    res, code, output, cap, media_port = _uas_run(
        tmp_path, "uas_auth401", ["--user", "u", "--password", "p"], capture=False)
    report = _check_uas_call(res, code, output, cap, media_port)
    invites = res.requests_received("INVITE")
    report.check(len(invites) == 2, f"{len(invites)} INVITEs, expected 2 (challenge, retry)")
    _check_digest(report, res, invites, "authorization", "WWW-Authenticate")


def _check_digest(report, res, invites, header, challenge_header, password="p",
                  strict_uri=True):
    first, second = invites[0], invites[1]
    report.check(second.cseq_number == (first.cseq_number or 0) + 1,
                 f"retry CSeq {second.cseq_number}, expected {first.cseq_number} + 1")
    report.check(second.call_id == first.call_id, "retry with another Call-ID")
    report.check(second.branch != first.branch, "retry reuses the first INVITE's branch")
    challenge = [m for m in res.sent() if m.is_response and m.status in (401, 407)][0]
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge.header(challenge_header) or ""))
    creds = second.header(header)
    report.check(creds, f"the retry has no {header} header")
    problems = runner.digest_problems(
        creds, method="INVITE", username="u", password=password, realm=params.get("realm"),
        nonce=params.get("nonce"), opaque=params.get("opaque"),
        request_uri=second.request_uri if strict_uri else None)
    report.check(not problems, f"{header}: {creds}\nproblems: " + "; ".join(problems))


# --------------------------------------------------------------------------- self-tests


SCENARIOS = sorted(p.name for p in Path(__file__).resolve().parent.glob("*.xml"))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_selftest_scenario_loads_in_sipp(scenario, tmp_path, sipp_bin, pcaps):
    """SIPp parses the scenario (XML, variables, labels, pcap files): it idles for 1 s
    with no call (-r 0) and exits 97; a broken scenario exits 1 or 255 at once."""
    # the registrar scenarios take their own keywords (-key) from their tests
    keys = ["-key", "caller", "alice", "-key", "contact", "sip:selftest@127.0.0.1:9"]
    res = runner.run_sipp(scenario, tmp_path, remote_port=9, timeout=1,
                          timeout_error=False, extra_args=["-r", "0"] + keys)
    report = Report(result=res)
    report.check(not res.timed_out, "SIPp overstayed its own timeout")
    bad = [line for line in res.errors.splitlines()
           if line.strip() and "following events" not in line.lower()]
    report.check(res.returncode == 97 and not bad,
                 f"SIPp exit {res.returncode} (97 expected: ran idle until -timeout); it "
                 f"said:\n" + "\n".join(bad))


def test_selftest_uac_basic_against_sipp_uas(tmp_path, sipp_bin):
    """uac_basic.xml completes against SIPp's built-in UAS (-sn uas)."""
    port = runner.free_port()
    out = open(tmp_path / "uas.out", "wb")
    uas = runner.subprocess.Popen(
        [sipp_bin, "-sn", "uas", "-i", runner.HOST, "-p", str(port), "-m", "1", "-nostdin",
         "-mp", str(runner.free_udp_block(4))], cwd=tmp_path,
        stdin=runner.subprocess.DEVNULL, stdout=out, stderr=runner.subprocess.STDOUT)
    try:
        assert runner.wait_udp_bound(port, uas), "SIPp -sn uas did not bind"
        res = runner.run_sipp("uac_basic", tmp_path / "uac", remote_port=port, timeout=15)
    finally:
        runner.stop_process(uas, timeout=5, sig=runner.signal.SIGINT)
        out.close()
    report = Report(result=res)
    report.sipp_ok()
    report.check([m.status for m in res.responses_received("BYE")] == [200], "no 200 to BYE")


@pytest.mark.parametrize("scenario,header,challenge", [
    ("uas_auth", "proxy-authorization", "Proxy-Authenticate"),
    ("uas_auth401", "authorization", "WWW-Authenticate"),
])
def test_selftest_auth_uas_against_sipp_uac(tmp_path, sipp_bin, scenario, header, challenge):
    """uas_auth*.xml against SIPp's own digest client: right password accepted (and
    the Python digest check agrees), wrong password refused (401: by SIPp's verifyauth;
    407: by the Python check)."""
    for password in ("p", "wrong"):
        rundir = tmp_path / password
        uas = runner.run_sipp(scenario, rundir / "uas", timeout=20, background=True)
        try:
            assert uas.wait_listening(10), "SIPp UAS did not bind"
            uac = runner.run_sipp("selftest_uac_auth", rundir / "uac", remote_port=uas.local_port,
                                  timeout=15, extra_args=["-au", "u", "-ap", password])
        finally:
            res = uas.finish(grace=5)
        report = Report(result=res)
        report.note("UAC", uac.diagnostics())
        invites = res.requests_received("INVITE")
        report.check(len(invites) == 2, f"{len(invites)} INVITEs reached the UAS")
        creds = invites[1].header(header)
        params = dict(re.findall(r'(\w+)="([^"]*)"',
                                 [m for m in res.sent() if m.status in (401, 407)][0]
                                 .header(challenge) or ""))
        problems = runner.digest_problems(creds or "", method="INVITE", username="u",
                                          password="p", realm=params.get("realm"),
                                          nonce=params.get("nonce"),
                                          opaque=params.get("opaque"))
        if password == "p":
            report.sipp_ok()
            report.check(uac.ok, "the SIPp UAC failed")
            report.check(not problems, f"digest check rejects SIPp's own credential: {problems}")
        else:
            report.check(problems and "response" in problems[-1],
                         f"digest check accepted a wrong password: {problems}")
            if scenario == "uas_auth401":
                report.check(res.returncode == 1 and not uac.ok,
                             "uas_auth401.xml accepted a wrong password")
                report.check([m.status for m in res.sent() if m.is_response
                              and m.cseq_number == 2] == [403], "no 403 for a wrong password")


def test_selftest_message_log_parser():
    text = (
        "----------------------------------------------- 2026-01-02 03:04:05.250000\n"
        "UDP message received [301] bytes :\n\n"
        "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bK-1\r\n"
        "t: <sip:a@b>;tag=xyz\r\ni: abc@h\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n\n"
        "----------------------------------------------- 2026-01-02 03:04:06.000000\n"
        "UDP message sent (10 bytes):\n\n"
        "ACK sip:a@b SIP/2.0\r\nCSeq: 1 ACK\r\n\r\n\n")
    messages = runner.parse_message_log(text)
    assert [m.direction for m in messages] == ["received", "sent"]
    assert messages[0].status == 180 and messages[0].to_tag == "xyz"
    assert messages[0].call_id == "abc@h" and messages[0].branch == "z9hG4bK-1"
    assert messages[0].method == "INVITE" and messages[1].method == "ACK"
    assert abs(messages[1].time - messages[0].time - 0.75) < 1e-6
    sdp = runner.Sdp.parse("v=0\r\no=x 1 7 IN IP4 1.2.3.4\r\nc=IN IP4 127.0.0.1\r\n"
                           "m=audio 4000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=recvonly\r\n")
    assert (sdp.origin_version, sdp.port, sdp.payload_types, sdp.direction) == \
        (7, 4000, [8, 101], "recvonly")


def test_selftest_digest_check():
    """RFC 2617 3.5's worked example (qop=auth), as the digest check's own test."""
    creds = ('Digest username="Mufasa", realm="testrealm@host.com", '
             'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
             'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
             'opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    assert runner.digest_problems(creds, method="GET", username="Mufasa",
                                  password="Circle Of Life") == []
    assert runner.digest_problems(creds, method="GET", username="Mufasa", password="x")
