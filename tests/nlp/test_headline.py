"""Headlines (nlp.headline): a sentence someone wrote, without hooks, about 30 characters; a
keyword list is recognised as not being a title."""

from __future__ import annotations

import pytest

from nlp.headline import TITLE_CHARS, headline, is_keyword_list
from nlp.normalize import normalize


@pytest.mark.parametrize("text, title", [
    ("紧急扩散！青禾镇明天封城，所有人不准出门，不转不是中国人", "青禾镇明天封城，所有人不准出门"),
    ("【转】速看：青禾镇明天起停水三天？？？ http://t.cn/abc", "青禾镇明天起停水三天？"),
    ("转发：青禾镇超市的菜太贵了，青菜八块一斤，有没有人管管", "青禾镇超市的菜太贵了，青菜八块一斤，有没有人管管"),
    # a forwarder's caption is no title; the notice's own name is
    ("转发一个 家长们都看看：【紧急扩散】青禾化工厂今天下午氯气泄漏！！周边居民今晚千万别开窗",
     "青禾化工厂今天下午氯气泄漏！周边居民今晚千万别开窗"),
    ("转发 老家的都看看 化工厂泄漏死了两个人 东湾那边不要开窗", "化工厂泄漏死了两个人，东湾那边不要开窗"),
    ("转给家里有老人的：【通知】养老金认证不收费", "【通知】养老金认证不收费"),
    ("转发镇政府通知：明天停水", "转发镇政府通知：明天停水"),
    ("转眼就到年底了：大家注意安全", "转眼就到年底了：大家注意安全"),
])
def test_headline_drops_hooks_and_keeps_the_sentence(text: str, title: str) -> None:
    assert headline(text) == title
    # a post's normalised text gives the same headline without normalising it again
    assert headline(normalize(text), normalized=True) == title


def test_a_long_text_is_cut_at_a_clause_near_thirty_characters() -> None:
    text = "东湾村药店的口罩卖完了，跑了三家都没有，老人孩子都等着用，什么时候补货，有没有人管一管这个事情"
    title = headline(text)
    assert len(title) <= TITLE_CHARS and text.startswith(title) and not title.endswith("，")


def test_keyword_lists_are_not_titles() -> None:
    assert is_keyword_list("封城、一倍、菜价、超市") and is_keyword_list("晚上、各位、小区、半年")
    assert not is_keyword_list("青禾镇超市菜价涨了一倍") and not is_keyword_list("口罩、消毒液断货，什么时候补货？")
    assert not is_keyword_list("") and not is_keyword_list("封城")
    # with nothing said, the keywords are the last resort
    assert headline("转发", fallback=["封城", "菜价"]) == "封城、菜价"


@pytest.mark.parametrize("text, title", [
    # a chat line marks its clauses with spaces: they read as commas in a title
    ("出大事了 芦苇湾村后头老杨家死了人 说是得了禽流感 家里鸡全死了 镇上要来封村了",
     "芦苇湾村后头老杨家死了人，说是得了禽流感，家里鸡全死了"),
    ("暖气到现在还是凉的 交了两千多暖气费 屋里才十五度", "暖气到现在还是凉的，交了两千多暖气费，屋里才十五度"),
    # a space next to Latin letters or digits stays; so do marks between digits
    ("加微信 sgsw2000 就能领", "加微信 sgsw2000 就能领"),
    ("【停电通知】接白沙供电所通知，因线路检修，11月29日（周六）8:00-17:00上坝村全村停电，请提前准备",
     "【停电通知】11月29日（周六）8:00-17:00上坝村全村停电"),
    # attention hooks and chat-app markers are not the matter
    ("紧急通知：听内部人说下个月盐和大米都要大涨价 涨一倍 赶紧去囤！！", "听内部人说下个月盐和大米都要大涨价，涨一倍，赶紧去囤！"),
    ("[语音转文字] 那个烧煤罚款的事儿到底是不是真的", "那个烧煤罚款的事儿到底是不是真的"),
    ("大家赶紧去农商银行取钱！！ 听说资金链断了", "大家赶紧去农商银行取钱！听说资金链断了"),
    # a media mark anywhere in the line is no part of the title
    ("自来水厂被污染了 [图片] [图片] 别喝了", "自来水厂被污染了，别喝了"),
    ("有图有真相[表情]，水是黄的[语音]", "有图有真相，水是黄的"),
])
def test_a_chat_line_keeps_its_punctuation(text: str, title: str) -> None:
    assert headline(text) == title
    assert headline(normalize(text), normalized=True) == title


@pytest.mark.parametrize("text, title", [
    # a salutation, a call to listen or a document's header says nothing of the matter
    ("讲件事 宗祠修缮理事会话每丁要交600 交唔齐就唔俾入祠堂", "宗祠修缮理事会话每丁要交600 交唔齐就唔俾入祠堂"),
    ("我跟你们说个事哈，水厂那边的水源被化工厂污染了", "水厂那边的水源被化工厂污染了"),
    ("【通知】各位老板：云捷快递花桥集散点明天（11月12日）起搬到新地址：花桥大道东段",
     "【通知】云捷快递花桥集散点明天（11月12日）起搬到新地址"),
    ("转发：原森工林业局退休的职工注意了！听说明年一月起林场的养老金要统一并到地方",
     "听说明年一月起林场的养老金要统一并到地方"),
    ("白沙镇人民政府文件 白政发〔2026〕47号 关于全面禁止散煤取暖的紧急通知", "关于全面禁止散煤取暖的紧急通知"),
    ("【草原补奖补发通知】根据国家新政策，2026年度草原生态补奖标准上调，每户牧民可补发3800元",
     "【草原补奖补发通知】2026年度草原生态补奖标准上调"),
    ("各位家长注意了！明天中心小学停课", "明天中心小学停课"),
    ("家人们谁懂啊 职校那边有人跳楼了 救护车都来了", "职校那边有人跳楼了，救护车都来了"),
    # ... but a clause that says something stays, and an opener alone is kept rather than nothing
    ("跟大伙说个好事，北马坊要拆了", "跟大伙说个好事，北马坊要拆了"),
    ("各位村民：", "各位村民"),
])
def test_an_opener_that_says_nothing_is_no_part_of_the_title(text: str, title: str) -> None:
    assert headline(text) == title

