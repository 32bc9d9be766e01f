"""Every console page on a phone (390 px wide, an iPhone 12-15's CSS width) in chromium.

Staff read alerts on their phones on the way to a village. A page wider than the screen scrolls
sideways and hides its buttons; a table squeezed into 390 px shows one character per line. So for
every page: nothing wider than the viewport, tables laid out as cards (each cell a full-width line
with its column's name), every button on screen. Screenshots go to test-artifacts/console/phone-*.png.
"""

from __future__ import annotations

import pytest

from alerts import workflow
from core.db import session_scope
from tests.console.conftest import browser_as, console_pages, shot

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 390, 844

#: Everything that could stick out: overflow of the document, of any element, of any control.
MEASURE = """(vw) => {
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden') continue;
    // inside a scroller that is itself on screen (the nav, the status tabs): reachable by swiping it
    let p = el.parentElement, scrolled = false;
    while (p && p !== document.body) {
      const o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll' || o === 'hidden') { scrolled = true; break; }
      p = p.parentElement;
    }
    if (!scrolled && (r.right > vw + 0.5 || r.left < -0.5)) {
      out.push(el.tagName.toLowerCase() + (el.className ? '.' + String(el.className).replace(/ /g, '.') : '')
               + ' ' + Math.round(r.left) + '..' + Math.round(r.right));
    }
  }
  const cells = [...document.querySelectorAll('table.grid td')].filter(td => {
    const r = td.getBoundingClientRect();
    return r.width > 0 && td.textContent.trim().length > 0;
  }).map(td => Math.round(td.getBoundingClientRect().width));
  return {scroll: document.documentElement.scrollWidth, inner: window.innerWidth, sticking_out: out.slice(0, 10),
          narrowest_cell: cells.length ? Math.min(...cells) : null};
}"""


@pytest.fixture(autouse=True)
def _digest_actions() -> None:
    from yuqing.digest_actions import register

    register()  # as `yuqing serve` does: the digest preview page


def _problems(page, name: str) -> list[str]:
    m = page.evaluate(MEASURE, WIDTH)
    shot(page, f"phone-{name}")
    found = []
    # A mobile browser widens its layout viewport to fit wide content (then zooms out): so the
    # document and the viewport are both compared with the phone's width, not with each other.
    if max(m["scroll"], m["inner"]) > WIDTH:
        found.append(f"{name}: {m['scroll']} px wide (viewport {m['inner']} px) on a {WIDTH} px screen")
    if m["sticking_out"]:
        found.append(f"{name}: off screen: {m['sticking_out']}")
    if m["narrowest_cell"] is not None and m["narrowest_cell"] < WIDTH * 0.6:  # a card's line, not a column
        found.append(f"{name}: a table cell only {m['narrowest_cell']} px wide")
    return found


def test_every_page_fits_a_phone(live, new_page) -> None:
    page = new_page(WIDTH, HEIGHT, is_mobile=True, has_touch=True)
    browser_as(page, live, "admin")
    problems = []
    for name, path in console_pages(live).items():
        response = page.goto(path)
        assert response is not None and response.status == 200, (name, path, response and response.status)
        problems += _problems(page, name)
    assert not problems, "\n".join(problems)


def test_login_page_fits_a_phone(live, new_page) -> None:
    page = new_page(WIDTH, HEIGHT, is_mobile=True, has_touch=True)
    page.goto("/login")
    assert not _problems(page, "login")


def test_alert_page_fits_a_phone_after_a_response(live, new_page) -> None:
    """A recorded response adds the before/after chart, the response text and its link."""
    alert_id = live.scene.alerts["road"]
    with session_scope(live.engine) as s:
        workflow.transition(s, alert_id, "confirmed_rumor", actor=live.scene.users["zhangmin"])
        workflow.respond(s, alert_id, text="经核实，青禾镇没有封路计划。" * 4, channels=["微信公众号", "村广播", "村民群"],
                        url="https://mp.qinghe.example/piyao/2026/11/29/a-very-long-link-that-does-not-break-anywhere",
                        actor=live.scene.users["zhangmin"])
    page = new_page(WIDTH, HEIGHT, is_mobile=True, has_touch=True)
    browser_as(page, live, "zhangmin")
    page.goto(f"/alerts/{alert_id}")
    problems = _problems(page, "alert-responded")
    assert not problems, "\n".join(problems)


def test_archived_digest_is_one_page_on_a_phone(live, new_page) -> None:
    """No fixed-height frame with its own scrollbar: the frame grows to the digest's length."""
    page = new_page(WIDTH, HEIGHT, is_mobile=True, has_touch=True)
    browser_as(page, live, "zhangmin")
    page.goto(f"/digests/{live.scene.digest_id}")
    page.wait_for_function("document.querySelector('iframe.digest-frame').classList.contains('fitted')")
    frame_h, content_h = page.evaluate("""() => {
      const f = document.querySelector('iframe.digest-frame');
      return [f.getBoundingClientRect().height, f.contentDocument.documentElement.scrollHeight];
    }""")
    assert abs(frame_h - content_h) <= 4, (frame_h, content_h)
    assert page.title() != "pwned"  # still no script runs inside the frame
