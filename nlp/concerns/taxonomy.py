"""Concern categories by weighted keyword rules from an office-editable YAML taxonomy.

The default ``taxonomy.yaml`` next to this module holds our ten categories (物资供应, 医疗救治,
疫情防控措施/隔离, 交通出行, 物价, 就业与生计, 教育, 公共安全, 政策咨询, 其他). An office edits a
copy in ``YUQING_CONFIG_DIR/taxonomy.yaml``. A post's category is the one whose matched
keywords weigh most (each keyword counted once per post); below ``min_score`` it is the default.
Once labelled categories exist, `nlp.concerns.classifier.CategoryClassifier` can take over the
posts the rules leave in the default category.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, field_validator

from nlp.concerns._match import compile_words
from nlp.concerns.config import config_path, read_yaml
from nlp.concerns.errors import ConcernConfigError

TAXONOMY_FILE = "taxonomy.yaml"


class CategorySpec(BaseModel):
    name: str = Field(min_length=1, max_length=50)
    description: str = ""
    keywords: dict[str, float] = Field(default_factory=dict)

    @field_validator("keywords", mode="before")
    @classmethod
    def _keys_as_text(cls, value: object) -> object:
        # YAML reads 120 as a number; keywords are text.
        if isinstance(value, dict):
            return {str(k).strip(): v for k, v in value.items()}
        return value


class TaxonomySpec(BaseModel):
    version: int = 1
    default: str = "其他"
    min_score: float = Field(1.0, ge=0)
    categories: list[CategorySpec]


@dataclass(frozen=True)
class CategoryResult:
    category: str
    score: float
    matched: tuple[str, ...] = ()


@dataclass
class Taxonomy:
    """Weighted keyword rules; ``classify(text)`` gives the category of one normalised text."""

    categories: list[str]
    default: str
    min_score: float
    weights: dict[str, list[tuple[int, float]]]  # keyword -> [(category index, weight)]
    source: str = ""
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)

    @classmethod
    def from_spec(cls, spec: TaxonomySpec, source: str = "") -> Taxonomy:
        names = [c.name for c in spec.categories]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ConcernConfigError(
                f"分类文件 {source}：类别名称重复：{'、'.join(dup)}。每个类别只能出现一次。"
            )
        if spec.default not in names:
            names.append(spec.default)
        weights: dict[str, list[tuple[int, float]]] = {}
        for i, cat in enumerate(spec.categories):
            for word, weight in cat.keywords.items():
                if word:
                    weights.setdefault(word, []).append((i, float(weight)))
        return cls(names, spec.default, spec.min_score, weights, source, compile_words(weights))

    @classmethod
    def load(cls, path: str | Path | None = None) -> Taxonomy:
        """Load a taxonomy file (default: the office's, else ours)."""
        p = Path(path) if path is not None else config_path(TAXONOMY_FILE)
        data = read_yaml(p)
        try:
            spec = TaxonomySpec.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            raise ConcernConfigError(
                f"分类文件 {p} 的 {loc} 有误：{first['msg']}。格式见默认文件 nlp/concerns/taxonomy.yaml。"
            ) from err
        return cls.from_spec(spec, str(p))

    def classify(self, text: str) -> CategoryResult:
        if self._pattern is None or not text:
            return CategoryResult(self.default, 0.0)
        found = set(self._pattern.findall(text))
        if not found:
            return CategoryResult(self.default, 0.0)
        scores = [0.0] * len(self.categories)
        for word in found:
            for idx, weight in self.weights[word]:
                scores[idx] += weight
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        if scores[best] < self.min_score:
            return CategoryResult(self.default, scores[best], tuple(sorted(found)))
        return CategoryResult(self.categories[best], scores[best], tuple(sorted(found)))


@lru_cache(maxsize=8)
def _cached(path: str, mtime: float) -> Taxonomy:
    return Taxonomy.load(path)


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """The taxonomy in force, cached until its file changes."""
    p = Path(path) if path is not None else config_path(TAXONOMY_FILE)
    try:
        mtime = p.stat().st_mtime
    except FileNotFoundError as err:
        raise ConcernConfigError(f"分类文件 {p} 不存在：请检查 YUQING_CONFIG_DIR。") from err
    return _cached(str(p), mtime)
