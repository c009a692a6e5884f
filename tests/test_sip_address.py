"""L{rvoip_twisted.sip.address}: destinations as shared values."""

import gc

from rvoip_twisted.sip import address
from rvoip_twisted.sip.address import Destination, destination, udp_destination


def test_shared_per_value():
    """One object per value, equal to the namedtuple built directly."""
    a = destination("UDP", "192.0.2.1", 5060)
    assert a == Destination("UDP", "192.0.2.1", 5060)
    assert destination("UDP", "192.0.2.1", 5060) is a
    assert udp_destination(("192.0.2.1", 5060)) is a
    assert destination("TCP", "192.0.2.1", 5060) is not a
    assert destination("TCP", "192.0.2.1", 5060) == ("TCP", "192.0.2.1", 5060)


def test_bounded(monkeypatch):
    """The tables start afresh when full: many peers cost no unbounded memory."""
    monkeypatch.setattr(address, "INTERN_MAX", 8)
    monkeypatch.setattr(address, "_interned", {})
    monkeypatch.setattr(address, "_udp", {})
    for port in range(100):
        assert udp_destination(("198.51.100.7", port)).port == port
        assert len(address._interned) <= 8 and len(address._udp) <= 8
    # values still right after a reset
    assert udp_destination(("198.51.100.7", 5)) == ("UDP", "198.51.100.7", 5)


def test_why_shared():
    """A namedtuple stays tracked by the collector (the reason to share them)."""
    d = Destination("UDP", "192.0.2.9", 1)
    gc.collect()
    assert gc.is_tracked(d)
