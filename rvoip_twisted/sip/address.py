"""
Where a SIP message goes to or came from.

A L{Destination} is C{(transport, host, port)}: C{transport} is C{"UDP"} or
C{"TCP"} (upper case), C{host} an IP address as text, C{port} an int.  It is
a plain value (hashable, compared by value): the transaction layer binds
each transaction to one and the transport reports errors against it.

L{destination} and L{udp_destination} give one object per value (while
fewer than L{INTERN_MAX} are known): a transaction keeps its destination
for its 32 s of absorbing retransmissions, and a namedtuple, unlike a plain
tuple, stays on the garbage collector's lists; tens of thousands of copies
of the same peer's address would make every collection longer.
"""

import collections

Destination = collections.namedtuple("Destination", "transport host port")

#: how many destinations each table keeps before it starts afresh.
INTERN_MAX = 4096

_interned = {}
_udp = {}


def destination(transport, host, port):
    """The L{Destination} C{(transport, host, port)}, shared while it is known."""
    key = (transport, host, port)
    dest = _interned.get(key)
    if dest is None:
        if len(_interned) >= INTERN_MAX:
            _interned.clear()
        dest = _interned[key] = Destination(transport, host, port)
    return dest


def udp_destination(addr):
    """The UDP L{Destination} of a C{(host, port)} address, shared while it is known."""
    dest = _udp.get(addr)
    if dest is None:
        if len(_udp) >= INTERN_MAX:
            _udp.clear()
        dest = _udp[addr] = destination("UDP", addr[0], addr[1])
    return dest


__all__ = ["Destination", "destination", "udp_destination", "INTERN_MAX"]
