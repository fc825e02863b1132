"""Which files of a backup are chat databases, and what each is called.

Each app's databases sit at known (domain, relativePath) places; their `-wal`
and `-journal` sit beside them in the same domain. Places come from
../shared/sources.md: iMessage `HomeDomain` `Library/SMS/sms.db`; WhatsApp and
WhatsApp Business `ChatStorage.sqlite` in their app-group domains; WeChat
`AppDomain-com.tencent.xin` `Documents/<md5 of the account>/DB/` holding
`MM.sqlite`, `WCDB_Contact.sqlite` and `message_<n>.sqlite` shards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .plists import FileRecord

COMPANIONS = ("-wal", "-journal")
WECHAT_DOMAIN = "AppDomain-com.tencent.xin"
# (domain, relativePath) → (app, the name's app part)
FIXED_PLACES = {
    ("HomeDomain", "Library/SMS/sms.db"): ("imessage", "imessage"),
    ("AppDomainGroup-group.net.whatsapp.WhatsApp.shared", "ChatStorage.sqlite"): ("whatsapp", "whatsapp"),
    ("AppDomainGroup-group.net.whatsapp.WhatsAppSMB.shared", "ChatStorage.sqlite"):
        ("whatsapp-business", "whatsapp-business"),
}
# Where each app keeps its media (domain, relativePath prefix), from ../shared/sources.md "Attachments".
MEDIA_PLACES = {
    "imessage": [("MediaDomain", "Library/SMS/Attachments/")],
    "whatsapp": [("AppDomainGroup-group.net.whatsapp.WhatsApp.shared", "Message/Media/")],
    "whatsapp-business": [("AppDomainGroup-group.net.whatsapp.WhatsAppSMB.shared", "Message/Media/")],
}
WECHAT_MEDIA = ("Img", "Audio", "Video")  # under Documents/<md5 of the account>/, listed with its MM.sqlite
WECHAT_PLACE = re.compile(r"Documents/(?P<account>[0-9a-f]{32})/DB/(?P<db>MM|WCDB_Contact|message_[0-9]{1,5})\.sqlite")
WECHAT_ACCOUNT_CHARS = 8  # of the account folder's md5, in names when a backup holds several accounts


@dataclass(frozen=True)
class Row:
    """One `Files` row of a chat database or a companion, checked."""

    file_id: str
    domain: str
    relative_path: str
    record: FileRecord


@dataclass
class ChatFile:
    """One chat database in a backup, with its companions ("-wal" → row)."""

    app: str
    part: str  # the name's app part: "whatsapp", "wechat.MM", "wechat.1a2b3c4d.message_2"
    row: Row
    companions: dict[str, Row] = field(default_factory=dict)


def query() -> tuple[str, tuple]:
    """SQL and bindings selecting the rows `chat_files` may want, and few others."""
    fixed = [(domain, path + suffix) for domain, path in FIXED_PLACES for suffix in ("",) + COMPANIONS]
    pairs = " OR ".join("(domain = ? AND relativePath = ?)" for _ in fixed)
    sql = f"{pairs} OR (domain = ? AND relativePath LIKE 'Documents/%/DB/%')"
    return sql, tuple(v for pair in fixed for v in pair) + (WECHAT_DOMAIN,)


def chat_files(rows: list[Row]) -> list[ChatFile]:
    """The chat databases among `rows`, each with the companions the backup holds for it."""
    found: dict[tuple[str, str], ChatFile] = {}
    wechat_accounts = set()
    for row in rows:
        place = (row.domain, row.relative_path)
        if place in FIXED_PLACES:
            app, part = FIXED_PLACES[place]
            found[place] = ChatFile(app, part, row)
        elif row.domain == WECHAT_DOMAIN and (m := WECHAT_PLACE.fullmatch(row.relative_path)):
            wechat_accounts.add(m["account"])
            found[place] = ChatFile("wechat", m["db"], row)
    for chat in found.values():  # only several accounts need telling apart
        if chat.app == "wechat":
            account = WECHAT_PLACE.fullmatch(chat.row.relative_path)["account"]
            chat.part = ".".join(["wechat"] + [account[:WECHAT_ACCOUNT_CHARS]] * (len(wechat_accounts) > 1)
                                 + [chat.part])
    for row in rows:
        for suffix in COMPANIONS:
            if row.relative_path.endswith(suffix):
                owner = found.get((row.domain, row.relative_path[: -len(suffix)]))
                if owner is not None:
                    owner.companions[suffix] = row
    return sorted(found.values(), key=lambda chat: chat.part)


def media_places(chat: ChatFile) -> list[tuple[str, str]]:
    """Where the app of `chat` keeps the media its messages name: (domain, relativePath prefix).
    WeChat's account media goes with the account's MM.sqlite alone, so it is listed once."""
    if chat.app != "wechat":
        return MEDIA_PLACES.get(chat.app, [])
    m = WECHAT_PLACE.fullmatch(chat.row.relative_path)
    if m is None or m["db"] != "MM":
        return []
    return [(WECHAT_DOMAIN, f"Documents/{m['account']}/{folder}/") for folder in WECHAT_MEDIA]
