"""
The server as UAC through the Python API (not the command line): an
in-process L{SIPServer} calls SIPp acting as UAS, plain and with a 401
digest challenge.  The SIPp runs use the same scenarios as test_sipp.py.
"""

import sys
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from rvoip_twisted.media.sources import ToneSource
from rvoip_twisted.service.server import SIPServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runner  # noqa: E402  (sipp/ is not a package)

pytestmark = pytest.mark.interop


def _sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


@pytest_twisted.inlineCallbacks
def _api_call(tmp_path, scenario, credentials=None):
    media_port = runner.free_udp_block(4)
    sipp = runner.run_sipp(scenario, tmp_path / "sipp", media_port=media_port, timeout=20,
                           extra_args=["-rtp_echo"], background=True)
    server = None
    try:
        assert sipp.wait_listening(10), "SIPp (UAS) did not bind its SIP port within 10 s"
        server = SIPServer(reactor=reactor, listen=["udp:0:interface=127.0.0.1"],
                           public_host="127.0.0.1", rtp_ports=(32000, 32199))
        server.startService()
        call = yield server.call("sip:service@127.0.0.1:%d" % sipp.local_port,
                                 credentials=credentials)
        assert call.state == "answered"
        call.play(ToneSource(440.0))
        yield _sleep(1.5)
        sent = call.quality()["packets_sent"]
        call.hangup()
        yield _sleep(0.5)
        assert sent > 50
        assert server.media.ports_in_use() == 0
    finally:
        if server is not None:
            yield server.stopService()
        res = sipp.finish(grace=5)
    assert res.ok, res.diagnostics()
    assert len(res.requests_received("BYE")) == 1, res.diagnostics()
    return res


@pytest_twisted.inlineCallbacks
def test_api_call_to_sipp_uas(tmp_path):
    """server.call() reaches SIPp's UAS: INVITE, 200, ACK, RTP, BYE, and SIPp reports success."""
    res = yield _api_call(tmp_path, "uas")
    assert len(res.requests_received("INVITE")) == 1
    assert len(res.requests_received("ACK")) == 1


@pytest_twisted.inlineCallbacks
def test_api_call_answers_401(tmp_path):
    """server.call(credentials=...) answers SIPp's 401 with a digest SIPp verifies."""
    res = yield _api_call(tmp_path, "uas_auth401", credentials=("u", "p"))
    invites = res.requests_received("INVITE")
    assert len(invites) == 2, res.diagnostics()
    assert invites[1].header("authorization"), res.diagnostics()
