"""The daemon: watch every source, archive each change locally, then bring every target up to date.

One thread runs the passes, so the local commit and the deliveries never race;
watchdog's threads and signals only record what happened and wake it through a
pipe. Each pass reuses `archive_locally` (the local commit) from `syncd.sync` and
the delivery from `syncd.delivery`: a pass's deliveries run at once, in worker threads, so a
target that hangs until its deadline delays no other and whatever one raises
fails only that one; their reports come back to this thread, which alone keeps
the schedules. Every target has its own: a failure pushes only that target back,
with exponential backoff, and the versions it misses stay queued in the local
archive until it is back.

A crash at any moment is safe (see `syncd.sync`): a restart snapshots again and
delivers whatever a target lacks. SIGTERM lets the current step finish, or
abandons it after `STOP_GRACE` seconds (as safe as a crash), and exits 0.
SIGHUP reloads the config.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path

import pluggy

from ..archive.plain import Archive
from .config import Config, SourceConfig, load_config
from ..errors import KeyProblem, SourceError, SyncdError
from ..delivery.deliver import TargetReport, cursor_key, deliver_to, target_archive
from ..delivery.fanout import MAIN_THREAD_SIGNALS, HeldHooks, deliver_all, with_signals_blocked
from ..delivery.retry import target_backoff
from .logs import LOGGER, RepeatFilter
from ..archive.manifest import Manifest
from .notify import notify, watchdog_interval
from ..capture.snapshot import companions_of
from ..plugins import open_backend, open_source
from ..archive.state import SourceState, kind_workdir
from ..source import Database, SourceKind, stat_signature
from ..sync import archive_locally, archive_media, listed
from .watch import Watcher

# After SIGTERM, a step still running this long is abandoned, so the process is
# gone well within the 10 s that systemd and users expect.
STOP_GRACE = 6.0
# Signals that only the main thread may receive (see syncd.delivery.fanout): every other thread
# (watchdog's, the grace keeper, delivery workers) starts with them blocked.
HANDLED_SIGNALS = MAIN_THREAD_SIGNALS
# Another syncd (a manual `syncd sync`) holds a source's lock: look again after this long.
LOCK_RETRY = 5.0
# An unexpected error in a pass: try that source again after this long rather than spin.
ERROR_RETRY = 60.0
# Marks the watch of a media folder: its events ask for a media pass of the source so named.
MEDIA_MARK = "\0media"


class Abandon(BaseException):
    """Raised in the main thread (by SIGALRM) when a step outlives STOP_GRACE after SIGTERM.

    A BaseException, so no `except Exception` on the way swallows it; every write
    on the way is atomic, so abandoning is as safe as a crash.
    """


def describe(error: SyncdError) -> str:
    return f"{error} ({error.hint})" if error.hint else str(error)


def _wall(monotonic_moment: float) -> str:
    """A monotonic deadline as a wall-clock time, for status and logs."""
    moment = datetime.now(timezone.utc) + timedelta(seconds=monotonic_moment - time.monotonic())
    return moment.isoformat(timespec="seconds")


@dataclass
class TargetSchedule:
    behind: bool = True  # may lack the local head; `deliver` finds out cheaply from the cursor
    failures: int = 0
    next_try: float = 0.0  # monotonic


@dataclass
class SourceRun:
    config: SourceConfig
    targets: dict[str, TargetSchedule] = field(default_factory=dict)  # by target URL
    pending_since: float | None = None  # when the last file event came, while one is unhandled
    seen: str | None = None  # the watched files' signature at that event
    archived: str | None = None  # their signature when last snapshotted
    blocked_until: float = 0.0
    media_pending: bool = False  # a file event in a media folder (or a rescan) since the last media pass
    # Opened once and kept while it reads well: a kind derives a backup password's key once.
    source: SourceKind | None = None
    databases: list[Database] = field(default_factory=list)  # what it held at the last look

    def watched(self) -> list[Path]:
        """The files whose change means the source may have: the kind's, or the file and its companions."""
        watched = getattr(self.source, "watched", None)
        if watched is not None:
            return list(watched())
        return [self.config.path, *companions_of(self.config.path).values()]

    def signature(self) -> str:
        return stat_signature(*self.watched())

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
            self.source = None


class Daemon:
    """Runs the sources and targets of one config file; `run()` returns when stopped."""

    def __init__(self, config_path: Path | None, pm: pluggy.PluginManager):
        self.config_path = config_path
        self.pm = pm
        self.log = logging.getLogger(LOGGER)
        self.config: Config = load_config(config_path)
        self.errors = RepeatFilter(self.log, self.config.daemon.error_log_interval)
        self.lock = threading.Lock()  # guards SourceRun event fields against watchdog's threads
        self.sources: dict[str, SourceRun] = {}
        self.watcher: Watcher | None = None
        self.stopping = self.reloading = False
        # The grace period is kept by a thread started up front (not in the handler)
        # that aims SIGALRM at the main thread: a thread-directed signal always
        # interrupts the system call the current step is blocked in.
        self.stop_requested, self.finished = threading.Event(), threading.Event()
        self.main_thread = threading.get_ident()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.ping_every = watchdog_interval()
        self.next_ping = self.next_rescan = 0.0
        self._apply(self.config)

    # -- lifecycle ----------------------------------------------------------------

    def run(self) -> int:
        """Work until SIGTERM or SIGINT; the exit code."""
        previous = {sig: signal.getsignal(sig) for sig in HANDLED_SIGNALS}
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        signal.signal(signal.SIGALRM, self._on_alarm)
        old_wakeup = signal.set_wakeup_fd(self.wake_w)
        guard = threading.Thread(target=self._keep_grace, name="syncd-stop-grace", daemon=True)
        try:
            with_signals_blocked(guard.start)
            self._start_watcher()
            self.log.info("syncd started: %d source(s), %d target(s), state in %s", len(self.config.sources),
                          len(self.config.targets), self.config.state_dir)
            notify(f"READY=1\nSTATUS={self._summary()}")
            try:
                self._loop()
            except Abandon:
                self.log.warning("stopped in the middle of a step; it is redone at the next start")
        finally:
            self.finished.set()
            self.stop_requested.set()  # lets the guard thread end
            notify("STOPPING=1\nSTATUS=stopping")
            self.watcher.stop()
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(self.wake_r)
            os.close(self.wake_w)
        self.log.info("syncd stopped")
        return 0

    def _loop(self) -> None:
        while not self.stopping:
            if self.reloading:
                self._reload()
            self._tick()
            self._ping()
            if self.stopping:
                break
            self._wait(self._next_wake())

    def _start_watcher(self) -> None:
        """Start watchdog's threads with our signals blocked, so the kernel gives them to the main thread."""
        with_signals_blocked(self.watcher.start)

    def _keep_grace(self) -> None:
        """In its own thread: once SIGTERM came, abandon the step still running after STOP_GRACE."""
        self.stop_requested.wait()
        if not self.finished.wait(STOP_GRACE):
            signal.pthread_kill(self.main_thread, signal.SIGALRM)

    def _on_stop(self, signum, frame) -> None:
        if not self.stopping:
            self.stopping = True
            self.log.info("%s: stopping", signal.Signals(signum).name)
            self.stop_requested.set()

    def _on_reload(self, signum, frame) -> None:
        self.reloading = True

    def _on_alarm(self, signum, frame) -> None:
        if self.stopping:
            raise Abandon()

    def _wake(self) -> None:
        try:
            os.write(self.wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (a wake-up is already due) or being closed

    def _wait(self, timeout: float) -> None:
        select.select([self.wake_r], [], [], timeout)
        try:
            while os.read(self.wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _reload(self) -> None:
        self.reloading = False
        notify("RELOADING=1")
        try:
            config = load_config(self.config_path)
        except SyncdError as e:
            self.log.error("config not reloaded, the running one stays: %s", e)
        else:
            self.watcher.stop()
            self._apply(config)
            self._start_watcher()
            self.log.info("config reloaded: %d source(s), %d target(s)", len(config.sources), len(config.targets))
        notify(f"READY=1\nSTATUS={self._summary()}")

    def _apply(self, config: Config) -> None:
        """Take on a config: new sources and targets get a pass at once; known ones keep their schedule."""
        now = time.monotonic()
        with self.lock:
            old, self.sources = self.sources, {}
            for source in config.sources:
                run = old.pop(source.name, None)
                if run is None or run.config != source:
                    if run is not None:
                        run.close()
                    run = SourceRun(source)
                run.config = source
                run.targets = {t.url: run.targets.get(t.url) or TargetSchedule() for t in config.targets}
                for schedule in run.targets.values():
                    schedule.behind = True
                run.pending_since, run.seen = now, run.signature()
                self.sources[source.name] = run
            for run in old.values():  # sources the new config doesn't have
                run.close()
        self.config = config
        self.errors.interval = config.daemon.error_log_interval
        self.next_rescan = now + config.daemon.rescan
        # A media folder is watched whole, under its source's name marked as media (see `_changed`).
        self.watcher = Watcher([(s.name, s.path) for s in config.sources]
                               + [(s.name + MEDIA_MARK, folder) for s in config.sources for folder in s.media],
                               self._changed, poll_interval=config.daemon.poll)

    # -- events -------------------------------------------------------------------

    def _changed(self, name: str) -> None:
        """A file event for a source (called from watchdog's threads): restart its quiet period."""
        name, media, _ = name.partition(MEDIA_MARK)
        with self.lock:
            run = self.sources.get(name)
            if run is not None:
                run.pending_since, run.seen = time.monotonic(), run.signature()
                run.media_pending |= bool(media)
        self._wake()

    def _rescan(self, now: float) -> None:
        """Catch changes whose events were lost (inotify overflow) and folders that appeared, and
        targets that lost what they were given (one listing each: `deliver` sends it again)."""
        self.next_rescan = now + self.config.daemon.rescan
        self.watcher.refresh()
        with self.lock:
            for run in self.sources.values():
                for schedule in run.targets.values():
                    schedule.behind = True
                current = run.signature()
                # A media folder's lost events can't show in a signature: its pass costs a walk, so do it.
                run.media_pending |= bool(run.config.media)
                if (current != run.archived or run.media_pending) and run.pending_since is None:
                    run.pending_since, run.seen = now, current

    def _snapshot_due(self, run: SourceRun, now: float) -> bool:
        """Quiet for a whole period and unchanged across it: time to snapshot, if it differs from the last one."""
        with self.lock:
            if run.pending_since is None or now - run.pending_since < self.config.daemon.quiet:
                return False
            current = run.signature()
            if current != run.seen:  # changed without an event we saw (polling lag): wait again
                run.pending_since, run.seen = now, current
                return False
            run.pending_since = None
        return current != run.archived or run.media_pending

    def _next_wake(self) -> float:
        now = time.monotonic()
        deadlines = [self.next_rescan]
        if self.ping_every:
            deadlines.append(self.next_ping)
        with self.lock:
            for run in self.sources.values():
                if run.pending_since is not None:
                    deadlines.append(max(run.pending_since + self.config.daemon.quiet, run.blocked_until))
                deadlines += [max(s.next_try, run.blocked_until) for s in run.targets.values() if s.behind]
        return max(0.0, min(deadlines) - now)

    def _ping(self) -> None:
        if self.ping_every and time.monotonic() >= self.next_ping:
            notify("WATCHDOG=1")
            self.next_ping = time.monotonic() + self.ping_every

    # -- work ---------------------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        if now >= self.next_rescan:
            self._rescan(now)
        for run in list(self.sources.values()):
            if self.stopping or self.reloading:
                return
            if now < run.blocked_until:
                continue
            snapshot = self._snapshot_due(run, now)
            if snapshot or any(s.behind and s.next_try <= now for s in run.targets.values()):
                self._pass(run, snapshot)

    def _pass(self, run: SourceRun, snapshot: bool) -> None:
        """Archive each database of the source (if `snapshot`), then deliver to the targets that are due."""
        name = run.config.name
        try:
            databases = self._databases(run) if snapshot or run.source is None else run.databases
            media = snapshot and run.media_pending
            run.media_pending = False  # events from here on ask for another pass
            signature = run.signature()  # taken before anything is read
            now = time.monotonic()
            due = [url for url, s in run.targets.items() if s.behind and s.next_try <= now]
            outcomes: dict[str, list] = {url: [] for url in due}
            recorded = True
            for db in databases:
                recorded &= self._pass_database(run, db, snapshot, due, outcomes, len(databases) == 1)
            if snapshot and recorded:
                run.archived = signature
            if due and not self.stopping:  # when stopping, they catch up at the next start
                for url in due:
                    self._settle(run, url, outcomes[url])
                self._ping()
        except SyncdError as e:  # another syncd holds a lock, or the state dir is unusable
            run.media_pending |= media
            run.blocked_until = time.monotonic() + LOCK_RETRY
            self._mark_pending(run)
            self.errors.error(f"{name}:state", f"{name}: {describe(e)}")
        except Exception:
            run.media_pending |= media
            run.blocked_until = time.monotonic() + ERROR_RETRY
            self._mark_pending(run)
            self.log.exception("%s: unexpected error; trying again in %.0f s", name, ERROR_RETRY)
        notify(f"STATUS={self._summary()}")

    def _databases(self, run: SourceRun) -> list[Database]:
        """What the source holds now; [] (with its error logged) when it can't be read."""
        name, config = run.config.name, run.config
        try:
            if run.source is None:
                workdir = partial(kind_workdir, self.config.state_dir, config.path)
                run.source = open_source(self.pm, config.path, config.options, workdir, config.kind)
            run.databases = listed(run.source, config.path)
        except (SourceError, KeyProblem) as e:  # a wrong password is fixed by editing its file
            # Most often a file still being copied: its next write brings us back. The kind is
            # recognised again then (a backup folder may have been a missing path until now).
            run.close()
            run.databases = []
            self.errors.error(f"{name}:source", f"{name}: {describe(e)}")
            SourceState(self.config.state_dir, name).record_source_error(str(e), e.hint)  # for `status`
        return run.databases

    def _pass_database(self, run: SourceRun, db: Database, snapshot: bool, due: list[str],
                       outcomes: dict[str, list], alone: bool = True) -> bool:
        """Archive one database (if `snapshot`) and deliver it to the `due` targets, adding each report
        to `outcomes`; False if it couldn't be archived."""
        state = SourceState(self.config.state_dir, db.name)
        with state.locked():
            local = Archive(open_backend(self.pm, str(state.archive_dir)), db.name)
            recorded = self._record(run, db, state, local) if snapshot else True
            if snapshot and (run.config.media or hasattr(run.source, "media")):  # an iOS backup lists its own
                self._record_media(run, db, state, local, alone)
            manifest = local.manifest()
            # Until a first version exists (the source's error is logged) there is nothing to deliver.
            if manifest is not None and manifest.head is not None and due and not self.stopping:
                for url, cursor, report in self._deliver(db.name, state, local, manifest, due):
                    outcomes[url].append((db.name, state, cursor, report))
        return recorded

    def _mark_pending(self, run: SourceRun) -> None:
        with self.lock:
            run.pending_since, run.seen = time.monotonic(), run.signature()

    def _record(self, run: SourceRun, db: Database, state: SourceState, local: Archive) -> bool:
        """Snapshot one database and commit its changes locally; False (the error logged) if it
        couldn't be read."""
        name = db.name
        try:
            _, created, _ = archive_locally(run.source, db, state, local, self.pm)
        except SourceError as e:
            # Most often a file still being copied: its next write brings us back.
            self.errors.error(f"{name}:source", f"{name}: {describe(e)}")
            return False
        if self.errors.resolved(f"{name}:source") or self.errors.resolved(f"{run.config.name}:source"):
            self.log.info("%s: %s can be read again", name, run.config.path)
        if created:
            rows = created.rows
            self.log.info("%s: version %d archived locally (+%d ~%d -%d rows)", name, created.number,
                          rows.get("added", 0), rows.get("changed", 0), rows.get("deleted", 0))
            for schedule in run.targets.values():
                schedule.behind = True
        return True

    def _record_media(self, run: SourceRun, db: Database, state: SourceState, local: Archive, alone: bool) -> None:
        """Store the new files of the source's media folders (and of the media its kind lists for the
        database) locally, and their listing at the head."""
        name, folders = db.name, run.config.media
        if folders and not alone:  # as `syncd sync --media` refuses it: media belongs to one database
            self.errors.error(f"{name}:media", f"{name}: media folders belong to a source of one database; "
                                               f"{run.config.path} holds several")
            folders = []
        manifest = local.manifest()
        if manifest is None or manifest.head is None:
            return
        try:
            listed = run.source.media(db) if hasattr(run.source, "media") else ()
            if not (folders or listed):
                return
            updated, done = archive_media(local, manifest, state, folders, listed=(run.source.kind, listed), pm=self.pm)
        except SourceError as e:
            run.media_pending = True  # tried again at the next event or rescan
            self.errors.error(f"{name}:media", f"{name}: {describe(e)}")
            return
        if updated is not manifest:
            self.log.info("%s: media archived locally (%d files, %d read, %d bytes stored)", name, done.files,
                          done.files_read, done.bytes_sent)
            for schedule in run.targets.values():
                schedule.behind = True

    def _deliver(self, name: str, state: SourceState, local: Archive, manifest: Manifest,
                 urls: list[str]) -> list[tuple[str, str, TargetReport]]:
        """Deliver one database to the targets at `urls` at once (each fails alone): (url, cursor, report) each."""
        targets = {t.url: t for t in self.config.targets}
        # Where each target's failures are recorded: its cursor once it is open, else its URL.
        cursors = {url: cursor_key(targets[url].target(), name) for url in urls}

        def delivery(url: str, hooks: HeldHooks) -> TargetReport:
            target = targets[url]
            backend = target.open(self.pm)
            try:
                archive = target_archive(backend, name, target.target())
                cursors[url] = archive.cursor_key  # only this worker writes this key
                # Called by this module's name, so a test can stand in for it (tests/test_daemon.py).
                return deliver_to(local, manifest, archive, state, hooks)
            finally:
                backend.close()

        reports = deliver_all([(targets[url].display, partial(delivery, url)) for url in urls], self.pm)
        return [(url, cursors[url], report) for url, report in zip(urls, reports)]

    def _settle(self, run: SourceRun, url: str, outcomes: list[tuple[str, SourceState, str, TargetReport]]) -> None:
        """After a pass's deliveries to one target (one per database): back on schedule, or, if any
        failed, retried later with backoff and each error logged."""
        schedule = run.targets[url]
        failed = [outcome for outcome in outcomes if not outcome[3].ok]
        if not failed:
            for name, _, _, report in outcomes:
                key = f"{name}->{url}"
                recovered = self.errors.resolved(key)
                if report.bytes or recovered:
                    self.log.info("%s: %s has version %d%s", name, report.location, report.version,
                                  " (caught up)" if recovered else "")
                if report.note:
                    self.log.warning("%s: %s: %s", name, report.location, report.note)
            schedule.behind, schedule.failures, schedule.next_try = False, 0, 0.0
            return
        # After a restart the backoff goes on from the persisted count, so a crash
        # loop doesn't turn into a retry storm against a server that is down.
        persisted = max(state.delivery(cursor).get("failures", 0) for _, state, cursor, _ in failed)
        schedule.failures = max(schedule.failures, persisted) + 1
        # The one retry policy (syncd.delivery.retry), from DaemonSettings.retry_min up to retry_max.
        delay = target_backoff(schedule.failures, self.config.daemon.retry_min, self.config.daemon.retry_max)
        schedule.next_try = time.monotonic() + delay
        for name, state, cursor, report in failed:
            state.record_failure(cursor, report.error, schedule.failures,
                                 datetime.now(timezone.utc).isoformat(timespec="seconds"), _wall(schedule.next_try))
            hint = f" ({report.hint})" if report.hint else ""
            self.errors.error(f"{name}->{url}", f"{name}: {report.location} not updated: {report.error}{hint}; "
                                                "the versions it lacks stay queued locally")

    def _summary(self) -> str:
        schedules = [s for run in self.sources.values() for s in run.targets.values()]
        failing, behind = sum(s.failures > 0 for s in schedules), sum(s.behind for s in schedules)
        text = f"watching {len(self.sources)} source(s), {len(self.config.targets)} target(s)"
        if failing:
            return f"{text}; {failing} delivery(ies) failing, retried with backoff"
        return f"{text}; {behind} delivery(ies) pending" if behind else f"{text}; every target up to date"


def run_daemon(config_path: Path | None, pm: pluggy.PluginManager) -> int:
    return Daemon(config_path, pm).run()
