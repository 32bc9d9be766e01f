"""Run the benchmarks: ``python -m bench [NAME ...]`` (``make bench`` runs them all).

Each ``bench/bench_<name>.py`` runs as its own process (so peak-memory figures are its own)
and writes ``bench/results/<name>.json`` and ``.md``. Benchmarks that need ../shared/data say
so and skip when it is absent.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    failed = []
    for name in names:
        module = f"bench.bench_{name}"
        print(f"== {module}", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", module], cwd=HERE.parent)
        print(f"== {module}: exit {code} in {time.perf_counter() - started:.1f}s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
