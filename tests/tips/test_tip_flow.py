"""What happens to a tip: stored once, matched, answered at once or when staff respond, and
answered exactly once even when the sender crashes mid-send. The bot framework is a real HTTP
server on loopback (tests/tips/onebot_api.py)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select

from alerts.notify import NotifyConfig, deliver_due
from alerts.tips import ACKNOWLEDGEMENT, receive_tip
from alerts.workflow import respond, transition
from core.db import make_engine, session_scope
from core.tables import Notification, Post, Tip, utcnow
from core.tips import TipIn, block_reporter, open_contact, purge_tips, reporter_key
from tests.factories import make_alert, make_debunk, make_incident, make_user
from tests.onebot_server import OneBotApi as OneBotApiServer

CLAIM = "青禾镇将全面封路，所有车辆禁止通行"


def _qq(text: str, message_id: str, user: str = "10001") -> TipIn:
    return TipIn(channel="qq", message_id=message_id, text=text, address=user, wants_answer=True)


def test_a_known_claim_gets_the_refutation_once(fresh_db_url: str, onebot_api: OneBotApiServer) -> None:
    engine = make_engine(fresh_db_url)
    with session_scope(engine) as s:
        make_debunk(s, claim=CLAIM)
        first = receive_tip(s, _qq("青禾镇将全面封路，所有车辆禁止通行，是真的吗", "m1"))
        again = receive_tip(s, _qq("青禾镇将全面封路，所有车辆禁止通行，是真的吗", "m1"))
        assert first.new and first.auto_answered and not again.new
        assert "【官方辟谣】" in first.reply and "没有封路安排" in first.reply and "example.org" in first.reply
        assert again.reply == first.reply
    config = NotifyConfig()
    deliver_due(engine, config=config)
    deliver_due(engine, config=config)
    sent = onebot_api.sent("send_private_msg")
    assert len(sent) == 1 and sent[0]["user_id"] == 10001 and "没有封路安排" in sent[0]["message"]
    with session_scope(engine) as s:
        tip = s.scalars(select(Tip)).one()
        assert tip.status == "auto_answered" and tip.debunk_id is not None
        assert "10001" not in (tip.contact_sealed or "") and "10001" not in tip.reporter_key
        assert open_contact(tip.contact_sealed or "") == {"channel": "qq", "address": "10001"}
        post = s.get(Post, tip.post_id)
        assert post is not None and post.channel == "chat" and "10001" not in (post.author or "")
        assert all("10001" not in n.target for n in s.scalars(select(Notification)))
    engine.dispose()


def test_an_unknown_claim_is_acknowledged_and_answered_once_staff_respond(
    fresh_db_url: str, onebot_api: OneBotApiServer
) -> None:
    engine = make_engine(fresh_db_url)
    with session_scope(engine) as s:
        make_debunk(s, claim=CLAIM)
        outcome = receive_tip(s, _qq("东湾村的桥是不是塌了？明天还能过吗", "m2", user="20002"))
        quiet = receive_tip(s, TipIn(channel="web", message_id="f1", text="东湾村的桥塌了吗"))  # no contact
        assert not outcome.auto_answered and outcome.reply == ACKNOWLEDGEMENT
        staff = make_user(s, "staff")
        incident = make_incident(s)
        for tip in (outcome.tip, quiet.tip):
            post = s.get(Post, tip.post_id)
            assert post is not None
            post.incident_id = incident.id
        alert = make_alert(s, incident_id=incident.id)
        s.flush()
        alert_id, staff_id = alert.id, staff.id
    deliver_due(engine, config=NotifyConfig())
    assert [m["message"] for m in onebot_api.sent("send_private_msg")] == [ACKNOWLEDGEMENT]
    with session_scope(engine) as s:
        transition(s, alert_id, "confirmed_rumor", actor=staff_id)
        respond(s, alert_id, text="东湾村大桥完好，正常通行。", channels=["公众号"], actor=staff_id)
    with session_scope(engine) as s:  # a second response does not answer the same resident again
        respond(s, alert_id, text="再次说明：东湾村大桥完好。", channels=["公众号"], actor=staff_id)
    deliver_due(engine, config=NotifyConfig())
    deliver_due(engine, config=NotifyConfig())
    messages = [m["message"] for m in onebot_api.sent("send_private_msg")]
    assert messages[0] == ACKNOWLEDGEMENT and len(messages) == 2
    assert "东湾村大桥完好，正常通行" in messages[1] and messages[1].startswith("【答复】")
    with session_scope(engine) as s:
        tips = {t.channel: t for t in s.scalars(select(Tip))}
        assert tips["qq"].status == "answered" and tips["qq"].answered_at is not None
        assert tips["web"].status == "acknowledged"  # nobody to answer: no contact left
    engine.dispose()


def test_no_double_answer_after_a_crash_mid_send(fresh_db_url: str, onebot_api: OneBotApiServer) -> None:
    from alerts.notify import send

    engine = make_engine(fresh_db_url)
    with session_scope(engine) as s:
        receive_tip(s, _qq("东湾村的桥是不是塌了？", "m3"))

    def crash_after_sending(n, route, settings):  # the process dies after the framework got it
        send(n, route, settings)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        deliver_due(engine, config=NotifyConfig(), sender=crash_after_sending)
    later = utcnow() + dt.timedelta(minutes=10)
    deliver_due(engine, config=NotifyConfig(), now=lambda: later)
    deliver_due(engine, config=NotifyConfig(), now=lambda: later + dt.timedelta(hours=1))
    assert len(onebot_api.sent("send_private_msg")) == 1
    with session_scope(engine) as s:
        row = s.scalars(select(Notification)).one()
        assert row.status == "unsure" and "人工核实" in (row.last_error or "")
    engine.dispose()


def test_a_refusing_bot_is_retried_and_answers_once_it_can(fresh_db_url: str, onebot_api: OneBotApiServer) -> None:
    engine = make_engine(fresh_db_url)
    with session_scope(engine) as s:
        receive_tip(s, _qq("东湾村的桥是不是塌了？", "m4", user="30003"))
    onebot_api.refused.add(30003)
    stats = deliver_due(engine, config=NotifyConfig())
    assert stats.failed == 1 and onebot_api.sent("send_private_msg") == []
    onebot_api.refused.clear()
    deliver_due(engine, config=NotifyConfig(), now=lambda: utcnow() + dt.timedelta(hours=1))
    assert len(onebot_api.sent("send_private_msg")) == 1
    engine.dispose()


def test_blocked_reporters_are_kept_out_and_retention_applies(session) -> None:
    block_reporter(session, reporter_key("qq", "66666"), reason="辱骂")
    outcome = receive_tip(session, _qq("骂人的话", "m5", user="66666"))
    assert outcome.tip.status == "abuse" and outcome.tip.post_id is None
    old = receive_tip(session, TipIn(channel="hotline", message_id="h1", text="旧线索",
                                     received_at=utcnow() - dt.timedelta(days=400)))
    assert purge_tips(session, days=180) == 1
    session.flush()
    assert session.get(Tip, old.tip.id) is None


def test_the_digest_counts_the_days_tips(session) -> None:
    from zoneinfo import ZoneInfo

    from digest.build import build_summary

    receive_tip(session, TipIn(channel="hotline", message_id="d1", text="东湾村的桥塌了吗"))
    receive_tip(session, TipIn(channel="web", message_id="d2", text="菜市场的肉有问题吗"))
    summary = build_summary(session, utcnow().astimezone(ZoneInfo("Asia/Shanghai")).date())
    assert summary["tips_note"].startswith("收到 2 条") and "待核实 2 条" in summary["tips_note"]


def test_without_auto_replies_a_known_claim_is_acknowledged_with_the_match_noted(session, monkeypatch) -> None:
    from core.settings import get_settings

    monkeypatch.delenv("YUQING_TIP_AUTO_REPLY_CHANNELS")
    get_settings.cache_clear()
    make_debunk(session, claim=CLAIM)
    outcome = receive_tip(session, _qq("青禾镇将全面封路，所有车辆禁止通行，是真的吗", "m9"))
    assert not outcome.auto_answered and outcome.reply == ACKNOWLEDGEMENT
    assert outcome.tip.debunk_id is not None and outcome.tip.status == "acknowledged"


def test_the_digest_shows_each_rumors_tips(session) -> None:
    """Per incident: the tips residents sent about a matter appear under it in the digest."""
    from zoneinfo import ZoneInfo

    from digest.build import build_summary
    from digest.render import render

    at = utcnow() - dt.timedelta(minutes=30)
    incident = make_incident(session, title="东湾村的桥塌了？", now=at, first_seen=at, last_seen=at, post_count=3)
    alert = make_alert(session, title="东湾村的桥塌了？", created_at=at, severity="high")
    alert.incident_id = incident.id
    for k in range(3):
        tip = receive_tip(session, _qq("东湾村的桥是不是塌了？", f"dg{k}", user=f"4000{k}")).tip
        post = session.get(Post, tip.post_id)
        assert post is not None
        post.incident_id = incident.id  # as the analysis places them
    receive_tip(session, _qq("菜市场的肉有问题吗", "dg9", user="40009"))  # another matter
    session.flush()
    summary = build_summary(session, utcnow().astimezone(ZoneInfo("Asia/Shanghai")).date())
    item = next(r for r in summary["top_rumors"] if r["id"] == alert.id)
    assert item["tips"].startswith("居民举报 3 条") and "待核实 3" in item["tips"]
    out = render(summary, title="舆情日报")
    assert "居民举报 3 条" in out.text and "居民举报 3 条" in out.html


def test_two_deliveries_racing_store_one_new_tip(fresh_db_url: str) -> None:
    """The second of two deliveries of one message in flight at once finds nothing yet, meets the
    first at the unique key and must learn the tip is not new (else it is answered twice)."""
    import threading

    from core.tips import store_tip

    engine = make_engine(fresh_db_url)
    tip = _qq("青禾镇明天封路吗", "race-1")
    second: list[bool] = []
    with session_scope(engine) as s:
        assert store_tip(s, tip).new  # inserted, not yet committed
        other = threading.Thread(target=lambda: second.append(_store_new(engine, tip)))
        other.start()
        other.join(0.5)  # it waits on the unique key (PostgreSQL) or the write lock (SQLite)
    other.join(30)
    assert second == [False]
    with session_scope(engine) as s:
        assert len(s.scalars(select(Tip)).all()) == 1


def _store_new(engine: Engine, tip: TipIn) -> bool:
    from core.tips import store_tip

    with session_scope(engine) as s:
        return store_tip(s, tip).new
