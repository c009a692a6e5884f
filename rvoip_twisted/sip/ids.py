"""
Random identifiers for SIP: tags, Call-IDs and Via branches (RFC 3261
sections 8.1.1.4, 8.1.1.7, 19.3).

They come from the operating system's CSPRNG (C{os.urandom}, what
L{secrets} uses), so they are unguessable: an off-path attacker cannot
forge an in-dialog request (BYE) or a response matching one of our
transactions.  Every one is plain lower-case hex, which is a valid SIP
token and a valid Call-ID word.

A call needs several of them (tag, branches, CSeq base): they are cut from
a 4 KiB buffer of random bytes refilled when used up, one system call per
few hundred identifiers instead of one each.  A forked child starts with
an empty buffer, so parent and child never hand out the same bytes.
"""

import os

#: the RFC 3261 branch prefix (section 8.1.1.7).
BRANCH_MAGIC = "z9hG4bK"


_BUFFER_SIZE = 4096
_buffer = b""
_position = 0


def _reset_buffer():
    global _buffer, _position
    _buffer = b""
    _position = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_buffer)


def random_bytes(count):
    """C{count} bytes from the CSPRNG (at most 4096)."""
    global _buffer, _position
    start = _position
    end = start + count
    if end > len(_buffer):
        _buffer = os.urandom(_BUFFER_SIZE)
        start = 0
        end = count
    _position = end
    return _buffer[start:end]


def random_below(limit):
    """A uniformly distributed int in C{[0, limit)} (C{limit} <= 2**32)."""
    bound = (1 << 32) - (1 << 32) % limit     # rejection sampling: no modulo bias
    while True:
        value = int.from_bytes(random_bytes(4), "big")
        if value < bound:
            return value % limit


def new_tag():
    """A From/To tag: 64 random bits as 16 hex digits."""
    return random_bytes(8).hex()


def new_call_id(host=None):
    """
    A Call-ID: 96 random bits as 24 hex digits, then C{"@" + host} when a
    host is given (RFC 3261 recommends it; the randomness alone makes it
    unique).
    """
    value = random_bytes(12).hex()
    if host:
        return value + "@" + host
    return value


def new_branch():
    """A Via branch: the magic cookie then 80 random bits as 20 hex digits."""
    return BRANCH_MAGIC + random_bytes(10).hex()


__all__ = ["BRANCH_MAGIC", "new_tag", "new_call_id", "new_branch", "random_bytes",
           "random_below"]
