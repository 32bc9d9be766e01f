"""A tiny 'shipped' model trained on our own sample texts, used as the registry's default."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from nlp.classifier import train_rumor_model
from tests.fixtures.labelled_texts import labelled_texts


@pytest.fixture(scope="session")
def shipped_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("shipped-models")
    texts, labels = labelled_texts(60, seed=1)
    model = train_rumor_model(texts, labels, seed=1, version="tiny-shipped")
    model.save(base / "rumor" / "tiny-shipped")
    (base / "rumor" / "ACTIVE").write_text("tiny-shipped\n", encoding="utf-8")
    old = os.environ.get("YUQING_MODEL_DIR")
    os.environ["YUQING_MODEL_DIR"] = str(base)
    yield base
    if old is None:
        os.environ.pop("YUQING_MODEL_DIR", None)
    else:
        os.environ["YUQING_MODEL_DIR"] = old
