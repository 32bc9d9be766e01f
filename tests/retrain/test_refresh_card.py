"""`python -m nlp.training card` rewrites a version's metrics and card, never its weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nlp import training


def test_card_command_rewrites_metrics_and_keeps_the_weights(tmp_path: Path) -> None:
    shipped = training.REPO_ROOT / "models" / "rumor" / training.DEFAULT_VERSION
    target = tmp_path / "rumor" / training.DEFAULT_VERSION
    shutil.copytree(shipped, target)
    before = (target / "model.skops").read_bytes()
    metrics = json.loads((target / "metrics.json").read_text(encoding="utf-8"))
    row = dict(metrics["weibo21"]["train->val"], n=4242, macro_f1=0.5)
    metrics["weibo21"]["made-up->row"] = row
    source = tmp_path / "classifier.json"
    source.write_text(json.dumps({"protocols": metrics}), encoding="utf-8")

    training.main(["card", "--metrics", str(source), "--models-dir", str(tmp_path)])

    assert (target / "model.skops").read_bytes() == before
    assert "| weibo21 made-up->row | 4242 | 0.5000 |" in (target / "card.md").read_text(encoding="utf-8")
    card = json.loads((target / "card.json").read_text(encoding="utf-8"))
    assert card["metrics"]["weibo21"]["made-up->row"]["n"] == 4242
    assert card["version"] == training.DEFAULT_VERSION
    saved = json.loads((target / "metrics.json").read_text(encoding="utf-8"))
    assert saved["weibo21"]["made-up->row"]["macro_f1"] == 0.5


def test_card_command_says_what_to_give_when_the_metrics_file_is_missing(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="--metrics"):
        training.main(["card", "--metrics", str(tmp_path / "nowhere.json"), "--models-dir", str(tmp_path)])
