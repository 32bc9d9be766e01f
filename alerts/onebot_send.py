"""A small client of the OneBot v11 HTTP API (go-cqhttp, NapCat, LLOneBot, Lagrange ...): the bot
sends messages for us.

``POST {YUQING_ONEBOT_API_URL}/send_group_msg`` (or ``send_private_msg``) with a JSON body and
``Authorization: Bearer {YUQING_ONEBOT_ACCESS_TOKEN}``; the answer is
``{"status": "ok", "retcode": 0, "data": {"message_id": ...}}``. Messages go as plain text with
``auto_escape`` so nothing in them is read as a CQ code.

Errors say whether the message surely did NOT go out (:attr:`OneBotSendError.sent_maybe` False:
the bot was unreachable, refused the token, or answered ``failed``) or whether it may have gone
out (a timeout after the request was written): a caller that must never send twice retries only
the first kind.
"""

from __future__ import annotations

from typing import Any

import httpx

from core.errors import YuqingError
from core.settings import Settings, get_settings


class OneBotSendError(YuqingError):
    """The bot did not confirm the message. ``sent_maybe``: it may have been delivered anyway."""

    def __init__(self, message: str, *, sent_maybe: bool = False) -> None:
        super().__init__(message)
        self.sent_maybe = sent_maybe


def _call(action: str, params: dict[str, Any], settings: Settings) -> dict[str, Any]:
    if not settings.onebot_api_url:
        raise OneBotSendError("未配置机器人接口：请设置 YUQING_ONEBOT_API_URL（OneBot v11 HTTP 地址）和访问令牌")
    url = settings.onebot_api_url.rstrip("/") + "/" + action
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "yuqing-publish/0.1"}
    if settings.onebot_access_token is not None and settings.onebot_access_token.get_secret_value():
        headers["Authorization"] = "Bearer " + settings.onebot_access_token.get_secret_value()
    try:
        with httpx.Client(timeout=settings.onebot_timeout_seconds, trust_env=False, follow_redirects=False) as c:
            response = c.post(url, json=params, headers=headers)
    except (httpx.ConnectError, httpx.ConnectTimeout) as err:  # nothing reached the bot
        raise OneBotSendError(f"无法连接机器人接口 {settings.onebot_api_url}：{err}") from err
    except httpx.HTTPError as err:  # the request may have reached it
        raise OneBotSendError(f"机器人接口没有及时回答（{type(err).__name__}），消息可能已发出：{err}",
                              sent_maybe=True) from err
    if response.status_code in (401, 403):
        raise OneBotSendError(f"机器人接口拒绝了访问令牌（HTTP {response.status_code}）：请检查 YUQING_ONEBOT_ACCESS_TOKEN")
    if response.status_code == 404:
        raise OneBotSendError(f"机器人接口没有 {action}（HTTP 404）：请检查 YUQING_ONEBOT_API_URL")
    if response.status_code >= 300:
        raise OneBotSendError(f"机器人接口返回 HTTP {response.status_code}：{response.text[:200]}",
                              sent_maybe=response.status_code >= 500)
    try:
        body = response.json()
    except ValueError as err:
        raise OneBotSendError(f"机器人接口的回答不是 JSON：{response.text[:200]}", sent_maybe=True) from err
    if not isinstance(body, dict):
        raise OneBotSendError(f"机器人接口的回答格式不对：{str(body)[:200]}", sent_maybe=True)
    # retcode 1 (status "async"): accepted, sent later by the framework
    if body.get("status") == "failed" or body.get("retcode") not in (0, 1):
        msg = body.get("wording") or body.get("msg") or body.get("message") or ""
        raise OneBotSendError(f"机器人发送失败（retcode {body.get('retcode')}）：{msg}")
    data = body.get("data")
    return data if isinstance(data, dict) else {}


def send_group_msg(group_id: int | str, message: str, *, settings: Settings | None = None) -> str | None:
    """Send ``message`` (plain text) to a group; returns the bot's message id."""
    data = _call("send_group_msg", {"group_id": int(group_id), "message": message, "auto_escape": True},
                 settings or get_settings())
    mid = data.get("message_id")
    return None if mid is None else str(mid)


def send_private_msg(user_id: int | str, message: str, *, settings: Settings | None = None) -> str | None:
    """Send ``message`` (plain text) to one person; returns the bot's message id."""
    data = _call("send_private_msg", {"user_id": int(user_id), "message": message, "auto_escape": True},
                 settings or get_settings())
    mid = data.get("message_id")
    return None if mid is None else str(mid)
