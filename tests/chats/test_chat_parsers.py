"""The parsers on our sample exports: every format, encodings, system lines, broken lines."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crawler.chats.detect import detect_format, open_events
from crawler.chats.model import ChatFormatError, ChatMessage, ParseIssue, Quoted, Skipped
from crawler.chats.onebot import OneBotEvent, parse_cq, render_segments, signature, signature_ok
from crawler.chats.qq_txt import SYSTEM_IDS, SYSTEM_NAMES, parse_qq_txt
from crawler.chats.reader import LineReader
from tests.chats.conftest import FIXTURES, qq_export


def events(path: Path, fmt: str | None = None) -> list:
    stream, _ = open_events(path, fmt or detect_format(path), file_group=path.stem)
    return list(stream)


def messages(evs: list) -> list[ChatMessage]:
    return [e for e in evs if isinstance(e, ChatMessage)]


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("qq_dongwan.txt", "qq-txt"),
        ("qq_owners_gbk.txt", "qq-txt"),
        ("石桥村群_utf8.csv", "wechat-csv"),
        ("pywxdump_nanping.csv", "wechat-csv"),
        ("simple_liushu.csv", "wechat-csv"),
        ("telegram_result.json", "telegram-json"),
        ("telegram_single.json", "telegram-json"),
    ],
)
def test_formats_are_detected(name: str, fmt: str) -> None:
    assert detect_format(FIXTURES / name) == fmt


def test_unknown_files_get_a_clear_chinese_error(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("今天天气不错\n明天也不错\n", encoding="utf-8")
    with pytest.raises(ChatFormatError, match=r"无法识别.*--format"):
        detect_format(notes)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ChatFormatError, match="空的"):
        detect_format(empty)


def test_qq_text_export() -> None:
    evs = events(FIXTURES / "qq_dongwan.txt")
    msgs = messages(evs)
    assert [m.sender_name for m in msgs] == [
        "村委会王主任",
        "李大姐",
        "张小军",
        "张小军",
        "村委会王主任",
        "柳树村老周",
    ]
    assert {m.group_name for m in msgs} == {"东湾村村民群"}
    first = msgs[0]
    assert first.text == "各位村民：明天上午九点在村委会门口发放口罩，每户两包。\n请带好户口本。"
    assert first.time == dt.datetime(2026, 11, 20, 8, 1, 2) and first.sender_id == "3141592653"
    assert first.line == 9
    assert msgs[1].sender_id == "lidajie@qinghe.example" and msgs[1].text == "[图片]"
    # the same text twice in the same second: two messages
    assert msgs[2].text == msgs[3].text and "😱" in msgs[2].text
    # a blank line inside a message belongs to it
    assert msgs[4].text.endswith("[表情][表情]\n\n身份证号 110101199003071234 不要发群里。")
    assert msgs[5].text == "👍👍 收到"
    skipped = [e for e in evs if isinstance(e, Skipped)]
    assert [(s.kind, s.line) for s in skipped] == [("system", 16), ("system", 25)]
    issues = [e for e in evs if isinstance(e, ParseIssue)]
    assert [i.line for i in issues] == [28, 31]
    assert "消息头不完整" in issues[0].reason and "时间无效" in issues[1].reason


def test_gbk_export_with_private_chat_skipped() -> None:
    reader = LineReader(FIXTURES / "qq_owners_gbk.txt")
    assert reader.encoding == "gb18030"
    evs = list(parse_qq_txt(reader))
    msgs = messages(evs)
    assert [m.group_name for m in msgs] == ["青禾镇业主群"] * 3
    assert msgs[1].text == "听说是因为水被污染了？\n谁有消息？"
    assert [e.kind for e in evs if isinstance(e, Skipped)] == ["private"]
    assert reader.bytes_read == (FIXTURES / "qq_owners_gbk.txt").stat().st_size


def test_utf16_and_mixed_encodings_read_the_same(tmp_path: Path) -> None:
    text = (FIXTURES / "qq_dongwan.txt").read_text(encoding="utf-8-sig")
    utf16 = tmp_path / "utf16.txt"
    utf16.write_text(text, encoding="utf-16")
    base = [(m.text, m.time, m.sender_id, m.line) for m in messages(events(FIXTURES / "qq_dongwan.txt"))]
    assert [(m.text, m.time, m.sender_id, m.line) for m in messages(events(utf16))] == base
    # one file appended to by two tools: UTF-8 with a GBK message in the middle
    mixed = tmp_path / "mixed.txt"
    head = qq_export([("2026-11-20 09:00:00", "甲", "11111", "第一条")]).encode("utf-8")
    gbk = "2026-11-20 09:01:00 乙(22222)\n石桥村停水通知\n\n".encode("gbk")
    tail = b"2026-11-20 09:02:00 \xe4\xb8\x99(33333)\n\xff\xfe\xfa\n\n"  # undecodable garbage
    mixed.write_bytes(head + gbk + tail)
    evs = events(mixed)
    assert [m.text for m in messages(evs)][:2] == ["第一条", "石桥村停水通知"]
    bad = [e for e in evs if isinstance(e, ParseIssue)]
    assert len(bad) == 1 and "编码" in bad[0].reason and bad[0].line == head.count(b"\n") + 5


def test_huge_messages_are_cut_and_reported(tmp_path: Path) -> None:
    from crawler.chats.qq_txt import MAX_MESSAGE_CHARS

    line = "东湾村" * 300
    body = "\n".join([line] * (MAX_MESSAGE_CHARS // len(line) + 50))
    path = tmp_path / "huge.txt"
    path.write_text(qq_export([("2026-11-20 09:00:00", "甲", "11111", body),
                               ("2026-11-20 09:01:00", "乙", "22222", "下一条")]), encoding="utf-8")
    evs = events(path)
    msgs = messages(evs)
    assert len(msgs[0].text) <= MAX_MESSAGE_CHARS and msgs[1].text == "下一条"
    assert [i.reason[:5] for i in evs if isinstance(i, ParseIssue)] == ["消息超过 "]


def test_wechat_memotrace_layout() -> None:
    evs = events(FIXTURES / "石桥村群_utf8.csv")
    msgs = messages(evs)
    # localId / TalkerId are one phone's row numbers: not used as identities
    assert [m.line for m in msgs] == [2, 3, 6, 8, 9, 13]
    assert all(m.message_id is None and m.group_id is None for m in msgs)
    assert msgs[0].sender_name == "石桥村小陈"  # empty Remark falls back to NickName
    assert msgs[1].sender_name == "周站长" and msgs[1].sender_id == "wxid_zhou_power77"
    assert msgs[1].text.count("\n") == 2 and msgs[1].line == 3  # a quoted multi-line field
    assert msgs[0].time == dt.datetime(2026, 11, 22, 1, 0, tzinfo=dt.UTC)  # epoch: exact instant
    assert msgs[2].text == "[图片]"
    # a quote-reply names the quoted row by a server id MemoTrace's rows lack: by what it was instead
    assert msgs[3].text == "谢谢周站长🙏" and msgs[3].reply_to is None
    assert msgs[3].quoted == Quoted(msgs[0].time, "wxid_shiqiao_chen01", msgs[0].text)
    assert msgs[4].is_forward and not msgs[3].is_forward
    assert [(s.kind, s.line) for s in evs if isinstance(s, Skipped)] == [("system", 7), ("system", 11)]
    assert [(i.line, i.reason[:6]) for i in evs if isinstance(i, ParseIssue)] == [
        (10, "时间无法识别"),
        (12, "列数不足（3"),
    ]


def test_wechat_pywxdump_and_simple_layouts() -> None:
    msgs = messages(events(FIXTURES / "pywxdump_nanping.csv"))
    assert [m.message_id for m in msgs] == ["7001", "7002", "7003", "7005"]
    assert {m.group_id for m in msgs} == {"20261122@chatroom"}
    assert msgs[0].sender_id == "wxid_nanping_li88" and msgs[0].sender_name is None
    assert msgs[2].text == "[图片]" and msgs[3].is_forward
    simple = messages(events(FIXTURES / "simple_liushu.csv"))
    assert [m.sender_name for m in simple] == ["柳树村网格员", "柳树村村民", "柳树村村民", "柳树村网格员"]
    assert all(m.message_id is None and m.sender_id is None for m in simple)
    assert simple[3].time == dt.datetime(2026, 11, 23, 7, 35)


def test_unknown_csv_layout_names_the_columns_it_needs() -> None:
    with pytest.raises(ChatFormatError) as err:
        events(FIXTURES / "unknown_layout.csv", "wechat-csv")
    text = str(err.value)
    assert "编号, 标题, 作者ID" in text and "时间列" in text and "内容列" in text and "发送者列" in text


def test_telegram_full_export() -> None:
    evs = events(FIXTURES / "telegram_result.json")
    msgs = messages(evs)
    assert [m.message_id for m in msgs] == ["12", "13", "14", "15", "16"]
    assert {(m.group_id, m.group_name) for m in msgs} == {("1987654321", "青禾镇志愿者群")}
    assert msgs[1].text == "收到，十点前 送到村委会。" and msgs[1].reply_to == "12"
    assert msgs[2].is_forward and msgs[0].sender_id == "user707070707"
    assert msgs[3].text == "[图片]" and msgs[4].text == "[表情]👍"
    assert msgs[0].time == dt.datetime(2026, 11, 24, 0, 1, tzinfo=dt.UTC)
    assert [(s.kind, s.line) for s in evs if isinstance(s, Skipped)] == [
        ("system", 1),
        ("empty", 8),
        ("private", 9),
    ]
    issues = [e for e in evs if isinstance(e, ParseIssue)]
    assert [(i.line, i.unit) for i in issues] == [(7, "条")]
    # the contacts section (with phone numbers) is never read into a message
    assert "13800002222" not in repr(evs) and "老李" not in repr(msgs)


def test_clean_text_for_both_databases() -> None:
    from crawler.chats.importer import clean_text

    assert clean_text("东湾\x00村") == "东湾村" and clean_text("a\ud800b") == "a?b" and clean_text(None) is None


def test_truncated_telegram_export_keeps_what_was_read() -> None:
    evs = events(FIXTURES / "telegram_truncated.json")
    assert [m.message_id for m in messages(evs)] == ["1"]
    assert isinstance(evs[-1], ParseIssue) and "不完整" in evs[-1].reason


_name = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp", "Zs")), min_size=1, max_size=8
).filter(lambda s: not any(c in s for c in "()<>") and s not in SYSTEM_NAMES)
_line = (
    st.text(
        st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=30
    )
    .map(str.strip)
    .filter(
        lambda s: (
            bool(s)
            and "撤回" not in s
            and "群" not in s
            and not s[:1].isdigit()
            and "=====" not in s
            and not s.startswith(("消息分组", "消息对象"))
        )
    )
)


_qq = st.integers(10_001, 9_999_999_999).filter(lambda q: str(q) not in SYSTEM_IDS)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 86_399), _name, _qq, st.lists(_line, min_size=1, max_size=3)),
        min_size=1,
        max_size=8,
    )
)
def test_qq_round_trip(tmp_path_factory: pytest.TempPathFactory, rows: list) -> None:
    base = dt.datetime(2026, 11, 20)
    rendered = [
        ((base + dt.timedelta(seconds=s)).strftime("%Y-%m-%d %H:%M:%S"), name, str(qq), "\n".join(lines))
        for s, name, qq, lines in rows
    ]
    path = tmp_path_factory.mktemp("qq") / "export.txt"
    path.write_text(qq_export(rendered), encoding="utf-8")
    got = messages(events(path, "qq-txt"))
    assert [
        (m.time.strftime("%Y-%m-%d %H:%M:%S"), m.sender_name, m.sender_id, m.text) for m in got
    ] == rendered


def test_onebot_segments_and_cq_codes() -> None:
    segs = parse_cq(
        "[CQ:reply,id=52000][CQ:at,qq=20002] 你好&#91;测试&#93;[CQ:image,file=a.jpg,url=http://x/y?a=1&amp;b=2]"
    )
    assert segs[0] == {"type": "reply", "data": {"id": "52000"}}
    assert segs[3]["data"]["url"] == "http://x/y?a=1&b=2"
    text, reply, forward = render_segments(segs)
    assert text == "@某成员  你好[测试][图片]" and reply == "52000" and not forward
    assert "20002" not in text  # a mentioned member's QQ number never enters the text
    text, _, forward = render_segments(
        [
            {"type": "forward", "data": {"id": "abc"}},
            {"type": "json", "data": {"data": '{"prompt": "[分享]县政府通知"}'}},
            {"type": "at", "data": {"qq": "all"}},
        ]
    )
    assert forward and text == "[合并转发][卡片] [分享]县政府通知@全体成员"
    event = OneBotEvent.model_validate(
        {
            "time": 1764036000,
            "post_type": "message",
            "message_type": "group",
            "message_id": 1,
            "group_id": 880001,
            "user_id": 20002,
            "raw_message": "口罩[CQ:face,id=1]",
            "sender": {"card": " ", "nickname": "张三"},
        }
    )
    msg = event.to_message()
    assert (msg.text, msg.sender_name, msg.group_name) == ("口罩[表情]", "张三", "QQ群880001")


def test_onebot_signature() -> None:
    body = b'{"post_type":"meta_event"}'
    sig = signature(b"s3cret", body)
    assert sig.startswith("sha1=") and len(sig) == 45
    assert signature_ok(b"s3cret", body, sig) and signature_ok(
        b"s3cret", body, sig.upper().replace("SHA1", "sha1")
    )
    assert not signature_ok(b"s3cret", body + b" ", sig)
    assert not signature_ok(b"s3cret", body, None) and not signature_ok(b"s3cret", body, "sha1=签名")


def test_a_first_line_past_the_limit_is_truncated_not_dropped(tmp_path: Path) -> None:
    from crawler.chats.qq_txt import MAX_MESSAGE_CHARS

    long_line = "谣" * (MAX_MESSAGE_CHARS + 5_000)
    path = tmp_path / "long.txt"
    path.write_text(qq_export([("2026-11-20 08:01:02", "张三", "3141592653", long_line + "\n第二行")]),
                    encoding="utf-8")
    evs = events(path, "qq-txt")
    msgs = messages(evs)
    assert len(msgs) == 1 and msgs[0].text.startswith("谣谣") and len(msgs[0].text) < MAX_MESSAGE_CHARS
    assert len(msgs[0].text) > MAX_MESSAGE_CHARS - 10
    assert any("截断" in e.reason for e in evs if isinstance(e, ParseIssue))
