"""Every list endpoint answers ``{"items": [...], "total": N, "page": P, "page_size": S}``."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.orm import Session

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int


class PageParams(BaseModel):
    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


def page_params(
    page: Annotated[int, Query(ge=1, le=1_000_000, description="第几页，从 1 开始")] = 1,
    page_size: Annotated[int, Query(ge=1, le=200, description="每页条数")] = 20,
) -> PageParams:
    return PageParams(page=page, page_size=page_size)


PageDep = Annotated[PageParams, Depends(page_params)]


def fetch_page(session: Session, rows: Select[*tuple[Any, ...]], count: Select[Any],
               page: PageParams) -> dict[str, Any]:
    """One page of ``rows`` (already filtered and ordered) with the ``count`` of all of them."""
    total = session.scalar(count) or 0
    items = session.execute(rows.offset(page.offset).limit(page.page_size)).all()
    return {"items": [r._asdict() for r in items], "total": total, "page": page.page,
            "page_size": page.page_size}
