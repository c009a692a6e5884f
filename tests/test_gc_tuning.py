"""The server's garbage-collector policy (rvoip_twisted.service.server.tune_gc)."""

import gc

from rvoip_twisted.service.server import tune_gc


def test_policy():
    """
    Start-up objects are frozen out of collections; the youngest generation
    is collected every 10,000 allocations (a pause of a few milliseconds,
    not the 25-40 ms that 50,000 cost under load: see tune_gc), and the
    middle one still every 1,000,000.
    """
    before = gc.get_threshold()
    try:
        gc.unfreeze()
        tune_gc()
        assert gc.get_freeze_count() > 0    # what was alive is out of every collection
        young, middle, old = gc.get_threshold()
        assert young == 10000
        assert young * middle == 1000000
        assert old == 100
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
