"""Labels as first-class data: list, correct, delete, export, resolve conflicts, label in bulk;
through the API and the CLI, with every change in the label history."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from api import accounts
from api.app import create_app
from core.db import make_engine, session_scope
from core.ingest import ingest_posts
from core.settings import get_settings
from core.tables import Label, LabelEvent, Post
from nlp.labels import import_labels_csv, label_post, text_key
from yuqing.cli import app

pytestmark = pytest.mark.db
runner = CliRunner()


@pytest.fixture
def env(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("YUQING_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    return tmp_path


@pytest.fixture
def client(fresh_db_url: str, env: Path) -> Iterator[TestClient]:
    engine = make_engine(fresh_db_url)
    with TestClient(create_app(engine), raise_server_exceptions=False) as c:
        yield c
    engine.dispose()


def _headers(url: str, role: str) -> dict[str, str]:
    engine = make_engine(url)
    with session_scope(engine) as s:
        user = accounts.create_user(s, username=f"u-{role}", role=role)
        token = accounts.create_token(s, user, "t")
    engine.dispose()
    return {"Authorization": f"Bearer {token}"}


def _posts(url: str, texts: list[str]) -> list[int]:
    engine = make_engine(url)
    with session_scope(engine) as s:
        ingest_posts(s, [{"source": "标注测试", "external_id": f"p{i}", "text": t} for i, t in enumerate(texts)])
        ids = [s.scalar(select(Post.id).where(Post.external_id == f"p{i}")) for i in range(len(texts))]
    engine.dispose()
    return [int(i) for i in ids if i is not None]


def _events(url: str) -> list[tuple[str, Any, Any]]:
    engine = make_engine(url)
    with session_scope(engine) as s:
        rows = [(e.action, e.old_label, e.new_label) for e in s.scalars(select(LabelEvent).order_by(LabelEvent.id))]
    engine.dispose()
    return rows


def test_correct_delete_history_and_filters_through_the_api(client: TestClient, fresh_db_url: str) -> None:
    analyst, viewer = _headers(fresh_db_url, "analyst"), _headers(fresh_db_url, "viewer")
    first, second = _posts(fresh_db_url, ["东湾村明天停水，赶紧存水", "镇卫生院周六照常开诊"])
    made = client.post("/api/v1/labels/bulk", headers=analyst,
                       json={"items": [{"post_id": first, "label": 1, "role": "claim"},
                                       {"post_id": second, "label": 0}]})
    assert made.status_code == 201, made.text
    ids = [item["id"] for item in made.json()]
    assert [item["role"] for item in made.json()] == ["claim", None]  # a person's verdict only, never a guess
    assert client.post("/api/v1/labels/bulk", headers=analyst,
                       json={"items": [{"post_id": first, "label": 1, "role": "rumour"}]}).status_code == 422
    assert client.get("/api/v1/labels", headers=viewer).status_code == 403

    listed = client.get("/api/v1/labels", headers=analyst, params={"label": 1}).json()
    assert [i["post_id"] for i in listed["items"]] == [first] and listed["total"] == 1
    assert client.get("/api/v1/labels", headers=analyst, params={"q": "卫生院"}).json()["total"] == 1

    fixed = client.patch(f"/api/v1/labels/{ids[0]}", headers=analyst, json={"label": 0})
    assert fixed.status_code == 200 and fixed.json()["label"] == 0 and fixed.json()["updated_at"]
    history = client.get(f"/api/v1/labels/{ids[0]}/history", headers=analyst).json()
    assert [(h["action"], h["old_label"], h["new_label"]) for h in history] == [("created", None, 1),
                                                                                 ("corrected", 1, 0)]
    assert client.patch(f"/api/v1/labels/{ids[0]}", headers=analyst, json={"label": 5}).status_code == 422
    assert client.patch(f"/api/v1/labels/{ids[0]}", headers=analyst, json={"verdict": 1}).status_code == 422
    assert client.patch("/api/v1/labels/99999", headers=analyst, json={"label": 1}).status_code == 404

    assert client.delete(f"/api/v1/labels/{ids[1]}", headers=analyst).status_code == 204
    assert client.delete(f"/api/v1/labels/{ids[1]}", headers=analyst).status_code == 404
    assert client.get("/api/v1/labels", headers=analyst).json()["total"] == 1
    # the history outlives the deleted label
    assert [h["action"] for h in client.get(f"/api/v1/labels/{ids[1]}/history", headers=analyst).json()] == [
        "created", "deleted"]


def test_a_conflict_is_resolved_by_choosing_the_verdict(client: TestClient, fresh_db_url: str, env: Path) -> None:
    analyst = _headers(fresh_db_url, "analyst")
    (post,) = _posts(fresh_db_url, ["柳树村的井水不能喝了"])
    assert client.post("/api/v1/labels", headers=analyst, json={"post_id": post, "label": 1}).status_code == 201
    csv_file = env / "imp.csv"
    csv_file.write_text("text,label\n柳树村的井水 不能喝了,0\n", encoding="utf-8")
    with csv_file.open("rb") as fh:
        assert client.post("/api/v1/labels/import", headers=analyst, files={"file": fh}).status_code == 200
    conflicts = client.get("/api/v1/labels/conflicts", headers=analyst).json()["items"]
    assert len(conflicts) == 1
    text_hash = conflicts[0]["text_hash"]
    assert client.get("/api/v1/labels", headers=analyst, params={"conflicts": True}).json()["total"] == 2
    assert client.post(f"/api/v1/labels/conflicts/{text_hash}/resolve", headers=analyst,
                       json={"label": 2}).status_code == 422
    assert client.post("/api/v1/labels/conflicts/nothex/resolve", headers=analyst, json={"label": 1}).status_code == 422
    done = client.post(f"/api/v1/labels/conflicts/{text_hash}/resolve", headers=analyst, json={"label": 1})
    assert done.status_code == 200 and done.json()["changed"] == 1
    assert client.get("/api/v1/labels/conflicts", headers=analyst).json()["total"] == 0
    assert ("resolved", 0, 1) in _events(fresh_db_url)


def test_imported_labels_link_to_posts_and_export_round_trips(client: TestClient, fresh_db_url: str,
                                                              env: Path) -> None:
    analyst = _headers(fresh_db_url, "analyst")
    (post,) = _posts(fresh_db_url, ["南坪村的桥被冲垮了，别走那条路"])
    csv_file = env / "imp.csv"
    csv_file.write_text("text,label,category,role\n南坪村的桥被冲垮了，别走那条路,0,交通出行,官方通知\n石桥村要封村了,1,,claim\n",
                        encoding="utf-8")
    with csv_file.open("rb") as fh:
        client.post("/api/v1/labels/import", headers=analyst, files={"file": fh})
    labels = client.get("/api/v1/labels", headers=analyst).json()["items"]
    by_text = {i["text"]: i for i in labels}
    assert by_text["南坪村的桥被冲垮了，别走那条路"]["post_id"] == post  # reachable where the post is shown
    assert by_text["石桥村要封村了"]["post_id"] is None
    assert (by_text["石桥村要封村了"]["role"], by_text["南坪村的桥被冲垮了，别走那条路"]["role"]) == ("claim", "notice")

    exported = client.get("/api/v1/labels/export", headers=analyst)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert {(r["text"], r["label"], r["category"]) for r in rows} == {
        ("南坪村的桥被冲垮了，别走那条路", "0", "交通出行"), ("石桥村要封村了", "1", "")}
    # the export is a valid import: into another database it gives the same verdicts
    again = env / "again.csv"
    again.write_bytes(exported.content)
    engine = make_engine(fresh_db_url)
    with session_scope(engine) as s:
        before = {(r.text_hash, r.label) for r in s.scalars(select(Label))}
        result = import_labels_csv(s, again)
        assert result.new == 0 and result.unchanged == 2  # same verdicts: nothing changes
        assert {(r.text_hash, r.label) for r in s.scalars(select(Label))} == before
    engine.dispose()


def test_cli_lists_corrects_resolves_deletes_and_exports(env: Path, fresh_db_url: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (post,) = _posts(fresh_db_url, ["青禾镇明天封城，赶紧囤菜"])
    engine = make_engine(fresh_db_url)
    with session_scope(engine) as s:
        label_post(s, post_id=post, label=1, user_id=None)
    engine.dispose()
    imported = runner.invoke(app, ["labels", "import", "-"], input="text,label\n青禾镇明天 封城，赶紧囤菜,0\n")
    assert imported.exit_code == 0, imported.output

    listed = runner.invoke(app, ["labels", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    payload = json.loads(listed.output)
    assert payload["total"] == 2 and {i["origin"] for i in payload["items"]} == {"manual", "import"}
    conflicts = json.loads(runner.invoke(app, ["labels", "conflicts", "--json"]).output)
    assert len(conflicts) == 1 and conflicts[0]["text_hash"] == text_key("青禾镇明天封城，赶紧囤菜")

    assert runner.invoke(app, ["labels", "resolve", "abc", "谣言"]).exit_code == 1  # too short a prefix
    resolved = runner.invoke(app, ["labels", "resolve", conflicts[0]["text_hash"][:10], "谣言"])
    assert resolved.exit_code == 0 and "1 条" in resolved.output, resolved.output
    assert json.loads(runner.invoke(app, ["labels", "conflicts", "--json"]).output) == []

    manual = next(i for i in payload["items"] if i["origin"] == "manual")
    assert runner.invoke(app, ["labels", "set", str(manual["id"]), "maybe"]).exit_code == 1
    fixed = runner.invoke(app, ["labels", "set", str(manual["id"]), "非谣言"])
    assert fixed.exit_code == 0 and "非谣言" in fixed.output
    assert runner.invoke(app, ["labels", "delete", str(manual["id"])]).exit_code == 0
    assert runner.invoke(app, ["labels", "delete", str(manual["id"])]).exit_code == 1

    out = runner.invoke(app, ["labels", "export", "-"])
    rows = list(csv.DictReader(io.StringIO(out.output)))
    assert [(r["origin"], r["label"]) for r in rows] == [("import", "1")]
    assert [a for a, *_ in _events(fresh_db_url)] == ["created", "created", "resolved", "corrected", "deleted"]


@pytest.mark.slow
def test_the_queue_survives_a_promotion_and_follows_its_settings(
        env: Path, fresh_db_url: str, monkeypatch: pytest.MonkeyPatch, shipped_model_dir: Path) -> None:
    from tests.fixtures.labelled_texts import labelled_texts, write_csv

    monkeypatch.setenv("YUQING_LABEL_QUEUE_BAND", "[0.0, 1.0]")  # every unlabelled post, for a tiny model
    get_settings.cache_clear()
    texts, labels = labelled_texts(150, seed=12)
    write_csv(env / "train.csv", texts, labels)
    ids = _posts(fresh_db_url, [f"{t}（群里转的）" for t in texts[:30]])
    with TestClient(create_app(make_engine(fresh_db_url)), raise_server_exceptions=False) as client:
        analyst = _headers(fresh_db_url, "analyst")
        first = client.get("/api/v1/labels/queue", headers=analyst).json()
        assert first["total"] == 30  # scored on demand by the shipped model: no `yuqing rescore` needed
        assert runner.invoke(app, ["train", "--data", str(env / "train.csv"), "--name", "next", "--cv-folds", "0"]
                             ).exit_code == 0
        assert runner.invoke(app, ["models", "promote", "next", "--force", "--reason", "测试"]).exit_code == 0
        after = client.get("/api/v1/labels/queue", headers=analyst).json()
        assert after["total"] == 30  # the new active model scored them when the queue was read
        client.post("/api/v1/labels", headers=analyst, json={"post_id": ids[0], "label": 1})
        assert client.get("/api/v1/labels/queue", headers=analyst).json()["total"] == 29
        # /posts filters: labelled or not, probability range
        assert client.get("/api/v1/posts", headers=analyst, params={"labelled": True}).json()["total"] == 1
        assert client.get("/api/v1/posts", headers=analyst, params={"labelled": False}).json()["total"] == 29
        top = client.get("/api/v1/posts", headers=analyst, params={"min_probability": 0.5}).json()["total"]
        low = client.get("/api/v1/posts", headers=analyst, params={"max_probability": 0.4999999}).json()["total"]
        assert top + low == 30
        assert client.get("/api/v1/posts", headers=analyst, params={"role": "gossip"}).status_code == 422
    monkeypatch.setenv("YUQING_LABEL_QUEUE_BAND", "[0.9, 0.1]")
    get_settings.cache_clear()
    with pytest.raises(ValueError, match="LABEL_QUEUE_BAND"):
        get_settings()


def test_imported_label_texts_are_masked_and_meet_their_post(env: Path, fresh_db_url: str) -> None:
    text = "东湾村停水，有事打13987654323或加QQ：2718281828问"
    (post_id,) = _posts(fresh_db_url, [text])
    labels = env / "labels.csv"
    labels.write_text(f"text,label\n{text},1\n", encoding="utf-8")
    engine = make_engine(fresh_db_url)
    for _ in range(2):  # a re-import changes nothing
        with session_scope(engine) as s:
            result = import_labels_csv(s, labels)
    with session_scope(engine) as s:
        (row,) = s.scalars(select(Label)).all()
        stored, linked = row.text, row.post_id
    engine.dispose()
    assert (result.new, result.unchanged) == (0, 1)
    assert "13987654323" not in stored and "2718281828" not in stored and "139****4323" in stored
    assert linked == post_id
