"""The analyst notebooks run top to bottom on a small fixture database, and are stored without outputs."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from core.db import make_engine, session_scope
from core.ingest import ingest_posts
from core.settings import get_settings
from nlp.labels import import_labels_csv
from tests.fixtures.labelled_texts import labelled_texts, write_csv

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
REPO = NOTEBOOKS.parent


def test_notebooks_are_stored_without_outputs() -> None:
    books = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert [b.name for b in books][:4] == ["01_explore_data.ipynb", "02_error_analysis.ipynb",
                                           "03_retrain_and_compare.ipynb", "04_prevalence_and_threshold.ipynb"]
    for book in books:
        for cell in nbformat.read(book, as_version=4).cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{book.name}: strip outputs"


@pytest.fixture
def notebook_db(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shipped_model_dir: Path) -> Path:
    texts, labels = labelled_texts(80, seed=21)
    engine = make_engine(fresh_db_url)
    items = [{"source": "青禾论坛" if i % 2 else None, "channel": "web" if i % 2 else "chat",
              "group": None if i % 2 else {"platform": "qq", "external_id": "g1", "name": "东湾村村民群"},
              "external_id": f"n{i}", "text": t, "published_at": f"2026-11-{20 + i % 5}T10:00:00"}
             for i, t in enumerate(texts[:100])]
    write_csv(tmp_path / "db_labels.csv", texts[:100], labels[:100])
    write_csv(tmp_path / "labels.csv", texts[100:], labels[100:])
    with session_scope(engine) as s:
        ingest_posts(s, items)
        import_labels_csv(s, tmp_path / "db_labels.csv")
    engine.dispose()
    monkeypatch.setenv("YUQING_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("LABELS_CSV", str(tmp_path / "labels.csv"))
    monkeypatch.setenv("CV_FOLDS", "0")
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    get_settings.cache_clear()
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("name", ["01_explore_data", "02_error_analysis", "03_retrain_and_compare",
                                  "04_prevalence_and_threshold"])
def test_notebook_runs(name: str, notebook_db: Path, fresh_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if name == "04_prevalence_and_threshold":  # scores and an estimate to look at
        from nlp.pipeline import analyze

        monkeypatch.setenv("DAYS", "3650")  # the fixture's posts are from late November

        engine = make_engine(fresh_db_url)
        with session_scope(engine) as s:
            analyze(s, reestimate_prevalence=True)
        engine.dispose()
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(notebook_db)}}).execute()
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "Traceback" not in text
    # charts render inline: an analyst sees them in the notebook, not in a file somewhere
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{name}: no chart in the executed notebook"
    if name == "01_explore_data":
        assert "100 posts and messages" in text
    if name == "02_error_analysis":
        assert "active model: tiny-shipped" in text and "distinct labelled texts: 100" in text
        held_out = int(text.split("held-out labels (evaluation bucket, never trained on): ")[1].split()[0])
        assert 0 < held_out < 100  # judged only on the evaluation bucket, not on what it could learn from
        assert "类别" in text and "渠道" in text
    if name == "03_retrain_and_compare":
        assert "candidate:" in text and "recalibrated:" in text and "from tiny-shipped" in text
        assert "条留出标注" in text or "两个模型都没训练过" in text
        # a scratch registry by default: nothing promoted, nothing kept in the database or data folder
        assert "scratch registry: nothing promoted" in text
        before, after = text.split("model versions in the database: ")[1].split()[0:3:2]
        assert before == after
        assert not (notebook_db / "var" / "models" / "rumor").exists()
    if name == "04_prevalence_and_threshold":
        assert "scored posts in the window: 100" in text and "判为疑似谣言" in text


@pytest.mark.slow
def test_retrain_notebook_promotes_only_when_told(notebook_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMOTE", "1")
    book = nbformat.read(NOTEBOOKS / "03_retrain_and_compare.ipynb", as_version=4)
    NotebookClient(book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(notebook_db)}}).execute()
    text = "\n".join(str(o.get("text", "")) for c in book.cells if c.cell_type == "code" for o in c.outputs)
    # the live registry: the candidates are kept; the gate decides (this small fixture has too few
    # held-out labels to decide, so it says how many more are needed instead of promoting)
    assert "scratch" not in text.split("candidate:")[1]
    before, after = text.split("model versions in the database: ")[1].split()[0:3:2]
    assert int(after) >= int(before) + 2
    assert ("promoted" in text and "not promoted" not in text) or "还需要" in text
    assert (notebook_db / "var" / "models" / "rumor" / "evalset.csv").is_file()
