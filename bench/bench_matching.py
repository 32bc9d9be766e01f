"""Benchmark: debunk matching and story grouping quality on ../shared/data (skips when absent).

Debunk matching (target: precision >= 0.95 at recall >= 0.8):
  library   = the rumor source posts of weibo_ced;
  positives = reposts/comments from their cascades (ced_reposts.jsonl.gz) that quote the source:
              at least half of the source's character 5-grams occur in the repost (at most 20
              per cascade, so big cascades do not dominate);
  negatives = the non-rumor source posts of weibo_ced and weibo_ma2016.
  A returned match is correct when it is the quoted source or the same rumor: a library entry
  whose text shares at least half of the shorter text's 5-grams with it (the rule that defines
  quoting, applied between library entries; the same rumor posted by several accounts with
  other tails). The strict figure (exactly the quoted source's text) is reported too.
  precision = correct / returned; recall = correct positives / positives.

Story grouping (target: B-cubed precision >= 0.95): source posts and the reposts that carry the
source text (same quote rule), from ced_reposts and ma2016_reposts_first50, fed in time order
through `nlp.stories.assign_stories`; gold clusters are cascades, with cascades whose sources
are the same message by the same 5-gram rule merged (strict per-cascade figures reported too).

    PYTHONPATH=. python bench/bench_matching.py
Writes bench/results/matching.json and matching.md. Nothing from the data is written out.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nlp.debunks import DebunkMatcher  # noqa: E402
from nlp.normalize import normalize  # noqa: E402
from nlp.similarity import match_key, shingle_batch  # noqa: E402
from nlp.stories import StoryIndex, StoryMember, assign_stories  # noqa: E402

DATA = Path(os.environ.get("YUQING_SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "bench" / "results"
QUOTE_SHARE = 0.5
MIN_QUERY_CHARS = 10
PER_CASCADE = 20


def grams(text: str, n: int = 5) -> set[str]:
    return (
        {text[i : i + n] for i in range(len(text) - n + 1)} if len(text) >= n else {text} if text else set()
    )


def quotes(source_grams: set[str], repost_key: str) -> bool:
    if len(repost_key) < MIN_QUERY_CHARS or not source_grams:
        return False
    return len(source_grams & grams(repost_key)) / len(source_grams) >= QUOTE_SHARE


def near_identical_groups(keys: dict[str, str], share: float = QUOTE_SHARE) -> dict[str, str]:
    """Group ids whose texts are near-identical by the reference rule (independent of MinHash):
    at least ``share`` of the shorter text's 5-grams occur in the other. Returns id -> group id."""
    from collections import Counter

    gram_sets = {i: grams(k) for i, k in keys.items()}
    postings: dict[str, list[str]] = defaultdict(list)
    for i, gs in gram_sets.items():
        for g in gs:
            postings[g].append(i)
    parent = {i: i for i in keys}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, gs in gram_sets.items():
        counts: Counter[str] = Counter()
        for g in gs:
            post = postings[g]
            if len(post) <= 200:
                counts.update(post)
        for j, shared in counts.items():
            if j != i and shared / max(1, min(len(gs), len(gram_sets[j]))) >= share:
                parent[find(i)] = find(j)
    return {i: find(i) for i in keys}


def jsonl_gz(path: Path) -> Iterator[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


def load_ced() -> tuple[list[dict], dict[str, list[dict]]]:
    sources = [json.loads(line) for line in (DATA / "weibo_ced" / "ced.jsonl").open(encoding="utf-8")]
    cascades = {row["id"]: row["reposts"] for row in jsonl_gz(DATA / "weibo_ced" / "ced_reposts.jsonl.gz")}
    return sources, cascades


def bench_debunks(sources: list[dict], cascades: dict[str, list[dict]], ma_sources: list[dict]) -> dict:
    rumors = [s for s in sources if s["label"] == 1 and s.get("text")]
    keys = {s["id"]: match_key(normalize(s["text"])) for s in rumors}
    t0 = time.perf_counter()
    matcher = DebunkMatcher(list(range(len(rumors))), [s["text"] for s in rumors])
    build_s = time.perf_counter() - t0
    pos_of = {s["id"]: i for i, s in enumerate(rumors)}
    # A match is correct if it is the quoted source, or (the "same rumor" figure) a library entry
    # whose text is near-identical to it by the reference rule: duplicates in the library are one rumor.
    same_text: dict[str, set[int]] = defaultdict(set)
    for s in rumors:
        same_text[keys[s["id"]]].add(pos_of[s["id"]])
    group = near_identical_groups(keys)
    same_rumor: dict[str, set[int]] = defaultdict(set)
    for s in rumors:
        same_rumor[group[s["id"]]].add(pos_of[s["id"]])
    queries: list[str] = []
    expected: list[set[int] | None] = []
    expected_rumor: list[set[int] | None] = []
    for s in rumors:
        sg = grams(keys[s["id"]])
        taken = 0
        for rp in cascades.get(s["id"], []):
            k = match_key(normalize(rp.get("text") or ""))
            if quotes(sg, k):
                queries.append(k)
                expected.append(same_text[keys[s["id"]]])
                expected_rumor.append(same_rumor[group[s["id"]]])
                taken += 1
                if taken >= PER_CASCADE:
                    break
    n_pos = len(queries)
    rumor_keys = set(keys.values())
    negatives = [s for s in sources if s["label"] == 0 and s.get("text")]
    negatives += [s for s in ma_sources if s["label"] == 0 and s.get("text")]
    seen: set[str] = set()
    for s in negatives:
        k = match_key(normalize(s["text"]))
        if k and k not in seen and k not in rumor_keys:  # the one cross-labelled text is not a negative
            seen.add(k)
            queries.append(k)
            expected.append(None)
            expected_rumor.append(None)
    t1 = time.perf_counter()
    hits = []
    for lo in range(0, len(queries), 2000):
        chunk = queries[lo : lo + 2000]
        shingles = shingle_batch(chunk)
        hits.extend(matcher.match(chunk, shingles.signatures(), shingles))
    match_s = time.perf_counter() - t1

    def score(accept, truth) -> dict:
        returned = correct = pos_correct = 0
        for hit, exp in zip(hits, truth, strict=True):
            if hit is None or not accept(hit):
                continue
            returned += 1
            ok = exp is not None and hit.debunk_id in exp
            correct += ok
            pos_correct += ok
        return {
            "precision": round(correct / returned, 4) if returned else None,
            "recall": round(pos_correct / n_pos, 4) if n_pos else None,
            "returned": returned,
        }

    by_method = defaultdict(lambda: [0, 0])
    for hit, exp in zip(hits, expected, strict=True):
        if hit is not None:
            by_method[hit.method][0] += 1
            by_method[hit.method][1] += int(exp is not None and hit.debunk_id in exp)
    false_pos_on_negatives = sum(
        1 for h, e in zip(hits, expected, strict=True) if h is not None and e is None
    )
    by_method = defaultdict(lambda: [0, 0])
    for hit, exp in zip(hits, expected_rumor, strict=True):
        if hit is not None:
            by_method[hit.method][0] += 1
            by_method[hit.method][1] += int(exp is not None and hit.debunk_id in exp)
    return {
        "library": len(rumors),
        "positives": n_pos,
        "negatives": len(queries) - n_pos,
        "default": score(lambda h: True, expected_rumor),
        "strict_same_text": score(lambda h: True, expected),
        "sweep_min_similarity": {
            str(t): score(lambda h, t=t: h.similarity >= t, expected_rumor)
            for t in (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
        },
        "by_method": {m: {"returned": r, "correct": c} for m, (r, c) in by_method.items()},
        "false_matches_on_non_rumors": false_pos_on_negatives,
        "thresholds": {
            "minhash": matcher.minhash_threshold,
            "cosine": matcher.cosine_threshold,
            "containment": matcher.containment_threshold,
            "containment_min_cosine": matcher.containment_min_cosine,
        },
        "seconds": {
            "build_library": round(build_s, 2),
            "match": round(match_s, 2),
            "queries_per_second": round(len(queries) / match_s),
        },
    }


def bench_stories(sources: list[dict], cascades: dict[str, list[dict]], ma_sources: list[dict]) -> dict:
    items: list[tuple[float, str, str]] = []  # (time, gold cascade, key)
    gold_of_text: dict[str, str] = {}
    source_keys: dict[str, str] = {}

    def add_cascade(cid: str, source_text: str, source_t: float, reposts: list[tuple[float, str]]) -> None:
        key = match_key(normalize(source_text))
        if len(key) < MIN_QUERY_CHARS:
            return
        gold = gold_of_text.setdefault(key, cid)  # identical sources: one gold story
        source_keys[gold] = key
        items.append((source_t, gold, key))
        sg = grams(key)
        for t, text in reposts:
            k = match_key(normalize(text or ""))
            if quotes(sg, k):
                items.append((t, gold, k))

    for s in sources:
        # Repost dates come in several formats ("07月23日 11:47"); the records are sorted by date,
        # so the position after the source's time keeps their order.
        t0 = float(s.get("timestamp") or 0)
        reposts = [(t0 + 1 + i, r.get("text", "")) for i, r in enumerate(cascades.get(s["id"], []))]
        add_cascade("ced:" + s["id"], s.get("text") or "", t0, reposts)
    by_eid = {s["eid"]: s for s in ma_sources if s.get("text")}
    for row in jsonl_gz(DATA / "weibo_ma2016" / "ma2016_reposts_first50.jsonl.gz"):
        s = by_eid.get(row["eid"])
        if s is not None:
            add_cascade(
                "ma:" + row["eid"],
                s["text"],
                float(s.get("timestamp") or 0),
                [(float(r.get("t") or 0), r.get("text", "")) for r in row.get("reposts_first", [])],
            )
    items.sort(key=lambda x: x[0])
    keys = [k for _, _, k in items]
    gold = [g for _, g, _ in items]
    t0 = time.perf_counter()
    index = StoryIndex()
    now = dt.datetime.now(dt.UTC)
    predicted: list[int | None] = []
    next_id = 1
    for lo in range(0, len(keys), 2000):
        chunk = keys[lo : lo + 2000]
        members = [
            StoryMember(post_id=lo + i, key=k, when=now, old_story_id=None, title=k)
            for i, k in enumerate(chunk)
        ]
        assigned, _ = assign_stories(index, members, shingle_batch(chunk).signatures())
        real = {}
        for temp, (sig, band_keys, places) in index.pending.items():
            real[temp] = next_id
            index.add(next_id, sig, band_keys, places)
            next_id += 1
        index.pending.clear()
        predicted.extend(real.get(a, a) if a is not None and a < 0 else a for a in assigned)
    seconds = time.perf_counter() - t0
    # Posts too short to group get a singleton story each (they are not merged with anything).
    pred = [p if p is not None else -(i + 1) for i, p in enumerate(predicted)]
    precision, recall = bcubed(pred, gold)
    # Different accounts posting the same message (near-identical sources by the reference rule)
    # make one story: the "merged" gold. The strict gold keeps every cascade apart.
    merge = near_identical_groups(source_keys)
    merged_gold = [merge[g] for g in gold]
    m_precision, m_recall = bcubed(pred, merged_gold)
    return {
        "posts": len(items),
        "gold_stories": len(set(merged_gold)),
        "gold_cascades": len(set(gold)),
        "predicted_stories": len(set(pred)),
        "bcubed_precision": round(m_precision, 4),
        "bcubed_recall": round(m_recall, 4),
        "bcubed_f1": round(2 * m_precision * m_recall / (m_precision + m_recall), 4),
        "strict_cascades": {"bcubed_precision": round(precision, 4), "bcubed_recall": round(recall, 4)},
        "seconds": round(seconds, 2),
        "posts_per_second": round(len(items) / seconds),
    }


def bcubed(pred: list, gold: list) -> tuple[float, float]:
    """B-cubed precision and recall (Amigó et al. 2009), averaged over items."""
    pred_arr, gold_arr = np.asarray([hash(p) for p in pred]), np.asarray([hash(g) for g in gold])
    pairs: dict[tuple[int, int], int] = defaultdict(int)
    for p, g in zip(pred_arr.tolist(), gold_arr.tolist(), strict=True):
        pairs[(p, g)] += 1
    pred_size: dict[int, int] = defaultdict(int)
    gold_size: dict[int, int] = defaultdict(int)
    for (p, g), n in pairs.items():
        pred_size[p] += n
        gold_size[g] += n
    total = len(pred)
    precision = sum(n * n / pred_size[p] for (p, _), n in pairs.items()) / total
    recall = sum(n * n / gold_size[g] for (_, g), n in pairs.items()) / total
    return precision, recall


def main() -> None:
    if not (DATA / "README.md").exists():
        print(f"shared data not found at {DATA}: skipped")
        return
    sources, cascades = load_ced()
    ma_sources = [
        json.loads(line) for line in (DATA / "weibo_ma2016" / "ma2016_weibo.jsonl").open(encoding="utf-8")
    ]
    results = {
        "debunk_matching": bench_debunks(sources, cascades, ma_sources),
        "story_grouping": bench_stories(sources, cascades, ma_sources),
    }
    d, s = results["debunk_matching"]["default"], results["story_grouping"]
    results["targets"] = {
        "debunk precision>=0.95 at recall>=0.8": bool(
            d["precision"] and d["precision"] >= 0.95 and d["recall"] and d["recall"] >= 0.8
        ),
        "story B-cubed precision>=0.95": s["bcubed_precision"] >= 0.95,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "matching.json").write_text(
        json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    (RESULTS / "matching.md").write_text(render_md(results), encoding="utf-8")
    print(render_md(results))


def render_md(r: dict) -> str:
    d, s = r["debunk_matching"], r["story_grouping"]
    lines = [
        "# Debunk matching and story grouping (bench/bench_matching.py)",
        "",
        "Data: ../shared/data (weibo_ced, weibo_ma2016). See the script's docstring for the protocol.",
        "",
        "## Debunk matching",
        "",
        f"Library: {d['library']} rumor source posts. Queries: {d['positives']} quoting reposts/comments "
        f"(>= {QUOTE_SHARE:.0%} of the source's 5-grams) and {d['negatives']} non-rumor posts.",
        "",
        "| correct when | precision (top match) | recall | matches returned | false matches on non-rumors |",
        "|---|---|---|---|---|",
        f"| same rumor (near-identical library entries are one) | {d['default']['precision']} | "
        f"{d['default']['recall']} | {d['default']['returned']} | {d['false_matches_on_non_rumors']} |",
        f"| exactly the quoted source text (strict) | {d['strict_same_text']['precision']} | "
        f"{d['strict_same_text']['recall']} | {d['strict_same_text']['returned']} | |",
        "",
        "By method (returned / correct): "
        + ", ".join(f"{m} {v['returned']}/{v['correct']}" for m, v in d["by_method"].items()),
        "",
        f"Thresholds: {json.dumps(d['thresholds'])}. Speed: {d['seconds']['queries_per_second']} queries/s "
        f"(library built in {d['seconds']['build_library']} s).",
        "",
        "## Story grouping",
        "",
        f"{s['posts']} posts (sources + reposts carrying the source text) "
        f"from {s['gold_cascades']} cascades, "
        f"{s['gold_stories']} gold stories once cascades with near-identical sources are merged; "
        f"predicted {s['predicted_stories']} stories.",
        "",
        "| gold | B-cubed precision | B-cubed recall | F1 | posts/s |",
        "|---|---|---|---|---|",
        f"| near-identical sources merged | {s['bcubed_precision']} | {s['bcubed_recall']} "
        f"| {s['bcubed_f1']} | "
        f"{s['posts_per_second']} |",
        f"| every cascade apart (strict) | {s['strict_cascades']['bcubed_precision']} | "
        f"{s['strict_cascades']['bcubed_recall']} | | |",
        "",
        "Targets: " + ", ".join(f"{k}: {'met' if ok else 'NOT met'}" for k, ok in r["targets"].items()),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
