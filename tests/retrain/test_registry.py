"""Training candidates, the registry round trip, promotion rules, rollback."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from core.errors import Conflict, InvalidInput
from core.tables import ModelVersion
from nlp import registry
from nlp.classifier import RumorModel
from nlp.retrain import evalset_path, in_evalset, load_evalset, train_candidate
from tests.fixtures.labelled_texts import labelled_texts, write_csv


def _csv(tmp_path: Path, *, flip: float = 0.0, seed: int = 3) -> Path:
    # enough texts that the evaluation set (one in five) passes the gate's minimum n
    texts, labels = labelled_texts(150, seed=seed)
    rng = random.Random(seed)
    labels = [1 - y if rng.random() < flip else y for y in labels]
    path = tmp_path / f"labels-{seed}-{flip}.csv"
    write_csv(path, texts, labels)
    return path


@pytest.mark.slow
def test_train_promote_refuse_force_rollback(session: Session, isolated_registry: Path) -> None:
    first = registry.active_version(session)
    assert first.version == "tiny-shipped" and first.status == "active"

    good = train_candidate(session, data=[_csv(isolated_registry)], name="good", cv_folds=2)
    assert good.path.is_dir() and (good.path / "card.md").is_file()
    assert good.metrics["evalset"]["macro_f1"] > 0.9 and good.metrics["cv"]["folds"] == 2
    assert RumorModel.load(good.path).version == "good"
    texts, _ = load_evalset()
    assert texts and evalset_path().is_file()

    registry.promote(session, "good")
    assert registry.active_version(session).version == "good"

    # A model trained on half-flipped labels is clearly worse on the same evaluation set.
    bad = train_candidate(session, data=[_csv(isolated_registry, flip=0.5, seed=4)], name="bad", cv_folds=0)
    assert bad.metrics["evalset"]["macro_f1"] < good.metrics["evalset"]["macro_f1"]
    with pytest.raises(Conflict, match="明显更差"):
        registry.promote(session, "bad")
    with pytest.raises(InvalidInput, match="理由"):
        registry.promote(session, "bad", force=True)
    promoted, _ = registry.promote(session, "bad", force=True, reason="测试强制启用")
    assert promoted.note is None  # notes are never overwritten: the reason is in the history
    forced = registry.model_history(session)[0]
    assert (forced.action, forced.version, forced.previous_version, forced.reason) == (
        "forced", "bad", "good", "测试强制启用")
    assert registry.active_count(session) == 1

    back = registry.rollback(session)
    assert back.version == "good" and registry.active_version(session).version == "good"
    statuses = {v.version: v.status for v in registry.list_versions(session)}
    assert statuses == {"tiny-shipped": "retired", "good": "active", "bad": "rolled_back"}
    assert registry.rollback(session).version == "tiny-shipped"  # walks back, does not toggle
    with pytest.raises(Conflict):
        registry.rollback(session)
    actions = [(e.action, e.version) for e in reversed(registry.model_history(session))]
    assert actions == [("registered", "tiny-shipped"), ("trained", "good"), ("promoted", "good"), ("trained", "bad"),
                       ("forced", "bad"), ("rolled_back", "good"), ("rolled_back", "tiny-shipped")]


def test_evalset_texts_never_reach_training(session: Session, isolated_registry: Path) -> None:
    from nlp.labels import text_key

    result = train_candidate(None, data=[_csv(isolated_registry)], name="plain", cv_folds=0)
    texts, _ = load_evalset()
    assert texts and all(in_evalset(text_key(t)) for t in texts)
    assert result.metrics["evalset_size"] == len(texts)
    card = RumorModel.load(result.path).card
    assert card["n_train"] + len(texts) == 300


def test_too_little_data_is_refused(session: Session, isolated_registry: Path) -> None:
    path = isolated_registry / "tiny.csv"
    write_csv(path, ["只有一条"], [1])
    with pytest.raises(InvalidInput, match="训练数据不足"):
        train_candidate(None, data=[path], cv_folds=0)
    with pytest.raises(InvalidInput, match="base"):
        train_candidate(None, data=[path], base="bert")


def test_holder_switches_model_atomically(session: Session, isolated_registry: Path) -> None:
    holder = registry.ModelHolder()
    first_id, first = holder.get(session)
    assert holder.get(session)[1] is first  # no reload while unchanged
    train_candidate(session, data=[_csv(isolated_registry)], name="next", cv_folds=0)
    registry.promote(session, "next")
    second_id, second = holder.get(session)
    assert second_id != first_id and second.version == "next" and first.version == "tiny-shipped"
    assert session.query(ModelVersion).filter_by(status="active").one().version == "next"
