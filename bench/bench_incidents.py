"""The incident benchmark: do the scenario corpus's evenings come out as one alert per matter?

Each township of the scenario corpus (tests/fixtures/scenarios/, loaded by bench.scenarios) runs
on a fresh database of its own through the real interfaces, as time passes:

1. every ``--round-minutes`` (default 60) of chat time, the messages of that window are pushed
   as chat bots push them: QQ groups through the OneBot endpoint (``POST /api/v1/ingest/onebot``,
   one event per message, replies as reply segments), WeChat groups as a JSON batch
   (``POST /api/v1/ingest/messages``), with a bot token, via FastAPI's TestClient;
2. the township's debunks whose ``published_at`` has passed are imported (``nlp.debunks``);
3. ``nlp.pipeline.analyze`` and ``alerts.evaluate.evaluate`` run with ``now`` = the round's end.

The township's folder is the config dir (YUQING_CONFIG_DIR), so its places.yaml is the gazetteer.
Then the database is read against the corpus's truth (per part; the held-out part is the
headline):

- alerts per matter: alerts holding evidence of a matter / matters with such an alert;
- rumor matters alerted (an alert whose evidence is mostly that matter) and missed;
- false alerts: evidence mostly chatter, or mostly a true notice / concern in a rumor-type alert;
- questions or reactions that became their own alert (the alert's representative post);
- role accuracy and a confusion table (``n/a`` while posts.role is NULL everywhere);
- B-cubed precision / recall / F1 of grouping: posts.incident_id against the matters (chatter
  as singletons); while every incident_id is NULL, of posts.story_id (today's baseline).

It reads only what exists (posts.role, posts.incident_id, alerts.incident_id, incidents) and
falls back when a column is missing or empty, so it keeps working as the incident work lands.

Run (from the repository root)::

    /work/main/.venv/bin/python -m bench.bench_incidents                 # SQLite, both parts
    /work/main/.venv/bin/python -m bench.bench_incidents --postgres      # PostgreSQL at 127.0.0.1
    /work/main/.venv/bin/python -m bench incidents                       # via the bench runner

Writes bench/results/incidents.json and incidents.md (``--out`` changes the stem).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, inspect, text

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.scenarios import ROLES, Evening, Matter, Message, corpus_stats, load_scenarios  # noqa: E402

RESULTS = REPO / "bench" / "results"
PG_ADMIN_URL = os.environ.get("YUQING_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
ONEBOT = "/api/v1/ingest/onebot"
BATCH = "/api/v1/ingest/messages"
RUMOR_ALERT_KINDS = frozenset({"rumor", "debunk_match", "spread", "keyword"})  # raised as a rumor

# The targets of the incidents issue, shown beside each figure (measured, never asserted).
TARGETS = {
    "rumor_matters_missed": "0 (every rumor matter alerted)",
    "alerts_per_matter": "<= 1.25",
    "false_alerts": "0",
    "question_or_reaction_alerts": "0",
    "role_accuracy": ">= 0.85",
}


# --------------------------------------------------------------------------- running a township


@dataclass
class PostTruth:
    """A stored post, the corpus message it came from, and what the product made of it."""

    post_id: int
    message: Message
    matter: tuple[str, str] | None  # (township slug, matter id); None: chatter
    role: str | None = None  # posts.role, when the roles stage wrote it
    incident_id: int | None = None
    story_id: int | None = None


@dataclass
class AlertView:
    id: int
    kind: str
    title: str
    created_at: dt.datetime | None
    evidence: list[int]  # post ids
    representative: int | None  # post id the alert stands for (incident's, else story's / topic's)
    incident_id: int | None = None


@dataclass
class TownshipRun:
    slug: str
    part: str
    township: str
    matters: dict[tuple[str, str], Matter]
    messages: int
    posts: dict[int, PostTruth] = field(default_factory=dict)
    alerts: list[AlertView] = field(default_factory=list)
    rejected: int = 0
    rounds: int = 0
    columns: dict[str, bool] = field(default_factory=dict)
    seconds: float = 0.0
    debunk_matter: dict[str, str | None] = field(default_factory=dict)  # corpus debunk id -> matter id
    debunk_imported: dict[str, int] = field(default_factory=dict)  # corpus debunk id -> round imported
    message_round: dict[Message, int] = field(default_factory=dict)  # the round a message was pushed in
    matches: list[tuple[int, str | None]] = field(default_factory=list)  # (post id, corpus debunk id)
    incident_debunks: dict[int, str] = field(default_factory=dict)  # incident id -> corpus debunk id


def _stable_int(text_: str, digits: int = 9) -> int:
    return int(hashlib.sha256(text_.encode("utf-8")).hexdigest(), 16) % 10**digits + 10**digits


def _message_key(ev: Evening, m: Message) -> str:
    """The platform message id: unique across the township's evenings (m1 repeats per evening)."""
    return f"{ev.date:%Y%m%d}-{m.id}"


def _onebot_ids(ev: Evening, m: Message) -> tuple[int, int]:
    return _stable_int(ev.slug + ":" + m.group), _stable_int(_message_key(ev, m), 12)


def _onebot_event(ev: Evening, m: Message) -> dict[str, Any]:
    group_id, message_id = _onebot_ids(ev, m)
    segments: list[dict[str, Any]] = []
    if m.reply_to is not None:
        replied = next(x for x in ev.messages if x.id == m.reply_to)
        segments.append({"type": "reply", "data": {"id": str(_onebot_ids(ev, replied)[1])}})
    segments.append({"type": "text", "data": {"text": m.text}})
    return {
        "time": int(m.time.timestamp()), "self_id": 10001, "post_type": "message", "message_type": "group",
        "sub_type": "normal", "message_id": message_id, "group_id": group_id,
        "group_name": ev.group(m.group).name, "user_id": _stable_int(ev.slug + ":" + m.sender),
        "message": segments, "sender": {"user_id": _stable_int(ev.slug + ":" + m.sender), "nickname": m.sender},
    }


def _batch(ev: Evening, group_id: str, messages: list[Message]) -> dict[str, Any]:
    g = ev.group(group_id)
    return {
        "group": {"platform": g.platform, "external_id": f"{ev.slug}:{g.id}", "name": g.name},
        "messages": [
            {"id": _message_key(ev, m), "time": m.time.isoformat(), "sender": m.sender,
             "sender_id": f"{ev.slug}:{m.sender}", "text": m.text,
             "reply_to": None if m.reply_to is None else f"{ev.date:%Y%m%d}-{m.reply_to}",
             "is_forward": m.forwarded}
            for m in messages
        ],
    }


def post_key(ev: Evening, m: Message) -> tuple[str, str]:
    """(chat_groups.external_id, posts.external_id) the push stores for a message."""
    if ev.group(m.group).platform == "qq":
        group_id, message_id = _onebot_ids(ev, m)
        return str(group_id), str(message_id)
    return f"{ev.slug}:{m.group}", _message_key(ev, m)


def push(client: Any, headers: dict[str, str], ev: Evening, messages: list[Message]) -> int:
    """Push messages as the bots would; returns how many were rejected (an error stops the run)."""
    rejected = 0
    by_group: dict[str, list[Message]] = defaultdict(list)
    for m in messages:
        if ev.group(m.group).platform == "qq":
            r = client.post(ONEBOT, json=_onebot_event(ev, m), headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"OneBot push of {ev.slug} {m.id} failed: {r.status_code} {r.text}")
            rejected += len(r.json()["rejected"])
        else:
            by_group[m.group].append(m)
    for group_id, msgs in by_group.items():
        r = client.post(BATCH, json=_batch(ev, group_id, msgs), headers=headers)
        if r.status_code != 200:
            raise RuntimeError(f"batch push of {ev.slug} {group_id} failed: {r.status_code} {r.text}")
        rejected += len(r.json()["rejected"])
    return rejected


def _debunk_time(raw: str) -> dt.datetime | None:
    if not raw:
        return None
    at = dt.datetime.fromisoformat(raw)
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def _import_due_debunks(session: Any, evenings: list[Evening], until: dt.datetime,
                        done: dict[str, int], round_no: int) -> None:
    """The township's debunks published by ``until``, through the library's own import path."""
    from nlp.debunks import upsert_debunks

    rows = []
    for d in evenings[0].debunks:
        at = _debunk_time(d.published_at)
        if d.id not in done and (at is None or at <= until):
            rows.append({"claim": d.claim, "refutation": d.refutation, "publisher": d.publisher or None,
                         "published_at": d.published_at or None, "category": d.category or None,
                         "tags": list(d.tags)})
            done[d.id] = round_no
    if rows:
        result = upsert_debunks(session, rows)
        if result.rejected:
            raise RuntimeError(f"debunks of {evenings[0].slug} rejected: {result.rejected}")


def rounds(messages: list[tuple[Evening, Message]], minutes: int) -> Iterator[tuple[dt.datetime, list[tuple[Evening, Message]]]]:
    """Windows of chat time: (end of window, its messages), skipping empty windows."""
    step = dt.timedelta(minutes=minutes)
    pending = sorted(messages, key=lambda em: em[1].time)
    while pending:
        start = pending[0][1].time.replace(minute=0, second=0)
        end = start + step
        while end <= pending[0][1].time:
            end += step
        now = [em for em in pending if em[1].time < end]
        pending = pending[len(now):]
        yield end, now


@contextmanager
def fresh_database(postgres: bool, workdir: Path) -> Iterator[str]:
    """A migrated empty database: a SQLite file in ``workdir``, or a PostgreSQL database dropped after."""
    from core.migrate import upgrade

    if not postgres:
        url = f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        upgrade(url)
        yield url
        return
    name = f"yuqing_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def township_settings(ev: Evening, url: str, workdir: Path, *, shipped_config: bool = False) -> Iterator[None]:
    """The township's settings: its database, its folder as the config dir (or, with
    ``shipped_config``, none: the office that never wrote its own gazetteer), a data dir of its own."""
    from core.settings import get_settings

    keys = ("YUQING_DATABASE_URL", "YUQING_CONFIG_DIR", "YUQING_DATA_DIR")
    old = {k: os.environ.get(k) for k in keys}
    data_dir = workdir / f"data-{ev.slug}"
    data_dir.mkdir(exist_ok=True)
    os.environ.update({"YUQING_DATABASE_URL": url, "YUQING_CONFIG_DIR": str(ev.path.parent),
                       "YUQING_DATA_DIR": str(data_dir)})
    if shipped_config:
        os.environ.pop("YUQING_CONFIG_DIR")
    os.environ.setdefault("YUQING_SECRET_KEY", "bench-secret-not-for-production")
    get_settings.cache_clear()
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()


def _evaluate_function() -> Any:
    """alerts.service.evaluate on main; alerts.evaluate.evaluate once the alert service is split."""
    try:
        from alerts.evaluate import evaluate
    except ImportError:
        from alerts.service import evaluate
    return evaluate


def run_township(evenings: list[Evening], url: str, *, round_minutes: int = 60,
                 workdir: Path | None = None, progress: bool = True,
                 shipped_config: bool = False) -> TownshipRun:
    """Push, analyse and evaluate one township's evenings round by round on the migrated, empty
    database at ``url``; read back what came out."""
    from fastapi.testclient import TestClient

    from alerts.notify import NotifyConfig
    from api import accounts
    from api.app import create_app
    from core.db import make_engine, session_scope
    from nlp.pipeline import analyze

    evaluate = _evaluate_function()
    first = evenings[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-incidents-") as tmp, \
            township_settings(first, url, workdir or Path(tmp), shipped_config=shipped_config):
        engine = make_engine(url)
        try:
            with session_scope(engine) as s:
                user = accounts.create_user(s, username="bench-bot-owner", role="staff")
                headers = {"Authorization": f"Bearer {accounts.create_token(s, user, 'bench-bot', kind='bot')}"}
            run = TownshipRun(
                slug=first.slug, part=first.part, township=first.township,
                matters={(ev.slug, m.id): m for ev in evenings for m in ev.matters},
                messages=sum(len(ev.messages) for ev in evenings),
                debunk_matter={d.id: d.matter for d in first.debunks},
            )
            quiet = NotifyConfig()
            timeline = [(ev, m) for ev in evenings for m in ev.messages]
            with TestClient(create_app(engine), raise_server_exceptions=True) as client:
                for end, window in rounds(timeline, round_minutes):
                    run.message_round.update({m: run.rounds for _, m in window})
                    for ev in evenings:
                        mine = [m for e, m in window if e is ev]
                        if mine:
                            run.rejected += push(client, headers, ev, mine)
                    now = end.astimezone(dt.UTC)
                    with session_scope(engine) as s:
                        _import_due_debunks(s, evenings, now, run.debunk_imported, run.rounds)
                    with session_scope(engine) as s:
                        analyze(s, workers=0, now=now)
                    with session_scope(engine) as s:
                        evaluate(s, now=now, notify_config=quiet)
                    run.rounds += 1
                    if run.rejected:
                        print(f"  WARNING {first.slug}: {run.rejected} messages rejected by the push", flush=True)
                    if progress:
                        print(f"  {first.slug} round {run.rounds} until {end:%m-%d %H:%M}: {len(window)} messages",
                              flush=True)
            read_back(engine, evenings, run)
        finally:
            engine.dispose()
    run.seconds = round(time.perf_counter() - started, 1)
    return run


def _columns(engine: Engine) -> dict[str, bool]:
    insp = inspect(engine)
    posts = {c["name"] for c in insp.get_columns("posts")}
    alerts = {c["name"] for c in insp.get_columns("alerts")}
    return {"posts.role": "role" in posts, "posts.incident_id": "incident_id" in posts,
            "alerts.incident_id": "incident_id" in alerts, "incidents": insp.has_table("incidents")}


def _utc(value: Any) -> dt.datetime | None:
    """A timestamp read with plain SQL (a string on SQLite, naive UTC on PostgreSQL) as aware UTC."""
    if value is None:
        return None
    at = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def read_back(engine: Engine, evenings: list[Evening], run: TownshipRun) -> None:
    """Posts with their truth, and alerts with their evidence and representative post."""
    cols = _columns(engine)
    run.columns = cols
    by_key = {post_key(ev, m): (ev, m) for ev in evenings for m in ev.messages}
    role = "p.role" if cols["posts.role"] else "NULL"
    incident = "p.incident_id" if cols["posts.incident_id"] else "NULL"
    with engine.connect() as conn:
        rows = conn.execute(text(
            f"SELECT p.id, g.external_id, p.external_id, {role}, {incident}, p.story_id "
            "FROM posts p JOIN chat_groups g ON g.id = p.group_id"
        ))
        for pid, gext, pext, prole, pinc, story in rows:
            found = by_key.get((gext, pext))
            if found is None:
                continue
            ev, m = found
            run.posts[pid] = PostTruth(pid, m, None if m.matter is None else (ev.slug, m.matter),
                                       prole, pinc, story)
        evidence: dict[int, list[int]] = defaultdict(list)
        for aid, pid in conn.execute(text("SELECT alert_id, post_id FROM alert_posts ORDER BY post_id")):
            evidence[aid].append(pid)
        a_incident = "a.incident_id" if cols["alerts.incident_id"] else "NULL"
        i_rep = ("(SELECT i.representative_post_id FROM incidents i WHERE i.id = a.incident_id)"
                 if cols["alerts.incident_id"] and cols["incidents"] else "NULL")
        members: dict[tuple[str, int], list[int]] = defaultdict(list)  # posts of an incident/story/topic
        for pt in run.posts.values():
            for what, key in (("incident", pt.incident_id), ("story", pt.story_id)):
                if key is not None:
                    members[(what, key)].append(pt.post_id)
        for pid, topic in conn.execute(text("SELECT id, topic_id FROM posts WHERE topic_id IS NOT NULL")):
            members[("topic", topic)].append(pid)
        for aid, kind, title, created, inc, story, topic, rep_i, rep_s, rep_t in conn.execute(text(
            f"SELECT a.id, a.kind, a.title, a.created_at, {a_incident}, a.story_id, a.topic_id, {i_rep}, "
            "(SELECT s.representative_post_id FROM stories s WHERE s.id = a.story_id), "
            "(SELECT t.representative_post_id FROM topics t WHERE t.id = a.topic_id) "
            "FROM alerts a ORDER BY a.id"
        )):
            # evidence rows when the alert service writes them, else the posts of what it stands for
            ev_posts = evidence.get(aid) or next(
                (members[k] for k in (("incident", inc), ("story", story), ("topic", topic)) if members.get(k)), [])
            rep = rep_i or rep_s or rep_t or (ev_posts[0] if ev_posts else None)
            run.alerts.append(AlertView(aid, kind, title, _utc(created), ev_posts, rep, inc))
        by_claim = {d.claim.strip(): d.id for d in evenings[0].debunks}
        corpus_debunk = {did: by_claim.get(claim.strip()) for did, claim in conn.execute(text("SELECT id, claim FROM debunks"))}
        run.matches = [(pid, corpus_debunk.get(did))
                       for pid, did in conn.execute(text("SELECT post_id, debunk_id FROM debunk_matches"))]
        if cols["incidents"] and "debunk_id" in {c["name"] for c in inspect(engine).get_columns("incidents")}:
            for iid, did in conn.execute(text("SELECT id, debunk_id FROM incidents WHERE debunk_id IS NOT NULL")):
                if corpus_debunk.get(did):
                    run.incident_debunks[iid] = corpus_debunk[did]  # type: ignore[assignment]


# --------------------------------------------------------------------------- scoring


def b_cubed(items: list[tuple[Any, Any]]) -> dict[str, float]:
    """B-cubed precision, recall and F1 of (predicted cluster, true cluster) pairs, one per item."""
    if not items:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    pred: dict[Any, list[int]] = defaultdict(list)
    gold: dict[Any, list[int]] = defaultdict(list)
    for i, (p, g) in enumerate(items):
        pred[p].append(i)
        gold[g].append(i)
    precision = recall = 0.0
    for p, g in items:
        both = len(set(pred[p]) & set(gold[g]))
        precision += both / len(pred[p])
        recall += both / len(gold[g])
    precision, recall = precision / len(items), recall / len(items)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def _alert_matter(alert: AlertView, posts: dict[int, PostTruth]) -> tuple[tuple[str, str] | None, float]:
    """The label most of the alert's evidence carries (a matter, or None for chatter) and its share."""
    labels = Counter(posts[p].matter for p in alert.evidence if p in posts)
    if not labels:
        return None, 0.0
    top = max(labels.items(), key=lambda kv: (kv[1], kv[0] is not None))
    return top[0], top[1] / sum(labels.values())


def score(runs: list[TownshipRun]) -> dict[str, Any]:
    """The figures of one part (several townships), as plain numbers and tables."""
    posts = {(r.slug, pid): pt for r in runs for pid, pt in r.posts.items()}
    matters = {k: m for r in runs for k, m in r.matters.items()}
    alerts = [(r, a) for r in runs for a in r.alerts]
    rumor_keys = sorted(k for k, m in matters.items() if m.kind == "rumor")

    touching: dict[tuple[str, str], set[int]] = defaultdict(set)
    per_matter_alerted: dict[tuple[str, str], list[int]] = defaultdict(list)
    false_alerts, qr_alerts, rows = [], [], []
    empty = 0
    for r, a in alerts:
        for pid in a.evidence:
            pt = r.posts.get(pid)
            if pt is not None and pt.matter is not None:
                touching[pt.matter].add(a.id)
        label, share = _alert_matter(a, r.posts)
        rep = r.posts.get(a.representative) if a.representative is not None else None
        rep_role = rep.message.role if rep is not None else None
        kind_of_label = matters[label].kind if label is not None else "chatter"
        if not a.evidence:
            empty += 1
        elif label is None or (kind_of_label in ("notice", "concern") and a.kind in RUMOR_ALERT_KINDS):
            false_alerts.append((r.slug, a.id))
        if label is not None:
            per_matter_alerted[label].append(a.id)
        if rep_role in ("question", "reaction"):
            qr_alerts.append((r.slug, a.id))
        rows.append({"township": r.slug, "alert": a.id, "kind": a.kind, "title": a.title[:30],
                     "evidence": len(a.evidence),
                     "mostly": ("-" if not a.evidence else "chatter") if label is None else label[1],
                     "share": round(share, 2), "representative_role": rep_role or "-",
                     "false": (r.slug, a.id) in false_alerts})
    alerted_matters = [k for k in touching if touching[k]]
    alerts_touching = sum(len(touching[k]) for k in alerted_matters)
    rumor_touched = [k for k in rumor_keys if touching.get(k)]
    rumors_alerted = [k for k in rumor_keys if per_matter_alerted.get(k)]

    # roles
    stored = list(posts.values())
    with_role = [pt for pt in stored if pt.role is not None]
    confusion: dict[str, Counter[str]] = {r: Counter() for r in ROLES}
    for pt in with_role:
        confusion[pt.message.role][pt.role] += 1
    def accuracy(sel: list[PostTruth]) -> float | None:
        sel = [pt for pt in sel if pt.role is not None]
        return round(sum(pt.role == pt.message.role for pt in sel) / len(sel), 4) if sel else None

    # grouping: incidents when any post has one, else stories (today's baseline)
    use = "incident_id" if any(pt.incident_id is not None for pt in stored) else "story_id"
    def cluster(key: tuple[str, int], pt: PostTruth) -> Any:
        c = getattr(pt, use)
        return (key[0], use, c) if c is not None else ("single", key)
    def gold(key: tuple[str, int], pt: PostTruth) -> Any:
        return pt.matter if pt.matter is not None else ("single", key)
    grouping_all = b_cubed([(cluster(k, pt), gold(k, pt)) for k, pt in posts.items()])
    grouping_matters = b_cubed([(cluster(k, pt), gold(k, pt)) for k, pt in posts.items() if pt.matter is not None])

    debunking = score_debunks(runs)
    created = {(r.slug, a.id): a.created_at for r, a in alerts}
    first_claim: dict[tuple[str, str], dt.datetime] = {}
    for pt in stored:
        if pt.matter is not None and pt.message.role == "claim":
            t = pt.message.time.astimezone(dt.UTC)
            first_claim[pt.matter] = min(t, first_claim.get(pt.matter, t))
    latency: dict[tuple[str, str], float] = {}
    for k, ids in per_matter_alerted.items():
        times = [t for t in (created.get((k[0], i)) for i in ids) if t is not None]
        if times and k in first_claim:
            latency[k] = round((min(times) - first_claim[k]).total_seconds() / 60, 1)
    rumor_latency = sorted(latency[k] for k in rumors_alerted if k in latency)
    per_matter = []
    for k in sorted(matters):
        m = matters[k]
        n = sum(1 for pt in stored if pt.matter == k)
        per_matter.append({"township": k[0], "matter": k[1], "kind": m.kind, "truth": m.truth, "title": m.title,
                           "posts": n, "alerts_touching": len(touching.get(k, ())),
                           "alerts_mostly_it": len(per_matter_alerted.get(k, ())),
                           "minutes_first_claim_to_alert": latency.get(k)})
    return {
        "townships": sorted({r.slug for r in runs}),
        "messages": sum(r.messages for r in runs),
        "posts_stored": len(posts),
        "rejected": sum(r.rejected for r in runs),
        "rounds": sum(r.rounds for r in runs),
        "alerts": len(alerts),
        "alerts_by_kind": dict(sorted(Counter(a.kind for _, a in alerts).items())),
        "matters": len(matters),
        "rumor_matters": len(rumor_keys),
        "alerts_per_matter": round(alerts_touching / len(alerted_matters), 3) if alerted_matters else None,
        "alerted_matters": len(alerted_matters),
        "alerts_per_rumor_matter": (round(sum(len(touching[k]) for k in rumor_touched) / len(rumor_touched), 3)
                                    if rumor_touched else None),
        "rumor_matters_alerted": len(rumors_alerted),
        "rumor_matters_missed": len(rumor_keys) - len(rumors_alerted),
        "missed": [f"{k[0]}/{k[1]}" for k in rumor_keys if k not in rumors_alerted],
        "median_minutes_first_claim_to_alert": (rumor_latency[len(rumor_latency) // 2]
                                                 if rumor_latency else None),
        "false_alerts": len(false_alerts),
        "false_alerts_chatter": sum(1 for row in rows if row["mostly"] == "chatter"),
        "alerts_without_evidence": empty,
        "question_or_reaction_alerts": len(qr_alerts),
        "role_accuracy": accuracy(stored),
        "role_accuracy_matter_posts": accuracy([pt for pt in stored if pt.matter is not None]),
        "posts_with_role": len(with_role),
        "role_confusion": {t: dict(c) for t, c in confusion.items() if c},
        "grouping_by": use,
        "grouping_b3_all_posts": grouping_all,
        "grouping_b3_matter_posts": grouping_matters,
        "debunks": debunking,
        "per_matter": per_matter,
        "alert_rows": rows,
        "columns": runs[0].columns if runs else {},
        "seconds": round(sum(r.seconds for r in runs), 1),
    }


def score_debunks(runs: list[TownshipRun]) -> dict[str, Any]:
    """Debunk matching on reworded claims: claim posts of a debunked matter matched to its debunk
    (split by whether the debunk was in the library when the post was analysed), matches to the
    wrong matter or to chatter, and debunked matters linked to their debunk (by a post's match or
    by an incident whose posts are mostly that matter)."""
    claims_before = claims_after = hit_before = hit_after = wrong = total = 0
    linked: set[tuple[str, str]] = set()
    debunked: set[tuple[str, str]] = set()
    for r in runs:
        debunked |= {(r.slug, m) for m in r.debunk_matter.values() if m is not None}
        own = {(pid, d) for pid, d in r.matches if d is not None}
        for pid, d in r.matches:
            total += 1
            pt = r.posts.get(pid)
            if d is None or pt is None or pt.matter != (r.slug, r.debunk_matter[d]):
                wrong += 1
            else:
                linked.add(pt.matter)
        for pt in r.posts.values():
            if pt.message.role != "claim" or pt.matter is None:
                continue
            mine = [d for d, m in r.debunk_matter.items() if m == pt.matter[1]]
            if not mine:
                continue
            rounds_in = [r.debunk_imported[d] for d in mine if d in r.debunk_imported]
            imported = min(rounds_in) if rounds_in else None
            hit = any((pt.post_id, d) in own for d in mine)
            # a round pushes its messages, imports the debunks due, then analyses
            if imported is not None and r.message_round.get(pt.message, -1) >= imported:
                claims_after, hit_after = claims_after + 1, hit_after + hit
            else:
                claims_before, hit_before = claims_before + 1, hit_before + hit
        for iid, d in r.incident_debunks.items():
            members = Counter(pt.matter for pt in r.posts.values() if pt.incident_id == iid)
            truth = r.debunk_matter[d]
            if truth is not None and members and members.most_common(1)[0][0] == (r.slug, truth):
                linked.add((r.slug, truth))
    return {
        "debunked_matters": len(debunked),
        "debunked_matters_linked": len(linked & debunked),
        "claims_analysed_with_debunk_in_library": claims_after,
        "of_which_matched": hit_after,
        "claims_analysed_before_the_debunk": claims_before,
        "of_which_matched_later": hit_before,
        "matches": total,
        "wrong_matches": wrong,
    }


# --------------------------------------------------------------------------- report


def _fmt(v: Any) -> str:
    return "n/a" if v is None else str(v)


def render_part(name: str, s: dict[str, Any]) -> list[str]:
    b3a, b3m, d = s["grouping_b3_all_posts"], s["grouping_b3_matter_posts"], s["debunks"]
    lines = [
        f"## {name}: {', '.join(s['townships'])}",
        "",
        f"{s['messages']} messages pushed in {s['rounds']} rounds, {s['posts_stored']} stored "
        f"({s['rejected']} rejected); {s['matters']} matters ({s['rumor_matters']} rumors); "
        f"{s['alerts']} alerts {s['alerts_by_kind']} ({s['alerts_without_evidence']} without evidence); "
        f"{s['seconds']} s.",
        "",
        "| figure | measured | target |",
        "|---|---|---|",
        f"| rumor matters alerted | {s['rumor_matters_alerted']} / {s['rumor_matters']} | all |",
        f"| rumor matters missed | {s['rumor_matters_missed']} {s['missed'] or ''} | {TARGETS['rumor_matters_missed']} |",
        f"| median minutes from a rumor's first claim to its first alert (alerts run at each round's end) | "
        f"{_fmt(s['median_minutes_first_claim_to_alert'])} | |",
        f"| alerts per matter (all kinds; alerts holding its evidence / matters with one) | "
        f"{_fmt(s['alerts_per_matter'])} over {s['alerted_matters']} matters | {TARGETS['alerts_per_matter']} |",
        f"| alerts per rumor matter | {_fmt(s['alerts_per_rumor_matter'])} | {TARGETS['alerts_per_matter']} |",
        f"| false alerts (mostly chatter, or a notice/concern raised as a rumor) | {s['false_alerts']} "
        f"(chatter: {s['false_alerts_chatter']}) | {TARGETS['false_alerts']} |",
        f"| question/reaction as an alert's representative | {s['question_or_reaction_alerts']} | "
        f"{TARGETS['question_or_reaction_alerts']} |",
        f"| role accuracy (all posts) | {_fmt(s['role_accuracy'])} ({s['posts_with_role']} posts with a role) | "
        f"{TARGETS['role_accuracy']} |",
        f"| role accuracy (matter posts) | {_fmt(s['role_accuracy_matter_posts'])} | |",
        f"| grouping B3 P / R / F1 by {s['grouping_by']}, all posts (chatter singletons) | "
        f"{b3a['precision']} / {b3a['recall']} / {b3a['f1']} | |",
        f"| grouping B3 P / R / F1 by {s['grouping_by']}, matter posts | "
        f"{b3m['precision']} / {b3m['recall']} / {b3m['f1']} | |",
        f"| debunked rumor matters linked to their debunk (a post matched, or its incident) | "
        f"{d['debunked_matters_linked']} / {d['debunked_matters']} | all |",
        f"| claims matched to their debunk, debunk already in the library | "
        f"{d['of_which_matched']} / {d['claims_analysed_with_debunk_in_library']} | |",
        f"| claims analysed before their debunk, matched later | "
        f"{d['of_which_matched_later']} / {d['claims_analysed_before_the_debunk']} | |",
        f"| debunk matches to another matter or chatter | {d['wrong_matches']} of {d['matches']} | 0 |",
        "",
    ]
    if s["role_confusion"]:
        preds = sorted({p for c in s["role_confusion"].values() for p in c})
        lines += ["Role confusion (rows: truth, columns: posts.role):", "",
                  "| truth | " + " | ".join(preds) + " |", "|---|" + "---|" * len(preds)]
        for t, c in s["role_confusion"].items():
            lines.append(f"| {t} | " + " | ".join(str(c.get(p, 0)) for p in preds) + " |")
        lines.append("")
    else:
        lines += ["Role confusion: n/a (posts.role is NULL: the roles stage has not run).", ""]
    lines += ["Per matter:", "", "| township | matter | kind | truth | posts | alerts holding it | alerts mostly it "
              "| minutes to first alert |", "|---|---|---|---|---|---|---|---|"]
    for m in s["per_matter"]:
        lines.append(f"| {m['township']} | {m['matter']} | {m['kind']} | {_fmt(m['truth'])} | {m['posts']} | "
                     f"{m['alerts_touching']} | {m['alerts_mostly_it']} | {_fmt(m['minutes_first_claim_to_alert'])} |")
    lines += ["", "Alerts (mostly: the label most of its evidence carries; representative: the true role of "
              "the post it stands for):", "",
              "| township | alert | kind | title | evidence | mostly | share | representative | false |",
              "|---|---|---|---|---|---|---|---|---|"]
    for a in s["alert_rows"]:
        title = a["title"].replace("|", "/").replace("\n", " ")
        lines.append(f"| {a['township']} | {a['alert']} | {a['kind']} | {title} | {a['evidence']} | {a['mostly']} | "
                     f"{a['share']} | {a['representative_role']} | {'yes' if a['false'] else ''} |")
    return [*lines, ""]


def render(result: dict[str, Any]) -> str:
    lines = [
        "# Incident benchmark: scenario evenings through the real push, analysis and alert paths",
        "",
        f"Run {result['run_at']} on {result['database']} ({result['machine']}), round = "
        f"{result['round_minutes']} min of chat time. Command: `{result['command']}`. "
        f"Configuration: {result.get('config', 'the township folder')}.",
        "Targets are the incidents issue's; figures are measured, never asserted. Columns found: "
        + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in result["columns"].items()) + ".",
        "Grouping is scored on posts.incident_id when any post has one, else on posts.story_id "
        "(today's product).",
        "",
    ]
    for part in ("heldout", "tune"):
        if part in result["parts"]:
            label = "Held-out part (headline)" if part == "heldout" else "Tune part (tuned on: not a measure)"
            lines += render_part(label, result["parts"][part])
    lines += ["## Corpus", "", "```", json.dumps(result["corpus"], ensure_ascii=False, indent=1), "```", ""]
    return "\n".join(lines)


def run_part(part: str, *, postgres: bool, round_minutes: int, shipped_config: bool = False) -> dict[str, Any]:
    evenings = load_scenarios(part)  # type: ignore[arg-type]
    by_town: dict[str, list[Evening]] = defaultdict(list)
    for ev in evenings:
        by_town[ev.slug].append(ev)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-incidents-db-") as tmp:
        for slug, evs in by_town.items():
            print(f"== {part}/{slug}: {len(evs)} evenings", flush=True)
            with fresh_database(postgres, Path(tmp)) as url:
                runs.append(run_township(evs, url, round_minutes=round_minutes, shipped_config=shipped_config))
    return score(runs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=("all", "tune", "heldout"), default="all")
    ap.add_argument("--postgres", action="store_true", help="PostgreSQL at 127.0.0.1 instead of SQLite")
    ap.add_argument("--round-minutes", type=int, default=60)
    ap.add_argument("--out", default=None,
                    help="results path without suffix (default bench/results/incidents, or incidents_shipped_config)")
    ap.add_argument("--shipped-config", action="store_true",
                    help="run every township on the shipped configuration instead of its own folder: no "
                         "places.yaml of its own, as an office that never wrote its gazetteer")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = str(RESULTS / ("incidents_shipped_config" if args.shipped_config else "incidents"))
    import logging

    logging.basicConfig(level=logging.WARNING)
    parts = ("heldout", "tune") if args.part == "all" else (args.part,)
    result: dict[str, Any] = {
        "run_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "database": "postgresql" if args.postgres else "sqlite",
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}",
        "round_minutes": args.round_minutes,
        "command": "python -m bench.bench_incidents" + (" --postgres" if args.postgres else "")
                   + ("" if args.part == "all" else f" --part {args.part}")
                   + (" --shipped-config" if args.shipped_config else ""),
        "config": "shipped (no township gazetteer)" if args.shipped_config else "the township's folder",
        "parts": {p: run_part(p, postgres=args.postgres, round_minutes=args.round_minutes,
                              shipped_config=args.shipped_config) for p in parts},
        "corpus": {p: corpus_stats(load_scenarios(p)) for p in parts},  # type: ignore[arg-type]
    }
    result["columns"] = next(iter(result["parts"].values()))["columns"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, ensure_ascii=False, indent=1, default=str) + "\n",
                                        encoding="utf-8")
    out.with_suffix(".md").write_text(render(result), encoding="utf-8")
    for p, s in result["parts"].items():
        print(f"{p}: alerts={s['alerts']} per matter={s['alerts_per_matter']} alerted rumors="
              f"{s['rumor_matters_alerted']}/{s['rumor_matters']} false={s['false_alerts']} "
              f"q/r={s['question_or_reaction_alerts']} roles={s['role_accuracy']} "
              f"B3({s['grouping_by']})={s['grouping_b3_all_posts']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
