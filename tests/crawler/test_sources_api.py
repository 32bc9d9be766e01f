"""/api/v1/sources: viewers read the list with last-run stats; only admins switch sources on and off."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.db import session_scope
from core.ingest import ingest_posts
from core.tables import SourceRun
from crawler import service
from crawler.config import parse_sources


def _seed(engine: Engine) -> dict[str, int]:
    raw = {"sources": [
        {"name": f"信息源{i:02d}", "kind": "feed", "urls": [f"https://s{i}.example.cn/rss"], "interval": "15m"}
        for i in range(25)]}
    with session_scope(engine) as s:
        ids = service.sync_sources(s, parse_sources(raw).sources)
        s.add(SourceRun(source_id=ids["信息源00"], status="partial", pages_fetched=3, items_new=2,
                        finished_at=dt.datetime.now(dt.UTC),
                        errors=[{"url": "https://s0.example.cn/x", "reason": "HTTP 500"}], stats={"errors_total": 1}))
        s.add(SourceRun(source_id=ids["信息源00"], status="ok", pages_fetched=5, items_new=4,
                        finished_at=dt.datetime.now(dt.UTC), errors=[], stats={}))
        ingest_posts(s, [{"source": "信息源00", "source_kind": "feed", "url": f"https://s0.example.cn/{i}",
                          "text": f"柳树村第{i}条"} for i in range(3)])
    return ids


def test_list_sources_with_last_run(api_client: TestClient, api_engine: Engine,
                                    make_user: Callable[[str], dict[str, str]]) -> None:
    ids = _seed(api_engine)
    viewer = make_user("viewer")
    page1 = api_client.get("/api/v1/sources", headers=viewer, params={"page_size": 10})
    assert page1.status_code == 200
    body = page1.json()
    assert body["total"] == 25 and len(body["items"]) == 10 and body["page"] == 1
    first = body["items"][0]
    assert first["name"] == "信息源00" and first["id"] == ids["信息源00"]
    assert first["post_count"] == 3 and first["urls"] == ["https://s0.example.cn/rss"]
    assert first["last_run"]["status"] == "ok" and first["last_run"]["items_new"] == 4
    assert body["items"][1]["last_run"] is None
    page3 = api_client.get("/api/v1/sources", headers=viewer, params={"page": 3, "page_size": 10}).json()
    assert [s["name"] for s in page3["items"]] == [f"信息源{i}" for i in range(20, 25)]
    runs = api_client.get(f"/api/v1/sources/{ids['信息源00']}/runs", headers=viewer).json()
    assert [r["status"] for r in runs] == ["ok", "partial"]
    assert runs[1]["errors"][0]["reason"] == "HTTP 500" and runs[1]["error_count"] == 1
    assert api_client.get("/api/v1/sources").status_code == 401
    assert api_client.get("/api/v1/sources/999999/runs", headers=viewer).status_code == 404


def test_only_admins_enable_and_disable(api_client: TestClient, api_engine: Engine,
                                        make_user: Callable[[str], dict[str, str]]) -> None:
    ids = _seed(api_engine)
    sid = ids["信息源03"]
    for role in ("viewer", "staff", "analyst"):
        denied = api_client.patch(f"/api/v1/sources/{sid}", headers=make_user(role), json={"enabled": False})
        assert denied.status_code == 403, role
    admin = make_user("admin")
    off = api_client.patch(f"/api/v1/sources/{sid}", headers=admin, json={"enabled": False})
    assert off.status_code == 200 and off.json()["enabled"] is False
    with session_scope(api_engine) as s:
        assert service.source_enabled(s, "信息源03") is False
        # Re-reading the unchanged YAML keeps the admin's switch.
        service.sync_sources(s, parse_sources({"sources": [
            {"name": "信息源03", "kind": "feed", "urls": ["https://s3.example.cn/rss"], "interval": "15m"}]}).sources)
        assert service.source_enabled(s, "信息源03") is False
        # Editing `enabled` in the file is a newer decision, and wins.
        service.sync_sources(s, parse_sources({"sources": [
            {"name": "信息源03", "kind": "feed", "urls": ["https://s3.example.cn/rss"], "interval": "15m",
             "enabled": False}]}).sources)
        service.sync_sources(s, parse_sources({"sources": [
            {"name": "信息源03", "kind": "feed", "urls": ["https://s3.example.cn/rss"], "interval": "15m",
             "enabled": True}]}).sources)
        assert service.source_enabled(s, "信息源03") is True
    for bad in ({"enabled": "maybe"}, {}, {"enabled": True, "name": "x"}):
        assert api_client.patch(f"/api/v1/sources/{sid}", headers=admin, json=bad).status_code == 422
    assert api_client.patch("/api/v1/sources/999999", headers=admin, json={"enabled": True}).status_code == 404


def test_runs_left_running_by_a_killed_crawl_are_closed(session: Session) -> None:
    src = parse_sources({"sources": [{"name": "被杀的源", "kind": "feed", "urls": ["https://k.example.cn/rss"],
                                      "interval": "1m"}]}).sources[0]
    sid = service.sync_sources(session, [src])["被杀的源"]
    old = SourceRun(source_id=sid, status="running", started_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    recent = SourceRun(source_id=sid, status="running", started_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    session.add_all([old, recent])
    session.flush()
    new_id = service.start_run(session, src)
    session.refresh(old)
    session.refresh(recent)
    assert old.status == "interrupted" and "运行中断" in old.errors[0]["reason"] and old.finished_at is not None
    assert recent.status == "running"  # might still be alive (another worker, a manual run)
    assert session.get(SourceRun, new_id).status == "running"


def test_a_run_whose_process_is_gone_is_interrupted_at_once(session: Session) -> None:
    import subprocess
    import sys

    from core.lifecycle import worker_id

    src = parse_sources({"sources": [{"name": "刚被杀的源", "kind": "feed", "urls": ["https://k.example.cn/rss"],
                                      "interval": "10m"}]}).sources[0]
    sid = service.sync_sources(session, [src])["刚被杀的源"]
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid now names no process
    host = worker_id().rpartition(":")[0]
    killed = SourceRun(source_id=sid, status="running", stats={"worker": f"{host}:{gone.pid}"},
                       started_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30))
    alive = SourceRun(source_id=sid, status="running", stats={"worker": worker_id()},
                      started_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30))
    session.add_all([killed, alive])
    session.flush()
    service.start_run(session, src)
    session.refresh(killed)
    session.refresh(alive)
    assert killed.status == "interrupted" and killed.finished_at is not None
    assert alive.status == "running"  # our own process: alive
