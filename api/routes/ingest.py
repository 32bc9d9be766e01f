"""Pushes from chat bots and scripts: OneBot v11 events and a generic JSON batch.

Tokens: a bot token (``yuqing tokens create qq-bot-1 --bot``) may call only these routes; staff
and above may call them too. OneBot's HTTP POST reporting has no header for a token in several
frameworks (go-cqhttp), so the token may also come as ``?access_token=`` (OneBot's own
convention). When ``YUQING_ONEBOT_SECRET`` is set, OneBot pushes must carry
``X-Signature: sha1=<HMAC-SHA1 of the raw body>`` as OneBot implementations send it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.accounts import role_rank, user_for_token
from api.deps import SessionDep
from api.problems import Problem
from api.security import hash_token
from core.db import is_outage, transaction
from core.settings import get_settings
from core.spill import Spill, SpillError
from core.tables import User
from crawler.chats.onebot import OneBotEvent, signature_ok
from crawler.chats.push import (
    SPILL_BATCH,
    SPILL_ONEBOT,
    MessageBatch,
    PushResult,
    not_a_group_message,
    spooled_count,
    store_message_batch,
    store_onebot_event,
)

router = APIRouter(prefix="/ingest", tags=["ingest"])
log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 30
_bearer = HTTPBearer(auto_error=False, description="机器人令牌：`yuqing tokens create qq-bot-1 --bot`")


def pusher(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    access_token: Annotated[
        str | None,
        Query(max_length=200, description="令牌也可放在查询参数里（OneBot 惯例，供不能设请求头的框架）"),
    ] = None,
) -> User:
    """A bot token, or a user of role staff or above; from the Authorization header or ?access_token=.

    While the database is away, a token it confirmed within the last week (remembered by hash in
    the push spill) is still accepted, so pushes can be spooled instead of lost."""
    token = credentials.credentials if credentials is not None else access_token
    if not token:
        raise Problem(401, "需要登录",
                      "推送缺少令牌：加请求头 'Authorization: Bearer <令牌>'，"
                      "或在地址后加 ?access_token=<令牌>。",
                      headers={"WWW-Authenticate": "Bearer"})
    spill = _spill(request)
    try:
        found = user_for_token(session, token)
    except Exception as err:
        if not is_outage(err):
            raise
        session.rollback()
        return _remembered_pusher(request, spill, token)
    if found is None:
        spill.forget_token(hash_token(token))
        raise Problem(401, "令牌无效",
                      "令牌无效、已过期或已吊销：请用 `yuqing tokens create NAME --bot` 重新生成。",
                      headers={"WWW-Authenticate": "Bearer"})
    user, tok = found
    if tok.kind != "bot" and role_rank(user.role) < role_rank("staff"):
        raise Problem(403, "权限不足",
                      "推送消息需要机器人令牌（yuqing tokens create NAME --bot）或工作人员以上角色。")
    request.state.token_kind = tok.kind
    _remember(spill, token, user, tok.kind)
    return user


_REMEMBERED: dict[str, float] = {}  # token hash -> when it was last written to the spill's token table
_REMEMBER_EVERY = 3600.0


def _spill(request: Request) -> Spill:
    spill = getattr(request.app.state, "push_spill", None)
    if spill is None:
        spill = request.app.state.push_spill = Spill.default()
    return spill


def _remember(spill: Spill, token: str, user: User, kind: str) -> None:
    key = hash_token(token)
    now = time.monotonic()
    if now - _REMEMBERED.get(key, -_REMEMBER_EVERY) < _REMEMBER_EVERY:
        return
    if len(_REMEMBERED) > 10_000:
        _REMEMBERED.clear()
    spill.remember_token(key, user.id, user.role, kind)
    _REMEMBERED[key] = now


def _remembered_pusher(request: Request, spill: Spill, token: str) -> User:
    known = spill.known_token(hash_token(token))
    if known is None:
        raise Problem(503, "数据库暂不可用",
                      "数据库暂时不可用，且此令牌最近未验证过：请稍后重试。",
                      headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    user_id, role, kind = known
    if kind != "bot" and role_rank(role) < role_rank("staff"):
        raise Problem(403, "权限不足",
                      "推送消息需要机器人令牌（yuqing tokens create NAME --bot）或工作人员以上角色。")
    request.state.token_kind = kind
    return User(id=user_id, username=f"user{user_id}", role=role)


Pusher = Annotated[User, Depends(pusher)]


async def onebot_signature(request: Request, _: Pusher) -> None:
    """Check OneBot's X-Signature when a secret is configured (after the token, before the body)."""
    secret = get_settings().onebot_secret
    if secret is None or not secret.get_secret_value():
        return
    body = await request.body()
    if not signature_ok(secret.get_secret_value().encode("utf-8"), body, request.headers.get("X-Signature")):
        raise Problem(
            401,
            "签名无效",
            "X-Signature 缺失或与请求体不符：请在机器人框架里填写与 YUQING_ONEBOT_SECRET 相同的 secret。",
        )


ONEBOT_EXAMPLES: dict[str, Any] = {
    "segments": {
        "summary": "群消息（消息段数组，含回复）",
        "value": {
            "time": 1764036000,
            "self_id": 10001,
            "post_type": "message",
            "message_type": "group",
            "sub_type": "normal",
            "message_id": 52001,
            "group_id": 880001,
            "user_id": 20002,
            "message": [
                {"type": "reply", "data": {"id": "52000"}},
                {"type": "text", "data": {"text": "听说东湾村要封村了？"}},
                {"type": "image", "data": {"file": "a.jpg"}},
            ],
            "raw_message": "[CQ:reply,id=52000]听说东湾村要封村了？[CQ:image,file=a.jpg]",
            "sender": {"user_id": 20002, "nickname": "张三", "card": "东湾村-张三"},
        },
    },
    "cq_string": {
        "summary": "群消息（CQ 码字符串）",
        "value": {
            "time": 1764036060,
            "post_type": "message",
            "message_type": "group",
            "message_id": 52002,
            "group_id": 880001,
            "user_id": 20003,
            "message": "没有封村，别信谣言[CQ:face,id=14]",
            "sender": {"user_id": 20003, "nickname": "村委会"},
        },
    },
    "heartbeat": {
        "summary": "心跳（被忽略）",
        "value": {
            "time": 1764036000,
            "self_id": 10001,
            "post_type": "meta_event",
            "meta_event_type": "heartbeat",
        },
    },
}

BATCH_EXAMPLES: dict[str, Any] = {
    "wechat": {
        "summary": "一批微信群消息",
        "value": {
            "group": {"platform": "wechat", "external_id": "20261122@chatroom", "name": "南坪村村民群"},
            "messages": [
                {
                    "id": "m1",
                    "time": "2026-11-22T10:00:00+08:00",
                    "sender": "南坪村老李",
                    "sender_id": "wxid_li",
                    "text": "南坪村菜市场明天关门？",
                },
                {
                    "id": "m2",
                    "time": "2026-11-22T10:01:00+08:00",
                    "sender": "网格员",
                    "sender_id": "wxid_wang",
                    "text": "没听说，照常营业",
                    "reply_to": "m1",
                },
            ],
        },
    },
}


OUTAGE_NOTE = (
    "\n\n数据库暂不可用时，消息先加密暂存在本机（数据目录下 push-spill.db），返回 **202** 与 `spooled`，"
    "数据库恢复后按到达顺序自动入库、不会重复；只有暂存区也无法写入时才返回 **503** 并带 `Retry-After`，"
    "此时请按该秒数后重发。"
)
PUSH_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": PushResult, "description": "数据库暂不可用：已暂存，恢复后自动入库"},
    503: {"description": "数据库与本机暂存区均不可用：按 Retry-After 重发"},
}


@router.post(
    "/onebot",
    response_model=PushResult,
    summary="接收 OneBot v11 群消息推送（QQ 机器人）",
    dependencies=[Depends(onebot_signature)],
    responses=PUSH_RESPONSES,
    description=(
        "把 go-cqhttp / NapCat / LLOneBot / Lagrange 等 OneBot v11 实现的 **HTTP POST 上报地址** 设为 "
        "`http://<服务器>/api/v1/ingest/onebot`，机器人令牌放在请求头 `Authorization: Bearer <令牌>`；"
        "框架不能设置请求头时（如 go-cqhttp 的 post 配置）改用 `…/onebot?access_token=<令牌>`。"
        "配置了 `YUQING_ONEBOT_SECRET` 时，必须带 `X-Signature: sha1=<请求体的 HMAC-SHA1>`。"
        "群消息入库；私聊消息作为群众举报线索处理（已辟谣的谣言自动回复辟谣，其余回复“已收到，正在核实”，"
        "经 YUQING_ONEBOT_API_URL 的 send_private_msg 发出）；心跳、通知会被接受并忽略。发送者 QQ 号与昵称以化名保存，手机号、身份证号打码。"
        "重复推送同一条消息只保存一次（按群号 + message_id）。"
        + OUTAGE_NOTE
    ),
)
def push_onebot(
    event: Annotated[OneBotEvent, Body(openapi_examples=ONEBOT_EXAMPLES)], request: Request, _: Pusher
) -> PushResult | JSONResponse:
    if event.post_type == "message" and event.message_type == "private":
        return _private_tip(request, event)  # a resident writing to the office's bot: a tip
    ignored = not_a_group_message(event)
    if ignored is not None:
        return ignored
    missing = event.missing_fields()
    if missing:
        raise Problem(422, "输入无效", f"群消息缺少字段：{', '.join(missing)}。", extra={"missing": missing})
    return _store_or_spill(request, SPILL_ONEBOT, event.model_dump(mode="json"),
                           lambda session: store_onebot_event(session, event))


@router.post(
    "/messages",
    response_model=PushResult,
    responses=PUSH_RESPONSES,
    summary="批量推送群消息（通用 JSON）",
    description=(
        "供其他采集脚本使用：一次最多 5000 条。`group` 可写在外层（整批同一群）或每条消息里。"
        "没有 `id` 的消息按 (群, 时间, 发送者, 内容, 同秒内序号) 生成稳定 ID，重复推送不会重复保存。"
        "格式错误时返回 422，且一条都不保存；单条内容不合理（如时间在未来）时其余照常保存，见 `rejected`。"
        + OUTAGE_NOTE
    ),
)
def push_messages(
    batch: Annotated[MessageBatch, Body(openapi_examples=BATCH_EXAMPLES)], request: Request, _: Pusher
) -> PushResult | JSONResponse:
    return _store_or_spill(request, SPILL_BATCH, batch.model_dump(mode="json"),
                           lambda session: store_message_batch(session, batch))


def _private_tip(request: Request, event: OneBotEvent) -> PushResult:
    """A private message to the bot becomes a tip; the reply goes out through the outbox."""
    from alerts.tips import take_tip
    from core.tips import TipError, TipIn

    if event.user_id in (None, "") or event.message_id in (None, ""):
        raise Problem(422, "输入无效", "私聊消息缺少 user_id 或 message_id。")
    message = event.to_message()
    text = message.text
    tip = TipIn(channel="qq", message_id=f"{event.self_id or '-'}:{event.message_id}", text=text or "",
                address=str(event.user_id), wants_answer=True,
                received_at=dt.datetime.fromtimestamp(event.time, dt.UTC),
                images=list(message.images))
    try:
        outcome = take_tip(request.app.state.sessionmaker, tip, limit_reporter=True)
    except TipError as err:
        return PushResult(ignored=f"私聊消息未作为线索保存：{err}")
    except Exception as err:
        if not is_outage(err):
            raise
        raise Problem(503, "暂时无法接收", "数据库暂不可用：请稍后重发（机器人框架应按 Retry-After 重发）。",
                      headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
    if outcome is None:  # no reply either: answering a flood would flood the resident and the bot
        return PushResult(ignored="私聊消息未作为线索保存：该用户发送太频繁，稍后再发的会照常受理")
    return PushResult(new=int(outcome.new), unchanged=int(not outcome.new), ignored=None)


def _store_or_spill(
    request: Request, kind: str, payload: dict[str, Any], store: Callable[[Session], PushResult]
) -> PushResult | JSONResponse:
    """Store and commit; if the database is away, spill the request and answer 202; if even the
    spill cannot be written, 503 with Retry-After. Never a 500 for an outage: a bot that does not
    retry would lose the message."""
    try:
        with transaction(request.app.state.sessionmaker()) as session:
            return store(session)
    except Exception as err:
        if not is_outage(err):
            raise
        log.warning("database unavailable during a push; spilling it: %s", type(err).__name__)
    try:
        _spill(request).append(kind, payload)
    except SpillError:
        log.exception("push could be neither stored nor spilled")
        raise Problem(503, "暂时无法接收",
                      "数据库暂不可用，本机暂存区也无法写入：请稍后重试（机器人框架应按 Retry-After 重发）。",
                      headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
    body = PushResult(spooled=spooled_count(kind, payload))
    return JSONResponse(body.model_dump(mode="json"), status_code=202)
