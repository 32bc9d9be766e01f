"""The refutation stance cue on sentences we wrote: refutations, spreading posts, and look-alikes."""

from __future__ import annotations

import pytest

from nlp.cues import refutation_cues
from nlp.normalize import normalize


@pytest.mark.parametrize("text, expected", [
    ("镇政府已经发了说明，没有封城安排，大家不要转发谣言", {"谣言", "没有…安排", "官方说明"}),
    ("经核实，网传青禾镇下周封城的消息不实", {"不实", "经核实"}),
    ("派出所已通报：东湾村抓小孩的消息是假消息，请大家别信", {"假消息", "别信", "官方说明"}),
    ("网传石桥村水库决堤并非事实", {"并非"}),
    ("纯属捏造！青禾镇没有任何封控计划", {"纯属", "没有…安排"}),
    ("關於封城的傳言，鎮政府已經闢謠了", {"辟谣"}),  # traditional script, normalised first
    ("网传东湾村真封了？经核实不实，村里一切正常", {"不实", "经核实"}),  # quoting the claim as a question
    # an office's verification, in its own words
    ("近日有群众称“东湾村羊得了口蹄疫”。经现场查看，我镇不存在扑杀、禁止买卖的情况", {"不存在"}),
    ("关于网传“学区调整方案”的说明：我局从未制定该方案，相关内容系伪造", {"从未", "系伪造"}),
    ("停工是因为台风预警，陈总在东莞谈订单，不存在“跑路”。请大家不要传谣", {"不存在", "别信"}),
])
def test_refutations_name_their_cues(text: str, expected: set[str]) -> None:
    assert set(refutation_cues(text)) == expected
    assert refutation_cues(normalize(text), normalized=True) == refutation_cues(text)


@pytest.mark.parametrize("text", [
    "听说青禾镇下周要封城了，所有路口都要设卡，赶紧去超市囤米囤油！",
    # A denied denial: "不是谣言" is removed before looking for cues; "是真的" alone also rules it out.
    "不是谣言，是真的要封城了，赶紧囤货",
    "这可不是谣言，青禾镇下周封城",  # only the denied denial, no affirmation
    "并非谣言，明天封路",
    "青禾镇下周封城是谣言吗？有没有人知道",  # a question
    "听说明天封路，求官方辟谣",  # asking for a refutation
    "官方还没辟谣，看来要封城了",
    "官方通报：明天起全镇封城",  # an authority alone, the shape of a fake notice
    "别信官方的说法，明天就封城，赶紧囤菜",  # distrust of the authorities is not a refutation
    "有人辟谣了，可我亲戚在镇里上班，说真要封城了",  # denial word, but the claim is affirmed
    "没有通知就突然安排封城了",
    "谣言满天飞，听说明天封城",  # hearsay: naming rumors while spreading one
    "别管什么谣言不谣言，赶紧去超市囤米",  # "没有…安排" only where the arrangement ends the clause
    "网上都说是谣言，可我表哥亲眼看到路口设卡了",  # a witness affirms it
    "都说是谣言，结果今天真封了",  # the claim came true
    "这种情况不存在吗？我看村里都在传",  # asked, and no situation named as absent
    "通知上说从未发生过这么大的火",  # 从未 alone, not an office saying it never issued something
])
def test_spreading_posts_and_look_alikes_are_not_refutations(text: str) -> None:
    assert refutation_cues(text) == ()
