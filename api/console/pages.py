"""The console's pages: server-rendered, in Simplified Chinese. Routes stay thin: they read
through :mod:`api.console.queries` and act through the owning stage's service functions."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from alerts import common, drafts, spread, states, tip_queries, workflow
from api import accounts
from api.console import charts, queries, services
from api.console.publish_pages import publish_context
from api.console.render import (
    OPEN_STATUSES,
    SEVERITIES,
    STATUSES,
    driving_terms,
    local_time,
    render,
    safe_href,
    tz,
)
from api.console.session import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SESSION_HOURS,
    dump_session,
    new_csrf_token,
    tokens_match,
)
from api.console.web import (
    ConsolePageError,
    PageUser,
    back,
    check_csrf,
    committing,
    cookie_secure,
    need_role,
    new_login_token,
    note_drift,
    safe_next,
    throttle,
)
from api.deps import MAX_ROW_ID, RowId, SessionDep
from core.errors import InvalidInput, NotFound, YuqingError
from core.tables import Debunk, Digest, utcnow
from nlp.cues import DEBUNK_TERM_PREFIX, term_label

# Pages are not part of the JSON API: keep them out of the OpenAPI schema.
router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf), Depends(note_drift)])
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
    if not tokens_match(getattr(request.state, "login_cookie", None), login_token):
        return _login_form(request, next=target, username=username, status=400,
                           error="登录页面已过期（或浏览器禁用了 Cookie），请重新输入后登录。")
    username = username.strip()
    address = request.client.host if request.client else "-"
    wait = throttle.wait_seconds(session, address, username)
    if wait:
        return _login_form(request, next=target, username=username, status=429,
                           error=f"登录失败次数过多，请 {wait} 秒后再试。")
    user = accounts.authenticate_password(session, username, password) if username and password else None
    if user is None:
        throttle.failed(session, address, username)
        return _login_form(request, next=target, username=username, status=401,
                           error="用户名或密码错误。忘记密码请联系管理员（yuqing users passwd 用户名）。")
    throttle.succeeded(session, address, username)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, dump_session(user.id, new_csrf_token()), max_age=SESSION_HOURS * 3600,
                        httponly=True, samesite="lax", secure=cookie_secure(request), path="/")
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep) -> Response:
    csrf = getattr(request.state, "csrf_token", None)
    user_id = getattr(request.state, "user_id", None)
    if csrf and user_id is not None:
        accounts.end_console_session(session, user_id, csrf, keep=dt.timedelta(hours=SESSION_HOURS))
        session.commit()
    response = RedirectResponse("/login?msg=" + "已退出登录", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=cookie_secure(request))
    return response


# --------------------------------------------------------------------------- the queue


def _queue_filter(
    status: str = "open", severity: str = "", category: str = "", assignee: str = "", mine: str = "",
    q: str = "", sort: str = "severity", page: str = "1",
) -> queries.QueueFilter:
    return queries.QueueFilter(
        status=status if status in (*STATUSES, "open", "all") else "open",
        severity=severity if severity in SEVERITIES else None,
        category=category[:50] or None,
        assignee=assignee if assignee == "none" or (assignee.isdigit() and int(assignee) <= MAX_ROW_ID) else None,
        mine=mine in ("1", "on", "true"),
        q=q.strip()[:100] or None,
        sort=sort if sort in ("severity", "recent") else "severity",
        page=max(1, min(int(page), 100_000)) if page.isdigit() else 1,
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
               after: Annotated[int, Query(ge=0, le=2**62)] = 0,
               since: Annotated[float, Query(ge=0, le=4e9)] = 0) -> JSONResponse:
    """Light polling for the "N 条新预警" notice: counts only, the page is not replaced."""
    since_dt = dt.datetime.fromtimestamp(since, dt.UTC) if since else utcnow()
    news = queries.queue_news(session, f, user.id, after, since_dt)
    return JSONResponse(news, headers={"Cache-Control": "no-store"})


# --------------------------------------------------------------------------- one alert


def score_lines(parts: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The risk score's parts in plain words ("在 5 个群或来源出现", "与已辟谣信息相似度 0.93"),
    as the alert service stored them, biggest contribution first; parts that added nothing are left out."""
    lines = []
    for name, part in (parts or {}).items():
        if not isinstance(part, dict) or name == "rules":
            continue
        text, points, top = part.get("text"), part.get("points"), part.get("max")
        if not isinstance(text, str) or not text:
            continue
        value = float(points) if isinstance(points, int | float) else None
        if value is not None and value <= 0 and name != "manual":
            continue
        share = min(1.0, value / top) if value is not None and isinstance(top, int | float) and top else None
        lines.append({"name": name, "text": text, "points": value, "max": top, "share": share})
    lines.sort(key=lambda x: -float(x["points"] or 0))
    return lines


def keyword_terms(rules_fired: Any) -> list[str]:
    """The watched words a keyword rule hit ("命中关键词：封路、青禾镇"), to highlight them too."""
    out: list[str] = []
    for rule in rules_fired or ():
        if isinstance(rule, dict) and rule.get("kind") == "keyword" and isinstance(rule.get("why"), str):
            out += [w.strip() for w in rule["why"].split("：", 1)[-1].split("、") if w.strip()]
    return out


TOPIC_WORDS_SHOWN = 6

#: The buttons for the service's transitions (status -> label, style, confirmation question).
TRANSITION_BUTTONS = {
    "confirmed_rumor": ("确认谣言", "danger", None),
    "confirmed_concern": ("确认关切", "warn", None),
    "dismissed": ("排除", "ghost", "确定排除这条预警吗？排除后如果帖子明显增多会重新预警。"),
    "acknowledged": ("重新打开", "ghost", None),
    "closed": ("关闭", "ghost", "确定关闭这条预警吗？关闭后不能再更改。"),
}


@router.get("/alerts/{alert_id}")
def alert_page(request: Request, alert_id: RowId, user: PageUser, session: SessionDep) -> Response:
    detail = queries.alert_detail(session, alert_id)
    if detail is None:
        raise ConsolePageError(404, f"预警 #{alert_id} 不存在（可能已被删除）。")
    alert, story = detail["alert"], detail["story"]
    if story is None and detail["topic"] is not None:
        # a concern is about what people say, not a rumor score: its words are the topic's keywords
        drivers = detail["topic"].keyword_words(TOPIC_WORDS_SHOWN)
        reasons_label = "话题关键词"
    else:
        drivers = driving_terms(detail["score"]["explanation"] if detail["score"] else [])
        reasons_label = "推高谣言分的词和特征"
    drivers += [t for t in keyword_terms(alert.rules_fired) if t not in drivers]
    # cues and the debunk match are reasons, not words of the post: shown, never highlighted
    terms = [t for t in drivers if not t.startswith(("cue:", DEBUNK_TERM_PREFIX))]
    reasons = [term_label(t) for t in drivers]
    marker = detail["responses"][0]["published_at"] if detail["responses"] else None
    if alert.incident_id is not None:  # a matter: the posts that carry it (its claims, or complaints)
        hourly = spread.hourly_for(session, alert)
    else:
        hourly = story.hourly_counts if story else (detail["topic"].hourly_counts if detail["topic"] else {})
    series = charts.hourly_series(hourly, end=marker, min_hours=12)
    chart = charts.bar_chart(series, tz(), marker=marker)
    allowed = states.allowed_transitions(alert.status)
    actions = [{"to": to, "label": TRANSITION_BUTTONS[to][0], "style": TRANSITION_BUTTONS[to][1],
                "confirm": TRANSITION_BUTTONS[to][2]}
               for to in allowed if to in TRANSITION_BUTTONS and not (to == "acknowledged" and alert.status == "new")]
    names = {"comment"}
    if alert.status != "closed":
        names.add("assign")
    if alert.status in RESPONDABLE:
        names.add("respond")
    if alert.status in states.OPEN_STATES:
        names.add("regroup")  # merge alerts, split or move a matter's posts
    return render(request, "alert.html", {
        "nav": "queue", **detail, "terms": terms, "reasons": reasons, "reasons_label": reasons_label, "chart": chart, "score_lines": score_lines(alert.score_parts),
        "can_act": accounts.role_rank(user.role) >= accounts.role_rank("staff"),
        "actions": actions, "action_names": names, "assignees": queries.staff_users(session),
        "user_names": queries.user_names(session),
        "labels": queries.label_info(session, detail["posts"]),
        "placeholder_headings": ",".join(sorted(drafts.HEADINGS)),  # 【辟谣】 heads a text, asks for nothing
        "can_label": accounts.role_rank(user.role) >= accounts.role_rank("analyst"),
        "now": utcnow(),
        "tips": tip_queries.list_tips(session, alert_id=alert.id, limit=50)[0],  # residents who asked about it
        **publish_context(session, alert, user),
    })


# --------------------------------------------------------------------------- actions (alerts.workflow)

RESPONDABLE = ("confirmed_rumor", "confirmed_concern", "responded")


def _done(alert_id: int, next_url: str | None, msg: str) -> Response:
    target = safe_next(next_url) if next_url else f"/alerts/{alert_id}"
    return back(target, msg=msg)


def _act(session: SessionDep, user: PageUser, alert_id: int, next_url: str | None, msg: str,
         work: Callable[[], object]) -> Response:
    """Run one service call for a staff member; a refused action comes back as a message."""
    need_role(user, "staff", "处理预警")
    with committing(session, f"/alerts/{alert_id}"):
        work()
    queries.forget_counts()
    return _done(alert_id, next_url, msg)


NextField = Annotated[str | None, Form(max_length=2000)]


@router.post("/alerts/{alert_id}/claim")
def claim(alert_id: RowId, user: PageUser, session: SessionDep, next: NextField = None) -> Response:
    """认领: assign to me, and acknowledge it if nobody had."""
    def work() -> None:
        workflow.assign(session, alert_id, user.id, actor=user)
        if common.get_alert(session, alert_id).status == "new":
            workflow.transition(session, alert_id, "acknowledged", actor=user)

    return _act(session, user, alert_id, next, f"已认领预警 #{alert_id}", work)


@router.post("/alerts/{alert_id}/assign")
def assign(alert_id: RowId, user: PageUser, session: SessionDep,
           user_id: Annotated[str, Form(max_length=20)] = "", next: NextField = None) -> Response:
    target = int(user_id) if user_id.isdigit() else None
    return _act(session, user, alert_id, next, "已更新负责人",
                lambda: workflow.assign(session, alert_id, target, actor=user))


@router.post("/alerts/{alert_id}/status")
def change_status(alert_id: RowId, user: PageUser, session: SessionDep,
                  to: Annotated[str, Form(max_length=30)] = "",
                  comment: Annotated[str, Form(max_length=5000)] = "", next: NextField = None) -> Response:
    label = states.STATE_ZH.get(to, to)
    return _act(session, user, alert_id, next, f"预警 #{alert_id} 已改为「{label}」",
                lambda: workflow.transition(session, alert_id, to, actor=user, comment=comment.strip() or None))


@router.post("/alerts/{alert_id}/comment")
def comment(alert_id: RowId, user: PageUser, session: SessionDep,
            comment: Annotated[str, Form(max_length=5000)] = "", next: NextField = None) -> Response:
    return _act(session, user, alert_id, next, "已添加评论",
                lambda: workflow.add_comment(session, alert_id, comment, actor=user))


@router.post("/alerts/{alert_id}/respond")
def respond(
    alert_id: RowId, user: PageUser, session: SessionDep,
    text: Annotated[str, Form(max_length=5000)] = "",
    channels: Annotated[list[str] | None, Form(max_length=100)] = None,
    url: Annotated[str, Form(max_length=2000)] = "",
    published_at: Annotated[str, Form(max_length=40)] = "",
    next: NextField = None,
) -> Response:
    when = parse_local_datetime(published_at)
    if published_at.strip() and when is None:
        return back(f"/alerts/{alert_id}", err=f"发布时间“{published_at}”无法识别：请用页面上的日期时间选择器填写。")
    link = url.strip() or None
    if link and not safe_href(link):
        return back(f"/alerts/{alert_id}", err="链接需以 http:// 或 https:// 开头。")
    return _act(session, user, alert_id, next, "已记录回应，系统会比较回应前后的传播量",
                lambda: workflow.respond(session, alert_id, text=text, channels=channels or [], url=link,
                                        published_at=when, actor=user))


def _row_id(value: str, what: str) -> int:
    """A number typed into a form (an alert or incident number); anything else is refused in Chinese."""
    value = (value or "").strip().lstrip("#")
    if not value.isdigit() or not 1 <= int(value) <= 2**62:
        raise InvalidInput(f"请填写{what}编号（数字），例如 12")
    return int(value)


@router.post("/alerts/{alert_id}/merge")
def merge(alert_id: int, user: PageUser, session: SessionDep,
          other_alert_id: Annotated[str, Form(max_length=30)] = "", next: NextField = None) -> Response:
    """合并预警: the other alert is the same matter; it closes into this one."""
    def work() -> None:
        workflow.merge_alerts(session, alert_id, _row_id(other_alert_id, "预警"), actor=user)

    return _act(session, user, alert_id, next, f"已把预警 #{other_alert_id.strip().lstrip('#')} 并入本预警", work)


@router.post("/incidents/{incident_id}/posts/{post_id}/split")
def split_post(incident_id: int, post_id: int, user: PageUser, session: SessionDep,
               alert_id: Annotated[str, Form(max_length=30)] = "", next: NextField = None) -> Response:
    """拆出: the post is not this matter; it starts its own."""
    back_to = int(alert_id) if alert_id.isdigit() else 0
    return _act(session, user, back_to, next or (f"/alerts/{back_to}" if back_to else "/"),
                f"已把帖子 #{post_id} 拆出，成为单独的一件事",
                lambda: workflow.split_incident_post(session, incident_id, post_id, actor=user))


@router.post("/incidents/{incident_id}/posts/{post_id}/move")
def move_post(incident_id: int, post_id: int, user: PageUser, session: SessionDep,
              to_incident_id: Annotated[str, Form(max_length=30)] = "",
              alert_id: Annotated[str, Form(max_length=30)] = "", next: NextField = None) -> Response:
    """移到另一件事: the post belongs to another incident."""
    back_to = int(alert_id) if alert_id.isdigit() else 0

    def work() -> None:
        workflow.move_incident_post(session, incident_id, post_id, _row_id(to_incident_id, "事件"), actor=user)

    return _act(session, user, back_to, next or (f"/alerts/{back_to}" if back_to else "/"),
                f"已把帖子 #{post_id} 移到事件 #{to_incident_id.strip().lstrip('#')}", work)


def parse_local_datetime(value: str) -> dt.datetime | None:
    """``2026-11-28T15:30`` from a datetime-local input, read in the office's time zone."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz())


# --------------------------------------------------------------------------- other pages


@router.get("/concerns")
def concerns_page(request: Request, user: PageUser, session: SessionDep, show: str = "hot") -> Response:
    topics = queries.hot_topics(session, show_all=show == "all")
    now = utcnow()
    for t in topics:
        t["trend"] = charts.last_hours(t["topic"].hourly_counts, 24, now)
    return render(request, "concerns.html", {
        "nav": "concerns", "topics": topics, "show": show,
        "can_create_alert": accounts.role_rank(user.role) >= accounts.role_rank("staff")})


@router.post("/concerns/{topic_id}/alert")
def alert_from_topic(topic_id: RowId, user: PageUser, session: SessionDep) -> Response:
    """A manual alert for a hot topic (the alert service keeps one open alert per topic)."""
    need_role(user, "staff", "创建预警")
    with committing(session, "/concerns"):
        alert = workflow.create_manual(session, actor=user, topic_id=topic_id)
    return back(f"/alerts/{alert.id}", msg="已为此话题创建预警")


@router.get("/debunks")
def debunks_page(request: Request, user: PageUser, session: SessionDep, q: str = "", page: str = "1") -> Response:
    size = 30
    page_no = max(1, min(int(page), 100_000)) if page.isdigit() else 1
    rows, total = queries.search_debunks(session, q[:100], offset=(page_no - 1) * size, limit=size)
    return render(request, "debunks.html", {
        "nav": "debunks", "rows": rows, "total": total, "q": q[:100], "page": page_no,
        "pages": max(1, -(-total // size)), "matches": queries.debunk_match_counts(session, [d.id for d in rows]),
        "can_edit": accounts.role_rank(user.role) >= accounts.role_rank("staff"),
        "can_write": True,
    })


@router.get("/sources")
def sources_page(request: Request, user: PageUser, session: SessionDep) -> Response:
    return render(request, "sources.html", {
        "nav": "sources", "sources": queries.sources_overview(session), "groups": queries.groups_overview(session),
        "is_admin": user.role == "admin", "can_toggle_sources": True, "can_toggle_groups": True,
    })


def _toggle(user: Any, session: SessionDep, what: str, work: Callable[[], object], msg: str) -> Response:
    need_role(user, "admin", f"启用或停用{what}")
    with committing(session, "/sources"):
        work()
    return back("/sources", msg=msg)


@router.post("/sources/{source_id}/enabled")
def source_enabled(source_id: RowId, user: PageUser, session: SessionDep,
                   enabled: Annotated[str, Form(max_length=5)] = "") -> Response:
    svc = services.sources()
    on = enabled == "1"
    return _toggle(user, session, "信息源", lambda: svc.set_enabled(session, source_id, on),
                   f"已{'启用' if on else '停用'}信息源 #{source_id}")


@router.post("/groups/{group_id}/enabled")
def group_enabled(group_id: RowId, user: PageUser, session: SessionDep,
                  enabled: Annotated[str, Form(max_length=5)] = "") -> Response:
    svc = services.groups()
    on = enabled == "1"
    return _toggle(user, session, "群组", lambda: svc.update_group(session, group_id, {"enabled": on}),
                   f"已{'启用' if on else '停用'}群组 #{group_id}")


@router.get("/digests")
def digests_page(request: Request, user: PageUser, session: SessionDep) -> Response:
    return render(request, "digests.html", {"nav": "digests", "rows": queries.digests(session)})


@router.get("/digests/{digest_id}")
def digest_page(request: Request, digest_id: RowId, user: PageUser, session: SessionDep) -> Response:
    digest = session.get(Digest, digest_id)
    if digest is None:
        raise ConsolePageError(404, f"日报 #{digest_id} 不存在。")
    return render(request, "digest.html", {"nav": "digests", "d": digest, "srcdoc": digest_srcdoc(digest)})


def digest_srcdoc(digest: Digest) -> str:
    """The digest's HTML as sent, with its inline images (cid:) turned into data: URLs.

    It is shown in a sandboxed iframe without scripts, so even a flaw in the digest's own escaping
    could not run anything; the sandbox allows same-origin only so console.js can size the frame
    to its content.
    """
    html = digest.html or ""
    for cid, fig in (digest.figures or {}).items():
        if isinstance(fig, dict) and fig.get("b64") and str(fig.get("content_type", "")).startswith("image/"):
            html = html.replace(f"cid:{cid}", f"data:{fig['content_type']};base64,{fig['b64']}")
    # Links in the digest (to alerts in this console) open in the whole window, not in the frame.
    return '<base target="_top">' + html


# --------------------------------------------------------------------------- debunk library (nlp.debunks)

DEBUNK_FIELDS = ("claim", "refutation", "publisher", "url", "published_at", "category", "tags")


def _debunk_service(user: Any) -> Any:
    need_role(user, "staff", "编辑辟谣库")
    return services.debunks()


def _debunk_form(request: Request, *, values: dict[str, Any], debunk_id: int | None = None,
                 error: str | None = None, active: bool = True, status: int = 200) -> Response:
    return render(request, "debunk_form.html", {"nav": "debunks", "values": values, "debunk_id": debunk_id,
                                                "error": error, "active": active}, status=status)


def _debunk_values(form: Any) -> dict[str, Any]:
    values = {k: (form.get(k) or "").strip() for k in DEBUNK_FIELDS if isinstance(form.get(k) or "", str)}
    return values


def _debunk_payload(values: dict[str, Any]) -> dict[str, Any]:
    """Form strings -> the service's fields (blank optional fields become None)."""
    out: dict[str, Any] = {"claim": values.get("claim", ""), "refutation": values.get("refutation", "")}
    for key in ("publisher", "url", "category"):
        out[key] = values.get(key) or None
    when = values.get("published_at") or ""
    out["published_at"] = parse_local_datetime(when if "T" in when or not when else when + "T00:00")
    out["tags"] = [t.strip() for t in re.split(r"[,，;；、\s]+", values.get("tags", "")) if t.strip()]
    return out


def _validation_message(err: ValidationError) -> str:
    names = {"claim": "谣言说法", "refutation": "辟谣内容", "publisher": "发布单位", "url": "链接",
             "published_at": "发布日期", "category": "类别", "tags": "标签"}
    first = err.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ()))
    return f"{names.get(field, field)}：{first.get('msg', '')}"


@router.get("/debunks/new")
def debunk_new(request: Request, user: PageUser) -> Response:
    _debunk_service(user)
    return _debunk_form(request, values={})


@router.post("/debunks")
async def debunk_create(request: Request, user: PageUser, session: SessionDep) -> Response:
    svc = _debunk_service(user)
    values = _debunk_values(await request.form())
    payload = _debunk_payload(values)
    if values.get("published_at") and payload["published_at"] is None:
        return _debunk_form(request, values=values, error="发布日期无法识别：请用日期选择器填写。", status=422)
    if payload["url"] and not safe_href(payload["url"]):
        return _debunk_form(request, values=values, error="链接需以 http:// 或 https:// 开头。", status=422)
    try:
        row = svc.create_debunk(session, svc.DebunkIn(**payload), created_by=user.id)
        session.commit()
    except ValidationError as err:
        return _debunk_form(request, values=values, error=_validation_message(err), status=422)
    except YuqingError as err:
        session.rollback()
        return _debunk_form(request, values=values, error=str(err), status=err.status_code)
    return back(f"/debunks?q={quote(row.claim[:20])}", msg="已添加到辟谣库")


@router.get("/debunks/{debunk_id:int}/edit")
def debunk_edit(request: Request, debunk_id: RowId, user: PageUser, session: SessionDep) -> Response:
    _debunk_service(user)
    row = session.get(Debunk, debunk_id)
    if row is None:
        raise ConsolePageError(404, f"辟谣条目 #{debunk_id} 不存在。")
    values = {k: getattr(row, k) or "" for k in ("claim", "refutation", "publisher", "url", "category")}
    values["published_at"] = local_time(row.published_at, "%Y-%m-%d") if row.published_at else ""
    values["tags"] = "、".join(row.tags or [])
    return _debunk_form(request, values=values, debunk_id=debunk_id, active=row.active)


@router.post("/debunks/{debunk_id:int}")
async def debunk_update(request: Request, debunk_id: RowId, user: PageUser, session: SessionDep) -> Response:
    svc = _debunk_service(user)
    form = await request.form()
    values = _debunk_values(form)
    active = form.get("active") == "1"
    payload = _debunk_payload(values)
    if values.get("published_at") and payload["published_at"] is None:
        return _debunk_form(request, values=values, debunk_id=debunk_id, active=active,
                            error="发布日期无法识别：请用日期选择器填写。", status=422)
    if payload["url"] and not safe_href(payload["url"]):
        return _debunk_form(request, values=values, debunk_id=debunk_id, active=active,
                            error="链接需以 http:// 或 https:// 开头。", status=422)
    try:
        svc.update_debunk(session, debunk_id, svc.DebunkUpdate(**payload, active=active))
        session.commit()
    except ValidationError as err:
        return _debunk_form(request, values=values, debunk_id=debunk_id, active=active,
                            error=_validation_message(err), status=422)
    except NotFound as err:
        raise ConsolePageError(404, str(err)) from err
    except YuqingError as err:
        session.rollback()
        return _debunk_form(request, values=values, debunk_id=debunk_id, active=active, error=str(err),
                            status=err.status_code)
    return back("/debunks", msg=f"已保存辟谣条目 #{debunk_id}")


MAX_IMPORT_BYTES = 5 * 1024 * 1024


@router.post("/debunks/import")
async def debunk_import(request: Request, user: PageUser, session: SessionDep) -> Response:
    """Import a CSV file; Excel on Chinese Windows saves GBK, so that is accepted and converted."""
    svc = _debunk_service(user)
    form = await request.form()
    upload = form.get("file")
    if upload is None or isinstance(upload, str) or not upload.filename:
        return back("/debunks", err="请选择要导入的 CSV 文件。")
    raw = await upload.read(MAX_IMPORT_BYTES + 1)
    if len(raw) > MAX_IMPORT_BYTES:
        return back("/debunks", err="文件超过 5 MB：请分成几个文件导入。")
    name = upload.filename if upload.filename.lower().endswith(".csv") else upload.filename + ".csv"
    with committing(session, "/debunks"):  # the reader takes UTF-8, GBK or UTF-16 (core.encoding)
        result = svc.import_debunks(session, name, data=raw, fmt="csv", created_by=user.id)
    msg = f"导入完成：新增 {result.new} 条，更新 {result.updated} 条，未变 {result.unchanged} 条"
    if result.rejected:
        msg += f"；{len(result.rejected)} 行有误未导入（" + "；".join(r for _, r in result.rejected[:3]) + "）"
        return back("/debunks", err=msg)
    return back("/debunks", msg=msg)
