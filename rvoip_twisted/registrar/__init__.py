"""
The registrar (RFC 3261 section 10): the sans-IO REGISTER decision
(L{registrar}) and the location stores (L{store}).  The Twisted service that
answers REGISTER, challenges callers and expires bindings is
L{rvoip_twisted.service.registrar}; outbound registration (we as the UA) is
L{rvoip_twisted.service.registration}.
"""

from .registrar import (
    Binding, RegisterOutcome, RegistrarPolicy, aor_key, http_date, process_register,
)
from .store import ILocationStore, MemoryLocationStore, SQLiteLocationStore

__all__ = [
    "Binding", "RegisterOutcome", "RegistrarPolicy", "aor_key", "http_date",
    "process_register", "ILocationStore", "MemoryLocationStore", "SQLiteLocationStore",
]
