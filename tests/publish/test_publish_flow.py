"""Publishing an approved response end to end: draft, approval by a second person, the group
messages through a real OneBot HTTP API server on loopback, per-group results, and no double
message after a crash mid-send. On SQLite and PostgreSQL (``db`` marker)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from alerts import publish
from alerts.publish_delivery import CLAIM_SECONDS, deliver_publications
from core.db import session_scope
from core.errors import Conflict, InvalidInput, PermissionDenied
from core.settings import get_settings
from core.tables import AlertEvent, Publication, PublicationTarget, Response, User, utcnow
from tests.onebot_server import OneBotApi
from tests.publish.conftest import Matter, seed_matter

REPO = Path(__file__).resolve().parents[2]


def _user(s, uid: int) -> User:
    user = s.get(User, uid)
    assert user is not None
    return user


def _draft(engine: Engine, m: Matter, group_ids: list[int] | None = None, by: int | None = None) -> int:
    with session_scope(engine) as s:
        p, created = publish.draft(s, m.alert_id, claim="青禾镇明天要封路", text="经核实，青禾镇明天没有封路安排，道路正常通行。",
                                   url="https://qinghe.example.gov.cn/piyao/7", group_ids=group_ids,
                                   actor=_user(s, by or m.staff))
        assert created
        return p.id


def _approve(engine: Engine, pid: int, uid: int) -> None:
    with session_scope(engine) as s:
        publish.approve(s, pid, actor=_user(s, uid))


def _targets(engine: Engine, pid: int) -> dict[str, str]:
    with session_scope(engine) as s:
        return {t.external_id: t.status for t in s.scalars(
            select(PublicationTarget).where(PublicationTarget.publication_id == pid))}


def test_draft_defaults_to_spread_groups_and_sends_nothing_before_approval(api_engine: Engine, onebot: OneBotApi) -> None:
    m = seed_matter(api_engine)
    pid = _draft(api_engine, m)
    # the three QQ groups it spread in, most posts first; not the WeChat group (the bot cannot reach it)
    assert list(_targets(api_engine, pid)) == [str(n) for n in m.numbers]
    assert set(_targets(api_engine, pid).values()) == {"waiting"}
    stats = deliver_publications(api_engine)
    assert stats.due == 0 and onebot.calls == []
    with session_scope(api_engine) as s:
        assert s.scalar(select(Response.id).where(Response.alert_id == m.alert_id)) is None


def test_one_person_cannot_draft_and_approve(api_engine: Engine, onebot: OneBotApi) -> None:
    m = seed_matter(api_engine)
    pid = _draft(api_engine, m, by=m.analyst)
    with pytest.raises(Conflict, match="另一位"):
        _approve(api_engine, pid, m.analyst)
    with pytest.raises(PermissionDenied):  # staff may draft, not approve (approver role: analyst)
        _approve(api_engine, pid, m.staff)
    with pytest.raises(PermissionDenied):
        _approve(api_engine, pid, m.viewer)
    deliver_publications(api_engine)
    assert onebot.calls == []


def test_single_approver_when_the_office_says_so(api_engine: Engine, onebot: OneBotApi,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUQING_PUBLISH_SINGLE_APPROVER", "true")
    get_settings.cache_clear()
    m = seed_matter(api_engine)
    pid = _draft(api_engine, m, [m.groups[0]], by=m.analyst)
    _approve(api_engine, pid, m.analyst)
    deliver_publications(api_engine)
    assert onebot.sent_to() == [m.numbers[0]]


def test_approved_publication_goes_to_each_group_once_with_history(api_engine: Engine, onebot: OneBotApi) -> None:
    m = seed_matter(api_engine)
    pid = _draft(api_engine, m)
    _approve(api_engine, pid, m.analyst)
    _approve(api_engine, pid, m.analyst)  # approving again changes nothing
    stats = deliver_publications(api_engine)
    assert (stats.sent, stats.failed) == (3, 0)
    assert onebot.sent_to() == m.numbers
    call = onebot.calls[0]
    assert call["headers"]["Authorization"] == f"Bearer {onebot.token}"
    assert call["json"]["auto_escape"] is True
    assert "经核实，青禾镇明天没有封路安排" in call["json"]["message"]
    assert "https://qinghe.example.gov.cn/piyao/7" in call["json"]["message"]
    assert "青禾镇人民政府" in call["json"]["message"]
    deliver_publications(api_engine)  # nothing left
    assert len(onebot.calls) == 3
    assert set(_targets(api_engine, pid).values()) == {"sent"}
    with session_scope(api_engine) as s:
        p = s.get(Publication, pid)
        assert p is not None and p.response_id is not None
        response = s.get(Response, p.response_id)
        assert response is not None and "QQ群" in response.channels and response.spread_before  # measured
        actions = [e.action for e in s.scalars(select(AlertEvent).where(AlertEvent.alert_id == m.alert_id)
                                                .order_by(AlertEvent.id))]
        assert actions.count("publication_drafted") == 1 and actions.count("publication_approved") == 1
        assert actions.count("publication_sent") == 3 and "responded" in actions
        ids = [t.message_id for t in s.scalars(select(PublicationTarget).where(PublicationTarget.publication_id == pid))]
        assert all(ids)


def test_per_group_results_retry_what_surely_failed(api_engine: Engine, onebot: OneBotApi) -> None:
    m = seed_matter(api_engine)
    onebot.refused = {m.numbers[1]}
    pid = _draft(api_engine, m)
    _approve(api_engine, pid, m.analyst)
    stats = deliver_publications(api_engine)
    assert (stats.sent, stats.failed) == (2, 1)
    assert _targets(api_engine, pid) == {str(m.numbers[0]): "sent", str(m.numbers[1]): "failed",
                                         str(m.numbers[2]): "sent"}
    with session_scope(api_engine) as s:
        failed = s.scalar(select(PublicationTarget).where(PublicationTarget.external_id == str(m.numbers[1])))
        assert failed is not None and "群不存在" in (failed.last_error or "")
    onebot.refused = set()
    later = utcnow() + dt.timedelta(hours=1)  # past the backoff
    deliver_publications(api_engine, now=lambda: later)
    assert sorted(onebot.sent_to()) == sorted(m.numbers)  # each once, the failed one on the retry
    assert set(_targets(api_engine, pid).values()) == {"sent"}


def test_a_timeout_is_never_resent_by_itself(api_engine: Engine, onebot: OneBotApi,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUQING_NOTIFY_TIMEOUT_SECONDS", "0.5")
    get_settings.cache_clear()
    m = seed_matter(api_engine)
    onebot.slow, onebot.slow_seconds = {m.numbers[0]}, 2.0
    pid = _draft(api_engine, m, [m.groups[0]])
    _approve(api_engine, pid, m.analyst)
    stats = deliver_publications(api_engine)
    assert stats.unknown == 1
    later = utcnow() + dt.timedelta(hours=2)
    deliver_publications(api_engine, now=lambda: later)
    assert onebot.sent_to() == [m.numbers[0]]  # the bot got it once; we did not send it again
    assert _targets(api_engine, pid) == {str(m.numbers[0]): "unknown"}
    with session_scope(api_engine) as s:  # staff checked the group: not there, send again
        target = s.scalar(select(PublicationTarget).where(PublicationTarget.publication_id == pid))
        assert target is not None
        publish.retry_target(s, pid, target.id, actor=_user(s, m.staff))
    onebot.slow = set()
    deliver_publications(api_engine)
    assert onebot.sent_to() == [m.numbers[0], m.numbers[0]]
    assert _targets(api_engine, pid) == {str(m.numbers[0]): "sent"}


def test_a_crash_mid_send_never_publishes_twice(api_engine: Engine, onebot: OneBotApi, fresh_db_url: str) -> None:
    m = seed_matter(api_engine)
    pid = _draft(api_engine, m)
    _approve(api_engine, pid, m.analyst)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "tests.publish.crash_sender", fresh_db_url, "2"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert onebot.sent_to() == m.numbers[:2]  # the second went out; the process died before writing that down
    assert _targets(api_engine, pid) == {str(m.numbers[0]): "sent", str(m.numbers[1]): "sending",
                                         str(m.numbers[2]): "pending"}
    deliver_publications(api_engine)  # a restart right away: the interrupted row is still claimed
    later = utcnow() + dt.timedelta(seconds=CLAIM_SECONDS + 60)
    deliver_publications(api_engine, now=lambda: later)  # after the claim window
    assert onebot.sent_to() == m.numbers  # every group exactly once
    assert _targets(api_engine, pid) == {str(m.numbers[0]): "sent", str(m.numbers[1]): "unknown",
                                         str(m.numbers[2]): "sent"}
    with session_scope(api_engine) as s:
        unknown = [e.comment for e in s.scalars(select(AlertEvent).where(
            AlertEvent.alert_id == m.alert_id, AlertEvent.action == "publication_unknown"))]
        assert len(unknown) == 1 and "东湾村1组群" in (unknown[0] or "")


def test_bad_drafts_are_refused(api_engine: Engine) -> None:
    m = seed_matter(api_engine)
    with session_scope(api_engine) as s:
        staff = _user(s, m.staff)
        with pytest.raises(InvalidInput, match="不能为空"):
            publish.draft(s, m.alert_id, claim="  ", text="x", actor=staff)
        with pytest.raises(InvalidInput, match="太长"):
            publish.draft(s, m.alert_id, claim="封路", text="长" * 1001, actor=staff)
        with pytest.raises(InvalidInput, match="链接"):
            publish.draft(s, m.alert_id, claim="封路", text="没有", url="javascript:alert(1)", actor=staff)
        with pytest.raises(InvalidInput, match="柳树村微信群"):
            publish.draft(s, m.alert_id, claim="封路", text="没有", group_ids=[m.wechat_group], actor=staff)
        with pytest.raises(InvalidInput, match="不存在"):
            publish.draft(s, m.alert_id, claim="封路", text="没有", group_ids=[10**9], actor=staff)
        with pytest.raises(PermissionDenied):
            publish.draft(s, m.alert_id, claim="封路", text="没有", actor=_user(s, m.viewer))
        first, created = publish.draft(s, m.alert_id, claim="封路", text="没有", group_ids=[m.other_group], actor=staff)
        again, created_again = publish.draft(s, m.alert_id, claim="封路", text="没有", group_ids=[m.other_group],
                                             actor=staff)
        assert created and not created_again and again.id == first.id


def test_a_rejected_draft_is_never_sent(api_engine: Engine, onebot: OneBotApi) -> None:
    m = seed_matter(api_engine)
    pid = _draft(api_engine, m)
    with session_scope(api_engine) as s:
        publish.reject(s, pid, actor=_user(s, m.analyst), reason="措辞要再改")
    with pytest.raises(Conflict, match="退回"):
        _approve(api_engine, pid, m.analyst)
    deliver_publications(api_engine)
    assert onebot.calls == [] and set(_targets(api_engine, pid).values()) == {"cancelled"}


def test_approval_needs_a_confirmed_alert(api_engine: Engine, onebot: OneBotApi) -> None:
    m = seed_matter(api_engine, status="acknowledged")
    pid = _draft(api_engine, m)
    with pytest.raises(Conflict, match="确认为谣言或关切"):
        _approve(api_engine, pid, m.analyst)
    deliver_publications(api_engine)
    assert onebot.calls == []


def test_pacing_between_group_messages(api_engine: Engine, onebot: OneBotApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUQING_PUBLISH_SEND_INTERVAL_SECONDS", "2.5")
    get_settings.cache_clear()
    m = seed_matter(api_engine)
    pid = _draft(api_engine, m)
    _approve(api_engine, pid, m.analyst)
    clock = {"now": utcnow()}
    pauses: list[float] = []

    def sleep(seconds: float) -> None:  # a clock that moves only when the sender waits
        pauses.append(round(seconds, 3))
        clock["now"] += dt.timedelta(seconds=seconds)

    deliver_publications(api_engine, sleep=sleep, now=lambda: clock["now"])
    assert pauses == [2.5, 2.5] and len(onebot.sent_to()) == 3


def test_yuqing_run_delivers_what_is_due(api_engine: Engine, onebot: OneBotApi) -> None:
    from core.settings import get_settings as settings_now
    from yuqing.commands.alerts import publish_deliver_job
    from yuqing.scheduler import collect_jobs

    assert "publish-deliver" in {j.id for j in collect_jobs(settings_now())}
    m = seed_matter(api_engine)
    pid = _draft(api_engine, m, [m.groups[2]])
    _approve(api_engine, pid, m.analyst)
    assert publish_deliver_job()["sent"] == 1  # the configured database (YUQING_DATABASE_URL)
    assert onebot.sent_to() == [m.numbers[2]]
