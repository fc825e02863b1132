"""age encryption for targets: keys, streams, and the one place pyrage's errors are mapped.

Recipients (`age1…`, public) are all the sync side needs; identities
(`AGE-SECRET-KEY-1…`, secret) are read only by `restore`, `log` and a deep
`verify`. No message here ever contains a key: a bad recipient is named by its
position, an identity by its file.
"""

from __future__ import annotations

import getpass
import hashlib
import io
import os
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Callable, Sequence

import pyrage
from pyrage import passphrase as age_passphrase
from pyrage import x25519

from .codec import HashingFile
from ..errors import CorruptObject, KeyProblem

# Where `restore` finds the passphrase of a protected identity without a terminal.
PASSPHRASE_FILE_ENV = "SYNCD_PASSPHRASE_FILE"
# Group or other may not read (or write) an identity file.
LOOSE_BITS = stat.S_IRWXG | stat.S_IRWXO
IDENTITY_MODE = 0o600
SECRET_PREFIX = "AGE-SECRET-KEY-1"
RECIPIENT_PREFIX = "age1"
# An age file, binary or armored: an identity file starting so is passphrase-protected.
AGE_HEADERS = (b"age-encryption.org/v1", b"-----BEGIN AGE ENCRYPTED FILE-----")
# Makes folder ids syncd's own: the same source and recipients give the same id.
FOLDER_LABEL = b"syncd folder id v1"
FOLDER_ID_HEX = 32
IDENTITY_MAX_BYTES = 1 << 16


def parse_recipients(texts: Sequence[str]) -> list[x25519.Recipient]:
    """The x25519 recipients named by `texts`, or a KeyProblem naming the bad one by position."""
    recipients = []
    for i, text in enumerate(texts, start=1):
        text = text.strip()
        if text.upper().startswith(SECRET_PREFIX):
            raise KeyProblem(f"recipient #{i} is a secret key, not a recipient",
                             hint="give the public `age1…` line (`syncd keygen` prints it); "
                                  "keep the secret key private")
        try:
            recipients.append(x25519.Recipient.from_str(text))
        except (pyrage.RecipientError, ValueError):
            raise KeyProblem(f"recipient #{i} is not a valid age recipient",
                             hint="an age recipient is one `age1…` line, as printed by `syncd keygen`") from None
    if not recipients:
        raise KeyProblem("no recipient given", hint="add --encrypt-to age1…")
    return recipients


def folder_id(source: str, recipients: Sequence[x25519.Recipient]) -> str:
    """The opaque, stable folder name of `source`'s archive encrypted to `recipients`."""
    digest = hashlib.sha256(FOLDER_LABEL)
    for part in [source, *sorted(str(r) for r in recipients)]:
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()[:FOLDER_ID_HEX]


def keygen(out: Path) -> str:
    """Write a new identity to `out` (mode 0600, never over an existing file); return its recipient."""
    identity = x25519.Identity.generate()
    recipient = str(identity.to_public())
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"# created: {created}\n# public key: {recipient}\n{identity}\n"
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, IDENTITY_MODE)
    except FileExistsError:
        raise KeyProblem(f"{out} already exists", hint="keygen never overwrites a key; choose another path") from None
    except OSError as e:
        raise KeyProblem(f"can't create {out}: {e.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return recipient


def read_passphrase(prompt: str) -> str:
    """The passphrase from the file $SYNCD_PASSPHRASE_FILE names, else from the terminal."""
    path = os.environ.get(PASSPHRASE_FILE_ENV)
    if path:
        _check_private(Path(path), "passphrase file")
        try:
            return Path(path).read_text().rstrip("\r\n")
        except OSError as e:
            raise KeyProblem(f"can't read the passphrase file {path}: {e.strerror}",
                             hint=f"point {PASSPHRASE_FILE_ENV} at a file only you can read") from None
    try:
        with open("/dev/tty"):
            pass
    except OSError:
        raise KeyProblem("the identity is protected by a passphrase and there is no terminal to ask it on",
                         hint=f"set {PASSPHRASE_FILE_ENV} to a file holding the passphrase") from None
    return getpass.getpass(prompt)


def load_identities(path: Path, ask: Callable[[str], str] = read_passphrase) -> list[x25519.Identity]:
    """The identities in an age identity file, decrypting it with a passphrase if it is protected."""
    path = Path(path)
    _check_private(path, "identity file")
    try:
        raw = path.read_bytes()[:IDENTITY_MAX_BYTES]
    except OSError as e:
        raise KeyProblem(f"can't read identity file {path}: {e.strerror}", hint="check the path") from None
    if raw.lstrip().startswith(AGE_HEADERS):
        try:
            raw = age_passphrase.decrypt(raw, ask(f"passphrase for {path}: "))
        except pyrage.DecryptError:
            raise KeyProblem(f"the passphrase for identity file {path} is wrong, or the file is damaged",
                             hint="try again; `age -d FILE` opens it with the same passphrase") from None
    try:
        lines = raw.decode().splitlines()
        keys = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        identities = [x25519.Identity.from_str(key) for key in keys]
    except (UnicodeDecodeError, pyrage.IdentityError, ValueError):
        identities = []
    if not identities:
        raise KeyProblem(f"{path} is not a readable age identity file",
                         hint="give the file `syncd keygen` or `age-keygen` wrote, unchanged")
    return identities


def _check_private(path: Path, what: str) -> None:
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise KeyProblem(f"can't read {what} {path}: {e.strerror}", hint="check the path") from None
    if stat.S_ISDIR(mode):  # its mode says nothing about a key's privacy: don't advise a chmod
        raise KeyProblem(f"{what} {path} is a folder", hint=f"give the path of the {what} itself")
    if mode & LOOSE_BITS:
        raise KeyProblem(f"{what} {path} is open to other users (mode {stat.S_IMODE(mode):04o})",
                         hint=f"chmod 600 {path}")


def encrypt(plain: BinaryIO, sealed: BinaryIO, recipients: Sequence[x25519.Recipient]) -> tuple[str, int, str]:
    """Stream `plain` through age into `sealed`; return (plain sha256, sealed size, sealed sha256)."""
    reader, writer = HashingFile(plain), HashingFile(sealed)
    try:
        pyrage.encrypt_io(reader, writer, list(recipients))
    except pyrage.EncryptError as e:
        raise CorruptObject(f"encryption failed: {e}") from None
    return reader.sha256.hexdigest(), writer.size, writer.sha256.hexdigest()


def decrypt(sealed: BinaryIO, plain: BinaryIO, identities: Sequence[x25519.Identity], where: str) -> str:
    """Stream the age file `sealed` into `plain`; return the plain sha256. `where` names it in errors."""
    writer = HashingFile(plain)
    try:
        pyrage.decrypt_io(sealed, writer, list(identities))
    except pyrage.DecryptError as e:
        if "no matching keys" in str(e).lower():
            raise KeyProblem(f"{where} does not open with the identity given",
                             hint="use the identity whose recipient the target was encrypted to") from None
        raise _damaged(where) from None
    except OSError as e:
        # pyrage reports a payload that fails authentication as an OSError without errno;
        # one with an errno is our own disk failing, and is not the object's fault.
        if e.errno is not None:
            raise
        raise _damaged(where) from None
    return writer.sha256.hexdigest()


def _damaged(where: str) -> CorruptObject:
    return CorruptObject(f"{where} is damaged (it fails age's authentication)",
                         hint="restore from another target, or run `syncd verify`")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def seal_bytes(data: bytes, recipients: Sequence[x25519.Recipient]) -> bytes:
    return pyrage.encrypt(data, list(recipients))


def open_bytes(data: bytes, identities: Sequence[x25519.Identity], where: str) -> bytes:
    out = io.BytesIO()
    decrypt(io.BytesIO(data), out, identities, where)
    return out.getvalue()
