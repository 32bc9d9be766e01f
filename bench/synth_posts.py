"""Synthetic Chinese posts about 青禾镇 for benchmarks (written from our own templates).

About a third of the posts are forwards of earlier ones: the same text with forward prefixes
("转发：", "【转】", "紧急扩散！"), share-pressure tails, small edits or a short comment, in other
groups and sites, so story grouping and debunk matching get real work.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

PLACES = [
    "青禾镇",
    "东湾村",
    "柳树村",
    "石桥村",
    "南坪村",
    "青禾县",
    "镇中心小学",
    "青禾镇卫生院",
    "南坪村菜市场",
    "石桥村村委会",
    "东湾村码头",
    "柳树村小学",
    "青禾镇汽车站",
    "县人民医院",
    "镇政府门口",
]
TIMES = ["今天上午", "今天下午", "昨天晚上", "明天", "后天", "这周末", "下周一", "刚刚", "今晚八点", "月底前"]
EVENTS = [
    "要封城了，所有人不准出门",
    "自来水被污染了，千万别喝",
    "出现了好几个确诊病例",
    "超市的米和油都被抢光了",
    "要停电三天",
    "有人贩子开着面包车抢小孩",
    "猪肉都是病死猪肉",
    "发现了一种新的变异病毒",
    "的口罩全部卖断货了",
    "要拆迁，每户赔五十万",
    "有人在井里投毒",
    "学校要停课一个月",
    "的桥塌了，车都过不去",
    "药店的退烧药涨价十倍",
    "举办健康讲座，欢迎居民参加",
    "开展免费体检活动",
    "组织志愿者清理河道",
    "召开村民大会讨论修路",
    "新开了一家面馆，味道不错",
    "的集市特别热闹",
    "发放冬季取暖补贴",
    "进行消防安全演练",
]
DETAILS = [
    "我表哥在镇政府上班，他亲口说的",
    "群里都在传，不知道真假",
    "大家赶紧去超市囤点货",
    "家里有老人小孩的一定要注意",
    "官方已经发布了通知",
    "具体时间以公告为准",
    "请大家相互转告",
    "听说县里已经派人来调查了",
    "视频都拍下来了，太吓人了",
    "有需要的居民可以到村委会登记",
    "详情可以咨询12345热线",
    "现场秩序良好",
    "不要恐慌，理性看待",
    "据说是内部消息，马上就删",
    "卫生院的医生朋友说的",
    "已经有好几户人家搬走了",
]
COMMENTS = [
    "真的假的？",
    "吓死人了",
    "这是真的吗",
    "转给家里人看看",
    "大家小心",
    "希望是假的",
    "我也听说了",
    "不信谣不传谣",
    "等官方消息吧",
    "太可怕了",
    "有没有人确认一下",
    "谢谢提醒",
]
PREFIXES = ["转发：", "【转】", "紧急扩散！", "紧急扩散！！！", "转：", "重要通知：", ""]
SUFFIXES = ["不转不是中国人", "转发扩散", "请互相转告！", "！！！", "", "", "速转"]
GROUPS = [("wechat", f"qh-wx-{i}") for i in range(40)] + [("qq", f"qh-qq-{i}") for i in range(20)]
SITES = [f"青禾论坛{i}" for i in range(5)]


SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
)
WORDS = [
    "快递",
    "包裹",
    "孩子",
    "作业",
    "老师",
    "家长",
    "会议",
    "晚饭",
    "菜价",
    "天气",
    "下雨",
    "降温",
    "衣服",
    "医生",
    "挂号",
    "药费",
    "社保",
    "医保",
    "工资",
    "工地",
    "师傅",
    "电动车",
    "充电",
    "停车",
    "小区",
    "物业",
    "水费",
    "电费",
    "燃气",
    "维修",
    "水管",
    "路灯",
    "垃圾",
    "清运",
    "广场舞",
    "篮球",
    "比赛",
    "婚礼",
    "酒席",
    "满月",
    "生日",
    "蛋糕",
    "超市",
    "打折",
    "鸡蛋",
    "大米",
    "食用油",
    "蔬菜",
    "水果",
    "橘子",
    "苹果",
    "柚子",
    "草莓",
    "鱼塘",
    "鸭子",
    "养猪",
    "收成",
    "玉米",
    "稻谷",
    "化肥",
    "农药",
    "拖拉机",
    "班车",
    "公交",
    "火车票",
    "高铁",
    "出租车",
    "驾照",
    "考试",
    "成绩",
    "放假",
    "开学",
    "补课",
    "兴趣班",
    "钢琴",
    "书法",
    "图书馆",
    "手机",
    "流量",
    "宽带",
    "网速",
    "直播",
    "视频",
    "照片",
    "群主",
    "红包",
    "感谢",
    "辛苦",
    "麻烦",
    "请问",
    "有没有",
    "谁家",
    "哪里",
    "什么时候",
    "多少钱",
    "明早",
    "中午",
    "傍晚",
    "周末",
    "月初",
]


def _chatter(rng: random.Random) -> str:
    """Everyday chat: a few random words with a name or a number, rarely alike."""
    words = rng.sample(WORDS, rng.randint(3, 7))
    extra = [
        f"{rng.choice(SURNAMES)}师傅",
        f"{rng.randint(2, 59)}号",
        f"{rng.randint(1, 12)}点{rng.randint(0, 59)}分",
        f"{rng.randint(5, 300)}块",
    ]
    words.insert(rng.randrange(len(words)), rng.choice(extra))
    return rng.choice(PLACES[:5]) + "".join(words) + rng.choice(["", "？", "。", "！", "呢", "吧"])


def _original(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return _chatter(rng)
    parts = [rng.choice(PLACES), rng.choice(TIMES), rng.choice(EVENTS), "，", rng.choice(DETAILS)]
    if rng.random() < 0.5:
        parts += ["，", rng.choice(DETAILS)]
    if rng.random() < 0.3:
        parts += ["。", rng.choice(COMMENTS)]
    return "".join(parts)


def _edit(rng: random.Random, text: str) -> str:
    roll = rng.random()
    if roll < 0.3 and len(text) > 10:  # drop or insert one character
        pos = rng.randrange(3, len(text) - 3)
        return text[:pos] + text[pos + 1 :] if rng.random() < 0.5 else text[:pos] + "都" + text[pos:]
    if roll < 0.5:
        return text.replace("，", "！", 1)
    if roll < 0.6:
        return rng.choice(COMMENTS) + " " + text
    return text


def synthetic_posts(
    n: int, *, seed: int = 7, forward_share: float = 0.33, start: dt.datetime | None = None
) -> Iterator[dict[str, Any]]:
    """``n`` PostItem dicts (chat messages and forum posts) over the last few days, in time order."""
    rng = random.Random(seed)
    start = start or dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    seconds = 3 * 24 * 3600
    originals: list[str] = []
    for i in range(n):
        when = start + dt.timedelta(seconds=seconds * i / n)
        if originals and rng.random() < forward_share:
            base = (
                originals[min(len(originals) - 1, int(rng.paretovariate(1.2)) - 1)]
                if rng.random() < 0.5
                else rng.choice(originals)
            )
            text = rng.choice(PREFIXES) + _edit(rng, base) + rng.choice(SUFFIXES)
            forward = True
        else:
            text = _original(rng)
            originals.append(text)
            if len(originals) > 5000:
                originals.pop(0)
            forward = False
        if rng.random() < 0.8:
            platform, gid = rng.choice(GROUPS)
            yield {
                "channel": "chat",
                "group": {"platform": platform, "external_id": gid, "name": f"青禾{gid}"},
                "external_id": f"m{i}",
                "text": text,
                "author": f"u{rng.randrange(3000)}",
                "published_at": when,
                "is_forward": forward,
            }
        else:
            site = rng.choice(SITES)
            yield {
                "channel": "web",
                "source": site,
                "external_id": f"p{i}",
                "title": None,
                "text": text,
                "author": f"网友{rng.randrange(3000)}",
                "published_at": when,
                "is_forward": forward,
            }
