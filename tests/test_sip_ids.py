"""Random identifiers (rvoip_twisted.sip.ids)."""

import os

import pytest

from rvoip_twisted.sip import ids


def test_shapes():
    """Tags, branches and Call-IDs are lower-case hex of the documented sizes."""
    tag = ids.new_tag()
    branch = ids.new_branch()
    call_id = ids.new_call_id("192.0.2.1")
    assert len(tag) == 16 and int(tag, 16) >= 0
    assert branch.startswith(ids.BRANCH_MAGIC) and len(branch) == 7 + 20
    value, at, host = call_id.partition("@")
    assert len(value) == 24 and at and host == "192.0.2.1"
    assert ids.new_call_id().count("@") == 0


def test_no_repeats_across_buffer_refills():
    """Ten thousand tags (many refills of the random buffer) are all different."""
    tags = {ids.new_tag() for _ in range(10000)}
    assert len(tags) == 10000


def test_random_below_range_and_spread():
    """random_below stays in range and reaches both ends of a small range."""
    values = [ids.random_below(3) for _ in range(3000)]
    assert set(values) == {0, 1, 2}
    assert all(0 <= ids.random_below(2 ** 16) < 2 ** 16 for _ in range(1000))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_does_not_repeat_the_parent():
    """After fork the child draws fresh bytes, not the parent's buffered ones."""
    ids.new_tag()                       # the buffer holds unused bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                        # child
        try:
            os.write(write, ids.new_tag().encode())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 16
    assert child != ids.new_tag()
