"""What may deserve an alert (a :class:`Subject`), and the features of incidents (matters, 一件事).

An incident's posts have roles (nlp.roles), and the roles decide what counts:

- a rumor spreads only through its **claims**: the evidence count, the groups reached and the
  velocity are measured from claims alone;
- **questions** and **reactions** are shown; questions raise the matter's risk as an enquiry
  signal (nlp's ``Incident.risk`` has a part for them) but never make an alert of their own;
- **refutations** and **notices** are the response: they are shown and never count as spread
  and never raise severity;
- chatter (``other``) never raises anything.

A concern is measured from its complaints and the questions about it; an official notice that
spreads from its notices (it is information spreading, never a rumor).

Stories (posts analysed before roles existed) and hot topics have their features here too.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.common import chunks, hour_key, refutation_of, short_title
from alerts.rules import RulesConfig
from alerts.severity import Features
from core.tables import Alert, DebunkMatch, Incident, Post, PostScore, Story, Topic, utcnow
from nlp.headline import headline, is_keyword_list
from nlp.incident_stats import SAYS_ENOUGH

#: Posts that carry a matter of each kind through the groups ("spreading" posts). Everything else
#: in the incident (reactions, refutations, notices of a rumor, chatter) is shown, not counted.
SPREADING_ROLES: dict[str, tuple[str, ...]] = {
    "rumor": ("claim",),
    "unknown": ("claim",),
    "concern": ("complaint", "question", "claim"),
    "notice": ("notice",),
}
#: Roles that can never raise an alert's severity when they arrive (the response and chatter).
INERT_ROLES = frozenset({"refutation", "notice", "other"})
#: The roles in the order the alert page shows them, with their Chinese headings.
ROLE_ZH = {
    "claim": "传播的说法",
    "question": "询问",
    "reaction": "反应",
    "complaint": "诉求/投诉",
    "refutation": "辟谣/澄清",
    "notice": "官方通知",
    "other": "其他",
}


@dataclass
class Subject:
    """Something that may deserve an alert: an incident, a story, a hot topic, or a lone post."""

    kind: str  # incident | story | topic | post
    id: int
    title: str
    summary: str
    features: Features
    post_ids: list[int] = field(default_factory=list)  # evidence (new posts, or all for a new alert)
    new_post_ids: list[int] = field(default_factory=list)
    hourly: dict[str, int] = field(default_factory=dict)
    debunk_id: int | None = None
    known_evidence: set[int] | None = None  # new_post_ids already in the open alert's evidence
    incident: Incident | None = None  # the matter, for incident subjects
    new_roles: set[str] = field(default_factory=set)  # roles of the posts not yet in its alert
    roles: dict[int, str] = field(default_factory=dict)  # post id -> role, for incident subjects


def velocity(hourly: dict[str, Any], last_seen: dt.datetime | None, window: int) -> float:
    if not hourly or last_seen is None:
        return 0.0
    end = last_seen.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    keys = {hour_key(end - dt.timedelta(hours=i)) for i in range(window)}
    total = sum(int(v) for k, v in hourly.items() if k[:13] in keys and isinstance(v, (int, float)))
    return total / window


def hourly_of(rows: Sequence[Any]) -> dict[str, int]:
    hourly: dict[str, int] = defaultdict(int)
    for r in rows:
        hourly[hour_key(r.published_at or r.collected_at)] += 1
    return dict(hourly)


def spread_window(cfg: RulesConfig) -> float:
    windows = [r.window_hours for r in cfg.enabled("spread")]
    return max(windows) if windows else 6.0


def matter_kind(incident: Incident) -> str:
    """rumor | concern | notice | unknown (an unknown matter with claims is treated as a rumor)."""
    return incident.kind if incident.kind in SPREADING_ROLES else "unknown"


def spreading_count(incident: Incident) -> int:
    """How many of the matter's posts carry it (claims of a rumor, complaints of a concern ...)."""
    counts = incident.role_counts or {}
    return sum(int(counts.get(r, 0) or 0) for r in SPREADING_ROLES[matter_kind(incident)])


def incident_subjects(
    session: Session,
    incidents: Sequence[Incident],
    cfg: RulesConfig,
    keyword_hits: dict[int, dict[str, list[str]]],
) -> dict[int, Subject]:
    """Features of many incidents in a few set-based queries, measured from their spreading posts."""
    rows_by_incident: dict[int, list[Any]] = defaultdict(list)
    for chunk in chunks([i.id for i in incidents]):
        for row in session.execute(
            select(
                Post.incident_id,
                Post.id,
                Post.role,
                Post.group_id,
                Post.source_id,
                Post.published_at,
                Post.collected_at,
                Post.is_local,
                Post.negativity,
                Post.category,
                Post.places,
                Post.title,
                Post.raw_text,
            ).where(Post.incident_id.in_(chunk))
        ):
            rows_by_incident[row.incident_id].append(row)
    subjects: dict[int, Subject] = {}
    for incident in incidents:
        rows = rows_by_incident.get(incident.id, [])
        subjects[incident.id] = _incident_subject(incident, rows, cfg, keyword_hits.get(incident.id, {}))
    return subjects


def _incident_subject(
    incident: Incident, rows: list[Any], cfg: RulesConfig, hits: dict[str, list[str]]
) -> Subject:
    kind = matter_kind(incident)
    carrying = SPREADING_ROLES[kind]
    spreading = [r for r in rows if (r.role or "other") in carrying]
    places_reached = {("g", r.group_id) if r.group_id else ("s", r.source_id) for r in spreading
                      if r.group_id or r.source_id}
    last_seen = max((r.published_at or r.collected_at for r in spreading), default=incident.last_seen)
    window_start = (last_seen or utcnow()) - dt.timedelta(hours=spread_window(cfg))
    in_window = {
        ("g", r.group_id) if r.group_id else ("s", r.source_id)
        for r in spreading
        if (r.group_id or r.source_id) and (r.published_at or r.collected_at) >= window_start
    }
    hourly = hourly_of(spreading)
    negs = [r.negativity for r in spreading if r.negativity is not None]
    cats = Counter(r.category for r in spreading if r.category)
    post_places = Counter(p for r in spreading for p in (r.places or []) if isinstance(p, str))
    places = [p for p in (incident.places or []) if isinstance(p, str)] or [p for p, _ in post_places.most_common(5)]
    questions = int((incident.role_counts or {}).get("question", 0) or 0)
    reactions = int((incident.role_counts or {}).get("reaction", 0) or 0)
    rumorish = kind in ("rumor", "unknown")
    f = Features(
        post_count=len(spreading),
        rumor_probability=incident.max_rumor_probability if rumorish else None,
        debunk_id=incident.debunk_id if rumorish else None,
        debunk_similarity=incident.debunk_similarity if rumorish and incident.debunk_id else None,
        velocity=velocity(hourly, last_seen, cfg.velocity_window_hours),
        groups=len(places_reached),
        groups_in_window=len(in_window),
        local_share=(sum(1 for r in spreading if r.is_local) / len(spreading)) if spreading else 0.0,
        category=incident.category or (cats.most_common(1)[0][0] if cats else None),
        negativity=sum(negs) / len(negs) if negs else None,
        places=places[:5],
        keyword_hits=hits,
        enquiries=questions + reactions if kind != "notice" else None,
        incident_risk=incident.risk if kind == "rumor" else None,
    )
    by_id = {r.id: r for r in rows}
    rep = by_id.get(incident.representative_post_id or -1)
    if rep is None or (rep.role or "other") not in carrying:
        rep = min(spreading, key=lambda r: (r.published_at or r.collected_at, r.id)) if spreading else rep
    rep_text = ((rep.title or "") + " " + rep.raw_text).strip() if rep is not None else ""
    return Subject(
        kind="incident",
        id=incident.id,
        title=short_title(incident.title or rep_text or "（无标题）"),
        summary=short_title(rep_text or incident.title, 300),
        features=f,
        post_ids=[r.id for r in rows],
        hourly=hourly,
        debunk_id=f.debunk_id,
        incident=incident,
        roles={r.id: r.role or "other" for r in rows},
    )


def incident_of_topic(session: Session, topic_id: int, share: float = 0.6) -> int | None:
    """The incident a topic is, when most of its posts are one matter (then the topic must not
    raise a second alert for it); None when the topic spans several matters or none."""
    counts: Counter[int | None] = Counter(
        session.scalars(select(Post.incident_id).where(Post.topic_id == topic_id).limit(2000))
    )
    total = sum(counts.values())
    if not total:
        return None
    top = [(i, n) for i, n in counts.most_common(2) if i is not None]
    if top and top[0][1] / total >= share:
        return top[0][0]
    return None


def topic_in_alerted_matters(session: Session, topic_id: int, alerted: set[int], share: float = 0.6) -> bool:
    """Whether most of a topic's posts that say something (chatter left out) belong to matters
    that have an alert (``alerted``: incident ids): then those alerts speak for them, and the
    topic (a bag of words spanning the split parts of one matter, or several matters, plus the
    chatter around them) must not raise another. A topic of chatter alone raises nothing either:
    chatter never raises anything on its own."""
    rows = session.execute(
        select(Post.incident_id, Post.role).where(Post.topic_id == topic_id).limit(2000)
    ).all()
    saying = [iid for iid, role in rows if role != "other"]
    if not saying:
        return bool(rows)
    inside = sum(1 for iid in saying if iid is not None and iid in alerted)
    return inside / len(saying) >= share


def incidents_with_alerts(session: Session, topic_ids: Sequence[int]) -> set[int]:
    """The incidents of these topics' posts that have an alert (any state: a matter staff
    already handled is handled)."""
    out: set[int] = set()
    for chunk in chunks(list(topic_ids)):
        ids = set(session.scalars(
            select(Post.incident_id).where(Post.topic_id.in_(chunk), Post.incident_id.is_not(None)).distinct()
        ))
        for part in chunks(sorted(i for i in ids if i is not None)):
            out |= {i for i in session.scalars(select(Alert.incident_id).where(Alert.incident_id.in_(part)))
                    if i is not None}
    return out


# ----------------------------------------------------------------------------- stories and topics


def story_subjects(
    session: Session, stories: list[Story], cfg: RulesConfig, keyword_hits: dict[int, dict[str, list[str]]]
) -> dict[int, Subject]:
    """Features of many stories in a few set-based queries.

    Posts that refute the story's claim stay in its evidence but are left out of every feature:
    they neither open an alert nor raise its severity. The story's own aggregates (counts, hourly
    counts, best score and debunk match) include them, so a story holding refutations is measured
    from its spreading posts instead.
    """
    ids = [s.id for s in stories]
    rows_by_story: dict[int, list[Any]] = defaultdict(list)
    refuting: set[int] = set()
    for chunk in chunks(ids):
        for row in session.execute(
            select(
                Post.story_id,
                Post.id,
                Post.group_id,
                Post.source_id,
                Post.published_at,
                Post.collected_at,
                Post.is_local,
                Post.negativity,
                Post.category,
                Post.places,
                Post.norm_text,
            ).where(Post.story_id.in_(chunk))
        ):
            rows_by_story[row.story_id].append(row)
            if refutation_of(row.norm_text):
                refuting.add(row.id)
    mixed = {sid for sid, rows in rows_by_story.items() if any(r.id in refuting for r in rows)}
    spreading_of_mixed = [r.id for sid in mixed for r in rows_by_story[sid] if r.id not in refuting]
    # Mixed stories: from their spreading posts; the others: only what the story does not hold.
    need_prob = [s.id for s in stories if s.max_rumor_probability is None and s.id not in mixed]
    prob = _max_probability(session, Post.story_id, need_prob)
    prob |= _max_probability(session, Post.id, spreading_of_mixed)
    need_debunk = [s.id for s in stories if s.debunk_id is None and s.id not in mixed]
    debunk = _best_debunk(session, Post.story_id, need_debunk)
    debunk |= _best_debunk(session, Post.id, spreading_of_mixed)
    title_post = {s.id: _title_post(s, rows_by_story.get(s.id, []), refuting) for s in stories}
    reps = {pid for pid in title_post.values() if pid}
    rep_text: dict[int, tuple[str | None, str]] = {}
    for chunk in chunks(list(reps)):
        for pid, title, body in session.execute(
            select(Post.id, Post.title, Post.raw_text).where(Post.id.in_(chunk))
        ):
            rep_text[pid] = (title, body)

    subjects: dict[int, Subject] = {}
    for story in stories:
        rows = rows_by_story.get(story.id, [])
        spreading = [r for r in rows if r.id not in refuting]
        groups = {("g", r.group_id) for r in spreading if r.group_id} | {
            ("s", r.source_id) for r in spreading if r.source_id and not r.group_id
        }
        window_start = (story.last_seen or utcnow()) - dt.timedelta(hours=spread_window(cfg))
        in_window = {
            ("g", r.group_id) if r.group_id else ("s", r.source_id)
            for r in spreading
            if (r.group_id or r.source_id) and (r.published_at or r.collected_at) >= window_start
        }
        negs = [r.negativity for r in spreading if r.negativity is not None]
        cats = Counter(r.category for r in spreading if r.category)
        places = Counter(p for r in spreading for p in (r.places or []) if isinstance(p, str))
        if story.id in mixed:
            post_count, reached = len(spreading), len(groups)
            hourly = hourly_of(spreading)
            probability = prob.get(story.id)
            did, sim = debunk.get(story.id, (None, None))
        else:
            post_count = max(story.post_count or 0, len(rows))
            reached = max(story.group_count + story.source_count, len(groups))
            counts = (story.hourly_counts or {}).items()
            hourly = {k: int(v) for k, v in counts if isinstance(v, (int, float))} or hourly_of(rows)
            probability = (
                story.max_rumor_probability if story.max_rumor_probability is not None else prob.get(story.id)
            )
            did, sim = story.debunk_id, story.debunk_similarity
            if did is None and story.id in debunk:
                did, sim = debunk[story.id]
        f = Features(
            post_count=post_count,
            rumor_probability=probability,
            debunk_id=did,
            debunk_similarity=sim if did else None,
            velocity=velocity(hourly, story.last_seen, cfg.velocity_window_hours),
            groups=reached,
            groups_in_window=len(in_window),
            local_share=(sum(1 for r in spreading if r.is_local) / len(spreading)) if spreading else 0.0,
            category=cats.most_common(1)[0][0] if cats else None,
            negativity=sum(negs) / len(negs) if negs else None,
            places=[p for p, _ in places.most_common(5)],
            keyword_hits=keyword_hits.get(story.id, {}),
        )
        title_pid = title_post[story.id]
        title, text = rep_text.get(title_pid or -1, (None, ""))
        subjects[story.id] = Subject(
            kind="story",
            id=story.id,
            # the post as written (a forum post's own title, else its text), not the story's
            # normalised title: staff read "封城了？" with the poster's full-width marks; cut as
            # a headline, without the forwarding hooks ("转发：", "紧急扩散！")
            title=short_title(headline(title, text) or title or text or story.title),
            summary=short_title(text, 300),
            features=f,
            post_ids=[r.id for r in rows],
            hourly=hourly,
            debunk_id=did,
        )
    return subjects


def _title_post(story: Story, rows: Sequence[Any], refuting: set[int]) -> int | None:
    """The post an alert on ``story`` is titled and summarised by: its founder, unless the founder
    refutes the claim ("网传…不实") and a post spreads it; then the first spreading post, since the
    alert is about the claim going round and staff should read the claim, not its denial."""
    rep = story.representative_post_id
    if rep not in refuting:
        return rep
    spreading = [r for r in rows if r.id not in refuting]
    if not spreading:
        return rep
    return min(spreading, key=lambda r: (r.published_at or r.collected_at, r.id)).id


def _max_probability(session: Session, key: Any, keys: Sequence[int]) -> dict[int, float]:
    """Best rumor probability per story, over the posts whose ``key`` (story or post id) is in ``keys``."""
    best: dict[int, float] = {}
    for chunk in chunks(keys):
        for sid, p in session.execute(
            select(Post.story_id, func.max(PostScore.rumor_probability))
            .join(PostScore, PostScore.post_id == Post.id)
            .where(key.in_(chunk))
            .group_by(Post.story_id)
        ):
            if sid is None:  # a post without a story (by post id): it counts for none
                continue
            best[sid] = max(best.get(sid, 0.0), float(p))  # a chunk of post ids may split a story
    return best


def _best_debunk(session: Session, key: Any, keys: Sequence[int]) -> dict[int, tuple[int, float]]:
    """Most similar debunk match per story, over the posts whose ``key`` is in ``keys``."""
    best: dict[int, tuple[int, float]] = {}
    for chunk in chunks(keys):
        for sid, match_id, match_sim in session.execute(
            select(Post.story_id, DebunkMatch.debunk_id, DebunkMatch.similarity)
            .join(DebunkMatch, DebunkMatch.post_id == Post.id)
            .where(key.in_(chunk))
        ):
            if sid is None:  # a post without a story (by post id): it counts for none
                continue
            if sid not in best or match_sim > best[sid][1]:
                best[sid] = (match_id, float(match_sim))
    return best


#: Roles whose posts may speak for a hot topic raised as a concern: what people complain about,
#: or state; never a question, a reaction, a refutation or notice, or chatter ("晚上好各位").
CONCERN_VOICE_ROLES = ("complaint", "claim")
#: A topic with roles is a concern only when this many of its posts complain ...
CONCERN_MIN_COMPLAINTS = 3
#: ... and its complaints are at least as many as its claims, notices and refutations together
#: (a topic of a rumor or a notice is its incidents' to alert on).


def topic_is_concern(session: Session, topic_id: int) -> bool:
    """Whether a hot topic is people's concern, by the roles of its posts: enough complaints,
    and more complaints than posts stating a rumor or a notice. A topic of chatter with a few
    reactions around ("二愣你家的牛跑我家地里了", "吓死了") or the questions around a rumor is not.
    Posts analysed before roles existed (role NULL everywhere) keep the older measure: hot is
    enough."""
    roles = Counter(session.scalars(select(Post.role).where(Post.topic_id == topic_id).limit(2000)))
    if not roles or set(roles) == {None}:
        return True
    complaints = roles["complaint"]
    stating = roles["claim"] + roles["notice"] + roles["refutation"]
    return complaints >= CONCERN_MIN_COMPLAINTS and complaints >= stating


def topic_voice(session: Session, topic: Topic) -> tuple[int, str] | None:
    """The post (id, raw text) that shows what a topic's people say.

    With roles: its representative (most central) post when that complains or states the
    matter, else the earliest complaint (then claim) that says enough; never chatter, a question
    or reaction, or the official answer; None when no post complains or states anything. Without
    roles (posts analysed before roles existed): its representative, unless that is the official
    answer ("经核实…不实"), then the latest post that does not refute it."""
    rows = session.execute(select(Post.id, Post.raw_text, Post.norm_text, Post.role, Post.published_at,
                                  Post.collected_at)
                           .where(Post.topic_id == topic.id).order_by(Post.id.desc()).limit(500)).all()
    if any(r.role is not None for r in rows):
        voices = [r for r in rows if r.role in CONCERN_VOICE_ROLES and not refutation_of(r.norm_text)]
        voice = next((r for r in voices if r.id == topic.representative_post_id), None)
        if voice is None and voices:
            voice = min(voices, key=lambda r: (CONCERN_VOICE_ROLES.index(r.role),
                                               -min(len(r.norm_text or ""), SAYS_ENOUGH),
                                               r.published_at or r.collected_at, r.id))
        return (voice.id, voice.raw_text) if voice is not None else None
    rep = (session.execute(select(Post.id, Post.raw_text, Post.norm_text)
                           .where(Post.id == topic.representative_post_id)).first()
           if topic.representative_post_id else None)
    if rep is not None and not refutation_of(rep.norm_text):
        return rep.id, rep.raw_text
    saying = next((r for r in rows if not refutation_of(r.norm_text)), None)
    if saying is not None:
        return saying.id, saying.raw_text
    return (rep.id, rep.raw_text) if rep is not None else None


def topic_subject(session: Session, topic: Topic, cfg: RulesConfig) -> Subject:
    rows = session.execute(
        select(Post.id, Post.is_local, Post.raw_text, Post.norm_text)
        .where(Post.topic_id == topic.id)
        .order_by(Post.id.desc())
        .limit(500)
    ).all()
    voice = topic_voice(session, topic)
    rep = voice[1] if voice else None
    local = 1.0 if topic.places else (sum(1 for r in rows if r.is_local) / len(rows) if rows else 0.0)
    hourly = {k: int(v) for k, v in (topic.hourly_counts or {}).items() if isinstance(v, (int, float))}
    f = Features(
        post_count=max(topic.post_count or 0, len(rows)),
        velocity=velocity(hourly, topic.last_seen, cfg.velocity_window_hours),
        groups=topic.group_count or 0,
        groups_in_window=topic.group_count or 0,
        local_share=local,
        category=topic.category,
        negativity=topic.negativity,
        is_hot=topic.is_hot,
        places=[p for p in (topic.places or []) if isinstance(p, str)],
    )
    return Subject(
        kind="topic",
        id=topic.id,
        # a headline of what the topic's people say, not its keyword list ("封城、一倍、菜价")
        title=short_title(
            headline(rep, None if is_keyword_list(topic.label) else topic.label, fallback=topic.keyword_words(4))
            or "（无标题）"
        ),
        summary=short_title(rep or topic.label, 300),
        features=f,
        post_ids=[r.id for r in rows],
        hourly=hourly,
    )


