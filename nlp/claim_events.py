"""Event families: what happens in a claim (water cut, pollution, lockdown, price rise, ...).

The claim matcher's word and character features see how much two texts share; they cannot see
that "杨家村明天停水检修" and "杨家村自来水被污染" share the place and the water and say two
different things, or that "石桥村莫得水了" and "石桥村停水" say one. ``nlp/dicts/claim_events.txt``
(our own list) groups the spellings of each kind of event; :func:`event_families` names the
families a claim key mentions, and the matcher compares the two sides' families (agree,
disagree, how much of one side's families the other names).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

__all__ = ["BACKGROUND_FAMILIES", "EVENTS_FILE", "event_families", "load_event_families"]

EVENTS_FILE = Path(__file__).resolve().parent / "dicts" / "claim_events.txt"
# Kinds of event that are the background of many matters at one place, not one matter: money paid
# or free ("免费入户检查" / "每平米补偿8000"), works, weather, housing.
BACKGROUND_FAMILIES = frozenset({"subsidy", "fee_collect", "maintenance", "construction", "weather", "real_estate"})


def _spelling_pattern(spelling: str) -> str:
    """``A*B``: A, up to three characters, B (a verb split from its object: "停了两天水")."""
    return ".{0,3}".join(re.escape(part) for part in spelling.split("*"))


@lru_cache(maxsize=4)
def load_event_families(path: str = str(EVENTS_FILE)) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """(family name, one pattern over its spellings) for each line of the events file."""
    out = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, rest = line.partition(":")
        spellings = rest.split()
        if not sep or not spellings:
            raise ValueError(f"event families file {path}: line {raw!r} is not `name: spelling spelling ...`")
        # longest first: the alternation takes the first spelling that matches at a position
        alternation = "|".join(_spelling_pattern(s) for s in sorted(spellings, key=len, reverse=True))
        out.append((name.strip(), re.compile(alternation)))
    return tuple(out)


def event_families(key: str) -> frozenset[str]:
    """The families whose spellings ``key`` (a canonical claim key) contains."""
    if not key:
        return frozenset()
    return frozenset(name for name, pattern in load_event_families() if pattern.search(key))
