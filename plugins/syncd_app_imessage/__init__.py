"""iMessage: iOS `sms.db` and macOS `chat.db`.

The profile itself is in `profile.py`, imported when an app is asked for (export, search,
browse): every syncd command loads every plugin, and a pass only needs the source kinds.
"""

from syncd.plugins import hookimpl


@hookimpl
def register_apps():
    from .profile import IMessage

    return [IMessage]
