"""The FastAPI application factory. Routers are mounted here, nowhere else."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine

from api.console import install as install_console
from api.problems import install_problem_handlers
from api.routes import (
    alerts,
    debunks,
    digests,
    groups,
    health,
    images,
    ingest,
    models,
    posts,
    stats,
    stories,
    topics,
    users,
)
from api.routes import sources as sources_routes
from core.db import get_engine, session_factory

API_PREFIX = "/api/v1"


def create_app(engine: Engine | None = None) -> FastAPI:
    """Build the app; ``engine`` defaults to the configured database (tests pass their own)."""
    # FastAPIOffline: FastAPI whose /docs loads Swagger UI from the package instead of a CDN, so
    # the API documentation works on an office network without internet.
    app = FastAPIOffline(
        title="舆情哨兵 yuqing API",
        version="0.1.0",
        description="谣言与热点关切监测：预警、审核流程、辟谣库、话题、日报、模型。除 /health 外均需 Bearer 令牌。",
        docs_url="/docs",
        redoc_url=None,
    )
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
    app.include_router(images.router, prefix=API_PREFIX)
    install_console(app)  # the review console at /, last: its pages must not shadow the API
    return app
