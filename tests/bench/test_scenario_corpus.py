"""The scenario corpus (tests/fixtures/scenarios/) is sound: every message has a known role,
group, matter and reply; every matter has its messages; each part holds what the benchmark needs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bench.scenarios import (
    ROLES,
    ROOT,
    CorpusError,
    corpus_stats,
    load_evening,
    load_scenarios,
    validate_corpus,
    validate_evening,
)


def test_the_whole_corpus_validates() -> None:
    assert validate_corpus() == []


def test_parts_are_disjoint_and_all_is_their_union() -> None:
    tune, heldout, everything = (load_scenarios(p) for p in ("tune", "heldout", "all"))
    assert tune and heldout
    assert {e.slug for e in tune}.isdisjoint({e.slug for e in heldout})
    assert [e.path for e in everything] == [e.path for e in tune + heldout]


def test_messages_come_in_time_order_with_local_times() -> None:
    for ev in load_scenarios("all"):
        times = [m.time for m in ev.messages]
        assert times == sorted(times), ev.path
        assert all(t.utcoffset() == dt.timedelta(hours=8) for t in times)
        assert all(m.role in ROLES for m in ev.messages)


def test_every_township_has_debunks_of_its_rumors_and_places() -> None:
    evenings = load_scenarios("all")
    for ev in evenings:
        assert ev.debunks, f"{ev.slug} has no debunks.yaml"
        assert ev.places_file is not None, f"{ev.slug} has no places.yaml"
        rumors = {m.id for e in evenings if e.slug == ev.slug for m in e.matters if m.kind == "rumor"}
        assert {d.matter for d in ev.debunks} - {None} <= rumors


def _township(root: Path, matters: str, messages: str) -> Path:
    """A one-evening tune township ``testtown`` under ``root`` (and an empty held-out part)."""
    folder = root / "tune" / "testtown"
    folder.mkdir(parents=True)
    (root / "heldout").mkdir()
    (folder / "evening-2026-11-01.yaml").write_text(
        "township: 试验镇\ndate: 2026-11-01\ngroups: [{id: g1, name: 甲群, platform: qq}]\n"
        f"matters: {matters}\nmessages:\n{messages}", encoding="utf-8")
    return folder


def test_the_validator_names_what_is_wrong(tmp_path: Path) -> None:
    _township(tmp_path, "[{id: x1, kind: rumor, truth: false, title: 甲}]",
              "  - {id: m1, group: g1, time: '19:00', sender: 甲, text: 网传甲村停水, matter: x1, role: claim}\n"
              "  - {id: m2, group: g2, time: '19:01', sender: 乙, text: 真的吗, matter: x2, role: ask, reply_to: m9}\n"
              "  - {id: m3, group: g1, time: '19:02', sender: 丙, text: 收到, matter: null, role: question}\n")
    (ev,) = load_scenarios("tune", root=tmp_path)
    problems = " | ".join(validate_evening(ev))
    for expected in ("role 'ask'", "unknown group 'g2'", "unknown matter 'x2'", "unknown message 'm9'",
                     "chatter message m3", "matter x1 has 1 messages"):
        assert expected in problems
    assert any("heldout: 0 townships" in p for p in validate_corpus(tmp_path))


def test_a_debunk_the_product_would_refuse_is_named(tmp_path: Path) -> None:
    folder = _township(tmp_path, "[]",
                       "  - {id: m1, group: g1, time: '19:00', sender: 甲, text: 你好, matter: null, role: other}\n")
    (folder / "debunks.yaml").write_text(
        "debunks:\n"
        "  - {id: d1, matter: null, claim: 甲村停水, refutation: 甲村供水正常, category: 公共安全}\n"
        "  - {id: d2, matter: null, claim: 乙村停电, refutation: 乙村供电正常, category: 诈骗}\n",
        encoding="utf-8",
    )
    problems = [p for p in validate_corpus(tmp_path) if "debunks.yaml" in p]
    assert len(problems) == 1 and "第 2 条" in problems[0] and "诈骗" in problems[0]


def test_a_bad_time_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "evening-2026-11-01.yaml"
    path.write_text(
        "township: 试验镇\ndate: 2026-11-01\ngroups: [{id: g1, name: 甲群}]\nmatters: []\n"
        "messages: [{id: m1, group: g1, time: '7pm', sender: 甲, text: 你好, matter: null, role: other}]\n",
        encoding="utf-8",
    )
    with pytest.raises(CorpusError, match="not HH:MM"):
        load_evening(path)


def test_stats_count_what_the_files_hold() -> None:
    evenings = load_scenarios("all")
    stats = corpus_stats(evenings)
    assert stats["messages"] == sum(stats["messages_by_role"].values())
    assert stats["chatter"] <= stats["messages_by_role"]["other"]
    assert ROOT.is_dir()
