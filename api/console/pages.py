"""The console's pages: server-rendered, in Simplified Chinese. Routes stay thin: they read
through :mod:`api.console.queries` and act through the owning stage's service functions."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from api import accounts
from api.console import charts, queries
from api.console.render import OPEN_STATUSES, SEVERITIES, STATUSES, driving_terms, render, tz
from api.console.session import LOGIN_COOKIE, SESSION_COOKIE, SESSION_HOURS, dump_session, new_csrf_token
from api.console.web import (
    ConsolePageError,
    PageUser,
    check_csrf,
    cookie_secure,
    need_role,
    new_login_token,
    safe_next,
    throttle,
)
from api.deps import SessionDep
from core.tables import Digest, utcnow

# Pages are not part of the JSON API: keep them out of the OpenAPI schema.
router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf)])
auth_router = APIRouter(include_in_schema=False)


# --------------------------------------------------------------------------- login / logout


@auth_router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    if getattr(request.state, "user_id", None) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_form(request, next=safe_next(next))


def _login_form(request: Request, *, next: str, error: str | None = None, username: str = "",
                status: int = 200) -> Response:
    token = new_login_token()
    response = render(request, "login.html", {"next": next, "error": error, "username": username,
                                              "login_token": token}, status=status)
    response.set_cookie(LOGIN_COOKIE, token, max_age=3600, httponly=True, samesite="lax",
                        secure=cookie_secure(request), path="/login")
    return response


@auth_router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    login_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    target = safe_next(next)
    from api.console.session import tokens_match

    if not tokens_match(getattr(request.state, "login_cookie", None), login_token):
        return _login_form(request, next=target, username=username, status=400,
                           error="登录页面已过期（或浏览器禁用了 Cookie），请重新输入后登录。")
    username = username.strip()
    key = (request.client.host if request.client else "-", username.lower())
    wait = throttle.wait_seconds(key)
    if wait:
        return _login_form(request, next=target, username=username, status=429,
                           error=f"登录失败次数过多，请 {wait} 秒后再试。")
    user = accounts.authenticate_password(session, username, password) if username and password else None
    if user is None:
        throttle.failed(key)
        return _login_form(request, next=target, username=username, status=401,
                           error="用户名或密码错误。忘记密码请联系管理员（yuqing users passwd 用户名）。")
    throttle.succeeded(key)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, dump_session(user.id, new_csrf_token()), max_age=SESSION_HOURS * 3600,
                        httponly=True, samesite="lax", secure=cookie_secure(request), path="/")
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    response = RedirectResponse("/login?msg=" + "已退出登录", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=cookie_secure(request))
    return response


# --------------------------------------------------------------------------- the queue


def _queue_filter(
    status: str = "open", severity: str = "", category: str = "", assignee: str = "", mine: str = "",
    q: str = "", sort: str = "severity", page: int = 1,
) -> queries.QueueFilter:
    return queries.QueueFilter(
        status=status if status in (*STATUSES, "open", "all") else "open",
        severity=severity if severity in SEVERITIES else None,
        category=category[:50] or None,
        assignee=assignee if assignee == "none" or assignee.isdigit() else None,
        mine=mine in ("1", "on", "true"),
        q=q.strip()[:100] or None,
        sort=sort if sort in ("severity", "recent") else "severity",
        page=max(1, min(page, 100_000)),
    )


QueueFilterDep = Annotated[queries.QueueFilter, Depends(_queue_filter)]


@router.get("/")
def queue_page(request: Request, user: PageUser, session: SessionDep, f: QueueFilterDep) -> Response:
    result = queries.queue(session, f, user.id)
    return render(request, "queue.html", {
        "nav": "queue", "f": f, "result": result, "categories": queries.alert_categories(session),
        "assignees": queries.staff_users(session),
        "status_tabs": ["open", *OPEN_STATUSES, "dismissed", "responded", "closed", "all"],
        "can_act": accounts.role_rank(user.role) >= accounts.role_rank("staff"),
    })


@router.get("/queue/news")
def queue_news(user: PageUser, session: SessionDep, f: QueueFilterDep,
               after: Annotated[int, Query(ge=0)] = 0, since: Annotated[float, Query(ge=0)] = 0) -> JSONResponse:
    """Light polling for the "N 条新预警" notice: counts only, the page is not replaced."""
    since_dt = dt.datetime.fromtimestamp(since, dt.UTC) if since else utcnow()
    news = queries.queue_news(session, f, user.id, after, since_dt)
    return JSONResponse(news, headers={"Cache-Control": "no-store"})


# --------------------------------------------------------------------------- one alert


def score_sentences(parts: dict[str, Any], story: Any, debunks: list[dict[str, Any]]) -> list[str]:
    """The risk score's parts in plain words: "在 5 个群出现", "与已辟谣信息相似度 0.93", ..."""
    out: list[str] = []
    seen: set[str] = set()

    def add(key: str, sentence: str) -> None:
        if key not in seen:
            seen.add(key)
            out.append(sentence)

    p = parts or {}
    groups = p.get("group_count", p.get("groups", story.group_count if story else None))
    sources = p.get("source_count", p.get("sources", story.source_count if story else None))
    posts = p.get("post_count", p.get("posts", story.post_count if story else None))
    prob = p.get("rumor_probability", story.max_rumor_probability if story else None)
    sim = p.get("debunk_similarity", story.debunk_similarity if story else None)
    if sim is None and debunks:
        sim = debunks[0]["similarity"]
    if isinstance(prob, int | float):
        add("rumor_probability", f"谣言模型判断为谣言的概率 {prob:.0%}")
    if isinstance(sim, int | float):
        add("debunk_similarity", f"与已辟谣信息相似度 {sim:.2f}")
    if isinstance(groups, int) and groups:
        add("group_count", f"在 {groups} 个群出现")
    if isinstance(sources, int) and sources:
        add("source_count", f"{sources} 个网站/信息源转载")
    if isinstance(posts, int) and posts:
        add("post_count", f"共 {posts} 条相关帖子")
    velocity = p.get("velocity", p.get("posts_per_hour"))
    if isinstance(velocity, int | float):
        add("velocity", f"传播速度 每小时 {velocity:.1f} 条")
    local = p.get("local", p.get("local_relevance", p.get("is_local")))
    if local:
        add("local", "涉及本地地名" if local is True or local == 1 else f"本地相关度 {float(local):.2f}")
    neg = p.get("negativity")
    if isinstance(neg, int | float):
        add("negativity", f"负面情绪 {neg:.0%}")
    return out


@router.get("/alerts/{alert_id}")
def alert_page(request: Request, alert_id: int, user: PageUser, session: SessionDep) -> Response:
    detail = queries.alert_detail(session, alert_id)
    if detail is None:
        raise ConsolePageError(404, f"预警 #{alert_id} 不存在（可能已被删除）。")
    alert, story = detail["alert"], detail["story"]
    terms = driving_terms(detail["score"]["explanation"] if detail["score"] else [])
    marker = detail["responses"][0]["published_at"] if detail["responses"] else None
    series = charts.hourly_series(story.hourly_counts if story else {}, end=marker)
    chart = charts.bar_chart(series, tz(), marker=marker)
    return render(request, "alert.html", {
        "nav": "queue", **detail, "terms": terms, "chart": chart,
        "sentences": score_sentences(alert.score_parts, story, detail["debunks"]),
        "can_act": accounts.role_rank(user.role) >= accounts.role_rank("staff"),
        "actions": [], "action_names": set(), "assignees": queries.staff_users(session),
        "now": utcnow(),
    })


# --------------------------------------------------------------------------- other pages


@router.get("/concerns")
def concerns_page(request: Request, user: PageUser, session: SessionDep, show: str = "hot") -> Response:
    topics = queries.hot_topics(session, show_all=show == "all")
    now = utcnow()
    for t in topics:
        t["trend"] = charts.last_hours(t["topic"].hourly_counts, 24, now)
    return render(request, "concerns.html", {"nav": "concerns", "topics": topics, "show": show,
                                             "can_create_alert": False})


@router.get("/debunks")
def debunks_page(request: Request, user: PageUser, session: SessionDep, q: str = "",
                 page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    size = 30
    rows, total = queries.search_debunks(session, q[:100], offset=(page - 1) * size, limit=size)
    return render(request, "debunks.html", {
        "nav": "debunks", "rows": rows, "total": total, "q": q[:100], "page": page,
        "pages": max(1, -(-total // size)), "matches": queries.debunk_match_counts(session, [d.id for d in rows]),
        "can_edit": accounts.role_rank(user.role) >= accounts.role_rank("staff"), "can_write": False,
    })


@router.get("/sources")
def sources_page(request: Request, user: PageUser, session: SessionDep) -> Response:
    return render(request, "sources.html", {
        "nav": "sources", "sources": queries.sources_overview(session), "groups": queries.groups_overview(session),
        "is_admin": user.role == "admin", "can_toggle": False,
    })


@router.get("/digests")
def digests_page(request: Request, user: PageUser, session: SessionDep) -> Response:
    return render(request, "digests.html", {"nav": "digests", "rows": queries.digests(session)})


@router.get("/digests/{digest_id}")
def digest_page(request: Request, digest_id: int, user: PageUser, session: SessionDep) -> Response:
    digest = session.get(Digest, digest_id)
    if digest is None:
        raise ConsolePageError(404, f"日报 #{digest_id} 不存在。")
    return render(request, "digest.html", {"nav": "digests", "d": digest, "srcdoc": digest_srcdoc(digest)})


def digest_srcdoc(digest: Digest) -> str:
    """The digest's HTML as sent, with its inline images (cid:) turned into data: URLs.

    It is shown in a sandboxed iframe (no scripts, no same-origin), so even a flaw in the
    digest's own escaping could not reach the console.
    """
    html = digest.html or ""
    for cid, fig in (digest.figures or {}).items():
        if isinstance(fig, dict) and fig.get("b64") and str(fig.get("content_type", "")).startswith("image/"):
            html = html.replace(f"cid:{cid}", f"data:{fig['content_type']};base64,{fig['b64']}")
    return html


@router.get("/models")
def models_page(request: Request, user: PageUser, session: SessionDep) -> Response:
    need_role(user, "analyst", "查看模型")
    rows = queries.models(session)
    active = [r for r in rows if r["model"].status == "active"]
    return render(request, "models.html", {"nav": "models", "rows": rows, "active": active})
