"""A generated media folder, shaped like a chat app's: a few large videos, photos, and many small
stickers and thumbnails, with some photos forwarded (the same bytes under another name)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

MiB = 1 << 20
# (path pattern, share of the bytes, typical size): sizes vary from half to one and a half times this.
KINDS = [("Video/v{}.mp4", 0.45, 40 * MiB), ("Photos/p{}.jpg", 0.45, 2 * MiB), ("Stickers/s{}.webp", 0.10, 25_000)]
FORWARDED_EVERY = 10  # one photo in this many is also under Forwarded/


def create_media_tree(root: Path, total: int, rnd: random.Random) -> int:
    """About `total` bytes of media under `root` (new); the bytes written, forwarded copies included."""
    written = 0
    for pattern, share, size in KINDS:
        for i in range(max(1, int(total * share / size))):
            path = root / pattern.format(i)
            path.parent.mkdir(parents=True, exist_ok=True)
            data = rnd.randbytes(rnd.randrange(size // 2, size * 3 // 2))
            path.write_bytes(data)
            written += len(data)
    (root / "Forwarded").mkdir()
    for photo in sorted((root / "Photos").iterdir())[::FORWARDED_EVERY]:
        shutil.copyfile(photo, root / "Forwarded" / photo.name)
        written += photo.stat().st_size
    return written
