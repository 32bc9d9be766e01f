"""Screenshots of the main pages at 1366x768 and on a phone (saved under test-artifacts/console/)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.console.conftest import browser_as, browser_login, shot

pytestmark = pytest.mark.browser


def test_main_pages_render_at_office_and_phone_sizes(live, new_page) -> None:
    page = new_page(1366, 768)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto("/")
    shot(page, "login")
    browser_login(page, "wangfang")
    road = live.scene.alerts["road"]
    for name, path in [("queue", "/"), ("alert", f"/alerts/{road}"), ("concerns", "/concerns"),
                       ("debunks", "/debunks"), ("sources", "/sources"), ("digests", "/digests"),
                       ("models", "/models"), ("labels", "/labels"), ("digest", f"/digests/{live.scene.digest_id}")]:
        response = page.goto(path)
        assert response is not None and response.status == 200, (path, response and response.status)
        assert page.locator("h1").first.is_visible()
        # Nothing sticks out sideways at 1366 px.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
        shot(page, name)
    # The digest is shown as sent, inside a sandboxed frame, with its inline chart.
    page.goto(f"/digests/{live.scene.digest_id}")
    frame = page.frame_locator("iframe.digest-frame")
    expect(frame.locator("h1")).to_have_text("青禾镇舆情日报")
    assert frame.locator("img").evaluate("img => img.naturalWidth") > 0
    assert "pwned" not in page.title()  # the digest's own <script> is blocked by the sandbox
    blocked = [e for e in errors if "about:srcdoc" in e and "sandboxed" in e]
    assert blocked and [e for e in errors if e not in blocked] == []
    frame.get_by_text("封路传言（预警）").click()  # a link in the digest opens the alert in the window
    page.wait_for_url(f"**/alerts/{road}")

    phone = new_page(390, 844, is_mobile=True, has_touch=True)
    browser_as(phone, live, "zhangmin")
    for name, path in [("queue-phone", "/"), ("alert-phone", f"/alerts/{road}")]:
        phone.goto(path)
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
        shot(phone, name)
