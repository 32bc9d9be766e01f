"""Liveness and database check: the only route without a token."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

router = APIRouter(tags=["health"])


@router.get("/health", summary="服务与数据库状态")
def health(request: Request) -> JSONResponse:
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as err:
        return JSONResponse({"status": "error", "database": "unreachable", "detail": type(err).__name__},
                            status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})
