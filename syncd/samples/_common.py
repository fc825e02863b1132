"""Helpers the sample generators share: new databases, batching, random picks and keys."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
from collections.abc import Iterable, Iterator

import apsw

# Rows per executemany call when one message needs rows in several tables.
BATCH_ROWS = 10_000


@contextlib.contextmanager
def new_database(path: str | os.PathLike, *, user_version: int) -> Iterator[apsw.Connection]:
    """Open a brand-new database at `path`, stamped with the app's `user_version` and set up for
    a fast one-off load; remove it again if filling it fails."""
    path = os.fspath(path)
    # O_EXCL makes the overwrite check and the creation one step; SQLite accepts an
    # empty file as a new database.
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    try:
        db = apsw.Connection(path)
        try:
            # Speed settings for the load; none of them is stored in the file.
            db.execute("PRAGMA synchronous=OFF; PRAGMA cache_size=-262144; PRAGMA temp_store=MEMORY")
            db.execute(f"PRAGMA user_version = {int(user_version)}")
            yield db
        finally:
            db.close()
    except BaseException:
        for leftover in (path, path + "-wal", path + "-shm", path + "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(leftover)
        raise


def batched(rows: Iterable, size: int) -> Iterator[list]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def random_keys(db: apsw.Connection, rng: random.Random, table: str, key: str,
                 count: int, where: str = "1") -> list[int]:
    """Up to `count` distinct random values of integer primary key `key` among rows matching `where`.

    Probes random points of the key range instead of `ORDER BY random()`, which would
    read the whole table of a million-message database for every change.
    """
    low, high = db.execute(f"SELECT min({key}), max({key}) FROM {table}").fetchone()
    if low is None:
        return []
    after = f"SELECT {key} FROM {table} WHERE {key} >= ? AND ({where}) ORDER BY {key} LIMIT 1"
    first = f"SELECT {key} FROM {table} WHERE ({where}) ORDER BY {key} LIMIT 1"
    found: set[int] = set()
    misses = 0
    while len(found) < count and misses < 8 * count + 32:
        row = db.execute(after, (rng.randint(low, high),)).fetchone()
        row = row or db.execute(first).fetchone()
        if row is None:
            break
        if row[0] in found:
            misses += 1
        found.add(row[0])
    return sorted(found)


def random_key(db: apsw.Connection, rng: random.Random, table: str, key: str, where: str = "1") -> int:
    keys = random_keys(db, rng, table, key, 1, where)
    if not keys:
        raise LookupError(f"no row of {table} matches {where}")
    return keys[0]


def recent_key(db: apsw.Connection, rng: random.Random, table: str, key: str, where: str = "1",
                window: int = 200) -> int:
    """A random one of the newest `window` rows matching `where`: recalls and edits have a time limit."""
    keys = db.execute(f"SELECT {key} FROM {table} WHERE {where} ORDER BY {key} DESC LIMIT ?", (window,)).fetchall()
    if not keys:
        raise LookupError(f"no row of {table} matches {where}")
    return pick(rng, keys)[0]


def random_hex(rng: random.Random, nbytes: int) -> str:
    return rng.randbytes(nbytes).hex()


def pick(rng: random.Random, items):
    # rng.choice does the same a few times slower, which shows in million-row loops.
    return items[int(rng.random() * len(items))]
