"""AES-256-CBC files of an encrypted backup, decrypted into the private work folder.

Each file (and Manifest.db) is AES-256-CBC with a zero IV and PKCS#7 padding
under its own key. The backup records each file's plain size, so the cipher
text's length is checked before a byte is decrypted: a file that is not
exactly its record's size rounded up to the next block is refused, as is
padding that does not check out. Output goes to a temporary name beside the
destination and is renamed into place only when whole.
"""

from __future__ import annotations

import os
from pathlib import Path


from syncd.errors import SourceError
from syncd.fsutil import private_opener

from .reading import open_in_backup

BLOCK = 16
CHUNK = 1 << 20  # a multiple of BLOCK
DAMAGED = "the backup may be damaged; make a new one"


def padded_size(size: int) -> int:
    """The cipher text's length for `size` plain bytes: PKCS#7 always adds 1–16 bytes."""
    return (size // BLOCK + 1) * BLOCK


def decrypt_file(source: Path, key: bytes, size: int | None, out: Path, what: str,
                 limit: int = 1 << 40) -> int:
    """Decrypt `source` (recorded as `size` plain bytes; None where the backup keeps no record,
    as for Manifest.db) into `out`, whole or not at all; its plain size."""
    fd = open_in_backup(source)
    tmp = out.with_name(f".{out.name}.part")
    try:
        length = os.fstat(fd).st_size
        if size is None and (not length or length % BLOCK or length > limit):
            raise SourceError(f"{what} is not a whole number of cipher blocks (or is too large)", hint=DAMAGED)
        if size is not None and length != padded_size(size):
            raise SourceError(f"{what} is {length:,} bytes in the backup, not the {padded_size(size):,} "
                              f"its record of {size:,} bytes needs", hint=DAMAGED)
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # on use: see keybag

        decryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(BLOCK))).decryptor()
        with open(tmp, "wb", opener=private_opener) as dst:
            left = length
            while left:
                chunk = os.read(fd, min(CHUNK, left))
                if not chunk:
                    raise SourceError(f"{what} got shorter while it was read",
                                      hint="run it again when the backup is done")
                left -= len(chunk)
                dst.write(decryptor.update(chunk))
        size = _strip_padding(tmp, length, size, what)
        os.replace(tmp, out)
        return size
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def _strip_padding(path: Path, written: int, size: int | None, what: str) -> int:
    """Check the PKCS#7 padding at the end of `path` and cut it off (leaving `size` bytes, when known)."""
    with open(path, "r+b") as f:
        f.seek(written - BLOCK)
        last = f.read(BLOCK)
        pad = last[-1] if last else 0
        if not 1 <= pad <= BLOCK or last[-pad:] != bytes([pad]) * pad or size not in (None, written - pad):
            raise SourceError(f"{what} does not decrypt (bad padding)", hint=DAMAGED)
        f.truncate(written - pad)
    return written - pad
