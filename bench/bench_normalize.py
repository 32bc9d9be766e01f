"""Traditional-to-simplified conversion (OpenCC ``t2s``) inside `nlp.normalize`: speed, and the same
output as the pure-Python converter it replaced (issue 22).

    python -m bench.bench_normalize [--n 12000] [--old-opencc DIR]

Texts: 12,000 posts drawn from ../shared/data/combined_text_label.csv (seed 0; mostly simplified,
like the product's input), the same posts turned traditional with OpenCC's own ``s2t``, ``s2tw``
and ``s2hk`` (so that every text really needs converting), and every line with Chinese in
tests/fixtures. Speed: `nlp.normalize.to_simplified` and the whole `normalize`, best of three.

Comparison: ``--old-opencc DIR`` names a folder holding opencc-python-reimplemented 0.1.7
installed apart from the project (``uv pip install --target DIR opencc-python-reimplemented==0.1.7``;
both packages install as ``opencc``, so it cannot share the venv). Its module is loaded from there
under another name and converts the same texts; every difference is listed.
Writes bench/results/normalize.{json,md}.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import re
import sys
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import opencc  # noqa: E402
import pandas as pd  # noqa: E402

from nlp.data import shared_data_dir  # noqa: E402
from nlp.normalize import normalize, to_simplified  # noqa: E402

RESULTS = ROOT / "bench" / "results"
_HAN = re.compile(r"[\u4e00-\u9fff]")


def sample_posts(n: int) -> list[str]:
    texts = pd.read_csv(shared_data_dir() / "combined_text_label.csv", usecols=["text"])["text"].dropna()
    return texts.sample(min(n, len(texts)), random_state=0).astype(str).tolist()


def fixture_lines() -> list[str]:
    """Every line with a Chinese character in our own fixtures (chats, sites, scenarios)."""
    lines: list[str] = []
    for path in sorted((ROOT / "tests" / "fixtures").rglob("*")):
        if not path.is_file() or path.suffix not in {".txt", ".csv", ".json", ".yaml", ".html", ".xml", ".md"}:
            continue
        data = path.read_bytes()
        for encoding in ("utf-8", "gb18030", "big5"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            continue
        lines.extend(line for line in text.splitlines() if _HAN.search(line))
    return lines


def traditional_variants(posts: list[str]) -> list[str]:
    out = []
    for config in ("s2t", "s2tw", "s2hk"):
        converter = opencc.OpenCC(f"{config}.json")
        out.extend(converter.convert(t) for t in posts)
    return out


def best_of(fn: Callable[[str], str], texts: list[str], repeat: int = 3) -> float:
    """CPU seconds (the machine is shared: wall time would measure the neighbours)."""
    times = []
    for _ in range(repeat):
        started = time.process_time()
        for t in texts:
            fn(t)
        times.append(time.process_time() - started)
    return min(times)


def load_old(folder: Path) -> Any:
    spec = importlib.util.spec_from_file_location("opencc_reimplemented", folder / "opencc" / "opencc.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"no opencc-python-reimplemented under {folder}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.OpenCC("t2s")


def old_with_prefilter(old: Any, folder: Path) -> Callable[[str], str]:
    """What nlp.normalize did before: skip texts holding no character the t2s tables change."""
    chars: set[str] = set()
    base = folder / "opencc" / "dictionary"
    for line in (base / "TSCharacters.txt").read_text(encoding="utf-8").splitlines():
        key, _, values = line.partition("\t")
        if values and values.split()[0] != key:
            chars.update(key)
    for line in (base / "TSPhrases.txt").read_text(encoding="utf-8").splitlines():
        key, _, values = line.partition("\t")
        if not values or values.split()[0] == key or chars.intersection(key):
            continue
        value = values.split()[0]
        if len(value) == len(key):
            chars.update(k for k, v in zip(key, value, strict=True) if k != v)
        else:
            chars.update(key)
    trigger = frozenset(chars)

    def convert(text: str) -> str:
        return old.convert(text) if not trigger.isdisjoint(text) else text

    return convert


def compare(old: Any, sets: dict[str, list[str]]) -> dict[str, Any]:
    """The old and new converter on the same NFKC-normalised texts (as normalize feeds them)."""
    out: dict[str, Any] = {}
    for name, texts in sets.items():
        nfkc = [unicodedata.normalize("NFKC", t) for t in texts]
        diffs = []
        for t in nfkc:
            a, b = old.convert(t), to_simplified(t)
            if a != b:
                # only the changed characters: the posts are research data, not ours to copy
                diffs.append({"changed": sorted({f"{x}->{y}" for x, y in zip(a, b, strict=False) if x != y})})
        out[name] = {"texts": len(texts), "different": len(diffs), "examples": diffs[:10]}
    return out


def write_md(report: dict[str, Any]) -> None:
    lines = [
        "# Traditional to simplified (OpenCC t2s) in nlp.normalize",
        "",
        f"`nice -n 10 python -m bench.bench_normalize{report['args']}`; opencc {report['opencc']},"
        f" Python {report['python']}, shared 2-core machine (load varies: take the ratios, not the last digit).",
        "",
        "## Speed (CPU seconds, best of three, one thread)",
        "",
        "| texts | n | to_simplified (s) | µs/text | normalize (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in report["speed"].items():
        lines.append(
            f"| {name} | {row['n']:,} | {row['to_simplified_s']:.3f} | {row['us_per_text']:.1f} | {row['normalize_s']:.2f} |"
        )
    if report.get("old"):
        old = report["old"]
        lines += [
            "",
            f"opencc-python-reimplemented 0.1.7 on the same {report['speed']['posts']['n']:,} posts: "
            f"{old['posts_prefilter_s']:.2f} s with the pre-filter nlp.normalize had (convert only posts holding a "
            f"character the t2s tables change), {old['posts_s']:.2f} s without; on their {report['speed']['posts']['n']:,} s2t variants {old['traditional_s']:.2f} s.",
            "",
            "## Same output as opencc-python-reimplemented 0.1.7",
            "",
            "| texts | n | different |",
            "|---|---:|---:|",
        ]
        for name, row in report["comparison"].items():
            lines.append(f"| {name} | {row['texts']:,} | {row['different']} |")
        examples = [e for row in report["comparison"].values() for e in row["examples"]]
        changed = sorted({c for e in examples for c in e["changed"]})
        if changed:
            lines += [
                "",
                "Every difference comes from OpenCC 1.4's newer dictionaries (old -> new character at the "
                f"differing position): {', '.join(changed)}. The new output is the standard simplified form.",
            ]
    lines += [
        "",
        "We build `t2s` without the \"tofu risk\" dictionary (TSCharactersExt), whose targets only CJK "
        "extension fonts hold: normalised text reaches story and alert titles.",
        "",
    ]
    (RESULTS / "normalize.md").write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=12000)
    parser.add_argument("--old-opencc", type=Path, default=None)
    args = parser.parse_args()
    posts = sample_posts(args.n)
    sets = {"posts": posts, "traditional": traditional_variants(posts), "fixtures": fixture_lines()}
    to_simplified("預熱")  # build the converter outside the timings
    speed = {}
    for name, texts in sets.items():
        nfkc = [unicodedata.normalize("NFKC", t) for t in texts]
        seconds = best_of(to_simplified, nfkc)
        speed[name] = {
            "n": len(texts),
            "to_simplified_s": seconds,
            "us_per_text": seconds / max(len(texts), 1) * 1e6,
            "normalize_s": best_of(normalize, texts, repeat=1),
        }
    report: dict[str, Any] = {
        "args": (f" --n {args.n}" if args.n != 12000 else "") + (" --old-opencc DIR" if args.old_opencc else ""),
        "opencc": opencc.__version__,
        "python": platform.python_version(),
        "speed": speed,
    }
    if args.old_opencc:
        old = load_old(args.old_opencc)
        report["comparison"] = compare(old, sets)
        nfkc_posts = [unicodedata.normalize("NFKC", t) for t in posts]
        report["old"] = {
            "posts_prefilter_s": best_of(old_with_prefilter(old, args.old_opencc), nfkc_posts, repeat=1),
            "posts_s": best_of(old.convert, nfkc_posts, repeat=1),
            "traditional_s": best_of(old.convert, sets["traditional"][: len(posts)], repeat=1),
        }
    (RESULTS / "normalize.json").write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    write_md(report)
    print((RESULTS / "normalize.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
