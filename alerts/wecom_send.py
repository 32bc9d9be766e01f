"""Posting to 企业微信 (WeCom) groups through a group robot's webhook.

A WeCom group's owner adds a group robot (群机器人) and gets a webhook address
``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<key>``. Anyone holding the key can post
to that group, so the key is a secret: it comes from YUQING_WECOM_ROBOTS (environment or .env),
is never stored in the database, never logged and never put in an error message.

``POST <webhook>?key=<key>`` with a JSON body:

* ``{"msgtype": "text", "text": {"content": ...}}``: at most 2,048 bytes of UTF-8;
* ``{"msgtype": "markdown", "markdown": {"content": ...}}``: at most 4,096 bytes;
* ``{"msgtype": "image", "image": {"base64": ..., "md5": ...}}``: a JPG or PNG of at most 2 MB
  before base64, ``md5`` the hex MD5 of those raw bytes (the 辟谣 card).

It answers HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}``, or a non-zero ``errcode`` when it
did not post: 45009 when the robot sent more than 20 messages in a minute, 93000 when the key is
wrong or the robot was removed from the group, others for a bad message. Those are failures the
robot surely did not post, so the outbox retries them later; only a request that went out with
no answer (a read timeout) may have posted, and is never sent again by itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from core.settings import Settings, get_settings

MAX_TEXT_BYTES = 2048
MAX_MARKDOWN_BYTES = 4096
MAX_IMAGE_BYTES = 2 * 1024 * 1024
#: errcode: too many messages from this robot (20 a minute).
RATE_LIMITED = 45009
#: errcode: the webhook key is not valid (wrong, or the robot was removed).
BAD_KEY = 93000
#: Platforms of chat_groups a robot may be configured for.
PLATFORMS = ("wechat", "wecom")


class _HideKey(logging.Filter):
    """httpx logs each request's URL at INFO, and a robot's URL holds its key: hide the key."""

    _KEY = re.compile(r"([?&]key=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "key=" in message:
            record.msg, record.args = self._KEY.sub(r"\1***", message), None
        return True


logging.getLogger("httpx").addFilter(_HideKey())


class WeComSendError(Exception):
    """The robot did not post, or we cannot know whether it did (``maybe_sent``)."""

    def __init__(self, message: str, *, errcode: int | None = None, maybe_sent: bool = False) -> None:
        super().__init__(message)
        self.errcode = errcode
        self.maybe_sent = maybe_sent


@dataclass(frozen=True)
class Robot:
    """One group robot: its key (secret) and where the webhook is."""

    key: str
    url: str
    timeout: float = 10.0

    @property
    def account(self) -> str:
        """A name for the robot's rate limit that does not reveal the key."""
        return hashlib.sha256(self.key.encode()).hexdigest()[:16]


def _key_of(value: str) -> str:
    """A bare key, or the key inside a pasted webhook address (what the WeCom client shows)."""
    value = value.strip()
    if value.startswith(("http://", "https://")):
        keys = parse_qs(urlsplit(value).query).get("key") or [""]
        return keys[0].strip()
    return value


def robot_for(external_id: str, name: str, settings: Settings | None = None) -> Robot | None:
    """The robot configured for a group (by its id first, then by its name), or None."""
    settings = settings or get_settings()
    robots = settings.wecom_robots
    secret = robots.get(external_id) or robots.get(name)
    key = _key_of(secret.get_secret_value()) if secret is not None else ""
    if not key:
        return None
    return Robot(key=key, url=settings.wecom_webhook_url, timeout=settings.notify_timeout_seconds)


def fit(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8 (whole characters, an ellipsis at the cut)."""
    text = text.strip()
    if len(text.encode("utf-8")) <= limit:
        return text
    budget = limit - len("…".encode())
    out = text.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return out + "…"


def _post(robot: Robot, payload: dict[str, Any]) -> None:
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "yuqing-wecom/0.1"}
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    try:
        with httpx.Client(timeout=robot.timeout, follow_redirects=False, trust_env=False) as client:
            response = client.post(robot.url, params={"key": robot.key}, content=body, headers=headers)
    except (httpx.ConnectError, httpx.ConnectTimeout) as err:
        # the exception text carries no URL; ours must not carry the key either
        raise WeComSendError(f"无法连接企业微信群机器人接口：{type(err).__name__}") from None
    except httpx.HTTPError as err:
        raise WeComSendError(f"企业微信群机器人接口没有回答（{type(err).__name__}）：消息可能已发出",
                             maybe_sent=True) from None
    if response.status_code != 200:
        raise WeComSendError(f"企业微信群机器人接口返回 HTTP {response.status_code}")
    try:
        answer = response.json()
    except ValueError:
        raise WeComSendError(f"企业微信群机器人接口的回答不是 JSON：{response.text[:200]}") from None
    code = answer.get("errcode") if isinstance(answer, dict) else None
    if code == 0:
        return
    message = str(answer.get("errmsg", "")) if isinstance(answer, dict) else str(answer)[:200]
    if code == RATE_LIMITED:
        raise WeComSendError("企业微信群机器人发送太频繁（每个机器人每分钟最多 20 条），稍后自动重试", errcode=code)
    if code == BAD_KEY:
        raise WeComSendError("企业微信群机器人的 key 无效（填错或机器人已被移出群）：检查 YUQING_WECOM_ROBOTS "
                             "中这个群的 key", errcode=code)
    raise WeComSendError(f"企业微信群机器人未能发送（errcode {code}）：{message[:200]}",
                         errcode=code if isinstance(code, int) else None)


def send_text(robot: Robot, content: str) -> None:
    content = fit(content, MAX_TEXT_BYTES)
    if not content:
        raise WeComSendError("消息为空，未发送")
    _post(robot, {"msgtype": "text", "text": {"content": content}})


def send_markdown(robot: Robot, content: str) -> None:
    content = fit(content, MAX_MARKDOWN_BYTES)
    if not content:
        raise WeComSendError("消息为空，未发送")
    _post(robot, {"msgtype": "markdown", "markdown": {"content": content}})


def send_image(robot: Robot, data: bytes) -> None:
    """A PNG or JPG of at most 2 MB."""
    if not (data.startswith(b"\x89PNG") or data.startswith(b"\xff\xd8\xff")):
        raise WeComSendError("企业微信群机器人只能发 PNG 或 JPG 图片")
    if len(data) > MAX_IMAGE_BYTES:
        raise WeComSendError(f"图片 {len(data) / 1024 / 1024:.1f} MB，企业微信群机器人最多 2 MB")
    _post(robot, {"msgtype": "image", "image": {"base64": base64.b64encode(data).decode("ascii"),
                                                "md5": hashlib.md5(data, usedforsecurity=False).hexdigest()}})


_MARKDOWN_SPECIAL = str.maketrans({"<": "＜", ">": "＞", "[": "［", "]": "］", "*": "＊", "`": "｀", "#": "＃"})


def markdown_escape(text: str) -> str:
    """Text shown as is in WeCom markdown: no tags, links, emphasis or headings of its own."""
    return text.translate(_MARKDOWN_SPECIAL)
