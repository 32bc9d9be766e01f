"""Templates and the filters they use: Chinese labels, local times, escaped highlighting.

Autoescape is on for every template. Post text is untrusted: it only ever reaches a page
through autoescape or through :func:`highlight`, which escapes first and then wraps terms.
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from alerts import notify, queries, states
from alerts.publish import ACTION_ZH as PUBLISH_ACTION_ZH
from api.accounts import ROLE_NAMES_ZH, role_rank
from api.console import charts
from core.settings import get_settings

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

SEVERITY_ZH = {"urgent": "紧急", "high": "高", "medium": "中", "low": "低"}
SEVERITIES = ("urgent", "high", "medium", "low")
STATUS_ZH = dict(states.STATE_ZH)  # the alert service's own names for its states
STATUSES = tuple(STATUS_ZH)
#: What still needs someone: the queue shows these by default.
OPEN_STATUSES = ("new", "acknowledged", "confirmed_rumor", "confirmed_concern")
KIND_ZH = dict(notify.KIND_ZH)  # the alert service's words, as in notifications
ACTION_ZH = {"created": "创建预警", "rising": "正在扩散", "realert": "重新预警", "status": "状态变更", "assigned": "指派",
             "comment": "评论", "responded": "记录回应", "escalated": "升级提醒", "reopened": "重新打开",
             "severity": "级别变化", "merged": "合并", "split": "拆出帖子", "moved": "移动帖子"} | PUBLISH_ACTION_ZH
SOURCE_KIND_ZH = {"feed": "RSS 订阅", "html": "网页", "json": "接口", "custom": "定制", "chat_export": "群聊导出",
                  "bot": "群机器人", "api": "接口推送"}
#: Sources that are never crawled: they name how messages arrive (pushed by a bot or script, imported).
RECEIVED_KINDS = {"bot": "接口推送", "api": "接口推送", "chat_export": "导入"}
PLATFORM_ZH = {"qq": "QQ 群", "wechat": "微信群", "telegram": "Telegram", "web": "网页版块", "other": "其他"}
RUN_STATUS_ZH = {"running": "运行中", "ok": "正常", "partial": "部分失败", "failed": "失败", "interrupted": "已中断"}
MODEL_STATUS_ZH = {"candidate": "候选", "active": "在用", "retired": "已停用", "rolled_back": "已回滚"}
LABEL_ORIGIN_ZH = {"review": "复核结论", "manual": "人工标注", "import": "导入"}
METRIC_ZH = {"macro_f1": "宏平均 F1", "f1": "F1", "auc": "AUC", "accuracy": "准确率", "precision": "精确率",
             "recall": "召回率", "brier": "Brier 分数", "ece": "校准误差", "rumor_precision": "谣言精确率",
             "rumor_recall": "谣言召回率", "rumor_f1": "谣言 F1", "n": "评估条数"}
#: The headline metrics of a model version, in this order (the rest stay in its model card).
MAIN_METRICS = ("macro_f1", "rumor_f1", "rumor_precision", "rumor_recall", "f1", "auc", "accuracy", "precision",
                "recall", "ece")
DIGEST_STATUS_ZH = {"built": "已生成", "sent": "已发送", "failed": "发送失败"}


#: No inline script anywhere, so the policy can forbid it: an injected <script> would not run
#: even if escaping failed. Inline styles are allowed for the digest's e-mail HTML (sandboxed).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def tz() -> ZoneInfo:
    return ZoneInfo(get_settings().timezone)


def local_time(value: dt.datetime | None, fmt: str = "auto") -> str:
    """A time in the office's zone: ``11-28 14:05`` this year, with the year otherwise."""
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    loc = value.astimezone(tz())
    if fmt != "auto":
        return loc.strftime(fmt)
    if loc.year == dt.datetime.now(tz()).year:
        return loc.strftime("%m-%d %H:%M")
    return loc.strftime("%Y-%m-%d %H:%M")


def ago(value: dt.datetime | None, now: dt.datetime | None = None) -> str:
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    seconds = ((now or dt.datetime.now(dt.UTC)) - value).total_seconds()
    if seconds < 60:
        return "刚刚"
    if seconds < 3600:
        return f"{int(seconds // 60)} 分钟前"
    if seconds < 86400:
        return f"{int(seconds // 3600)} 小时前"
    if seconds < 86400 * 30:
        return f"{int(seconds // 86400)} 天前"
    return local_time(value, "%Y-%m-%d")


def highlight(text: str | None, terms: Iterable[str]) -> Markup:
    """``text`` escaped, every occurrence of ``terms`` wrapped in ``<mark>`` (see
    `alerts.queries.highlight`: it splits the raw text first and escapes each piece, so a term
    never matches inside an entity that escaping produced)."""
    return Markup(queries.highlight(text or "", terms)[0])


def driving_terms(explanation: Sequence[Any] | None, limit: int = 8) -> list[str]:
    """The terms that raised the rumor score most (positive weights), from post_scores.explanation."""
    terms: list[tuple[float, str]] = []
    for item in explanation or ():
        try:
            term, weight = item[0], float(item[1])
        except (TypeError, ValueError, IndexError, KeyError):
            continue
        if isinstance(term, str) and term.strip() and weight > 0:
            terms.append((weight, term.strip()))
    terms.sort(reverse=True)
    return [t for _, t in terms[:limit]]


#: Where the shipped model's card keeps its own recipe's figure (5-fold CV on the three research sets).
SHIPPED_CV = "cv5_all_three"


def model_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """A version's headline numbers: those on the fixed evaluation set when it was trained here
    (``metrics["evalset"]``), else the shipped model's cross-validation (`SHIPPED_CV`), else the
    flat numbers an older model recorded."""
    metrics = metrics or {}
    source: Mapping[str, Any] = metrics
    for key in ("evalset", SHIPPED_CV):
        part = metrics.get(key)
        if isinstance(part, Mapping) and part:
            source = part
            break
    return {k: float(source[k]) for k in MAIN_METRICS
            if isinstance(source.get(k), int | float) and not isinstance(source.get(k), bool)}


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def clip(text: str | None, n: int = 120) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def url_with(request: Request, **changes: Any) -> str:
    """The current page's URL with some query parameters changed (None removes one)."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = str(value)
    query = urlencode(params)
    return request.url.path + ("?" + query if query else "")


def safe_href(url: str | None) -> str | None:
    """Only http(s) links become clickable (a post's url could be ``javascript:``)."""
    if url and re.match(r"^https?://", url.strip(), re.IGNORECASE):
        return url.strip()
    return None


def taxonomy_categories() -> list[str]:
    """The categories of the editable taxonomy (nlp/concerns/taxonomy.yaml): one list for
    alerts, hot concerns and the debunk library."""
    from nlp.concerns.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    return list(dict.fromkeys([*taxonomy.categories, taxonomy.default]))  # the default may be listed already


def recipients_zh(recipients: Sequence[Any] | None, limit: int = 3) -> str:
    """A recipient list by its people: "王书记、张镇长、李主任 等 5 人" (names, else addresses)."""
    names = []
    for r in recipients or ():
        if isinstance(r, Mapping):
            names.append(str(r.get("name") or r.get("email") or "?"))
        else:
            names.append(str(r))
    if not names:
        return "（无）"
    shown = "、".join(names[:limit])
    return f"{shown} 等 {len(names)} 人" if len(names) > limit else shown


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every template, whatever its extension
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(
        local=local_time, ago=ago, percent=percent, clip=clip, safe_href=safe_href,
        severity_zh=lambda s: SEVERITY_ZH.get(s, s), status_zh=lambda s: STATUS_ZH.get(s, s),
        kind_zh=lambda s: KIND_ZH.get(s, s), action_zh=lambda s: ACTION_ZH.get(s, s),
        role_zh=lambda s: ROLE_NAMES_ZH.get(s, s), source_kind_zh=lambda s: SOURCE_KIND_ZH.get(s, s),
        platform_zh=lambda s: PLATFORM_ZH.get(s, s), run_status_zh=lambda s: RUN_STATUS_ZH.get(s, s),
        model_status_zh=lambda s: MODEL_STATUS_ZH.get(s, s), model_metrics=model_metrics, label_origin_zh=lambda s: LABEL_ORIGIN_ZH.get(s, s),
        digest_status_zh=lambda s: DIGEST_STATUS_ZH.get(s, s), metric_zh=lambda s: METRIC_ZH.get(s, s),
        recipients_zh=recipients_zh,
    )
    env.globals.update(
        SEVERITIES=SEVERITIES, SEVERITY_ZH=SEVERITY_ZH, STATUSES=STATUSES, STATUS_ZH=STATUS_ZH,
        OPEN_STATUSES=OPEN_STATUSES, KIND_ZH=KIND_ZH, highlight=highlight, role_rank=role_rank,
        sparkline=charts.sparkline, static_version=_static_version(), RECEIVED_KINDS=RECEIVED_KINDS,
        taxonomy_categories=taxonomy_categories,
    )
    return env


def _static_version() -> str:
    """Changes when a static file changes, so browsers may cache assets for a long time."""
    stamp = max((p.stat().st_mtime_ns for p in STATIC.iterdir() if p.is_file()), default=0)
    return format(stamp // 1_000_000 % 10**9, "x")


def render(request: Request, template: str, context: Mapping[str, Any], *, status: int = 200,
           headers: Mapping[str, str] | None = None) -> Response:
    """Render a page; gzip it when the browser accepts that (old PCs often sit on slow links)."""
    state = request.state
    ctx = {
        "request": request,
        "user": getattr(state, "console_user", None),
        "csrf_token": getattr(state, "csrf_token", "") or "",
        "drift": getattr(state, "drift", None),
        "notify_health": getattr(state, "notify_health", None),
        "flash": request.query_params.get("msg"),
        "flash_error": request.query_params.get("err"),
        "url_with": lambda **kw: url_with(request, **kw),
        "nav": "",
    }
    ctx.update(context)
    html = environment().get_template(template).render(ctx)
    body = html.encode("utf-8")
    out_headers = dict(headers or {})
    out_headers.setdefault("Cache-Control", "no-store")
    out_headers.update(SECURITY_HEADERS)
    out_headers["Vary"] = "Accept-Encoding, Cookie"
    if len(body) > 1400 and "gzip" in request.headers.get("accept-encoding", ""):
        body = gzip.compress(body, compresslevel=5)
        out_headers["Content-Encoding"] = "gzip"
    return HTMLResponse(body, status_code=status, headers=out_headers)
