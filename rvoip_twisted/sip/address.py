"""
Where a SIP message goes to or came from.

A L{Destination} is C{(transport, host, port)}: C{transport} is C{"UDP"} or
C{"TCP"} (upper case), C{host} an IP address as text, C{port} an int.  It is
a plain value (hashable, compared by value): the transaction layer binds
each transaction to one and the transport reports errors against it.
"""

import collections

Destination = collections.namedtuple("Destination", "transport host port")

__all__ = ["Destination"]
