"""Two baresip softphones registered with the rvoip PBX call each other (GitHub issue 8).

``twistd rvoip --users FILE`` (registrar on, digest auth, PBX routing) on 127.0.0.1;
baresip "bob" registers with his password and answers automatically (tone from
``ausine``); baresip "alice" registers with hers and dials ``sip:bob@SERVER``: the server
challenges the INVITE (407, answered by baresip), forks to bob's registered contact,
bridges the two calls and relays the audio.  Checks: both baresips registered (the
registrar logged both bindings) and logged the call established and terminated; tshark
on ``lo`` saw RTP both ways on both legs (alice <-> server, server <-> bob, more than
MIN_PACKETS each way); the server logged the bridge.

The baresip process handling (headless config, SIGINT hangs up) comes from
``test_baresip.py``; ports, the server process and the capture from ``sipp/runner.py``.
A missing baresip or tshark FAILS the test with what to install.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from sipp import runner

from .test_baresip import MIN_PACKETS, Baresip, need, one_way, rtp_flows, sip_trace

pytestmark = pytest.mark.interop

HOST = runner.HOST
USERS = {"alice": "alice-pw-1", "bob": "bob-pw-2"}
CALL_SECONDS = 5


def registered_baresip(workdir: Path, user: str, server_port: int) -> Baresip:
    """A baresip whose account registers with the server (digest password, 60 s) and
    answers calls automatically."""
    bs = Baresip(workdir, user=user, audio_source="ausine,440")
    (bs.confdir / "accounts").write_text(
        f"<sip:{user}@{HOST}:{server_port};transport=udp>"
        f";auth_pass={USERS[user]};regint=60;answermode=auto\n")
    return bs


def test_two_baresips_call_through_the_pbx(tmp_path: Path) -> None:
    """alice and bob register (401 answered), alice calls sip:bob@server (407 answered),
    bob's baresip answers, audio flows both ways through the server's bridge, alice
    hangs up and bob's call ends too."""
    need("tshark")
    users = tmp_path / "users"
    users.write_text("".join(f"{u}:{p}\n" for u, p in USERS.items()))
    with runner.Server(tmp_path / "server", "echo", users=users) as srv:
        bob = registered_baresip(tmp_path / "bob", "bob", srv.port)
        alice = registered_baresip(tmp_path / "alice", "alice", srv.port)
        server_rtp = range(srv.rtp_low, srv.rtp_high + 1)
        bob_rtp = range(bob.rtp_low, bob.rtp_high + 1)
        alice_rtp = range(alice.rtp_low, alice.rtp_high + 1)
        cap = runner.Capture(
            tmp_path, f"udp portrange {srv.rtp_low}-{srv.rtp_high} or "
                      f"udp portrange {bob.rtp_low}-{bob.rtp_high} or "
                      f"udp portrange {alice.rtp_low}-{alice.rtp_high} or udp port {srv.port}")

        def diag() -> str:
            return (f"{alice.diagnostics()}\n{bob.diagnostics()}\n"
                    f"--- SIP seen by tshark ---\n"
                    f"{sip_trace(cap, [srv.port, alice.sip_port, bob.sip_port])}\n"
                    f"--- server log (tail) ---\n{srv.log_tail(40)}")

        cap.start()
        try:
            bob.start(quit_after=40)
            assert srv.wait_for_log(r"registered sip:bob@rvoip: 1 contact", 10), \
                f"bob did not register\n{diag()}"
            # alice dials at start-up; her REGISTER goes out at the same time
            alice.start(dial=f"sip:bob@{HOST}:{srv.port}", quit_after=40)
            assert srv.wait_for_log(r"registered sip:alice@rvoip: 1 contact", 10), \
                f"alice did not register\n{diag()}"
            alice.wait_for(r"Call established", 15, "Call established", diag)
            bob.wait_for(r"Call established", 5, "Call established (bob)", diag)
            time.sleep(CALL_SECONDS)
            assert alice.alive() and bob.alive(), f"a phone left the call early\n{diag()}"
            alice.hangup(timeout=10, diag=diag)
            bob.wait_for(r"Call with \S+ terminated", 10, "bob's call terminated", diag)
        finally:
            alice.stop()
            bob.stop()
            cap.stop()

        alice_log, bob_log = alice.log_text(), bob.log_text()
        assert re.search(r"Call established: sip:bob@", alice_log), diag()
        assert re.search(r"incoming rtp for 'audio' established", alice_log), diag()
        assert re.search(r"incoming rtp for 'audio' established", bob_log), diag()
        assert srv.wait_for_log(r"bridged to", 2), diag()
        assert "authentication failed" not in srv.log_text(), diag()
        for password in USERS.values():
            assert password not in srv.log_text(), "a password is in the server log"

        peers = range(min(alice_rtp.start, bob_rtp.start), max(alice_rtp.stop, bob_rtp.stop))
        flows = rtp_flows(cap, peers, server_rtp)
        counts = {
            "alice -> server": one_way(flows, alice_rtp, server_rtp),
            "server -> alice": one_way(flows, server_rtp, alice_rtp),
            "bob -> server": one_way(flows, bob_rtp, server_rtp),
            "server -> bob": one_way(flows, server_rtp, bob_rtp),
        }
        assert all(n > MIN_PACKETS for n in counts.values()), (
            f"RTP seen by tshark per direction: {counts}\n{diag()}")
