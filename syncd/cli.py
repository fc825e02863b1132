"""The `syncd` command: a thin click skin over the library.

Each command parses options, calls one library function and prints its report.
SyncdError becomes one `error:` line (plus a `hint:` line) and its exit code:
1 for failures, 2 for bad input (a bad source database, a usage error).
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import wraps
from pathlib import Path

import click

from . import __version__
from .errors import SyncdError, UsageError

STATE_HELP = "Local state dir (default: $XDG_STATE_HOME/syncd)."
CONFIG_HELP = "The daemon's config file (default: $XDG_CONFIG_HOME/syncd/config.toml)."


def _fail(error: SyncdError):
    click.echo(f"error: {error}", err=True)
    if error.hint:
        click.echo(f"hint: {error.hint}", err=True)
    sys.exit(error.exit_code)


def reports_errors(command):
    """Turn library errors into one line and an exit code at the edge."""

    @wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SyncdError as e:
            _fail(e)

    return run


def _emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def human_size(n: float) -> str:
    """Bytes in B, KiB, MiB or GiB, as syncd prints them (the benchmark too)."""
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _rows(rows: dict) -> str:
    text = f"+{rows['added']} added, ~{rows['changed']} changed, -{rows['deleted']} deleted"
    return text + (f", {rows['schema']} schema/setting changes" if rows.get("schema") else "")


AT_HELP = ("The version current at this time: 2026-11-26T14:30 or 2026-11-26 in UTC (as `log` prints "
           "times), or with an offset: 2026-11-26T22:30+08:00, 2026-11-26T14:30Z.")


def _moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date and time like 2026-11-26T14:30 (UTC), "
                                 "2026-11-26T22:30+08:00 or 2026-11-26") from None
    # A bare time is UTC, not the machine's zone: every time syncd prints (`log`, `status`,
    # manifests) is UTC, so a time copied from `log` finds that very version.
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


IDENTITY_HELP = ("An age identity file, for an encrypted target (a passphrase-protected one asks on the "
                 "terminal, or reads the file $SYNCD_PASSPHRASE_FILE names).")


KEY_FILE_HELP = ("A file (mode 0600) holding the source's key on one line: a SQLCipher key or passphrase "
                 "(WeChat's 7 characters), or WhatsApp's 64 hex digits.")


def _identities(identity: Path | None) -> list:
    if identity is None:
        return []
    from .archive.crypto import load_identities  # loads age: only for an identity given

    return load_identities(identity)


def _state(state: Path | None) -> Path:
    from .archive.state import default_state_dir

    return state or default_state_dir()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="syncd")
def main():
    """Keep every version of a phone's chat database on storage you own."""


@main.command()
@click.argument("source", type=click.Path(path_type=Path, readable=False))
@click.option("--to", "targets", multiple=True, required=True, metavar="TARGET",
              help="A target: a folder path, file:///path, webdav[s]://user@host/path, "
                   "rclone:REMOTE:path, or any plugin's URL. Repeat for several.")
@click.option("--encrypt-to", "recipients", multiple=True, metavar="AGE1…",
              help="Encrypt every --to target of this command to this age recipient "
                   "(`syncd keygen` prints one). Repeat for a recovery key.")
@click.option("--name", help="Name of the source in archives (default: the file's name; for an iOS "
                             "backup, the device part of each database's name).")
@click.option("--kind", help="Read SOURCE as this kind (default: recognised from its content; "
                             "`syncd plugins` lists the kinds).")
@click.option("--key-file", type=click.Path(path_type=Path), help=KEY_FILE_HELP)
@click.option("--password-file", type=click.Path(path_type=Path),
              help="A file (mode 0600) holding an encrypted iOS backup's password on one line.")
@click.option("--setting", "settings", multiple=True, metavar="KEY=VALUE",
              help="A setting of the source's kind, e.g. compatibility=1 for SQLCipher. Repeatable.")
@click.option("--state", type=click.Path(path_type=Path), help=STATE_HELP)
@click.option("--full", is_flag=True, help="Compare every row, not only those in changed pages.")
@click.option("--media", "media", multiple=True, type=click.Path(path_type=Path), metavar="DIR",
              help="A folder of the chat's media (photos, voice notes, videos) to archive with the database, "
                   "each file stored once by content. Repeat for several.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the report as JSON (a list when SOURCE holds several databases).")
@reports_errors
def sync(source, targets, recipients, name, kind, key_file, password_file, settings, state, full, media, as_json):
    """Archive what changed in SOURCE as a new version and update every target.

    SOURCE is a SQLite file, an iOS backup folder (or the folder of several), a SQLCipher
    file or a WhatsApp .crypt14/.crypt15 file; each database in it is a source of its own.
    """
    from .plugins import plugin_manager
    from .source import SourceOptions
    from .sync import sync_source
    from .delivery.target import Target

    targets = [Target(url, recipients) for url in targets]
    options = SourceOptions(key_file, password_file, name, _settings(settings))
    for folder in media:
        if not folder.is_dir():
            raise UsageError(f"--media {folder} is not a folder", hint="give the folder the app keeps its media in")
    reports = sync_source(source, targets, state_dir=_state(state), pm=plugin_manager(), options=options,
                          kind=kind, full=full, media=media)
    if as_json:
        _emit_json(reports[0].to_dict() if len(reports) == 1 else [r.to_dict() for r in reports])
    else:
        for report in reports:
            _print_sync(report)
    failed = [t for report in reports for t in report.targets if not t.ok]
    if failed:
        code = max(t.exit_code or 1 for t in failed)
        # A refused delivery (exit 2) waits for a changed command, not for the next pass.
        when = "once the command does what the hint says" if code == 2 else "on the next pass"
        queued = (f"version {reports[0].head} stays queued locally and goes" if len(reports) == 1
                  else "the versions they lack stay queued locally and go")
        click.echo(f"error: {len({t.location for t in failed})} target(s) not updated; {queued} out {when}",
                   err=True)
        sys.exit(code)


def _settings(pairs: tuple[str, ...]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--setting")
        settings[key.strip()] = value.strip()
    return settings


def _print_sync(report) -> None:
    v = report.version
    if v is None:
        click.echo(f"{report.source}: no change since version {report.head}")
    else:
        click.echo(f"{report.source}: version {v.number} ({_rows(v.rows)}), {human_size(v.stored_bytes)}")
    if report.detection:
        click.echo(f"  compared: {report.detection.path} ({report.detection.reason})")
    if report.media:
        m = report.media
        click.echo(f"  media: {m.files} files, {m.files_read} read, {human_size(m.bytes_sent)} stored"
                   + (f" ({m.changed_while_read} changed while read: next pass)" if m.changed_while_read else ""))
    for t in report.targets:
        if t.ok:
            sent = f", {human_size(t.bytes)} sent" if t.bytes else ""
            click.echo(f"  {t.location}: has version {t.version}{sent}")
            if t.note:
                click.echo(f"    note: {t.note}")
        else:
            click.echo(f"  {t.location}: FAILED: {t.error}", err=True)
            if t.hint:
                click.echo(f"    hint: {t.hint}", err=True)


@contextmanager
def _archive(target: str, source: str | None, identity: Path | None):
    """The source's archive on TARGET (decrypted with the identity, if given), closed afterwards."""
    from .plugins import open_backend, plugin_manager
    from .readback.restore import open_archive

    identities = _identities(identity)
    backend = open_backend(plugin_manager(), target)
    try:
        yield open_archive(backend, source, identities)
    finally:
        backend.close()


@main.command()
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--from", "target", required=True, metavar="TARGET", help="The target to restore from.")
@click.option("--source", help="Which source, if the target holds several.")
@click.option("--version", "number", type=click.IntRange(min=1), help="Version number (default: latest).")
@click.option("--at", help=AT_HELP)
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--identity", type=click.Path(path_type=Path), help=IDENTITY_HELP)
@click.option("--key-file", type=click.Path(path_type=Path),
              help="Write the database encrypted as its app keeps it (a SQLCipher source: WeChat, Signal), "
                   "with the key in this file (mode 0600), so it can go back into the app.")
@click.option("--media", "media", type=click.Path(path_type=Path), metavar="DIR",
              help="Also write the media as it was at that version into DIR (new or empty), one folder per "
                   "media folder synced.")
@reports_errors
def restore(output, target, source, number, at, force, identity, key_file, media):
    """Rebuild the database as it was at a version, from TARGET alone, into OUTPUT."""
    from .readback.restore import restore as run_restore

    moment = _moment(at)
    write_back = None
    if key_file is not None:
        from .plugins import plugin_manager, write_back_for
        from .source import SourceOptions, read_secret_file

        read_secret_file(key_file, "key file")  # a bad key file is refused before anything is read
        write_back = write_back_for(plugin_manager(), SourceOptions(key_file=key_file))
    with _archive(target, source, identity) as archive:
        version = run_restore(archive, output, number=number, at=moment, force=force, write_back=write_back,
                              media=media)
    current = f", the one current at {moment.isoformat()}" if moment else ""
    click.echo(f"restored {archive.source} version {version.number} (archived {version.time}{current}) to {output}")
    if media is not None:
        click.echo(f"restored its media as it was at version {version.number} to {media}")


@main.command()
@click.argument("out", metavar="OUT")
@click.option("--from", "target", metavar="TARGET", help="The target to read (or --state).")
@click.option("--state", type=click.Path(path_type=Path),
              help="Read the local archive in this state dir instead of a target.")
@click.option("--source", help="Which source (default: every source the target holds).")
@click.option("--version", "number", type=click.IntRange(min=1), help="Version number (default: latest).")
@click.option("--at", help=AT_HELP)
@click.option("--identity", type=click.Path(path_type=Path), help=IDENTITY_HELP)
@click.option("--format", "fmt", type=click.Choice(["jsonl", "html", "txt"]), required=True,
              help="jsonl: one message a line (OUT a file, or - for stdout); html, txt: a folder OUT.")
@click.option("--conversation", "conversations", multiple=True, metavar="ID|NAME",
              help="Only this conversation (its id or its name). Repeat for several.")
@click.option("--participant", "participants", multiple=True, metavar="ID|NAME",
              help="Only messages from this person (id or name; `me` for your own). Repeat for several.")
@click.option("--since", help="Only messages at or after this time (as --at takes it).")
@click.option("--until", help="Only messages before this time (as --at takes it).")
@reports_errors
def export(out, target, state, source, number, at, identity, fmt, conversations, participants, since, until):
    """Write a version's messages as JSON Lines, an offline HTML folder or plain text, to OUT."""
    from .plugins import plugin_manager
    from .reading.export import export as run_export
    from .reading.history import history_annotations
    from .reading.model import Filters

    if (target is None) == (state is None):
        raise click.UsageError("give --from TARGET or --state DIR (one of them)")
    window = [_moment(value) for value in (since, until)]
    filters = Filters(tuple(conversations), tuple(participants),
                      *(int(w.timestamp() * 1000) if w else None for w in window))
    pm = plugin_manager()
    state_dir = _state(state) if state else None
    with _archives(pm, target, state, source, identity) as archives, history_annotations(pm, state_dir) as notes:
        done = run_export(archives, out, fmt, pm=pm, number=number, at=_moment(at), filters=filters,
                          scratch=state_dir, annotations=notes)
    for item in done:
        what = f"{item.messages} messages" if item.app else f"{item.messages} rows (no app profile knows it: its tables)"
        click.echo(f"exported {item.source} version {item.version} ({item.app or 'unknown app'}): {what}"
                   + ("" if out == "-" else f" to {out}"), err=True)


@main.command()
@click.option("--from", "target", metavar="TARGET", help="The target to read (or --state).")
@click.option("--state", type=click.Path(path_type=Path),
              help="Read the local archive in this state dir instead of a target.")
@click.option("--source", help="Which source (default: every source the target holds).")
@click.option("--identity", type=click.Path(path_type=Path), help=IDENTITY_HELP)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anyone who can reach it and has the URL reads your messages.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port (default: any free one).")
@reports_errors
def browse(target, state, source, identity, host, port):
    """Read the archive in your web browser: conversations, any version, search. Prints the URL to open."""
    from .browse.server import serve
    from .browse.shelf import Shelf
    from .plugins import plugin_manager
    from .reading.history import annotations_in, derived_state, history_folder
    from .reading.search import index_search

    if (target is None) == (state is None):
        raise click.UsageError("give --from TARGET or --state DIR (one of them)")
    pm = plugin_manager()
    state_dir = _state(state) if state else None
    with _archives(pm, target, state, source, identity) as archives, derived_state(state_dir) as root, \
            index_search(archives, pm, root) as search, \
            Shelf(archives, pm, annotations_in(pm, history_folder(root)), scratch=state_dir, search=search) as shelf:
        serve(shelf, host, port, lambda url: click.echo(f"syncd browse: open {url}\n(Ctrl+C stops it)"))


@main.command()
@click.argument("query")
@click.option("--from", "target", metavar="TARGET", help="The target to search (or --state alone: the local archive).")
@click.option("--state", type=click.Path(path_type=Path),
              help="State dir: where the index is kept (default: $XDG_STATE_HOME/syncd); alone, the local archive in it "
                   "is searched.")
@click.option("--source", help="Only this source (default: every source).")
@click.option("--identity", type=click.Path(path_type=Path), help=IDENTITY_HELP)
@click.option("--conversation", "conversations", multiple=True, metavar="ID|NAME",
              help="Only this conversation (its id or its name). Repeat for several.")
@click.option("--app", "apps", multiple=True, help="Only this app (wechat, whatsapp, imessage, signal). Repeat for several.")
@click.option("--since", help="Only messages at or after this time (as export's --at takes it).")
@click.option("--until", help="Only messages before this time (as export's --at takes it).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True, help="At most this many hits.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line, with the hit's offsets.")
@reports_errors
def search(query, target, state, source, identity, conversations, apps, since, until, limit, as_json):
    """Find QUERY in every text every message had, in every version (Chinese too); newest first."""
    from .plugins import plugin_manager
    from .reading.search import search_archives

    if target is None and state is None:
        raise click.UsageError("give --from TARGET (and --state DIR for the index), or --state DIR alone")
    window = [_moment(value) for value in (since, until)]
    pm = plugin_manager()
    with _archives(pm, target, state if target is None else None, source, identity) as archives:
        hits = search_archives(archives, query, pm=pm, state=_state(state), conversations=conversations, apps=apps,
                               since=int(window[0].timestamp() * 1000) if window[0] else None,
                               until=int(window[1].timestamp() * 1000) if window[1] else None, limit=limit)
    for hit in hits:
        if as_json:
            click.echo(json.dumps(hit.to_dict(), ensure_ascii=False))
            continue
        who = "me" if hit.from_me else hit.sender_name or hit.sender or "(system)"
        later = f" [{hit.status} in version {hit.status_version}]" if hit.status != "present" else ""
        click.echo(f"{hit.time}  {hit.source} ({hit.app})  {hit.conversation_name}  {who}:{later} {hit.snippet()}")
    if not as_json:
        click.echo(f"{len(hits)} hit{'s' if len(hits) != 1 else ''}", err=True)


@contextmanager
def _archives(pm, target: str | None, state: Path | None, source: str | None, identity: Path | None):
    """The archives to read: of `source`, or of every source, on a target or in a state dir's local archive."""
    from .archive.plain import Archive, check_source_name
    from .archive.state import SourceState, known_sources
    from .plugins import open_backend
    from .readback.restore import open_archive, open_archives

    if state is not None:
        names = [check_source_name(source)] if source else known_sources(state)
        if not names:
            raise SyncdError(f"{state} holds no archived source", hint="check --state, or run `syncd sync` first")
        backends = [open_backend(pm, str(SourceState(state, name).archive_dir)) for name in names]
        try:
            yield [Archive(backend, name) for backend, name in zip(backends, names)]
        finally:
            for backend in backends:
                backend.close()
        return
    identities = _identities(identity)
    backend = open_backend(pm, target)
    try:
        yield [open_archive(backend, source, identities)] if source else open_archives(backend, identities)
    finally:
        backend.close()


@main.command()
@click.option("--from", "target", required=True, metavar="TARGET", help="The target to read.")
@click.option("--source", help="Which source, if the target holds several.")
@click.option("--json", "as_json", is_flag=True, help="Print the versions as JSON.")
@click.option("--identity", type=click.Path(path_type=Path), help=IDENTITY_HELP)
@reports_errors
def log(target, source, as_json, identity):
    """List the versions a target holds, oldest first (of every source, unless --source picks one)."""
    from .archive.claims import mode_warning
    from .plugins import plugin_manager
    from .readback.restore import read_manifest

    with _archives(plugin_manager(), target, None, source, identity) as archives:
        manifests = [read_manifest(archive) for archive in archives]
        warning = mode_warning(archives[0])
    if warning:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        listed = [{"source": m.source, "versions": [v.to_dict() for v in m.versions]} for m in manifests]
        _emit_json(listed[0] if len(listed) == 1 else listed)
        return
    for manifest in manifests:
        if len(manifests) > 1:
            click.echo(f"{manifest.source}:")
        for v in manifest.versions:
            kind = "base" if v.delta is None else ("delta+base" if v.base else "delta")
            click.echo(f"{v.number:>5}  {v.time}  {_rows(v.rows)}  {human_size(v.stored_bytes)} {kind}")


@main.command()
@click.option("--from", "target", metavar="TARGET",
              help="The target to check (default: every target in the daemon's config).")
@click.option("--source", help="Check only this source.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help=CONFIG_HELP)
@click.option("--identity", type=click.Path(path_type=Path),
              help="For an encrypted target: an age identity file, to decrypt and check everything "
                   "(without it, only what shows from outside is checked).")
@click.option("--state", type=click.Path(path_type=Path),
              help="Also compare the target with what this state dir delivered there (catches a rollback).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@reports_errors
def verify(target, source, config_file, identity, state, as_json):
    """Check every object on TARGET (or every configured target) against its manifest and hash chain."""
    from .daemon.config import load_config
    from .plugins import open_backend, plugin_manager

    pm, identities = plugin_manager(), _identities(identity)
    if target is not None:  # an empty --from (an unset variable) is refused, not taken for "every target"
        reports = [_verify_one(open_backend(pm, target), source, identities, state, as_json)]
    else:
        # Every configured target, opened as the daemon opens it (options included), each named;
        # one that can't be read doesn't stop the others.
        config = load_config(config_file)
        reports = []
        for t in config.targets:
            if not as_json:
                click.echo(f"{t.display}:")
            try:
                reports.append(_verify_one(t.open(pm), source, identities, state or config.state_dir, as_json))
            except SyncdError as e:
                click.echo(f"error: {t.display}: {e}", err=True)
                reports.append({"target": t.display, "ok": False, "error": str(e), "sources": []})
    if as_json:
        _emit_json(reports[0] if target is not None else reports)  # one target: the same document as ever
    if not all(report["ok"] for report in reports):
        sys.exit(1)


def _verify_one(backend, source: str | None, identities: list, state: Path | None, as_json: bool) -> dict:
    """Verify one target (closing its backend), print its report as text unless JSON is wanted, and return it."""
    from .readback.verify import verify as run_verify

    try:
        checks = run_verify(backend, [source] if source else None, identities=identities, state_dir=state)
    finally:
        backend.close()
    if not checks:
        raise SyncdError(f"{backend.location} holds no syncd archive", hint="check the target path")
    report = {"target": backend.location, "ok": all(not c.problems for c in checks),
              "sources": [c.to_dict() for c in checks]}
    if not as_json:
        for c in checks:
            status = "ok" if not c.problems else f"{len(c.problems)} problem(s)"
            if c.deep:
                media = f", {c.media_files} media files" if c.media_files else ""
                click.echo(f"{c.source}: {c.versions} versions, {c.objects} objects{media}: {status}")
            else:
                click.echo(f"{c.source}: encrypted, {c.objects} objects checked from outside only "
                           f"(add --identity to check inside): {status}")
            for problem in c.problems:
                click.echo(f"  - {problem}")
            if c.unreferenced:
                click.echo(f"  ({len(c.unreferenced)} unreferenced object(s), left by interrupted uploads: harmless)")
    return report


@main.command()
@click.option("--out", "out", type=click.Path(path_type=Path), required=True,
              help="Where to write the new identity (created with mode 0600; never overwritten).")
@reports_errors
def keygen(out):
    """Create an age identity for encrypted targets and print its public recipient."""
    from .archive.crypto import keygen as run_keygen

    click.echo(run_keygen(out))
    click.echo(f"wrote the identity (the secret key) to {out}: keep it safe, and a copy away from your targets",
               err=True)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@reports_errors
def plugins(as_json):
    """List the loaded plugins: name, version, and the target schemes or source kinds each provides."""
    from .plugins import plugin_info, plugin_manager

    found = plugin_info(plugin_manager())
    if as_json:
        _emit_json([info.to_dict() for info in found])
        return
    for info in found:
        provides = [", ".join(info.schemes)] if info.schemes else []
        provides += [f"source kind {kind!r}: {summary}" for kind, summary in info.kinds]
        click.echo(f"{info.name:<12} {info.version or '-':<10} {'; '.join(provides) or '-'}")


@main.command()
@click.option("--dir", "workdir", type=click.Path(path_type=Path),
              help="Where to put the demo's files (default: a new temporary folder).")
@reports_errors
def demo(workdir):
    """Show syncd at work on a sample WeChat-like database, no phone needed."""
    from .demo import run_demo

    run_demo(workdir, click.echo)


# -- the daemon ------------------------------------------------------------------------


@main.command()
@click.option("--config", "config_file", type=click.Path(path_type=Path), help=CONFIG_HELP)
@reports_errors
def run(config_file):
    """Watch every configured source and keep every target in sync until stopped."""
    from .daemon.run import run_daemon
    from .daemon.logs import setup_logging
    from .plugins import plugin_manager

    setup_logging()
    sys.exit(run_daemon(config_file, plugin_manager()))


@main.command()
@click.option("--config", "config_file", type=click.Path(path_type=Path), help=CONFIG_HELP)
@click.option("--state", type=click.Path(path_type=Path),
              help="Read this state dir (what `syncd sync --state DIR` used); without --config, every source "
                   "it holds and every target it delivered to.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@reports_errors
def status(config_file, state, as_json):
    """Show each source's versions and last error, and what each target has, lacks and last failed on.

    Reads the daemon's config if there is one; otherwise (or with --state alone) the state dir."""
    from .daemon.config import default_config_path, load_config
    from .plugins import plugin_manager
    from .daemon.status import status as read_status

    with_config = config_file or (state is None and default_config_path().exists())
    config = load_config(config_file) if with_config else None
    report = read_status(config, plugin_manager(), state_dir=state or (None if config else _state(None)))
    if as_json:
        _emit_json(report)
        return
    if not report["sources"]:
        click.echo(f"{report['state_dir']}: no source archived yet")
    for s in report["sources"]:
        if s["version"] is None:
            click.echo(f"{s['name']}: nothing archived yet" + (f" ({s['path']})" if s["path"] else ""))
        else:
            click.echo(f"{s['name']}: version {s['version']} at {s['time']} ({_rows(s['rows'])}), "
                       f"{s['versions']} version(s) kept")
        if s["error"]:
            click.echo(f"  last error ({s['error']['failed_at']}): {s['error']['error']}")
        for t in s["targets"]:
            has = f"has version {t['version']}" if t["version"] is not None else "has nothing yet"
            pending = (f", {t['pending_versions']} version(s) pending ({human_size(t['pending_bytes'])})"
                       if t["pending_versions"] else ", up to date" if t["version"] is not None else "")
            click.echo(f"  {t['location']}: {has}{pending}")
            if t["error"]:
                retry = f"; next retry {t['next_retry']}" if t["next_retry"] else ""
                click.echo(f"    last error: {t['error']}{retry}")


@main.command()
@click.option("--home", type=click.Path(path_type=Path, file_okay=False),
              help="Look under this home folder instead of yours (another user's, a mounted disk).")
@click.option("--add", "add", is_flag=True, help="Append the readable ones to the config file as [[source]] tables.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help=CONFIG_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print what was found as JSON.")
@reports_errors
def sources(home, add, config_file, as_json):
    """List the chat databases and iOS backups in the usual places, and whether syncd can read them."""
    from .discover import discover
    from .plugins import plugin_manager

    found = discover(plugin_manager(), home)
    if as_json:
        _emit_json([f.to_dict() for f in found])
    elif not found:
        click.echo("no chat database or iOS backup in the usual places; give `syncd sync` the path instead")
    for f in found if not as_json else []:
        state = "readable" if f.readable else f"NOT READABLE: {f.problem}"
        click.echo(f"{f.name:<18} {f.kind:<12} {f.path}  ({state})")
        if f.hint:
            click.echo(f"    hint: {f.hint}")
    if add:
        _add_sources(config_file, [f for f in found if f.readable])


def _add_sources(config_file: Path | None, found: list) -> None:
    """Append what isn't in the config file yet (by path), named so no name is used twice."""
    from .daemon.config import append_sources, default_config_path, named_sources

    path = Path(config_file or default_config_path()).expanduser()
    known = named_sources(path)
    names, paths = set(known), {where.absolute() for where in known.values()}
    new = []
    for f in found:
        if f.path.absolute() in paths:
            continue
        name = f.name
        while name in names:
            name += "-2"
        names.add(name)
        new.append((name, f.path, f.kind))
    if new:
        append_sources(path, new)
    click.echo(f"{path}: {len(new)} source(s) added" + ("; add a [[target]] before `syncd run`"
                                                        if not path.exists() or "[[target]]" not in path.read_text()
                                                        else ""))


@main.group()
def config():
    """Check the daemon's config file, or print a sample to start from."""


@config.command("check")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help=CONFIG_HELP)
@reports_errors
def config_check(config_file):
    """Read the config file, open every target as the daemon will (no network), and name the first
    field that can't be used."""
    from .daemon.config import check_sources, check_targets, load_config
    from .plugins import plugin_manager

    cfg = load_config(config_file)
    pm = plugin_manager()
    check_sources(cfg, pm)
    check_targets(cfg, pm)
    click.echo(f"{cfg.path}: ok: {len(cfg.sources)} source(s), {len(cfg.targets)} target(s), "
               f"state in {cfg.state_dir}")
    for s in cfg.sources:
        click.echo(f"  source {s.name}: {s.path}")
    for t in cfg.targets:
        click.echo(f"  target {t.display}")


@config.command("sample")
def config_sample():
    """Print a sample config file and where it goes."""
    from .daemon.config import SAMPLE, default_config_path

    click.echo(f"# save as {default_config_path()}\n{SAMPLE}", nl=False)


@main.group()
def service():
    """Run syncd as a systemd user service."""


@service.command("install")
@click.option("--unit-dir", type=click.Path(path_type=Path),
              help="Where to write the units (default: ~/.config/systemd/user).")
@click.option("--config", "config_file", type=click.Path(path_type=Path),
              help="A config file for the units to use (default: the usual place).")
@reports_errors
def service_install(unit_dir, config_file):
    """Write the syncd units for this installation and print the systemctl commands to start them."""
    from .daemon.service import default_unit_dir, install_units, installed_executable, next_steps

    unit_dir = unit_dir or default_unit_dir()
    config_path = config_file.expanduser().absolute() if config_file else None
    for path in install_units(unit_dir, installed_executable(), config_path):
        click.echo(f"wrote {path}")
    click.echo("\nNow run:\n" + next_steps(unit_dir), nl=False)


if __name__ == "__main__":
    main()
