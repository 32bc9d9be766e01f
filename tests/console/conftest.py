"""Console fixtures: a real uvicorn server on a loopback port over a fresh database, a logged-in
HTTP client, and Debian's chromium driven by Playwright (skipped cleanly when it is absent)."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine

from api.app import create_app
from api.console.session import SESSION_COOKIE
from core.db import session_scope
from tests.console.factories import PASSWORD, Scene, seed_scene

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@dataclass
class Live:
    url: str
    engine: Engine
    scene: Scene


@pytest.fixture
def scene(api_engine: Engine) -> Scene:
    with session_scope(api_engine) as s:
        return seed_scene(s)


@pytest.fixture
def live(api_engine: Engine, scene: Scene) -> Iterator[Live]:
    """The whole app (API + console) served by uvicorn on 127.0.0.1:<random port>."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(api_engine), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30  # a loaded CI machine can take seconds to start a thread
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield Live(f"http://127.0.0.1:{port}", api_engine, scene)
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def console_pages(live: Live) -> dict[str, str]:
    """Every console page, by a short name, on the scene (the phone test and the HTTP sweep)."""
    from sqlalchemy import select

    from core.tables import Debunk, ModelVersion

    with session_scope(live.engine) as s:
        debunk_id = s.scalar(select(Debunk.id).order_by(Debunk.id))
        candidate = s.scalar(select(ModelVersion.version).where(ModelVersion.status == "retired"))
    scene = live.scene
    return {
        "queue": "/", "queue-closed": "/?status=closed", "alert": f"/alerts/{scene.alerts['road']}",
        "alert-topic": f"/alerts/{scene.alerts['eggs']}", "concerns": "/concerns", "debunks": "/debunks",
        "debunk-new": "/debunks/new", "debunk-edit": f"/debunks/{debunk_id}/edit", "sources": "/sources",
        "digests": "/digests", "digest": f"/digests/{scene.digest_id}", "labels": "/labels", "models": "/models",
        "model-promote": f"/models/{candidate}/promote", "model-rollback": "/models/rollback",
        "notifications": "/notifications", "digest-today": "/digests/today", "templates": "/response-templates",
        "tips": "/tips", "publications": "/publications", "tip-page": "/tip",  # /tip: the residents' page
    }


def session_cookie(engine: Engine, username: str) -> str:
    """A signed session cookie for ``username``, as the login form would set it (skips Argon2)."""
    from sqlalchemy import select

    from api.console.session import dump_session, new_csrf_token
    from core.tables import User

    with session_scope(engine) as s:
        user_id = s.scalar(select(User.id).where(User.username == username))
    assert user_id is not None, username
    return dump_session(user_id, new_csrf_token())


def login_client(base_url: str, username: str, password: str = PASSWORD) -> httpx.Client:
    """An HTTP client holding a console session (logged in through the real form)."""
    client = httpx.Client(base_url=base_url, follow_redirects=False, timeout=30)
    page = client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert token, page.text
    r = client.post("/login", data={"username": username, "password": password, "login_token": token.group(1),
                                    "next": "/"})
    assert r.status_code == 303 and r.headers["location"] == "/", r.text
    return client


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


@pytest.fixture
def client_as(live: Live) -> Iterator[Callable[[str], httpx.Client]]:
    made: list[httpx.Client] = []

    def make(username: str) -> httpx.Client:
        c = httpx.Client(base_url=live.url, follow_redirects=False, timeout=30,
                         cookies={SESSION_COOKIE: session_cookie(live.engine, username)})
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


# --------------------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def browser():
    """One chromium per test module: a Playwright left running would make any other test's
    sync_playwright() fail ("Sync API inside the asyncio loop"), so it ends with the module."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium; scripts/system-deps.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def new_page(browser, live: Live):
    """new_page(width, height) -> a page in a fresh context (its own cookies), closed afterwards."""
    contexts = []

    def make(width: int = 1366, height: int = 768, **kw):
        ctx = browser.new_context(viewport={"width": width, "height": height}, base_url=live.url,
                                  locale="zh-CN", timezone_id="Asia/Shanghai", **kw)
        ctx.set_default_timeout(10_000)
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()


def browser_as(page, live: Live, username: str) -> None:
    """Give the page's browser context a session for ``username`` (the login form has its own test)."""
    host = live.url.split("//", 1)[1].split(":")[0]
    page.context.add_cookies([{"name": SESSION_COOKIE, "value": session_cookie(live.engine, username),
                               "domain": host, "path": "/", "httpOnly": True, "sameSite": "Lax"}])


def browser_login(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/$"))


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# --------------------------------------------------------------------------- retraining


@pytest.fixture
def trained_models(live: Live, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   shipped_model_dir: Path) -> Iterator[dict[str, str]]:
    """Real model versions for promote/rollback: the scene's active row gets the tiny shipped model's
    files, then nlp.retrain trains "good" (clean labels) and "bad" (half the labels flipped), both
    registered as candidates, with the registry's evaluation set in this test's data folder."""
    import random

    from sqlalchemy import select

    from core.settings import get_settings
    from core.tables import ModelVersion
    from nlp.retrain import train_candidate
    from tests.fixtures.labelled_texts import labelled_texts, write_csv

    monkeypatch.setenv("YUQING_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    files = {}
    for name, seed, flip in (("good", 3, 0.0), ("bad", 4, 0.5)):
        texts, labels = labelled_texts(110, seed=seed)
        rng = random.Random(seed)
        files[name] = tmp_path / f"{name}.csv"
        write_csv(files[name], texts, [1 - y if rng.random() < flip else y for y in labels])
    with session_scope(live.engine) as s:
        active = s.scalars(select(ModelVersion).where(ModelVersion.status == "active")).one()
        active.path = str(shipped_model_dir / "rumor" / "tiny-shipped")
        for name, path in files.items():
            train_candidate(s, data=[path], name=name, cv_folds=0)
        versions = {"active": active.version, "good": "good", "bad": "bad"}
    yield versions
    get_settings.cache_clear()
