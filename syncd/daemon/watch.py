"""Noticing that a phone's database changed: inotify on local disks, polling on network mounts.

inotify only sees changes made through this machine's kernel, so a folder on
NFS, SMB or a FUSE mount (sshfs, rclone mount) written by another machine would
stay silent: those are polled instead, chosen from the mount's filesystem type.
Either way this only says *when to look*; the daemon waits for quiet, checks the
file holds still, and rescans periodically, since inotify drops events silently
when its queue overflows.

A source that is a folder (an iOS backup, or the folder of several) is watched whole.
A source that is a symlink (`~/chat.db -> /mnt/drop/EnMicroMsg.db`) changes where
the link points, so the folder of the file it points to is watched too, and that
watch moves when the link is re-pointed.
"""

from __future__ import annotations

import errno
import glob
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (FileClosedEvent, FileCreatedEvent, FileDeletedEvent, FileModifiedEvent,
                             FileMovedEvent, FileSystemEvent, FileSystemEventHandler,
                             PatternMatchingEventHandler)
from watchdog.observers.inotify import InotifyObserver
from watchdog.observers.polling import PollingObserver

from ..capture.snapshot import COMPANIONS

log = logging.getLogger("syncd")

MOUNTINFO = Path("/proc/self/mountinfo")
# Filesystems whose changes may come from another machine, where inotify sees nothing.
NETWORK_FILESYSTEMS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "9p", "virtiofs", "afs", "ceph",
                       "glusterfs", "lustre", "gpfs", "davfs", "coda", "ocfs2", "gfs2"}
# Local FUSE filesystems (an NTFS USB disk) are written through this kernel, so inotify works there.
LOCAL_FUSE = {"fuseblk"}
# Writes, renames and deletes; not opens and reads, or our own snapshot would wake us again.
EVENTS = [FileCreatedEvent, FileModifiedEvent, FileMovedEvent, FileDeletedEvent, FileClosedEvent]
# inotify's per-user limits: running out means polling, not failing.
WATCH_LIMIT_ERRNOS = {errno.ENOSPC, errno.EMFILE}


def filesystem_type(path: Path, mountinfo: str | None = None) -> str:
    """The type of the filesystem `path` lives on, from /proc/self/mountinfo ("" if unknown)."""
    if mountinfo is None:
        try:
            mountinfo = MOUNTINFO.read_text()
        except OSError:
            return ""
    path = os.path.realpath(path)
    best, kind = "", ""
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        point = _unescape(fields[4])
        after = line.split(" - ", 1)[1].split()
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        # The longest mount point wins; a later line with the same one is mounted on top.
        if inside and len(point) >= len(best) and after:
            best, kind = point, after[0]
    return kind


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def needs_polling(fstype: str) -> bool:
    return fstype in NETWORK_FILESYSTEMS or (fstype.startswith("fuse") and fstype not in LOCAL_FUSE)


def patterns_for(path: Path) -> list[str]:
    """watchdog 7 matches patterns against full paths: the database and its companions, escaped."""
    return [glob.escape(str(path)) + suffix for suffix in ("",) + COMPANIONS]


class _FolderHandler(FileSystemEventHandler):
    """Any file written in a folder source (an iOS backup): the daemon's quiet period makes a
    backup's thousands of writes one pass."""

    def __init__(self, name: str, path: Path, on_change: Callable[[str], None]):
        super().__init__()
        self.name, self.path, self.on_change = name, path, on_change

    def on_any_event(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.on_change(self.name)


class _SourceHandler(PatternMatchingEventHandler):
    def __init__(self, name: str, path: Path, on_change: Callable[[str], None],
                 on_replaced: Callable[[], None] | None = None):
        super().__init__(patterns=patterns_for(path), ignore_directories=True, case_sensitive=True)
        self.name = name
        self.path = path
        self.on_change = on_change
        self.on_replaced = on_replaced  # a new file (or link) at one of the names: not for mere writes

    def on_any_event(self, event: FileSystemEvent) -> None:
        if self.on_replaced and isinstance(event, (FileCreatedEvent, FileMovedEvent)):
            self.on_replaced()
        self.on_change(self.name)


@dataclass
class Watched:
    name: str
    path: Path
    mode: str = "none"  # "inotify", "polling", or "none" while the folder can't be watched
    real: Path | None = None  # the file a symlinked source points to, watched in its own folder too
    real_watch: tuple | None = None  # (observer, handler, watch) of that second watch


class Watcher:
    """Calls `on_change(name)` (from a watchdog thread) when a source's file may have changed."""

    def __init__(self, sources: list[tuple[str, Path]], on_change: Callable[[str], None], *,
                 poll_interval: float, mountinfo: str | None = None):
        self.sources = [Watched(name, Path(path).absolute()) for name, path in sources]
        self.on_change = on_change
        self.mountinfo = mountinfo
        self.inotify = InotifyObserver()
        self.polling = PollingObserver(timeout=poll_interval)
        self.inotify_broken = False
        # Held while moving a symlinked source's second watch, never by watchdog's own threads
        # (which hold their observer's lock while handling an event), so the two can't deadlock.
        self.following = threading.Lock()

    def start(self) -> None:
        # Observers start first so that `schedule` starts each watch at once and a
        # watch-limit error surfaces here, per folder, rather than inside start().
        self.inotify.start()
        self.polling.start()
        self.refresh()

    def refresh(self) -> None:
        """Watch every folder that isn't watched yet (it may have been missing, or unmounted), and
        where each symlinked source points now."""
        for watched in self.sources:
            if watched.mode == "none":
                watched.mode = self._schedule(watched)
            if watched.mode != "none":
                self._follow(watched)

    def _schedule(self, watched: Watched) -> str:
        if watched.path.is_dir():  # a source that is a folder: everything in it, however deep
            watch = self._observe(_FolderHandler(watched.name, watched.path, self.on_change), watched.path,
                                  watched.name, recursive=True)
            return watch[2] if watch else "none"
        folder = watched.path.parent
        if not folder.is_dir():
            log.warning("%s: folder %s does not exist yet; checking again at each rescan", watched.name, folder)
            return "none"
        handler = _SourceHandler(watched.name, watched.path, self.on_change, lambda: self._relinked(watched))
        watch = self._observe(handler, folder, watched.name)
        return watch[2] if watch else "none"

    def _observe(self, handler: FileSystemEventHandler, folder: Path, name: str, *,
                 recursive: bool = False) -> tuple | None:
        """Watch `folder` for `handler`, by inotify or polling as its filesystem needs: (observer, watch, mode)."""
        fstype = filesystem_type(folder, self.mountinfo)
        mode = "polling" if needs_polling(fstype) or self.inotify_broken else "inotify"
        if mode == "inotify":
            try:
                observer, watch = self.inotify, self.inotify.schedule(handler, str(folder), recursive=recursive,
                                                                      event_filter=EVENTS)
            except OSError as e:
                if e.errno not in WATCH_LIMIT_ERRNOS:
                    log.warning("%s: can't watch %s: %s; checking again at each rescan", name, folder,
                                e.strerror or e)
                    return None
                # Said once: every later folder goes straight to polling.
                self.inotify_broken = True
                log.warning("inotify limit reached (%s); polling instead. Raise fs.inotify.max_user_watches "
                            "or max_user_instances to avoid it", e.strerror or e)
                mode = "polling"
        if mode == "polling":
            observer, watch = self.polling, self.polling.schedule(handler, str(folder), recursive=recursive,
                                                                  event_filter=EVENTS)
        log.info("%s: watching %s (%s%s)", name, handler.path, mode, f", {fstype}" if fstype else "")
        return observer, watch, mode

    def _relinked(self, watched: Watched) -> None:
        """Something new at the source's name: if it is (or was) a symlink, it may point elsewhere now."""
        if watched.real is not None or watched.path.is_symlink():
            # Not from this watchdog thread, which holds its observer's lock: see `following`.
            threading.Thread(target=self._follow, args=(watched,), name="syncd-follow-link", daemon=True).start()

    def _follow(self, watched: Watched) -> None:
        """Watch the folder of the file a symlinked source points to, instead of where it pointed before."""
        real = Path(os.path.realpath(watched.path)) if watched.path.is_symlink() else None
        with self.following:
            if real == watched.real:
                return
            if watched.real_watch:
                observer, handler, watch = watched.real_watch
                observer.remove_handler_for_watch(handler, watch)
            watched.real = watched.real_watch = None
            if real is None or not real.parent.is_dir():
                return  # not a link (any more), or a dangling one: looked at again at each rescan
            handler = _SourceHandler(watched.name, real, self.on_change)
            found = self._observe(handler, real.parent, watched.name)
            if found:
                watched.real, watched.real_watch = real, (found[0], handler, found[1])

    def stop(self) -> None:
        for observer in (self.inotify, self.polling):
            observer.stop()
        for observer in (self.inotify, self.polling):
            if observer.is_alive():
                observer.join(timeout=5)
