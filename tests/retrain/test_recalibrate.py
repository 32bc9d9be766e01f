"""Recalibration: the active model's weights with a sigmoid refitted on the office's labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from core.errors import InvalidInput
from nlp import registry
from nlp.classifier import RumorModel, default_model_path
from nlp.labels import text_key
from nlp.retrain import evalset_path, in_evalset, load_evalset, recalibrate_candidate
from nlp.scoring import load_scorer
from tests.fixtures.labelled_texts import labelled_texts, write_csv
from yuqing.cli import app


def _stricter_office(path: Path, model: RumorModel, quantile: float = 0.75) -> tuple[Path, float]:
    """Labels of an office that calls only the most alarming quarter of the texts rumors: the
    model ranks them right, but its own 0.5 threshold sits far lower."""
    texts, _ = labelled_texts(200, seed=5)
    margins = model.decision_function(texts)
    cut = float(np.quantile(margins, quantile))
    write_csv(path, texts, [int(m > cut) for m in margins])
    return path, cut


def test_recalibration_keeps_weights_and_moves_the_threshold(session: Session, isolated_registry: Path) -> None:
    active = RumorModel.load(registry.active_version(session).path)
    csv_path, cut = _stricter_office(isolated_registry / "office.csv", active)

    result = recalibrate_candidate(session, data=[csv_path], name="local")

    candidate = RumorModel.load(result.path)
    np.testing.assert_array_equal(candidate.clf.coef_, active.clf.coef_)
    assert candidate.clf.intercept_ == active.clf.intercept_
    cal = candidate.card["calibration"]
    assert candidate.card["recalibrated_from"] == "tiny-shipped"
    # The refitted P = 0.5 point moves from the shipped one up to the office's cut.
    assert cal["before"]["threshold_margin"] < cut
    assert abs(cal["after"]["threshold_margin"] - cut) < abs(cal["before"]["threshold_margin"] - cut)
    before, after = result.metrics["evalset_before"], result.metrics["evalset"]
    assert after["macro_f1"] > before["macro_f1"] + 0.1
    assert "Recalibrated" in (result.path / "card.md").read_text(encoding="utf-8")
    # the prevalence estimators' profile: the labels' rumor share, and held-out rumor scores if enough
    from nlp.prevalence_store import model_profile

    profile = model_profile(candidate.card, result.path)
    assert 0 < profile.train_prior < 1 and profile.train_prior == candidate.card["train_prior"]
    assert (profile.tail is not None) == ("heldout_positive_quantiles" in candidate.card)
    # The fast reader the pipeline uses sees the new sigmoid too.
    texts, _ = labelled_texts(20, seed=9)
    np.testing.assert_allclose(load_scorer(result.path).predict_proba(texts), candidate.predict_proba(texts), rtol=1e-6)

    promoted, comparison = registry.promote(session, "local")
    assert promoted.status == "active" and comparison is not None and comparison.delta > 0


def test_recalibration_needs_enough_labels_of_each_class(session: Session, isolated_registry: Path) -> None:
    texts, labels = labelled_texts(200, seed=5)
    path = isolated_registry / "few.csv"
    rumors = [t for t, y in zip(texts, labels, strict=True) if y == 1][:8]
    others = [t for t, y in zip(texts, labels, strict=True) if y == 0][:60]
    write_csv(path, rumors + others, [1] * len(rumors) + [0] * len(others))
    evalset = evalset_path()
    kept = evalset.read_bytes() if evalset.exists() else None
    with pytest.raises(InvalidInput, match="至少 20 条谣言"):
        recalibrate_candidate(session, data=[path], name="few")
    assert not (isolated_registry / "models" / "rumor" / "few").exists()
    # a refused command leaves the fixed evaluation set as it was
    assert (evalset.read_bytes() if evalset.exists() else None) == kept
    enough = isolated_registry / "enough.csv"
    write_csv(enough, texts, labels)
    recalibrate_candidate(session, data=[enough], name="enough")
    grown, _ = load_evalset()
    assert any(in_evalset(text_key(t)) for t in texts) and {text_key(t) for t in texts if in_evalset(text_key(t))} <= {
        text_key(t) for t in grown}


def test_recalibration_refuses_labels_that_reverse_the_ranking(session: Session, isolated_registry: Path) -> None:
    active = RumorModel.load(registry.active_version(session).path)
    texts, _ = labelled_texts(200, seed=5)
    margins = active.decision_function(texts)
    path = isolated_registry / "reversed.csv"
    write_csv(path, texts, [int(m < np.median(margins)) for m in margins])
    with pytest.raises(InvalidInput, match="排序不一致"):
        recalibrate_candidate(session, data=[path], name="upside-down")


def test_cli_recalibrate(isolated_registry: Path, fresh_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    active = RumorModel.load(default_model_path())
    csv_path, _ = _stricter_office(isolated_registry / "office.csv", active)
    out = runner.invoke(app, ["recalibrate", "--data", str(csv_path), "--name", "cli-cal"])
    assert out.exit_code == 0, out.output
    assert "cli-cal" in out.output and "->" in out.output
    listed = runner.invoke(app, ["models", "list"]).output
    assert "cli-cal" in listed and "由 tiny-shipped 重新校准" in listed
    bare = runner.invoke(app, ["recalibrate"])
    assert bare.exit_code == 1 and "--include-db-labels" in bare.output
    again = runner.invoke(app, ["recalibrate", "--data", str(csv_path), "--name", "cli-cal"])
    assert again.exit_code == 1 and "已存在" in again.output


def test_api_recalibrate(isolated_registry: Path, fresh_db_url: str) -> None:
    from fastapi.testclient import TestClient

    from api import accounts
    from api.app import create_app
    from core.db import make_engine, session_scope
    from nlp.labels import import_labels_csv

    engine = make_engine(fresh_db_url)
    headers = {}
    with session_scope(engine) as s:
        for role in ("analyst", "staff"):
            user = accounts.create_user(s, username=f"u-{role}", role=role, password="password123")
            headers[role] = {"Authorization": f"Bearer {accounts.create_token(s, user, 't')}"}
    with TestClient(create_app(engine)) as client:
        assert client.post("/api/v1/models/recalibrate", headers=headers["staff"]).status_code == 403
        assert client.post("/api/v1/models/recalibrate").status_code == 401
        few = client.post("/api/v1/models/recalibrate", headers=headers["analyst"])
        assert few.status_code == 422 and "至少 20 条谣言" in few.text
        csv_path, _ = _stricter_office(isolated_registry / "office.csv", RumorModel.load(default_model_path()))
        with session_scope(engine) as s:
            import_labels_csv(s, csv_path)
        made = client.post("/api/v1/models/recalibrate", headers=headers["analyst"])
        assert made.status_code == 201, made.text
        body = made.json()
        assert body["status"] == "candidate" and body["note"].startswith("由 tiny-shipped 重新校准")
        assert body["metrics"]["evalset"]["macro_f1"] > body["metrics"]["evalset_before"]["macro_f1"]
        promoted = client.post(f"/api/v1/models/{body['version']}/promote", json={}, headers=headers["analyst"])
        assert promoted.status_code == 200 and promoted.json()["active"]["version"] == body["version"]
    engine.dispose()
