"""Rebuild one version of a syncd archive with nothing but Python's standard library.

    zstd -d objects/0000000005-base-….zst -o mirror.db     # the nearest base at or before the version
    zstd -d objects/0000000006-delta-….zst -o 6.changeset  # then every delta after it, in order
    python3 recover.py mirror.db restored.db 6.changeset 7.changeset …

Standalone on purpose (docs/format.md explains each step): keep a copy beside
your archive and you need neither syncd nor apsw to get your messages back.
"""

import json
import re
import sqlite3
import struct
import sys


def varint(buf, i):
    """SQLite's varint: 7 bits a byte, high bit set means 'more'; the 9th byte gives 8 bits."""
    value = 0
    for n in range(9):
        byte = buf[i + n]
        if n == 8:
            return (value << 8) | byte, i + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, i + n + 1


def values(buf, i, count):
    """One record of a changeset: `count` values, each a type byte then its bytes."""
    out = []
    for _ in range(count):
        kind, i = buf[i], i + 1
        if kind == 0:  # not part of this change
            out.append(Ellipsis)
        elif kind == 1:
            out.append(struct.unpack(">q", buf[i:i + 8])[0])
            i += 8
        elif kind == 2:
            out.append(struct.unpack(">d", buf[i:i + 8])[0])
            i += 8
        elif kind in (3, 4):
            size, i = varint(buf, i)
            raw = bytes(buf[i:i + size])
            out.append(raw.decode() if kind == 3 else raw)
            i += size
        else:  # 5: NULL
            out.append(None)
    return out, i


def apply_changeset(db, buf):
    """Apply a SQLite session changeset (format: sqlite.org/sessionintro.html) to the mirror."""
    i = 0
    while i < len(buf):
        assert buf[i] == ord("T"), "not a changeset"
        ncol, i = varint(buf, i + 1)
        pk = list(buf[i:i + ncol])
        end = buf.index(0, i + ncol)
        table = buf[i + ncol:end].decode()
        i = end + 1
        names = ['"%s"' % r[1].replace('"', '""') for r in db.execute('PRAGMA table_info("%s")' % table.replace('"', '""'))]
        while i < len(buf) and buf[i] != ord("T"):
            op, i = buf[i], i + 2  # the byte after the operation is the "indirect" flag
            old, i = values(buf, i, ncol) if op in (9, 23) else (None, i)
            new, i = values(buf, i, ncol) if op in (18, 23) else (None, i)
            where = " AND ".join(f"{names[c]} IS ?" for c in range(ncol) if pk[c])
            keys = [old[c] for c in range(ncol) if pk[c]] if old else []
            if op == 18:  # INSERT
                db.execute(f'INSERT INTO "{table}" VALUES ({", ".join("?" * ncol)})', new)
            elif op == 9:  # DELETE
                db.execute(f'DELETE FROM "{table}" WHERE {where}', keys)
            else:  # UPDATE: only the changed columns carry a new value
                changed = [c for c in range(ncol) if new[c] is not Ellipsis]
                sets = ", ".join(f"{names[c]} = ?" for c in changed)
                db.execute(f'UPDATE "{table}" SET {sets} WHERE {where}', [new[c] for c in changed] + keys)


def mirror_column(name):
    """A source column that SQLite would take for the mirror's "syncd:rowid" has one more "syncd:" there."""
    return "syncd:" + name if re.fullmatch(r"(syncd:)+rowid", name, re.IGNORECASE) else name


def export(mirror_path, output_path):
    """Recreate the phone's database from the mirror: settings, tables, rows, then the rest."""
    out = sqlite3.connect(output_path, isolation_level=None)
    out.execute("ATTACH ? AS m", (mirror_path,))
    pragma = dict(out.execute('SELECT name, value FROM m."syncd:pragma"'))
    schema = out.execute('SELECT name, type, sql, shape FROM m."syncd:schema" ORDER BY seq').fetchall()
    out.execute("DETACH m")
    for name in ("page_size", "auto_vacuum"):
        out.execute(f"PRAGMA {name} = {int(pragma[name])}")
    out.execute(f"PRAGMA encoding = '{pragma['encoding']}'")
    out.execute("ATTACH ? AS m", (mirror_path,))
    out.execute("BEGIN")
    tables = [(n, sql, json.loads(shape)) for n, t, sql, shape in schema if t == "table" and shape]
    for name, _, sql, shape in schema:  # virtual tables first: they create their shadow tables
        if sql and sql.startswith("CREATE VIRTUAL"):
            out.execute(sql)
    made = {r[0] for r in out.execute("SELECT name FROM sqlite_schema")}
    for name, sql, _ in tables:
        if name not in made and not name.startswith("sqlite_"):
            out.execute(sql)
    if any(n.startswith("sqlite_stat") for n, _, _ in tables):
        out.execute("ANALYZE sqlite_schema")
    for name, _, shape in sorted(tables, key=lambda t: t[0].startswith("sqlite_")):
        cols = ['"%s"' % c.replace('"', '""') for c in shape["columns"]]
        kept = ['"%s"' % mirror_column(c).replace('"', '""') for c in shape["columns"]]
        taken = {c.lower() for c in shape["columns"]}
        rowid = [] if shape["key"] else [next(a for a in ("rowid", "_rowid_", "oid") if a not in taken)]
        quoted = '"%s"' % name.replace('"', '""')
        out.execute(f"DELETE FROM {quoted}")
        key = ['"syncd:rowid"'] if rowid else []
        out.execute(f'INSERT INTO {quoted}({", ".join(rowid + cols)}) SELECT {", ".join(key + kept)} FROM m."t:{name}"')
    for name, type_, sql, _ in schema:
        if type_ in ("index", "view", "trigger") and sql:
            out.execute(sql)
    out.execute(f"PRAGMA user_version = {int(pragma['user_version'])}")
    out.execute(f"PRAGMA application_id = {int(pragma['application_id'])}")
    out.execute("COMMIT")
    out.execute("DETACH m")
    if pragma["journal_mode"] == "wal":
        out.execute("PRAGMA journal_mode = WAL")
    print(out.execute("PRAGMA integrity_check").fetchone()[0])
    out.close()


if __name__ == "__main__":
    mirror, output, *changesets = sys.argv[1:]
    db = sqlite3.connect(mirror, isolation_level=None)
    db.execute("BEGIN")
    for path in changesets:
        with open(path, "rb") as f:
            apply_changeset(db, f.read())
    db.execute("COMMIT")
    db.close()
    export(mirror, output)
