"""Durable writes: the in-kernel copy path and its fallback give the same bytes."""

import io
import os

import pytest

from syncd.fsutil import atomic_write, copy_stream

DATA = os.urandom(3 * 1024 * 1024 + 17)


def test_copy_between_files_starts_where_the_source_stands(tmp_path, monkeypatch):
    sent = []
    real_sendfile = os.sendfile
    monkeypatch.setattr(os, "sendfile", lambda *args: sent.append(real_sendfile(*args)) or sent[-1])
    src_path = tmp_path / "src"
    src_path.write_bytes(DATA)
    with open(src_path, "rb") as src, open(tmp_path / "dst", "wb") as dst:
        src.read(1000)  # a reader part-way through: only the rest is copied
        dst.write(b"head")
        copy_stream(src, dst)
        assert src.tell() == len(DATA)
        dst.write(b"tail")
    assert (tmp_path / "dst").read_bytes() == b"head" + DATA[1000:] + b"tail"
    assert sum(sent) == len(DATA) - 1000  # in the kernel, not through Python


def test_copy_from_a_stream_without_a_file_falls_back(tmp_path):
    with open(tmp_path / "dst", "wb") as dst:
        copy_stream(io.BytesIO(DATA), dst)
    assert (tmp_path / "dst").read_bytes() == DATA


def test_copy_from_a_pipe_falls_back(tmp_path):
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "wb") as writer:
        writer.write(DATA[:60000])  # fits in a pipe's buffer
    with os.fdopen(read_end, "rb") as pipe, open(tmp_path / "dst", "wb") as dst:
        copy_stream(pipe, dst)
    assert (tmp_path / "dst").read_bytes() == DATA[:60000]


@pytest.mark.parametrize("as_file", [True, False])
def test_atomic_write_reports_the_size_written(tmp_path, as_file):
    src_path = tmp_path / "src"
    src_path.write_bytes(DATA)
    target = tmp_path / "out"
    with open(src_path, "rb") as f:
        size = atomic_write(target, f if as_file else f.read())
    assert size == len(DATA) and target.read_bytes() == DATA
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("what", ["fifo", "folder"])
def test_open_untouched_refuses_what_is_not_a_plain_file_without_waiting(tmp_path, what):
    """A FIFO where a phone's file should be would block a pass (and the daemon) forever in open()."""
    import errno

    from syncd.fsutil import NOT_PLAIN, open_untouched

    path = tmp_path / "chat.db"
    os.mkfifo(path) if what == "fifo" else path.mkdir()
    with pytest.raises(OSError) as caught:
        open_untouched(path)  # no writer ever comes: a blocking open would hang here
    assert caught.value.errno == errno.EINVAL and caught.value.strerror == NOT_PLAIN


def test_a_fifo_given_as_the_source_is_refused_in_one_line(tmp_path):
    from conftest import cli

    os.mkfifo(tmp_path / "chat.db")
    (tmp_path / "nas").mkdir()
    result = cli("sync", tmp_path / "chat.db", "--to", tmp_path / "nas", "--state", tmp_path / "state", code=2)
    assert result.output.startswith("error: ") and "Traceback" not in result.output
