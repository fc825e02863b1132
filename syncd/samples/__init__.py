"""Realistic sample chat databases and the changes their apps make to them.

The generators write files shaped like the real ones (schemas, indexes, triggers, id
schemes, text, blobs, journal modes) so that the demo, the tests and the benchmarks exercise
what syncd meets in the wild: rowid reuse, in-place rewrites, whole-chat deletes, rows spilling
into overflow pages, FTS shadow tables, WAL files. Each `<app>_<change>(db, rng, ...)` function
makes one change the way the app does, in one transaction, and returns the ids it touched.

Everything is deterministic for a given seed or `random.Random` state and database content.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from functools import partial
from typing import NamedTuple

import apsw

from ._common import BATCH_ROWS
from .imessage import create_imessage, imessage_delete, imessage_edit, imessage_new_messages
from .wechat import (
    WECHAT_APP,
    WECHAT_FAILED,
    WECHAT_IMAGE,
    WECHAT_READ,
    WECHAT_SENDING,
    WECHAT_SENT,
    WECHAT_STICKER,
    WECHAT_SYSTEM,
    WECHAT_TEXT,
    WECHAT_UNREAD,
    WECHAT_VIDEO,
    WECHAT_VOICE,
    create_wechat,
    wechat_delete_chat,
    wechat_delete_newest,
    wechat_new_messages,
    wechat_recall,
    wechat_status_churn,
)
from .whatsapp import (
    WHATSAPP_IMAGE,
    WHATSAPP_REVOKED,
    WHATSAPP_SYSTEM,
    WHATSAPP_TEXT,
    WHATSAPP_VOICE,
    create_whatsapp,
    whatsapp_delete_for_everyone,
    whatsapp_new_messages,
)

__all__ = [
    "BATCH_ROWS", "SAMPLE_APPS", "Change", "SampleApp",
    "WECHAT_APP", "WECHAT_FAILED", "WECHAT_IMAGE", "WECHAT_READ", "WECHAT_SENDING", "WECHAT_SENT",
    "WECHAT_STICKER", "WECHAT_SYSTEM", "WECHAT_TEXT", "WECHAT_UNREAD", "WECHAT_VIDEO", "WECHAT_VOICE",
    "WHATSAPP_IMAGE", "WHATSAPP_REVOKED", "WHATSAPP_SYSTEM", "WHATSAPP_TEXT", "WHATSAPP_VOICE",
    "create_imessage", "create_wechat", "create_whatsapp",
    "imessage_delete", "imessage_edit", "imessage_new_messages",
    "wechat_delete_chat", "wechat_delete_newest", "wechat_new_messages", "wechat_recall", "wechat_status_churn",
    "whatsapp_delete_for_everyone", "whatsapp_new_messages",
]

Change = Callable[[apsw.Connection, random.Random], object]


class SampleApp(NamedTuple):
    """A sample generator and the changes its app makes, each callable as `change(db, rng)`."""

    create: Callable[..., None]
    changes: Mapping[str, Change]


SAMPLE_APPS: Mapping[str, SampleApp] = {
    "wechat": SampleApp(create_wechat, {
        "new_messages": partial(wechat_new_messages, n=20),
        "recall": wechat_recall,
        "delete_chat": wechat_delete_chat,
        "delete_newest": partial(wechat_delete_newest, n=3),
        "status_churn": partial(wechat_status_churn, n=10),
    }),
    "imessage": SampleApp(create_imessage, {
        "new_messages": partial(imessage_new_messages, n=20),
        "edit": imessage_edit,
        "delete": imessage_delete,
    }),
    "whatsapp": SampleApp(create_whatsapp, {
        "new_messages": partial(whatsapp_new_messages, n=20),
        "delete_for_everyone": whatsapp_delete_for_everyone,
    }),
}
"""Every sample app by name; tests and benchmarks pick an app and a change from here."""
