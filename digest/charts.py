"""The digest's charts as PNG bytes: posts per hour (rumor posts highlighted), category breakdown.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no GUI, no global figure
state). Chinese labels need a CJK font: we look for WenQuanYi Micro Hei (Debian
``fonts-wqy-microhei``) or Noto/Source Han Sans CJK, also on disk when matplotlib's font cache
was built before the font was installed, or take the file given in ``YUQING_DIGEST_FONT``.
Without one, :class:`ChartFontMissing` says how to install it (we never draw tofu boxes).
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before anything else of matplotlib is imported

from matplotlib import font_manager, rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from core.errors import YuqingError
from core.fonts import installed_cjk_font_file

log = logging.getLogger(__name__)

#: CJK families we know, best first.
CJK_FAMILIES = ("WenQuanYi Micro Hei", "Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans SC",
                "WenQuanYi Zen Hei", "Droid Sans Fallback")

BASE_COLOR = "#9db4cf"
RUMOR_COLOR = "#d64541"
TEXT_COLOR = "#333333"
GRID_COLOR = "#e6e6e6"
DPI = 200
MAX_CATEGORIES = 8
UNCATEGORISED = "未分类"

_lock = threading.Lock()  # rc_context changes process-wide rcParams while a chart is drawn


class ChartFontMissing(YuqingError):
    """No font that can draw Chinese is available to matplotlib."""


def find_cjk_family(font_file: Path | None = None) -> str:
    """The family name of a CJK font matplotlib can use (registering it if needed)."""
    if font_file is not None:
        if not font_file.is_file():
            raise ChartFontMissing(f"日报图表字体文件不存在：{font_file}。请检查 YUQING_DIGEST_FONT。")
        font_manager.fontManager.addfont(str(font_file))
        return font_manager.FontProperties(fname=str(font_file)).get_name()
    known = {f.name for f in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in known:
            return family
    path = installed_cjk_font_file()  # matplotlib's font cache may predate the font's installation
    if path is not None:
        font_manager.fontManager.addfont(str(path))
        family = font_manager.FontProperties(fname=str(path)).get_name()
        log.info("registered CJK font %s (%s) with matplotlib", family, path)
        return family
    raise ChartFontMissing(
        "找不到可显示中文的字体，日报图表无法生成。请安装文泉驿微米黑："
        "apt-get install -y fonts-wqy-microhei（或 fonts-noto-cjk），或用 YUQING_DIGEST_FONT 指定字体文件。"
    )


def _rc(families: Sequence[str]) -> Any:  # rc_context's typing lists every key as a Literal
    return {
        "font.family": "sans-serif",
        "font.sans-serif": [*families, "DejaVu Sans"],
        "axes.unicode_minus": False,  # the CJK fonts lack U+2212
        "font.size": 10,
        "axes.edgecolor": "#bbbbbb",
        "axes.labelcolor": TEXT_COLOR,
        "xtick.color": TEXT_COLOR,
        "ytick.color": TEXT_COLOR,
        "text.color": TEXT_COLOR,
    }


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    # No software/date metadata: the same figures give the same bytes.
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white", metadata={"Software": None})
    return buf.getvalue()


def spread_chart(hourly: Sequence[int], hourly_rumor: Sequence[int], *, families: Sequence[str]) -> bytes:
    """Bars of posts and messages per local hour, rumor posts drawn over them in red."""
    if len(hourly) != 24 or len(hourly_rumor) != 24:
        raise ValueError("hourly counts must have 24 values")
    with _lock, rc_context(_rc(families)):
        fig = Figure(figsize=(4.0, 2.4))
        ax = fig.add_subplot()
        hours = list(range(24))
        ax.bar(hours, hourly, color=BASE_COLOR, width=0.8, label="全部帖子与群消息")
        if any(hourly_rumor):
            ax.bar(hours, hourly_rumor, color=RUMOR_COLOR, width=0.8, label="疑似谣言")
        ax.set_xticks(range(0, 24, 3), [f"{h}时" for h in range(0, 24, 3)])
        ax.set_xlim(-0.7, 23.7)
        ax.set_ylabel("条数")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="y", color=GRID_COLOR, linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False, fontsize=9,
                  borderaxespad=0.2, handlelength=1.2)
        fig.tight_layout(pad=0.4)
        return _png(fig)


def category_chart(categories: Sequence[Sequence[object]], *, families: Sequence[str]) -> bytes:
    """Horizontal bars of posts per concern category, largest first (the tail merged as 其他)."""
    items = [(str(name), int(n)) for name, n in categories if int(n) > 0]  # type: ignore[call-overload]
    # largest first, but "未分类" (not yet classified) last: it is not a concern of its own
    items.sort(key=lambda item: (item[0] == UNCATEGORISED, -item[1], item[0]))
    if len(items) > MAX_CATEGORIES:
        head, tail = items[: MAX_CATEGORIES - 1], items[MAX_CATEGORIES - 1:]
        items = [*head, ("其他", sum(n for _, n in tail))]
    items.reverse()  # barh draws bottom-up
    with _lock, rc_context(_rc(families)):
        fig = Figure(figsize=(4.0, 0.32 * max(len(items), 1) + 0.4))
        ax = fig.add_subplot()
        names = [name for name, _ in items]
        values = [n for _, n in items]
        bars = ax.barh(names, values, color=BASE_COLOR, height=0.65)
        top = max(values, default=1)
        for bar, value in zip(bars, values, strict=True):
            ax.text(bar.get_width() + top * 0.01, bar.get_y() + bar.get_height() / 2, str(value),
                    va="center", fontsize=9)
        ax.set_xlim(0, top * 1.15)
        ax.xaxis.set_visible(False)
        for side in ("top", "right", "bottom"):
            ax.spines[side].set_visible(False)
        fig.tight_layout(pad=0.4)
        return _png(fig)


def text_image(text: str, *, families: Sequence[str]) -> bytes:
    """``text`` alone on a small canvas: lets tests compare real glyphs with tofu boxes."""
    with _lock, rc_context(_rc(families)):
        fig = Figure(figsize=(len(text) * 0.3 + 0.2, 0.5))
        fig.text(0.05, 0.3, text, fontsize=14)
        return _png(fig)
