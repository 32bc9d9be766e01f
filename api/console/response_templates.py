"""The console's 回应模板 page: the wording response drafts start from, per kind of matter and
category. Everybody signed in reads it; analysts and admins reword a template or reset it to the
shipped wording (alerts.drafts holds the service; the API has the same under /response-templates).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from alerts import drafts
from api.accounts import role_rank
from api.console.render import render, taxonomy_categories
from api.console.web import PageUser, back, check_csrf, committing, need_role, note_drift
from api.deps import SessionDep
from core.settings import get_settings

router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf), Depends(note_drift)])

PAGE = "/response-templates"
KindField = Annotated[str, Form(max_length=20)]
CategoryField = Annotated[str, Form(max_length=50)]


def _anchor(kind: str, category: str) -> str:
    """The page anchor of one template (categories hold "/" and Chinese: by position instead)."""
    cats = ["", *taxonomy_categories()]
    return f"#t-{kind}-{cats.index(category) if category in cats else 0}"


@router.get(PAGE)
def templates_page(request: Request, user: PageUser, session: SessionDep) -> Response:
    cats = taxonomy_categories()
    rows = drafts.list_templates(session, cats)
    for row in rows:
        row["anchor"] = _anchor(row["kind"], row["category"])[1:]
    return render(request, "response_templates.html", {
        "nav": "templates", "rows": rows, "kinds": drafts.KINDS, "kind_zh": drafts.KIND_ZH,
        "variables": drafts.VARIABLES, "office": get_settings().office_public_name,
        "can_edit": role_rank(user.role) >= role_rank("analyst"),
    })


@router.post(f"{PAGE}/save")
def save(user: PageUser, session: SessionDep, kind: KindField = "", category: CategoryField = "",
         body: Annotated[str, Form(max_length=drafts.MAX_BODY + 100)] = "") -> Response:
    need_role(user, "analyst", "修改回应模板")
    where = PAGE + _anchor(kind, category)
    with committing(session, where):
        drafts.save_template(session, kind, category, body, categories=taxonomy_categories(), actor=user)
    label = f"{drafts.KIND_ZH.get(kind, kind)}（{category or '所有类别'}）"
    return back(where, msg=f"已保存回应模板：{label}。之后生成的建议稿按新模板写")


@router.post(f"{PAGE}/reset")
def reset(user: PageUser, session: SessionDep, kind: KindField = "", category: CategoryField = "") -> Response:
    need_role(user, "analyst", "修改回应模板")
    where = PAGE + _anchor(kind, category)
    with committing(session, where):
        drafts.reset_template(session, kind, category)
    return back(where, msg="已恢复系统自带的写法")
