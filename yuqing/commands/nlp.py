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
    reestimate: Annotated[
        bool, typer.Option("--reestimate", help="分析后立即重新估计各渠道的谣言占比（默认每小时最多一次）")
    ] = False,
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
                if reestimate:
                    _reestimate_now(session)
                    return
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
                    reestimate_prevalence=reestimate,
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
        + (f"无法判断 {c['abstained']} 条。" if c.get("abstained") else "")
        + (
            f" 模型原始分平均 {result.mean_score:.2f}，原始分高（≥0.8）占 {result.high_share:.1%}。"
            if result.mean_score is not None and result.high_share is not None
            else ""
        ),
        highlight=False,
        markup=False,
    )
    if "prevalence" in result.timings:
        _print_estimates()


def _reestimate_now(session: Any) -> None:
    """Re-estimate the rumor share of each channel now (no new posts to analyse)."""
    from nlp.prevalence_store import reestimate
    from nlp.registry import active_version

    row = active_version(session)
    reestimate(session, model_version_id=row.id, card=row.card, path=row.path)
    session.flush()
    _print_estimates(session)


def _print_estimates(session: Any = None) -> None:
    from core.db import session_scope
    from nlp.prevalence_store import current, describe

    def lines(s: Any) -> list[str]:
        latest = current(s)
        return [describe(latest[ch]) for ch in ("web", "chat", "all") if ch in latest]

    if session is not None:
        found = lines(session)
    else:
        with session_scope() as s:
            found = lines(s)
    if found:
        console.print("谣言占比估计：" + "；".join(found), highlight=False, markup=False)


def classify(
    input: Annotated[Path, typer.Option("--input", "-i", help="输入 CSV 文件（UTF-8 或 GBK，带表头）；- 表示标准输入")],
    output: Annotated[Path, typer.Option("--output", "-o", help="输出 CSV 文件（带 BOM 的 UTF-8，Excel 可直接打开）；- 表示标准输出")],
    text_column: Annotated[str, typer.Option(help="正文所在的列名")] = "text",
    chunk_size: Annotated[int, typer.Option(min=1, max=1_000_000, help="每次读入的行数")] = 5000,
    model_path: Annotated[
        Path | None, typer.Option("--model", help="模型目录（默认：数据库中当前启用的模型；没有数据库时用随软件发布的模型）")
    ] = None,
    prevalence: Annotated[
        str, typer.Option("--prevalence", help="文件中谣言的大致占比：auto（默认，由文件本身估计）或 0 到 1 之间的数，如 0.02")
    ] = "auto",
    target_precision: Annotated[
        float, typer.Option("--target-precision", min=0.05, max=0.99, help="判为谣言的帖子中，预计有多大比例真是谣言")
    ] = 0.8,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="不显示进度条")] = False,
) -> None:
    """Score any CSV with the active model: adds rumor_probability (adjusted to the file's rumor
    share), label (1 / 0 / 无法判断), raw_score, abstain_reason and top_terms. ``-`` reads standard
    input or writes standard output (the messages then go to standard error)."""
    import sys
    import tempfile

    if str(input) != "-" and str(output) != "-":
        _classify_file(input, output, text_column, chunk_size, model_path, prevalence, target_precision, quiet,
                       console)
        return
    with tempfile.TemporaryDirectory() as tmp:
        source = input
        if str(input) == "-":
            source = Path(tmp) / "stdin.csv"
            source.write_bytes(sys.stdin.buffer.read())
        target = Path(tmp) / "out.csv" if str(output) == "-" else output
        _classify_file(source, target, text_column, chunk_size, model_path, prevalence, target_precision, quiet,
                       err_console if str(output) == "-" else console)
        if str(output) == "-":
            sys.stdout.write(target.read_text(encoding="utf-8-sig"))
            sys.stdout.flush()


def _classify_file(input: Path, output: Path, text_column: str, chunk_size: int, model_path: Path | None,
                   prevalence: str, target_precision: float, quiet: bool, say: Console) -> None:
    import pandas as pd

    from nlp.abstain import load_abstainer
    from nlp.classify_csv import (
        CHANNEL,
        RAW_COLUMN,
        REASON_COLUMN,
        decide_frame,
        estimate_from_scores,
        score_frame,
        threshold_for,
    )
    from nlp.prevalence_store import Decider, model_profile

    if not input.is_file():
        raise _fail(f"输入文件不存在：{input}")
    if input.resolve() == output.resolve():
        raise _fail("输出文件不能和输入文件相同：请换一个 --output 路径。")
    given_prior = _prevalence_option(prevalence)
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
    # An input column named like one we add (an analyst's own "label", say) is kept, renamed,
    # never overwritten: comparing it with the model's is often why the file is classified.
    kept = {c: f"{c}_原始" for c in ("rumor_probability", "label", RAW_COLUMN, REASON_COLUMN, "top_terms")
            if c in header and c != text_column}
    if kept:
        say.print("输入文件已有同名列，原样保留为：" + "、".join(f"{a} → {b}" for a, b in kept.items()),
                      highlight=False, markup=False)
    try:
        model, model_dir, which = _classify_model(model_path)
    except FileNotFoundError as err:
        raise _fail(f"找不到谣言模型：{err}。请用 --model 指定模型目录。") from err
    say.print(f"使用模型 {model.version}（{which}）", highlight=False, markup=False)
    profile = model_profile(getattr(model, "card", None), model_dir)
    abstainer = load_abstainer(model_dir)
    with input.open("rb") as fh:
        total_rows = max(0, sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b"")) - 1)
    bar = _Bar(total_rows, "打分", quiet=quiet)
    scored_tmp = output.with_name(output.name + ".scored.part")
    tmp = output.with_name(output.name + ".part")
    written = 0
    judged_raw: list[float] = []
    try:
        reader = pd.read_csv(
            input, chunksize=chunk_size, encoding=encoding, dtype=str, keep_default_na=False
        )
        for n, chunk in enumerate(reader):
            scored = score_frame(chunk.rename(columns=kept), model, text_column, abstainer=abstainer)
            scored.to_csv(scored_tmp, mode="w" if n == 0 else "a", header=n == 0, index=False, encoding="utf-8")
            judged_raw.extend(scored.loc[scored[REASON_COLUMN] == "", RAW_COLUMN].astype(float).tolist())
            written += len(scored)
            bar.update(len(scored))
    except pd.errors.ParserError as err:
        scored_tmp.unlink(missing_ok=True)
        raise _fail(f"CSV 文件 {input.name} 第 {written + 1} 行附近格式错误：{err}") from err
    except UnicodeDecodeError as err:
        scored_tmp.unlink(missing_ok=True)
        raise _fail(f"CSV 文件 {input.name} 第 {written + 1} 行之后有无法识别的字符（不是 UTF-8 或 GBK 文本）："
                    "请在 Excel 中另存为“CSV UTF-8”。") from err
    finally:
        bar.close()
    # the rumor share of the file (estimated from its own judged rows, or given), then the decisions
    if given_prior is not None:
        prior, how = given_prior, f"按指定的谣言占比 {given_prior:.1%}"
    elif len(judged_raw) >= _MIN_ROWS_FOR_ESTIMATE:
        est = estimate_from_scores(judged_raw, profile)
        prior = est.value
        how = (f"由文件估计的谣言占比 {est.value:.1%}（90% 区间 {est.lower:.1%}–{est.upper:.1%}，"
               f"{len(judged_raw)} 行，方法 {est.method.upper()}）")
    else:
        prior = _DEFAULT_FILE_PRIOR
        how = f"可判断的行太少（{len(judged_raw)} 行，至少 {_MIN_ROWS_FOR_ESTIMATE} 行才估计），按默认谣言占比 {prior:.0%}"
    decider = Decider(profile.train_prior, {CHANNEL: prior}, target_precision, target_precision)
    decider.threshold = threshold_for(judged_raw, decider)
    flagged = abstained = 0
    if written == 0:
        pd.DataFrame(columns=[*header, "rumor_probability", "label", RAW_COLUMN, REASON_COLUMN, "top_terms"]).to_csv(
            tmp, index=False, encoding="utf-8-sig"
        )
    else:
        for n, chunk in enumerate(pd.read_csv(scored_tmp, chunksize=chunk_size, encoding="utf-8", dtype=str,
                                              keep_default_na=False)):
            decided = decide_frame(chunk, decider)
            decided.to_csv(
                tmp,
                mode="w" if n == 0 else "a",
                header=n == 0,
                index=False,
                encoding="utf-8-sig" if n == 0 else "utf-8",  # a BOM once: Excel then reads it as UTF-8
                quoting=csv.QUOTE_MINIMAL,
            )
            labels = decided["label"].astype(str)
            flagged += int((labels == "1").sum())
            abstained += int((labels == "无法判断").sum())
    scored_tmp.unlink(missing_ok=True)
    tmp.replace(output)
    say.print(
        f"{how}；阈值：调整后概率 ≥ {decider.threshold:.2f} 判为疑似谣言（预计其中约 {target_precision:.0%} 确为谣言）",
        highlight=False, markup=False,
    )
    say.print(
        f"已打分 {written} 行，其中疑似谣言 {flagged} 行，无法判断 {abstained} 行，结果写入 {output}",
        highlight=False, markup=False,
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


_MIN_ROWS_FOR_ESTIMATE = 30
_DEFAULT_FILE_PRIOR = 0.03


def _prevalence_option(value: str) -> float | None:
    """``auto`` -> None; a share in (0, 1) (``0.02`` or ``2%``) -> that share; else a clear error."""
    text = value.strip().lower()
    if text == "auto":
        return None
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        share = -1.0
    if not 0.0 < share < 1.0:
        raise _fail(f"--prevalence 应为 auto 或 0 到 1 之间的数（如 0.02 或 2%），收到的是 '{value}'。")
    return share


def _classify_model(path: Path | None) -> tuple[Any, Path, str]:
    """The model to classify with, its folder, and which one it is (said in the output): the
    given folder, else the registry's active model, else (no database yet) the shipped one."""
    from nlp.registry import load_for_scoring
    from nlp.scoring import default_model_path

    if path is not None:
        return load_for_scoring(path), path, "--model 指定"
    active = _active_model_path()
    if active is not None:
        return load_for_scoring(active), active, "数据库中当前启用的模型"
    shipped = default_model_path()
    return load_for_scoring(shipped), shipped, "随软件发布的模型；数据库中还没有启用的模型"


def _active_model_path() -> Path | None:
    """The active model's folder from the registry, read only (None without a usable database)."""
    from sqlalchemy import select
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from core.db import session_scope
    from core.settings import get_settings
    from core.tables import ModelVersion

    url = make_url(get_settings().effective_database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_file():
        return None  # no database yet: do not create an empty file by asking
    try:
        with session_scope() as session:
            path = session.scalar(select(ModelVersion.path).where(
                ModelVersion.name == "rumor", ModelVersion.status == "active"))
    except SQLAlchemyError:
        return None
    return Path(path) if path and Path(path).exists() else None


@debunks_app.command("import")
def debunks_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="辟谣库文件：.csv（表头 claim,refutation,publisher,url,published_at,category,tags）或 .yaml；- 表示标准输入"
        ),
    ],
    fmt: Annotated[str, typer.Option("--format", help="标准输入（-）的格式：csv 或 yaml")] = "csv",
) -> None:
    """Import debunks from CSV or YAML; importing the same file again changes nothing."""
    from core.db import session_scope
    from core.errors import YuqingError
    from nlp.debunks import import_debunks
    from yuqing.stdio import readable

    if fmt not in ("csv", "yaml"):
        raise _fail(f"--format 只能是 csv 或 yaml，收到 '{fmt}'。")
    try:
        with readable(file, f".{fmt}") as path, session_scope() as session:
            result = import_debunks(session, path)
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
