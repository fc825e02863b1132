"""syncd_ios_backup: iOS backups (Finder, iTunes, idevicebackup2) as a syncd source kind.

A backup folder (or the `MobileSync/Backup` folder holding several devices'
backups) yields each chat app's databases, found through Manifest.db:
iMessage, WhatsApp, WhatsApp Business, WeChat. Encrypted backups open with
their password. Modules, by job:

    kind       the SourceKind: what a path holds, names, signatures
    backup     one device's folder: finished?, its chat files, decryption on demand
    apps       which Files rows are chat databases and companions, and their names
    manifest   Manifest.db's private copy and the checked rows read from it
    plists     type-checked plists and `file` records
    reading    bounded, no-symlink, no-atime reads of the backup's files
    keybag     password → class keys (PBKDF2 ×2, RFC 3394 unwrap)
    decrypt    AES-256-CBC files into the private work folder
"""

from syncd.plugins import hookimpl

from .kind import IOSBackup

__all__ = ["IOSBackup"]


@hookimpl
def register_sources():
    return [IOSBackup]
