"""The incident benchmark's mechanics on one tune evening pushed through the real API on a fresh
database (SQLite, or PostgreSQL with YUQING_TEST_DATABASE=postgres). The figures themselves are
measured by ``python -m bench.bench_incidents``, never asserted here."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bench.bench_incidents import b_cubed, render_part, rounds, run_township, score
from bench.scenarios import load_scenarios
from core.db import make_engine, session_scope
from core.tables import ChatGroup, Post

pytestmark = pytest.mark.slow


def test_b_cubed_of_known_clusterings() -> None:
    assert b_cubed([(1, "a"), (1, "a"), (2, "b")]) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    lumped = b_cubed([(1, "a"), (1, "a"), (1, "b"), (1, "b")])
    assert lumped["precision"] == 0.5 and lumped["recall"] == 1.0
    split = b_cubed([(1, "a"), (2, "a")])
    assert split["precision"] == 1.0 and split["recall"] == 0.5


def test_rounds_cover_every_message_once_in_time_order() -> None:
    ev = load_scenarios("tune")[0]
    windows = list(rounds([(ev, m) for m in ev.messages], 60))
    seen = [m.id for _, w in windows for _, m in w]
    assert sorted(seen) == sorted(m.id for m in ev.messages) and len(set(seen)) == len(seen)
    for end, w in windows:
        assert all(m.time < end for _, m in w)
    assert len(windows) >= 2


def test_one_evening_through_push_analyze_and_evaluate(fresh_db_url: str, shipped_model_dir) -> None:
    ev = min((e for e in load_scenarios("tune")), key=lambda e: len(e.messages))
    run = run_township([ev], fresh_db_url, progress=False)
    assert run.rejected == 0 and run.rounds >= 2
    assert len(run.posts) == len(ev.messages)  # every message stored and mapped back to its truth
    assert {pt.message.id for pt in run.posts.values()} == {m.id for m in ev.messages}
    assert run.columns["posts.role"] and run.columns["posts.incident_id"]
    assert all(p in run.posts for a in run.alerts for p in a.evidence)

    # replies survive both push routes: OneBot (qq groups) and the JSON batch (wechat groups)
    engine = make_engine(fresh_db_url)
    try:
        with session_scope(engine) as s:
            parent = {p.id: p.parent_id for p in s.scalars(select(Post))}
            platforms = set(s.scalars(select(ChatGroup.platform)))
    finally:
        engine.dispose()
    replies = [pt for pt in run.posts.values() if pt.message.reply_to is not None]
    assert replies and platforms >= {"qq", "wechat"}
    by_message = {pt.message.id: pid for pid, pt in run.posts.items()}
    for pt in replies:
        assert parent[pt.post_id] == by_message[pt.message.reply_to], pt.message

    figures = score([run])
    assert figures["posts_stored"] == len(ev.messages) and figures["alerts"] == len(run.alerts)
    assert figures["rumor_matters_alerted"] + figures["rumor_matters_missed"] == figures["rumor_matters"]
    assert figures["grouping_by"] in ("incident_id", "story_id")
    assert 0.0 <= figures["grouping_b3_all_posts"]["f1"] <= 1.0
    markdown = "\n".join(render_part("tune", figures))
    assert "alerts per matter" in markdown and ev.slug in markdown
