"""Replay a scripted day of 青禾镇 (crawler/demo/day.yaml) in compressed time, for `yuqing run --demo`.

Chat messages go in through the same write path as a bot's push (crawler.chats.push: core.ingest),
articles appear on the demo site and are crawled like any other page; the rest of the product runs
on its own schedule and does what it would on a real day: folds the spreading rumor into one alert,
matches the refutation, sees the price concern grow, and goes quiet.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.errors import InvalidInput

log = logging.getLogger(__name__)

DAY_SCRIPT = Path(__file__).resolve().parent / "day.yaml"


@dataclass(frozen=True)
class Event:
    at: float  # demo minutes from the start
    chat: str | None = None  # group key in the script's groups
    sender: str | None = None
    text: str | None = None
    news: dict[str, Any] | None = None


@dataclass(frozen=True)
class Script:
    groups: dict[str, dict[str, str]]
    events: list[Event]

    @property
    def minutes(self) -> float:
        return max((e.at for e in self.events), default=0.0)


def load_script(path: Path = DAY_SCRIPT) -> Script:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    groups = data.get("groups") or {}
    events = []
    for i, raw in enumerate(data.get("events") or []):
        event = Event(at=float(raw["at"]), chat=raw.get("chat"), sender=raw.get("sender"), text=raw.get("text"),
                      news=raw.get("news"))
        if event.chat is not None and (event.chat not in groups or not event.text):
            raise InvalidInput(f"演示脚本 {path} 第 {i + 1} 条：群“{event.chat}”未在 groups 中定义，或缺少 text")
        if event.chat is None and not (event.news and event.news.get("title")):
            raise InvalidInput(f"演示脚本 {path} 第 {i + 1} 条：既不是 chat 也不是带 title 的 news")
        events.append(event)
    return Script(groups=groups, events=sorted(events, key=lambda e: e.at))


def push_chat(event: Event, script: Script, when: dt.datetime, number: int) -> None:
    """One message into its group through the bot-push write path (idempotent by message id)."""
    from core.db import session_scope
    from crawler.chats.push import MessageBatch, store_message_batch

    assert event.chat is not None
    group = script.groups[event.chat]
    batch = MessageBatch.model_validate({
        "group": {"platform": "qq", "external_id": group["external_id"], "name": group["name"]},
        "messages": [{"id": f"demo-{when:%Y%m%d}-{number}", "time": when.isoformat(), "sender": event.sender,
                      "text": event.text}],
    })
    with session_scope() as session:
        store_message_batch(session, batch)


class Replay:
    """Plays the script once; ``speed`` 1 = the script's minutes in real minutes."""

    def __init__(self, script: Script, *, speed: float = 1.0, post_news: Callable[[dict[str, Any]], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        if speed <= 0:
            raise InvalidInput("--demo-speed 必须大于 0（1 为 15 分钟演完一天，10 为 1.5 分钟）")
        self.script, self.speed, self.post_news = script, speed, post_news
        self.sleep, self.clock = sleep, clock
        self.played = 0
        self.stopped = threading.Event()

    def run(self, *, until_minute: float | None = None) -> int:
        """Play the events (up to ``until_minute`` of demo time); returns how many were played."""
        start = self.clock() - self.played_minutes() * 60 / self.speed
        for number, event in enumerate(self.script.events):
            if number < self.played:
                continue
            if until_minute is not None and event.at > until_minute:
                break
            wait = start + event.at * 60 / self.speed - self.clock()
            if wait > 0:
                self.sleep(wait)
            if self.stopped.is_set():
                break
            self._play(event, number)
            self.played = number + 1
        return self.played

    def played_minutes(self) -> float:
        return self.script.events[self.played - 1].at if self.played else 0.0

    def _play(self, event: Event, number: int) -> None:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        try:
            if event.chat is not None:
                push_chat(event, self.script, now, number)
            elif event.news is not None and self.post_news is not None:
                self.post_news(event.news)
        except Exception:  # the demo goes on: one failed message must not stop the day
            log.exception("演示脚本第 %d 条未能写入", number + 1)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="demo-day", daemon=True)
        thread.start()
        return thread
