"""The daemon's config file: which databases to watch and where to send them.

    # ~/.config/syncd/config.toml
    state_dir = "~/.local/state/syncd"      # optional

    [[source]]
    name = "wechat"                         # optional: defaults to the file's name
    path = "~/Backups/EnMicroMsg.db"        # a database, an iOS backup folder, a .crypt15…
    kind = "sqlcipher"                      # optional: recognised from the content
    key_file = "~/.config/syncd/wechat.key" # optional: one line, mode 0600
    password_file = "…"                     # optional: an encrypted iOS backup's password
    settings = { compatibility = "1" }      # optional: the source kind's own settings
    media = ["~/Backups/WeChat/Media"]      # optional: folders of the chat's media, archived with it

    [[target]]
    url = "/mnt/nas/chat-archive"
    options = {}                            # optional, handed to the storage plugin

    [daemon]                                # optional tuning; these are the defaults
    quiet = 2.0

Every problem is reported as one line naming the field, e.g. `source[1].path: missing`
(tables are counted from 1, as a person reading the file would).
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

import pluggy

from ..archive.plain import SOURCE_NAME
from ..backend import Backend
from ..errors import KeyProblem, SyncdError, UsageError
from ..fsutil import atomic_write
from ..plugins import open_backend, source_kinds
from ..redact import redact_url
from ..archive.state import default_state_dir
from ..source import SourceOptions, read_secret_file, source_name_for
from ..delivery.target import Target


class ConfigError(UsageError):
    """The config file is missing, not TOML, or has a field that can't be used."""


@dataclass(frozen=True)
class DaemonSettings:
    """How the daemon paces itself; every number is in seconds."""

    # Wait this long after the last file event, with the file's size and mtime
    # unchanged, before snapshotting: sync tools write in several bursts.
    quiet: float = 2.0
    # Compare every source with what was last archived this often, since inotify
    # drops events silently when its queue overflows; each target is also listed
    # once then, and what it lost is sent again.
    rescan: float = 300.0
    # How often a polled folder (a network or FUSE mount) is listed.
    poll: float = 5.0
    # A failing target is retried after retry_min, doubling up to retry_max.
    retry_min: float = 5.0
    retry_max: float = 600.0
    # Log the same error again at most this often.
    error_log_interval: float = 600.0


@dataclass(frozen=True)
class SourceConfig:
    name: str
    path: Path
    kind: str | None = None
    options: SourceOptions = SourceOptions()
    media: tuple[Path, ...] = ()  # folders of the chat's photos, voice notes and videos


@dataclass(frozen=True)
class TargetConfig:
    url: str
    options: dict = field(default_factory=dict, repr=False)  # may hold a password
    encrypt_to: tuple[str, ...] = ()  # age recipients: the target gets only ciphertext

    def target(self) -> Target:
        return Target(self.url, self.encrypt_to)

    def open(self, pm: pluggy.PluginManager) -> Backend:
        """The backend of this target, its options handed to its storage plugin (no network I/O)."""
        return open_backend(pm, self.url, options=self.options)

    @property
    def display(self) -> str:
        """The URL without its secrets, for logs and status (see syncd.redact)."""
        return redact_url(self.url)


@dataclass(frozen=True)
class Config:
    path: Path
    sources: list[SourceConfig]
    targets: list[TargetConfig]
    state_dir: Path
    daemon: DaemonSettings = DaemonSettings()


SAMPLE = """\
# syncd daemon config. Check it with: syncd config check
# state_dir = "~/.local/state/syncd"   # where versions are persisted before upload

[[source]]
name = "wechat"                        # how archives name this database
path = "~/Backups/phone/EnMicroMsg.db" # where the phone's database lands

[[target]]
url = "/mnt/nas/chat-archive"          # a folder, or any URL a storage plugin handles

[[target]]
url = "/media/usb/chat-archive"
# encrypt_to = ["age1…"]               # only ciphertext reaches this target (`syncd keygen`)
"""


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "syncd" / "config.toml"


def load_config(path: Path | None = None) -> Config:
    """Read and check the config file; ConfigError names the first bad field."""
    path = Path(path or default_config_path()).expanduser().absolute()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"no config file at {path}",
                          hint=f"create {path} like this (`syncd config sample` prints it again):\n{SAMPLE}") from None
    except OSError as e:
        raise ConfigError(f"{path} can't be read: {e.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    return parse_config(data, path)


def parse_config(data: dict, path: Path) -> Config:
    def bad(where: str, problem: str) -> ConfigError:
        return ConfigError(f"{path}: {where}: {problem}")

    unknown = set(data) - {"source", "target", "state_dir", "daemon"}
    if unknown:
        raise bad(sorted(unknown)[0], "unknown setting (expected source, target, state_dir or daemon)")
    sources = [_source(table, f"source[{i}]", bad) for i, table in enumerate(_tables(data, "source", bad), 1)]
    if not sources:
        raise bad("source", "missing: add a [[source]] table with the database's path")
    names = [s.name for s in sources]
    for i, name in enumerate(names, 1):
        if names.index(name) != i - 1:
            raise bad(f"source[{i}].name", f"{name!r} is used by source[{names.index(name) + 1}] too")
    targets = [_target(table, f"target[{i}]", bad) for i, table in enumerate(_tables(data, "target", bad), 1)]
    if not targets:
        raise bad("target", "missing: add a [[target]] table with a url")
    state_dir = data.get("state_dir", default_state_dir())
    if not isinstance(state_dir, (str, Path)) or not str(state_dir):
        raise bad("state_dir", "must be a path")
    return Config(path, sources, targets, _path(str(state_dir), "state_dir", bad), _daemon(data.get("daemon", {}), bad))


def check_targets(config: Config, pm: pluggy.PluginManager) -> None:
    """Open every target as the daemon will (without touching the network); ConfigError names the first
    that can't be used."""
    for i, target in enumerate(config.targets, 1):
        try:
            target.open(pm).close()
        except SyncdError as e:
            raise ConfigError(f"{config.path}: target[{i}].url: {e}", hint=e.hint) from None


def check_sources(config: Config, pm: pluggy.PluginManager) -> None:
    """Check what each source names (its kind is installed, its key files are private and hold a
    line) without reading any source; ConfigError names the first field that can't be used."""
    kinds = {cls.kind for cls in source_kinds(pm)}
    for i, source in enumerate(config.sources, 1):
        if source.kind is not None and source.kind not in kinds:
            raise ConfigError(f"{config.path}: source[{i}].kind: no source kind is named {source.kind!r}",
                              hint=f"kinds installed: {', '.join(sorted(kinds))}")
        for key, path in (("key_file", source.options.key_file), ("password_file", source.options.password_file)):
            if path is not None:
                try:
                    read_secret_file(path, key.replace("_", " "))
                except SyncdError as e:
                    raise ConfigError(f"{config.path}: source[{i}].{key}: {e}", hint=e.hint) from None


def named_sources(path: Path) -> dict[str, Path]:
    """The [[source]] tables a config file has so far (name → path), for adding to it: unlike
    `load_config`, a file still without sources or targets is fine here."""
    path = Path(path).expanduser()
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path} can't be read as TOML: {e}") from None
    def bad(where: str, problem: str) -> ConfigError:
        return ConfigError(f"{path}: {where}: {problem}")

    sources = [_source(t, f"source[{i}]", bad) for i, t in enumerate(_tables(data, "source", bad), 1)]
    return {source.name: source.path for source in sources}


def append_sources(path: Path, sources: list[tuple[str, Path, str]]) -> None:
    """Add a [[source]] table (name, path, kind) for each of `sources` at the end of the config file
    at `path` (made if missing), keeping what it holds; the result must still load."""
    path = Path(path).expanduser()
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    tables = "".join(f'\n[[source]]\nname = {_toml(name)}\npath = {_toml(str(where))}\nkind = {_toml(kind)}\n'
                     for name, where, kind in sources)
    updated = (text.rstrip("\n") + "\n" if text.strip() else "") + tables
    tomllib.loads(updated)  # a name or path that doesn't survive quoting must not reach the file
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, updated.encode("utf-8"))


def _toml(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, for what paths and names hold)."""
    import json

    return json.dumps(text, ensure_ascii=False)


def _tables(data: dict, key: str, bad) -> list[dict]:
    tables = data.get(key, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise bad(key, f"must be [[{key}]] tables")
    return tables


def _string(table: dict, key: str, where: str, bad) -> str:
    if key not in table:
        raise bad(f"{where}.{key}", "missing")
    value = table[key]
    if not isinstance(value, str) or not value.strip():
        raise bad(f"{where}.{key}", "must be a non-empty string")
    return value


def _path(value: str, where: str, bad) -> Path:
    if "\0" in value:
        raise bad(where, "must not contain a NUL character")
    try:
        return Path(value).expanduser()
    except RuntimeError:  # ~name of a user this machine doesn't have
        raise bad(where, f"{value.split('/')[0]} is no user's home folder here") from None


def _only(table: dict, allowed: set[str], where: str, bad) -> None:
    for key in sorted(set(table) - allowed):
        raise bad(f"{where}.{key}", f"unknown setting (expected {', '.join(sorted(allowed))})")


def _source(table: dict, where: str, bad) -> SourceConfig:
    _only(table, {"name", "path", "kind", "key_file", "password_file", "settings", "media"}, where, bad)
    path = _path(_string(table, "path", where, bad), f"{where}.path", bad)
    given = _string(table, "name", where, bad) if "name" in table else None
    name = given or source_name_for(path)
    if not SOURCE_NAME.match(name):
        raise bad(f"{where}.name", f"{name!r} can't name a source: use letters, digits, '.', '_' and '-'")
    files = {key: _path(_string(table, key, where, bad), f"{where}.{key}", bad)
             for key in ("key_file", "password_file") if key in table}
    settings = table.get("settings", {})
    if not isinstance(settings, dict) or not all(isinstance(v, (str, int)) for v in settings.values()):
        raise bad(f"{where}.settings", 'must be a table of strings, e.g. settings = { compatibility = "1" }')
    options = SourceOptions(files.get("key_file"), files.get("password_file"), given,
                            {k: str(v) for k, v in settings.items()})
    kind = _string(table, "kind", where, bad) if "kind" in table else None
    media = table.get("media", [])
    if not isinstance(media, list) or not all(isinstance(m, str) and m for m in media):
        raise bad(f"{where}.media", 'must be a list of folders, e.g. media = ["~/Library/Messages/Attachments"]')
    folders = tuple(_path(m, f"{where}.media[{i}]", bad) for i, m in enumerate(media, start=1))
    return SourceConfig(name, path, kind, options, folders)


def _target(table: dict, where: str, bad) -> TargetConfig:
    _only(table, {"url", "options", "encrypt_to"}, where, bad)
    url = _string(table, "url", where, bad)
    options = table.get("options", {})
    if not isinstance(options, dict):
        raise bad(f"{where}.options", "must be a table, e.g. options = { user = \"me\" }")
    encrypt_to = table.get("encrypt_to", [])
    if not isinstance(encrypt_to, list) or not all(isinstance(r, str) for r in encrypt_to):
        raise bad(f"{where}.encrypt_to", 'must be a list of age recipients, e.g. encrypt_to = ["age1…"]')
    try:
        Target(url, tuple(encrypt_to))
    except KeyProblem as e:
        raise bad(f"{where}.encrypt_to", str(e)) from None
    return TargetConfig(url, dict(options), tuple(encrypt_to))


def _daemon(table, bad) -> DaemonSettings:
    if not isinstance(table, dict):
        raise bad("daemon", "must be a [daemon] table")
    known = {f.name for f in fields(DaemonSettings)}
    _only(table, known, "daemon", bad)
    for key, value in table.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise bad(f"daemon.{key}", "must be a positive number of seconds")
    settings = DaemonSettings(**{k: float(v) for k, v in table.items()})
    if settings.retry_max < settings.retry_min:
        raise bad("daemon.retry_max", "must be at least daemon.retry_min")
    return settings
