"""Render the digest's figures to a subject, phone-friendly HTML and a plain-text part.

Templates are Jinja2 files in ``digest/templates/`` (``digest.html``, ``digest.txt``). An admin
can put their own versions in ``YUQING_DIGEST_TEMPLATE_DIR``: a file there wins over the shipped
one, and may ``{% extends "default/digest.html" %}`` to change only some blocks. HTML is
autoescaped (post text is untrusted); the text part is not HTML and is not escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PrefixLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    select_autoescape,
)

from digest.build import SEVERITY_ZH
from digest.errors import DigestConfigError

TEMPLATES = Path(__file__).resolve().parent / "templates"
#: Sections a recipient can choose; the headline and the key figures are always there.
SECTIONS = ("charts", "rumors", "concerns", "open")
SECTION_NAMES_ZH = {"charts": "图表", "rumors": "今日谣言", "concerns": "热点关切", "open": "待处理事项"}
TREND_ARROW = {"上升": "↑", "新出现": "↑", "回落": "↓", "持平": "→", "无变化": "→"}


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def _num(value: float) -> str:
    return f"{value:g}"


def _hours(value: float) -> str:
    """A duration given in hours, as staff say it: 6 分钟, 2 小时 30 分钟, 20 小时, 3 天."""
    minutes = max(1, int(value * 60 + 0.5))
    if minutes < 60:
        return f"{minutes} 分钟"
    if minutes < 10 * 60:
        hours, rest = divmod(minutes, 60)
        return f"{hours} 小时 {rest} 分钟" if rest else f"{hours} 小时"
    if value < 48:
        return f"{int(value + 0.5)} 小时"
    return f"{round(value / 24, 1):g} 天"


def _safe_url(url: str | None) -> str:
    """Only http(s) links go into the mail (a stored 'javascript:' URL must never be clickable)."""
    if not url:
        return ""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return ""
    return url if scheme in ("http", "https") else ""


def environment(template_dir: Path | None = None, *, for_text: bool = False) -> Environment:
    """The Jinja2 environment: the admin's folder first, then ours (also as ``default/``).

    HTML ignores whitespace, so its templates get trim_blocks; the text template keeps every
    newline as written (it strips lines with ``{%-`` itself).
    """
    ours = FileSystemLoader(str(TEMPLATES))
    loaders: list[Any] = []
    if template_dir is not None:
        if not template_dir.is_dir():
            raise DigestConfigError(
                f"日报模板目录不存在：{template_dir}。请创建该目录，"
                "或清空 YUQING_DIGEST_TEMPLATE_DIR 使用默认模板。"
            )
        loaders.append(FileSystemLoader(str(template_dir)))
    loaders += [ours, PrefixLoader({"default": ours})]
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(enabled_extensions=("html", "htm"), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=not for_text,
        lstrip_blocks=not for_text,
        keep_trailing_newline=True,
    )
    env.filters.update(num=_num, hours=_hours, safe_url=_safe_url)
    env.globals.update(severity_zh=SEVERITY_ZH, trend_arrow=TREND_ARROW)
    return env


def normalise_sections(sections: Iterable[str] | None) -> list[str]:
    """Validate a recipient's section list (None: all sections), in the canonical order."""
    if sections is None:
        return list(SECTIONS)
    wanted = [str(s).strip() for s in sections]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        raise DigestConfigError(
            f"未知的日报栏目 {', '.join(unknown)}：可选 {', '.join(SECTIONS)}"
            f"（{'、'.join(SECTION_NAMES_ZH[s] for s in SECTIONS)}）。"
        )
    return [s for s in SECTIONS if s in wanted]


def subject_for(summary: Mapping[str, Any], title: str) -> str:
    day = summary["day_zh"].split("年", 1)[-1]
    if summary["quiet"]:
        return f"{title}｜{day}｜今日无异常"
    bits = [f"预警 {summary['alerts']['total']} 条"]
    if summary["rumors_confirmed"]:
        bits.append(f"确认谣言 {summary['rumors_confirmed']} 条")
    bits.append(f"待处理 {summary['open_count']} 项")
    if summary["overdue_count"]:
        bits.append(f"超时 {summary['overdue_count']} 项")
    return f"{title}｜{day}｜{'，'.join(bits)}"


def render(
    summary: Mapping[str, Any],
    *,
    title: str,
    sections: Iterable[str] | None = None,
    images: Mapping[str, str] | None = None,
    charts_note: str = "",
    console_url: str = "",
    template_dir: Path | None = None,
) -> Rendered:
    """Subject, HTML and text for one recipient list. ``images`` maps chart name -> Content-ID."""
    html_env, text_env = environment(template_dir), environment(template_dir, for_text=True)
    context = {
        "s": summary,
        "title": title,
        "sections": normalise_sections(sections),
        "images": {"spread": "", "categories": ""} | dict(images or {}),
        "charts_note": charts_note,
        "console_url": console_url,
    }
    try:
        html = html_env.get_template("digest.html").render(context)
        text = text_env.get_template("digest.txt").render(context)
    except TemplateNotFound as err:
        raise DigestConfigError(
            f"找不到日报模板 {err.name}：模板目录里需要 digest.html 和 digest.txt。"
        ) from err
    except TemplateSyntaxError as err:
        raise DigestConfigError(
            f"日报模板 {err.filename or err.name} 第 {err.lineno} 行语法错误：{err.message}。请修改模板。"
        ) from err
    except TemplateError as err:
        raise DigestConfigError(f"日报模板渲染失败：{err}。请检查自定义模板里用到的变量。") from err
    return Rendered(subject=subject_for(summary, title), html=html, text=_tidy(text))


def _tidy(text: str) -> str:
    """At most one blank line in a row, no trailing spaces: templates need not be fussy."""
    lines = [line.rstrip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip() + "\n"
