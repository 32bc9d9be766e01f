"""`IncidentStats.add_many` is `add` of each member in turn: the same stats, the counters' key
order (it reaches the JSON columns) and the ties (debunk, representative) included."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

from nlp.anchors import Anchors
from nlp.incident_stats import IncidentStats, Member, stat_values
from nlp.incident_text import PostFacts

ROLES = ["claim", "question", "reaction", "refutation", "notice", "complaint", "other"]
T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _members(rng: random.Random, n: int) -> list[Member]:
    out = []
    for i in range(n):
        role = rng.choice(ROLES)
        anchors = Anchors(frozenset(rng.sample(["东湾村", "柳树村", "石桥村"], rng.randint(0, 2))),
                          frozenset(rng.sample(["3", "50", "7"], rng.randint(0, 2))),
                          frozenset(rng.sample(["50万", "3天"], rng.randint(0, 1))), frozenset())
        facts = PostFacts(role, 0.9, anchors, rng.random() < 0.3, rng.random() < 0.2)
        out.append(Member(
            post_id=1000 + i, when=T0 + dt.timedelta(minutes=rng.randint(0, 600)),
            group_id=rng.choice([None, 1, 2, 3]), source_id=rng.choice([None, 7, 8]), role=role,
            probability=rng.choice([None, 0.2, 0.5, round(rng.random(), 2)]),
            debunk_id=rng.choice([None, None, 11, 12]), debunk_similarity=rng.choice([None, 0.6, 0.8]),
            category=rng.choice([None, "水电", "治安"]), places=rng.sample(["东湾村", "青禾镇"], rng.randint(0, 2)),
            is_local=rng.choice([None, True, False]), facts=facts if role != "other" else None,
            text=rng.choice(["", "东湾村停水三天", "真的吗？", "听说要停电了吧", "谣言，别信"]),
            raw=rng.choice([None, round(rng.random(), 2)]), tip=rng.random() < 0.1,
        ))
    return out


def test_add_many_equals_adding_one_by_one() -> None:
    rng = random.Random(5)
    for _ in range(30):
        members = _members(rng, rng.randint(0, 40))
        cut = rng.randint(0, len(members))
        one, many = IncidentStats(), IncidentStats()
        for m in members:
            one.add(dataclasses.replace(m))
        copies = [dataclasses.replace(m) for m in members]
        many.add_many(copies[:cut])  # folded in two steps, as a run does batch after batch
        many.add_many(copies[cut:])
        assert dataclasses.asdict(many) == dataclasses.asdict(one)
        for name in ("roles", "hourly", "spread", "spreading", "spreading_hourly", "categories", "places"):
            assert list(getattr(many, name)) == list(getattr(one, name)), name
        assert {k: list(v) for k, v in many.anchors.items()} == {k: list(v) for k, v in one.anchors.items()}
        if members:
            assert repr(stat_values(many)) == repr(stat_values(one))
