"""The plugin's open-files limit (rvoip_twisted.tap.raise_open_files)."""

import pytest

from rvoip_twisted.tap import raise_open_files

resource = pytest.importorskip("resource")


def test_soft_limit_raised_to_hard():
    """A low soft limit is raised to the hard one; the hard one is left alone."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = 256 if hard == resource.RLIM_INFINITY else min(256, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        now = raise_open_files()
        new_soft, new_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert new_hard == hard
        assert new_soft == now
        expected = hard if hard != resource.RLIM_INFINITY else 1048576
        assert new_soft == expected
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
