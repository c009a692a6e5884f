"""
The in-process call path of bench/ (``python -m bench.callpath``) and the pieces of a
call that ``python -m bench.instructions --parts`` counts: each does the work it names.
"""

import os

import pytest

from bench import callpath


def _sockets():
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            continue
        if target.startswith("socket:"):
            out.add(target)
    return out


@pytest.fixture
def built():
    before = _sockets()
    server, clock, proto, sock = callpath.build()
    yield server, clock, proto, sock
    stopped = server.stopService()
    clock.advance(10)               # (the simulated clock runs the closing)
    assert stopped.called
    assert _sockets() - before == set(), "a socket left open"


def test_calls_complete_and_drain(built):
    server, clock, proto, sock = built
    callpath.run_calls(server, clock, proto, sock, 0, 5, 1000.0)
    clock.advance(64)
    stats = server.stats()
    assert stats["completed_calls"] == 5
    assert (stats["calls"], stats["dialogs"], stats["server"], stats["media_sessions"]) == (0, 0, 0, 0)


def test_parse_call_part(built):
    parse_call = callpath.part_function(built[0], "parse_call")
    for n in range(3):
        messages = parse_call()
        assert [m.method for m in messages] == ["INVITE", "ACK", "BYE"]
        assert {m.call_id for m in messages} == {"%d-1@127.0.0.1" % n}
        assert [m.body == callpath.SDP for m in messages] == [True, False, False]


def test_sdp_answer_part(built):
    answer = callpath.part_function(built[0], "sdp_answer")()
    assert b"m=audio 50000 RTP/AVP 0" in answer
    assert b"a=rtpmap:0 PCMU/8000" in answer


def test_responses_part(built):
    ok_invite, ok_bye = callpath.part_function(built[0], "responses")()
    assert ok_invite.startswith(b"SIP/2.0 200 OK\r\n")
    assert b"\r\nContent-Type: application/sdp\r\n" in ok_invite
    head, body = ok_invite.split(b"\r\n\r\n", 1)
    assert body.startswith(b"v=0\r\n") and b"m=audio 50000 RTP/AVP 0" in body
    assert b"\r\nContent-Length: %d" % len(body) in head
    assert ok_bye.startswith(b"SIP/2.0 200 OK\r\n") and b"CSeq: 2 BYE" in ok_bye


def test_unknown_part(built):
    with pytest.raises(SystemExit):
        callpath.part_function(built[0], "nothing")
