"""The digest notes a move of the estimated rumor share (nlp.prevalence_store.move_note)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from core.tables import PrevalenceEstimate
from digest.build import build_summary
from digest.render import render
from tests.digest.factories import local
from tests.digest.test_digest_build import SETTINGS


def _estimate(db: Session, channel: str, value: float, at: dt.datetime) -> None:
    db.add(PrevalenceEstimate(channel=channel, window_start=at - dt.timedelta(days=7), window_end=at, estimate=value,
                              lower=value * 0.8, upper=value * 1.25, method="bbe", n=900, n_labels=0,
                              model_version_id=None, target_precision=0.8, threshold=0.6, created_at=at))
    db.flush()


def test_a_moving_rumor_share_is_noted_and_a_steady_one_is_not(db: Session) -> None:
    day = dt.date(2026, 6, 10)
    _estimate(db, "chat", 0.010, local(day - dt.timedelta(days=1), 8))
    _estimate(db, "web", 0.030, local(day - dt.timedelta(days=1), 8))
    _estimate(db, "chat", 0.031, local(day, 9))  # chat tripled during the day
    _estimate(db, "web", 0.034, local(day, 9))  # web barely moved
    s = build_summary(db, day, settings=SETTINGS, now=local(day, 20))
    note = s["prevalence_note"]
    assert note is not None and "群聊谣言占比估计由 1.0% 上升到 3.1%" in note and "网页" not in note
    out = render(s, title="青禾镇舆情日报")
    assert "【谣言占比】群聊谣言占比估计由 1.0% 上升到 3.1%" in out.text and "谣言占比：" in out.html
    quiet = build_summary(db, day + dt.timedelta(days=1), settings=SETTINGS, now=local(day + dt.timedelta(days=1), 20))
    assert quiet["prevalence_note"] is None
    assert "【谣言占比】" not in render(quiet, title="青禾镇舆情日报").text
