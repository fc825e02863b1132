"""`syncd export`: one version of one or every source, restored privately, rendered as JSONL, HTML or text.

The restored database lives only in a private scratch folder (0700, under the state dir
or the system's temp dir) and is removed afterwards. What is written appears whole or
not at all: a file is written beside OUT and renamed onto it, a folder is built beside
OUT and renamed into place.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

import apsw
import pluggy

from ..archive.plain import Archive
from ..errors import SyncdError, UsageError, no_space
from ..media.links import MediaLinks
from ..readback.restore import choose_version, read_manifest, reading_area, restore
from .model import Annotations, Filters, Reading, open_database
from .render_html import write_html
from .render_jsonl import write_jsonl
from .render_text import write_text

FORMATS = ("jsonl", "html", "txt")
MEDIA_FOLDER = "media"  # beside chats/ in an HTML or text export: the files its messages link to (MEDIA_PREFIX)
STDOUT = "-"


@dataclass(frozen=True)
class Exported:
    """What one source's export holds."""

    source: str
    app: str | None  # None: no profile knew it, so its tables were exported as they are
    version: int
    time: str
    messages: int  # or rows, for a table view


AnnotationsFor = Callable[[Archive, int, apsw.Connection], Annotations]


def export(archives: Sequence[Archive], out: str, fmt: str, *, pm: pluggy.PluginManager,
           number: int | None = None, at: datetime | None = None, filters: Filters = Filters(),
           scratch: Path | None = None, stdout: TextIO | None = None,
           annotations: AnnotationsFor | None = None) -> list[Exported]:
    """Export the version (`number`, or the one current `at`, or the latest) of each archive to `out`.

    `out` is a file or "-" (stdout) for jsonl, a new or empty folder for html and txt; with
    several sources a folder gets one subfolder per source. `annotations(archive, version, db)`
    (db: the restored version), when given, supplies each message's status and earlier texts (the history layer).
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    if number is not None and len(archives) > 1:
        raise UsageError("--version names a version of one source, and the target holds several",
                         hint="add --source NAME (see `syncd log`), or use --at TIME")
    if out == STDOUT and fmt != "jsonl":
        raise UsageError(f"{fmt} exports are folders, not a stream", hint="give a folder to write them into")
    if scratch is not None and not Path(scratch).is_dir():
        raise UsageError(f"{scratch} is not a folder", hint="give the state dir that exists")
    build = _streamed if out == STDOUT else _file if fmt == "jsonl" else _folder
    return build(archives, out, fmt, pm, number, at, filters, scratch, stdout or sys.stdout, annotations)


def _read_each(archives, pm, number, at, filters, scratch, annotations):
    """(Reading, Exported-without-count) for each archive, its restored copy removed after use."""
    for archive in archives:
        manifest = read_manifest(archive)
        version = choose_version(manifest, number, at)
        with tempfile.TemporaryDirectory(prefix="syncd-export-", dir=scratch) as tmp:  # 0700, like mkdtemp
            restored = Path(tmp) / "restored.db"
            restore(archive, restored, number=version.number)
            db = open_database(restored)
            try:
                notes = annotations(archive, version.number, db) if annotations else Annotations()
                reading = Reading(db, archive.source, pm, filters, notes)
                if (listing := manifest.media_at(version.number)) is not None and reading.profile is not None:
                    reading.media = MediaLinks(reading_area(archive), listing)
                yield reading, version
            finally:
                db.close()


def _streamed(archives, out, fmt, pm, number, at, filters, scratch, stdout, annotations) -> list[Exported]:
    done = []
    for reading, version in _read_each(archives, pm, number, at, filters, scratch, annotations):
        count = write_jsonl(reading, stdout)
        done.append(Exported(reading.source, reading.app, version.number, version.time, count))
    stdout.flush()
    return done


def _file(archives, out, fmt, pm, number, at, filters, scratch, stdout, annotations) -> list[Exported]:
    path = _new_path(Path(out), folder=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    done = []
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for reading, version in _read_each(archives, pm, number, at, filters, scratch, annotations):
                count = write_jsonl(reading, f)
                done.append(Exported(reading.source, reading.app, version.number, version.time, count))
        os.replace(tmp, path)
    except BaseException as e:
        os.unlink(tmp)
        _raise_full(e, path.parent)
        raise
    return done


def _folder(archives, out, fmt, pm, number, at, filters, scratch, stdout, annotations) -> list[Exported]:
    path = _new_path(Path(out), folder=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    render = write_html if fmt == "html" else write_text
    done = []
    try:
        for reading, version in _read_each(archives, pm, number, at, filters, scratch, annotations):
            into = tmp if len(archives) == 1 else tmp / _folder_name(reading.source)
            into.mkdir(mode=0o700, exist_ok=True)
            count = render(reading, into)
            if reading.media is not None:  # the files the pages (html) or lines (text) link to
                reading.media.restore_used(into / MEDIA_FOLDER)  # inside the folder renamed into place whole
            done.append(Exported(reading.source, reading.app, version.number, version.time, count))
        if path.is_dir():
            path.rmdir()  # it was empty: checked by _new_path
        os.rename(tmp, path)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        _raise_full(e, path.parent)
        raise
    return done


def _folder_name(source: str) -> str:
    """Source names are checked ([A-Za-z0-9._-]) when archived; a leading dot would hide the folder."""
    return source.lstrip(".") or "source"


def _new_path(path: Path, *, folder: bool) -> Path:
    path = path.expanduser().absolute()
    if not path.parent.is_dir():
        raise UsageError(f"folder {path.parent} does not exist", hint="create it first")
    if folder:
        if path.exists() and not (path.is_dir() and not any(path.iterdir())):
            raise UsageError(f"{path} already exists and is not an empty folder",
                             hint="give a new folder: an export never mixes with other files")
    elif path.is_dir():
        raise UsageError(f"{path} is a folder", hint="give the path of the .jsonl file to write, or - for stdout")
    elif path.exists():
        raise UsageError(f"{path} already exists", hint="choose another path, or remove it first")
    return path


def _raise_full(error: BaseException, folder: Path) -> None:
    full = no_space(error, folder) if isinstance(error, (OSError,)) else None
    if full:
        raise full from None
    if isinstance(error, OSError) and not isinstance(error, SyncdError):
        raise SyncdError(f"can't write the export in {folder}: {error.strerror}",
                         hint="export into a folder you can write to") from None
