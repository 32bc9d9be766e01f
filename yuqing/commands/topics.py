"""`yuqing topics`: the hot concerns as a table (what people worry about, rising now)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from core.settings import get_settings

err_console = Console(stderr=True)

#: Below this many columns the ten-column table folds every cell into a few characters per line
#: (an 80-column terminal, a phone's SSH app): each topic is printed as a short block instead.
WIDE_TABLE = 120


def _fields(t: Any, zone: ZoneInfo) -> dict[str, str]:
    """One topic's cells, escaped (labels and places come from posts: untrusted)."""
    mood = f"{t.negativity:.2f}" if t.negativity is not None else "-"
    if t.negativity_rising:
        mood += " ↑情绪升温"
    state = "热点中" if t.is_hot else "已回落"
    if t.is_local:
        state += " · 本地"
    peak = t.peak_burst_score if t.peak_burst_score is not None else t.burst_score
    return {
        "category": escape(t.category or "-"), "places": escape("、".join(t.places[:3]) or "-"),
        "posts": f"{t.recent_count}/{t.post_count}", "reach": f"{t.group_count}/{t.source_count}",
        "mood": mood, "peak": f"{peak:.1f}" if peak is not None else "-",
        "first": t.first_seen.astimezone(zone).strftime("%m-%d %H:%M"), "state": state,
    }


def _print_block(console: Console, t: Any, zone: ZoneInfo) -> None:
    f = _fields(t, zone)
    console.print(f"\n[bold]#{t.id} {escape(t.label)}[/bold]  {f['state']}")
    console.print(f"  类别 {f['category']} · 地点 {f['places']} · 窗口内/总帖 {f['posts']} · 群/来源 {f['reach']}")
    console.print(f"  负面度 {f['mood']} · 爆发分 {f['peak']} · 首次出现 {f['first']}")
    if t.representative_text:
        console.print(f"  [dim]{escape(t.representative_text[:60])}[/dim]")


def _parse_now(value: str) -> dt.datetime:
    if not value:
        return dt.datetime.now(dt.UTC)
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError as err:
        raise typer.BadParameter(f"时间“{value}”无效：请用 ISO 格式，如 2026-11-28T15:00") from err
    return t.replace(tzinfo=ZoneInfo(get_settings().timezone)) if t.tzinfo is None else t


def topics(
    since: Annotated[str, typer.Option("--since", help="时间范围：如 90m、24h、3d、1w")] = "24h",
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="最多显示几个话题")] = 20,
    now: Annotated[str, typer.Option("--now", help="以此时间为“现在”（复盘用，ISO 格式，默认当前时间）")
                   ] = "",
    keywords: Annotated[bool, typer.Option("--keywords/--no-keywords", help="同时列出突增的关键词")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False,
) -> None:
    """Print the hot topics (significant rises over their own baseline) of the last --since."""
    from core.db import session_scope
    from core.errors import YuqingError
    from nlp.concerns import hot_keywords
    from nlp.concerns.queries import hot_topics, parse_since

    console = Console()  # built per call so it sees the terminal's current width
    settings = get_settings()
    zone = ZoneInfo(settings.timezone)
    at = _parse_now(now)
    try:
        window = parse_since(since)
    except YuqingError as err:
        err_console.print(f"[red]错误：[/red]{err}")
        raise typer.Exit(2) from err
    with session_scope() as session:
        found, total = hot_topics(session, now=at, since=window, limit=limit)
        rising = hot_keywords(session, now=at, limit=15) if keywords else []
    local_now = at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    if as_json:
        from yuqing.jsonout import print_json

        print_json({"since": since, "now": at, "total": total, "topics": found, "rising_keywords": rising})
        return
    if not found:
        console.print(f"最近 {since} 没有热点话题（截至 {local_now}）。")
    elif console.width < WIDE_TABLE:
        console.print(f"热点话题：最近 {since}，截至 {local_now}（共 {total} 个）")
        for t in found:
            _print_block(console, t, zone)
    else:
        table = Table(title=f"热点话题：最近 {since}，截至 {local_now}（共 {total} 个）", show_lines=False)
        columns = ("ID", "话题", "类别", "地点", "窗口内/总帖", "群/来源",
                   "负面度", "爆发分", "首次出现", "状态")
        for col in columns:
            table.add_column(col, overflow="fold")
        for t in found:
            f = _fields(t, zone)
            table.add_row(
                str(t.id),
                # Post text is untrusted: escape rich markup.
                escape(t.label) + ("\n[dim]" + escape((t.representative_text or "")[:60]) + "[/dim]"),
                f["category"], f["places"], f["posts"], f["reach"], f["mood"], f["peak"], f["first"], f["state"],
            )
        console.print(table)
    if rising:
        words = "、".join(f"{escape(k['keyword'])}({k['recent']})" for k in rising)
        console.print(f"突增关键词：{words}")


def categories_train(
    csv_file: Annotated[str, typer.Option("--csv", help="另附 text,category 两列的 CSV（类别须在分类文件中）；- 表示标准输入")] = "",
    output: Annotated[str, typer.Option("--output", help="模型保存路径（.skops），默认 <数据目录>/models/category/")
                      ] = "",
    min_per_category: Annotated[int, typer.Option("--min-per-category", min=2, help="每类至少几条标注")] = 5,
) -> None:
    """Train the concern-category classifier on category labels; `yuqing analyze` then uses it."""
    from pathlib import Path

    from core.db import session_scope
    from core.errors import YuqingError
    from nlp.concerns.classifier import (
        check_categories,
        labels_from_table,
        model_path,
        read_category_csv,
        save_with_card,
        train_categories,
    )
    from nlp.concerns.taxonomy import load_taxonomy

    settings = get_settings()
    path = Path(output) if output else model_path(settings)
    try:
        taxonomy = load_taxonomy()
        with session_scope() as session:
            rows = labels_from_table(session)
        check_categories(rows, taxonomy)
        if csv_file:
            from yuqing.stdio import readable

            with readable(Path(csv_file), ".csv") as csv_path:
                rows += read_category_csv(str(csv_path), taxonomy)
        model, info = train_categories(rows, min_per_category=min_per_category)
    except YuqingError as err:
        err_console.print(f"[red]错误：[/red]{escape(str(err))}")
        raise typer.Exit(1) from err
    save_with_card(model, path, info, taxonomy)
    out = Console()
    counts = "、".join(f"{c} {n}" for c, n in info["categories"].items())
    out.print(f"已用 {info['labels']} 条标注训练类别模型（{len(info['categories'])} 类：{escape(counts)}），保存到 {path}。")
    if info["skipped"]:
        out.print(f"标注太少、仍按关键词规则判断的类别：{escape('、'.join(info['skipped']))}")
    if path == model_path(settings):
        out.print("下次 yuqing analyze 起自动使用：模型有把握时按模型判断类别，其余按关键词规则。")
    else:
        out.print(f"启用：设置 YUQING_CONCERN_CATEGORY_MODEL={path}")
