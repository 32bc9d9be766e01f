"""Small inline SVG charts (no JS library): a per-hour bar chart and a sparkline.

Only numbers and escaped labels go into the markup, so the output is safe to embed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

HOUR = dt.timedelta(hours=1)


def parse_hour(key: str) -> dt.datetime | None:
    """``"2026-11-28T14"`` (UTC hour, as nlp stores it) -> aware datetime; None if unreadable."""
    try:
        value = dt.datetime.strptime(key, "%Y-%m-%dT%H") if len(key) == 13 else dt.datetime.fromisoformat(key)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def hourly_series(counts: Mapping[str, Any], *, end: dt.datetime | None = None,
                  max_hours: int = 168, min_hours: int = 1) -> list[tuple[dt.datetime, int]]:
    """A gap-free per-hour series from the first to the last hour (or ``end``).

    At most ``max_hours`` (the latest ones); at least ``min_hours`` (padded with earlier zeros, so
    a story of two hours still reads as a burst against a quiet background).
    """
    points: dict[dt.datetime, int] = {}
    for key, value in (counts or {}).items():
        hour = parse_hour(str(key))
        if hour is None:
            continue
        try:
            points[hour] = points.get(hour, 0) + int(value)
        except (TypeError, ValueError):
            continue
    if not points:
        return []
    first, last = min(points), max(points)
    if end is not None:
        last = max(last, end.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0))
    first = max(first, last - (max_hours - 1) * HOUR)
    first = min(first, last - (min_hours - 1) * HOUR)
    out = []
    hour = first
    while hour <= last:
        out.append((hour, points.get(hour, 0)))
        hour += HOUR
    return out


def bar_chart(series: Sequence[tuple[dt.datetime, int]], tz: ZoneInfo, *,
              marker: dt.datetime | None = None, marker_label: str = "回应") -> Markup:
    """Bars per hour; labels are HTML around the SVG so they stay legible at any width."""
    if not series:
        return Markup('<p class="muted">暂无按小时的传播数据。</p>')
    peak = max(v for _, v in series) or 1
    n = len(series)
    bars = []
    for i, (hour, value) in enumerate(series):
        h = 100 * value / peak
        title = f"{hour.astimezone(tz):%m-%d %H}时：{value} 条"
        bars.append(f'<rect x="{i * 10 + 1}" y="{100 - h:.2f}" width="8" height="{h:.2f}">'
                    f"<title>{escape(title)}</title></rect>")
    mid = series[n // 2][0].astimezone(tz)
    first, last = series[0][0].astimezone(tz), series[-1][0].astimezone(tz)
    marker_html = ""
    if marker is not None:
        offset = (marker.astimezone(dt.UTC) - series[0][0]) / HOUR
        if 0 <= offset <= n:
            left = 100 * offset / n
            # the label reads leftwards from a marker in the right half, so it stays on the chart
            side = " right" if left > 50 else ""
            marker_html = (f'<span class="marker{side}" style="left:{left:.2f}%">'
                           f"<b>{escape(marker_label)} {marker.astimezone(tz):%H:%M}</b></span>")
    return Markup(
        f'<figure class="chart" role="img" aria-label="每小时帖子数，共 {n} 小时，峰值 {peak} 条">'
        f'<div class="plot"><span class="ymax">{peak}</span>'
        f'<svg viewBox="0 0 {n * 10} 100" preserveAspectRatio="none" aria-hidden="true">{"".join(bars)}</svg>'
        f"{marker_html}</div>"
        f'<figcaption><span>{first:%m-%d %H}时</span><span>{mid:%m-%d %H}时</span>'
        f"<span>{last:%m-%d %H}时</span></figcaption></figure>"
    )


def sparkline(values: Sequence[int], *, width: int = 120, height: int = 28) -> Markup:
    """A tiny trend line; the last point is drawn as a dot."""
    if not values:
        return Markup('<svg class="spark" viewBox="0 0 1 1"></svg>')
    peak = max(values) or 1
    n = len(values)
    step = width / max(n - 1, 1)
    pts = [(i * step, height - 2 - (height - 4) * v / peak) for i, v in enumerate(values)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
    lx, ly = pts[-1]
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="近 {n} 小时走势，峰值 {peak}"><polyline points="{path}"/>'
        f'<circle cx="{lx:.1f}" cy="{ly:.1f}" r="2.5"/></svg>'
    )


def last_hours(counts: Mapping[str, Any], hours: int, now: dt.datetime) -> list[int]:
    """Counts for each of the last ``hours`` hours up to ``now`` (zeros where nothing happened)."""
    end = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    series = dict(hourly_series(counts, end=end, max_hours=hours))
    return [series.get(end - (hours - 1 - i) * HOUR, 0) for i in range(hours)]
