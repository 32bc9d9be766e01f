"""Test data for the console: posts through core.ingest (the one write path), then the analysis
and alert rows that nlp and alerts would write, about the fictional 青禾镇.

Everything is built from the arguments: nothing here is a canned result.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.ingest import ingest_posts
from core.tables import (
    Alert,
    AlertEvent,
    AlertPost,
    Debunk,
    DebunkMatch,
    Post,
    PostScore,
    Story,
    Topic,
    utcnow,
)

SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "urgent": 3}
GROUPS = {
    "东湾村": ("wechat", "dw-001", "东湾村村民群"),
    "柳树村": ("wechat", "ls-002", "柳树村邻里互助群"),
    "石桥村": ("qq", "sq-003", "石桥村家长群"),
    "南坪村": ("wechat", "np-004", "南坪村便民群"),
    "青禾镇": ("qq", "qh-005", "青禾镇生活圈"),
}
_ids = itertools.count(1)


@dataclass
class Said:
    """One message: in which village's group, what, and how many hours ago."""

    where: str
    text: str
    hours_ago: float = 1.0
    url: str | None = None


@dataclass
class Seeded:
    alert_id: int
    post_ids: list[int] = field(default_factory=list)
    story_id: int | None = None


def add_posts(session: Session, said: list[Said], now: dt.datetime) -> list[int]:
    items: list[dict[str, Any]] = []
    for s in said:
        n = next(_ids)
        if s.where in GROUPS:
            platform, ext, name = GROUPS[s.where]
            items.append({"channel": "chat", "group": {"platform": platform, "external_id": ext, "name": name},
                          "external_id": f"m{n}", "text": s.text, "author_id": f"u{n % 7}",
                          "published_at": now - dt.timedelta(hours=s.hours_ago)})
        else:
            items.append({"channel": "web", "source": s.where, "external_id": f"w{n}", "text": s.text,
                          "url": s.url or f"https://bbs.qinghe.example/thread/{n}",
                          "published_at": now - dt.timedelta(hours=s.hours_ago)})
    result = ingest_posts(session, items)
    assert not result.rejected, result.rejected
    keys = list(result.keys)
    by_key = dict(session.execute(select(Post.dedup_key, Post.id).where(Post.dedup_key.in_(keys))).all())
    return [by_key[k] for k in keys]


def build_story(
    session: Session,
    *,
    title: str | None,
    said: list[Said],
    probability: float = 0.87,
    explanation: list[list[Any]] | None = None,
    debunk: Debunk | None = None,
    debunk_similarity: float = 0.93,
    category: str | None = "疫情防控措施/隔离",
    negativity: float = 0.5,
    places: list[str] | None = None,
    topic_id: int | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Posts (through core.ingest) plus what nlp would write about them: one story, scores, matches."""
    now = now or utcnow()
    post_ids = add_posts(session, said, now)
    posts = list(session.scalars(select(Post).where(Post.id.in_(post_ids)).order_by(Post.id)))
    hours = Counter(p.published_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H") for p in posts if p.published_at)
    times = [p.published_at for p in posts if p.published_at]
    story = Story(representative_post_id=post_ids[0], title=title, first_seen=min(times),
                  last_seen=max(times), post_count=len(posts),
                  group_count=len({p.group_id for p in posts if p.group_id}),
                  source_count=len({p.source_id for p in posts if p.group_id is None and p.source_id}),
                  hourly_counts=dict(hours), max_rumor_probability=probability,
                  debunk_id=debunk.id if debunk else None,
                  debunk_similarity=debunk_similarity if debunk else None, topic_id=topic_id)
    session.add(story)
    session.flush()
    for i, p in enumerate(posts):
        p.story_id, p.topic_id, p.analyzed_at = story.id, topic_id, now
        p.norm_text, p.category, p.negativity = p.raw_text, category, negativity
        p.places = places or []
        p.is_local = bool(places)
        session.add(PostScore(post_id=p.id, rumor_probability=max(0.05, probability - 0.03 * i),
                              label=1 if probability >= 0.5 else 0, explanation=explanation or []))
        if debunk is not None:
            session.add(DebunkMatch(post_id=p.id, debunk_id=debunk.id,
                                    similarity=max(0.5, debunk_similarity - 0.02 * i), method="minhash"))
    session.flush()
    return story.id


def grow_story(session: Session, story_id: int, said: list[Said], now: dt.datetime | None = None) -> None:
    """More posts of an existing story, as nlp would attach them (for the alert service to fold in)."""
    now = now or utcnow()
    story = session.get(Story, story_id)
    assert story is not None
    ids = add_posts(session, said, now)
    posts = list(session.scalars(select(Post).where(Post.id.in_(ids))))
    counts = dict(story.hourly_counts or {})
    for p in posts:
        p.story_id, p.analyzed_at, p.norm_text = story_id, now, p.raw_text
        session.add(PostScore(post_id=p.id, rumor_probability=story.max_rumor_probability or 0.8, label=1,
                              explanation=[]))
        key = p.published_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H")
        counts[key] = counts.get(key, 0) + 1
    all_posts = list(session.scalars(select(Post).where(Post.story_id == story_id)))
    story.hourly_counts = counts
    story.post_count = len(all_posts)
    story.group_count = len({p.group_id for p in all_posts if p.group_id})
    story.last_seen = max(p.published_at for p in all_posts if p.published_at)
    session.flush()


def alert_for_story(session: Session, story_id: int) -> int:
    alert_id = session.scalar(select(Alert.id).where(Alert.story_id == story_id).order_by(Alert.id.desc()))
    assert alert_id is not None, f"the alert service raised no alert for story {story_id}"
    return alert_id


def seed_alert(
    session: Session,
    *,
    title: str,
    said: list[Said],
    severity: str = "high",
    status: str = "new",
    kind: str = "rumor",
    category: str | None = "疫情防控措施/隔离",
    probability: float = 0.87,
    assignee_id: int | None = None,
    age_hours: float = 0.5,
    now: dt.datetime | None = None,
) -> Seeded:
    """An alert row written directly (for volume and for states the test wants exactly)."""
    now = now or utcnow()
    story_id = build_story(session, title=title, said=said, probability=probability, category=category, now=now)
    post_ids = list(session.scalars(select(Post.id).where(Post.story_id == story_id)))
    created = now - dt.timedelta(hours=age_hours)
    alert = Alert(story_id=story_id, kind=kind, title=title, summary=said[0].text[:120], severity=severity,
                  severity_rank=SEVERITY_RANK[severity], risk_score=60.0,
                  score_parts={"rumor": {"value": probability, "points": 25.0, "max": 30,
                                         "text": f"谣言概率 {probability:.2f}"}},
                  rules_fired=[], category=category, status=status, assignee_id=assignee_id,
                  post_count=len(post_ids), created_at=created, updated_at=created)
    session.add(alert)
    session.flush()
    for pid in post_ids:
        session.add(AlertPost(alert_id=alert.id, post_id=pid, added_at=created))
    session.add(AlertEvent(alert_id=alert.id, at=created, action="created", to_status="new"))
    session.flush()
    return Seeded(alert_id=alert.id, post_ids=post_ids, story_id=story_id)


def add_debunk(session: Session, claim: str, refutation: str, *, publisher: str = "青禾县融媒体中心",
               url: str = "https://www.qinghe.example/piyao/1", category: str | None = None) -> Debunk:
    import hashlib

    d = Debunk(dedup_key=hashlib.sha256(claim.encode()).hexdigest(), claim=claim, refutation=refutation,
               publisher=publisher, url=url, published_at=utcnow() - dt.timedelta(days=2), category=category)
    session.add(d)
    session.flush()
    return d


def add_topic(session: Session, label: str, *, keywords: list[str], category: str, places: list[str],
              negativity: float, counts: list[int], burst: float, now: dt.datetime | None = None) -> Topic:
    now = now or utcnow()
    end = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    hourly = {(end - dt.timedelta(hours=len(counts) - 1 - i)).strftime("%Y-%m-%dT%H"): c
              for i, c in enumerate(counts) if c}
    pairs = [[w, len(keywords) - i] for i, w in enumerate(keywords)]  # [word, count], as nlp stores them
    t = Topic(label=label, keywords=pairs, category=category, places=places, negativity=negativity,
              first_seen=now - dt.timedelta(hours=len(counts)), last_seen=now - dt.timedelta(minutes=10),
              post_count=sum(counts), group_count=min(len(places) + 1, 5), hourly_counts=hourly, is_hot=True,
              burst_score=burst)
    session.add(t)
    session.flush()
    return t


# --------------------------------------------------------------------------- a whole scene


@dataclass
class Scene:
    users: dict[str, int]
    alerts: dict[str, int]
    topics: list[int]
    digest_id: int


PASSWORD = "qinghe-2026"
_HASHES: dict[str, str] = {}


def password_hash(password: str = PASSWORD) -> str:
    """Argon2 takes most of a second here: hash the shared test password once per run."""
    from api.security import hash_password

    if password not in _HASHES:
        _HASHES[password] = hash_password(password)
    return _HASHES[password]


def add_user(session: Session, username: str, role: str, display_name: str | None = None) -> int:
    from api import accounts

    user = accounts.create_user(session, username=username, role=role, display_name=display_name)
    user.password_hash = password_hash()
    session.flush()
    return user.id


def seed_scene(session: Session, now: dt.datetime | None = None) -> Scene:
    """A small but complete office day in 青禾镇: users, debunks, stories and topics that the alert
    service (alerts.evaluate.evaluate) turns into alerts, then worked through the service's own
    workflow; sources with runs, groups, a digest and model versions."""
    from alerts import evaluate as evaluation
    from alerts import workflow
    from core.tables import Digest, ModelVersion, Source, SourceRun

    now = now or utcnow()
    users = {}
    for name, role, display in [("zhangmin", "staff", "张敏"), ("liwei", "staff", "李伟"),
                                ("wangfang", "analyst", "王芳"), ("chenkz", "viewer", "陈科长"),
                                ("admin", "admin", "管理员")]:
        users[name] = add_user(session, name, role, display)
    road = add_debunk(session, "青禾镇明天起封路，所有车辆禁止进出",
                      "经核实，青禾镇没有任何封路计划，各村道路通行正常，请勿轻信、转发不实信息。",
                      category="交通出行")
    water = add_debunk(session, "自来水被污染了，不能喝",
                       "县水务公司今日检测青禾镇供水各项指标均合格，可放心饮用。", publisher="青禾县水务公司",
                       url="https://www.qinghe.example/piyao/2", category="公共安全")
    supply = add_topic(session, "超市 蔬菜 涨价 囤货", keywords=["超市", "蔬菜", "涨价", "囤货", "鸡蛋"],
                       category="物价", places=["青禾镇", "东湾村"], negativity=0.62,
                       counts=[1, 0, 2, 1, 3, 2, 4, 3, 2, 5, 6, 4, 8, 7, 9, 12, 10, 14, 18, 15, 21, 19, 24, 27],
                       burst=4.2, now=now)
    school = add_topic(session, "学校 停课 网课 通知", keywords=["停课", "网课", "学校", "通知"],
                       category="教育", places=["石桥村"], negativity=0.35,
                       counts=[0, 0, 1, 0, 0, 2, 1, 1, 3, 2, 2, 4, 3, 5, 4, 6, 5, 5, 7, 6, 8, 7, 6, 9],
                       burst=2.6, now=now)
    add_posts(session, [Said("东湾村", "超市鸡蛋涨到八块一斤了，还有人一箱一箱地买", 4),
                        Said("青禾镇", "蔬菜价格一天一个样，镇上管不管？", 3)], now)
    session.execute(Post.__table__.update().where(Post.story_id.is_(None), Post.raw_text.like("%涨%"))
                    .values(topic_id=supply.id))
    add_posts(session, [Said("石桥村", "学校下周是不是要停课上网课？有没有通知", 9)], now)
    session.execute(Post.__table__.update().where(Post.story_id.is_(None), Post.raw_text.like("%停课%"))
                    .values(topic_id=school.id))

    stories = {}
    stories["road"] = build_story(
        session, title="网传“青禾镇明天起封路，车辆禁止进出”", category="交通出行", probability=0.93,
        debunk=road, debunk_similarity=0.93, negativity=0.8, places=["青禾镇", "东湾村"], now=now,
        explanation=[["封路", 1.2], ["禁止进出", 0.9], ["赶紧", 0.4], ["通知", -0.2]],
        said=[Said("东湾村", "紧急通知！青禾镇明天起封路，所有车辆禁止进出，赶紧去超市囤菜！", 5),
              Said("柳树村", "转：青禾镇明天起封路，车辆禁止进出，大家提前准备", 4),
              Said("南坪村", "听说明天封路了，是真的吗？", 3),
              Said("青禾镇", "明天起封路！禁止进出！转给家人", 2),
              Said("石桥村", "家长们注意，明天封路，孩子接送怎么办", 1.5),
              Said("青禾论坛", "有人知道明天是不是要封路？镇上超市已经排长队了", 1),
              Said("东湾村", "封路是真的，我表哥在镇上上班说的", 0.5),
              Said("柳树村", "明天封路，赶紧加油、买菜", 0.3)])
    stories["water"] = build_story(
        session, title="柳树村群内称“自来水被污染不能喝”", category="公共安全", probability=0.86,
        debunk=water, debunk_similarity=0.81, negativity=0.7, places=["柳树村"], now=now,
        explanation=[["污染", 1.0], ["不能喝", 0.8]],
        said=[Said("柳树村", "自来水被污染了，不能喝，大家去买桶装水", 3),
              Said("东湾村", "柳树村那边说自来水污染了，我们这也是一个水厂吧", 2.5),
              Said("南坪村", "自来水不能喝了？谁有准信", 2)])
    stories["quarantine"] = build_story(
        session, title="网传“南坪村发现确诊病例，全村隔离”", category="疫情防控措施/隔离", probability=0.84,
        negativity=0.75, places=["南坪村"], now=now, explanation=[["确诊", 0.9], ["隔离", 0.6]],
        said=[Said("南坪村", "南坪村发现确诊病例了，全村都要隔离！", 7),
              Said("柳树村", "南坪村全村隔离，别往那边去", 6),
              Said("青禾镇", "南坪村确诊？有没有官方消息", 5)])
    stories["mask"] = build_story(
        session, title="青禾论坛帖子提到“免费发口罩”", category="物资供应", probability=0.82, negativity=0.1,
        now=now, explanation=[["免费", 0.7]],
        said=[Said("青禾论坛", "镇卫生院门口今天免费发口罩，每人两个", 22)])
    session.flush()

    evaluation.evaluate(session, now=now, full=True)
    alerts = {name: alert_for_story(session, sid) for name, sid in stories.items()}
    topic_alert = session.scalar(select(Alert.id).where(Alert.topic_id == supply.id, Alert.story_id.is_(None)))
    if topic_alert is None:
        topic_alert = workflow.create_manual(session, actor=users["zhangmin"], topic_id=supply.id).id
    alerts["eggs"] = topic_alert

    # Work some of them through the service's own workflow.
    workflow.assign(session, alerts["water"], users["zhangmin"], actor=users["zhangmin"], now=now)
    workflow.transition(session, alerts["water"], "acknowledged", actor=users["zhangmin"], now=now)
    workflow.assign(session, alerts["quarantine"], users["liwei"], actor=users["liwei"], now=now)
    workflow.transition(session, alerts["quarantine"], "confirmed_rumor", actor=users["liwei"], now=now,
                       comment="已电话联系南坪村村委，没有确诊病例。")
    workflow.transition(session, alerts["mask"], "dismissed", actor=users["liwei"], now=now,
                       comment="卫生院确有发放，属实，不是谣言。")

    src = session.scalar(select(Source).where(Source.name == "青禾论坛"))
    if src is not None:
        src.kind = "html"
        session.add(SourceRun(source_id=src.id, started_at=now - dt.timedelta(minutes=20),
                              finished_at=now - dt.timedelta(minutes=19), status="ok", pages_fetched=12,
                              items_new=7))
    feed = Source(name="青禾县政府网站", kind="feed", config={}, enabled=True,
                  last_run_at=now - dt.timedelta(hours=1))
    session.add(feed)
    session.flush()
    session.add(SourceRun(source_id=feed.id, started_at=now - dt.timedelta(hours=1), status="partial",
                          pages_fetched=3, items_new=1,
                          errors=[{"url": "https://www.qinghe.example/rss", "reason": "HTTP 503 服务暂不可用"}]))
    digest = Digest(day=(now - dt.timedelta(days=1)).date(), recipients_key="leaders", recipients=["a@x", "b@x"],
                    subject="青禾镇舆情日报（昨日）", status="sent", sent_at=now - dt.timedelta(hours=15),
                    html=('<h1>青禾镇舆情日报</h1><p style="color:#333">昨日共监测到帖子 <b>328</b> 条，'
                          '谣言预警 3 条。</p><img src="cid:trend" alt="走势" width="240">'
                          f'<p><a href="/alerts/{alerts["road"]}">封路传言（预警）</a></p>'
                          "<script>parent.document.title='pwned'</script>"),
                    text="青禾镇舆情日报\n昨日共监测到帖子 328 条，谣言预警 3 条。",
                    figures={"trend": {"content_type": "image/png", "filename": "trend.png", "b64": _png_b64()}})
    session.add(digest)
    session.add(ModelVersion(name="rumor", version="2026.11.20", path="models/rumor/2026.11.20", status="active",
                             metrics={"macro_f1": 0.874, "auc": 0.93, "precision": 0.86, "recall": 0.82},
                             trained_at=now - dt.timedelta(days=8), promoted_at=now - dt.timedelta(days=7),
                             promoted_by=users["wangfang"]))
    session.add(ModelVersion(name="rumor", version="2026.10.01", path="models/rumor/2026.10.01", status="retired",
                             metrics={"macro_f1": 0.851, "auc": 0.91}, trained_at=now - dt.timedelta(days=58)))
    session.flush()
    return Scene(users=users, alerts=alerts, topics=[supply.id, school.id], digest_id=digest.id)


def _png_b64() -> str:
    """A small bar chart as PNG, drawn here (the digest stores its charts this way)."""
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 1.2), dpi=80)
    ax.bar(range(7), [3, 5, 4, 9, 12, 8, 6], color="#5b8fd1")
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


# --------------------------------------------------------------------------- retraining


@dataclass
class Uncertain:
    """A post the active model scored ``probability``, in a story that reached ``reach`` posts."""

    text: str
    probability: float
    reach: int = 1


def add_scored_posts(session: Session, items: list[Uncertain], model_version_id: int,
                     now: dt.datetime | None = None) -> list[int]:
    """Posts (through core.ingest) with the scores the active model gave them, each in its own story."""
    now = now or utcnow()
    post_ids = add_posts(session, [Said("青禾论坛", u.text, 2) for u in items], now)
    for pid, u in zip(post_ids, items, strict=True):
        story = Story(representative_post_id=pid, title=None, first_seen=now, last_seen=now, post_count=u.reach,
                      group_count=0, source_count=1, hourly_counts={}, max_rumor_probability=u.probability)
        session.add(story)
        session.flush()
        session.get(Post, pid).story_id = story.id
        session.add(PostScore(post_id=pid, model_version_id=model_version_id, rumor_probability=u.probability,
                              label=int(u.probability >= 0.5), explanation=[]))
    session.flush()
    return post_ids
