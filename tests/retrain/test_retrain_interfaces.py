"""Retraining through its real interfaces: the CLI, the API, and a running server's hot swap."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from api import accounts
from api.app import create_app
from core.db import make_engine, session_scope
from core.ingest import ingest_posts
from core.settings import get_settings
from core.tables import Post
from nlp.registry import trained_dir
from nlp.scoring import load_scorer
from tests.fixtures.labelled_texts import labelled_texts, write_csv
from yuqing.cli import app

runner = CliRunner()


@pytest.fixture
def env(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shipped_model_dir: Path) -> Path:
    monkeypatch.setenv("YUQING_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    texts, labels = labelled_texts(150, seed=11)  # enough that promotion can decide (one in five is evaluated)
    write_csv(tmp_path / "labels.csv", texts, labels)
    return tmp_path


def _token(url: str, role: str) -> dict[str, str]:
    engine = make_engine(url)
    with session_scope(engine) as s:
        user = accounts.create_user(s, username=f"u-{role}", role=role, password="password123")
        token = accounts.create_token(s, user, "t")
    engine.dispose()
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.slow
def test_a_model_trained_here_keeps_the_office_words(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the place names of places.yaml (石桥村) and the lines of YUQING_SEGMENT_DICT (a GBK file, as
    # Notepad on a Chinese Windows saves it) become words of the new model, inside its file
    (env / "local.txt").write_bytes("# 本地词\n柳絮坪 ns\n".encode("gbk"))
    monkeypatch.setenv("YUQING_SEGMENT_DICT", str(env / "local.txt"))
    get_settings.cache_clear()
    trained = runner.invoke(app, ["train", "--data", str(env / "labels.csv"), "--name", "local-words",
                                  "--cv-folds", "0"])
    assert trained.exit_code == 0, trained.output
    folder = trained_dir() / "local-words"
    (env / "local.txt").unlink()  # the model no longer needs the file
    scorer = load_scorer(folder / "model.skops")
    assert {"石桥村", "柳絮坪"} <= set(scorer.features.segmenter.cut("石桥村又停水了，柳絮坪的路也封了"))
    assert "local lines" in (folder / "card.md").read_text(encoding="utf-8")
    missing = runner.invoke(app, ["train", "--data", str(env / "labels.csv"), "--name", "no-dict", "--cv-folds", "0"])
    assert missing.exit_code == 1 and "YUQING_SEGMENT_DICT" in missing.output


@pytest.mark.slow
def test_cli_train_list_promote_rollback(env: Path) -> None:
    trained = runner.invoke(app, ["train", "--data", str(env / "labels.csv"), "--name", "cli-1", "--cv-folds", "2"])
    assert trained.exit_code == 0, trained.output
    assert "cli-1" in trained.output and "macro-F1" in trained.output
    listed = runner.invoke(app, ["models", "list"])
    assert "cli-1" in listed.output and "tiny-shipped" in listed.output and "使用中" in listed.output
    promoted = runner.invoke(app, ["models", "promote", "cli-1"])
    assert promoted.exit_code == 0, promoted.output
    assert runner.invoke(app, ["models", "rollback"]).exit_code == 0
    again = runner.invoke(app, ["models", "rollback"])
    assert again.exit_code == 1 and "回滚" in again.output
    missing = runner.invoke(app, ["models", "promote", "nope"])
    assert missing.exit_code == 1 and "不存在" in missing.output


def test_cli_labels_import_and_conflicts(env: Path) -> None:
    path = env / "mixed.csv"
    path.write_text("text,label\n石桥村要封村了,1\n石桥村要封村了,0\n镇政府发布停水通知,0\n", encoding="utf-8")
    out = runner.invoke(app, ["labels", "import", str(path)])
    # one file cannot say both: the contradicting row is reported by line, neither silently wins
    assert out.exit_code == 0 and "新增或更新 2 条" in out.output and "跳过 1 行" in out.output
    assert "第 3 行" in out.output and "结论相反" in out.output
    # a corrected re-import replaces the earlier verdict instead of making a conflict
    path.write_text("text,label\n石桥村要封村了,0\n", encoding="utf-8")
    again = runner.invoke(app, ["labels", "import", str(path)])
    assert again.exit_code == 0 and "新增或更新 1 条" in again.output and "矛盾" not in again.output
    assert "石桥村要封村了" not in runner.invoke(app, ["labels", "conflicts"]).output
    bad = runner.invoke(app, ["labels", "import", str(env / "nope.csv")])
    assert bad.exit_code == 1


def test_api_roles_labels_and_queue(env: Path, fresh_db_url: str) -> None:
    from fastapi.testclient import TestClient

    engine = make_engine(fresh_db_url)
    with session_scope(engine) as s:
        ingest_posts(s, [{"source": "测试", "external_id": "p1", "text": "听说东湾村明天停水，赶紧存水！！"}])
        post_id = s.query(Post).one().id
    analyst, staff, viewer = _token(fresh_db_url, "analyst"), _token(fresh_db_url, "staff"), _token(fresh_db_url, "viewer")
    with TestClient(create_app(engine)) as client:
        assert client.get("/api/v1/models", headers=viewer).status_code == 403
        listed = client.get("/api/v1/models", headers=analyst).json()
        assert listed["total"] == 1 and listed["items"][0]["status"] == "active"
        scored = client.post("/api/v1/models/score", json={"texts": ["紧急扩散！！青禾镇明天封城，快去抢菜"]}, headers=staff)
        item = scored.json()["items"][0]
        # the raw score is the model's; the probability is adjusted to the chat channel's (default) rumor share
        assert scored.status_code == 200 and item["raw_score"] > 0.5 and item["label"] in (0, 1)
        assert item["rumor_probability"] < item["raw_score"] and item["abstain_reason"] is None
        chatter = client.post("/api/v1/models/score", json={"texts": ["大家早上好"], "channel": "chat"}, headers=staff)
        assert chatter.json()["items"][0]["label"] == -1 and chatter.json()["items"][0]["abstain_reason"]
        assert client.post("/api/v1/models/score", json={"texts": ["x"], "channel": "sms"},
                           headers=staff).status_code == 422
        assert client.post("/api/v1/models/score", json={"texts": []}, headers=staff).status_code == 422
        assert client.post("/api/v1/labels", json={"post_id": post_id, "label": 1}, headers=staff).status_code == 403
        assert client.post("/api/v1/labels", json={"post_id": post_id, "label": 1}, headers=analyst).status_code == 201
        assert client.post("/api/v1/labels", json={"post_id": 999999, "label": 1}, headers=analyst).status_code == 404
        assert client.post("/api/v1/labels", json={"post_id": post_id, "label": 3}, headers=analyst).status_code == 422
        up = client.post("/api/v1/labels/import", headers=analyst,
                         files={"file": ("l.csv", "text,label\n南坪村修桥,0\n".encode(), "text/csv")})
        assert up.status_code == 200 and up.json()["new"] == 1
        gbk = client.post("/api/v1/labels/import", headers=analyst,  # as Excel on Chinese Windows saves it
                          files={"file": ("l.csv", "text,label\n石桥村修桥,0\n".encode("gbk"), "text/csv")})
        assert gbk.status_code == 200 and gbk.json()["new"] == 1
        again = client.post("/api/v1/labels/import", headers=analyst,
                            files={"file": ("l.csv", "text,label\n石桥村修桥,0\n".encode(), "text/csv")})
        assert again.status_code == 200 and again.json() == {"new": 0, "unchanged": 1, "errors": []}
        garbage = client.post("/api/v1/labels/import", headers=analyst,
                              files={"file": ("l.csv", b"text,label\n\x80\xff\x80,1\n", "text/csv")})
        assert garbage.status_code == 422 and "CSV UTF-8" in garbage.text
        assert client.get("/api/v1/labels/queue", headers=analyst).json()["total"] == 0
        assert client.post("/api/v1/models/nope/promote", json={}, headers=analyst).status_code == 404
        assert client.post("/api/v1/models/rollback", headers=analyst).status_code == 409
    engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_running_server_swaps_model_without_restart(env: Path, fresh_db_url: str) -> None:
    staff = _token(fresh_db_url, "staff")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(make_engine(fresh_db_url)), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/api/v1/models/score"
    text = {"texts": ["听说柳树村的自来水被污染了，千万别喝，快转发！"]}
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        before = httpx.post(url, json=text, headers=staff, timeout=30).json()
        assert before["model_version"] == "tiny-shipped"
        assert runner.invoke(app, ["train", "--data", str(env / "labels.csv"), "--name", "swap-2",
                                   "--cv-folds", "0"]).exit_code == 0
        assert runner.invoke(app, ["models", "promote", "swap-2"]).exit_code == 0
        after = httpx.post(url, json=text, headers=staff, timeout=30).json()
        assert after["model_version"] == "swap-2"
        assert after["items"][0]["rumor_probability"] != before["items"][0]["rumor_probability"]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_rescore_scores_recent_posts_once_and_resumes(env: Path, fresh_db_url: str) -> None:
    import datetime as dt

    from sqlalchemy import func, select

    from core.tables import PostScore

    engine = make_engine(fresh_db_url)
    recent = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    with session_scope(engine) as s:
        ingest_posts(s, [{"source": "重评", "external_id": f"r{i}", "text": f"南坪村第{i}条消息，听说要停电？",
                          "published_at": (recent if i < 5 else old).isoformat()} for i in range(7)])
    first = runner.invoke(app, ["rescore", "--days", "7", "--batch-size", "2"])
    assert first.exit_code == 0, first.output
    assert "评分 5 条" in first.output
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(PostScore)) == 5
    again = runner.invoke(app, ["rescore", "--days", "7"])
    assert again.exit_code == 0 and "评分 0 条" in again.output
    engine.dispose()
