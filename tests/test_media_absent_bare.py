"""A bare media reference (WeChat's `imgPath`: a file name, or a name without its folder and
extension) is judged too: absent when no listed file answers it, linked when one does, neither
when several do. Through the real CLI on a generated WeChat database and an Android-like tree."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import apsw

from syncd.media.match import Absent, MediaIndex
from syncd.samples import create_wechat
from syncd.samples.wechat import WECHAT_IMAGE, WECHAT_VIDEO, WECHAT_VOICE
from test_media_absent import listed, sync


def android_path(kind: int, img_path: str) -> str:
    """Where WeChat Android keeps a message's media (as wechat-dump's wechat/res.py reads it)."""
    if kind == WECHAT_VOICE:
        md5 = hashlib.md5(img_path.encode()).hexdigest()
        return f"voice2/{md5[:2]}/{md5[2:4]}/msg_{img_path}.amr"
    name = img_path.removeprefix("THUMBNAIL_DIRPATH://")
    return f"image2/{name[3:5]}/{name[5:7]}/{name}" if kind == WECHAT_IMAGE else f"video/{name}.mp4"


def test_bare_references_missing_from_the_tree_are_listed_absent(tmp_path):
    db = tmp_path / "EnMicroMsg.db"
    create_wechat(db, messages=400, seed=5)
    con = apsw.Connection(str(db))
    refs = {p: k for k, p in con.execute("SELECT type, imgPath FROM message WHERE imgPath IS NOT NULL")}
    con.close()
    kinds = {k: sorted(p for p, kind in refs.items() if kind == k) for k in (WECHAT_IMAGE, WECHAT_VOICE, WECHAT_VIDEO)}
    assert all(len(found) >= 2 for found in kinds.values()), kinds
    missing = {found[0] for found in kinds.values()}  # one of each kind never downloaded
    media = tmp_path / "MicroMsg"
    for ref, kind in refs.items():
        if ref not in missing:
            path = media / android_path(kind, ref)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(random.Random(ref).randbytes(200))
    (tmp_path / "nas").mkdir()
    first = sync(tmp_path, db, media)
    assert listed(tmp_path, first["listing"])[1] == missing and first["absent"] == len(missing)

    voice = kinds[WECHAT_VOICE][0]  # it arrives
    path = media / android_path(WECHAT_VOICE, voice)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"silk")
    later = sync(tmp_path, db, media)
    assert listed(tmp_path, later["listing"])[1] == missing - {voice}


def test_a_bare_name_links_the_one_file_it_names_and_no_file_when_several_answer():
    paths = ["video/abc.mp4", "image2/th/ab/th_abc", "image2/x/y/th_dup", "image2/z/w/th_dup", "voice2/1/2/msg_v1.amr"]
    index = MediaIndex(paths)
    assert index.find("abc") == "video/abc.mp4"
    assert index.find("THUMBNAIL_DIRPATH://th_abc") == "image2/th/ab/th_abc"
    assert index.find("v1") == "voice2/1/2/msg_v1.amr"
    assert index.find("th_dup") is None  # two files answer it: which one is not for syncd to guess
    absent = Absent(["abc", "th_dup", "v1", "gone", "THUMBNAIL_DIRPATH://th_gone", "a/b/c.jpg"])
    for path in paths:
        absent.seen(path)
    assert absent.references() == ["THUMBNAIL_DIRPATH://th_gone", "a/b/c.jpg", "gone"]
