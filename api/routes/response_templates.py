"""Response draft templates: read them (viewer), reword or reset one (analyst).

One template per kind of matter (rumor | concern | notice) and category of the editable taxonomy;
category "" serves every category of its kind. See alerts.drafts for the variables and defaults.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from alerts import drafts
from api.deps import AnalystUser, SessionDep, ViewerUser
from core.errors import InvalidInput
from core.settings import get_settings
from nlp.concerns.taxonomy import load_taxonomy

router = APIRouter(prefix="/response-templates", tags=["response-templates"])

Kind = Annotated[str, Field(pattern="^(rumor|concern|notice)$", description="rumor / concern / notice")]
Category = Annotated[str, Field(max_length=50, description="分类表中的类别；空字符串表示该类型的所有类别")]


class TemplatePublic(BaseModel):
    kind: str
    kind_zh: str
    category: str
    body: str = Field(description="模板正文：{变量} 由系统填写，【…】由工作人员发布前填写")
    edited: bool = Field(description="为真时是本单位修改过的模板")
    inherited: bool = Field(description="为真时沿用该类型修改过的通用模板")
    general: bool = Field(description="为真时该类别没有专门写法，与通用模板相同")
    default: str = Field(description="系统自带的写法")
    updated_at: dt.datetime | None
    updated_by: str | None


class TemplateList(BaseModel):
    office_public_name: str
    variables: dict[str, str]
    items: list[TemplatePublic]


class TemplateUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Kind
    category: Category = ""
    body: Annotated[str, Field(min_length=1, max_length=drafts.MAX_BODY)]


def categories() -> list[str]:
    """The categories of the editable taxonomy (one list for alerts, concerns and debunks)."""
    taxonomy = load_taxonomy()
    return list(dict.fromkeys([*taxonomy.categories, taxonomy.default]))


def _listing(session: Any) -> TemplateList:
    return TemplateList(
        office_public_name=get_settings().office_public_name,
        variables=drafts.VARIABLES,
        items=[TemplatePublic(**row) for row in drafts.list_templates(session, categories())],
    )


@router.get("", response_model=TemplateList, summary="回应草稿模板（按类型和类别）")
def list_templates(_: ViewerUser, session: SessionDep) -> TemplateList:
    return _listing(session)


@router.put("", response_model=TemplatePublic, summary="修改一个回应模板（分析员）")
def save_template(body: TemplateUpdate, user: AnalystUser, session: SessionDep) -> TemplatePublic:
    drafts.save_template(session, body.kind, body.category, body.body, categories=categories(), actor=user)
    return _one(session, body.kind, body.category)


@router.delete("", response_model=TemplatePublic, summary="恢复系统自带的回应模板（分析员）")
def reset_template(
    user: AnalystUser,
    session: SessionDep,
    kind: Annotated[str, Query(pattern="^(rumor|concern|notice)$")],
    category: Annotated[str, Query(max_length=50)] = "",
) -> TemplatePublic:
    del user
    drafts.reset_template(session, kind, category)
    return _one(session, kind, category)


def _one(session: Any, kind: str, category: str) -> TemplatePublic:
    for row in drafts.list_templates(session, categories()):
        if row["kind"] == kind and row["category"] == category:
            return TemplatePublic(**row)
    raise InvalidInput(f"类别“{category}”不在分类表里：可用 {'、'.join(categories())}，或留空表示所有类别")
