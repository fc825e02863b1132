"""syncd's media archiving beside `cp -r`, `rsync -a` and `restic backup`, side by side in one run.

    python bench/media_compare.py [--gib 2] [--work DIR] [--restic PATH]
    python bench/media_compare.py --memory 50000,100000,200000   (peak memory by tree size only)

A generated tree (a few large videos, hundreds of photos, thousands of stickers and thumbnails, some
duplicates) is archived by each tool to the same disk: the first pass, a pass after 20 new files,
and a pass with nothing new over 20,000 small files. syncd runs as the real command
(`syncd sync chat.db --media TREE --to TARGET`), so its times include start-up and the database.
restic is a Go binary: Debian's package (`apt-get download restic`, then `dpkg -x`) is enough.
Prints a Markdown table; every figure comes from this run. `--memory N,…` instead measures syncd's
peak memory (GNU time) and time in a first pass and a pass with nothing new over trees of N tiny
files each (a few bytes, to spare the disk): it must not grow with N.

syncd's target and its state dir lie on one filesystem here, so the target's media objects are hard
links of the local store's (see README, Performance, Media): "on disk" counts each file once. The
machine is shared: run it when nothing else does, or read every row as inflated alike (`uptime`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import apsw

from syncd.samples.media import MiB, create_media_tree


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def on_disk(*paths: Path) -> int:
    """Bytes of the files below `paths`, each file (inode) counted once however many names it has."""
    seen = {}
    for path in paths:
        for p in path.rglob("*"):
            if p.is_file():
                info = p.stat()
                seen[(info.st_dev, info.st_ino)] = info.st_size
    return sum(seen.values())


def timed(args: list, **kwargs) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, check=True, **kwargs)
    return time.perf_counter() - started, done


def timed_peak(args: list, **kwargs) -> tuple[float, float, subprocess.CompletedProcess]:
    """`timed`, and the command's own peak memory in MiB, as GNU time reports it: this process's
    rusage of its children would count the moment before exec, when a forked child still maps
    this process's memory (the generated tree's buffers among it)."""
    with tempfile.NamedTemporaryFile("r") as report:
        seconds, done = timed(["/usr/bin/time", "-f", "%M", "-o", report.name, *args], **kwargs)
        return seconds, int(report.read().split()[-1]) / 1024, done


def write_tiny(root: Path, count: int, rnd: random.Random) -> None:
    """`count` files of a few bytes each, 1,000 to a folder (a WhatsApp tree holds 100,000 and more)."""
    for i in range(count):
        folder = root / f"{i // 1000:04d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True)
        (folder / f"IMG-{i:07d}.jpg").write_bytes(rnd.randbytes(rnd.randrange(4, 40)))


def memory_by_size(work: Path, counts: list[int], env: dict) -> None:
    """Peak memory and time of a first pass and a no-change pass, by the number of files."""
    rnd = random.Random(14)
    db = work / "chat.db"
    con = apsw.Connection(str(db))
    con.execute("CREATE TABLE message(id INTEGER PRIMARY KEY, text TEXT); INSERT INTO message VALUES (1, 'hi')")
    con.close()
    print("\n| files | first pass | peak memory | nothing new | peak memory |")
    print("|---:|---:|---:|---:|---:|")
    for count in counts:
        tree, target, state = work / f"tiny-{count}", work / f"t-{count}", work / f"state-{count}"
        write_tiny(tree, count, rnd)
        target.mkdir()
        cmd = [sys.executable, "-m", "syncd", "sync", db, "--media", tree, "--to", target, "--state", state, "--json"]
        subprocess.run(["sync"], check=True)
        first, first_peak, _ = timed_peak(cmd, env=env)
        again, again_peak, _ = min(timed_peak(cmd, env=env) for _ in range(3))
        print(f"| {count:,} | {first:.2f} s | {first_peak:.0f} MiB | {again:.2f} s | {again_peak:.0f} MiB |", flush=True)
        for done in (tree, target, state):
            shutil.rmtree(done)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--restic", default=shutil.which("restic") or "/tmp/restic-pkg/x/usr/bin/restic")
    parser.add_argument("--memory", default=None, help="only peak memory by tree size: file counts, as 50000,100000")
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="syncd-media-bench-", dir=opts.work))
    if opts.memory:
        memory_by_size(work, [int(n) for n in opts.memory.split(",")],
                       {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
        shutil.rmtree(work)
        return
    rnd = random.Random(14)
    tree = work / "Media"
    size = create_media_tree(tree, int(opts.gib * (1 << 30)), rnd)
    files = sum(1 for p in tree.rglob("*") if p.is_file())
    db = work / "chat.db"
    con = apsw.Connection(str(db))
    con.execute("CREATE TABLE message(id INTEGER PRIMARY KEY, text TEXT); INSERT INTO message VALUES (1, 'hi')")
    con.close()
    syncd = [sys.executable, "-m", "syncd", "sync", db, "--media", tree, "--to", work / "t-syncd",
             "--state", work / "state", "--json"]
    (work / "t-syncd").mkdir()
    env = dict(os.environ, RESTIC_PASSWORD="bench-only", RESTIC_REPOSITORY=str(work / "t-restic"))
    # syncd as installed: with its bytecode cached (pip compiles it), not recompiled on every start.
    mine = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    timed([sys.executable, "-m", "syncd", "--version"], env=mine)
    rows = {}

    subprocess.run(["sync"], check=True)  # each tool starts with nothing of the others' left to write
    first, peak, _ = timed_peak(syncd, env=mine)
    rows["syncd"] = [first]
    subprocess.run(["sync"], check=True)
    rows["cp -r"] = [timed(["cp", "-r", tree, work / "t-cp"])[0]]
    # syncd's pass ends with everything on disk (fsync); cp -r ends with it in the page cache.
    rows["cp -r; sync"] = [timed(["sh", "-c", 'cp -r "$0" "$1" && sync', tree, work / "t-cp2"])[0]]
    subprocess.run(["sync"], check=True)
    rows["rsync -a"] = [timed(["rsync", "-a", f"{tree}/", work / "t-rsync"])[0]]
    have_restic = Path(opts.restic).exists()
    if have_restic:
        timed([opts.restic, "init"], env=env)
        rows["restic backup"] = [timed([opts.restic, "backup", "-q", tree], env=env)[0]]

    # 20 new files (photos and voice notes), then each tool again.
    new_bytes = 0
    for i in range(20):
        data = rnd.randbytes(rnd.randrange(50_000, 3 * MiB))
        (tree / "New").mkdir(exist_ok=True)
        (tree / "New" / f"n{i}.jpg").write_bytes(data)
        new_bytes += len(data)
    held = du(work / "t-syncd")
    seconds, done = timed(syncd, env=mine)
    sent = json.loads(done.stdout)["targets"][0]["bytes"]
    rows["syncd"] += [seconds, f"{sent / new_bytes:.3f}× ({(sent - new_bytes) / 1024:.0f} KiB over)",
                      du(work / "t-syncd") - held]
    rows["rsync -a"].append(timed(["rsync", "-a", f"{tree}/", work / "t-rsync"])[0])
    if have_restic:
        held = du(work / "t-restic")
        rows["restic backup"] += [timed([opts.restic, "backup", "-q", tree], env=env)[0], "",
                                  du(work / "t-restic") - held]

    # Nothing new over 20,000 small files.
    many = work / "Many"
    for i in range(20_000):
        path = many / f"{i % 100:02d}" / f"t{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rnd.randbytes(rnd.randrange(500, 4000)))
    (work / "t2").mkdir()
    many_cmd = [sys.executable, "-m", "syncd", "sync", db, "--media", many, "--to", work / "t2",
                "--state", work / "state2", "--json"]
    _, many_peak, _ = timed_peak(many_cmd, env=mine)  # the first pass over 20,000 files
    nothing = min(timed(many_cmd, env=mine)[0] for _ in range(5))
    version = min(timed([sys.executable, "-m", "syncd", "--version"], env=mine)[0] for _ in range(5))
    timed(["rsync", "-a", f"{many}/", work / "t2-rsync"])
    rsync_nothing = min(timed(["rsync", "-a", f"{many}/", work / "t2-rsync"])[0] for _ in range(3))

    print(f"\ntree: {size / (1 << 30):.2f} GiB, {files} files (videos, photos, stickers, 10% of photos twice); "
          f"20 new files: {new_bytes / MiB:.1f} MiB")
    print(f"stored: syncd {du(work / 't-syncd') / (1 << 30):.2f} GiB on the target "
          f"(and {du(work / 'state') / (1 << 30):.2f} GiB in its local store; both together on disk "
          f"{on_disk(work / 't-syncd', work / 'state') / (1 << 30):.2f} GiB), cp -r {du(work / 't-cp') / (1 << 30):.2f} GiB"
          + (f", restic {du(work / 't-restic') / (1 << 30):.2f} GiB" if have_restic else ""))
    print("\n| tool | first pass | MB/s | after 20 new files | shipped vs their bytes | stored by that pass |")
    print("|---|---|---|---|---|---|")
    for tool, r in rows.items():
        r = r + [""] * (4 - len(r))  # first pass, after 20 new files, shipped, stored by that pass
        added = f"{r[3] / MiB:.1f} MiB" if r[3] != "" else ""
        again = f"{r[1]:.2f} s" if r[1] != "" else ""
        print(f"| {tool} | {r[0]:.2f} s | {size / r[0] / 1e6:.0f} | {again} | {r[2]} | {added} |")
    print(f"\nno change over 20,000 files: syncd sync {nothing:.2f} s (syncd --version {version:.2f} s), "
          f"rsync -a {rsync_nothing:.2f} s; syncd's peak memory in the first pass {peak:.0f} MiB "
          f"(over the 20,000 small files: {many_peak:.0f} MiB)")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
