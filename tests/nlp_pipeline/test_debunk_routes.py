"""The debunk API: roles (viewer reads, staff writes, analyst deletes), pagination, 422s, CSV import."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

BASE = "/api/v1/debunks"
ITEM = {
    "claim": "青禾镇明天封城，赶紧去超市囤货",
    "refutation": "青禾镇没有任何封城安排，超市照常营业。",
    "publisher": "青禾镇人民政府",
    "published_at": "2026-11-20T09:30:00+08:00",
    "tags": ["封城"],
}


def test_roles_and_crud(api_client: TestClient, make_user) -> None:
    viewer, staff, analyst = make_user("viewer"), make_user("staff"), make_user("analyst")
    assert api_client.get(BASE).status_code == 401
    assert api_client.post(BASE, json=ITEM, headers=viewer).status_code == 403
    created = api_client.post(BASE, json=ITEM, headers=staff)
    assert created.status_code == 201, created.text
    debunk = created.json()
    when = dt.datetime.fromisoformat(debunk["published_at"])
    assert when == dt.datetime(2026, 11, 20, 1, 30, tzinfo=dt.UTC) and debunk["active"] is True
    dup = api_client.post(
        BASE, json=ITEM | {"claim": "转发：青禾镇明天封城！赶紧去超市囤货！！"}, headers=staff
    )
    assert dup.status_code == 409 and "已有相同的谣言" in dup.json()["detail"]

    detail = api_client.get(f"{BASE}/{debunk['id']}", headers=viewer)
    assert detail.status_code == 200 and detail.json()["match_count"] == 0
    patched = api_client.patch(
        f"{BASE}/{debunk['id']}", json={"refutation": "镇政府：封城是谣言。"}, headers=staff
    )
    assert patched.status_code == 200 and patched.json()["refutation"] == "镇政府：封城是谣言。"
    assert api_client.delete(f"{BASE}/{debunk['id']}", headers=staff).status_code == 403
    assert api_client.delete(f"{BASE}/{debunk['id']}", headers=analyst).status_code == 204
    assert api_client.get(f"{BASE}/{debunk['id']}", headers=viewer).status_code == 404


def test_list_search_and_pagination(api_client: TestClient, make_user) -> None:
    staff = make_user("staff")
    for n in range(5):
        body = ITEM | {
            "claim": f"{['东湾村', '柳树村', '石桥村', '南坪村', '青禾镇'][n]}要停水三天，赶紧接水"
        }
        assert api_client.post(BASE, json=body, headers=staff).status_code == 201
    page = api_client.get(BASE, params={"page": 2, "page_size": 2}, headers=staff).json()
    assert page["total"] == 5 and page["page"] == 2 and len(page["items"]) == 2
    found = api_client.get(BASE, params={"q": "柳树村"}, headers=staff).json()
    assert found["total"] == 1 and found["items"][0]["claim"].startswith("柳树村")


def test_bad_payloads_are_422(api_client: TestClient, make_user) -> None:
    staff = make_user("staff")
    for bad in (
        {"claim": "", "refutation": "x"},
        {"claim": "青禾镇封城"},
        ITEM | {"published_at": "昨天"},
        ITEM | {"tags": 5},
        {"claim": "！！！", "refutation": "辟谣内容"},
    ):
        response = api_client.post(BASE, json=bad, headers=staff)
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["detail"]
    assert api_client.get(f"{BASE}/0", headers=staff).status_code == 422
    assert api_client.get(f"{BASE}/abc", headers=staff).status_code == 422
    assert api_client.get(BASE, params={"page_size": 1000}, headers=staff).status_code == 422
    assert api_client.patch(f"{BASE}/1", json={"nonsense": 1}, headers=staff).status_code == 422
    assert (
        api_client.patch(f"{BASE}/999", json={"refutation": "新的辟谣内容"}, headers=staff).status_code == 404
    )
    assert (
        api_client.post(
            BASE, content=b"\xff{", headers=staff | {"content-type": "application/json"}
        ).status_code
        == 422
    )


def test_csv_upload_is_idempotent(api_client: TestClient, make_user) -> None:
    staff, viewer = make_user("staff"), make_user("viewer")
    csv_text = (
        "claim,refutation,publisher,url,published_at,category,tags\n"
        "南坪村菜市场的猪肉是病死猪肉,检查均有检疫合格证明,青禾县市场监督管理局,,2026-11-25,公共安全,南坪村;猪肉\n"
        ",缺少谣言内容,,,,,\n"
    )
    files = {"file": ("debunks.csv", csv_text.encode("utf-8"), "text/csv")}
    assert api_client.post(f"{BASE}/import", files=files, headers=viewer).status_code == 403
    first = api_client.post(f"{BASE}/import", files=files, headers=staff)
    assert first.status_code == 200, first.text
    assert first.json()["new"] == 1 and len(first.json()["rejected"]) == 1
    again = api_client.post(f"{BASE}/import", files=files, headers=staff).json()
    assert (again["new"], again["unchanged"]) == (0, 1)
    wrong = api_client.post(
        f"{BASE}/import", files={"file": ("x.csv", b"text\n1\n", "text/csv")}, headers=staff
    )
    assert wrong.status_code == 422 and "缺少列" in wrong.json()["detail"]
    gbk = api_client.post(  # as Excel on Chinese Windows saves it
        f"{BASE}/import",
        files={"file": ("x.csv", "claim,refutation\n南坪村封村,假的\n".encode("gbk"), "text/csv")},
        headers=staff,
    )
    assert gbk.status_code == 200 and gbk.json()["new"] == 1
    garbage = api_client.post(
        f"{BASE}/import", files={"file": ("x.csv", b"claim,refutation\n\x80\xff,\x80\n", "text/csv")}, headers=staff
    )
    assert garbage.status_code == 422 and "编码无法识别" in garbage.json()["detail"]
    assert api_client.post(f"{BASE}/import", headers=staff).status_code == 422
