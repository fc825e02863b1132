"""What an encrypted source costs per pass, beside copying the same plain database.

    pytest --benchmark-only tests/benchmarks/test_bench_crypt.py

A WeChat-like database of MESSAGES messages, encrypted as EnMicroMsg.db (SQLCipher 1) and as a
WhatsApp .crypt15; each is decrypted into a work dir the way a pass does when the file changed,
and `databases()` is what a pass costs when it didn't.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import apsw
import pytest

import crypt_builders as cb
from syncd.samples import create_wechat
from syncd.source import SourceOptions
from syncd_sqlcipher import SQLCipherSource
from syncd_whatsapp_crypt import WhatsAppCryptSource

MESSAGES = 100_000


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crypt-bench")
    plain = folder / "plain.db"
    create_wechat(plain, messages=MESSAGES, seed=1)
    db = apsw.Connection(str(plain))
    db.execute("PRAGMA page_size = 1024; VACUUM")
    db.close()
    wechat = cb.encrypt_sqlcipher(plain, folder / "EnMicroMsg.db", f"'{cb.wechat_key()}'", 1)
    rng = random.Random(2)
    root = rng.randbytes(32)
    crypt15 = folder / "msgstore.db.crypt15"
    crypt15.write_bytes(cb.crypt15(plain.read_bytes(), root, rng.randbytes(16)))
    return folder, plain, wechat, crypt15, cb.write_key_file(folder / "wa.key", root.hex())


def test_plain_copy(benchmark, files):
    folder, plain, *_ = files
    benchmark(shutil.copyfile, plain, folder / "copy.db")


def test_sqlcipher_wechat_decrypt(benchmark, files):
    folder, _plain, wechat, *_ = files
    source = SQLCipherSource(wechat, SourceOptions(settings={"imei": cb.WECHAT_IMEI, "uin": cb.WECHAT_UIN}),
                             folder / "work-sqlcipher")
    db, = source.databases()
    benchmark(source.materialise, db)


def test_crypt15_decrypt(benchmark, files):
    folder, _plain, _wechat, crypt15, key_file = files
    source = WhatsAppCryptSource(crypt15, SourceOptions(key_file=key_file), folder / "work-crypt15")
    db, = source.databases()
    benchmark(source.materialise, db)


def test_unchanged_pass_signature(benchmark, files):
    folder, _plain, wechat, *_ = files
    source = SQLCipherSource(wechat, SourceOptions(settings={"imei": cb.WECHAT_IMEI, "uin": cb.WECHAT_UIN}),
                             folder / "work-sig")
    benchmark(source.databases)
