"""JSON Lines: one message a line, the fields docs/export.md documents.

Built for speed (the export benchmark asks for 100,000 messages a second): one dict
and one C-encoder call per message, names and times looked up from caches.
"""

from __future__ import annotations

import base64
import json
from json.encoder import encode_basestring
from collections.abc import Iterator
from typing import TextIO

from ..media.links import MediaLinks
from .model import IsoTime, Reading

ENCODE = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":")).encode
STRING = encode_basestring  # json's C string encoder, for values known to be str
WRITE_BATCH = 4096  # lines joined per write


def jsonl_lines(reading: Reading) -> Iterator[str]:
    """Each selected message as one JSON line (without its newline); a table view's rows for an unknown app.

    The line is assembled from JSON-encoded pieces rather than a dict per message: the
    conversation and sender parts repeat, so each is encoded once and kept.
    """
    if reading.profile is None:
        yield from _table_lines(reading)
        return
    head = f'{{"source":{ENCODE(reading.source)},"app":{ENCODE(reading.app)},"id":'
    names, iso, history_of, links = reading.names, IsoTime(), reading.history_of, reading.media
    conversations = {c.id: c.name for c in reading.all_conversations.values()}
    chat_parts: dict[str, str] = {}
    sender_parts: dict[str | None, str] = {}
    for m in reading.messages():
        history = history_of(m)
        chat = chat_parts.get(m.conversation)
        if chat is None:
            name = conversations.get(m.conversation, m.conversation)
            chat = chat_parts[m.conversation] = f',"conversation":{ENCODE(m.conversation)},"conversation_name":{ENCODE(name)}'
        sender = sender_parts.get(m.sender)
        if sender is None:
            name = names.get(m.sender, m.sender) if m.sender is not None else None
            sender = sender_parts[m.sender] = f',"sender":{ENCODE(m.sender)},"sender_name":{ENCODE(name)}'
        text = history.text if history.text is not None else m.text
        yield (f'{head}{m.id if type(m.id) is int else ENCODE(m.id)}{chat}{sender}'
               f',"from_me":{"true" if m.from_me else "false"},"time":"{iso(m.time)}","kind":{STRING(m.kind)}'
               f',"text":{"null" if text is None else STRING(text) if type(text) is str else ENCODE(text)}'
               f',"status":{STRING(history.status)},"history":{ENCODE(list(history.earlier)) if history.earlier else "[]"}'
               f',"media":{ENCODE(list(m.media)) if m.media else "[]"}{media_files(m.media, links)}'
               f',"reply_to":{"null" if m.reply_to is None else ENCODE(m.reply_to)}'
               f',"server_id":{"null" if m.server_id is None else ENCODE(m.server_id)}}}')


def media_files(references: tuple[str, ...], links: MediaLinks | None) -> str:
    """Where the version's media listing holds each reference's file (its listed path and SHA-256;
    nulls when it holds none): a `media_files` field, only where media was archived."""
    if links is None:
        return ""
    found = [(r, links.find(r)) for r in references]
    return ',"media_files":' + ENCODE([{"reference": r, "path": f.path if f else None, "hash": f.hash if f else None}
                                       for r, f in found])


def _plain(value):
    return "base64:" + base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else value


def _table_lines(reading: Reading) -> Iterator[str]:
    for table, columns, rows in reading.tables():
        for row in rows:
            yield ENCODE({"source": reading.source, "app": None, "table": table,
                          "row": {c: _plain(v) for c, v in zip(columns, row)}})


def write_jsonl(reading: Reading, out: TextIO) -> int:
    """Write every line to `out`; returns how many."""
    count, batch = 0, []
    for line in jsonl_lines(reading):
        batch.append(line)
        if len(batch) >= WRITE_BATCH:
            out.write("\n".join(batch) + "\n")
            count += len(batch)
            batch.clear()
    if batch:
        out.write("\n".join(batch) + "\n")
        count += len(batch)
    return count
