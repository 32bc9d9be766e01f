"""Prevalence estimates in the database: per channel over a rolling window, their history, and the
decisions they imply (the math is in `nlp.prevalence`).

Each post's score row keeps the model's raw score (``post_scores.raw_probability``) beside the
adjusted one (``rumor_probability``), so `reestimate` can move every recent post to a new
prevalence estimate, and its label to the new threshold, without scoring anything again.

* `Decider` turns raw scores into adjusted probabilities and labels (the analysis pipeline and
  `yuqing classify` use it).
* `reestimate` estimates the rumor share of each channel over the last `WINDOW_DAYS` days of
  scores (reviewed verdicts in the ``labels`` table count as known classes), fits the channel's
  calibration map once it has enough verdicts (`nlp.channel_calibration`; the model's held-out
  calibration before that), stores the estimates with their bootstrap intervals, the map and the
  threshold for the target precision in ``prevalence_estimates``, and re-adjusts the window's
  scores.
* `current` reads the latest estimates back (console, CLI, digest, alert rules).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
from sqlalchemy import Table, bindparam, exists, select, update
from sqlalchemy.orm import Session

from core.tables import DebunkMatch, Label, ModelVersion, Post, PostScore, PrevalenceEstimate, Story, utcnow
from nlp.bulk import executemany
from nlp.channel_calibration import HELDOUT, MIN_LABELS, MIN_PER_CLASS, CalibrationMap, calibrated_estimate
from nlp.prevalence import (
    DEFAULT_TARGET_PRECISION,
    Estimate,
    PositiveTail,
    adjust,
    estimate_prior,
    precision_threshold,
)

__all__ = [
    "CHANNELS",
    "DEFAULT_PRIORS",
    "LABEL_ABSTAIN",
    "Decider",
    "calibration_zh",
    "current",
    "decider_for",
    "describe",
    "model_profile",
    "move_note",
    "reestimate",
    "threshold_for_target",
    "too_uncertain",
    "train_prior_of",
    "with_count_noise",
]

log = logging.getLogger(__name__)

CHANNELS = ("web", "chat")
#: The rumor share assumed before a channel has enough scored posts for an estimate: a township's
#: public sites carry a few percent of rumors, its group chats (mostly greetings, logistics,
#: chatter) fewer.
DEFAULT_PRIORS = {"web": 0.03, "chat": 0.01}
#: Fewest judged posts in a channel's window for its own estimate (fewer: the default stays).
MIN_POSTS = 200
WINDOW_DAYS = 7
#: A channel whose estimate over `WINDOW_DAYS` is too uncertain (its 90% interval spans more than
#: `MAX_SPAN` times: it cannot say whether the share is within 1.5x either way) is estimated again
#: over twice, then four times the window, up to `MAX_WINDOW_DAYS`. The interval is at least the
#: counting noise of the rumors it implies (`with_count_noise`), so that takes some 19 rumors: at
#: 1% about 2,000 judged posts, more than a quiet township's chats hold in a week
#: (bench/experiments/results/prevalence_heldout.md). If even the longest window is too uncertain,
#: the estimate says so.
MAX_SPAN = 2.25
_Z90 = 1.645
MAX_WINDOW_DAYS = 28
RESAMPLES = 50  # bootstrap draws of an interval
#: An estimate moving by more than this factor (either way) since the previous one is news for
#: the digest.
NOTABLE_MOVE = 1.5
LABEL_ABSTAIN = -1
_CHUNK = 500


PROFILE_FILE = "prevalence.json"


@dataclass(frozen=True)
class ModelProfile:
    """What the estimators need to know about a model: its training data's rumor share and, when
    measured, its rumor class's held-out scores (``prevalence.json`` beside the model file)."""

    train_prior: float
    tail: PositiveTail | None = None

    @property
    def method(self) -> str:
        """BBE where the held-out rumor scores are known (it measured far better: see
        bench/results/prevalence.md), else EM."""
        return "bbe" if self.tail is not None else "em"


def _profile_file(path: str | Path | None) -> dict[str, Any]:
    if not path:
        return {}
    d = Path(path)
    f = (d if d.is_dir() else d.parent) / PROFILE_FILE
    return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {}


def model_profile(card: dict[str, Any] | None, path: str | Path | None = None) -> ModelProfile:
    """The profile of a model: the card's ``train_prior`` / ``heldout_positive_quantiles`` first
    (models trained here), then ``prevalence.json`` beside the model, else a rumor share of 0.5
    (the research sets are about half rumors) and no held-out scores."""
    card = card or {}
    extra = _profile_file(path)
    prior = card.get("train_prior", extra.get("train_prior"))
    quantiles = card.get("heldout_positive_quantiles") or (extra.get("heldout_quantiles") or {}).get("positive")
    tail = PositiveTail(np.asarray(quantiles, dtype=np.float64)) if quantiles else None
    return ModelProfile(float(prior) if prior is not None else 0.5, tail)


def train_prior_of(card: dict[str, Any] | None, path: str | Path | None = None) -> float:
    """The rumor share of a model's training data (see `model_profile`)."""
    return model_profile(card, path).train_prior


@dataclass
class Decider:
    """Raw model scores -> adjusted probabilities and labels at the current estimates: each
    channel's calibration map first, then the move from the training prior to its rumor share."""

    train_prior: float
    priors: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PRIORS))
    threshold: float = DEFAULT_TARGET_PRECISION
    target_precision: float = DEFAULT_TARGET_PRECISION
    maps: dict[str, CalibrationMap] = field(default_factory=dict)

    def prior(self, channel: str) -> float:
        return self.priors.get(channel, DEFAULT_PRIORS.get(channel, min(DEFAULT_PRIORS.values())))

    def calibration(self, channel: str) -> CalibrationMap:
        return self.maps.get(channel, HELDOUT)

    def adjusted(self, raw: np.ndarray, channels: Sequence[str]) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.float64)
        out = np.empty(len(raw))
        chans = np.asarray(list(channels), dtype=object)
        for ch in set(chans.tolist()):
            m = chans == ch
            out[m] = adjust(self.calibration(ch).apply(raw[m]), self.train_prior, self.prior(ch))
        return out

    def decide(
        self, raw: np.ndarray, channels: Sequence[str], abstain: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(adjusted probability, label) per post: label 1 at or above the threshold, 0 below,
        `LABEL_ABSTAIN` where ``abstain`` is set (its probability is then the channel's prior:
        all the model can say about a text it cannot judge)."""
        q = self.adjusted(raw, channels)
        labels = (q >= self.threshold).astype(int)
        if abstain is not None and len(q):
            a = np.asarray(abstain, dtype=bool)
            q = np.where(a, [self.prior(c) for c in channels], q)
            labels = np.where(a, LABEL_ABSTAIN, labels)
        return q, labels


def current(session: Session, model_version_id: int | None = None) -> dict[str, PrevalenceEstimate]:
    """The latest estimate per channel (``web``, ``chat``, ``all``), for a model version if given."""
    out: dict[str, PrevalenceEstimate] = {}
    for ch in (*CHANNELS, "all"):
        q = select(PrevalenceEstimate).where(PrevalenceEstimate.channel == ch)
        if model_version_id is not None:
            q = q.where(PrevalenceEstimate.model_version_id == model_version_id)
        row = session.scalar(q.order_by(PrevalenceEstimate.created_at.desc(), PrevalenceEstimate.id.desc()).limit(1))
        if row is not None:
            out[ch] = row
    return out


def history(session: Session, channel: str, limit: int = 30) -> list[PrevalenceEstimate]:
    """The latest ``limit`` estimates of a channel, newest first."""
    return list(session.scalars(
        select(PrevalenceEstimate).where(PrevalenceEstimate.channel == channel)
        .order_by(PrevalenceEstimate.created_at.desc(), PrevalenceEstimate.id.desc()).limit(limit)))


def decider_for(session: Session, model_version_id: int | None, *, card: dict[str, Any] | None = None,
                path: str | Path | None = None, target: float = DEFAULT_TARGET_PRECISION) -> Decider:
    """The decider of a model version at its latest estimates (defaults where there are none)."""
    if model_version_id is not None and (card is None or path is None):
        mv = session.get(ModelVersion, model_version_id)
        if mv is not None:
            card, path = mv.card, mv.path
    est = current(session, model_version_id)
    priors = dict(DEFAULT_PRIORS)
    priors.update({ch: e.estimate for ch, e in est.items() if ch in CHANNELS})
    maps = {ch: CalibrationMap.from_json(e.calibration) for ch, e in est.items() if ch in CHANNELS}
    overall = est.get("all")
    threshold = overall.threshold if overall is not None and abs(overall.target_precision - target) < 1e-9 else target
    return Decider(train_prior_of(card, path), priors, threshold, target, maps)


@dataclass
class _Window:
    score_ids: np.ndarray
    post_ids: np.ndarray
    story_ids: np.ndarray
    raw: np.ndarray
    channel: np.ndarray
    known: np.ndarray
    debunked: np.ndarray
    stored: np.ndarray  # the adjusted probability stored now
    label: np.ndarray  # the label stored now
    when: np.ndarray  # published (else collected) time, as datetime64[us] UTC

    def subset(self, mask: np.ndarray) -> _Window:
        return replace(self, **{f.name: getattr(self, f.name)[mask] for f in fields(self)})


def _window(session: Session, model_version_id: int | None, since: dt.datetime) -> _Window:
    """The judged scores (not abstained, raw score kept) of posts seen since ``since``."""
    ps, p = PostScore, Post
    when = p.published_at
    q = (
        select(ps.id, ps.post_id, p.story_id, ps.raw_probability, p.channel,
               exists().where(DebunkMatch.post_id == ps.post_id).label("debunked"), ps.rumor_probability, ps.label,
               p.published_at, p.collected_at)
        .join(p, p.id == ps.post_id)
        .where(ps.raw_probability.is_not(None), ps.label != LABEL_ABSTAIN,
               ((when >= since) | (when.is_(None) & (p.collected_at >= since))))
    )
    q = q.where(ps.model_version_id == model_version_id) if model_version_id is not None else q.where(
        ps.model_version_id.is_(None))
    rows = session.execute(q).all()
    post_ids = np.array([r[1] for r in rows], dtype=np.int64)
    verdicts = _verdicts(session, post_ids.tolist())
    return _Window(
        score_ids=np.array([r[0] for r in rows], dtype=np.int64),
        post_ids=post_ids,
        story_ids=np.array([r[2] if r[2] is not None else -1 for r in rows], dtype=np.int64),
        raw=np.array([r[3] for r in rows], dtype=np.float64),
        channel=np.array([r[4] for r in rows], dtype=object),
        known=np.array([verdicts.get(pid, -1) for pid in post_ids.tolist()], dtype=np.float64),
        debunked=np.array([bool(r[5]) for r in rows], dtype=bool),
        stored=np.array([r[6] for r in rows], dtype=np.float64),
        label=np.array([r[7] for r in rows], dtype=np.int64),
        when=np.array([_utc64(r[8] or r[9]) for r in rows], dtype="datetime64[us]"),
    )


def _utc64(t: dt.datetime | None) -> np.datetime64:
    if t is None:
        return np.datetime64("NaT")
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC).replace(tzinfo=None)
    return np.datetime64(t, "us")


def _verdicts(session: Session, post_ids: list[int]) -> dict[int, int]:
    """Reviewed verdicts of these posts (a post with conflicting verdicts has none)."""
    seen: dict[int, set[int]] = {}
    for start in range(0, len(post_ids), _CHUNK):
        chunk = post_ids[start : start + _CHUNK]
        for pid, label in session.execute(select(Label.post_id, Label.label).where(Label.post_id.in_(chunk))):
            if pid is not None and label in (0, 1):
                seen.setdefault(int(pid), set()).add(int(label))
    return {pid: next(iter(v)) for pid, v in seen.items() if len(v) == 1}


def reestimate(
    session: Session,
    *,
    model_version_id: int | None,
    card: dict[str, Any] | None = None,
    path: str | Path | None = None,
    target: float = DEFAULT_TARGET_PRECISION,
    window_days: int = WINDOW_DAYS,
    now: dt.datetime | None = None,
    min_posts: int = MIN_POSTS,
) -> dict[str, PrevalenceEstimate]:
    """Estimate each channel's rumor share over the window, store it, and re-adjust the window's
    scores and labels to it (no re-scoring). Returns the stored rows by channel (``all`` holds
    the pooled estimate and the threshold every channel's decisions use)."""
    now = now or utcnow()
    since = now - dt.timedelta(days=window_days)
    if model_version_id is not None and (card is None or path is None):
        mv = session.get(ModelVersion, model_version_id)
        if mv is not None:
            card, path = mv.card, mv.path
    profile = model_profile(card, path)
    train_prior = profile.train_prior
    widest = max(window_days, MAX_WINDOW_DAYS)
    wide = _window(session, model_version_id, now - dt.timedelta(days=widest))
    w = wide.subset(wide.when >= _utc64(since))
    priors: dict[str, float] = dict(DEFAULT_PRIORS)
    maps: dict[str, CalibrationMap] = {}
    rows: dict[str, PrevalenceEstimate] = {}
    for ch in CHANNELS:
        days = window_days
        while True:
            start = now - dt.timedelta(days=days)
            m = (wide.channel == ch) & (wide.when >= _utc64(start))
            found = _estimate_channel(wide.raw[m], wide.known[m], profile, min_posts)
            if days >= widest or (found is not None and found[0].upper <= MAX_SPAN * max(found[0].lower, 1e-9)):
                break
            days = min(days * 2, widest)  # too few posts for a reliable estimate: a longer window
        if found is None:
            continue
        e, method, cal = found
        priors[ch], maps[ch] = e.value, cal
        rows[ch] = PrevalenceEstimate(
            channel=ch, window_start=start, window_end=now, estimate=e.value, lower=e.lower, upper=e.upper,
            method=method + ("+labels" if e.n_labels else ""), n=e.n, n_labels=e.n_labels,
            model_version_id=model_version_id, target_precision=target, threshold=target, created_at=now,
            calibration=cal.to_json())
    decider = Decider(train_prior, priors, target, target, maps)
    q = decider.adjusted(w.raw, w.channel.tolist())
    threshold = precision_threshold(q, target, known=w.known) if len(q) else target
    decider.threshold = threshold
    for r in rows.values():
        r.threshold = threshold
    if len(q):
        # the pooled share: each channel's estimate weighted by its posts (its default if too few)
        counts = {ch: int((w.channel == ch).sum()) for ch in CHANNELS}
        pooled = sum(priors[ch] * c for ch, c in counts.items()) / max(sum(counts.values()), 1)
        n_labels = int(np.isin(w.known, (0.0, 1.0)).sum())
        rows["all"] = PrevalenceEstimate(
            channel="all", window_start=since, window_end=now, estimate=pooled,
            lower=min((r.lower for r in rows.values()), default=pooled),
            upper=max((r.upper for r in rows.values()), default=pooled),
            method=(profile.method if rows else "default") + ("+labels" if n_labels else ""),
            n=len(q), n_labels=n_labels,
            model_version_id=model_version_id, target_precision=target, threshold=threshold, created_at=now)
    for r in rows.values():
        session.add(r)
    session.flush()
    _readjust(session, w, q, threshold)
    log.info("prevalence re-estimated", extra={"priors": priors, "threshold": round(threshold, 4), "n": len(q)})
    return rows


def _estimate_channel(raw: np.ndarray, known: np.ndarray, profile: ModelProfile,
                      min_posts: int) -> tuple[Estimate, str, CalibrationMap] | None:
    """A channel's estimate over one window: the model profile's estimator, or, once the channel
    has enough reviewed verdicts, the share its calibration map implies. None below ``min_posts``."""
    if len(raw) < min_posts:
        return None
    e = estimate_prior(raw, profile.train_prior, method=profile.method, known=known, tail=profile.tail,
                       resamples=RESAMPLES)
    cal, calibrated = calibrated_estimate(raw, known, profile.train_prior, e.value, resamples=RESAMPLES)
    if calibrated is not None:
        # the channel's own verdicts calibrate its scores; the estimate is the one the map implies
        e = calibrated
    return with_count_noise(e), ("calibrated" if calibrated is not None else profile.method), cal


def with_count_noise(e: Estimate) -> Estimate:
    """The interval widened to at least the counting noise of the rumors the estimate implies
    (a Poisson 90% interval on ``estimate * n``). A bootstrap over a window with three rumors in it
    can come out narrow; three rumors cannot say a share to better than several times."""
    k = e.value * e.n
    half = _Z90 * np.sqrt(max(k, 1.0))
    lower = max(k - half, 0.0) / e.n
    upper = min((k + half) / e.n, 1.0)
    return replace(e, lower=min(e.lower, lower), upper=max(e.upper, upper))


def too_uncertain(e: PrevalenceEstimate) -> bool:
    """Whether an estimate's 90% interval spans more than `MAX_SPAN` times (it cannot tell whether
    the share is within 1.5x either way): too few judged posts, even over the longest window. The
    pooled row's interval spans its channels' intervals, so it is never called uncertain itself."""
    return e.channel != "all" and e.upper > MAX_SPAN * max(e.lower, 1e-9)


def _readjust(session: Session, w: _Window, q: np.ndarray, threshold: float) -> None:
    """Write the window's adjusted probabilities and labels, then the stories' maxima."""
    if not len(q):
        return
    labels = np.where(w.debunked | (q >= threshold), 1, 0)
    table = cast(Table, PostScore.__table__)
    conn = session.connection()
    stmt = update(table).where(table.c.id == bindparam("_id")).values(
        rumor_probability=bindparam("_q"), label=bindparam("_l"))
    # only the rows that change: an estimate that did not move writes nothing
    changed = np.flatnonzero((np.abs(q - w.stored) > 1e-9) | (labels != w.label))
    executemany(conn, stmt, [{"_id": int(w.score_ids[i]), "_q": float(q[i]), "_l": int(labels[i])}
                             for i in changed.tolist()])
    best: dict[int, float] = {}
    for sid, p in zip(w.story_ids.tolist(), q.tolist(), strict=True):
        if sid >= 0 and p > best.get(sid, -1.0):
            best[sid] = p
    if best:
        stories = cast(Table, Story.__table__)
        executemany(conn, update(stories).where(stories.c.id == bindparam("_id")).values(
            max_rumor_probability=bindparam("_p")), [{"_id": k, "_p": v} for k, v in best.items()])


def moved(session: Session, channel: str = "all") -> tuple[PrevalenceEstimate, PrevalenceEstimate] | None:
    """(previous, latest) estimates of a channel when the latest moved by more than
    `NOTABLE_MOVE` times (either way) from the one before, else None."""
    last_two = history(session, channel, 2)
    if len(last_two) < 2:
        return None
    latest, previous = last_two
    lo, hi = sorted((max(latest.estimate, 1e-6), max(previous.estimate, 1e-6)))
    return (previous, latest) if hi / lo > NOTABLE_MOVE else None


@dataclass(frozen=True)
class Threshold:
    """The adjusted probability at which a post counts as a rumor, and why (for staff)."""

    value: float
    target_precision: float
    estimate: PrevalenceEstimate | None  # the pooled estimate it rests on (None: no estimate yet)

    def why(self) -> str:
        """One sentence in Chinese: what the threshold is and what it rests on."""
        head = f"调整后谣言概率 ≥ {self.value:.2f} 判为疑似谣言"
        if self.estimate is None:
            return (f"{head}：尚无谣言占比估计（评分帖子不足），按默认占比（网页 {DEFAULT_PRIORS['web']:.0%}、"
                    f"群聊 {DEFAULT_PRIORS['chat']:.0%}）调整概率，阈值即目标精确率 {self.target_precision:.0%}。")
        e = self.estimate
        return (f"{head}：近 {max((e.window_end - e.window_start).days, 1)} 天 {e.n} 条可判断帖子中估计谣言约占 "
                f"{e.estimate:.1%}，按此调整概率后，达到这一阈值的帖子预计约 {self.target_precision:.0%} 确为谣言"
                f"（目标精确率 {self.target_precision:.0%}）。")


def threshold_for_target(session: Session, target: float = DEFAULT_TARGET_PRECISION, *,
                         model_version_id: int | None = None, now: dt.datetime | None = None) -> Threshold:
    """The threshold for ``target`` precision at the latest estimate of the active model: the
    stored one when the estimate was made for this target, else computed from the window's
    adjusted probabilities (a rules file may ask for another target than the pipeline's)."""
    if model_version_id is None:
        model_version_id = session.scalar(select(ModelVersion.id).where(
            ModelVersion.name == "rumor", ModelVersion.status == "active"))
    latest = current(session, model_version_id).get("all")
    if latest is None:
        return Threshold(float(target), float(target), None)
    if abs(latest.target_precision - target) < 1e-9:
        return Threshold(latest.threshold, float(target), latest)
    w = _window(session, model_version_id, (now or utcnow()) - dt.timedelta(days=WINDOW_DAYS))
    q = session.execute(select(PostScore.rumor_probability).where(PostScore.id.in_(w.score_ids.tolist()[:50_000])))
    values = np.array([r[0] for r in q], dtype=np.float64)
    return Threshold(precision_threshold(values, target) if len(values) else float(target), float(target), latest)


CHANNEL_ZH = {"web": "网页", "chat": "群聊", "all": "全部"}
METHOD_ZH = {"bbe": "最优分段估计（BBE）", "em": "EM 估计", "bbse": "黑盒偏移估计（BBSE）", "default": "默认值",
             "calibrated": "按本渠道校准后的概率估计"}


def method_zh(method: str) -> str:
    base, _, labels = method.partition("+")
    return METHOD_ZH.get(base, base) + ("，含审核结论" if labels else "")


def calibration_zh(e: PrevalenceEstimate) -> str:
    """Which calibration a channel's scores went through, for staff: "按本渠道 120 条审核结论校准" or
    "按模型留出数据校准（本渠道审核结论不足 30 条）"."""
    if e.channel == "all":
        return ""
    cal = CalibrationMap.from_json(e.calibration)
    if cal.kind == "labels":
        return f"按本渠道 {cal.n_labels} 条审核结论校准（其中谣言 {cal.n_rumors} 条）"
    return f"按模型留出数据校准（本渠道审核结论不足 {MIN_LABELS} 条，或谣言、非谣言各不足 {MIN_PER_CLASS} 条）"


def describe(e: PrevalenceEstimate) -> str:
    """One estimate as staff read it: "群聊 1.2%（90% 区间 0.8%–1.9%，3,410 条，BBE，按模型留出数据校准…）"."""
    cal = calibration_zh(e)
    return (f"{CHANNEL_ZH.get(e.channel, e.channel)} {e.estimate:.1%}（90% 区间 {e.lower:.1%}–{e.upper:.1%}，"
            f"近 {window_days(e)} 天 {e.n:,} 条可判断帖子{f'，其中 {e.n_labels} 条已审核' if e.n_labels else ''}，"
            f"{method_zh(e.method)}{f'，{cal}' if cal else ''}）" + (f"：{UNCERTAIN_ZH}" if too_uncertain(e) else ""))


#: What staff read when an estimate is too uncertain (`too_uncertain`).
UNCERTAIN_ZH = "可判断的帖子太少，估计不可靠（区间上下限相差超过 2 倍），仅供参考"


def window_days(e: PrevalenceEstimate) -> int:
    return max(round((e.window_end - e.window_start).total_seconds() / 86400), 1)


def _latest_before(session: Session, channel: str, when: dt.datetime) -> PrevalenceEstimate | None:
    return session.scalar(
        select(PrevalenceEstimate).where(PrevalenceEstimate.channel == channel, PrevalenceEstimate.created_at <= when)
        .order_by(PrevalenceEstimate.created_at.desc(), PrevalenceEstimate.id.desc()).limit(1))


def move_note(session: Session, *, now: dt.datetime | None = None,
              period: dt.timedelta = dt.timedelta(hours=24)) -> str | None:
    """A sentence for the digest when a channel's estimated rumor share at ``now`` differs by more
    than `NOTABLE_MOVE` times from its estimate ``period`` earlier, else None."""
    now = now or utcnow()
    notes = []
    for ch in CHANNELS:
        after, before = _latest_before(session, ch, now), _latest_before(session, ch, now - period)
        if after is None or before is None or after.id == before.id:
            continue
        lo, hi = sorted((max(after.estimate, 1e-6), max(before.estimate, 1e-6)))
        if hi / lo <= NOTABLE_MOVE:
            continue
        way = "上升" if after.estimate > before.estimate else "下降"
        notes.append(f"{CHANNEL_ZH[ch]}谣言占比估计由 {before.estimate:.1%} {way}到 {after.estimate:.1%}"
                     f"（90% 区间 {after.lower:.1%}–{after.upper:.1%}）")
    if not notes:
        return None
    return "；".join(notes) + "。判定阈值已随之调整，帖子的谣言概率按新的占比重新换算。"
