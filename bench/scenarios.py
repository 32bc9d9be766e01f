"""The scenario corpus: group-chat evenings of fictional townships with the truth of every message.

Layout (see tests/fixtures/scenarios/README.md)::

    tests/fixtures/scenarios/<part>/<township-slug>/evening-YYYY-MM-DD.yaml   one evening each
    tests/fixtures/scenarios/<part>/<township-slug>/debunks.yaml              official refutations
    tests/fixtures/scenarios/<part>/<township-slug>/places.yaml               the township's gazetteer

``part`` is ``tune`` (tune anything on it) or ``heldout`` (only the corpus engineer and the
benchmark read it). Use::

    from bench.scenarios import load_scenarios, validate_corpus
    for evening in load_scenarios("tune"):
        for m in evening.messages:          # in time order
            m.text, m.matter, m.role, m.time, m.group, m.reply_to

The loader raises :class:`CorpusError` on a file it cannot read; :func:`validate_evening` and
:func:`validate_corpus` return the list of problems (empty when the corpus is sound).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml

ROOT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "scenarios"
PARTS = ("tune", "heldout")
ROLES = ("claim", "question", "reaction", "refutation", "notice", "complaint", "other")
KINDS = ("rumor", "notice", "concern")
PLATFORMS = ("qq", "wechat", "telegram", "other")
TZ = ZoneInfo("Asia/Shanghai")

# What each part must hold at least (the brief of the incidents work).
MINIMUMS: dict[str, dict[str, int]] = {
    "heldout": {"townships": 1, "matters": 8, "chatter": 100},
    "all": {"townships": 3, "matters": 20, "chatter": 300},
}
MIN_MESSAGES_PER_MATTER = 3

# libyaml's loader when PyYAML was built with it (10x faster), else the pure-Python one; both safe.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Part = Literal["tune", "heldout", "all"]


class CorpusError(ValueError):
    """A scenario file that cannot be read; the message names the file and what to fix."""


@dataclass(frozen=True)
class Group:
    id: str
    name: str
    platform: str


@dataclass(frozen=True)
class Matter:
    """One matter (一件事). ``truth``: False for a false rumor, True for a true notice, None when
    the evening does not settle it (or it is a concern)."""

    id: str
    kind: str  # rumor | notice | concern
    title: str
    truth: bool | None = None
    note: str = ""


@dataclass(frozen=True)
class Message:
    id: str
    group: str
    time: dt.datetime  # timezone-aware (Asia/Shanghai)
    sender: str
    text: str
    matter: str | None  # None: chatter
    role: str
    reply_to: str | None = None
    forwarded: bool = False


@dataclass(frozen=True)
class Debunk:
    """An official refutation as it stands in the debunk library (reworded from the chat).
    debunks.yaml is in the product's import format (``yuqing debunks import`` reads it as is;
    ``id`` and ``matter`` are extra keys the import ignores)."""

    id: str
    matter: str | None  # None: a distractor, about no matter of the corpus (matching it is wrong)
    claim: str
    refutation: str
    publisher: str = ""
    published_at: str = ""  # ISO 8601
    category: str = ""  # one of the concern taxonomy's (nlp/concerns/taxonomy.yaml), as the import checks
    tags: tuple[str, ...] = ()


@dataclass
class Evening:
    path: Path
    part: str
    township: str
    slug: str  # the township's folder name
    date: dt.date
    groups: list[Group]
    matters: list[Matter]
    messages: list[Message]
    debunks: list[Debunk] = field(default_factory=list)  # the township's library (all its evenings)
    places_file: Path | None = None  # the township's places.yaml, when there is one

    @property
    def debunks_file(self) -> Path | None:
        path = self.path.parent / "debunks.yaml"
        return path if path.exists() else None

    @property
    def chatter(self) -> list[Message]:
        return [m for m in self.messages if m.matter is None]

    def matter(self, matter_id: str) -> Matter:
        for m in self.matters:
            if m.id == matter_id:
                return m
        raise KeyError(matter_id)

    def group(self, group_id: str) -> Group:
        for g in self.groups:
            if g.id == group_id:
                return g
        raise KeyError(group_id)


def _parse_time(day: dt.date, text: str, where: str) -> dt.datetime:
    """``HH:MM`` or ``HH:MM:SS`` on the evening's date; ``+1 HH:MM`` for after midnight."""
    raw = str(text).strip()
    days = 0
    if raw.startswith("+1 "):
        days, raw = 1, raw[3:].strip()
    try:
        clock = dt.time.fromisoformat(raw if raw.count(":") == 2 else raw + ":00")
    except ValueError as exc:
        raise CorpusError(f"{where}: time {text!r} is not HH:MM (or '+1 HH:MM' after midnight)") from exc
    return dt.datetime.combine(day + dt.timedelta(days=days), clock, tzinfo=TZ)


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, yaml.YAMLError) as exc:
        raise CorpusError(f"{path}: cannot read it as YAML ({exc})") from exc


def _debunks(folder: Path) -> list[Debunk]:
    path = folder / "debunks.yaml"
    if not path.exists():
        return []
    raw = _read_yaml(path) or {}
    out = []
    for i, d in enumerate(raw.get("debunks", [])):
        try:
            matter = None if d.get("matter") is None else str(d["matter"])
            out.append(Debunk(id=str(d["id"]), matter=matter, claim=str(d["claim"]),
                              refutation=str(d["refutation"]), publisher=str(d.get("publisher", "")),
                              published_at=str(d.get("published_at", "")), category=str(d.get("category") or ""),
                              tags=tuple(str(t) for t in d.get("tags") or ())))
        except KeyError as exc:
            raise CorpusError(f"{path}: debunk #{i} lacks {exc}") from exc
    return out


def load_evening(path: Path, part: str = "", debunks: list[Debunk] | None = None) -> Evening:
    """One evening file (the township's debunks and places are read from its folder)."""
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise CorpusError(f"{path}: expected a mapping with township, date, groups, matters, messages")
    try:
        day = dt.date.fromisoformat(str(raw["date"]))
        groups = [Group(str(g["id"]), str(g["name"]), str(g.get("platform", "wechat"))) for g in raw["groups"]]
        matters = [
            Matter(id=str(m["id"]), kind=str(m["kind"]), title=str(m["title"]),
                   truth=m.get("truth"), note=str(m.get("note", "")))
            for m in raw["matters"]
        ]
        messages = []
        for m in raw["messages"]:
            where = f"{path.name} message {m.get('id')}"
            messages.append(Message(
                id=str(m["id"]), group=str(m["group"]), time=_parse_time(day, m["time"], where),
                sender=str(m["sender"]), text=str(m["text"]),
                matter=None if m.get("matter") is None else str(m["matter"]),
                role=str(m["role"]), reply_to=None if m.get("reply_to") is None else str(m["reply_to"]),
                forwarded=bool(m.get("forwarded", False)),
            ))
    except (KeyError, TypeError) as exc:
        raise CorpusError(f"{path}: missing or malformed field {exc}") from exc
    messages.sort(key=lambda m: m.time)  # stable: file order breaks ties
    places = path.parent / "places.yaml"
    return Evening(
        path=path, part=part, township=str(raw["township"]), slug=path.parent.name, date=day,
        groups=groups, matters=matters, messages=messages,
        debunks=_debunks(path.parent) if debunks is None else debunks,
        places_file=places if places.exists() else None,
    )


def load_scenarios(part: Part = "tune", root: Path = ROOT) -> list[Evening]:
    """Every evening of a part (``tune``, ``heldout`` or ``all``), by township then date."""
    if part not in (*PARTS, "all"):
        raise CorpusError(f"unknown part {part!r}: use tune, heldout or all")
    parts = PARTS if part == "all" else (part,)
    evenings = []
    for p in parts:
        for folder in sorted(d for d in (root / p).glob("*") if d.is_dir()):
            debunks = _debunks(folder)
            for path in sorted(folder.glob("evening-*.yaml")):
                evenings.append(load_evening(path, p, debunks))
    return evenings


# --------------------------------------------------------------------------- validation


def validate_evening(ev: Evening) -> list[str]:
    """Problems of one evening: unknown roles, groups, matters or replies, thin matters."""
    where = f"{ev.part}/{ev.slug}/{ev.path.name}"
    problems: list[str] = []
    group_ids = {g.id for g in ev.groups}
    matter_ids = {m.id for m in ev.matters}
    problems += [f"{where}: platform {g.platform!r} of group {g.id}" for g in ev.groups if g.platform not in PLATFORMS]
    for m in ev.matters:
        if m.kind not in KINDS:
            problems.append(f"{where}: matter {m.id} has kind {m.kind!r}, not one of {KINDS}")
        if m.kind == "rumor" and m.truth is True:
            problems.append(f"{where}: rumor {m.id} is true: make it a notice")
    if ev.date > dt.datetime.now(TZ).date():
        # the product refuses posts dated more than a day ahead, so a future evening is never stored
        problems.append(f"{where}: the evening's date {ev.date} is in the future; date evenings in the past")
    ids = Counter(m.id for m in ev.messages)
    problems += [f"{where}: message id {i} used {n} times" for i, n in ids.items() if n > 1]
    seen: set[str] = set()
    for m in sorted(ev.messages, key=lambda m: m.time):
        if m.role not in ROLES:
            problems.append(f"{where}: message {m.id} has role {m.role!r}, not one of {ROLES}")
        if m.group not in group_ids:
            problems.append(f"{where}: message {m.id} is in unknown group {m.group!r}")
        if m.matter is not None and m.matter not in matter_ids:
            problems.append(f"{where}: message {m.id} names unknown matter {m.matter!r}")
        if m.matter is None and m.role != "other":
            problems.append(f"{where}: chatter message {m.id} must have role other, not {m.role!r}")
        if m.reply_to is not None and m.reply_to not in ids:
            problems.append(f"{where}: message {m.id} replies to unknown message {m.reply_to!r}")
        elif m.reply_to is not None and m.reply_to not in seen:
            problems.append(f"{where}: message {m.id} replies to {m.reply_to}, which comes later")
        if not m.text.strip():
            problems.append(f"{where}: message {m.id} has no text")
        seen.add(m.id)
    per_matter = Counter(m.matter for m in ev.messages if m.matter is not None)
    for m in ev.matters:
        if per_matter[m.id] < MIN_MESSAGES_PER_MATTER:
            problems.append(f"{where}: matter {m.id} has {per_matter[m.id]} messages (at least {MIN_MESSAGES_PER_MATTER})")
    return problems


def corpus_stats(evenings: list[Evening]) -> dict[str, Any]:
    """Counts per part: townships, evenings, matters by kind, messages by role, chatter."""
    matters = {(e.slug, m.id): m for e in evenings for m in e.matters}
    roles = Counter(m.role for e in evenings for m in e.messages)
    return {
        "townships": len({e.slug for e in evenings}),
        "evenings": len(evenings),
        "matters": len(matters),
        "matters_by_kind": dict(sorted(Counter(m.kind for m in matters.values()).items())),
        "messages": sum(len(e.messages) for e in evenings),
        "messages_by_role": {r: roles[r] for r in ROLES},
        "chatter": sum(len(e.chatter) for e in evenings),
        "debunks": len({(e.slug, d.id) for e in evenings for d in e.debunks}),
    }


def _debunk_import_problems(files: set[Path | None]) -> list[str]:
    """What the product's debunk import (`yuqing debunks import`) would refuse in these files."""
    from nlp.debunks import read_debunk_file, validate_debunk_rows

    return [f"{path.parent.name}/debunks.yaml: refused by the import: {reason}"
            for path in sorted(p for p in files if p is not None)
            for _number, reason in validate_debunk_rows(read_debunk_file(path))[1]]


def validate_corpus(root: Path = ROOT) -> list[str]:
    """Every evening's problems, debunks that name unknown matters, and the per-part minimums."""
    problems: list[str] = []
    by_part = {p: load_scenarios(p, root) for p in PARTS}
    everything = by_part["tune"] + by_part["heldout"]
    for ev in everything:
        problems += validate_evening(ev)
        matter_ids = {m.id for e in everything if e.slug == ev.slug for m in e.matters}
        problems += [f"{ev.slug}/debunks.yaml: {d.id} names unknown matter {d.matter}"
                     for d in ev.debunks if d.matter is not None and d.matter not in matter_ids]
    problems += _debunk_import_problems({ev.debunks_file for ev in everything} - {None})
    overlap = {e.slug for e in by_part["tune"]} & {e.slug for e in by_part["heldout"]}
    problems += [f"township {s} is in both tune and heldout" for s in sorted(overlap)]
    for part, minimum in MINIMUMS.items():
        stats = corpus_stats(everything if part == "all" else by_part[part])
        problems += [f"{part}: {stats[k]} {k}, at least {n} needed" for k, n in minimum.items() if stats[k] < n]
    return sorted(set(problems))
