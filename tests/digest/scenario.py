"""A busy day in 青禾镇 for the digest tests, written by us.

The busy day (Friday 2026-11-20), written by us:
- 12 public posts and 30 group messages; 5 of them rumors (one matching a known debunk);
  some about 物资供应 or 交通出行, the rest uncategorised. The day before has 40 posts,
  the five days before that 30 each, the seventh day before 20.
- Alerts created that day: a high debunk-match rumor (confirmed 10:00, answered 11:00),
  an urgent rumor whose title carries a <script> tag (new, unassigned), a medium concern
  (confirmed, held by 王芳), a high rumor dismissed at 16:30. From before: a low rumor
  acknowledged three days earlier (held by 李明), and a closed one.
- A hot concern 药店口罩断货 (8 posts that day, 3 the day before) and a quiet topic.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from core.tables import DebunkMatch, PostScore
from tests.digest.factories import (
    local,
    make_alert,
    make_debunk,
    make_post,
    make_response,
    make_story,
    make_topic,
    make_user,
    move,
)

DAY = dt.date(2026, 11, 20)
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "digest"


@dataclass
class BusyDay:
    day: dt.date
    alerts: dict[str, Any] = field(default_factory=dict)
    users: dict[str, Any] = field(default_factory=dict)
    topics: dict[str, Any] = field(default_factory=dict)


def seed_busy_day(session: Session, day: dt.date = DAY) -> BusyDay:
    out = BusyDay(day=day)
    li = make_user(session, username="liming", display_name="李明")
    wang = make_user(session, username="wangfang", display_name="王芳")
    out.users = {"li": li, "wang": wang}
    debunk = make_debunk(session, claim="东湾村明天起封村，所有人不得外出", refutation="青禾镇政府：东湾村没有封村计划。",
                         publisher="青禾镇人民政府", url="https://qinghe.example/notice/12")
    story = make_story(session, title="东湾村要封村", first_seen=local(day, 8), last_seen=local(day, 15),
                       post_count=9, group_count=4, debunk=debunk)
    hot = make_topic(session, label="药店口罩断货", first_seen=local(day - dt.timedelta(days=1), 9),
                     last_seen=local(day, 17), is_hot=True, category="物资供应", places=["东湾村", {"name": "柳树村"}],
                     negativity=0.5, keywords=[["口罩", 6], ["药店", 5], ["断货", 4]], burst_score=4.2)
    calm = make_topic(session, label="石桥村修路", first_seen=local(day, 9), is_hot=False, category="交通出行")
    out.topics = {"hot": hot, "calm": calm}

    # 12 web posts + 30 chat messages on the day
    rumor_hours = [9, 10, 10, 14, 15]
    posts = []
    for i in range(42):
        hour = 7 + (i % 14)  # 07:00 .. 20:00
        channel = "web" if i < 12 else "chat"
        category = "物资供应" if i % 3 == 0 else ("交通出行" if i % 5 == 1 else None)
        posts.append(make_post(session, text=f"青禾镇第{i}条：柳树村药店口罩还有吗", at=local(day, hour, i % 60),
                               channel=channel, category=category, negativity=0.7 if i < 8 else None,
                               topic=hot if i < 8 else None))
    # the five rumor posts, in the story; the first matches the debunk
    for n, hour in enumerate(rumor_hours):
        posts[12 + n].published_at = local(day, hour, 5 + n)
        posts[12 + n].story_id = story.id
        session.flush()
        session.add(PostScore(post_id=posts[12 + n].id, rumor_probability=0.93, label=1))
        if n == 0:
            session.add(DebunkMatch(post_id=posts[12 + n].id, debunk_id=debunk.id, similarity=0.91, method="minhash"))
    # a non-rumor score on another post must not count
    session.add(PostScore(post_id=posts[30].id, rumor_probability=0.1, label=0))
    session.flush()

    # earlier days: 40 the day before (3 about the hot topic), 30 on each of the five before, 20 on day-7
    for back, count in [(1, 40), (2, 30), (3, 30), (4, 30), (5, 30), (6, 30), (7, 20)]:
        d = day - dt.timedelta(days=back)
        for i in range(count):
            make_post(session, text=f"{d} 石桥村日常 {i}", at=local(d, 8 + i % 12, i % 60),
                      channel="chat" if i % 2 else "web", topic=hot if (back == 1 and i < 3) else None,
                      negativity=0.2 if (back == 1 and i < 3) else None)
    # a post on the next day must not count
    make_post(session, text="次日的帖子", at=local(day + dt.timedelta(days=1), 0, 30))

    a1 = make_alert(session, title="东湾村要封村？", created_at=local(day, 9, 30), severity="high",
                    kind="debunk_match", story=story, assignee=li, risk_score=0.8, posts=posts[12:14])
    move(session, a1, "acknowledged", at=local(day, 9, 40), actor=li)
    move(session, a1, "confirmed_rumor", at=local(day, 10), actor=li)
    make_response(session, alert=a1, text="镇政府发布辟谣：东湾村没有封村计划，请勿转发不实消息。", at=local(day, 11),
                  url="https://qinghe.example/notice/13", channels=["公众号", "村民群"])
    move(session, a1, "responded", at=local(day, 11), actor=li)

    a2 = make_alert(session, title="<script>alert('x')</script>南坪村水库决堤", created_at=local(day, 14, 10),
                    severity="urgent", kind="rumor", risk_score=0.95)
    a3 = make_alert(session, title="柳树村药店口罩断货", created_at=local(day, 15), severity="medium", kind="concern",
                    topic=hot, assignee=wang)
    move(session, a3, "confirmed_concern", at=local(day, 15, 30), actor=wang)
    a5 = make_alert(session, title="石桥村有人发烧被拉走", created_at=local(day, 16), severity="high", kind="rumor")
    move(session, a5, "dismissed", at=local(day, 16, 30), actor=li)
    a4 = make_alert(session, title="镇上超市要停业", created_at=local(day - dt.timedelta(days=3), 10), severity="low",
                    kind="rumor", assignee=li, risk_score=0.3)
    move(session, a4, "acknowledged", at=local(day - dt.timedelta(days=2), 9), actor=li)
    a6 = make_alert(session, title="旧事", created_at=local(day - dt.timedelta(days=2), 10), severity="medium")
    move(session, a6, "closed", at=local(day - dt.timedelta(days=2), 12))
    out.alerts = {"a1": a1, "a2": a2, "a3": a3, "a4": a4, "a5": a5, "a6": a6}
    session.flush()
    return out
