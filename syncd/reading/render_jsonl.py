"""JSON Lines: one message a line, the fields docs/export.md documents.

Built for speed (the export benchmark asks for 100,000 messages a second): one f-string
and a C string-encoder call or two per message, names, kinds and times looked up from caches.
"""

from __future__ import annotations

import base64
import json
from json.encoder import encode_basestring
from collections.abc import Iterator
from itertools import islice
from typing import TextIO

from ..media.links import MediaLinks
from .model import DELETED_HISTORY, PRESENT, IsoTime, Reading

ENCODE = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":")).encode
STRING = encode_basestring  # json's C string encoder, for values known to be str
WRITE_BATCH = 4096  # lines joined per write


def jsonl_lines(reading: Reading) -> Iterator[str]:
    """Each selected message as one JSON line (with its newline); a table view's rows for an unknown app.

    The line is assembled from JSON-encoded pieces rather than a dict per message: the
    conversation, sender, kind and "nothing happened to it" parts repeat, so each is encoded
    once and kept; what most messages lack (history, media, a quote) costs one test.
    """
    if reading.profile is None:
        yield from (line + "\n" for line in _table_lines(reading))
        return
    head = f'{{"source":{ENCODE(reading.source)},"app":{ENCODE(reading.app)},"id":'
    names, iso, links = reading.names, IsoTime(), reading.media
    annotations = reading.annotations
    history = annotations.history
    deleted = set(annotations.deleted)
    first_seen = annotations.first_seen
    first_default = f',"first_seen":{_first_seen(annotations.first_version)}}}\n'
    conversations = {c.id: c.name for c in reading.all_conversations.values()}
    chat_parts: dict[str, str] = {}
    sender_parts: dict[str | None, str] = {}
    kind_parts: dict[str, str] = {}
    present = f',"status":"{PRESENT}","history":[]'
    plain_extra = f',"media":[]{media_files((), links)},"reply_to":null,"server_id":'
    string, encode, clock = STRING, ENCODE, iso  # locals: read a million times
    for m in reading.messages():
        mid, conversation, who, from_me, ms, kind, text, media, reply, sid = m
        found = history.get(mid) if history else None
        if found is None and deleted and m in deleted:
            found = DELETED_HISTORY
        if found is None:
            status = present
        else:
            text = found.text if found.text is not None else text
            status = (f',"status":{string(found.status)}'
                      f',"history":{encode(list(found.earlier)) if found.earlier else "[]"}')
        chat = chat_parts.get(conversation)
        if chat is None:
            name = conversations.get(conversation, conversation)
            chat = chat_parts[conversation] = f',"conversation":{encode(conversation)},"conversation_name":{encode(name)}'
        sender = sender_parts.get(who)
        if sender is None:
            name = names.get(who, who) if who is not None else None
            sender = sender_parts[who] = f',"sender":{encode(who)},"sender_name":{encode(name)}'
        kind_part = kind_parts.get(kind)
        if kind_part is None:
            kind_part = kind_parts[kind] = f'","kind":{encode(kind)},"text":'
        if media or reply is not None:
            extra = (f',"media":{_strings(media)}{media_files(media, links)},"reply_to":'
                     f'{"null" if reply is None else string(reply) if type(reply) is str else encode(reply)},"server_id":')
        else:
            extra = plain_extra
        seen = first_seen.get(mid) if first_seen else None
        end = first_default if seen is None else f',"first_seen":{_first_seen(seen)}}}\n'
        yield (f'{head}{mid if type(mid) is int else encode(mid)}{chat}{sender}'
               f',"from_me":{"true" if from_me else "false"},"time":"{clock(ms)}{kind_part}'
               f'{string(text) if type(text) is str else "null" if text is None else encode(text)}{status}{extra}'
               f'{string(sid) if type(sid) is str else "null" if sid is None else encode(sid)}{end}')


def _strings(values: tuple) -> str:
    """A JSON array of strings, with the C string encoder (the general one for anything else)."""
    if all(type(v) is str for v in values):
        return "[" + ",".join(map(STRING, values)) + "]"
    return ENCODE(list(values))


def _first_seen(seen: tuple[int, str] | None) -> str:
    """{"version": N, "time": "…Z"}, or null when no history is known."""
    return "null" if seen is None else f'{{"version":{int(seen[0])},"time":{ENCODE(seen[1])}}}'


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
    count, lines = 0, jsonl_lines(reading)
    while batch := list(islice(lines, WRITE_BATCH)):  # joined and written in C, a batch at a time
        out.write("".join(batch))
        count += len(batch)
    return count
