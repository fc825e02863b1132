"""The browser's pages, as HTML strings: every value from the archive escaped, no script, one stylesheet.

Messages look as they do in the offline HTML export (`reading.render_html.message_html`:
badges for edited, recalled and deleted, earlier texts under the message). Links and
buttons are plain elements, so Tab reaches them in order; the pager's links carry
access keys (Alt+Shift+J/K in Chromium) for paging without a script.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from urllib.parse import quote, urlencode

from ..archive.manifest import Version
from ..reading.model import IsoTime
from ..reading.render_html import STYLE, message_html
from .find import Found
from .shelf import Opened
from .timeline import Page

CSS = STYLE + """
nav.top{display:flex;gap:1em;align-items:center;flex-wrap:wrap;margin-bottom:1em}
nav.top form{display:inline}.pager{display:flex;gap:1em;margin:1em 0}
.pager a,.pager span{padding:.2em .6em;border:1px solid #ccc;border-radius:.3em}.pager span{color:#999}
a:focus,button:focus,select:focus,input:focus{outline:3px solid #f59f00;outline-offset:1px}
ul.chats li{margin:.25em 0}.hit .where{font-size:.85em;color:#555}"""


def shell(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width"><title>{escape(title)}</title>'
            f'<link rel="stylesheet" href="/style.css"></head><body>\n{body}\n</body></html>\n')


def link(path: str, **query) -> str:
    """A URL to one of our pages; values (ids from the archive among them) are encoded, None left out."""
    params = {k: v for k, v in query.items() if v is not None}
    return escape(path + ("?" + urlencode(params) if params else ""))


def source_path(source: str) -> str:
    return "/s/" + quote(source, safe="") + "/"


def sources_page(rows: Sequence[tuple[str, Version | None]]) -> str:
    items = "".join(f'<li><a href="{link(source_path(s))}">{escape(s)}</a>{_versions(v)}</li>' for s, v in rows)
    return shell("syncd browse", f"<h1>Sources</h1>\n<ul class=chats>{items}</ul>")


def _versions(last: Version | None) -> str:
    if last is None:
        return ""
    return f" — {last.number} version{'s' if last.number > 1 else ''}, the last {escape(last.time)}"


def _top(opened: Opened, versions: Sequence[Version], query: str = "", chat: str | None = None) -> str:
    """The header every page of a source has: the way back, the version picker and the search box."""
    source, number = opened.source, opened.version.number
    options = "".join(f'<option value="{v.number}"{" selected" if v.number == number else ""}>'
                      f'version {v.number} — {escape(v.time)}</option>' for v in reversed(versions))
    chat_field = f'<input type="hidden" name="c" value="{escape(chat)}">' if chat is not None else ""
    here = source_path(source) + ("chat" if chat is not None else "")
    return (f'<nav class="top"><a href="/">sources</a> <a href="{link(source_path(source), v=number)}">'
            f'{escape(source)}: conversations</a>'
            f'<form method="get" action="{escape(here)}">{chat_field}<label>Version '
            f'<select name="v" id="version">{options}</select></label> <button type="submit">show</button></form>'
            f'<form method="get" action="{escape(source_path(source) + "search")}" role="search">'
            f'<input type="hidden" name="v" value="{number}"><input type="search" name="q" id="q" '
            f'value="{escape(query)}" aria-label="search messages" placeholder="search"> '
            f'<button type="submit">search</button></form></nav>')


def conversations_page(opened: Opened, versions: Sequence[Version]) -> str:
    reading, number = opened.reading, opened.version.number
    title = f"{opened.source} ({reading.app or 'unknown app'}), version {number}"
    if reading.profile is None:
        body = "<p>No app profile knows this database: use <code>syncd export</code> to read its tables.</p>"
    else:
        items = "".join(f'<li><a class="chat" href="{link(source_path(opened.source) + "chat", c=c.id, v=number)}">'
                        f'{escape(c.name)}</a>{" (group)" if c.is_group else ""}</li>'
                        for c in reading.conversations())
        body = f"<ul class=chats>{items}</ul>" if items else "<p>No conversations in this version.</p>"
    return shell(title, f"{_top(opened, versions)}<h1>{escape(title)}</h1>\n{body}")


def chat_page(opened: Opened, versions: Sequence[Version], conversation: str, page: Page) -> str:
    reading, number = opened.reading, opened.version.number
    name = reading.conversation_name(conversation)
    here = source_path(opened.source) + "chat"

    def to(label: str, key: str, cursor, access: str | None = None) -> str:
        if cursor is None:
            return f"<span>{label}</span>"
        keys = f' accesskey="{access}"' if access else ""
        return f'<a href="{link(here, c=conversation, v=number, **{key: cursor.encode()})}"{keys}>{label}</a>'

    pager = (f'<nav class="pager" aria-label="pages">'
             f'<a href="{link(here, c=conversation, v=number, after="")}">oldest</a>'
             f'{to("older", "before", page.older, "k")}{to("newer", "after", page.newer, "j")}'
             f'<a href="{link(here, c=conversation, v=number)}">newest</a></nav>')
    iso = IsoTime()
    media = f"{source_path(opened.source)}media/{number}/"  # the app's route serving this version's files
    rows = "".join(message_html(m, reading.history_of(m), reading.names, iso, reading.media, media)
                   for m in page.messages)
    body = rows or "<p>No messages here.</p>"
    return shell(f"{name}: version {number}", f"{_top(opened, versions, chat=conversation)}<h1>{escape(name)}</h1>"
                 f"\n{pager}\n<main>{body}</main>\n{pager}")


def search_page(opened: Opened, versions: Sequence[Version], query: str, found: Sequence[Found]) -> str:
    reading, number = opened.reading, opened.version.number
    chat = source_path(opened.source) + "chat"
    items = []
    for found_one in found:
        hit = found_one.hit
        # A text the shown version didn't hold opens in the version that first held it.
        at = number if found_one.shown else hit.version
        moment = found_one.time_ms  # None: no page starts there, so the chat opens at its newest
        target = (link(chat, c=hit.conversation, v=at, after=None if moment is None else str(moment - 1))
                  + f"#m-{escape(quote(str(hit.id)))}")
        other = "" if found_one.shown else f' <span class="badge other">from version {hit.version}</span>'
        status = found_one.status
        items.append(f'<li class="hit{"" if found_one.shown else " elsewhere"}"><div class="where"><a href="{target}">'
                     f'{escape(reading.conversation_name(hit.conversation) or hit.conversation_name)}</a> {hit.time}'
                     f'{f" <span class=badge>{escape(status)}</span>" if status != "present" else ""}{other}'
                     f'</div><div class="text">{escape(hit.text)}</div></li>')
    body = f"<ul>{''.join(items)}</ul>" if items else "<p>Nothing found.</p>"
    title = f"search: {query}"
    return shell(title, f"{_top(opened, versions, query=query)}<h1>{len(found)} found for “{escape(query)}”</h1>\n"
                 f"{body}")


def error_page(status: int, message: str, hint: str | None = None) -> str:
    more = f"<p>{escape(hint)}</p>" if hint else ""
    return shell(f"{status}", f"<h1>{status}</h1><p>{escape(message)}</p>{more}<p><a href=\"/\">sources</a></p>")
