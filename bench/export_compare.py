"""Export time, side by side: `syncd export` and WhatsApp-Chat-Exporter on the real WhatsApp iOS fixture.

    python bench/export_compare.py [--rounds 7]

Both run as their command-line tools in subprocesses (interpreter start-up included in
both), each in a fresh folder, taking turns so a shared machine's busy moments fall on
both; the median of each is printed. syncd reads the version from a folder target (so
its time includes restoring the database from the archive); WhatsApp-Chat-Exporter
(`pip install whatsapp-chat-exporter`, MIT, the `bench` extra) reads the database itself.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "whatsapp-ios-ChatStorage.sqlite"
BIN = Path(sys.executable).parent


def timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    exporter = shutil.which("wtsexporter", path=str(BIN)) or shutil.which("wtsexporter")
    if not exporter:
        sys.exit("wtsexporter not found: pip install -e '.[bench]'")
    with tempfile.TemporaryDirectory(prefix="syncd-export-bench-") as tmp:
        root = Path(tmp)
        db = root / "ChatStorage.sqlite"
        shutil.copyfile(FIXTURE, db)
        (root / "target").mkdir()
        subprocess.run([BIN / "syncd", "sync", db, "--to", root / "target", "--state", root / "state"],
                       check=True, stdout=subprocess.DEVNULL)
        runs = {
            "syncd export --format jsonl": lambda d: [BIN / "syncd", "export", "--from", root / "target",
                                                      "--format", "jsonl", d / "out.jsonl"],
            "wtsexporter -j --no-html (json)": lambda d: [exporter, "-i", "-d", db, "-o", d / "out", "-j",
                                                          d / "out.json", "--no-html"],
            "syncd export --format html": lambda d: [BIN / "syncd", "export", "--from", root / "target",
                                                     "--format", "html", d / "html"],
            "wtsexporter (html)": lambda d: [exporter, "-i", "-d", db, "-o", d / "html"],
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        for n in range(args.rounds):
            for name, command in runs.items():
                work = root / f"run-{n}-{len(times[name])}-{abs(hash(name))}"
                work.mkdir()
                times[name].append(timed([str(a) for a in command(work)], work))
                shutil.rmtree(work)
    print(f"WhatsApp iOS fixture (32 messages, 5 chats), median of {args.rounds} runs:")
    for name, values in times.items():
        print(f"  {name:<36} {statistics.median(values) * 1000:7.0f} ms")


if __name__ == "__main__":
    main()
