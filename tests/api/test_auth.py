"""Health is open; every other route needs a valid token and the right role."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from core.settings import get_settings


def test_health_needs_no_token(api_client: TestClient) -> None:
    response = api_client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_missing_and_invalid_tokens_get_401(api_client: TestClient) -> None:
    missing = api_client.get("/api/v1/me")
    assert missing.status_code == 401
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert "Bearer" in missing.json()["detail"]
    invalid = api_client.get("/api/v1/me", headers={"Authorization": "Bearer yq_not-a-real-token"})
    assert invalid.status_code == 401


def test_wrong_role_gets_403_and_right_role_passes(api_client: TestClient, make_user) -> None:
    staff = make_user("staff")
    admin = make_user("admin")
    assert api_client.get("/api/v1/me", headers=staff).json()["role"] == "staff"
    assert api_client.get("/api/v1/users", headers=staff).status_code == 403
    listed = api_client.get("/api/v1/users", headers=admin)
    assert listed.status_code == 200
    body = listed.json()
    assert set(body) == {"items", "total", "page", "page_size"} and body["total"] == 2


def test_bad_payload_is_422_problem_not_500(api_client: TestClient, make_user) -> None:
    admin = make_user("admin")
    bad = api_client.post("/api/v1/users", json={"username": "", "role": "god"}, headers=admin)
    assert bad.status_code == 422
    assert bad.json()["errors"]
    assert api_client.get("/api/v1/users?page=0", headers=admin).status_code == 422
    garbage = api_client.post("/api/v1/users", content=b"\xff\xfe{", headers=admin | {"content-type": "application/json"})
    assert garbage.status_code == 422


def test_created_token_works_and_is_stored_hashed(api_client: TestClient, make_user, api_engine) -> None:
    from sqlalchemy import text

    admin = make_user("admin")
    assert api_client.post("/api/v1/users", json={"username": "wang", "role": "viewer",
                                                  "password": "longenough1"}, headers=admin).status_code == 201
    created = api_client.post("/api/v1/users/wang/tokens", json={"name": "script"}, headers=admin)
    token = created.json()["token"]
    assert api_client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()["username"] == "wang"
    with api_engine.connect() as conn:
        stored = [r[0] for r in conn.execute(text("SELECT token_hash FROM api_tokens"))]
        hashes = dict(conn.execute(text("SELECT username, password_hash FROM users")).all())
    assert token not in stored and all(len(h) == 64 for h in stored)
    # the password given to the API is stored as an Argon2 hash; token-only users have none
    assert hashes["wang"].startswith("$argon2") and "longenough1" not in hashes["wang"]
    assert all(h is None or h.startswith("$argon2") for h in hashes.values())
    assert api_client.post("/api/v1/users/nobody/tokens", json={"name": "x"}, headers=admin).status_code == 404


def test_admin_lists_and_revokes_tokens(api_client: TestClient, make_user) -> None:
    admin, staff = make_user("admin"), make_user("staff")
    me = api_client.get("/api/v1/me", headers=staff).json()["username"]
    assert api_client.get(f"/api/v1/users/{me}/tokens", headers=staff).status_code == 403
    listed = api_client.get(f"/api/v1/users/{me}/tokens", headers=admin).json()
    assert listed["total"] == 1 and listed["items"][0]["revoked_at"] is None
    assert "token_hash" not in listed["items"][0]
    token_id = listed["items"][0]["id"]
    assert api_client.delete(f"/api/v1/tokens/{token_id}", headers=staff).status_code == 403
    revoked = api_client.delete(f"/api/v1/tokens/{token_id}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert api_client.get("/api/v1/me", headers=staff).status_code == 401  # stops working at once
    assert api_client.delete("/api/v1/tokens/999999", headers=admin).status_code == 404
    assert api_client.delete("/api/v1/tokens/0", headers=admin).status_code == 422


def test_api_docs_need_a_login_unless_made_public(
    api_client: TestClient, make_user, api_engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README: every route but /health needs a token; the schema names every route and role."""
    assert api_client.get("/openapi.json").status_code == 401
    docs = api_client.get("/docs", follow_redirects=False)
    assert docs.status_code == 303 and docs.headers["location"].startswith("/login")
    assert api_client.get("/openapi.json", headers={"Authorization": "Bearer yq_wrong"}).status_code == 401
    assert api_client.get("/openapi.json", headers=make_user("viewer")).status_code == 200
    monkeypatch.setenv("YUQING_PUBLIC_DOCS", "1")
    get_settings.cache_clear()
    from api.app import create_app

    with TestClient(create_app(api_engine)) as public:
        assert public.get("/openapi.json").status_code == 200 and public.get("/docs").status_code == 200
    get_settings.cache_clear()


def test_api_docs_work_without_internet(api_client: TestClient, make_user) -> None:
    """/docs loads Swagger UI from our own server (offices often have no internet), and the
    schema it renders comes from /openapi.json."""
    api_client.headers.update({"Authorization": make_user("viewer")["Authorization"]})
    page = api_client.get("/docs")
    assert page.status_code == 200
    assert "cdn.jsdelivr" not in page.text and "https://" not in page.text.split("<body>")[0]
    scripts = [s for s in ("swagger-ui-bundle.js", "swagger-ui.css") if s in page.text]
    assert scripts == ["swagger-ui-bundle.js", "swagger-ui.css"]
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        got = api_client.get(f"/static-offline-docs/{asset}")
        assert got.status_code == 200 and len(got.content) > 100_000
    assert api_client.get("/openapi.json").json()["info"]["title"] == "舆情哨兵 yuqing API"
