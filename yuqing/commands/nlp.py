"""Commands of the understanding stage: `yuqing analyze`, `yuqing classify`, `yuqing debunks ...`."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from core.encoding import file_encoding

console = Console()
err_console = Console(stderr=True)

debunks_app = typer.Typer(help="辟谣库：导入和查看已辟谣的谣言及官方辟谣内容。", no_args_is_help=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(Text.assemble(("错误：", "red"), message))
    return typer.Exit(code)


def analyze(
    batch_size: Annotated[int, typer.Option(min=1, max=100_000, help="每批处理的帖子数")] = 2000,
    workers: Annotated[
        int | None, typer.Option(min=0, max=64, help="文本分析的进程数（默认：积压多时用全部 CPU）")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="最多处理多少条（默认全部）")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="不显示进度条")] = False,
) -> None:
    """Score every unanalysed post: rumor probability with reasons, debunk matches, story grouping."""
    from core.db import session_scope
    from core.errors import YuqingError
    from core.settings import get_settings
    from nlp.pipeline import analyze as run_analyze
    from nlp.pipeline import backlog

    try:
        with session_scope() as session:
            total = backlog(session)
            if limit is not None:
                total = min(total, limit)
            if not total:
                console.print("没有待分析的帖子。")
                return
            bar = _Bar(total, "分析", quiet=quiet)

            def progress(done: int, _total: int) -> None:
                bar.update(done - bar.n)

            try:
                result = run_analyze(
                    session,
                    batch_size=batch_size,
                    workers=workers,
                    limit=limit,
                    progress=progress,
                    window_days=get_settings().story_window_days,
                )
            finally:
                bar.close()
    except FileNotFoundError as err:
        raise _fail(f"找不到谣言模型文件：{err}。请检查 YUQING_MODEL_DIR 或重新安装模型。") from err
    except YuqingError as err:
        raise _fail(str(err)) from err
    c = result.counts
    if c.get("skipped_busy"):
        console.print("另一个分析任务正在运行（例如 yuqing run 的定时任务），本次跳过；稍后再试。")
        return
    console.print(
        f"已分析 {result.posts} 条（{result.posts_per_second:.0f} 条/秒），"
        f"匹配辟谣库 {c.get('debunk_matches', 0)} 条，新故事 {c.get('stories_new', 0)} 个。"
        + (
            f" 平均谣言概率 {result.mean_score:.2f}，高分（≥0.8）占 {result.high_share:.1%}。"
            if result.mean_score is not None and result.high_share is not None
            else ""
        ),
        highlight=False,
        markup=False,
    )


def classify(
    input: Annotated[Path, typer.Option("--input", "-i", help="输入 CSV 文件（UTF-8 或 GBK，带表头）")],
    output: Annotated[Path, typer.Option("--output", "-o", help="输出 CSV 文件（带 BOM 的 UTF-8，Excel 可直接打开）")],
    text_column: Annotated[str, typer.Option(help="正文所在的列名")] = "text",
    chunk_size: Annotated[int, typer.Option(min=1, max=1_000_000, help="每次读入的行数")] = 5000,
    model_path: Annotated[
        Path | None, typer.Option("--model", help="模型目录（默认：随软件发布的模型）")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="不显示进度条")] = False,
) -> None:
    """Score any CSV without touching the database: adds rumor_probability, label and top_terms."""
    import pandas as pd

    from nlp.classify_csv import classify_frame

    if not input.is_file():
        raise _fail(f"输入文件不存在：{input}")
    if input.resolve() == output.resolve():
        raise _fail("输出文件不能和输入文件相同：请换一个 --output 路径。")
    encoding = file_encoding(input)  # Excel on Chinese Windows saves CSV as GBK
    try:
        header = pd.read_csv(input, nrows=0, encoding=encoding).columns.tolist()
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise _fail(f"无法读取 CSV 文件 {input}：{err}。请确认它是带表头的 CSV（UTF-8 或 GBK 编码）；编码不对时请在 Excel 中另存为“CSV UTF-8”。") from err
    if text_column not in header:
        raise _fail(
            f"CSV 文件 {input.name} 没有名为 '{text_column}' 的列；"
            f"现有的列：{', '.join(map(str, header)) or '无'}。"
            f"请用 --text-column 指定正文所在的列。"
        )
    try:
        model = _load_model(model_path)
    except FileNotFoundError as err:
        raise _fail(f"找不到谣言模型：{err}。请用 --model 指定模型目录。") from err
    with input.open("rb") as fh:
        total_rows = max(0, sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b"")) - 1)
    bar = _Bar(total_rows, "打分", quiet=quiet)
    tmp = output.with_name(output.name + ".part")
    written = 0
    flagged = 0
    try:
        reader = pd.read_csv(
            input, chunksize=chunk_size, encoding=encoding, dtype=str, keep_default_na=False
        )
        for n, chunk in enumerate(reader):
            scored = classify_frame(chunk, model, text_column)
            scored.to_csv(
                tmp,
                mode="w" if n == 0 else "a",
                header=n == 0,
                index=False,
                encoding="utf-8-sig" if n == 0 else "utf-8",  # a BOM once: Excel then reads it as UTF-8
                quoting=csv.QUOTE_MINIMAL,
            )
            written += len(scored)
            flagged += int(scored["label"].sum())
            bar.update(len(scored))
    except pd.errors.ParserError as err:
        tmp.unlink(missing_ok=True)
        raise _fail(f"CSV 文件 {input.name} 第 {written + 1} 行附近格式错误：{err}") from err
    except UnicodeDecodeError as err:
        tmp.unlink(missing_ok=True)
        raise _fail(f"CSV 文件 {input.name} 第 {written + 1} 行之后有无法识别的字符（不是 UTF-8 或 GBK 文本）："
                    "请在 Excel 中另存为“CSV UTF-8”。") from err
    finally:
        bar.close()
    if written == 0:
        pd.DataFrame(columns=[*header, "rumor_probability", "label", "top_terms"]).to_csv(
            tmp, index=False, encoding="utf-8-sig"
        )
    tmp.replace(output)
    console.print(
        f"已打分 {written} 行，其中疑似谣言 {flagged} 行，结果写入 {output}", highlight=False, markup=False
    )


class _Bar:
    """A progress bar on stderr (rich, the one progress library of the CLI): ``update(k)`` adds
    ``k``, ``n`` is the count so far; nothing is drawn when ``quiet``."""

    def __init__(self, total: int, description: str, *, quiet: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.n = 0
        self._progress = Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                  console=Console(stderr=True), disable=quiet)
        self._task = self._progress.add_task(description, total=total)
        self._progress.start()

    def update(self, count: int) -> None:
        self.n += count
        self._progress.update(self._task, completed=self.n)

    def close(self) -> None:
        self._progress.stop()


def _load_model(path: Path | None):  # -> RumorScorer
    # The scoring reader: no scikit-learn import, about a second less before the first row.
    from nlp.registry import load_for_scoring
    from nlp.scoring import default_model_path

    return load_for_scoring(path or default_model_path())


@debunks_app.command("import")
def debunks_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="辟谣库文件：.csv（表头 claim,refutation,publisher,url,published_at,category,tags）或 .yaml"
        ),
    ],
) -> None:
    """Import debunks from CSV or YAML; importing the same file again changes nothing."""
    from core.db import session_scope
    from core.errors import YuqingError
    from nlp.debunks import import_debunks

    try:
        with session_scope() as session:
            result = import_debunks(session, file)
    except YuqingError as err:
        raise _fail(str(err)) from err
    console.print(
        f"辟谣库导入完成：新增 {result.new} 条，更新 {result.updated} 条，未变 {result.unchanged} 条，"
        f"无效 {len(result.rejected)} 条。",
        highlight=False,
        markup=False,
    )
    for _, reason in result.rejected[:20]:
        err_console.print(f"  跳过 {reason}", highlight=False, markup=False)
    if result.rejected and not (result.new or result.updated or result.unchanged):
        raise typer.Exit(1)


@debunks_app.command("list")
def debunks_list(
    search: Annotated[
        str | None, typer.Option("--search", "-s", help="按关键词搜索谣言、辟谣内容或发布机构")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="最多显示多少条")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False,
) -> None:
    """List the debunk library, newest first."""
    from core.db import session_scope
    from nlp.debunks import list_debunks

    with session_scope() as session:
        rows, total = list_debunks(session, q=search, limit=limit)
        items: list[dict[str, Any]] = [
            {
                "id": r.id,
                "claim": r.claim,
                "publisher": r.publisher,
                "category": r.category,
                "published_at": r.published_at.isoformat() if r.published_at else None,
                "active": r.active,
            }
            for r in rows
        ]
    if as_json:
        print(json.dumps({"total": total, "items": items}, ensure_ascii=False, indent=1))
        return
    table = Table("ID", "谣言", "辟谣机构", "类别", "发布时间", "启用")
    for it in items:
        claim = it["claim"] if len(it["claim"]) <= 40 else it["claim"][:39] + "…"
        table.add_row(
            str(it["id"]),
            Text(claim),
            Text(it["publisher"] or ""),
            Text(it["category"] or ""),
            (it["published_at"] or "")[:10],
            "是" if it["active"] else "否",
        )
    console.print(table)
    console.print(f"共 {total} 条")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the top-level app (called from yuqing/cli.py)."""
    app.command("analyze")(analyze)
    app.command("classify")(classify)
    app.add_typer(debunks_app, name="debunks")
