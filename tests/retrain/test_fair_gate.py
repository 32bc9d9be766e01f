"""The promotion gate compares models only on texts neither was trained on, with n and an
interval; it does not decide below a minimum n; compare is a dry run; candidates can be deleted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from api import accounts
from api.app import create_app
from core.db import make_engine, session_scope
from core.errors import Conflict, InvalidInput
from core.settings import get_settings
from core.tables import ModelEvent, ModelVersion
from nlp import registry
from nlp.classifier import train_rumor_model
from nlp.labels import text_key
from nlp.model_compare import MIN_EVAL_N, bootstrap_delta, key_prefix, seen_keys, write_seen_keys
from nlp.retrain import load_evalset, train_candidate
from tests.fixtures.labelled_texts import labelled_texts, write_csv
from yuqing.cli import app

runner = CliRunner()


@pytest.fixture
def research_shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[int]]:
    """A shipped model trained on every 'research' text, as ours is, with its seen keys."""
    texts, labels = labelled_texts(150, seed=5)
    base = tmp_path / "shipped"
    model = train_rumor_model(texts, labels, seed=1, version="research-shipped")
    model.save(base / "rumor" / "research-shipped")
    write_seen_keys(base / "rumor" / "research-shipped", [text_key(t) for t in texts])
    (base / "rumor" / "ACTIVE").write_text("research-shipped\n", encoding="utf-8")
    monkeypatch.setenv("YUQING_MODEL_DIR", str(base))
    monkeypatch.setenv("YUQING_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield texts, labels
    get_settings.cache_clear()


def _office(tmp_path: Path, n_per_class: int, seed: int) -> Path:
    """Labels of the office's own posts: other texts than the research ones."""
    texts, labels = labelled_texts(n_per_class, seed=seed)
    path = tmp_path / f"office-{seed}-{n_per_class}.csv"
    write_csv(path, [f"{t}（村民群里看到的）" for t in texts], labels)
    return path


def test_a_retrain_is_judged_on_what_neither_model_saw(session: Session, tmp_path: Path,
                                                      research_shipped: tuple[list[str], list[int]]) -> None:
    research, research_labels = research_shipped
    research_csv = tmp_path / "research.csv"
    write_csv(research_csv, research, research_labels)
    shipped = registry.active_version(session)
    train_candidate(session, data=[research_csv, _office(tmp_path, 150, seed=6)], name="office", cv_folds=0)

    eval_texts, _ = load_evalset()
    seen_research = sum(1 for t in eval_texts if t in set(research))
    assert seen_research > 0  # the research texts in the evaluation bucket, which the shipped model saw
    cmp = registry.compare_versions(session, "office")
    assert cmp.excluded == seen_research and cmp.n == len(eval_texts) - seen_research
    assert cmp.n >= MIN_EVAL_N and cmp.ci_low <= cmp.delta <= cmp.ci_high
    # the candidate, trained without the bucket, never saw any of them either
    assert not np.isin(seen_keys(Path(registry.get_version(session, "office").path)),
                       [key_prefix(text_key(t)) for t in eval_texts]).any()
    promoted, comparison = registry.promote(session, "office")
    assert promoted.status == "active" and comparison is not None and comparison.n == cmp.n
    assert shipped.status == "retired"


def test_the_gate_does_not_decide_below_the_minimum_n(session: Session, tmp_path: Path,
                                                     research_shipped: tuple[list[str], list[int]]) -> None:
    registry.active_version(session)
    train_candidate(session, data=[_office(tmp_path, 40, seed=7)], name="small", cv_folds=0)
    cmp = registry.compare_versions(session, "small")
    assert cmp.n < MIN_EVAL_N and not cmp.enough and cmp.labels_needed() > 0
    with pytest.raises(InvalidInput, match=f"还需要 {cmp.labels_needed()} 条"):
        registry.promote(session, "small")
    registry.promote(session, "small", force=True, reason="本镇新谣言类型，先用起来")
    assert registry.active_version(session).version == "small"


def test_bootstrap_interval_covers_the_difference_and_narrows_with_n() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    a = np.where(rng.random(400) < 0.9, y, 1 - y)  # 90% right
    b = np.where(rng.random(400) < 0.7, y, 1 - y)  # 70% right
    low, high = bootstrap_delta(y, a, b)
    assert 0 < low < high  # clearly better
    small_low, small_high = bootstrap_delta(y[:40], a[:40], b[:40])
    assert small_high - small_low > high - low


def _headers(url: str) -> dict[str, str]:
    engine = make_engine(url)
    with session_scope(engine) as s:
        token = accounts.create_token(s, accounts.create_user(s, username="ana", role="analyst"), "t")
    engine.dispose()
    return {"Authorization": f"Bearer {token}"}


def _counts(url: str) -> tuple[int, int, int]:
    engine = make_engine(url)
    with session_scope(engine) as s:
        counts = (s.scalar(select(func.count()).select_from(ModelVersion)) or 0,
                  s.scalar(select(func.count()).select_from(ModelEvent)) or 0,
                  len(load_evalset()[0]))
    engine.dispose()
    return counts


@pytest.mark.db
def test_compare_writes_nothing_and_a_candidate_can_be_deleted(fresh_db_url: str, tmp_path: Path,
                                                               research_shipped: tuple[list[str], list[int]]) -> None:
    engine = make_engine(fresh_db_url)
    with session_scope(engine) as s:
        registry.active_version(s)  # the shipped model is registered on first use, by any registry read
        train_candidate(s, data=[_office(tmp_path, 150, seed=8)], name="cand", cv_folds=0)
    engine.dispose()
    headers = _headers(fresh_db_url)
    before = _counts(fresh_db_url)
    with TestClient(create_app(make_engine(fresh_db_url)), raise_server_exceptions=False) as client:
        body = client.get("/api/v1/models/compare", params={"candidate": "cand"}, headers=headers).json()
        assert body["active_version"] == "research-shipped" and body["n"] > 0 and len(body["ci"]) == 2
        assert {"category", "source", "channel"} <= set(body["slices"]) and "calibration" in body
        assert client.get("/api/v1/models/compare", params={"candidate": "nope"}, headers=headers).status_code == 404
        cli = runner.invoke(app, ["models", "compare", "cand", "--json"])
        assert cli.exit_code == 0, cli.output
        assert json.loads(cli.output)["n"] == body["n"]
        assert _counts(fresh_db_url) == before  # a dry run: no version, no event, no evaluation text added

        assert client.delete("/api/v1/models/research-shipped", headers=headers).status_code == 409  # was active
        folder = Path(registry.trained_dir()) / "cand"
        assert folder.is_dir()
        assert client.delete("/api/v1/models/cand", headers=headers).status_code == 204
        assert not folder.exists()
        history = client.get("/api/v1/models/history", headers=headers).json()
        assert [h["action"] for h in history][:2] == ["deleted", "trained"]
    with pytest.raises(Conflict), session_scope(make_engine(fresh_db_url)) as s:
        registry.delete_version(s, "research-shipped")
