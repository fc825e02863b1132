"""The text export gives each message's media the path of its file, restored with its original
bytes beside the chats (as the HTML export links it); a reference no folder held stays as it was."""

from __future__ import annotations

import re

from test_media_export import archived, run  # noqa: F401 (a fixture)

LINKED = re.compile(r" \[([^\]\n]+?) -> media/([^\]\n]+)\]")
UNLINKED = re.compile(r" \[([^\]\n]+?)\]")


def test_the_text_export_gives_each_message_its_media_path(tmp_path, archived):  # noqa: F811
    out = tmp_path / "export"
    run("export", out, "--from", archived["nas"], "--format", "txt")
    linked, unlinked = {}, set()
    for chat in (out / "chats").glob("*.txt"):
        text = chat.read_text()
        linked |= {reference: out / "media" / path for reference, path in LINKED.findall(text)}
        unlinked |= {r for r in UNLINKED.findall(LINKED.sub("", text)) if r.startswith("~/")}
    assert set(linked) == set(archived["there"]) and unlinked == archived["missing"]
    for reference, path in linked.items():
        assert path.read_bytes() == archived["there"][reference]
    assert {p for p in (out / "media").rglob("*") if p.is_file()} == set(linked.values())  # only what is linked
