"""Per-channel calibration through the real interfaces (SQLite, and PostgreSQL with
YUQING_TEST_DATABASE=postgres): `yuqing analyze` scores a chat stream; analysts' verdicts arrive
through the API; `yuqing analyze --reestimate` fits the chat channel's map, stores it beside the
estimate and re-adjusts the stored probabilities without re-scoring; `yuqing models list`, the API
and /models/score show and use it; the web channel, with no verdicts, keeps the held-out one."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from api import accounts
from api.app import create_app
from core.db import make_engine, session_scope
from core.ingest import ingest_posts
from core.tables import ModelVersion, Post, PostScore, PrevalenceEstimate
from nlp.channel_calibration import CalibrationMap
from nlp.prevalence import adjust
from nlp.prevalence_store import LABEL_ABSTAIN, model_profile
from tests.fixtures.labelled_texts import labelled_texts
from yuqing.cli import app

runner = CliRunner()


def _items(texts: list[str], channel: str, when: dt.datetime) -> list[dict]:
    out = []
    for n, text in enumerate(texts):
        item = {"channel": channel, "external_id": f"{channel}{n}", "text": text, "author": f"居民{n % 9}",
                "published_at": when + dt.timedelta(minutes=n)}
        if channel == "chat":
            item["group"] = {"platform": "wechat", "external_id": f"g{n % 4}", "name": f"青禾镇群{n % 4}"}
        else:
            item.update(source="青禾论坛", url=f"https://example.cn/{n}")
        out.append(item)
    return out


def _headers(engine, role: str) -> dict[str, str]:
    with session_scope(engine) as s:
        user = accounts.create_user(s, username=f"u-{role}", role=role, password="password123")
        return {"Authorization": f"Bearer {accounts.create_token(s, user, 't')}"}


def test_reviewed_verdicts_calibrate_their_channel(fresh_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    engine = make_engine(fresh_db_url)
    texts, labels = labelled_texts(128, seed=3)  # 256 distinct texts, half rumors
    truth = dict(zip(texts, labels, strict=True))
    recent = dt.datetime.now(dt.UTC) - dt.timedelta(hours=6)  # inside the rumor-share window
    with session_scope(engine) as s:
        ingest_posts(s, _items(texts, "chat", recent) + _items(texts[:220], "web", recent))
    first = runner.invoke(app, ["analyze", "--quiet", "--reestimate"])
    assert first.exit_code == 0, first.output
    said = " ".join(first.output.split())
    assert "按模型留出数据校准" in said and "按本渠道" not in said

    with session_scope(engine) as s:
        version = s.scalar(select(ModelVersion).where(ModelVersion.status == "active"))
        assert version is not None
        profile = model_profile(version.card, version.path)
        chat_posts = s.execute(select(Post.id, Post.raw_text).where(Post.channel == "chat")).all()
        before = {sid: (raw, q) for sid, raw, q in s.execute(
            select(PostScore.post_id, PostScore.raw_probability, PostScore.rumor_probability)
            .join(Post, Post.id == PostScore.post_id).where(Post.channel == "chat", PostScore.label != LABEL_ABSTAIN))}
        first_chat = s.scalar(select(PrevalenceEstimate).where(PrevalenceEstimate.channel == "chat"))
        assert first_chat is not None and (first_chat.calibration or {}).get("kind") == "heldout"

    analyst, staff = _headers(engine, "analyst"), _headers(engine, "staff")
    with TestClient(create_app(engine)) as client:
        probe = ["紧急扩散！！听说青禾镇明天开始封城，大米马上要断供，赶紧去抢！不转不是中国人"]
        score_before = client.post("/api/v1/models/score", json={"texts": probe, "channel": "chat"},
                                   headers=staff).json()["items"][0]
        # 60 reviewed chat posts (every fourth), as analysts record them
        reviewed = [(pid, truth[text]) for pid, text in chat_posts[::4]][:60]
        for pid, verdict in reviewed:
            assert client.post("/api/v1/labels", json={"post_id": pid, "label": verdict},
                               headers=analyst).status_code == 201

        again = runner.invoke(app, ["analyze", "--quiet", "--reestimate"])
        assert again.exit_code == 0, again.output
        said = " ".join(again.output.split())
        rumors = sum(v for _, v in reviewed)
        assert f"按本渠道 60 条审核结论校准（其中谣言 {rumors} 条）" in said
        assert "按本渠道校准后的概率估计" in said

        listed = " ".join(runner.invoke(app, ["models", "list"]).output.split())
        assert f"按本渠道 60 条审核结论校准（其中谣言 {rumors} 条）" in listed and "网页" in listed

        shown = {e["channel"]: e for e in client.get("/api/v1/models/prevalence", headers=staff).json()}
        assert shown["chat"]["calibration"]["kind"] == "labels" and shown["chat"]["calibration"]["n_labels"] == 60
        assert shown["chat"]["method"] == "calibrated+labels" and shown["chat"]["n_labels"] == 60
        assert shown["web"]["calibration"]["kind"] == "heldout" and shown["all"]["calibration"] is None
        assert shown["chat"]["lower"] <= shown["chat"]["estimate"] <= shown["chat"]["upper"]
        assert client.get("/api/v1/models/prevalence").status_code == 401

        cal = CalibrationMap.from_json(shown["chat"]["calibration"])
        chat_share = shown["chat"]["estimate"]
        # the API's decision goes through the channel's map now
        score_after = client.post("/api/v1/models/score", json={"texts": probe, "channel": "chat"},
                                  headers=staff).json()["items"][0]
        assert score_after["raw_score"] == pytest.approx(score_before["raw_score"])
        assert score_after["rumor_probability"] == pytest.approx(
            float(adjust(cal.apply(score_after["raw_score"]), profile.train_prior, chat_share)), abs=1e-6)

    # the stored probabilities were re-adjusted through the map, the raw scores untouched
    with session_scope(engine) as s:
        after = {sid: (raw, q) for sid, raw, q in s.execute(
            select(PostScore.post_id, PostScore.raw_probability, PostScore.rumor_probability)
            .join(Post, Post.id == PostScore.post_id).where(Post.channel == "chat", PostScore.label != LABEL_ABSTAIN))}
    assert set(after) == set(before)
    raw = np.array([after[k][0] for k in sorted(after)])
    assert raw == pytest.approx(np.array([before[k][0] for k in sorted(after)]))
    stored = np.array([after[k][1] for k in sorted(after)])
    assert stored == pytest.approx(adjust(cal.apply(raw), profile.train_prior, chat_share), abs=1e-6)
    assert not np.allclose(stored, [before[k][1] for k in sorted(after)])
    engine.dispose()
