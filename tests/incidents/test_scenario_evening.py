"""Grouping on a whole tune evening pushed through the real API (bench.bench_incidents's path:
OneBot and JSON pushes, analyze and alert evaluation each round), for what only a full stream
shows: which bigrams are rare enough to bind two posts depends on everything else said that day."""

from __future__ import annotations

import pytest

from bench.bench_incidents import run_township
from bench.scenarios import load_scenarios

pytestmark = pytest.mark.slow


def test_a_works_notice_never_joins_a_scam_notice_through_dates_and_official_phrasing(
        fresh_db_url: str, shipped_model_dir) -> None:
    """柳河镇, 2026-11-20: the fake 取暖补贴 notice ("根据上级文件精神 … 进行登记 … 11月25日截止") and
    the true bridge-works notice ("11月21日至12月5日 … 进行维修加固") share only date fragments and
    official phrasing; with the chat stream's frequencies those bigrams are rare, so they bound the
    works notice (and the questions after it) to the scam's incident and alert."""
    ev = next(e for e in load_scenarios("tune") if e.slug == "liuhe" and e.date.isoformat() == "2026-11-20")
    run = run_township([ev], fresh_db_url, progress=False)
    posts = list(run.posts.values())
    scam = {pt.incident_id for pt in posts if pt.matter == ("liuhe", "lh-subsidy")} - {None}
    notice = next(pt for pt in posts if pt.matter == ("liuhe", "lh-road-xl") and "石板桥" in pt.message.text)
    assert scam and notice.incident_id is not None and notice.incident_id not in scam
