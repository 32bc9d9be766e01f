"""The office's own places (township, villages, streets, landmarks, with aliases) from YAML.

A post that mentions one of them is local; topics carry the places their posts mention.
Matching is literal on the normalised text (longest name wins, so "青禾镇卫生院" is not also
"青禾"), which does not depend on how the segmenter cut the place name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from nlp.concerns._match import compile_words
from nlp.concerns.config import config_path, read_yaml
from nlp.concerns.errors import ConcernConfigError

PLACES_FILE = "places.yaml"


class PlaceSpec(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    kind: Literal["county", "township", "village", "street", "landmark", "other"] = "other"
    parent: str | None = None
    aliases: list[str] = Field(default_factory=list)
    local: bool = True


class GazetteerSpec(BaseModel):
    version: int = 1
    places: list[PlaceSpec]


@dataclass
class Gazetteer:
    places: dict[str, PlaceSpec]
    alias_to_name: dict[str, str]
    source: str = ""
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)

    @classmethod
    def from_spec(cls, spec: GazetteerSpec, source: str = "") -> Gazetteer:
        places: dict[str, PlaceSpec] = {}
        alias: dict[str, str] = {}
        for place in spec.places:
            if place.name in places:
                raise ConcernConfigError(f"地名表 {source}：地名“{place.name}”重复出现，请合并成一条。")
            places[place.name] = place
        for place in spec.places:
            if place.parent is not None and place.parent not in places:
                raise ConcernConfigError(
                    f"地名表 {source}：“{place.name}”的上级“{place.parent}”不在表中，"
                    "请先添加它或改正 parent。"
                )
            for word in [place.name, *place.aliases]:
                word = word.strip()
                if not word:
                    continue
                other = alias.get(word)
                if other is not None and other != place.name:
                    raise ConcernConfigError(
                        f"地名表 {source}：别名“{word}”同时属于“{other}”和“{place.name}”，请只保留一处。"
                    )
                alias[word] = place.name
        return cls(places, alias, source, compile_words(alias))

    @classmethod
    def load(cls, path: str | Path | None = None) -> Gazetteer:
        p = Path(path) if path is not None else config_path(PLACES_FILE)
        data = read_yaml(p)
        try:
            spec = GazetteerSpec.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            raise ConcernConfigError(
                f"地名表 {p} 的 {loc} 有误：{first['msg']}。格式见默认文件 nlp/concerns/places.yaml。"
            ) from err
        return cls.from_spec(spec, str(p))

    def find(self, text: str) -> list[str]:
        """Canonical names of the places ``text`` mentions, in order of first mention."""
        if self._pattern is None or not text:
            return []
        seen: dict[str, None] = {}
        for word in self._pattern.findall(text):
            seen.setdefault(self.alias_to_name[word], None)
        return list(seen)

    def is_local(self, names: list[str]) -> bool:
        return any(self.places[n].local for n in names if n in self.places)

    def home(self) -> frozenset[str]:
        """The office's own area: the local places with no local parent (青禾镇 in the default table).
        Nearly every local post is about it, so it names no particular matter."""
        return frozenset(name for name, p in self.places.items()
                         if p.local and (p.parent is None or not self.places[p.parent].local))

    def ancestors(self, name: str) -> list[str]:
        """The chain of parents of a place, nearest first (东湾村 -> [青禾镇, 青禾县])."""
        out: list[str] = []
        cur = self.places.get(name)
        while cur is not None and cur.parent and cur.parent not in out:
            out.append(cur.parent)
            cur = self.places.get(cur.parent)
        return out

    def user_dict_lines(self) -> list[str]:
        """Every name and alias as a jieba user-dict line, for the segmenter's extra dictionary."""
        words = sorted(self.alias_to_name, key=lambda w: (-len(w), w))
        return [f"{word} 3000 ns" for word in words if len(word) > 1]


@lru_cache(maxsize=8)
def _cached(path: str, mtime: float) -> Gazetteer:
    return Gazetteer.load(path)


def load_gazetteer(path: str | Path | None = None) -> Gazetteer:
    """The gazetteer in force, cached until its file changes."""
    p = Path(path) if path is not None else config_path(PLACES_FILE)
    try:
        mtime = p.stat().st_mtime
    except FileNotFoundError as err:
        raise ConcernConfigError(f"地名表 {p} 不存在：请检查 YUQING_CONFIG_DIR。") from err
    return _cached(str(p), mtime)
