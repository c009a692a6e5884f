"""
Random identifiers for SIP: tags, Call-IDs and Via branches (RFC 3261
sections 8.1.1.4, 8.1.1.7, 19.3).

They come from L{secrets}, so they are unguessable: an off-path attacker
cannot forge an in-dialog request (BYE) or a response matching one of our
transactions.  Every one is plain lower-case hex, which is a valid SIP
token and a valid Call-ID word.
"""

import secrets

#: the RFC 3261 branch prefix (section 8.1.1.7).
BRANCH_MAGIC = "z9hG4bK"


def new_tag():
    """A From/To tag: 64 random bits as 16 hex digits."""
    return secrets.token_hex(8)


def new_call_id(host=None):
    """
    A Call-ID: 96 random bits as 24 hex digits, then C{"@" + host} when a
    host is given (RFC 3261 recommends it; the randomness alone makes it
    unique).
    """
    value = secrets.token_hex(12)
    if host:
        return value + "@" + host
    return value


def new_branch():
    """A Via branch: the magic cookie then 80 random bits as 20 hex digits."""
    return BRANCH_MAGIC + secrets.token_hex(10)


__all__ = ["BRANCH_MAGIC", "new_tag", "new_call_id", "new_branch"]
