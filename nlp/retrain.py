"""Training candidate models from reviewed labels and CSVs, with a fixed evaluation set.

The evaluation set is fixed by construction: a text belongs to it when the hash of its
normalised form falls in bucket 0 of 5. Membership never changes, so no version is ever
trained on a text another version was judged on, and the set only grows as new labels come in.
Its texts are kept with the registry (``<data_dir>/models/<name>/evalset.csv``), which stays on
this machine. Every text in it is removed from the training data (by normalised text).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from sqlalchemy import Table
from sqlalchemy.orm import Session

from core.encoding import decode_text
from core.errors import InvalidInput
from core.settings import get_settings
from nlp.concerns.places import load_gazetteer
from nlp.labels import csv_rows, parse_label, text_key, training_labels
from nlp.registry import MODEL_NAME, register_version, trained_dir
from nlp.segment import Segmenter

if TYPE_CHECKING:  # scikit-learn loads with the model, not with the console
    from nlp.classifier import RumorModel

log = logging.getLogger(__name__)

EVAL_MODULUS = 5
DEFAULT_SEED = 20261128
RESEARCH_TERMS = (
    "Parts of the training data come from public research datasets of Sina Weibo rumors "
    "(weibo21 / MDFEND, Nan et al. CIKM 2021; weibo_ced, Song et al. arXiv:1811.04175; "
    "Ma et al. IJCAI 2016). No license is stated for them and some say research use only: "
    "the model holds numeric weights only (hashed features, no vocabulary, no texts). "
    "Deployers should retrain on their own reviewed labels."
)


def in_evalset(key: str) -> bool:
    return int(key[:8], 16) % EVAL_MODULUS == 0


def evalset_path(name: str = MODEL_NAME) -> Path:
    return trained_dir(name) / "evalset.csv"


def load_evalset(name: str = MODEL_NAME) -> tuple[list[str], list[int]]:
    path = evalset_path(name)
    if not path.is_file():
        return [], []
    texts, labels = [], []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            texts.append(row["text"])
            labels.append(int(row["label"]))
    return texts, labels


def _grow_evalset(name: str, rows: list[tuple[str, str, int]]) -> int:
    """Append new evaluation texts (key, text, label); returns the set's size."""
    path = evalset_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    known: set[str] = set()
    if path.is_file():
        with path.open(encoding="utf-8", newline="") as handle:
            known = {row["text_hash"] for row in csv.DictReader(handle)}
    fresh = [r for r in rows if r[0] not in known]
    new_file = not path.is_file()
    with path.open("a", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(["text_hash", "text", "label"])
        for key, text, label in fresh:
            writer.writerow([key, text, label])
    return len(known) + len(fresh)


@dataclass
class Dataset:
    """Labelled texts from several origins, deduplicated by normalised text."""

    texts: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    origins: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0

    def add(self, origin: str, texts: Sequence[str], labels: Sequence[int]) -> None:
        index = {k: i for i, k in enumerate(self.keys)}
        added = 0
        for text, label in zip(texts, labels, strict=True):
            key = text_key(text)
            if key in index:
                if self.labels[index[key]] != label:
                    self.conflicts += 1
                    self.labels[index[key]] = -1  # conflicting verdicts: dropped below
                continue
            index[key] = len(self.keys)
            self.keys.append(key)
            self.texts.append(text)
            self.labels.append(int(label))
            added += 1
        self.origins[origin] = self.origins.get(origin, 0) + added

    def clean(self) -> None:
        keep = [i for i, y in enumerate(self.labels) if y in (0, 1)]
        self.texts = [self.texts[i] for i in keep]
        self.labels = [self.labels[i] for i in keep]
        self.keys = [self.keys[i] for i in keep]


def read_labelled_csv(path: Path, text_column: str = "text", label_column: str = "label") -> tuple[list[str], list[int]]:
    if not path.is_file():
        raise InvalidInput(f"找不到训练数据文件 {path}")
    texts, labels = [], []
    for _, row in csv_rows(path, (text_column, label_column), f"{text_column},{label_column}"):
        text = (row.get(text_column) or "").strip()
        if text:
            texts.append(text)
            labels.append(parse_label(row.get(label_column)))
    return texts, labels


def gather(session: Session | None, *, data: Sequence[Path] = (), include_db_labels: bool = False,
           base: str = "none") -> Dataset:
    dataset = Dataset()
    if base == "shipped":
        from nlp.data import SharedDataMissing, all_three_dedup

        try:
            split = all_three_dedup()
        except SharedDataMissing as err:
            raise InvalidInput(f"--base shipped 需要研究数据 ../shared/data（{err}）；没有时请用 --base none") from err
        dataset.add("shared-data (weibo21 + weibo_ced + weibo_ma2016)", list(split.texts), list(split.labels))
    elif base != "none":
        raise InvalidInput(f"--base 只能是 shipped 或 none，收到 '{base}'")
    for path in data:
        texts, labels = read_labelled_csv(Path(path))
        dataset.add(f"csv:{Path(path).name}", texts, labels)
    if include_db_labels:
        if session is None:
            raise InvalidInput("--include-db-labels 需要数据库")
        texts, labels, conflicts = training_labels(session)
        dataset.add("database labels", texts, labels)
        dataset.conflicts += len(conflicts)  # left out before they reached the dataset: still dropped
    dataset.clean()
    return dataset


def local_segmenter() -> Segmenter:
    """Our segmenter plus this office's words: every place name and alias in places.yaml and the
    lines of ``YUQING_SEGMENT_DICT``. A model trained with it keeps the lines inside itself, so
    "石桥村" stays one word in its features and explanations wherever the model is loaded."""
    lines = load_gazetteer().user_dict_lines()
    extra = get_settings().segment_dict
    if extra is not None:
        try:
            text = decode_text(extra.read_bytes())
        except (OSError, ValueError) as err:
            raise InvalidInput(f"分词词典 {extra} 无法读取（{err}）：请检查 YUQING_SEGMENT_DICT "
                               "指向的文件（每行：词 [词频] [词性]，UTF-8 或 GBK）。") from err
        lines += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return Segmenter(extra_entries=lines)


def _fold_score(texts: list[str], y: np.ndarray, tr: np.ndarray, te: np.ndarray, seed: int,
                segmenter: Segmenter | None) -> dict[str, float]:
    from nlp.classifier import evaluate, train_rumor_model

    model = train_rumor_model([texts[j] for j in tr], y[tr].tolist(), seed=seed, segmenter=segmenter)
    return evaluate(model, [texts[j] for j in te], y[te].tolist())


def cross_validate(texts: list[str], labels: list[int], *, folds: int, seed: int,
                   progress: Callable[[str], None] | None = None,
                   segmenter: Segmenter | None = None, n_jobs: int | None = None) -> dict[str, float]:
    """Mean metrics over stratified folds. The folds train in parallel (``n_jobs``: None = one
    process per core, at most one per fold; 1 = in this process): on 2 cores a `--base shipped`
    retrain's five folds took three minutes one after another."""
    import os

    from joblib import Parallel, delayed
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(labels)
    folds = min(folds, int(np.bincount(y).min()))
    if folds < 2:
        return {}
    splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    jobs = min(folds, n_jobs or os.cpu_count() or 1)
    step = progress or (lambda _msg: None)
    step(f"交叉验证：{folds} 折，{jobs} 个进程并行")
    scores: list[dict[str, float]] = []
    if jobs <= 1:
        for tr, te in splits:
            scores.append(_fold_score(texts, y, tr, te, seed, segmenter))
            step(f"交叉验证：已完成 {len(scores)}/{folds} 折")
    else:
        runs = Parallel(n_jobs=jobs, return_as="generator_unordered")(
            delayed(_fold_score)(texts, y, tr, te, seed, segmenter) for tr, te in splits)
        for result in runs:
            scores.append(result)
            step(f"交叉验证：已完成 {len(scores)}/{folds} 折")
    keys = [k for k in scores[0] if k != "n"]
    return {"folds": folds} | {k: float(np.mean([s[k] for s in scores])) for k in keys}


@dataclass
class TrainResult:
    version: str
    path: Path
    metrics: dict[str, Any]
    version_id: int | None


@dataclass
class _EvalSplit:
    """The texts to fit on and the fixed evaluation set including ``dataset``'s evaluation-bucket
    texts; ``new_rows`` are written to the set only once a candidate is saved (`_keep_evalset`),
    so a refused command changes nothing on disk. (Bucket texts are never fitted on either way:
    membership is by hash.)"""

    texts: list[str]
    labels: list[int]
    eval_texts: list[str]
    eval_labels: list[int]
    new_rows: list[tuple[str, str, int]]


def _split_evalset(dataset: Dataset) -> _EvalSplit:
    eval_texts, eval_labels = load_evalset(MODEL_NAME)
    eval_keys = {text_key(t) for t in eval_texts}
    new_rows: list[tuple[str, str, int]] = []
    for key, text, label in zip(dataset.keys, dataset.texts, dataset.labels, strict=True):
        if in_evalset(key) and key not in eval_keys:
            eval_keys.add(key)
            new_rows.append((key, text, label))
    fit = [i for i, k in enumerate(dataset.keys) if not in_evalset(k) and k not in eval_keys]
    return _EvalSplit([dataset.texts[i] for i in fit], [dataset.labels[i] for i in fit],
                      eval_texts + [t for _, t, _ in new_rows], eval_labels + [y for _, _, y in new_rows], new_rows)


def _keep_evalset(split: _EvalSplit) -> None:
    _grow_evalset(MODEL_NAME, split.new_rows)


def _version_name(name: str | None) -> str:
    version = name or dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    if (trained_dir() / version).exists():
        raise InvalidInput(f"版本 {version} 已存在：换一个 --name")
    return version


def _reference(model: RumorModel, texts: list[str]) -> dict[str, Any]:
    """Score distribution on the fitting texts (drift checks compare live scores with it)."""
    proba = model.predict_proba(texts[:5000])
    return {"bins": np.histogram(proba, bins=10, range=(0, 1))[0].tolist(),
            "mean": float(proba.mean()), "high_share": float((proba >= 0.8).mean())}


def _save_candidate(session: Session | None, model: RumorModel, metrics: dict[str, Any],
                    user_id: int | None, note: str | None = None, *, fitted_on: Sequence[str] = (),
                    action: str = "trained") -> TrainResult:
    """Save, write the card, record which texts were fitted on (for fair comparisons), register."""
    from nlp.model_compare import write_seen_keys

    path = trained_dir() / model.version
    model.save(path)
    write_seen_keys(path, [text_key(t) for t in fitted_on])
    (path / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8")
    (path / "card.md").write_text(render_card(model.card, model.version), encoding="utf-8")
    version_id = None
    if session is not None:
        version_id = register_version(session, path, user_id=user_id, note=note, action=action).id
    return TrainResult(model.version, path, metrics, version_id)


def train_candidate(session: Session | None, *, data: Sequence[Path] = (), include_db_labels: bool = False,
                    base: str = "none", name: str | None = None, seed: int = DEFAULT_SEED, cv_folds: int = 5,
                    progress: Callable[[str], None] | None = None, user_id: int | None = None,
                    n_jobs: int | None = None) -> TrainResult:
    """Train, evaluate and register a candidate version (not active until promoted)."""
    step = progress or (lambda _msg: None)
    step("收集标注数据")
    dataset = gather(session, data=data, include_db_labels=include_db_labels, base=base)
    if len(set(dataset.labels)) < 2 or len(dataset.labels) < 10:
        raise InvalidInput(f"训练数据不足：{len(dataset.labels)} 条，且需要同时有谣言和非谣言标注")
    version = _version_name(name)
    split = _split_evalset(dataset)
    train_texts, train_labels, eval_texts, eval_labels = split.texts, split.labels, split.eval_texts, split.eval_labels
    eval_size = len(eval_texts)

    segmenter = local_segmenter()
    cv = (cross_validate(train_texts, train_labels, folds=cv_folds, seed=seed, progress=step, segmenter=segmenter,
                         n_jobs=n_jobs) if cv_folds else {})
    step("训练最终模型")
    from nlp.classifier import evaluate, train_rumor_model

    model = train_rumor_model(train_texts, train_labels, seed=seed, version=version, segmenter=segmenter)
    step("在固定评估集上评估")
    held_out = evaluate(model, eval_texts, eval_labels) if len(set(eval_labels)) == 2 else {}
    metrics = {"cv": cv, "evalset": held_out, "evalset_size": eval_size}
    model.card.update({
        "data": dataset.origins, "n_train": len(train_texts), "conflicts_dropped": dataset.conflicts,
        "metrics": metrics, "reference_distribution": _reference(model, train_texts), "seed": seed,
        "local_dictionary_lines": len(segmenter.extra_entries),
        "terms": RESEARCH_TERMS if base == "shipped" else "Trained on this office's own labels.",
        **_prevalence_profile(model, train_labels, eval_texts, eval_labels),
    })
    result = _save_candidate(session, model, metrics, user_id, fitted_on=train_texts)
    _keep_evalset(split)
    return result


#: Fewest rumors of the evaluation set whose scores stand for the rumor class on new streams.
MIN_HELDOUT_RUMORS = 20


def _prevalence_profile(model: RumorModel, train_labels: Sequence[int], eval_texts: Sequence[str],
                        eval_labels: Sequence[int]) -> dict[str, Any]:
    """What nlp.prevalence_store needs of a model trained here: the rumor share of its training
    labels, and the quantiles of its scores on the evaluation set's rumors (held out) when there
    are enough of them (then the best-bin estimator is used, else EM)."""
    out: dict[str, Any] = {"train_prior": round(float(np.mean(train_labels)), 6)}
    rumors = [t for t, y in zip(eval_texts, eval_labels, strict=True) if int(y) == 1]
    if len(rumors) >= MIN_HELDOUT_RUMORS:
        scores = np.asarray(model.predict_proba(rumors), dtype=np.float64)
        out["heldout_positive_quantiles"] = [round(float(v), 6) for v in np.quantile(scores, np.linspace(0, 1, 201))]
    return out


#: Fewest labels of each class (outside the evaluation set) a recalibration is fitted on: fewer
#: let a handful of labels set the threshold. bench/results/recalibration.md: with 100 reviewed
#: posts of a new corpus (about 35 rumors outside the evaluation set) every draw reached 0.88.
MIN_CALIBRATION_PER_CLASS = 20
#: L2 strength of the refitted sigmoid (sklearn's C): a few dozen labels would otherwise let the
#: slope run off on a lucky separation. The harness used the same value.
RECALIBRATION_C = 1.0


def recalibrate_candidate(session: Session, *, data: Sequence[Path] = (), include_db_labels: bool = False,
                          name: str | None = None, progress: Callable[[str], None] | None = None,
                          user_id: int | None = None) -> TrainResult:
    """A candidate that keeps the active model's weights and refits only its sigmoid (rumor
    probability = sigmoid(a * margin + b)) on this office's labels.

    Why: on a corpus the model was not trained on, the ranking of posts carries over much
    better than the 0.5 threshold does (issue 9: weibo_ced is ranked well enough for macro-F1
    0.896 at the best threshold, but scored 0.876 at the shipped one). A few dozen reviewed
    local posts fix the threshold without retraining; the weights, explanations and speed stay.
    """
    from sklearn.linear_model import LogisticRegression

    from nlp.registry import active_version

    step = progress or (lambda _msg: None)
    step("收集标注数据")
    dataset = gather(session, data=data, include_db_labels=include_db_labels)
    version = _version_name(name)
    split = _split_evalset(dataset)
    texts, labels, eval_texts, eval_labels = split.texts, split.labels, split.eval_texts, split.eval_labels
    eval_size = len(eval_texts)
    y = np.asarray(labels, dtype=int)
    per_class = (int((y == 1).sum()), int((y == 0).sum()))
    if min(per_class) < MIN_CALIBRATION_PER_CLASS:
        # Say where the other labels went: about one in five is kept aside for the fixed evaluation
        # set, so "现有 0 / 0" after two labels read as if the labels had been lost.
        held = len(dataset.texts) - len(texts)
        aside = f"；另有 {held} 条标注划入了固定评估集，用来检验校准结果，不参与校准" if held else ""
        raise InvalidInput(
            f"校准需要评估集之外至少 {MIN_CALIBRATION_PER_CLASS} 条谣言和 {MIN_CALIBRATION_PER_CLASS} 条非谣言标注，"
            f"现有谣言 {per_class[0]} 条、非谣言 {per_class[1]} 条{aside}。请先审核预警，或在“待标注”页补标注"
            "（命令行 yuqing labels queue，或用 --data 给出标注 CSV）")
    active = active_version(session)
    step(f"用 {len(texts)} 条标注重新校准模型 {active.version}")
    from nlp.classifier import RumorModel, evaluate

    model = RumorModel.load(active.path)
    before = evaluate(model, eval_texts, eval_labels) if len(set(eval_labels)) == 2 else {}
    old = (model.clf.calib_a_, model.clf.calib_b_)
    cal = LogisticRegression(C=RECALIBRATION_C).fit(model.decision_function(texts).reshape(-1, 1), y)
    if cal.coef_[0, 0] <= 0:
        # A sigmoid falling with the score would turn the model upside down (and its
        # explanations with it): the labels disagree with its ranking, not with its threshold.
        raise InvalidInput(f"这些标注与模型 {active.version} 的排序不一致（得分越高越不像谣言），只调阈值无济于事："
                           "请检查标注，或用 `yuqing train` 重新训练")
    model.clf.calib_a_, model.clf.calib_b_ = float(cal.coef_[0, 0]), float(cal.intercept_[0])
    model.version = version
    step("在固定评估集上评估")
    after = evaluate(model, eval_texts, eval_labels) if len(set(eval_labels)) == 2 else {}
    metrics = {"cv": {}, "evalset": after, "evalset_before": before, "evalset_size": eval_size}
    model.card.update({
        "data": dataset.origins, "n_train": model.card.get("n_train"), "n_calibration": len(texts),
        "conflicts_dropped": dataset.conflicts, "metrics": metrics,
        "reference_distribution": _reference(model, texts),
        **_prevalence_profile(model, labels, eval_texts, eval_labels),
        "recalibrated_from": active.version,
        "calibration": {"before": {"a": old[0], "b": old[1], "threshold_margin": -old[1] / old[0]},
                        "after": {"a": model.clf.calib_a_, "b": model.clf.calib_b_,
                                  "threshold_margin": -model.clf.calib_b_ / model.clf.calib_a_}},
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    })
    result = _save_candidate(session, model, metrics, user_id,
                             note=f"由 {active.version} 重新校准（{len(texts)} 条标注）", fitted_on=texts,
                             action="recalibrated")
    _keep_evalset(split)
    return result


def _fmt(metrics: dict[str, Any]) -> str:
    keys = ("macro_f1", "accuracy", "rumor_precision", "rumor_recall", "rumor_f1", "ece")
    return " | ".join(f"{metrics[k]:.4f}" if k in metrics else "-" for k in keys)


def render_card(card: dict[str, Any], version: str) -> str:
    metrics = card.get("metrics", {})
    cv = metrics.get("cv") or {}
    lines = [
        f"# Rumor classifier {version}", "",
        f"- Trained: {card.get('trained_at', '-')} (seed {card.get('seed')})",
        f"- Training texts: {card.get('n_train')} (conflicting labels dropped: {card.get('conflicts_dropped', 0)})",
        "- Data: " + ", ".join(f"{k}: {v}" for k, v in card.get("data", {}).items()),
        f"- Terms: {card.get('terms', '')}",
    ]
    if card.get("local_dictionary_lines"):
        lines.append(f"- Segmenter: our domain dictionary plus {card['local_dictionary_lines']} local lines "
                     "(places.yaml names and YUQING_SEGMENT_DICT), kept inside the model")
    if card.get("recalibrated_from"):
        cal = card.get("calibration", {})
        lines.append(
            f"- Recalibrated: the weights of {card['recalibrated_from']}, its probability sigmoid refitted on "
            f"{card.get('n_calibration')} labelled texts (threshold on the margin "
            f"{cal.get('before', {}).get('threshold_margin', 0):.3f} -> {cal.get('after', {}).get('threshold_margin', 0):.3f})")
    lines += ["", "| set | macro-F1 | accuracy | rumor P | rumor R | rumor F1 | ECE |", "|---|---|---|---|---|---|---|"]
    if cv:
        lines.append(f"| {cv.get('folds', 0)}-fold CV | {_fmt(cv)} |")
    if metrics.get("evalset_before"):
        lines.append(f"| fixed evaluation set, before recalibration | {_fmt(metrics['evalset_before'])} |")
    lines += [
        f"| fixed evaluation set ({metrics.get('evalset_size', 0)} texts) | {_fmt(metrics.get('evalset', {}))} |",
        "", "The evaluation set is every labelled text whose normalised-text hash falls in bucket 0 of 5; "
        "none of them is used for training.",
    ]
    return "\n".join(lines) + "\n"


def labelling_queue(session: Session, *, limit: int = 50, offset: int = 0,
                    score_missing: int = 2_000) -> tuple[list[Any], int]:
    """The active-learning queue of the active model, with the band and reach weight of the
    settings. Posts of the last ``label_queue_days`` the active model has not scored yet are
    scored first (up to ``score_missing`` of them), so the queue does not empty after a promotion
    while `yuqing rescore` has not run."""
    from nlp.labels import active_learning_queue
    from nlp.registry import active_version

    settings = get_settings()
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=settings.label_queue_days)
    if score_missing:
        try:
            rescore(session, since=since, limit=score_missing)
        except FileNotFoundError as err:  # the queue still shows what was scored; the models page says why
            log.warning("labelling queue: the active model could not score new posts: %s", err)
    return active_learning_queue(session, model_version_id=active_version(session).id, limit=limit, offset=offset,
                                 band=settings.label_queue_band, reach_weight=settings.label_queue_reach_weight)


def rescore(session: Session, *, since: dt.datetime, batch_size: int = 2_000,
            progress: Callable[[int], None] | None = None, limit: int | None = None) -> int:
    """Score posts published since ``since`` with the active model where it has not scored them
    (newest first, at most ``limit``).

    Each batch is committed on its own, so an interrupted run resumes where it stopped.
    """
    from sqlalchemy import and_, exists, func, select

    from core.tables import Post, PostScore
    from nlp.registry import load_active_model

    model, version_id = load_active_model(session)
    done = 0
    below: int | None = None  # newest first: what staff label next is what came in last
    while limit is None or done < limit:
        scored = exists().where(and_(PostScore.post_id == Post.id, PostScore.model_version_id == version_id))
        size = batch_size if limit is None else min(batch_size, limit - done)
        when = func.coalesce(Post.published_at, Post.collected_at)  # a post without a date counts from arrival
        stmt = select(Post.id, Post.title, Post.raw_text).where(when >= since, ~scored)
        if below is not None:
            stmt = stmt.where(Post.id < below)
        rows = session.execute(stmt.order_by(Post.id.desc()).limit(size)).all()
        if not rows:
            return done
        texts = [f"{title}\n{text}" if title else text for _, title, text in rows]
        proba = model.predict_proba(texts)
        reasons = model.explain(texts, k=5)
        session.execute(cast(Table, PostScore.__table__).insert(), [
            {"post_id": pid, "model_version_id": version_id, "rumor_probability": float(p),
             "label": int(p >= 0.5), "explanation": [[t, w] for t, w in why], "scored_at": dt.datetime.now(dt.UTC)}
            for (pid, _, _), p, why in zip(rows, proba, reasons, strict=True)
        ])
        session.commit()
        done += len(rows)
        below = rows[-1][0]
        if progress:
            progress(len(rows))
    return done
