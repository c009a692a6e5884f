"""
Location stores: where the registrar keeps its bindings.

L{ILocationStore} is the whole contract; every method returns a Deferred,
so a store may be in memory (L{MemoryLocationStore}, for tests and
throw-away servers), in a local database on a thread
(L{SQLiteLocationStore}, the default of C{--registrar-db}) or behind a
network client (Redis, PostgreSQL) shared by several server instances.

The registrar serialises the updates of one AOR inside one process (read,
decide, L{ILocationStore.put}).  A store shared by several processes must
make C{put} safe against a concurrent writer of the same AOR itself (a
transaction, a version check): that is the store's job, not the
registrar's.
"""

import sqlite3

from twisted.internet import defer
from zope.interface import Interface, implementer

from .registrar import Binding


class ILocationStore(Interface):
    """The bindings of every address-of-record (RFC 3261 10.3)."""

    def get(aor, now):
        """
        A Deferred firing with the list of the live bindings of C{aor}
        (those with C{expires_at > now}), in no particular order.
        """

    def put(aor, bindings):
        """
        Replace every binding of C{aor} with C{bindings} (an iterable of
        L{Binding}, possibly empty), atomically.  A Deferred firing with
        C{None} once the change is durable.
        """

    def expire(now):
        """
        Delete every binding with C{expires_at <= now}.  A Deferred firing
        with the number deleted.
        """

    def count(now):
        """A Deferred firing with the number of live bindings."""

    def close():
        """Release the store's resources.  A Deferred (or C{None})."""


@implementer(ILocationStore)
class MemoryLocationStore:
    """Bindings in a dict: lost on restart; answers synchronously."""

    def __init__(self):
        self._aors = {}

    def get(self, aor, now):
        return defer.succeed([b for b in self._aors.get(aor, ()) if b.expires_at > now])

    def put(self, aor, bindings):
        bindings = list(bindings)
        if bindings:
            self._aors[aor] = bindings
        else:
            self._aors.pop(aor, None)
        return defer.succeed(None)

    def expire(self, now):
        removed = 0
        for aor in list(self._aors):
            kept = [b for b in self._aors[aor] if b.expires_at > now]
            removed += len(self._aors[aor]) - len(kept)
            if kept:
                self._aors[aor] = kept
            else:
                del self._aors[aor]
        return defer.succeed(removed)

    def count(self, now):
        return defer.succeed(sum(
            1 for bindings in self._aors.values() for b in bindings if b.expires_at > now))

    def close(self):
        return None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS bindings (
    aor TEXT NOT NULL,
    contact TEXT NOT NULL,
    expires_at REAL NOT NULL,
    q REAL,
    call_id TEXT NOT NULL,
    cseq INTEGER NOT NULL,
    source TEXT,
    PRIMARY KEY (aor, contact)
)
"""
_INDEX = "CREATE INDEX IF NOT EXISTS bindings_expiry ON bindings (expires_at)"
_COLUMNS = "aor, contact, expires_at, q, call_id, cseq, source"


def _open(connection):
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(_SCHEMA)
    connection.execute(_INDEX)
    connection.commit()


@implementer(ILocationStore)
class SQLiteLocationStore:
    """
    Bindings in an SQLite file, through L{twisted.enterprise.adbapi}: every
    query runs on the pool's one thread (SQLite has one writer anyway), so
    the reactor never waits for the disk.

    @param path: the database file (created with its table if missing).
    @param reactor: the reactor whose thread pool runs the queries.
    """

    def __init__(self, path, reactor=None):
        from twisted.enterprise import adbapi
        if reactor is None:
            from twisted.internet import reactor
        self.path = path
        # Open once here so a bad path fails at start-up, not on the first REGISTER.
        check = sqlite3.connect(path)
        try:
            _open(check)
        finally:
            check.close()
        self._closed = False
        self._pool = adbapi.ConnectionPool(
            "sqlite3", path, check_same_thread=False, cp_min=1, cp_max=1,
            cp_openfun=_open, cp_reactor=reactor)

    def __repr__(self):
        return "<SQLiteLocationStore %s>" % (self.path,)

    def get(self, aor, now):
        d = self._pool.runQuery(
            "SELECT " + _COLUMNS + " FROM bindings WHERE aor = ? AND expires_at > ?",
            (aor, now))
        d.addCallback(lambda rows: [Binding(*row) for row in rows])
        return d

    def put(self, aor, bindings):
        rows = [(b.aor, b.contact, b.expires_at, b.q, b.call_id, b.cseq, b.source)
                for b in bindings]

        def interaction(cursor):
            cursor.execute("DELETE FROM bindings WHERE aor = ?", (aor,))
            if rows:
                cursor.executemany(
                    "INSERT OR REPLACE INTO bindings (" + _COLUMNS + ") "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

        return self._pool.runInteraction(interaction)

    def expire(self, now):
        def interaction(cursor):
            cursor.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,))
            return cursor.rowcount

        return self._pool.runInteraction(interaction)

    def count(self, now):
        d = self._pool.runQuery("SELECT COUNT(*) FROM bindings WHERE expires_at > ?", (now,))
        d.addCallback(lambda rows: rows[0][0])
        return d

    def close(self):
        """Close the pool (idempotent); queries in progress finish first."""
        if not self._closed:
            self._closed = True
            self._pool.close()
        return None


__all__ = ["ILocationStore", "MemoryLocationStore", "SQLiteLocationStore"]
