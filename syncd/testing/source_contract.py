"""`SourceKindContract`: the source seam's rules (syncd/source.py) as tests, for every source kind.

Subclass it and provide fixtures:
- `kind`: the SourceKind class;
- `source_path`: a fresh path of that kind (built in `tmp_path`);
- `options`: the SourceOptions that open it (key and password files);
- `change_source`: a callable that changes what `source_path` holds, as the app would;
- optionally `wrong_options`: options with a wrong key or password, and `secret`: the key or
  password text, which must appear nowhere the kind writes or says.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

import apsw
import pytest

from syncd.errors import KeyProblem, SourceError
from syncd.fsutil import open_untouched
from syncd.source import Database, SourceOptions

SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def tree_state(root: Path) -> dict[str, tuple]:
    """Every file under `root` (or `root` itself): size, mtime, atime and a digest of its bytes."""
    root = Path(root)
    files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
    found = {}
    for path in files:
        st = path.stat()
        fd = open_untouched(path)  # this very look must not change what it looks at
        try:
            with os.fdopen(fd, "rb", closefd=False) as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        finally:
            os.close(fd)
        found[str(path)] = (st.st_size, st.st_mtime_ns, st.st_atime_ns, digest)
    return found


class SourceKindContract:
    @pytest.fixture
    def wrong_options(self) -> SourceOptions | None:
        return None  # a kind that takes no key has no wrong one

    @pytest.fixture
    def secret(self) -> str | None:
        return None

    @pytest.fixture
    def workdir(self, tmp_path) -> Path:
        return tmp_path / "state" / "kinds" / "under-test"  # made by the kind when it needs it

    def opened(self, kind, path, options, workdir):
        return kind(path, options, workdir)

    def test_declares_its_kind(self, kind):
        assert isinstance(kind.kind, str) and re.match(r"^[a-z][a-z0-9-]*$", kind.kind)
        assert isinstance(kind.summary, str) and kind.summary and "\n" not in kind.summary
        assert isinstance(kind.priority, int)

    def test_recognises_its_own_and_nothing_else(self, kind, source_path, tmp_path):
        assert kind.recognises(source_path)
        other = tmp_path / "other"
        other.mkdir()
        (other / "notes.txt").write_text("not a chat database\n")
        for path in (other, other / "notes.txt", other / "missing"):
            assert not kind.recognises(path)

    def test_lists_databases_with_usable_names_and_stable_signatures(self, kind, source_path, options, workdir):
        source = self.opened(kind, source_path, options, workdir)
        try:
            first = source.databases()
            again = source.databases()
        finally:
            source.close()
        assert first and all(isinstance(db, Database) for db in first)
        names = [db.name for db in first]
        assert len(set(names)) == len(names) and all(SOURCE_NAME.match(name) for name in names)
        assert all(isinstance(db.signature, str) and db.signature for db in first)
        assert [db.signature for db in first] == [db.signature for db in again]

    def test_materialises_plain_sound_databases_privately(self, kind, source_path, options, workdir):
        source = self.opened(kind, source_path, options, workdir)
        try:
            for db in source.databases():
                plain = Path(source.materialise(db))
                connection = apsw.Connection(f"file:{plain}?mode=ro&immutable=1", flags=apsw.SQLITE_OPEN_URI |
                                             apsw.SQLITE_OPEN_READONLY)
                try:
                    assert connection.execute("PRAGMA quick_check").fetchall() == [("ok",)]
                finally:
                    connection.close()
                if plain.is_relative_to(workdir):  # what the kind made: private
                    assert stat.S_IMODE(plain.stat().st_mode) & 0o077 == 0
                    assert stat.S_IMODE(workdir.stat().st_mode) & 0o077 == 0
                else:  # else it is the user's own file, read in place
                    assert plain.resolve().is_relative_to(Path(source_path).resolve())
        finally:
            source.close()

    def test_writes_nothing_into_the_source(self, kind, source_path, options, workdir):
        before = tree_state(source_path)
        names_before = sorted(os.listdir(source_path if Path(source_path).is_dir() else Path(source_path).parent))
        source = self.opened(kind, source_path, options, workdir)
        try:
            for db in source.databases():
                source.materialise(db)
        finally:
            source.close()
        assert tree_state(source_path) == before
        assert sorted(os.listdir(source_path if Path(source_path).is_dir() else Path(source_path).parent)) == names_before

    def test_a_change_changes_a_signature(self, kind, source_path, options, workdir, change_source):
        source = self.opened(kind, source_path, options, workdir)
        try:
            before = {db.name: db.signature for db in source.databases()}
            change_source()
            after = {db.name: db.signature for db in source.databases()}
        finally:
            source.close()
        assert after != before

    def test_a_wrong_key_is_one_line_without_the_key(self, kind, source_path, wrong_options, workdir, secret):
        if wrong_options is None:
            pytest.skip("this kind takes no key")  # not a missing feature: there is nothing to get wrong
        source = self.opened(kind, source_path, wrong_options, workdir)
        with pytest.raises((KeyProblem, SourceError)) as raised:
            try:
                for db in source.databases():
                    source.materialise(db)
            finally:
                source.close()
        message = str(raised.value)
        assert "\n" not in message
        if secret:
            assert secret not in message and secret not in str(raised.value.hint)

    def test_the_secret_is_in_no_file_it_writes(self, kind, source_path, options, workdir, secret):
        if secret is None:
            pytest.skip("this kind takes no key")
        source = self.opened(kind, source_path, options, workdir)
        try:
            for db in source.databases():
                source.materialise(db)
        finally:
            source.close()
        for path in (p for p in workdir.rglob("*") if p.is_file()) if workdir.exists() else []:
            assert secret.encode() not in path.read_bytes(), path
