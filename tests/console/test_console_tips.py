"""The console's 举报线索 page and the tips on an alert page, over a real uvicorn server: a viewer
sees tips but never a contact and cannot mark abuse; staff can."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from alerts.tips import receive_tip
from core.db import session_scope
from core.tables import AlertPost, Tip
from core.tips import TipIn, is_blocked
from tests.console.conftest import csrf_of


def test_tip_list_and_alert_page_show_tips_without_contacts(live: Any, client_as: Any) -> None:
    alert_id = live.scene.alerts["water"]
    with session_scope(live.engine) as s:
        tip = receive_tip(s, TipIn(channel="qq", message_id="c1", text="石桥村的水还能喝吗？", address="55501234",
                                   wants_answer=True)).tip
        receive_tip(s, TipIn(channel="web", message_id="c2", text="菜市场的肉有问题吗", address="me@example.org",
                             wants_answer=True))
        s.add(AlertPost(alert_id=alert_id, post_id=tip.post_id))
    viewer = client_as("chenkz")
    page = viewer.get("/tips")
    assert page.status_code == 200 and "举报线索" in page.text and "石桥村的水还能喝吗" in page.text
    assert "55501234" not in page.text and "me@example.org" not in page.text and "收到 <strong>2</strong>" in page.text
    alert_page = viewer.get(f"/alerts/{alert_id}")
    assert "居民举报与询问" in alert_page.text and "石桥村的水还能喝吗" in alert_page.text
    assert "55501234" not in alert_page.text
    with session_scope(live.engine) as s:
        tip_id = s.scalar(select(Tip.id).where(Tip.dedup_key == "qq:c1"))
    refused = viewer.post(f"/tips/{tip_id}/abuse", data={"csrf_token": csrf_of(page.text)})
    assert refused.status_code == 403
    staff = client_as("zhangmin")
    token = csrf_of(staff.get("/tips").text)
    done = staff.post(f"/tips/{tip_id}/abuse", data={"csrf_token": token, "block": "1"})
    assert done.status_code == 303
    with session_scope(live.engine) as s:
        assert s.get(Tip, tip_id).status == "abuse"  # type: ignore[union-attr]
        assert is_blocked(s, s.get(Tip, tip_id).reporter_key)  # type: ignore[union-attr]
    # marked by mistake: staff reopen it and take the reporter off the block list
    page = staff.get("/tips")
    assert f'action="/tips/{tip_id}/reopen"' in page.text and "重新打开" in page.text
    assert f'action="/tips/{tip_id}/reopen"' not in viewer.get("/tips").text
    done = staff.post(f"/tips/{tip_id}/reopen", data={"csrf_token": csrf_of(page.text), "unblock": "1"})
    assert done.status_code == 303
    with session_scope(live.engine) as s:
        tip = s.get(Tip, tip_id)
        assert tip is not None and tip.status == "acknowledged" and tip.closed_by is None
        assert not is_blocked(s, tip.reporter_key)


def test_staff_see_the_insult_flag_and_clear_it(live: Any, client_as: Any) -> None:
    with session_scope(live.engine) as s:
        outcome = receive_tip(s, TipIn(channel="web", message_id="c3", text="你们这帮 狗 官"))
        tip_id = outcome.tip.id
        assert outcome.tip.status == "abuse" and outcome.tip.flag == "insult"
    viewer = client_as("chenkz")
    page = viewer.get("/tips")
    assert "含辱骂" in page.text and "取消辱骂标记" not in page.text  # viewers see the flag, cannot act
    assert viewer.post(f"/tips/{tip_id}/unflag", data={"csrf_token": csrf_of(page.text)}).status_code == 403
    staff = client_as("zhangmin")
    page = staff.get("/tips")
    assert "取消辱骂标记" in page.text and f'action="/tips/{tip_id}/unflag"' in page.text
    done = staff.post(f"/tips/{tip_id}/unflag", data={"csrf_token": csrf_of(page.text)})
    assert done.status_code == 303
    with session_scope(live.engine) as s:
        tip = s.get(Tip, tip_id)
        assert tip is not None and tip.flag is None and tip.status == "acknowledged" and tip.post_id is not None
    assert "取消辱骂标记" not in staff.get("/tips").text
