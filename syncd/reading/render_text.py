"""Plain text: `index.txt` lists the conversations, `chats/NNNN.txt` holds one each.

One line a message: time (UTC), sender, a mark for edited, recalled or deleted
messages, the text, and the media it refers to: `[reference -> media/<path>]` where the
version's media listing holds the file (restored there, beside `index.txt`, with its original
bytes), `[reference]` where it holds none.
"""

from __future__ import annotations

from pathlib import Path

from ..app import Message
from ..fsutil import private_opener
from ..media.links import MediaLinks
from .model import PRESENT, IsoTime, MessageHistory, Reading, display_text

MARKS = {"edited": "[edited] ", "recalled": "[recalled] ", "deleted": "[deleted] "}
MEDIA_PREFIX = "media/"  # from the export's folder to the media restored in it (export.MEDIA_FOLDER)


def media_text(reference: str, links: MediaLinks | None) -> str:
    """A message's media: the reference and, where the listing holds its file, where it was restored."""
    found = links.find(reference) if links is not None else None
    return f" [{reference}]" if found is None else f" [{reference} -> {MEDIA_PREFIX}{found.path}]"


def message_line(m: Message, history: MessageHistory, names: dict, iso: IsoTime,
                 links: MediaLinks | None = None) -> str:
    who = "me" if m.from_me else names.get(m.sender, m.sender) if m.sender else "(system)"
    text = display_text(m, history)
    body = text if text is not None else f"<{m.kind}>"
    media = "".join(media_text(ref, links) for ref in m.media)
    mark = MARKS.get(history.status, "") if history.status != PRESENT else ""
    # One message, one line: a newline in the text must not start what looks like another message.
    return f"{iso(m.time)}  {who}: {mark}{body}{media}".replace("\r", " ").replace("\n", "\n    ") + "\n"


def write_text(reading: Reading, folder: Path) -> int:
    """Write the text export into `folder` (which exists and is empty); returns the messages written."""
    chats = folder / "chats"
    chats.mkdir(mode=0o700)
    count, iso = 0, IsoTime()
    with open(folder / "index.txt", "w", encoding="utf-8", opener=private_opener) as index:
        index.write(f"{reading.source} ({reading.app or 'unknown app'})\n\n")
        if reading.profile is None:
            return _tables(reading, chats, index)
        for n, conversation in enumerate(reading.conversations(), 1):
            name = f"{n:04d}.txt"
            written = 0
            with open(chats / name, "w", encoding="utf-8", opener=private_opener) as out:
                out.write(f"{conversation.name} ({conversation.id})\n\n")
                for m in reading.messages(conversation.id):
                    out.write(message_line(m, reading.history_of(m), reading.names, iso, reading.media))
                    written += 1
            index.write(f"chats/{name}  {conversation.name.replace(chr(10), ' ')}  ({written} messages)\n")
            count += written
    return count


def _tables(reading: Reading, chats: Path, index) -> int:
    count = 0
    for n, (table, columns, rows) in enumerate(reading.tables(), 1):
        name = f"{n:04d}.txt"
        with open(chats / name, "w", encoding="utf-8", opener=private_opener) as out:
            out.write("\t".join(columns) + "\n")
            for row in rows:
                out.write("\t".join(_cell(v) for v in row) + "\n")
                count += 1
        index.write(f"chats/{name}  table {table}\n")
    return count


def _cell(value) -> str:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return "" if value is None else str(value).replace("\t", " ").replace("\n", " ")
