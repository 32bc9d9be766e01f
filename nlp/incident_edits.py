"""Staff's corrections of the grouping: merge two incidents, split a post out, move a post.

These change nlp's own data (``posts.incident_id``, ``incidents``) and record what staff decided in
``incident_constraints`` so the grouping honours it from then on: a merge or a move adds
``must_link`` pairs, a split or a move ``cannot_link`` pairs with the incident the post left.
Pairs are made with a representative few of an incident's posts (its representative and its
earliest claims), not all pairs: the grouping links a post to a matter through such posts.

Every function is idempotent (the same request twice changes nothing the second time), raises
:class:`core.errors.NotFound` / :class:`Conflict` / :class:`InvalidInput` (HTTP 404 / 409 / 422)
with a Chinese message saying what to do, and leaves the commit to the caller.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from core.db import upsert_insert
from core.errors import Conflict, InvalidInput, NotFound
from core.tables import Incident, IncidentConstraint, Post, utcnow
from nlp.incident_stats import recompute_incidents

#: How many of an incident's posts stand for it in constraint pairs.
REPRESENTATIVES = 5
#: Roles that say what a matter is, preferred as its representatives (claims first).
_ROLE_ORDER = {"claim": 0, "complaint": 1, "notice": 2, "question": 3, "refutation": 4, "reaction": 5}


@dataclass
class EditResult:
    """What an edit touched: the incidents whose stats were recounted, and whether anything changed."""

    changed: bool
    incident_ids: list[int]
    new_incident_id: int | None = None


def get_incident(session: Session, incident_id: int) -> Incident:
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound(f"事件 #{incident_id} 不存在：请检查编号，或回到事件列表刷新")
    return incident


def _get_post(session: Session, post_id: int) -> Post:
    post = session.get(Post, post_id)
    if post is None:
        raise NotFound(f"帖子 #{post_id} 不存在")
    return post


def _live(incident: Incident) -> None:
    if incident.status == "merged":
        raise Conflict(
            f"事件 #{incident.id} 已并入事件 #{incident.merged_into_id}：请在事件 #{incident.merged_into_id} 上操作"
        )


def representatives(session: Session, incident_id: int, *, exclude: Iterable[int] = (), n: int = REPRESENTATIVES) -> list[int]:
    """A few posts that stand for the incident: its representative, then its earliest claims
    (complaints, notices ... when it has no claims)."""
    skip = set(exclude)
    incident = session.get(Incident, incident_id)
    rows = session.execute(
        select(Post.id, Post.role, Post.published_at, Post.collected_at)
        .where(Post.incident_id == incident_id)
        .order_by(Post.id)
        .limit(2000)
    ).all()
    ordered = sorted(
        (r for r in rows if r.id not in skip),
        key=lambda r: (_ROLE_ORDER.get(r.role or "", 9), r.published_at or r.collected_at, r.id),
    )
    ids = [r.id for r in ordered]
    rep = incident.representative_post_id if incident is not None else None
    if rep in ids:
        ids.remove(rep)
        ids.insert(0, rep)
    return ids[:n]


def _constrain(
    session: Session,
    kind: str,
    post_id: int,
    others: Sequence[int],
    *,
    action: str,
    actor_id: int | None,
    now: dt.datetime,
) -> int:
    """Record ``kind`` pairs between ``post_id`` and each of ``others`` (smaller id first, so a
    pair is stored once whichever side it was made from); a must_link and a cannot_link on the
    same pair cannot both stand: the newer decision replaces the older."""
    rows = []
    opposite = "cannot_link" if kind == "must_link" else "must_link"
    for other in others:
        if other == post_id:
            continue
        a, b = sorted((post_id, other))
        session.execute(
            delete(IncidentConstraint).where(
                IncidentConstraint.kind == opposite, IncidentConstraint.post_id == a, IncidentConstraint.other_post_id == b
            )
        )
        rows.append(
            {"kind": kind, "post_id": a, "other_post_id": b, "action": action, "created_by": actor_id, "created_at": now}
        )
    if rows:
        session.execute(upsert_insert(session, IncidentConstraint).on_conflict_do_nothing(), rows)
    return len(rows)


def merge_incidents(
    session: Session, into_id: int, other_id: int, *, actor_id: int | None = None, now: dt.datetime | None = None
) -> EditResult:
    """The posts of ``other`` join ``into``; ``other`` becomes ``merged`` into it; must_link pairs
    between the two incidents' representatives are recorded."""
    now = now or utcnow()
    if into_id == other_id:
        raise InvalidInput("不能把事件和它自己合并：请选择另一个事件")
    into, other = get_incident(session, into_id), get_incident(session, other_id)
    if other.status == "merged" and other.merged_into_id == into.id:
        return EditResult(changed=False, incident_ids=[into.id, other.id])
    _live(into)
    _live(other)
    into_reps = representatives(session, into.id)
    other_reps = representatives(session, other.id)
    session.execute(update(Post).where(Post.incident_id == other.id).values(incident_id=into.id))
    other.status, other.merged_into_id, other.updated_at = "merged", into.id, now
    for pid in other_reps:
        _constrain(session, "must_link", pid, into_reps[:2], action="merge", actor_id=actor_id, now=now)
    session.flush()
    recompute(session, [into.id, other.id], now=now)
    return EditResult(changed=True, incident_ids=[into.id, other.id])


def split_post(
    session: Session,
    incident_id: int,
    post_id: int,
    *,
    new_incident: bool = True,
    actor_id: int | None = None,
    now: dt.datetime | None = None,
) -> EditResult:
    """Take ``post_id`` out of ``incident_id``: it starts its own incident (or, with
    ``new_incident=False``, belongs to none); cannot_link pairs with the incident's representatives."""
    now = now or utcnow()
    incident, post = get_incident(session, incident_id), _get_post(session, post_id)
    if post.incident_id != incident.id:
        if _was_split_from(session, post_id, incident.id):  # the same split again
            return EditResult(changed=False, incident_ids=[incident.id], new_incident_id=post.incident_id)
        raise Conflict(f"帖子 #{post_id} 不在事件 #{incident_id} 中：请刷新页面后再操作")
    _live(incident)
    remaining = representatives(session, incident.id, exclude=[post_id])
    if not remaining:
        raise Conflict(f"事件 #{incident_id} 只有这一条帖子，无需拆分")
    _constrain(session, "cannot_link", post_id, remaining, action="split", actor_id=actor_id, now=now)
    new_id: int | None = None
    if new_incident:
        at = post.published_at or post.collected_at
        created = Incident(
            kind="unknown",
            title=None,
            representative_post_id=post.id,
            first_seen=at,
            last_seen=at,
            category=post.category,
            places=[p for p in post.places or [] if isinstance(p, str)],
            status="active",
            created_at=now,
            updated_at=now,
        )
        session.add(created)
        session.flush()
        new_id = created.id
    post.incident_id = new_id
    if incident.representative_post_id == post.id:
        incident.representative_post_id = remaining[0]
    session.flush()
    recompute(session, [incident.id, *([new_id] if new_id else [])], now=now)
    return EditResult(changed=True, incident_ids=[incident.id, *([new_id] if new_id else [])], new_incident_id=new_id)


def _was_split_from(session: Session, post_id: int, incident_id: int) -> bool:
    """Whether staff split ``post_id`` out of ``incident_id``: a split's cannot_link pair joins it to
    a post still in that incident."""
    partners = set()
    for a, b in session.execute(
        select(IncidentConstraint.post_id, IncidentConstraint.other_post_id).where(
            IncidentConstraint.action == "split",
            IncidentConstraint.kind == "cannot_link",
            (IncidentConstraint.post_id == post_id) | (IncidentConstraint.other_post_id == post_id),
        )
    ):
        partners.add(b if a == post_id else a)
    if not partners:
        return False
    return (
        session.scalar(
            select(Post.id).where(Post.id.in_(list(partners)), Post.incident_id == incident_id).limit(1)
        )
        is not None
    )


def move_post(
    session: Session,
    incident_id: int,
    post_id: int,
    to_incident_id: int,
    *,
    actor_id: int | None = None,
    now: dt.datetime | None = None,
) -> EditResult:
    """Move ``post_id`` from ``incident_id`` to ``to_incident_id``: must_link with the target's
    representatives, cannot_link with those of the incident it left."""
    now = now or utcnow()
    if incident_id == to_incident_id:
        raise InvalidInput("目标事件与当前事件相同：请选择另一个事件")
    source, target = get_incident(session, incident_id), get_incident(session, to_incident_id)
    post = _get_post(session, post_id)
    if post.incident_id == target.id:
        return EditResult(changed=False, incident_ids=[source.id, target.id])  # already moved
    if post.incident_id != source.id:
        raise Conflict(f"帖子 #{post_id} 不在事件 #{incident_id} 中：请刷新页面后再操作")
    _live(source)
    _live(target)
    _constrain(session, "must_link", post_id, representatives(session, target.id), action="move",
               actor_id=actor_id, now=now)
    left = representatives(session, source.id, exclude=[post_id])
    _constrain(session, "cannot_link", post_id, left, action="move", actor_id=actor_id, now=now)
    post.incident_id = target.id
    if source.representative_post_id == post.id:
        source.representative_post_id = left[0] if left else None
    session.flush()
    recompute(session, [source.id, target.id], now=now)
    return EditResult(changed=True, incident_ids=[source.id, target.id])


def incident_for_posts(
    session: Session, post_ids: Sequence[int], *, now: dt.datetime | None = None
) -> Incident:
    """An incident for posts that have none (an alert raised before incidents existed, which staff
    now merge): the posts without an incident join a new one (its kind, title and stats from the
    recount)."""
    now = now or utcnow()
    rows = session.execute(
        select(Post.id, Post.published_at, Post.collected_at, Post.category).where(
            Post.id.in_(list(post_ids)), Post.incident_id.is_(None)
        )
    ).all()
    if not rows:
        raise Conflict("这些帖子都已属于某个事件：请直接合并那些事件")
    times = [r.published_at or r.collected_at for r in rows]
    incident = Incident(
        kind="unknown",
        representative_post_id=rows[0].id,
        first_seen=min(times),
        last_seen=max(times),
        category=next((r.category for r in rows if r.category), None),
        status="active",
        created_at=now,
        updated_at=now,
    )
    session.add(incident)
    session.flush()
    session.execute(update(Post).where(Post.id.in_([r.id for r in rows])).values(incident_id=incident.id))
    recompute(session, [incident.id], now=now)
    return incident


def recompute(session: Session, incident_ids: Sequence[int], *, now: dt.datetime | None = None) -> None:
    """Recount the incidents' stats from their posts after an edit (nlp.incident_stats, the same
    count the grouping stage writes: roles, spread, risk and its parts, kind, headline), then let
    the session re-read them (the recount writes with plain UPDATEs)."""
    recompute_incidents(session, incident_ids, now=now or utcnow())
    for incident_id in {i for i in incident_ids if i}:
        incident = session.get(Incident, incident_id)
        if incident is not None:
            session.expire(incident)
