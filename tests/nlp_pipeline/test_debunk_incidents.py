"""A new or edited debunk reaches the open incidents at once (through the API, both databases).

Incidents are created directly here: the grouping stage that builds them lives on another branch.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from core.db import session_scope
from core.tables import DebunkMatch, Incident, Post, utcnow
from nlp.claims import ClaimModelMissing, load_claim_matcher
from nlp.normalize import normalize
from tests.factories import make_post

BASE = "/api/v1/debunks"
REFUTATION = "经镇政府核实，相关说法不实，请勿传播。"


@pytest.fixture(autouse=True)
def _claim_matcher() -> None:
    try:
        load_claim_matcher()
    except ClaimModelMissing as err:  # pragma: no cover - the model ships with the repository
        pytest.fail(f"the shipped claim matcher is missing: {err}")


def _incident(engine: Engine, posts: list[tuple[str, str | None]], *, status: str = "active") -> dict[str, Any]:
    """An incident with posts (text, role); returns ids and the incident's updated_at."""
    old = utcnow() - dt.timedelta(hours=3)
    with session_scope(engine) as s:
        inc = Incident(kind="rumor", first_seen=old, last_seen=old, status=status, created_at=old, updated_at=old)
        s.add(inc)
        s.flush()
        ids = [make_post(s, text, norm_text=normalize(text), role=role, incident_id=inc.id).id for text, role in posts]
        return {"id": inc.id, "posts": ids, "updated_at": old}


def _state(engine: Engine, incident_id: int) -> tuple[int | None, float | None, dt.datetime]:
    with session_scope(engine) as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None
        return inc.debunk_id, inc.debunk_similarity, inc.updated_at


def _matched_posts(engine: Engine, debunk_id: int) -> set[int]:
    with session_scope(engine) as s:
        return set(s.scalars(select(DebunkMatch.post_id).where(DebunkMatch.debunk_id == debunk_id)))


def _naive(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=None) if value.tzinfo else value


def test_new_debunk_reaches_the_open_incident_that_retells_it(
    api_client: TestClient, make_user: Any, api_engine: Engine
) -> None:
    staff = make_user("staff")
    water = _incident(api_engine, [
        ("紧急扩散！石桥村自来水被化工厂污染了，千万不能喝", "claim"),
        ("石桥村的自来水被化工厂污染了，大家都别喝了", None),  # role not yet known: a claim candidate
        ("石桥村的水真的被污染了吗？", "question"),  # a question is not a claim
    ])
    other_village = _incident(api_engine, [("东湾村自来水被化工厂污染了，不能喝", "claim")])
    closed = _incident(api_engine, [("石桥村自来水被化工厂污染了，不能喝", "claim")], status="dormant")
    unrelated = _incident(api_engine, [("明天镇上有集市，大家去赶集", "claim")])

    created = api_client.post(
        BASE, json={"claim": "石桥村自来水被化工厂污染了，不能喝", "refutation": REFUTATION}, headers=staff
    )
    assert created.status_code == 201, created.text
    debunk_id = created.json()["id"]

    debunk, similarity, updated = _state(api_engine, water["id"])
    assert debunk == debunk_id and similarity is not None and 0 < similarity <= 1
    assert _naive(updated) > _naive(water["updated_at"])  # the alert evaluation sees the change
    matched = _matched_posts(api_engine, debunk_id)
    assert set(water["posts"][:2]) <= matched  # both claim posts, the reworded one too
    assert water["posts"][2] not in matched  # not the question
    for inc in (other_village, closed, unrelated):
        assert _state(api_engine, inc["id"])[0] is None, inc
    assert not matched & {*other_village["posts"], *closed["posts"], *unrelated["posts"]}

    # Editing the debunk again is idempotent: no duplicate matches, the incident keeps it.
    patched = api_client.patch(f"{BASE}/{debunk_id}", json={"refutation": "水质检测合格。"}, headers=staff)
    assert patched.status_code == 200, patched.text
    with session_scope(api_engine) as s:
        count = s.scalar(select(func.count()).select_from(DebunkMatch).where(DebunkMatch.debunk_id == debunk_id))
    assert count == len(matched)
    assert _state(api_engine, water["id"])[0] == debunk_id


def test_edited_claim_and_import_reach_incidents(api_client: TestClient, make_user: Any, api_engine: Engine) -> None:
    staff = make_user("staff")
    subsidy = _incident(api_engine, [("取暖补贴每户800元，去村委会领，转给身边的人", "claim")])
    lockdown = _incident(api_engine, [("紧急通知：青禾镇明天开始封镇，所有人不能出门，快囤粮", "claim")])
    created = api_client.post(
        BASE, json={"claim": "南坪村明天停电一天", "refutation": REFUTATION}, headers=staff
    )
    assert created.status_code == 201
    debunk_id = created.json()["id"]
    assert _state(api_engine, subsidy["id"])[0] is None

    # The claim is corrected to the rumor that is going round: the incident gets it now.
    patched = api_client.patch(
        f"{BASE}/{debunk_id}", json={"claim": "镇政府给每户发800元取暖补贴，带身份证去村委会领"}, headers=staff
    )
    assert patched.status_code == 200, patched.text
    assert _state(api_engine, subsidy["id"])[0] == debunk_id

    csv = "claim,refutation\n青禾镇明天开始封镇，所有人不能出门," + REFUTATION + "\n"
    imported = api_client.post(
        f"{BASE}/import", files={"file": ("debunks.csv", csv.encode("utf-8"), "text/csv")}, headers=staff
    )
    assert imported.status_code == 200 and imported.json()["new"] == 1, imported.text
    got = _state(api_engine, lockdown["id"])[0]
    assert got is not None and got != debunk_id


def test_another_amount_is_another_claim(api_client: TestClient, make_user: Any, api_engine: Engine) -> None:
    staff = make_user("staff")
    inc = _incident(api_engine, [("镇政府给每户发500元取暖补贴，带身份证去村委会领", "claim")])
    created = api_client.post(
        BASE, json={"claim": "镇政府给每户发800元取暖补贴，带身份证去村委会领", "refutation": REFUTATION}, headers=staff
    )
    assert created.status_code == 201
    assert _state(api_engine, inc["id"])[0] is None
    with session_scope(api_engine) as s:
        assert s.scalar(select(func.count()).select_from(DebunkMatch)) == 0
        assert s.scalar(select(func.count()).select_from(Post)) == 1


def test_edited_or_withdrawn_debunk_leaves_the_matters_it_no_longer_covers(
    api_client: TestClient, make_user: Any, api_engine: Engine
) -> None:
    staff = make_user("staff")
    water = _incident(api_engine, [("紧急扩散！石桥村自来水被化工厂污染了，千万不能喝", "claim")])
    power = _incident(api_engine, [("南坪村明天停电一天，大家提前准备", "claim")])
    closed = _incident(api_engine, [("石桥村自来水被化工厂污染了，不能喝", "claim")], status="dormant")
    ids = {}
    for name, claim in (("water", "石桥村自来水被化工厂污染了，不能喝"), ("power", "南坪村明天停电一天")):
        created = api_client.post(BASE, json={"claim": claim, "refutation": REFUTATION}, headers=staff)
        assert created.status_code == 201, created.text
        ids[name] = created.json()["id"]
    assert _state(api_engine, water["id"])[0] == ids["water"]
    assert _state(api_engine, power["id"])[0] == ids["power"]
    # the closed matter is given its link by hand, as an earlier analysis would have
    with session_scope(api_engine) as s:
        inc = s.get(Incident, closed["id"])
        assert inc is not None
        inc.debunk_id, inc.debunk_similarity = ids["water"], 0.9
    before = _state(api_engine, water["id"])[2]

    # The water debunk's claim is corrected to another rumor: the water matter loses it at once.
    patched = api_client.patch(f"{BASE}/{ids['water']}", json={"claim": "东湾村菜市场明天关门"}, headers=staff)
    assert patched.status_code == 200, patched.text
    debunk, similarity, updated = _state(api_engine, water["id"])
    assert (debunk, similarity) == (None, None)
    assert _naive(updated) > _naive(before)
    assert not _matched_posts(api_engine, ids["water"]) & set(water["posts"])
    assert _state(api_engine, closed["id"])[0] == ids["water"]  # history of a closed matter stays
    page = api_client.get(f"/api/v1/debunks/{ids['water']}", headers=staff)
    assert page.status_code == 200

    # Withdrawing the power debunk unlinks its matter; reactivating links it again.
    off = api_client.patch(f"{BASE}/{ids['power']}", json={"active": False}, headers=staff)
    assert off.status_code == 200, off.text
    assert _state(api_engine, power["id"])[0] is None
    assert not _matched_posts(api_engine, ids["power"])
    on = api_client.patch(f"{BASE}/{ids['power']}", json={"active": True}, headers=staff)
    assert on.status_code == 200, on.text
    assert _state(api_engine, power["id"])[0] == ids["power"]
