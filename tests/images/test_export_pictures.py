"""Chat exports with their picture folders: PyWxDump (WeChat's XOR'd .dat files), MemoTrace (its
CSV names a picture by the md5 in WeChat's XML) and QQ's text export (``{GUID}.jpg`` /
``[图片:a.jpg]``). The pictures present are stored and read; a missing one is recorded as missing
(the message keeps [图片]) and is read once the file is there and the export imported again."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sqlalchemy import func, select
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
    refs = db_session.scalars(select(PostImage).order_by(PostImage.id)).all()
    assert len(refs) == 3 and refs[0].ref.endswith("a.dat")
    export = (tmp_path / "export").resolve()
    assert all(Path(r.ref.removeprefix("file://")).parent.is_relative_to(export) for r in refs)  # never outside
    assert fetch_pending(db_session).counts == {"stored": 1, "missing": 2}
    assert [r.status for r in db_session.scalars(select(PostImage).order_by(PostImage.id))] == [
        "stored", "missing", "missing"]
    assert (folder / "a.dat").exists()  # an export's own files are never touched
    assert read_pending(db_session, OcrEngine()).read == 1
    post = db_session.scalars(select(Post).where(Post.external_id == "9001")).one()
    assert post.raw_text == "[图片]" and post.image_text == pic.text
    assert db_session.scalar(select(Image.ocr_status)) == "done"
    # importing again stores nothing twice
    assert import_chat_file(db_session, csv).counts.new == 0
    assert len(db_session.scalars(select(PostImage)).all()) == 3


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


MEMOTRACE = ["localId", "TalkerId", "Type", "SubType", "IsSender", "CreateTime", "Status", "StrContent", "StrTime",
             "Remark", "NickName", "Sender"]


def _img_xml(md5: str, length: int = 52311) -> str:
    """WeChat's XML of a picture message, as MemoTrace's CSV keeps it in StrContent (several lines)."""
    return (f'<?xml version="1.0"?>\n<msg>\n\t<img aeskey="bc37a58c32cb203ee9ac587b068e5853" encryver="1" '
            f'cdnthumbaeskey="bc37a58c32cb203ee9ac587b068e5853" cdnthumburl="3057020100044b3049" '
            f'cdnthumblength="3097" cdnthumbheight="120" cdnthumbwidth="68" cdnmidheight="0" cdnmidwidth="0" '
            f'cdnhdheight="0" cdnhdwidth="0" cdnmidimgurl="3057020100044b3049" length="{length}" md5="{md5}" '
            f'originsourcemd5="1dfdfa24922270ea1cb5daba103f45ca" />\n\t<platform_signature></platform_signature>\n'
            f'\t<imgdatahash></imgdatahash>\n</msg>\n')


def test_memotrace_export_pictures_by_md5(db_session: Session, tmp_path: Path) -> None:
    """MemoTrace's layout: ``data/聊天记录/<群名>/<群名>_utf8.csv`` (UTF-8 with a BOM) and, from its
    picture export, a flat ``image/`` folder beside it whose files are named after WeChat's .dat
    files (``image/<dat name>.jpg``): by the XML's md5 or not, the picture is found by its content."""
    import csv
    import hashlib

    export = tmp_path / "data" / "聊天记录" / "东湾村村民群"
    (export / "image").mkdir(parents=True)
    named = jpeg(caption_photo(random.Random(9)).image, 85)
    other = jpeg(caption_photo(random.Random(11)).image, 85)
    here, there, gone = hashlib.md5(named).hexdigest(), hashlib.md5(other).hexdigest(), "ab" * 16
    (export / "image" / f"{here}.jpg").write_bytes(named)
    (export / "image" / "6b02292eecea118f06be3a5b20075afc.jpg").write_bytes(other)  # the .dat's name
    path = export / "东湾村村民群_utf8.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        out = csv.writer(f)
        out.writerow(MEMOTRACE)
        out.writerow([1, 5, 1, 0, 0, 1795831200, 2, "大家看这个通知", "2026-11-28 10:00:00", "", "王五", "wxid_w"])
        out.writerow([2, 5, 3, 0, 0, 1795831260, 2, _img_xml(here), "2026-11-28 10:01:00", "", "王五", "wxid_w"])
        out.writerow([3, 5, 3, 0, 0, 1795831290, 2, _img_xml(there), "2026-11-28 10:01:30", "", "赵六", "wxid_z"])
        out.writerow([4, 5, 3, 0, 0, 1795831320, 2, _img_xml(gone), "2026-11-28 10:02:00", "", "李四", "wxid_l"])
    report = import_chat_file(db_session, path)
    assert report.counts.new == 4 and report.issue_count == 0
    posts = {p.raw_text for p in db_session.scalars(select(Post))}
    assert posts == {"大家看这个通知", "[图片]"}  # the XML is not the message's text
    assert fetch_pending(db_session).counts == {"stored": 2, "missing": 1}
    missing = db_session.scalars(select(PostImage).where(PostImage.status == "missing")).one()
    assert gone in missing.ref and missing.error and "没有这张图片" in missing.error

    # The missing picture is copied in later and the export imported again: it is read then.
    (export / "image" / f"{gone}.jpg").write_bytes(jpeg(caption_photo(random.Random(10)).image, 85))
    assert import_chat_file(db_session, path).counts.new == 0
    assert fetch_pending(db_session).counts == {"stored": 1}
    assert db_session.scalar(select(func.count()).select_from(Image)) == 3


QQ_TXT = """消息记录（此消息记录为文本格式，不支持重新导入）

================================================================
消息分组:我的QQ群
================================================================
消息对象:南坪村村民群
================================================================

2026-11-28 08:01:02 村民甲(10001)
看看这个通知 {1A2B3C4D-0000-1111-2222-333344445555}.jpg

2026-11-28 08:02:13 村民乙(10002)
[图片:IMG_2026.png]

2026-11-28 08:03:00 村民丙(10003)
{99999999-0000-1111-2222-333344445555}.jpg
"""


def test_qq_export_picture_references(db_session: Session, tmp_path: Path) -> None:
    export = tmp_path / "qq"
    (export / "Image").mkdir(parents=True)
    (export / "Image" / "{1A2B3C4D-0000-1111-2222-333344445555}.jpg").write_bytes(
        jpeg(caption_photo(random.Random(12)).image, 85))
    (export / "IMG_2026.png").write_bytes(jpeg(caption_photo(random.Random(13)).image, 85))
    path = export / "南坪村村民群.txt"
    path.write_text(QQ_TXT, encoding="utf-8")
    report = import_chat_file(db_session, path)
    assert report.counts.new == 3 and report.issue_count == 0
    texts = {p.external_id or p.raw_text: p.raw_text for p in db_session.scalars(select(Post))}
    assert sorted(texts.values()) == sorted(["看看这个通知 [图片]", "[图片]", "[图片]"])
    assert fetch_pending(db_session).counts == {"stored": 2, "missing": 1}
    missing = db_session.scalars(select(PostImage).where(PostImage.status == "missing")).one()
    assert "{99999999-0000-1111-2222-333344445555}.jpg" in missing.ref
    linked = db_session.scalars(select(Post).join(PostImage, PostImage.post_id == Post.id)
                                .where(PostImage.status == "stored")).all()
    assert sorted(p.raw_text for p in linked) == ["[图片]", "看看这个通知 [图片]"]


def _qce_message(seq: int, uin: str, name: str, ms: int, text: str, resources: list[dict]) -> dict:
    """One message as QQ Chat Exporter (QQ NT) writes it in its JSON export."""
    return {"id": f"73120000000{seq}", "seq": str(seq), "timestamp": ms,
            "time": "2026-11-28T00:00:00.000Z", "sender": {"uid": f"u_{uin}", "uin": uin, "name": name},
            "type": "text", "content": {"text": text, "html": "", "elements": [], "resources": resources,
                                        "mentions": []},
            "recalled": False, "system": False}


def test_qq_nt_export_pictures(db_session: Session, tmp_path: Path) -> None:
    """QQ NT's export by QQ Chat Exporter: a JSON whose messages list their pictures as resources
    (``localPath`` relative to the export, where QCE downloaded them, or only a ``filename``)."""
    import json

    export = tmp_path / "qce"
    (export / "images").mkdir(parents=True)
    (export / "images" / "A1B2C3.jpg").write_bytes(jpeg(caption_photo(random.Random(14)).image, 85))
    (export / "images" / "D4E5F6.jpg").write_bytes(jpeg(caption_photo(random.Random(15)).image, 85))
    start = 1795831200000
    image = {"type": "image", "filename": "A1B2C3.jpg", "size": 52311, "url": "https://multimedia.nt.qq.com.cn/x",
             "localPath": "images/A1B2C3.jpg"}
    only_name = {"type": "image", "filename": "D4E5F6.jpg", "size": 4000}
    gone = {"type": "image", "filename": "FFFFFF.jpg", "size": 4000, "localPath": "images/FFFFFF.jpg"}
    data = {
        "metadata": {"name": "QQChatExporter V5", "version": "5.0.0"},
        "chatInfo": {"name": "南坪村村民群", "type": "group"},
        "statistics": {"totalMessages": 5},
        "messages": [
            _qce_message(101, "10001", "村民甲", start, "看看这个通知[图片]", [image]),
            _qce_message(102, "10002", "村民乙", start + 60_000, "", [only_name]),
            _qce_message(103, "10003", "村民丙", start + 120_000, "[图片]", [gone]),
            _qce_message(104, "10004", "村民丁", start + 180_000, "大家别慌", []),
            {**_qce_message(105, "10000", "系统消息", start + 240_000, "村民戊撤回了一条消息", []), "system": True},
        ],
    }
    path = export / "group_南坪村村民群_20261128.json"
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    report = import_chat_file(db_session, path)
    assert report.counts.new == 4 and report.issue_count == 0
    assert sorted(p.raw_text for p in db_session.scalars(select(Post))) == sorted(
        ["看看这个通知[图片]", "[图片]", "[图片]", "大家别慌"])
    assert fetch_pending(db_session).counts == {"stored": 2, "missing": 1}
    missing = db_session.scalars(select(PostImage).where(PostImage.status == "missing")).one()
    assert "FFFFFF.jpg" in missing.ref
    assert import_chat_file(db_session, path).counts.new == 0  # the group's seq: imported once
