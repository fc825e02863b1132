"""A self-contained offline HTML folder: `index.html` lists the conversations, `chats/NNNN.html` holds one each.

No script, no external asset: the style is inline, and each page's Content-Security-Policy
forbids scripts, so a message that holds markup stays text even if escaping were missed.
Every value from the database is escaped (`html.escape`, quotes included). File names are
numbers, never a conversation's id or name (those come from the archive). A message's media links
to its file under `media/`, restored from the version's listing with its original bytes.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from urllib.parse import quote

from ..app import Message
from ..fsutil import private_opener
from ..media.links import MediaLinks
from .model import PRESENT, IsoTime, MessageHistory, Reading, display_text

MEDIA_PREFIX = "../media/"  # from chats/NNNN.html to the media restored beside them
POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'"
STYLE = """body{font:15px/1.45 system-ui,sans-serif;max-width:50em;margin:2em auto;padding:0 1em;color:#222}
a{color:#0a58ca}.m{margin:.35em 0;padding:.35em .6em;border-radius:.5em;background:#f1f3f5}
.m.me{background:#dcf5dc;margin-left:4em}.who{font-weight:600}.t{color:#666;font-size:.85em}
.text{white-space:pre-wrap;overflow-wrap:anywhere}.badge{font-size:.8em;padding:0 .4em;border-radius:.3em;
background:#ffe08a}.recalled .badge,.deleted .badge{background:#f8b4b4}.kind{color:#666;font-style:italic}
.hist{color:#666;font-size:.85em;margin:.2em 0 0 1em}.media{font-size:.85em;color:#555}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .4em;font-size:.85em;vertical-align:top}"""


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
            f'<meta name="viewport" content="width=device-width"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


def media_html(reference: str, links: MediaLinks | None, prefix: str) -> str:
    """A message's media: a link to the file restored beside the export (`prefix` + its listed
    path), or the app's reference as text when no listed file matches it."""
    found = links.find(reference) if links is not None else None
    if found is None:
        return f'<div class="media">{escape(reference)}</div>'
    href = escape(prefix + quote(found.path))
    return f'<div class="media"><a href="{href}">{escape(reference)}</a></div>'


def message_html(m: Message, history: MessageHistory, names: dict, iso: IsoTime,
                 links: MediaLinks | None = None, prefix: str = MEDIA_PREFIX) -> str:
    who = "me" if m.from_me else names.get(m.sender, m.sender) if m.sender else "system"
    text = display_text(m, history)
    body = (f'<div class="text">{escape(text)}</div>' if text is not None
            else f'<div class="kind">{escape(m.kind)}</div>')
    badge = f' <span class="badge">{escape(history.status)}</span>' if history.status != PRESENT else ""
    earlier = "".join(f'<div class="hist">earlier (version {escape(str(h.get("version")))}): '
                      f'{escape(str(h.get("text")))}</div>' for h in history.earlier)
    media = "".join(media_html(ref, links, prefix) for ref in m.media)
    mine = " me" if m.from_me else ""
    return (f'<div class="m{mine} {escape(history.status)}" id="m-{escape(str(m.id))}"><span class="who">'
            f'{escape(who)}</span> <span class="t">{iso(m.time)}</span>{badge}{body}{earlier}{media}</div>\n')


def write_html(reading: Reading, folder: Path) -> int:
    """Write the HTML export into `folder` (which exists and is empty); returns the messages written."""
    chats = folder / "chats"
    chats.mkdir(mode=0o700)
    title = f"{reading.source} ({reading.app or 'unknown app'})"
    if reading.profile is None:
        return _tables(reading, chats, folder, title)
    count, iso, links = 0, IsoTime(), []
    for n, conversation in enumerate(reading.conversations(), 1):
        name = f"{n:04d}.html"
        written = 0
        with open(chats / name, "w", encoding="utf-8", opener=private_opener) as out:
            out.write(page(conversation.name, "").split("\n</body>")[0])
            out.write(f'<p><a href="../index.html">all conversations</a></p><h1>{escape(conversation.name)}</h1>\n')
            for m in reading.messages(conversation.id):
                out.write(message_html(m, reading.history_of(m), reading.names, iso, reading.media))
                written += 1
            out.write("</body></html>\n")
        group = " (group)" if conversation.is_group else ""
        links.append(f'<li><a href="chats/{name}">{escape(conversation.name)}</a>{group}: {written} messages</li>')
        count += written
    _write(folder / "index.html", page(title, f"<h1>{escape(title)}</h1>\n<ul>\n" + "\n".join(links) + "\n</ul>"))
    return count


def _tables(reading: Reading, chats: Path, folder: Path, title: str) -> int:
    count, links = 0, []
    for n, (table, columns, rows) in enumerate(reading.tables(), 1):
        name = f"{n:04d}.html"
        with open(chats / name, "w", encoding="utf-8", opener=private_opener) as out:
            out.write(page(table, "").split("\n</body>")[0])
            out.write(f"<h1>{escape(table)}</h1><table><tr>" + "".join(f"<th>{escape(c)}</th>" for c in columns)
                      + "</tr>\n")
            for row in rows:
                out.write("<tr>" + "".join(f"<td>{escape(_cell(v))}</td>" for v in row) + "</tr>\n")
                count += 1
            out.write("</table></body></html>\n")
        links.append(f'<li><a href="chats/{name}">{escape(table)}</a></li>')
    _write(folder / "index.html", page(title, f"<h1>{escape(title)}</h1>\n<p>No app profile knows this database: "
                                               "its tables as they are.</p>\n<ul>\n" + "\n".join(links) + "\n</ul>"))
    return count


def _cell(value) -> str:
    return f"<{len(value)} bytes>" if isinstance(value, bytes) else "" if value is None else str(value)


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", opener=private_opener) as f:
        f.write(text)
