"""Interop tests of the registrar, the PBX routing and outbound registration, with SIPp.

Each test starts its own server(s) (``twistd -n rvoip`` on free loopback ports, through
``runner.Server``), runs scenarios from this directory, and asserts on SIPp's exit status
and on what SIPp saw (its message log), on RTP seen by tshark, and on the server's log:

* ``reg_uac.xml``: REGISTER answered 401, then with credentials 200 (the contact and its
  expiry listed, a Date), a refresh, a removal (``expires=0``);
* ``reg_register.xml`` + ``uas.xml`` + ``reg_call_uac.xml``: a SIPp UAS registered as bob
  receives the call alice places through the server (407 answered first), the call
  completes, audio is relayed both ways (PCMA on alice's leg, PCMU on bob's), the BYE is
  relayed;
* the same after a restart of the server on the same ``--registrar-db``;
* ``reg_registrar_uas.xml``: the server registers (``--register``) to SIPp acting as a
  registrar that challenges it, refreshes at half the expiry, takes an incoming call on
  that registration, and unregisters when it stops.

A missing peer (sipp, tshark) fails the test with what to install.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runner  # noqa: E402  (sipp/ is not a package)

pytestmark = pytest.mark.interop

USERS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}


def need(tool: str) -> str:
    try:
        return runner.require_tool(tool)
    except runner.MissingTool as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def users_file(tmp_path) -> Path:
    path = tmp_path / "users"
    path.write_text("".join(f"{user}:{password}\n" for user, password in USERS.items()))
    return path


@pytest.fixture
def processes():
    """Everything a test starts goes in here and is stopped at the end, whatever happens."""
    started: list = []
    yield started
    for item in reversed(started):
        if isinstance(item, runner.SippProcess):
            if item.proc.poll() is None:
                item.kill()
        else:
            item.stop()


def start_server(workdir: Path, processes: list, **options) -> runner.Server:
    need("sipp")
    server = runner.Server(workdir, options.pop("app", "echo"), **options)
    processes.append(server)
    try:
        server.start()
    except runner.ServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    return server


def fail(message: str, *results: runner.SippResult, server: runner.Server | None = None):
    parts = [message]
    for result in results:
        if result is not None:
            parts.append(result.diagnostics())
    if server is not None:
        parts.append(f"--- server log (tail), {server.log_path} ---\n" + server.log_tail(50))
    pytest.fail("\n\n".join(parts), pytrace=False)


def check(condition, message, *results, server=None):
    if not condition:
        fail(message, *results, server=server)


def start_callee(rundir: Path, processes: list) -> runner.SippProcess:
    """SIPp as bob's phone (uas.xml, echoing RTP); its SIP port is its contact."""
    uas = runner.run_sipp("uas", rundir, timeout=40, background=True, extra_args=["-rtp_echo"])
    processes.append(uas)
    if not uas.wait_listening():
        uas.kill()
        fail(f"SIPp UAS did not bind its port\n{runner.read_text(rundir / 'sipp.out')}")
    return uas


def register_bob(server: runner.Server, rundir: Path, contact_port: int) -> runner.SippResult:
    res = runner.run_sipp(
        "reg_register", rundir, remote_port=server.port, timeout=10,
        extra_args=["-s", "bob", "-ap", USERS["bob"],
                    "-key", "contact", f"sip:bob@{runner.HOST}:{contact_port}"])
    check(res.ok, "bob's registration failed", res, server=server)
    return res


def alice_calls_bob(server: runner.Server, rundir: Path, media_port: int | None = None
                    ) -> runner.SippResult:
    # SIPp's digest uri is remote_ip:remote_port unless told: give it the Request-URI,
    # which the registrar checks the credentials' uri against (RFC 7616 3.4.6).
    return runner.run_sipp(
        "reg_call_uac", rundir, remote_port=server.port, media_port=media_port, timeout=20,
        extra_args=["-s", "bob", "-au", "alice", "-ap", USERS["alice"],
                    "-key", "caller", "alice",
                    "-auth_uri", f"bob@{runner.HOST}:{server.port}"])


def check_call_through(call: runner.SippResult, callee: runner.SippResult,
                       server: runner.Server) -> None:
    """The caller was challenged, then answered; the callee got the call and the BYE."""
    check(call.ok, "alice's call through the server failed", call, callee, server=server)
    check(callee.ok, "bob's phone (SIPp UAS) did not complete the call", callee, call,
          server=server)
    finals = [m.status for m in call.responses_received("INVITE") if m.status >= 200]
    check(finals == [407, 200], f"alice's INVITE final responses {finals}, expected "
          "[407, 200]", call, server=server)
    [invite] = callee.requests_received("INVITE")
    check(invite.request_uri == f"sip:bob@{runner.HOST}:{callee_port(callee)}",
          f"bob's phone got INVITE {invite.request_uri}, not its registered contact",
          callee, server=server)
    check("alice" in (invite.header("from") or ""),
          f"bob's phone sees the call from {invite.header('from')!r}, not alice", callee,
          server=server)
    check(len(callee.requests_received("BYE")) == 1,
          "alice's BYE was not relayed to bob's phone", callee, call, server=server)


def callee_port(res: runner.SippResult) -> int:
    return int(res.command[res.command.index("-p") + 1])


# --------------------------------------------------------------------------- tests


def test_register_challenge_refresh_remove(tmp_path, users_file, processes):
    """REGISTER -> 401 (MD5 and SHA-256 offered, MD5 first, qop=auth: SIPp answers the
    first) -> REGISTER with credentials -> 200
    listing the contact with its expiry and a Date; a refresh (higher CSeq, same Call-ID)
    gets a 200 with the new expiry; expires=0 removes the binding (200 without Contact)."""
    server = start_server(tmp_path / "server", processes, users=users_file,
                          extra_args=["--digest-algorithms", "MD5,SHA-256"])
    contact = f"sip:alice@{runner.HOST}:5999"
    res = runner.run_sipp(
        "reg_uac", tmp_path / "reg", remote_port=server.port, timeout=15,
        extra_args=["-s", "alice", "-ap", USERS["alice"], "-key", "contact", contact])
    check(res.ok, "reg_uac.xml failed", res, server=server)
    replies = [m for m in res.responses_received("REGISTER")]
    statuses = [m.status for m in replies]
    check(statuses == [401, 200, 200, 200],
          f"REGISTER responses {statuses}, expected [401, 200, 200, 200]", res, server=server)
    challenges = replies[0].header_all("www-authenticate")
    check(len(challenges) == 2 and "algorithm=MD5" in challenges[0]
          and "algorithm=SHA-256" in challenges[1] and 'qop="auth"' in challenges[0],
          f"the 401 should offer MD5 then SHA-256 with qop=auth: {challenges}", res,
          server=server)
    sent = res.sent(method="REGISTER")
    check(not any(m.header("authorization") for m in sent[:1])
          and all(m.header("authorization") for m in sent[1:]),
          "only the first REGISTER should be without credentials", res, server=server)

    def listed(msg):
        return [(c, int(e)) for c, e in re.findall(r"<([^>]+)>;expires=(\d+)",
                                                   ",".join(msg.header_all("contact")))]

    first, refresh, removal = replies[1:]
    check([c for c, _ in listed(first)] == [contact] and 118 <= listed(first)[0][1] <= 120,
          f"the 200 should list {contact} for ~120 s: {first.header_all('contact')}", res,
          server=server)
    check((first.header("date") or "").endswith("GMT"), "the 200 has no Date in GMT", res,
          server=server)
    check(listed(refresh) and 298 <= listed(refresh)[0][1] <= 300,
          f"the refresh should grant ~300 s: {refresh.header_all('contact')}", res,
          server=server)
    check(removal.header_all("contact") == [],
          f"after removal no contact should be listed: {removal.header_all('contact')}",
          res, server=server)
    log = server.log_text()
    check(log.count("registered sip:alice@rvoip: 1 contact(s)") == 2
          and "registered sip:alice@rvoip: 0 contact(s)" in log,
          "the server did not log the registration, refresh and removal", server=server)
    check(USERS["alice"] not in log, "the password appears in the server log", server=server)


def test_register_wrong_password(tmp_path, users_file, processes):
    """A wrong password is challenged again (never 200) and logged without credentials."""
    server = start_server(tmp_path / "server", processes, users=users_file)
    res = runner.run_sipp(
        "reg_register", tmp_path / "reg", remote_port=server.port, timeout=5,
        extra_args=["-s", "bob", "-ap", "not-bobs-password",
                    "-key", "contact", f"sip:bob@{runner.HOST}:5999"])
    statuses = [m.status for m in res.responses_received("REGISTER")]
    check(not res.ok and statuses[:2] == [401, 401] and 200 not in statuses,
          f"a wrong password should get 401 twice, got {statuses}", res, server=server)
    log = server.log_text()
    check("authentication failed for user bob" in log, "the failure is not logged",
          server=server)
    check("not-bobs-password" not in log and "response=" not in log,
          "credentials appear in the server log", server=server)


def test_call_reaches_registered_uas(tmp_path, users_file, processes):
    """A SIPp UAS registered as bob receives alice's call through the server: alice is
    challenged (407), the server forks to bob's contact, bridges the calls, relays RTP
    both ways (alice's PCMA transcoded to bob's PCMU and back), and relays the BYE."""
    need("tshark")
    try:
        runner.pcap_dir()
    except runner.MissingTool as exc:
        pytest.fail(str(exc), pytrace=False)
    server = start_server(tmp_path / "server", processes, users=users_file)
    uas = start_callee(tmp_path / "bob", processes)
    register_bob(server, tmp_path / "reg", uas.local_port)
    alice_media = runner.free_udp_block(4)
    bpf = (f"udp portrange {server.rtp_low}-{server.rtp_high} or "
           f"udp portrange {alice_media}-{alice_media + 3} or "
           f"udp portrange {uas.media_port}-{uas.media_port + 3}")
    with runner.Capture(tmp_path, bpf) as cap:
        call = alice_calls_bob(server, tmp_path / "alice", media_port=alice_media)
        callee = uas.finish()
    check_call_through(call, callee, server)

    packets = cap.rtp(decode_ports=[alice_media, uas.media_port])

    def flow(src, dst):
        return [p for p in packets if src(p.src_port) and dst(p.dst_port)]

    def srv(port):
        return server.rtp_low <= port <= server.rtp_high

    def alice(port):
        return port == alice_media

    def bob(port):
        return port == uas.media_port

    flows = {
        "alice->server": flow(alice, srv), "server->bob": flow(srv, bob),
        "bob->server": flow(bob, srv), "server->alice": flow(srv, alice),
    }
    summary = ", ".join(f"{k}: {len(v)} pt={sorted({p.payload_type for p in v})}"
                        for k, v in flows.items())
    check(all(len(v) >= 50 for v in flows.values()),
          f"RTP should flow both ways through the bridge: {summary}", call, server=server)
    check({p.payload_type for p in flows["alice->server"]} == {8}
          and {p.payload_type for p in flows["server->alice"]} == {8}
          and {p.payload_type for p in flows["server->bob"]} == {0},
          f"alice's leg should carry PCMA and bob's PCMU: {summary}", server=server)
    sent_to_bob = sum(p.payload_len for p in flows["server->bob"])
    from_alice = sum(p.payload_len for p in flows["alice->server"])
    check(abs(sent_to_bob - from_alice) <= 0.2 * from_alice,
          f"bob should get about what alice sent ({sent_to_bob} vs {from_alice} bytes)",
          server=server)
    check(server.wait_for_log(r"bridged to", 1) is not None, "no 'bridged' log line",
          server=server)


def test_bindings_survive_restart(tmp_path, users_file, processes):
    """Bindings are kept in --registrar-db: bob registers, the server stops, a new server
    on the same database (another port) routes alice's call to bob's contact."""
    db = tmp_path / "bindings.sqlite"
    first = start_server(tmp_path / "server1", processes, users=users_file,
                         extra_args=["--registrar-db", str(db)])
    uas = start_callee(tmp_path / "bob", processes)
    register_bob(first, tmp_path / "reg", uas.local_port)
    first.stop()
    check("Main loop terminated" in first.log_text(), "the first server did not stop cleanly",
          server=first)
    second = start_server(tmp_path / "server2", processes, users=users_file,
                          extra_args=["--registrar-db", str(db)])
    check(second.port != first.port, "the restarted server should use another port")
    call = alice_calls_bob(second, tmp_path / "alice")
    callee = uas.finish()
    check_call_through(call, callee, second)


def test_outbound_registration_to_sipp_registrar(tmp_path, users_file, processes):
    """--register: the server registers to SIPp acting as a registrar that challenges it
    (401, verified by SIPp's verifyauth), refreshes at half the granted 10 s with
    credentials, takes an incoming call on that registration (no 407 although --users is
    set: it comes from the registrar), and unregisters (Expires: 0) when it stops."""
    need("sipp")
    registrar = runner.run_sipp("reg_registrar_uas", tmp_path / "registrar", timeout=40,
                                background=True)
    processes.append(registrar)
    check(registrar.wait_listening(), "SIPp registrar did not bind its port")
    server = start_server(
        tmp_path / "server", processes, users=users_file,
        extra_args=["--register", f"sip:carol:pw@{runner.HOST}:{registrar.local_port}",
                    "--register-expires", "10"])
    ended = server.wait_for_log(r"call ended call=", timeout=25)
    check(ended is not None, "the incoming call on the registration did not end",
          server=server)
    stop_time = time.time()
    server.stop()
    res = registrar.finish()
    check(res.ok, "the SIPp registrar scenario failed", res, server=server)
    registers = res.requests_received("REGISTER")
    check(len(registers) >= 4, f"expected REGISTER, REGISTER+auth, refresh(es), unregister; "
          f"got {len(registers)}", res, server=server)
    check(registers[0].header("authorization") is None
          and all(r.header("authorization") for r in registers[1:]),
          "the first REGISTER goes without credentials, all later ones with them", res,
          server=server)
    check(len({r.call_id for r in registers}) == 1
          and [r.cseq_number for r in registers] == sorted({r.cseq_number for r in registers}),
          "REGISTERs should share a Call-ID with increasing CSeq", res, server=server)
    oks = [m for m in res.sent(status=200, method="REGISTER")]
    refresh_delay = registers[2].time - oks[0].time
    check(4.0 <= refresh_delay <= 6.5,
          f"the refresh came {refresh_delay:.1f} s after the 200 granting 10 s (expected ~5)",
          res, server=server)
    last = registers[-1]
    check(last.header("expires") == "0" and last.time >= stop_time - 0.5,
          f"the last REGISTER should unregister at stop: Expires {last.header('expires')}",
          res, server=server)
    invites = [m for m in res.responses_received("INVITE") if m.status >= 200]
    check([m.status for m in invites] == [200],
          f"the incoming call should be answered 200 (no challenge): "
          f"{[m.status for m in invites]}", res, server=server)
    log = server.log_text()
    check("registered sip:carol@127.0.0.1" in log and "unregistered sip:carol@127.0.0.1" in log,
          "registration and unregistration are not logged", server=server)
    check(":pw@" not in log, "the --register password appears in the log", server=server)
