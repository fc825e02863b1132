"""Exports link each message to its media as it was at that version: the HTML export restores the
linked files (original bytes) beside its pages and links them, JSONL gives each file's listed path
and hash, a reference to a file no folder held stays text. Through the real CLI."""

from __future__ import annotations

import hashlib
import json
import random
import re
from html import unescape
from pathlib import Path
from urllib.parse import unquote

import apsw
import pytest
from click.testing import CliRunner

from syncd.cli import main
from syncd.samples import create_imessage

PREFIX = "~/Library/Messages/Attachments/"


def run(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def archived(tmp_path) -> dict:
    """An iMessage-like source synced with its attachments folder, half of them on disk: what is there."""
    db = tmp_path / "chat.db"
    create_imessage(db, messages=300, seed=5)
    con = apsw.Connection(str(db))
    references = sorted({r for (r,) in con.execute("SELECT filename FROM attachment") if r})
    con.close()
    media, nas = tmp_path / "Attachments", tmp_path / "nas"
    nas.mkdir()
    there = {}
    for reference in references[::2]:
        path = media / reference.removeprefix(PREFIX)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(random.Random(reference).randbytes(2_000))
        there[reference] = path.read_bytes()
    run("sync", db, "--media", media, "--to", nas, "--state", tmp_path / "state")
    return {"nas": nas, "there": there, "missing": set(references[1::2])}


def test_the_html_export_links_each_message_to_its_restored_media(tmp_path, archived):
    out = tmp_path / "export"
    run("export", out, "--from", archived["nas"], "--format", "html")
    linked, unlinked = {}, set()
    for page in (out / "chats").glob("*.html"):
        html = page.read_text()
        for href, reference in re.findall(r'<div class="media"><a href="([^"]+)">([^<]+)</a></div>', html):
            linked[unescape(reference)] = (page.parent / unquote(unescape(href))).resolve()
        unlinked |= {unescape(r) for r in re.findall(r'<div class="media">([^<]+)</div>', html)}
    assert set(linked) == set(archived["there"]) and unlinked == archived["missing"]
    for reference, path in linked.items():
        assert path.is_relative_to(out / "media") and path.read_bytes() == archived["there"][reference]
    on_disk = {p.resolve() for p in (out / "media").rglob("*") if p.is_file()}
    assert on_disk == set(linked.values())  # only what the messages link to


def test_an_export_of_one_chat_restores_only_its_media(tmp_path, archived):
    full = tmp_path / "all"
    run("export", full, "--from", archived["nas"], "--format", "html")
    first_chat = re.search(r'<a href="chats/0001.html">([^<]+)</a>', (full / "index.html").read_text())[1]
    one = tmp_path / "one"
    run("export", one, "--from", archived["nas"], "--format", "html", "--conversation", unescape(first_chat))
    linked = set(re.findall(r'<a href="\.\./media/([^"]+)">', (one / "chats" / "0001.html").read_text()))
    assert {p.relative_to(one / "media").as_posix() for p in (one / "media").rglob("*") if p.is_file()} == \
        {unquote(unescape(h)) for h in linked}
    assert len(list((one / "media").rglob("*.HEIC"))) < len(list((full / "media").rglob("*.HEIC")))


def test_jsonl_gives_each_media_files_path_and_hash(tmp_path, archived):
    out = tmp_path / "export.jsonl"
    run("export", out, "--from", archived["nas"], "--format", "jsonl")
    seen = {}
    for line in out.read_text().splitlines():
        for entry in json.loads(line).get("media_files", []):
            seen[entry["reference"]] = entry
    assert set(seen) == set(archived["there"]) | archived["missing"]
    for reference, data in archived["there"].items():
        assert seen[reference]["hash"] == hashlib.sha256(data).hexdigest()
        assert seen[reference]["path"] == "Attachments/" + reference.removeprefix(PREFIX)
    assert all(seen[r]["path"] is None and seen[r]["hash"] is None for r in archived["missing"])
