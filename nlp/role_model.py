"""The role model: what `nlp.roles` asks when no rule is certain. Inference only (numpy + scipy).

A linear softmax model over hashed character 1-3-grams of the post's words plus a small dense
block: the role cue flags of `nlp.cues.role_cues`, the post's context (reply, web, titled), its
length, and its conversation when known (the role of the matter message it follows, the words it
takes up from the group's recent matter messages). The character n-gram part of the scores is
computed once per post (`RoleModel.sparse_logits`), so the classifier's second, conversation-aware
look costs only the dense block (`RoleModel.predict_logits`). The model file is a numpy ``.npz`` of numeric arrays read with
``allow_pickle=False`` (nothing in it can run code) and a ``card.json`` naming the role order
and the dense features: numbers only, no vocabulary strings, no texts. Training lives in
`nlp.role_training` (scikit-learn is not imported here: scoring must start fast).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from core.arrays import load_npz
from nlp.asking import asks_in_a_clause, ends_asking
from nlp.normalize import PLACEHOLDER_RE
from nlp.scoring import hash_char_ngrams

if TYPE_CHECKING:
    from nlp.roles import RoleContext

__all__ = [
    "CUE_FLAGS",
    "DENSE_NAMES",
    "RoleModel",
    "RoleModelFileError",
    "default_role_model_dir",
    "load_role_model",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models" / "roles"
WEIGHTS_FILE = "weights.npz"
CARD_FILE = "card.json"

# The role cue flags the model reads (names from nlp.cues.role_cues), in column order.
CUE_FLAGS: tuple[str, ...] = (
    "truth_question", "reaction", "chat_denial", "affirm", "notice", "complaint", "matter", "chatter",
    "hearsay", "spread_call", "refutation", "relief", "scam", "hearsay_chat", "notice_format", "metoo",
    "disruption_when",
)
_SHAPE_NAMES: tuple[str, ...] = (
    "ctx:reply", "ctx:web", "ctx:title",
    "len:<=4", "len:<=10", "len:<=20", "len:<=40", "len:>40",
    "asks", "exclaims", "headline",
    "ctx:follows", "ctx:follows&len<=10", "ctx:follows&asks",
    "asks:clause", "asks:end",
)
# What the conversation pass found (`RoleContext.conversation`): the role of the matter message the
# post follows and the content words it shares with the recent matter messages. Only evidence of a
# matter is a feature: a flag "stands alone" made the model call the first claim of every matter
# chatter (leave-one-township-out 0.800 with it, 0.802 without).
_PREV_ROLES: tuple[str, ...] = ("claim", "question", "reaction", "refutation", "notice", "complaint")
_CONVERSATION_NAMES: tuple[str, ...] = (
    *(f"conv:after:{r}" for r in _PREV_ROLES),
    "conv:shares:1", "conv:shares:2+", "conv:shares:0&follows", "conv:shares&len<=10",
    # "me too" with nothing before it to be like ("三号楼一样 冰凉" after chatter): the one line whose
    # standing alone is evidence (a general "stands alone" flag made first claims chatter, see above)
    "conv:metoo&alone",
)
# The replied-to (quoted) message, when the post replies to one whose role is known
# (`RoleContext.parent_role`, `parent_shares`): a short reply to a claim or notice reacts or asks, a
# reply to chatter chats.
_PARENT_ROLES: tuple[str, ...] = (*_PREV_ROLES, "other")
_REPLY_NAMES: tuple[str, ...] = (
    *(f"reply:to:{r}" for r in _PARENT_ROLES), "reply:shares", "reply:to:matter&len<=10",
)
DENSE_NAMES: tuple[str, ...] = (tuple(f"cue:{c}" for c in CUE_FLAGS) + _SHAPE_NAMES + _CONVERSATION_NAMES
                                + _REPLY_NAMES)
_CONV_AT = len(CUE_FLAGS) + len(_SHAPE_NAMES)
_PREV_INDEX = {r: i for i, r in enumerate(_PREV_ROLES)}
_REPLY_AT = _CONV_AT + len(_CONVERSATION_NAMES)
_PARENT_INDEX = {r: i for i, r in enumerate(_PARENT_ROLES)}
_NO_REPLY = [0.0] * len(_REPLY_NAMES)
_CUE_INDEX = {c: i for i, c in enumerate(CUE_FLAGS)}

# Placeholders become one private-use character each, as in nlp.scoring's char n-grams.
_PH_CHAR = {m: chr(0xE100 + i) for i, m in enumerate(("<URL>", "<AT>", "<EMO>", "<REPEAT_PUNCT>"))}


def _ph(m: Any) -> str:
    return _PH_CHAR.get(m.group(0), "\ue1ff")


def char_text(norm: str) -> str:
    """The text char n-grams see: placeholders as one character each, no spaces, lower case."""
    if "<" in norm:
        norm = PLACEHOLDER_RE.sub(_ph, norm)
    return norm.replace(" ", "").lower()


def dense_row(cues: frozenset[str], n_words: int, norm: str, ctx: RoleContext | None) -> list[float]:
    """The dense block of one post, in DENSE_NAMES order."""
    row = [0.0] * len(DENSE_NAMES)
    for c in cues:
        i = _CUE_INDEX.get(c)
        if i is not None:
            row[i] = 1.0
    k = len(CUE_FLAGS)
    if ctx is not None:
        row[k] = float(ctx.is_reply)
        row[k + 1] = float(ctx.channel == "web")
        row[k + 2] = float(ctx.has_title)
    bins = (4, 10, 20, 40)
    b = next((j for j, lim in enumerate(bins) if n_words <= lim), len(bins))
    row[k + 3 + b] = 1.0
    stripped = norm.rstrip()
    row[k + 8] = float(stripped.endswith(("?", "吗", "么", "呢")) or "?" in norm)
    row[k + 9] = float("!" in norm)
    row[k + 10] = float(norm.startswith("【"))
    row[k + 14] = float(asks_in_a_clause(norm))
    row[k + 15] = float(ends_asking(norm))
    if ctx is not None:
        conversation_columns(row, ctx, n_words)
        if ctx.parent_role and not ctx.conversation:
            reply_columns(row, ctx, n_words)  # a parent stored earlier: known at the first look
    return row


def reply_columns(row: Any, ctx: RoleContext, n_words: int) -> None:
    """Write the replied-to message's columns (all of them: a second look may change the role)."""
    at = _REPLY_AT
    row[at : at + len(_REPLY_NAMES)] = _NO_REPLY
    p = _PARENT_INDEX.get(ctx.parent_role)
    if p is None:
        return
    row[at + p] = 1.0
    row[at + len(_PARENT_ROLES)] = float(ctx.parent_shares > 0)
    row[at + len(_PARENT_ROLES) + 1] = float(ctx.parent_role != "other" and n_words <= 10)


def conversation_columns(row: Any, ctx: RoleContext, n_words: int) -> None:
    """Write the conversation's columns of a dense row (a list or an array row whose conversation
    columns are still zero): the classifier's second look changes only these."""
    k = len(CUE_FLAGS)
    if ctx.follows_matter:
        row[k + 11] = 1.0
        row[k + 12] = float(n_words <= 10)
        row[k + 13] = row[k + 8]
    if ctx.conversation:
        at = _CONV_AT
        prev = _PREV_INDEX.get(ctx.prev_role)
        if prev is not None:
            row[at + prev] = 1.0
        at += len(_PREV_ROLES)
        row[at] = float(ctx.shares == 1)
        row[at + 1] = float(ctx.shares >= 2)
        row[at + 2] = float(ctx.follows_matter and not ctx.shares)
        row[at + 3] = float(ctx.shares > 0 and n_words <= 10)
        row[at + 4] = float(bool(row[_CUE_INDEX["metoo"]]) and not ctx.follows_matter and not ctx.shares)
        reply_columns(row, ctx, n_words)


def featurize(
    norms: Sequence[str], dense: np.ndarray, n_features: int, ngram: tuple[int, int], dense_weight: float
) -> sp.csr_matrix:
    """[hashed char n-grams, binary, rows at unit l2 norm | dense block x dense_weight]."""
    n = len(norms)
    rows, cols, _, _ = hash_char_ngrams([char_text(t) for t in norms], ngram[0], ngram[1], n_features)
    x = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, n_features))
    x.sum_duplicates()
    x.data[:] = 1.0
    norms_ = np.sqrt(np.asarray(x.sum(axis=1)).ravel())
    norms_[norms_ == 0] = 1.0
    x = sp.csr_matrix(sp.diags((1.0 / norms_).astype(np.float32)) @ x)
    d = sp.csr_matrix(dense.astype(np.float32) * np.float32(dense_weight))
    return sp.hstack([x, d], format="csr")


class RoleModelFileError(ValueError):
    """A role model directory that cannot be read: says which file and what to do."""


class RoleModel:
    """Softmax over ROLES-ordered classes; ``coef`` is (n_classes, n_features + len(DENSE_NAMES))."""

    def __init__(
        self,
        coef: np.ndarray,
        intercept: np.ndarray,
        roles: Sequence[str],
        *,
        n_features: int,
        ngram: tuple[int, int],
        dense_weight: float,
        version: str = "",
    ) -> None:
        self.coef_t = np.ascontiguousarray(coef.T, dtype=np.float32)
        self.intercept = intercept.astype(np.float32)
        self.roles = tuple(roles)
        self.n_features = int(n_features)
        self.ngram = (int(ngram[0]), int(ngram[1]))
        self.dense_weight = float(dense_weight)
        self.version = version
        if self.coef_t.shape != (self.n_features + len(DENSE_NAMES), len(self.roles)):
            raise RoleModelFileError(
                f"role model {version or '?'}: weights of shape {coef.shape} do not fit "
                f"{len(self.roles)} roles x {self.n_features} hashed + {len(DENSE_NAMES)} dense columns; "
                "retrain it with `python -m nlp.role_training`"
            )

    def features(self, norms: Sequence[str], dense: np.ndarray) -> sp.csr_matrix:
        return featurize(norms, dense, self.n_features, self.ngram, self.dense_weight)

    def proba(self, norms: Sequence[str], dense: np.ndarray) -> np.ndarray:
        """Class probabilities, one row per text, columns in ``self.roles`` order."""
        z = self.features(norms, dense) @ self.coef_t + self.intercept
        z = np.asarray(z, dtype=np.float64)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, norms: Sequence[str], dense: np.ndarray) -> tuple[list[str], np.ndarray]:
        if not len(norms):
            return [], np.zeros(0)
        return self.predict_logits(self.sparse_logits(norms), dense)

    def sparse_logits(self, norms: Sequence[str]) -> np.ndarray:
        """The character n-gram part of the class scores (n, classes): computed once per post, so a
        second look with another context (`predict_logits`) costs only the dense block."""
        if not len(norms):
            return np.zeros((0, len(self.roles)), dtype=np.float32)
        x = featurize(norms, np.zeros((len(norms), 0), dtype=np.float32), self.n_features, self.ngram, 0.0)
        return np.asarray(x @ self.coef_t[: self.n_features], dtype=np.float32)

    def predict_logits(self, sparse: np.ndarray, dense: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Roles and confidences from `sparse_logits` plus the dense block of each post."""
        if not len(sparse):
            return [], np.zeros(0)
        z = sparse.astype(np.float64) + (dense.astype(np.float32) * np.float32(self.dense_weight)) \
            @ self.coef_t[self.n_features :] + self.intercept
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        p = e / e.sum(axis=1, keepdims=True)
        best = p.argmax(axis=1)
        return [self.roles[i] for i in best], p[np.arange(len(best)), best]

    def save(self, directory: str | os.PathLike[str], card: dict[str, Any]) -> Path:
        """Write weights.npz (numbers only) and card.json (with the parameters) into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            d / WEIGHTS_FILE,
            coef=self.coef_t.T.astype(np.float32),
            intercept=self.intercept,
        )
        full = {
            **card,
            "version": self.version,
            "roles": list(self.roles),
            "dense_features": list(DENSE_NAMES),
            "n_features": self.n_features,
            "ngram": list(self.ngram),
            "dense_weight": self.dense_weight,
        }
        (d / CARD_FILE).write_text(json.dumps(full, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return d

    def __repr__(self) -> str:
        return f"RoleModel(version={self.version!r}, n_features={self.n_features}, ngram={self.ngram})"


def default_role_model_dir() -> Path | None:
    """models/roles/<ACTIVE>/ when models/roles/ACTIVE names a version, else None."""
    active = MODELS_DIR / "ACTIVE"
    if not active.is_file():
        return None
    version = active.read_text(encoding="utf-8").strip()
    return MODELS_DIR / version if version else None


def load_role_model(directory: str | os.PathLike[str] | None = None) -> RoleModel | None:
    """The role model in ``directory`` (default: the active shipped one), None when none is shipped.

    Reads numeric arrays only (``allow_pickle=False``); a file holding anything else, or weights
    that do not match the card, is refused with `RoleModelFileError`.
    """
    d = Path(directory) if directory is not None else default_role_model_dir()
    if d is None:
        return None
    weights, card_file = d / WEIGHTS_FILE, d / CARD_FILE
    if not weights.is_file() or not card_file.is_file():
        raise RoleModelFileError(
            f"role model directory {d} lacks {WEIGHTS_FILE} or {CARD_FILE}; "
            "retrain with `python -m nlp.role_training` or fix models/roles/ACTIVE"
        )
    card = json.loads(card_file.read_text(encoding="utf-8"))
    try:
        arrays = load_npz(weights)
    except ValueError as e:  # an object array needs pickle: refused
        raise RoleModelFileError(f"role model file {weights} holds non-numeric data ({e}); refusing to load it") from e
    for name, a in arrays.items():
        if a.dtype.kind not in "fiu":
            raise RoleModelFileError(f"role model file {weights}: array {name!r} is {a.dtype}, not numeric")
    if list(card.get("dense_features", [])) != list(DENSE_NAMES):
        raise RoleModelFileError(
            f"role model {d}: its dense features differ from this code's ({card.get('dense_features')}); "
            "retrain with `python -m nlp.role_training`"
        )
    return RoleModel(
        arrays["coef"],
        arrays["intercept"],
        card["roles"],
        n_features=card["n_features"],
        ngram=(int(card["ngram"][0]), int(card["ngram"][1])),
        dense_weight=card["dense_weight"],
        version=card.get("version", d.name),
    )
