"""Sending through a OneBot v11 bot framework's HTTP API (go-cqhttp, NapCat, LLOneBot, Lagrange).

The framework exposes ``POST <api>/send_private_msg`` and ``POST <api>/send_group_msg`` with a
JSON body; its access token goes in ``Authorization: Bearer <token>``. It answers HTTP 200 with
``{"status": "ok", "retcode": 0, "data": {"message_id": ...}}``, or with a non-zero ``retcode``
(``status: "failed"``) when the bot cannot send (not a friend, muted, unknown group): that is a
failure too, so callers (the notification outbox) retry it.

Messages are sent as plain text (``auto_escape: true``): text from residents or staff is never
read as CQ codes, so nobody can smuggle an ``[CQ:at,qq=all]`` or an image through a reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from core.settings import Settings, get_settings

#: Longest text one message carries; QQ refuses very long messages, a reply is short anyway.
MAX_MESSAGE_CHARS = 4500


class OneBotSendError(Exception):
    """The framework could not be reached or refused to send; ``status_code`` when it answered."""

    def __init__(self, message: str, status_code: int | None = None, *, maybe_sent: bool = False) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.maybe_sent = maybe_sent  # the request went out but no answer came (a read timeout)


@dataclass(frozen=True)
class OneBotApi:
    """Where the framework's HTTP API is and how to authenticate to it."""

    url: str
    token: str | None = None
    timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> OneBotApi:
        settings = settings or get_settings()
        if not settings.onebot_api_url:
            raise OneBotSendError(
                "未配置 QQ 机器人接口：设置 YUQING_ONEBOT_API_URL（机器人框架的 HTTP API 地址，"
                "如 http://127.0.0.1:5700）和 YUQING_ONEBOT_API_TOKEN 后会自动重试"
            )
        token = settings.onebot_api_token.get_secret_value() if settings.onebot_api_token else None
        return cls(url=settings.onebot_api_url, token=token or None, timeout=settings.notify_timeout_seconds)


def _call(api: OneBotApi, action: str, params: dict[str, Any]) -> dict[str, Any]:
    """POST one action; the framework's ``data`` on success, OneBotSendError otherwise."""
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "yuqing-onebot/0.1"}
    if api.token:
        headers["Authorization"] = f"Bearer {api.token}"
    url = f"{api.url.rstrip('/')}/{action}"
    try:
        with httpx.Client(timeout=api.timeout, follow_redirects=False, trust_env=False) as client:
            response = client.post(url, json=params, headers=headers)
    except (httpx.ConnectError, httpx.ConnectTimeout) as err:
        raise OneBotSendError(f"无法连接 QQ 机器人接口 {api.url}：{type(err).__name__} {err}") from err
    except httpx.HTTPError as err:
        raise OneBotSendError(f"QQ 机器人接口 {api.url} 没有回答（{type(err).__name__}）：消息可能已发出",
                              maybe_sent=True) from err
    if response.status_code in (401, 403):
        raise OneBotSendError(
            f"QQ 机器人接口拒绝了令牌（HTTP {response.status_code}）：检查 YUQING_ONEBOT_API_TOKEN "
            "与框架配置的 access-token 是否一致", response.status_code)
    if response.status_code >= 300:
        raise OneBotSendError(
            f"QQ 机器人接口 {action} 返回 HTTP {response.status_code}：{response.text[:200]}", response.status_code
        )
    try:
        body = response.json()
    except ValueError as err:
        raise OneBotSendError(f"QQ 机器人接口 {action} 的回答不是 JSON：{response.text[:200]}") from err
    if not isinstance(body, dict) or body.get("retcode", 0) != 0 or body.get("status") == "failed":
        detail = body.get("wording") or body.get("msg") or body.get("message") if isinstance(body, dict) else body
        code = body.get("retcode") if isinstance(body, dict) else None
        raise OneBotSendError(f"QQ 机器人未能发送（{action}，retcode {code}）：{detail}", response.status_code)
    data = body.get("data")
    return data if isinstance(data, dict) else {}


def _text(message: str) -> str:
    message = message.strip()
    if not message:
        raise OneBotSendError("消息为空，未发送")
    return message if len(message) <= MAX_MESSAGE_CHARS else message[: MAX_MESSAGE_CHARS - 1] + "…"


def send_private_msg(user_id: str | int, message: str, *, api: OneBotApi | None = None) -> dict[str, Any]:
    """Send ``message`` as plain text to one QQ user; returns the framework's data (message_id)."""
    api = api or OneBotApi.from_settings()
    return _call(api, "send_private_msg", {"user_id": _numeric(user_id), "message": _text(message),
                                            "auto_escape": True})


def send_group_msg(group_id: str | int, message: str, *, api: OneBotApi | None = None) -> dict[str, Any]:
    """Send ``message`` as plain text to one QQ group; returns the framework's data (message_id)."""
    api = api or OneBotApi.from_settings()
    return _call(api, "send_group_msg", {"group_id": _numeric(group_id), "message": _text(message),
                                          "auto_escape": True})


def _numeric(value: str | int) -> int | str:
    """QQ numbers go out as JSON numbers (some frameworks refuse strings); anything else as is."""
    text = str(value).strip()
    return int(text) if text.isdigit() else text
