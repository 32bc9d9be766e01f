"""The OneBot HTTP API client against a real HTTP server on loopback."""

from __future__ import annotations

import pytest

from alerts.onebot_send import OneBotApi, OneBotSendError, send_group_msg, send_private_msg
from tests.onebot_server import OneBotApi as OneBotApiServer


def test_private_and_group_messages_reach_the_framework_as_plain_text(onebot_api: OneBotApiServer) -> None:
    data = send_private_msg("10001", "已收到，正在核实… [CQ:at,qq=all]")
    send_group_msg(20002, "官方辟谣：不封路")
    assert data["message_id"] == 9001  # the framework's id of the first message, handed back
    private = onebot_api.sent("send_private_msg")
    assert private == [{"user_id": 10001, "message": "已收到，正在核实… [CQ:at,qq=all]", "auto_escape": True}]
    assert onebot_api.sent("send_group_msg")[0]["group_id"] == 20002


def test_a_refusal_by_the_bot_is_an_error(onebot_api: OneBotApiServer) -> None:
    onebot_api.refused.add(10003)
    with pytest.raises(OneBotSendError, match="未能发送"):
        send_private_msg(10003, "你好")
    assert onebot_api.sent("send_private_msg") == []


def test_a_wrong_token_and_a_dead_framework_are_errors(onebot_api: OneBotApiServer) -> None:
    with pytest.raises(OneBotSendError, match="令牌"):
        send_private_msg(1, "x", api=OneBotApi(url=onebot_api.url, token="wrong"))
    onebot_api.stop()
    with pytest.raises(OneBotSendError, match="无法连接"):
        send_private_msg(1, "x")


def test_unconfigured_api_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import get_settings

    monkeypatch.delenv("YUQING_ONEBOT_API_URL", raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(OneBotSendError, match="YUQING_ONEBOT_API_URL"):
            send_private_msg(1, "x")
    finally:
        get_settings.cache_clear()
