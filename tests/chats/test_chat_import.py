"""Importing exports into the database: idempotent, resumable, groups, privacy settings, stats, retention."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.chat_stats import hourly_counts, hourly_counts_by_group
from core.ingest import ingest_posts
from core.tables import Alert, AlertPost, ChatGroup, Post, SourceRun, Story
from crawler.chats import import_chat_file, purge_chat_messages
from crawler.chats.importer import name_group_id
from tests.chats.conftest import FIXTURES, qq_export

ALL = [
    "qq_dongwan.txt",
    "qq_owners_gbk.txt",
    "石桥村群_utf8.csv",
    "pywxdump_nanping.csv",
    "simple_liushu.csv",
    "telegram_result.json",
    "telegram_single.json",
]
EXPECTED = {
    "qq_dongwan.txt": 6,
    "qq_owners_gbk.txt": 3,
    "石桥村群_utf8.csv": 6,
    "pywxdump_nanping.csv": 4,
    "simple_liushu.csv": 4,
    "telegram_result.json": 5,
    "telegram_single.json": 2,
}


def chat_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Post).where(Post.channel == "chat")) or 0


def test_every_fixture_imports_and_reimport_stores_nothing_twice(db: Session) -> None:
    for name in ALL:
        report = import_chat_file(db, FIXTURES / name)
        assert report.completed and report.counts.new == EXPECTED[name], name
        assert report.bytes_read == (FIXTURES / name).stat().st_size
    total = sum(EXPECTED.values())
    assert chat_count(db) == total
    for name in ALL:
        again = import_chat_file(db, FIXTURES / name)
        assert (again.counts.new, again.counts.updated, again.counts.unchanged) == (0, 0, EXPECTED[name]), (
            name
        )
    assert chat_count(db) == total
    keys = db.scalars(select(Post.dedup_key).where(Post.channel == "chat")).all()
    assert len(set(keys)) == len(keys) == total
    groups = {g.name: g for g in db.scalars(select(ChatGroup))}
    assert set(groups) == {
        "东湾村村民群",
        "青禾镇业主群",
        "石桥村群",
        "pywxdump_nanping",
        "simple_liushu",
        "青禾镇志愿者群",
        "南坪村通知频道",
    }
    assert groups["东湾村村民群"].external_id == name_group_id("东湾村村民群")
    assert groups["青禾镇志愿者群"].external_id == "1987654321"
    assert groups["石桥村群"].external_id == name_group_id("石桥村群")  # MemoTrace: by its file name
    assert groups["pywxdump_nanping"].external_id == "20261122@chatroom"
    runs = db.scalars(select(SourceRun).order_by(SourceRun.id)).all()
    assert len(runs) == 2 * len(ALL)
    assert (
        runs[0].status == "partial"
        and {"line": 28, "reason": runs[0].errors[0]["reason"]} == runs[0].errors[0]
    )


def test_replies_forwards_and_masking_are_stored(db: Session) -> None:
    import_chat_file(db, FIXTURES / "telegram_result.json")
    import_chat_file(db, FIXTURES / "qq_dongwan.txt")
    reply = db.scalar(select(Post).where(Post.external_id == "13"))
    parent = db.scalar(select(Post).where(Post.external_id == "12"))
    assert reply.parent_id == parent.id
    assert db.scalar(select(Post).where(Post.external_id == "14")).is_forward
    texts = db.scalars(select(Post.raw_text).where(Post.channel == "chat")).all()
    assert any("139****5678" in t for t in texts) and any("110101********1234" in t for t in texts)
    assert all(p.startswith("用户") for p in db.scalars(select(Post.author).where(Post.channel == "chat")))


def test_memotrace_quote_replies_are_linked_to_what_they_quote(db: Session) -> None:
    """MemoTrace's rows have no server id; the quote's time, sender and text find the quoted post."""
    import_chat_file(db, FIXTURES / "石桥村群_utf8.csv")
    reply = db.scalars(select(Post).where(Post.raw_text == "谢谢周站长🙏")).one()
    parent = db.get(Post, reply.parent_id) if reply.parent_id else None
    assert parent is not None and parent.raw_text == "石桥村明天停电吗？我家冰箱里还有疫苗"
    assert db.scalars(select(Post).where(Post.parent_id.is_not(None))).all() == [reply]


def test_qq_nt_replies_are_linked_by_the_quoted_seq(db: Session, tmp_path: Path) -> None:
    """QQ Chat Exporter names the quoted message by its id; posts are known by seq. The quote QCE
    writes into the text ([回复 名字: 原文]) is cut, so the reply is not a copy of what it quotes."""
    import json

    def message(seq: int, text: str, elements: list[dict]) -> dict:
        return {"id": f"7312000000{seq}", "seq": str(seq), "timestamp": 1795831200000 + seq * 1000,
                "sender": {"uid": f"u_{seq}", "uin": str(10000 + seq), "name": f"村民{seq}"}, "type": "text",
                "content": {"text": text, "elements": elements, "resources": []}, "recalled": False, "system": False}

    def quote(seq: int, content: str) -> dict:
        return {"type": "reply", "data": {"messageId": f"7312000000{seq}", "referencedMessageId": f"7312000000{seq}",
                                          "senderName": f"村民{seq}", "content": content}}

    original = "东湾村的水[图片]不能喝了，大家别买桶装水"
    data = {"metadata": {"name": "QQChatExporter V5"}, "chatInfo": {"name": "东湾村村民群", "type": "group"},
            "messages": [
                message(101, original, []),
                message(102, f"[回复 村民101: {original}]\n谁说的？镇上刚通知水质合格", [quote(101, original)]),
                message(103, "[回复消息]收到", [{"type": "reply", "data": {"replyMsgId": "7312000000102"}}]),
                message(104, "[回复 : 早先的消息]\n这条引用的不在导出里", [quote(99, "早先的消息")]),
            ]}
    path = tmp_path / "qce.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    assert import_chat_file(db, path, fmt="qq-json").counts.new == 4
    posts = {p.external_id: p for p in db.scalars(select(Post))}
    assert posts["102"].parent_id == posts["101"].id and posts["103"].parent_id == posts["102"].id
    assert posts["102"].raw_text == "谁说的？镇上刚通知水质合格" and posts["103"].raw_text == "收到"
    assert posts["104"].parent_id is None and posts["104"].raw_text == "这条引用的不在导出里"


def test_interrupted_import_resumes_without_duplicates(db: Session, tmp_path: Path) -> None:
    rows = [
        (
            f"2026-11-20 10:{i // 60:02d}:{i % 60:02d}",
            f"村民{i % 7}",
            str(100000 + i % 7),
            f"第{i}条：东湾村停水吗",
        )
        for i in range(95)
    ]
    path = tmp_path / "东湾村.txt"
    path.write_text(qq_export(rows), encoding="utf-8")
    calls = Counter()

    def stop_after_three_batches(done: int, messages: int) -> None:
        calls["n"] += 1
        assert 0 < done <= path.stat().st_size
        if calls["n"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_chat_file(db, path, batch_size=10, progress=stop_after_three_batches)
    assert chat_count(db) == 30
    run = db.scalars(select(SourceRun).order_by(SourceRun.id.desc())).first()
    assert run.status == "failed" and "中断" in run.errors[-1]["reason"]
    report = import_chat_file(db, path, batch_size=10)
    assert (report.counts.new, report.counts.unchanged) == (65, 30)
    assert chat_count(db) == 95


def test_group_option_name_resolution_keep_names_and_disabled_groups(db: Session, tmp_path: Path) -> None:
    # A group first seen from a bot push (numeric id) is found again by its name in a QQ text export.
    ingest_posts(
        db,
        [
            {
                "channel": "chat",
                "group": {"platform": "qq", "external_id": "880001", "name": "东湾村村民群"},
                "external_id": "1",
                "author": "x",
                "author_id": "20002",
                "text": "推送来的消息",
            }
        ],
    )
    import_chat_file(db, FIXTURES / "qq_dongwan.txt")
    group = db.scalar(select(ChatGroup).where(ChatGroup.external_id == "880001"))
    assert db.scalar(select(func.count()).select_from(Post).where(Post.group_id == group.id)) == 7
    assert db.scalar(select(func.count()).select_from(ChatGroup)) == 1
    # --group names a group the export does not name (simple CSV), and keep_names is honoured
    import_chat_file(db, FIXTURES / "simple_liushu.csv", group="柳树村网格群")
    liushu = db.scalar(select(ChatGroup).where(ChatGroup.name == "柳树村网格群"))
    assert liushu is not None and liushu.external_id == name_group_id("柳树村网格群")
    liushu.keep_names = True
    db.flush()
    more = tmp_path / "more.csv"
    more.write_text("时间,发送者,内容\n2026-11-24 08:00:00,柳树村网格员,今天照常上班\n", encoding="utf-8")
    import_chat_file(db, more, group="柳树村网格群")
    assert db.scalar(select(Post.author).where(Post.raw_text == "今天照常上班")) == "柳树村网格员"
    # a disabled group takes no new messages
    liushu.enabled = False
    db.flush()
    more.write_text("时间,发送者,内容\n2026-11-24 09:00:00,柳树村网格员,停用后的消息\n", encoding="utf-8")
    report = import_chat_file(db, more, group="柳树村网格群")
    assert report.counts.skipped["disabled"] == 1 and report.counts.new == 0
    assert db.scalar(select(Post.id).where(Post.raw_text == "停用后的消息")) is None


def test_hourly_counts_per_group(db: Session) -> None:
    for name in ("qq_dongwan.txt", "telegram_result.json", "simple_liushu.csv"):
        import_chat_file(db, FIXTURES / name)
    since, until = dt.datetime(2026, 11, 19, tzinfo=dt.UTC), dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
    expected: Counter = Counter()
    for gid, when in db.execute(select(Post.group_id, Post.published_at).where(Post.channel == "chat")):
        expected[(gid, when.replace(minute=0, second=0, microsecond=0))] += 1
    rows = hourly_counts(db, since, until)
    assert {(r.group_id, r.hour): r.count for r in rows} == dict(expected)
    assert all(r.hour.tzinfo is not None for r in rows)
    dongwan = db.scalar(select(ChatGroup.id).where(ChatGroup.name == "东湾村村民群"))
    assert hourly_counts_by_group(db, since, until, group_ids=[dongwan]) == {
        dongwan: {dt.datetime(2026, 11, 20, 0, tzinfo=dt.UTC): 6}
    }
    # the window is half-open and in UTC
    start = dt.datetime(2026, 11, 20, 0, 5, tzinfo=dt.UTC)  # messages at 00:07:30 and 00:09:00 UTC
    assert hourly_counts(db, start, start.replace(minute=9), group_ids=[dongwan])[0].count == 1
    assert hourly_counts(db, start, start.replace(minute=9, second=1), group_ids=[dongwan])[0].count == 2


def test_purge_keeps_alert_evidence_and_stories(db: Session) -> None:
    import_chat_file(db, FIXTURES / "qq_dongwan.txt")
    import_chat_file(db, FIXTURES / "telegram_single.json")
    ingest_posts(
        db,
        [
            {
                "source": "青禾镇论坛",
                "external_id": "old-web",
                "text": "旧帖子",
                "published_at": "2026-01-01T00:00:00+08:00",
            }
        ],
    )
    posts = db.scalars(select(Post).where(Post.channel == "chat").order_by(Post.id)).all()
    evidence, representative = posts[0], posts[1]
    story = Story(
        representative_post_id=representative.id,
        first_seen=evidence.published_at,
        last_seen=evidence.published_at,
        post_count=8,
        group_count=2,
        hourly_counts={"2026-11-20T08": 8},
    )
    db.add(story)
    db.flush()
    alert = Alert(
        story_id=story.id,
        kind="rumor",
        title="东湾村封村谣言",
        severity="high",
        severity_rank=2,
        risk_score=0.9,
    )
    db.add(alert)
    db.flush()
    db.add(AlertPost(alert_id=alert.id, post_id=evidence.id))
    db.flush()
    now = dt.datetime(2026, 11, 25, 0, 0, tzinfo=dt.UTC)
    dry = purge_chat_messages(db, days=3, now=now, dry_run=True)
    assert (dry.deleted, dry.kept_as_evidence) == (4, 2)  # the 6 QQ messages are old; Telegram ones are not
    assert chat_count(db) == 8
    result = purge_chat_messages(db, days=3, now=now)
    assert (result.deleted, result.kept_as_evidence) == (4, 2)
    left = set(db.scalars(select(Post.id).where(Post.channel == "chat")))
    assert {evidence.id, representative.id} <= left and len(left) == 4
    db.refresh(story)
    assert (story.post_count, story.group_count, story.hourly_counts) == (8, 2, {"2026-11-20T08": 8})
    assert db.scalar(select(Post.id).where(Post.external_id == "old-web")) is not None  # web posts stay
    assert purge_chat_messages(db, days=3, now=now).deleted == 0


def test_same_group_exported_from_two_phones_is_stored_once(db: Session, tmp_path: Path) -> None:
    import csv

    original = FIXTURES / "石桥村群_utf8.csv"
    rows = list(csv.reader(original.read_text(encoding="utf-8-sig").splitlines(keepends=True)))
    for row in rows[1:]:
        if len(row) == 12:
            row[0], row[1] = str(int(row[0]) + 5000), "42"  # another phone: other localId and TalkerId
    other = tmp_path / "石桥村群_utf8.csv"
    with other.open("w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows(rows)
    first = import_chat_file(db, original)
    second = import_chat_file(db, other)
    assert first.counts.new == 6 and (second.counts.new, second.counts.unchanged) == (0, 6)
    assert chat_count(db) == 6
