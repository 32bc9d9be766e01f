"""The insult lexicon (nlp.abuse): spellings that dodge a plain match are caught, everyday
words that contain an insult's characters are not, and what is left decides the tip's fate."""

from __future__ import annotations

import pytest

from nlp.abuse import find_insults, has_substance


@pytest.mark.parametrize(("text", "found"), [
    ("傻逼", "傻逼"),
    ("傻 逼 政 府", "傻逼"),
    ("傻*逼!!", "傻逼"),
    ("ＳＢ！", "sb"),
    ("你们这群狗官", "狗官"),
    ("NMSL", "nmsl"),
    ("一群飯桶", "一群饭桶"),  # traditional characters
])
def test_variants_are_caught(text: str, found: str) -> None:
    assert found in find_insults(text)


@pytest.mark.parametrize("text", [
    "我的usb接口坏了", "村口的垃圾堆了好几天没人清运", "我妈的养老金卡要换吗", "比分二比一", "工业废物乱倒在河边",
    "智障儿童的补贴怎么申请", "我不想活了，想去死",
])
def test_everyday_words_are_not_insults(text: str) -> None:
    assert find_insults(text) == []


@pytest.mark.parametrize(("text", "substance"), [
    ("你们这些狗官！！", False),
    ("傻 逼 镇 长", False),
    ("nmsl 一群饭桶", False),
    ("狗官！东湾村的路灯坏了一个月了没人修", True),
    ("傻逼，东湾村停水是真的吗？", True),
    ("你们这帮狗官，听说石桥村自来水被污染了", True),
])
def test_what_is_left_besides_the_insults(text: str, substance: bool) -> None:
    assert has_substance(text) is substance
