"""A OneBot framework's view: `yuqing serve` on a loopback port, signed pushes over real HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select

from api import accounts
from core.db import make_engine, session_scope
from core.tables import Post
from crawler.chats.onebot import signature

REPO = Path(__file__).resolve().parents[2]
SECRET = "qinghe-onebot-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_signed_onebot_pushes_to_a_running_server(fresh_db_url: str, tmp_path: Path) -> None:
    engine = make_engine(fresh_db_url)
    with session_scope(engine) as s:
        owner = accounts.create_user(s, username="bot-owner", role="staff")
        token = accounts.create_token(s, owner, "qq-bot-1", kind="bot")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUQING_")}
    env |= {"YUQING_DATA_DIR": str(tmp_path), "YUQING_DATABASE_URL": fresh_db_url, "PYTHONPATH": str(REPO),
            "YUQING_SECRET_KEY": os.environ["YUQING_SECRET_KEY"], "YUQING_ONEBOT_SECRET": SECRET}
    proc = subprocess.Popen([sys.executable, "-m", "yuqing.cli", "serve", "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                httpx.get(f"{base}/health", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        event = {"time": 1764036000, "self_id": 10001, "post_type": "message", "message_type": "group",
                 "message_id": 52001, "group_id": 880001, "user_id": 2718281828,
                 "message": "石桥村停水是因为水被污染了？[CQ:image,file=a.jpg]",
                 "sender": {"nickname": "三栋业主"}}
        body = json.dumps(event, ensure_ascii=False).encode("utf-8")
        url = f"{base}/api/v1/ingest/onebot?access_token={token}"  # as go-cqhttp's post url carries it
        headers = {"Content-Type": "application/json", "X-Signature": signature(SECRET.encode(), body)}
        with httpx.Client(timeout=10) as client:
            first = client.post(url, content=body, headers=headers)
            assert first.status_code == 200, first.text
            assert first.json()["new"] == 1
            assert client.post(url, content=body, headers=headers).json()["unchanged"] == 1
            unsigned = client.post(url, content=body, headers={"Content-Type": "application/json"})
            assert unsigned.status_code == 401 and unsigned.json()["title"] == "签名无效"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Post)) == 1
        assert s.scalar(select(Post.raw_text)) == "石桥村停水是因为水被污染了？[图片]"
    engine.dispose()
