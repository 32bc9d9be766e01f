"""A WeChat export with its picture folder (PyWxDump layout, WeChat's XOR'd .dat files): the
pictures present are stored and read; a missing one leaves the message as [图片]."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bench.image_corpus import caption_photo, jpeg
from core.tables import Image, Post, PostImage
from crawler.chats.importer import import_chat_file
from crawler.image_fetch import decode_wechat_dat, fetch_pending

HEADER = "id,MsgSvrID,type_name,is_sender,talker,room_name,msg,src,CreateTime\n"


def test_wechat_export_pictures_are_read(db_session: Session, tmp_path: Path) -> None:
    pytest.importorskip("rapidocr_onnxruntime")
    from nlp.images import OcrEngine, read_pending

    pic = caption_photo(random.Random(5))
    data = jpeg(pic.image, 85)
    key = 0x5A
    folder = tmp_path / "export" / "FileStorage" / "Image" / "2026-11"
    folder.mkdir(parents=True)
    (folder / "a.dat").write_bytes(bytes(b ^ key for b in data))  # as WeChat for PC keeps it
    assert decode_wechat_dat((folder / "a.dat").read_bytes()) == data
    csv = tmp_path / "export" / "nanping.csv"
    csv.write_text(
        HEADER
        + "1,9001,图片,0,wxid_a,20261122@chatroom,,FileStorage\\Image\\2026-11\\a.dat,2026-11-22 10:02:00\n"
        + "2,9002,图片,0,wxid_b,20261122@chatroom,,FileStorage\\Image\\2026-11\\gone.dat,2026-11-22 10:03:00\n"
        + "3,9003,图片,0,wxid_b,20261122@chatroom,,..\\..\\etc\\passwd.dat,2026-11-22 10:04:00\n",
        encoding="utf-8",
    )
    report = import_chat_file(db_session, csv)
    assert report.counts.new == 3
    refs = db_session.scalars(select(PostImage)).all()
    assert len(refs) == 1 and refs[0].ref.endswith("a.dat")  # only the picture present in the export
    assert fetch_pending(db_session).counts == {"stored": 1}
    assert (folder / "a.dat").exists()  # an export's own files are never touched
    assert read_pending(db_session, OcrEngine()).read == 1
    post = db_session.scalars(select(Post).where(Post.external_id == "9001")).one()
    assert post.raw_text == "[图片]" and post.image_text == pic.text
    assert db_session.scalar(select(Image.ocr_status)) == "done"
    # importing again stores nothing twice
    assert import_chat_file(db_session, csv).counts.new == 0
    assert len(db_session.scalars(select(PostImage)).all()) == 1


def test_purge_deletes_pictures_no_message_refers_to(db_session: Session, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from core.images import images_dir
    from yuqing.cli import app

    pic = caption_photo(random.Random(8))
    (tmp_path / "image").mkdir()
    (tmp_path / "image" / "b.jpg").write_bytes(jpeg(pic.image, 85))
    csv = tmp_path / "g.csv"
    csv.write_text(HEADER + "1,9101,图片,0,wxid_a,2026@chatroom,,b.jpg,2026-11-22 10:02:00\n", encoding="utf-8")
    import_chat_file(db_session, csv)
    assert fetch_pending(db_session).counts == {"stored": 1}
    stored = images_dir() / db_session.scalars(select(Image.path)).one()
    assert stored.is_file()
    db_session.close()
    out = CliRunner().invoke(app, ["purge", "--days", "1"])
    assert out.exit_code == 0, out.output
    assert "不再被引用的图片 1 张" in out.output
    assert db_session.scalar(select(Image.id)) is None and not stored.exists()
