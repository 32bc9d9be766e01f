"""Benchmark: import a generated 200 MB QQ text export; record messages/s and peak memory.

    PYTHONPATH=. python bench/bench_chat_import.py [--size-mb 200] [--database-url URL] [--batch-size 1000]

The export is generated on the fly into a temporary folder (never committed): three fictional
groups of 青禾镇, multi-line messages, emoji, repeated messages within one second, system lines
and a few broken headers, in the QQ message manager's text layout. It is imported into a fresh
SQLite database (or the given PostgreSQL URL) with the same code as `yuqing import-chats`.
Peak memory is the process's resident set size, sampled every 50 ms during the import, and must
stay under 300 MB (the import streams and batches; nothing is kept per message beyond a batch).
Results go to bench/results/chat_import.json and .md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

LIMIT_MB = 300
GROUPS = ["东湾村村民群", "青禾镇业主群", "石桥村家长群"]
PEOPLE = [
    (f"{v}{n}", str(1_000_000_000 + i * 7919))
    for i, (v, n) in enumerate(
        (v, n)
        for v in ("东湾村", "柳树村", "石桥村", "南坪村", "镇上")
        for n in ("老王", "李姐", "小张", "周叔", "网格员", "业主")
    )
]
SENTENCES = [
    "听说{v}明天要封村了，是真的吗？",
    "镇卫生院说口罩还有库存，每户可以领两包。",
    "{v}的菜市场今天照常营业。",
    "不要再转了，这是谣言！镇政府已经辟谣。",
    "有没有人知道{v}停水到几点？",
    "物资车十点到{v}村委会门口。",
    "收到👌",
    "谢谢网格员🙏",
    "[图片]",
    "[表情][表情]",
    "我家老人发烧了，去哪里看病？",
    "核酸点改到{v}小学了。",
    "转发：县里通知，超市物资充足，不必抢购。",
    "今晚{v}有人在发米，是真的吗😱",
    "好的",
    "+1",
]
VILLAGES = ["东湾村", "柳树村", "石桥村", "南坪村"]


def generate(path: Path, size_bytes: int, seed: int = 20261129) -> int:
    """Write a QQ text export of about ``size_bytes``; returns the number of message records written."""
    rnd = random.Random(seed)
    when = dt.datetime(2024, 1, 1, 8, 0, 0)
    written = records = 0
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.write("\ufeff消息记录（此消息记录为文本格式，不支持重新导入）\n\n")
        per_group = size_bytes // len(GROUPS)
        for group in GROUPS:
            head = f"{'=' * 64}\n消息分组:我的QQ群\n{'=' * 64}\n消息对象:{group}\n{'=' * 64}\n\n"
            f.write(head)
            written += len(head.encode())
            limit = written + per_group
            buf: list[str] = []
            while written < limit:
                when += dt.timedelta(seconds=rnd.choice((0, 0, 1, 2, 3, 5, 8, 13, 21)))
                name, qq = rnd.choice(PEOPLE)
                roll = rnd.random()
                if roll < 0.01:
                    block = f"{when:%Y-%m-%d %H:%M:%S} 系统消息(10000)\n{name}加入本群。\n\n"
                elif roll < 0.011:
                    block = f"{when:%Y-%m-%d %H:%M:%S} {name}({qq}\n断掉的消息头\n\n"
                else:
                    lines = [
                        rnd.choice(SENTENCES).format(v=rnd.choice(VILLAGES))
                        for _ in range(1 if rnd.random() < 0.8 else rnd.randint(2, 4))
                    ]
                    block = f"{when:%Y-%m-%d %H:%M:%S} {name}({qq})\n" + "\n".join(lines) + "\n\n"
                buf.append(block)
                records += 1
                written += len(block.encode())
                if len(buf) >= 5000:
                    f.write("".join(buf))
                    buf.clear()
            f.write("".join(buf))
    return records


class PeakRSS:
    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=200)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--out", default=str(HERE / "results" / "chat_import"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="yuqing-bench-") as tmp:
        os.environ["YUQING_DATA_DIR"] = tmp
        os.environ.setdefault("YUQING_SECRET_KEY", "bench-secret")
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        os.environ["YUQING_DATABASE_URL"] = url

        from sqlalchemy import func, select
        from sqlalchemy.orm import Session

        from core.db import make_engine
        from core.migrate import upgrade
        from core.tables import Post
        from crawler.chats import import_chat_file

        export = Path(tmp) / "qq_export.txt"
        t0 = time.perf_counter()
        records = generate(export, int(args.size_mb * 1024 * 1024))
        gen_seconds = time.perf_counter() - t0
        size = export.stat().st_size
        print(f"generated {size / 1e6:.1f} MB, {records} records in {gen_seconds:.1f} s", flush=True)

        upgrade(url)
        engine = make_engine(url)
        rss_before = psutil.Process().memory_info().rss
        last = [0.0]

        def progress(done: int, messages: int) -> None:
            now = time.perf_counter()
            if now - last[0] > 10:
                last[0] = now
                print(f"  {done / size:6.1%}  {messages} messages", flush=True)

        with PeakRSS() as rss, Session(engine) as session:
            report = import_chat_file(session, export, batch_size=args.batch_size, progress=progress)
        with Session(engine) as session:
            stored = session.scalar(select(func.count()).select_from(Post)) or 0
        engine.dispose()

    c = report.counts
    result = {
        "benchmark": "chat_import",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "format": report.format,
        "database": url.split(":", 1)[0],
        "file_mb": round(size / 1024 / 1024, 1),
        "records": records,
        "messages": c.messages,
        "stored": stored,
        "skipped": dict(c.skipped),
        "unparsable": report.issue_count,
        "rejected": c.rejected_count,
        "seconds": round(report.seconds, 1),
        "messages_per_second": round(report.messages_per_second),
        "mb_per_second": round(size / 1024 / 1024 / report.seconds, 2),
        "rss_before_mb": round(rss_before / 1024 / 1024, 1),
        "peak_rss_mb": round(rss.peak / 1024 / 1024, 1),
        "limit_mb": LIMIT_MB,
        "within_limit": rss.peak / 1024 / 1024 < LIMIT_MB,
        "batch_size": args.batch_size,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(
        json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    out.with_suffix(".md").write_text(
        "# Chat import benchmark\n\n"
        f"Generated QQ text export of {result['file_mb']} MB ({records:,} records, 3 groups), "
        f"imported into a fresh {result['database']} database with `import_chat_file` "
        f"(batch size {args.batch_size}), {result['date']}.\n\n"
        "| measure | value |\n|---|---|\n"
        f"| messages imported | {c.messages:,} (stored {stored:,}) |\n"
        f"| skipped (system lines) / unparsable lines | {sum(c.skipped.values()):,} / "
        f"{report.issue_count:,} |\n"
        f"| time | {result['seconds']} s |\n"
        f"| throughput | **{result['messages_per_second']:,} messages/s**, "
        f"{result['mb_per_second']} MB/s |\n"
        f"| peak resident memory | **{result['peak_rss_mb']} MB** (limit {LIMIT_MB} MB; "
        f"{result['rss_before_mb']} MB before the import) |\n"
        f"| within limit | {'yes' if result['within_limit'] else 'NO'} |\n\n"
        f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, load average at the end "
        f"{result['machine']['load_average_at_end']} "
        "(other jobs were running: throughput is a lower bound).\n",
        encoding="utf-8",
    )
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0 if result["within_limit"] and c.messages == stored else 1


if __name__ == "__main__":
    sys.exit(main())
