"""The FastAPI application factory. Routers are mounted here, nowhere else."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine

from api.console import install as install_console
from api.docs import install_private_docs
from api.guards import RequestGuard
from api.problems import install_problem_handlers
from api.routes import (
    alerts,
    debunks,
    digests,
    groups,
    health,
    images,
    incidents,
    ingest,
    models,
    posts,
    publications,
    stats,
    stories,
    tip_page,
    tips,
    topics,
    users,
    wechat,
)
from api.routes import response_templates as response_templates_routes
from api.routes import sources as sources_routes
from core.db import get_engine, session_factory
from core.settings import get_settings
from crawler.chats.push import replay_spill

API_PREFIX = "/api/v1"
log = logging.getLogger(__name__)


def _replay_loop(app: FastAPI, stop: threading.Event) -> None:
    """Replay pushes spilled during a database outage, every YUQING_SPILL_REPLAY_SECONDS."""
    interval = get_settings().spill_replay_seconds
    while not stop.wait(interval):
        try:
            replay_spill(app.state.sessionmaker)
        except Exception:  # the loop must outlive any one failure; the next round tries again
            log.exception("push spill replay failed; trying again in %.0f s", interval)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    stop = threading.Event()
    worker = threading.Thread(target=_replay_loop, args=(app, stop), name="push-spill-replay", daemon=True)
    worker.start()
    from alerts.tips import warm_matcher  # tips answer within WeChat's 5 s from the first one on

    threading.Thread(target=warm_matcher, args=(app.state.engine,), name="tip-matcher-warm", daemon=True).start()
    try:
        yield
    finally:
        stop.set()
        worker.join(timeout=5)


def create_app(engine: Engine | None = None) -> FastAPI:
    """Build the app; ``engine`` defaults to the configured database (tests pass their own)."""
    # FastAPIOffline: FastAPI whose /docs loads Swagger UI from the package instead of a CDN, so
    # the API documentation works on an office network without internet.
    public_docs = get_settings().public_docs
    app = FastAPIOffline(
        title="舆情哨兵 yuqing API",
        version="0.1.0",
        description="谣言与热点关切监测：预警、审核流程、辟谣库、话题、日报、模型。除 /health 外均需 Bearer 令牌。",
        docs_url="/docs" if public_docs else None,
        redoc_url=None,
        lifespan=_lifespan,
    )
    if not public_docs:
        install_private_docs(app)
    app.state.engine = engine or get_engine()
    app.state.sessionmaker = session_factory(app.state.engine)
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(users.router, prefix=API_PREFIX)
    app.include_router(sources_routes.router, prefix=API_PREFIX)
    app.include_router(alerts.router, prefix=API_PREFIX)
    app.include_router(stories.router, prefix=API_PREFIX)
    app.include_router(posts.router, prefix=API_PREFIX)
    app.include_router(stats.router, prefix=API_PREFIX)
    app.include_router(digests.router, prefix=API_PREFIX)
    app.include_router(models.router, prefix=API_PREFIX)
    app.include_router(ingest.router, prefix=API_PREFIX)
    app.include_router(groups.router, prefix=API_PREFIX)
    app.include_router(debunks.router, prefix=API_PREFIX)
    app.include_router(topics.router, prefix=API_PREFIX)
    app.include_router(incidents.router, prefix=API_PREFIX)
    app.include_router(images.router, prefix=API_PREFIX)
    app.include_router(publications.router, prefix=API_PREFIX)
    app.include_router(tips.router, prefix=API_PREFIX)
    # Public on purpose (no token): the resident tip page and the signed 公众号 callback.
    app.include_router(tip_page.router)
    app.include_router(wechat.router)
    app.include_router(response_templates_routes.router, prefix=API_PREFIX)
    install_console(app)  # the review console at /, last: its pages must not shadow the API
    # outermost of our middleware: sees the raw request first and any error last
    app.add_middleware(RequestGuard, max_bytes=int(get_settings().max_request_mb * 1024 * 1024))
    return app
