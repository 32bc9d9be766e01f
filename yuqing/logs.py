"""Logging set-up for our entry points (library code only calls logging.getLogger)."""

from __future__ import annotations

import logging


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # jieba prints its dictionary loading at DEBUG/INFO on every start.
    logging.getLogger("jieba").setLevel(logging.WARNING)
    # APScheduler logs every job it adds ("Adding job tentatively ...", 14 lines at start) at INFO.
    for noisy in ("scrapy", "apscheduler", "httpx", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
