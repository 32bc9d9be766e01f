"""The 公众号 (WeChat official account) developer-mode server callback, plaintext mode.

* ``GET /wechat/callback?signature=&timestamp=&nonce=&echostr=``: WeChat checks the server once;
  we answer ``echostr`` when ``signature`` = SHA1 of the sorted [Token, timestamp, nonce].
* ``POST /wechat/callback?signature=&timestamp=&nonce=``: a resident's message as XML. Text and
  image messages become tips (alerts.tips.take_tip); the answer (the official refutation of a
  known rumor, or "已收到，正在核实…") goes back as the passive XML reply, which WeChat allows
  within 5 s. WeChat retries a message it got no answer to (same MsgId): the tip is stored once
  and the retry gets the same reply. A tip not answered within YUQING_WECHAT_REPLY_DEADLINE_SECONDS
  (a very busy server) gets the acknowledgement at once; the work goes on, and a refutation it
  finds is sent afterwards through the outbox (customer-service message). Other message types and events get a short help text. One
  openid sending faster than YUQING_TIP_RATE_PER_MINUTE is told to wait; nothing is stored.

Not a token-protected API route: WeChat cannot send our bearer token, so every request must carry
the signature made with YUQING_WECHAT_TOKEN (403 otherwise; 404 when no token is configured).
The XML is parsed with a DOCTYPE refused (no entity expansion) and a 64 KB cap.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
import time
import xml.etree.ElementTree as ET
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from alerts.tips import ACKNOWLEDGEMENT, FLOOD_REPLY, send_first_reply_later, take_tip
from api.problems import Problem
from core.settings import get_settings
from core.tips import TipError, TipIn

log = logging.getLogger(__name__)
router = APIRouter(prefix="/wechat", tags=["tips"], include_in_schema=False)
MAX_XML_BYTES = 64 * 1024
HELP = "您好！把看到的可疑消息（文字或截图）直接发给我们，我们会核实并答复。"

Sig = Annotated[str, Query(max_length=100)]


def signature(token: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def _check(signature_: str, timestamp: str, nonce: str) -> None:
    secret = get_settings().wechat_token
    if secret is None or not secret.get_secret_value():
        raise Problem(404, "未启用", "公众号回调未配置：设置 YUQING_WECHAT_TOKEN（与公众号后台的 Token 一致）。")
    if not hmac.compare_digest(signature(secret.get_secret_value(), timestamp, nonce), signature_.lower()):
        raise Problem(403, "签名无效", "签名与 Token 不符：检查公众号后台的 Token 与 YUQING_WECHAT_TOKEN 是否一致。")


@router.get("/callback")
def verify(signature: Sig, timestamp: Sig, nonce: Sig, echostr: Annotated[str, Query(max_length=200)]) -> PlainTextResponse:
    _check(signature, timestamp, nonce)
    return PlainTextResponse(echostr)


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def passive_reply(to_user: str, from_user: str, content: str) -> str:
    return (f"<xml><ToUserName>{_cdata(to_user)}</ToUserName><FromUserName>{_cdata(from_user)}</FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content>{_cdata(content)}</Content></xml>")


def _parse(body: bytes) -> dict[str, str]:
    if len(body) > MAX_XML_BYTES:
        raise Problem(413, "消息太大", "公众号消息超过 64 KB。")
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise Problem(422, "输入无效", "消息 XML 不能含 DOCTYPE 或实体声明。")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as err:
        raise Problem(422, "输入无效", f"消息不是有效的 XML：{err}") from err
    return {child.tag: (child.text or "").strip() for child in root}


@router.post("/callback")
async def message(request: Request, signature: Sig, timestamp: Sig, nonce: Sig) -> Response:
    _check(signature, timestamp, nonce)
    fields = _parse(await request.body())
    openid, office = fields.get("FromUserName", ""), fields.get("ToUserName", "")
    if not openid or not office:
        raise Problem(422, "输入无效", "消息缺少 FromUserName 或 ToUserName。")
    kind = fields.get("MsgType", "")
    if kind not in ("text", "image"):
        return _xml(passive_reply(openid, office, HELP))
    msg_id = fields.get("MsgId") or f"{openid}:{fields.get('CreateTime', '')}"
    tip = TipIn(channel="wechat", message_id=msg_id, address=openid, wants_answer=True,
                text=fields.get("Content", "") if kind == "text" else "",
                images=[fields["PicUrl"]] if kind == "image" and fields.get("PicUrl", "").startswith("http") else [])
    handover = _Handover()
    work = asyncio.ensure_future(run_in_threadpool(_receive, request, tip, handover))
    try:
        reply = await asyncio.wait_for(asyncio.shield(work), timeout=get_settings().wechat_reply_deadline_seconds)
    except TimeoutError:
        if handover.give_up():  # the tip is still stored and matched; a refutation follows later
            log.warning("公众号 tip %s not answered within the deadline: acknowledged", msg_id)
            return _xml(passive_reply(openid, office, ACKNOWLEDGEMENT))
        try:
            reply = await work  # it finished just now
        except TipError as err:
            return _xml(passive_reply(openid, office, str(err)))
    except TipError as err:
        return _xml(passive_reply(openid, office, str(err)))
    return _xml(passive_reply(openid, office, reply))


class _Handover:
    """Who answers the resident when the work ends near the deadline: the passive reply (the
    request still waits) or the outbox (the request gave up and sent the acknowledgement)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gave_up = False
        self._taken = False

    def take(self) -> bool:
        """The worker's reply is ready: True when the passive reply will carry it."""
        with self._lock:
            self._taken = not self._gave_up
            return self._taken

    def give_up(self) -> bool:
        """The deadline passed: True when the worker has not handed its reply over yet."""
        with self._lock:
            self._gave_up = not self._taken
            return self._gave_up


def _receive(request: Request, tip: TipIn, handover: _Handover) -> str:
    try:
        outcome = take_tip(request.app.state.sessionmaker, tip, limit_reporter=True)
    except TipError:
        handover.take()
        raise
    if not handover.take() and outcome is not None and outcome.new and outcome.auto_answered:
        send_first_reply_later(request.app.state.sessionmaker, outcome.tip.id)
    return FLOOD_REPLY if outcome is None else outcome.reply


def _xml(text: str) -> Response:
    return Response(text, media_type="application/xml")
