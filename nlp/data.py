"""Loaders for the labelled rumor data in ``../shared/data`` (research use only).

Nothing here copies data into the repository: the loaders read the shared folder at run time
(``$YUQING_SHARED_DATA``, else ``<repo>/../shared/data``) and raise `SharedDataMissing` when it
is absent, so tests and benchmarks can skip cleanly.

The three corpora overlap heavily (see the data README). Every protocol here removes texts
shared between its train and test sides, by the README's ``text_key`` and by our own
normalised text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nlp.normalize import normalize

__all__ = [
    "DATASETS",
    "SharedDataMissing",
    "Split",
    "all_three_dedup",
    "cross_dataset",
    "load_combined",
    "shared_data_dir",
    "weibo21_official",
    "weibo21_train_val",
    "weibo21_with_others",
]

DATASETS = ("weibo21", "weibo_ma2016", "weibo_ced")
_UNDETERMINED = "无法确定"
REPO_ROOT = Path(__file__).resolve().parent.parent


class SharedDataMissing(FileNotFoundError):
    """The labelled data folder is not there (it is never part of the repository)."""


@dataclass(frozen=True)
class Split:
    """Texts and 0/1 labels (1 = rumor) of one side of a protocol."""

    texts: list[str]
    labels: list[int]
    name: str = ""

    def __len__(self) -> int:
        return len(self.texts)


def _candidates() -> list[Path]:
    env = os.environ.get("YUQING_SHARED_DATA")
    if env:
        return [Path(env)]
    out = [REPO_ROOT.parent / "shared" / "data"]
    # In a git worktree, <repo>/.git is a file pointing into the main checkout's .git:
    # also try the main checkout's sibling folder.
    git = REPO_ROOT / ".git"
    if git.is_file():
        text = git.read_text(encoding="utf-8").strip()
        if text.startswith("gitdir:"):
            gitdir = Path(text.split(":", 1)[1].strip())
            if gitdir.parent.name == "worktrees":
                out.append(gitdir.parent.parent.parent.parent / "shared" / "data")
    return out


def shared_data_dir() -> Path:
    """The shared data folder; raises `SharedDataMissing` naming the fix."""
    tried = _candidates()
    for d in tried:
        if (d / "combined_text_label.csv").is_file():
            return d
    raise SharedDataMissing(
        f"labelled data not found at {', '.join(map(str, tried))} (need combined_text_label.csv): "
        "set YUQING_SHARED_DATA to the shared/data folder"
    )


_CACHE: dict[str, pd.DataFrame] = {}


def load_combined() -> pd.DataFrame:
    """All rows of the three datasets with ``norm`` (normalised text) and, for weibo21,
    ``category``. weibo21's 无法确定 rows are dropped (as MDFEND and the paper do), as are
    rows with empty text."""
    d = shared_data_dir()
    key = str(d)
    if key not in _CACHE:
        df = pd.read_csv(d / "combined_text_label.csv", dtype={"id": str, "split": str, "text_key": str})
        w21 = pd.read_csv(d / "weibo21" / "weibo21_mdfend_splits.csv", usecols=["id", "category"], dtype=str)
        df = df.merge(w21.assign(dataset="weibo21"), on=["dataset", "id"], how="left")
        df = df[df["text"].notna() & (df["text"].astype(str).str.strip() != "")]
        df = df[~((df["dataset"] == "weibo21") & (df["category"] == _UNDETERMINED))]
        df = df.assign(text=df["text"].astype(str), label=df["label"].astype(int))
        df["norm"] = [normalize(t) for t in df["text"]]
        _CACHE[key] = df.reset_index(drop=True)
    return _CACHE[key].copy()


def _split(df: pd.DataFrame, name: str) -> Split:
    return Split(df["text"].tolist(), df["label"].astype(int).tolist(), name)


def _drop_seen(test: pd.DataFrame, seen: pd.DataFrame) -> pd.DataFrame:
    keys = set(seen["text_key"])
    norms = set(seen["norm"])
    return test[~(test["text_key"].isin(keys) | test["norm"].isin(norms))]


def weibo21_official(*, dedup_test: bool = True) -> dict[str, Split]:
    """weibo21 (MDFEND) official train / val / test, without category 无法确定.

    With ``dedup_test`` the test side also loses every text whose ``text_key`` or normalised
    text occurs in train (211 texts repeat across the official splits).
    """
    w = _weibo21()
    train, val, test = (w[w["split"] == s] for s in ("train", "val", "test"))
    if dedup_test:
        test = _drop_seen(test, train)
    return {"train": _split(train, "weibo21/train"), "val": _split(val, "weibo21/val"),
            "test": _split(test, "weibo21/test" + ("-dedup" if dedup_test else ""))}


def weibo21_train_val() -> dict[str, Split]:
    """weibo21 official train + val as one training set; test minus every text that occurs in
    either (21 deduplicated test texts have a copy in val, not in train)."""
    w = _weibo21()
    seen = w[w["split"].isin(("train", "val"))]
    return {"train": _split(seen, "weibo21/train+val"),
            "test": _split(_drop_seen(w[w["split"] == "test"], seen), "weibo21/test-dedup-trval")}


def weibo21_with_others(*, with_val: bool = False) -> dict[str, Split]:
    """weibo21 official train (and val) plus the other two datasets; test = the official test
    minus texts seen in the weibo21 part.

    This is the shipped model's recipe (all three datasets) measured on weibo21 texts it never
    saw: every row of weibo_ced and weibo_ma2016 whose ``text_key`` or normalised text occurs in
    that test set is removed too. It is not the published protocol (which trains on weibo21 only).
    """
    df = load_combined()
    w = _weibo21()
    parts = ("train", "val") if with_val else ("train",)
    own = w[w["split"].isin(parts)]
    test = _drop_seen(w[w["split"] == "test"], own)
    others = _drop_seen(df[df["dataset"] != "weibo21"], test)
    return {"train": _split(pd.concat([own, others]), "weibo21/" + "+".join(parts) + "+others"),
            "test": _split(test, "weibo21/test-dedup" + ("-trval" if with_val else ""))}


def _weibo21() -> pd.DataFrame:
    df = load_combined()
    return df[df["dataset"] == "weibo21"]


def cross_dataset(test_dataset: str = "weibo_ced") -> dict[str, Split]:
    """Train on the other two datasets minus every text shared with ``test_dataset``.

    Shared means same ``text_key`` or same normalised text. The test side is the whole of
    ``test_dataset``.
    """
    if test_dataset not in DATASETS:
        raise ValueError(f"unknown dataset {test_dataset!r}: use one of {DATASETS}")
    df = load_combined()
    test = df[df["dataset"] == test_dataset]
    train = _drop_seen(df[df["dataset"] != test_dataset], test)
    return {"train": _split(train, "not-" + test_dataset), "test": _split(test, test_dataset)}


def all_three_dedup() -> Split:
    """All three datasets, one row per distinct text (``text_key``, then normalised text).

    Texts whose copies disagree on the label are dropped.
    """
    df = load_combined()
    conflict_keys = df.groupby("text_key")["label"].nunique()
    conflict_norm = df.groupby("norm")["label"].nunique()
    df = df[~df["text_key"].isin(conflict_keys[conflict_keys > 1].index)]
    df = df[~df["norm"].isin(conflict_norm[conflict_norm > 1].index)]
    df = df.drop_duplicates("text_key").drop_duplicates("norm")
    return _split(df, "all-three-dedup")
