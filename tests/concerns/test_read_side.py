"""`yuqing topics` and the topics API on a database where a concern burst at 14:00."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from core.db import make_engine, session_scope
from nlp.concerns.queries import hot_topics, parse_since, topics_by_day
from tests.concerns.conftest import DAY, run_stage, synthetic_day
from yuqing.cli import app

runner = CliRunner()
AFTER_BURST = DAY + dt.timedelta(hours=15)


def _fill(url: str) -> None:
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            run_stage(session, synthetic_day(until_hour=14), now=DAY + dt.timedelta(hours=14))
        with session_scope(engine) as session:
            run_stage(session, synthetic_day(from_hour=14, until_hour=15), now=AFTER_BURST)
    finally:
        engine.dispose()


def test_hot_topics_query_and_by_day(session: Session) -> None:
    run_stage(session, synthetic_day(until_hour=14), now=DAY + dt.timedelta(hours=14))
    run_stage(session, synthetic_day(from_hour=14, until_hour=15), now=AFTER_BURST)
    hot, total = hot_topics(session, now=AFTER_BURST, since=dt.timedelta(hours=24))
    assert total >= 1 and hot[0].is_hot and "口罩" in hot[0].keywords
    assert hot[0].recent_count >= 40 and hot[0].is_local and "东湾村" in hot[0].places
    assert all("青禾菜市场" not in t.keywords for t in hot)  # the steady topic is never listed
    by_day, n = topics_by_day(session, DAY.date(), tz="Asia/Shanghai")
    assert n == total and by_day[0].id == hot[0].id
    assert topics_by_day(session, (DAY - dt.timedelta(days=1)).date(), tz="Asia/Shanghai")[1] == 0
    # a day later nothing is hot now, and "the last 24 hours" no longer holds the burst
    later = AFTER_BURST + dt.timedelta(days=2)
    assert hot_topics(session, now=later, since=dt.timedelta(hours=24))[1] <= total


@pytest.mark.parametrize("bad", ["", "24", "h", "-3h", "0h", "3y", "9999w"])
def test_parse_since_rejects_nonsense(bad: str) -> None:
    from core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="时间范围"):
        parse_since(bad)


def test_topics_command_prints_the_hot_topic(fresh_db_url: str) -> None:
    _fill(fresh_db_url)
    result = runner.invoke(app, ["topics", "--since", "24h", "--now", "2026-11-28T15:00"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "热点话题" in result.output and "口罩" in result.output and "物资供应" in result.output
    assert "东湾村" in result.output and "热点中" in result.output
    assert "菜市场" not in result.output.split("突增关键词")[0]
    narrow = runner.invoke(app, ["topics", "--since", "24h", "--now", "2026-11-28T15:00"], env={"COLUMNS": "80"})
    assert narrow.exit_code == 0, narrow.output
    lines = narrow.output.split("突增关键词")[0].splitlines()
    assert max(len(line) for line in lines) <= 80 and "┃" not in narrow.output  # blocks, not a folded table
    block = next(line for line in lines if "口罩" in line)
    assert block.startswith("#") and "热点中" in block
    assert any("类别 物资供应" in line and "地点" in line and "东湾村" in line for line in lines)
    quiet = runner.invoke(app, ["topics", "--since", "24h", "--now", "2026-11-25T15:00"])
    assert quiet.exit_code == 0 and "没有热点话题" in quiet.output
    bad = runner.invoke(app, ["topics", "--since", "yesterday"])
    assert bad.exit_code == 2 and "时间范围" in bad.output


def test_topics_api(api_client, make_user, api_engine) -> None:
    _fill(str(api_engine.url.render_as_string(hide_password=False)))
    viewer = make_user("viewer")
    assert api_client.get("/api/v1/topics/hot").status_code == 401
    day = api_client.get("/api/v1/topics/by-day", params={"day": "2026-11-28"}, headers=viewer)
    assert day.status_code == 200, day.text
    body = day.json()
    assert body["total"] >= 1 and body["page"] == 1
    first = body["items"][0]
    assert "口罩" in first["keywords"] and first["category"] == "物资供应"
    one = api_client.get(f"/api/v1/topics/{first['id']}", headers=viewer)
    assert one.status_code == 200 and one.json()["label"] == first["label"]
    assert api_client.get("/api/v1/topics/999999", headers=viewer).status_code == 404
    hot_now = api_client.get("/api/v1/topics/hot", params={"since": "30d", "page_size": 1}, headers=viewer)
    assert hot_now.status_code == 200 and hot_now.json()["page_size"] == 1
    for params in ({"since": "soon"}, {"page": 0}, {"page_size": 1000}):
        bad = api_client.get("/api/v1/topics/hot", params=params, headers=viewer)
        assert bad.status_code == 422, (params, bad.text)
    assert api_client.get("/api/v1/topics/by-day", params={"day": "28/11"}, headers=viewer).status_code == 422
    assert api_client.get("/api/v1/topics/abc", headers=viewer).status_code == 422
    kw = api_client.get("/api/v1/topics/keywords/hot", headers=viewer)
    assert kw.status_code == 200 and isinstance(kw.json(), list)
    assert re.match(r"^\d{4}-", first["first_seen"])
