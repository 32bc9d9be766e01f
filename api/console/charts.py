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
        if len(key) == 13:
            value = dt.datetime.strptime(key, "%Y-%m-%dT%H")
        else:
            value = dt.datetime.fromisoformat(key)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def hourly_series(counts: Mapping[str, Any], *, end: dt.datetime | None = None,
                  max_hours: int = 168) -> list[tuple[dt.datetime, int]]:
    """A gap-free per-hour series from the first to the last hour (or ``end``), at most ``max_hours``."""
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
    out = []
    hour = first
    while hour <= last:
        out.append((hour, points.get(hour, 0)))
        hour += HOUR
    return out


def bar_chart(series: Sequence[tuple[dt.datetime, int]], tz: ZoneInfo, *,
              marker: dt.datetime | None = None, marker_label: str = "回应",
              width: int = 640, height: int = 160) -> Markup:
    """Bars per hour with the peak and the time range labelled; an optional vertical marker."""
    if not series:
        return Markup('<p class="muted">暂无按小时的传播数据。</p>')
    pad_l, pad_r, pad_t, pad_b = 28, 8, 14, 22
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    peak = max(v for _, v in series) or 1
    step = plot_w / len(series)
    bar_w = max(step - 1, 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="每小时帖子数，峰值 {peak}" preserveAspectRatio="none">',
        f'<line class="axis" x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - pad_r}" y2="{pad_t + plot_h}"/>',
        f'<text class="lbl" x="{pad_l - 4}" y="{pad_t + 4}" text-anchor="end">{peak}</text>',
        f'<text class="lbl" x="{pad_l - 4}" y="{pad_t + plot_h}" text-anchor="end">0</text>',
    ]
    for i, (hour, value) in enumerate(series):
        h = plot_h * value / peak
        x = pad_l + i * step
        title = f"{hour.astimezone(tz):%m-%d %H}时：{value} 条"
        parts.append(f'<rect x="{x:.1f}" y="{pad_t + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}">'
                     f"<title>{escape(title)}</title></rect>")
    first, last = series[0][0].astimezone(tz), series[-1][0].astimezone(tz)
    parts.append(f'<text class="lbl" x="{pad_l}" y="{height - 6}">{first:%m-%d %H}时</text>')
    parts.append(f'<text class="lbl" x="{width - pad_r}" y="{height - 6}" text-anchor="end">{last:%m-%d %H}时</text>')
    if marker is not None:
        start = series[0][0]
        offset = (marker.astimezone(dt.UTC) - start) / HOUR
        if 0 <= offset <= len(series):
            x = pad_l + offset * step
            parts.append(f'<line class="marker" x1="{x:.1f}" y1="{pad_t - 4}" x2="{x:.1f}" y2="{pad_t + plot_h}"/>')
            parts.append(f'<text class="lbl marker-lbl" x="{x + 3:.1f}" y="{pad_t + 4}">{escape(marker_label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


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
