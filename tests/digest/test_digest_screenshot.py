"""The digest on a phone-sized screen in headless chromium; HTML and screenshot kept as artifacts.

Artifacts (git-ignored): test-artifacts/digest/digest.html (+ PNGs), screenshot-phone.png,
and the quiet day's screenshot-quiet.png.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from core.settings import Settings
from digest.service import prepare, write_files
from tests.digest.factories import local
from tests.digest.scenario import DAY, BusyDay

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
PHONE = {"width": 390, "height": 844}

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium not installed (scripts/system-deps.sh)")]


def _open(page_html: Path, shot: Path) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport=PHONE, device_scale_factor=2)
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(page_html.as_uri())
            page.wait_for_load_state("load")
            facts = page.evaluate("""() => ({
                scrollWidth: document.documentElement.scrollWidth,
                scripts: document.querySelectorAll('script').length,
                images: Array.from(document.images).map(i => [i.naturalWidth, i.getBoundingClientRect().width]),
                text: document.body.innerText,
                smallest: Math.min(...Array.from(document.querySelectorAll('body *'))
                    .filter(e => e.childNodes.length && Array.from(e.childNodes).some(n => n.nodeType === 3 && n.textContent.trim()))
                    .map(e => parseFloat(getComputedStyle(e).fontSize))),
            })""")
            facts["dialogs"] = dialogs
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    return facts


def test_busy_day_reads_well_on_a_phone(db: Session, busy_day: BusyDay, artifacts: Path) -> None:
    settings = Settings(timezone="Asia/Shanghai")
    prepared = prepare(db, DAY, settings=settings, now=local(DAY, 18))
    out = artifacts / "busy"
    shutil.rmtree(out, ignore_errors=True)
    write_files(prepared, out, title="青禾镇舆情日报", settings=settings)
    facts = _open(out / "digest.html", artifacts / "screenshot-phone.png")

    assert facts["scrollWidth"] <= PHONE["width"]  # single column: nothing wider than the phone
    assert facts["scripts"] == 0 and facts["dialogs"] == []  # the <script> in a post title stayed text
    assert "<script>alert('x')</script>南坪村水库决堤" in facts["text"]
    assert len(facts["images"]) == 2
    for natural, shown in facts["images"]:
        assert natural > 0 and 300 <= shown <= PHONE["width"]  # loaded, and as wide as the column
    assert facts["smallest"] >= 11  # no unreadably small text
    assert "今日谣言" in facts["text"] and "热点关切" in facts["text"] and "待处理事项" in facts["text"]
    assert (artifacts / "screenshot-phone.png").stat().st_size > 20_000


def test_quiet_day_screenshot(db: Session, artifacts: Path) -> None:
    settings = Settings(timezone="Asia/Shanghai")
    day = dt.date(2026, 6, 1)
    prepared = prepare(db, day, settings=settings, now=local(day, 18))
    out = artifacts / "quiet"
    shutil.rmtree(out, ignore_errors=True)
    write_files(prepared, out, title="青禾镇舆情日报", settings=settings)
    facts = _open(out / "digest.html", artifacts / "screenshot-quiet.png")
    assert "今日无异常" in facts["text"] and facts["images"] == []
    assert facts["scrollWidth"] <= PHONE["width"]
