"""Posts that refute a rumor while quoting it: evidence of the story, never counted as spreading it.

The sentences are ours. Each refuting post is given what the analysis really gives such a post: a
high rumor score (it talks about the lockdown), a close debunk match (it quotes the claim), and a
place in the rumor's story, whose aggregates then include it.
"""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts import evaluate as evaluation
from alerts.notify import NotifyConfig
from alerts.rules import load_rules, parse_rules
from core.db import session_scope
from core.tables import Alert, AlertPost, Debunk, Post, Story, utcnow
from tests.factories import make_debunk, make_debunk_match, make_group, make_post, make_score, make_story

NOW = dt.datetime(2026, 11, 28, 6, 30, tzinfo=dt.UTC)
QUIET = NotifyConfig()
LOCKDOWN_CLAIM = "青禾镇下周封城，所有路口设卡"
SPREADING = "听说青禾镇下周要封城了，所有路口都要设卡，赶紧去超市囤米囤油！"
REFUTING = "镇政府已经发了说明，没有封城安排，大家不要转发谣言"
REFUTING_TOO = "经核实，网传青禾镇下周封城的消息不实，请以镇政府发布的信息为准"
# A denied denial: "谣言" is there, but the post says the lockdown is real. The rule drops
# "不是谣言" (and "并非谣言", "是谣言吗") before looking for cues, and a post that also affirms the
# claim ("是真的", "真要") is never a refutation, so this one spreads the rumor.
NEGATED = "不是谣言，是真的要封城了，青禾镇下周所有路口设卡，赶紧囤货"


def _debunk(session: Session) -> Debunk:
    return make_debunk(session, claim=LOCKDOWN_CLAIM, refutation="青禾镇人民政府说明：没有任何封控安排。",
                       category="公共安全")


def _add_post(session: Session, story: Story, text: str, *, probability: float, debunk: Debunk,
              similarity: float, now: dt.datetime = NOW) -> Post:
    """A post joining ``story`` in a new group, with the story's aggregates updated as nlp does."""
    post = make_post(session, text, story_id=story.id, group_id=make_group(session).id, now=now)
    make_score(session, post, probability)
    make_debunk_match(session, post, debunk, similarity)
    hour = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H")
    story.post_count += 1
    story.group_count += 1
    story.hourly_counts = {**story.hourly_counts, hour: story.hourly_counts.get(hour, 0) + 1}
    story.last_seen = max(story.last_seen, now)
    story.max_rumor_probability = max(story.max_rumor_probability or 0.0, probability)
    if similarity > (story.debunk_similarity or 0.0):
        story.debunk_id, story.debunk_similarity = debunk.id, similarity
    story.representative_post_id = story.representative_post_id or post.id
    session.flush()
    return post


def _story_of(session: Session, *posts: tuple[str, float, float], debunk: Debunk,
              now: dt.datetime = NOW) -> tuple[Story, list[Post]]:
    story = make_story(session, title=None, now=now)
    return story, [_add_post(session, story, text, probability=p, debunk=debunk, similarity=sim, now=now)
                   for text, p, sim in posts]


def _alerts(session: Session, story: Story) -> list[Alert]:
    return list(session.scalars(select(Alert).where(Alert.story_id == story.id)))


def test_spreading_post_opens_an_alert_and_a_refuting_one_does_not(session: Session) -> None:
    debunk = _debunk(session)
    spreading, _ = _story_of(session, (SPREADING, 0.6, 0.9), debunk=debunk)
    refuting, _ = _story_of(session, (REFUTING, 0.9, 0.92), (REFUTING_TOO, 0.85, 0.9), debunk=debunk)
    negated, _ = _story_of(session, (NEGATED, 0.6, 0.9), debunk=debunk)

    evaluation.evaluate(session, now=NOW, notify_config=QUIET)

    [alert] = _alerts(session, spreading)
    assert alert.kind == "debunk_match" and alert.severity in ("medium", "high", "urgent")
    assert _alerts(session, refuting) == []  # by score and match alone it would rank above the first
    [negated_alert] = _alerts(session, negated)
    assert negated_alert.risk_score == pytest.approx(alert.risk_score)


def test_refuting_lone_post_does_not_trip_a_watched_keyword(session: Session) -> None:
    rules = parse_rules("""
rules:
  - {id: watch-lockdown, name: 监测方案：封城, kind: keyword, any: [封城], severity: 40}
""")
    spreads = make_post(session, SPREADING, now=NOW)
    refutes = make_post(session, REFUTING, now=NOW)

    result = evaluation.evaluate(session, now=NOW, rules=rules, notify_config=QUIET)

    [alert] = session.scalars(select(Alert).where(Alert.id.in_(result.created)))
    assert alert.kind == "keyword"
    assert set(session.scalars(select(AlertPost.post_id).where(AlertPost.alert_id == alert.id))) == {spreads.id}
    assert refutes.id not in set(session.scalars(select(AlertPost.post_id)))


def test_refutations_folding_into_an_open_alert_do_not_raise_it(session: Session) -> None:
    debunk = _debunk(session)
    story, [first] = _story_of(session, (SPREADING, 0.6, 0.8), debunk=debunk)
    evaluation.evaluate(session, now=NOW, notify_config=QUIET)
    [alert] = _alerts(session, story)
    severity, score, parts = alert.severity, alert.risk_score, alert.score_parts

    later = NOW + dt.timedelta(minutes=30)
    refutations = [_add_post(session, story, text, probability=0.97, debunk=debunk, similarity=0.97, now=later)
                   for text in (REFUTING, REFUTING_TOO, "别信群里的传言，镇里没有封城的计划", "纯属谣言，青禾镇不会封城")]
    result = evaluation.evaluate(session, now=later, notify_config=QUIET)

    assert result.created == [] and result.rising == []
    assert (alert.severity, alert.risk_score, alert.score_parts) == (severity, score, parts)
    assert alert.post_count == 1 and alert.group_count == 1
    evidence = set(session.scalars(select(AlertPost.post_id).where(AlertPost.alert_id == alert.id)))
    assert evidence == {first.id, *(p.id for p in refutations)}

    # the same growth in spreading posts does raise it (so the check above can fail)
    even_later = later + dt.timedelta(minutes=30)
    for _ in range(4):
        _add_post(session, story, SPREADING, probability=0.97, debunk=debunk, similarity=0.97, now=even_later)
    result = evaluation.evaluate(session, now=even_later, notify_config=QUIET)
    assert result.rising == [alert.id] and alert.risk_score > score and alert.post_count == 5


def test_story_with_both_is_scored_on_spreading_posts_and_marks_refutations_in_evidence(
    api_client: TestClient, api_engine, make_user
) -> None:
    viewer = make_user("viewer")
    now = utcnow()
    with session_scope(api_engine) as s:
        debunk = _debunk(s)
        story, posts = _story_of(
            s, (SPREADING, 0.6, 0.82), (REFUTING, 0.97, 0.95), (REFUTING_TOO, 0.95, 0.93), debunk=debunk, now=now
        )
        evaluation.evaluate(s, now=now, notify_config=QUIET)
        [alert] = _alerts(s, story)
        alert_id, rules_fired = alert.id, {r["id"] for r in alert.rules_fired}
        parts, post_count = alert.score_parts, alert.post_count
        ids = {p.raw_text: p.id for p in posts}

    # measured on the one spreading post, though the story's own aggregates hold all three
    assert post_count == 1 and parts["groups"]["value"] == 1
    assert parts["rumor"]["value"] == pytest.approx(0.6) and parts["debunk"]["value"] == pytest.approx(0.82)
    assert "multi-group-spread" not in rules_fired and "debunk-match" in rules_fired
    assert load_rules().thresholds.medium <= sum(p["points"] for p in parts.values())

    response = api_client.get(f"/api/v1/alerts/{alert_id}", headers=viewer)
    assert response.status_code == 200
    shown = {p["id"]: p for p in response.json()["posts"]}
    assert set(shown) == set(ids.values())  # refutations stay in the evidence
    spreading = shown[ids[SPREADING]]
    assert spreading["refutes"] is False and spreading["stance"] is None and spreading["refutation_cues"] == []
    for text in (REFUTING, REFUTING_TOO):
        post = shown[ids[text]]
        assert post["refutes"] is True and post["stance"] == "辟谣/澄清"
    assert {"没有…安排", "谣言", "官方说明"} <= set(shown[ids[REFUTING]]["refutation_cues"])
    assert {"不实", "经核实"} <= set(shown[ids[REFUTING_TOO]]["refutation_cues"])


def test_a_story_founded_by_a_refutation_is_titled_by_its_first_spreading_post(session: Session) -> None:
    """Staff read the claim going round in the alert's title, not the denial that happened to come first."""
    debunk = _debunk(session)
    later = NOW + dt.timedelta(minutes=20)
    story, _ = _story_of(session, (REFUTING_TOO, 0.9, 0.93), debunk=debunk)
    story.title = REFUTING_TOO[:30]  # as nlp titles a story: by its founder
    _add_post(session, story, SPREADING, probability=0.8, debunk=debunk, similarity=0.85, now=later)
    _add_post(session, story, NEGATED, probability=0.8, debunk=debunk, similarity=0.8,
              now=later + dt.timedelta(minutes=5))
    evaluation.evaluate(session, now=later + dt.timedelta(minutes=10), notify_config=QUIET)
    [alert] = _alerts(session, story)
    assert alert.title.startswith("听说青禾镇下周要封城了") and "不实" not in alert.title
    assert alert.summary.startswith("听说青禾镇下周要封城了")

