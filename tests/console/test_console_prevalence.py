"""The models page and `yuqing models list` show the rumor-share estimates with their intervals and
what the rumor threshold currently is and why."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from typer.testing import CliRunner

from core.db import make_engine, session_scope
from core.tables import ModelVersion, PrevalenceEstimate, utcnow
from nlp.registry import ensure_registered
from yuqing.cli import app


def _estimates(session, version_id: int | None) -> None:
    now = utcnow()
    for ch, value, lo, hi, n in (("web", 0.031, 0.022, 0.041, 640), ("chat", 0.012, 0.007, 0.019, 2310),
                                 ("all", 0.016, 0.007, 0.041, 2950)):
        session.add(PrevalenceEstimate(channel=ch, window_start=now - dt.timedelta(days=7), window_end=now,
                                       estimate=value, lower=lo, upper=hi, method="bbe", n=n, n_labels=3 if ch != "web" else 0,
                                       model_version_id=version_id, target_precision=0.8, threshold=0.63,
                                       created_at=now,
                                       calibration={"kind": "labels", "a": -0.4, "b": 1.2, "n_labels": 80, "n_rumors": 9}
                                       if ch == "chat" else None))


def test_models_page_shows_the_estimates_and_the_threshold(live, client_as) -> None:
    page = client_as("wangfang").get("/models").text
    panel = page.split('id="prevalence"', 1)[1].split("</section>", 1)[0]
    assert "谣言占比与判定阈值" in panel and "还没有估计" in panel and "目标精确率 80%" in panel
    with session_scope(live.engine) as s:
        active = s.scalar(select(ModelVersion.id).where(ModelVersion.status == "active"))
        _estimates(s, active)
    page = client_as("wangfang").get("/models").text
    panel = page.split('id="prevalence"', 1)[1].split("</section>", 1)[0]
    assert "<b>1.2%</b>" in panel and "0.7% – 1.9%" in panel and "<b>3.1%</b>" in panel
    assert "群聊" in panel and "网页" in panel and "最优分段估计（BBE）" in panel
    assert "调整后谣言概率 ≥ 0.63 判为疑似谣言" in panel and "估计谣言约占 1.6%" in panel
    assert "无法判断" in panel
    assert "按本渠道 80 条审核结论校准（其中谣言 9 条）" in panel and "按模型留出数据校准" in panel  # chat; web
    assert panel.count("估计不可靠") == 1 and "2310（近 7 天）" in panel  # the chat interval spans 2.7 times


def test_models_list_prints_the_estimates(fresh_db_url: str) -> None:
    runner = CliRunner()
    engine = make_engine(fresh_db_url)
    first = runner.invoke(app, ["models", "list"])
    assert first.exit_code == 0, first.output
    said = " ".join(first.output.split())
    assert "谣言占比估计：尚无" in said and "判定阈值：调整后谣言概率 ≥ 0.80" in said
    with session_scope(engine) as s:
        _estimates(s, ensure_registered(s).id)
    said = " ".join(runner.invoke(app, ["models", "list"]).output.split())
    assert "群聊 1.2%（90% 区间 0.7%–1.9%，近 7 天 2,310 条可判断帖子，其中 3 条已审核" in said
    # the chat interval spans 2.7 times: said to be unreliable; the web one (1.9 times) is not
    chat_line = said.split("群聊 1.2%", 1)[1].split("；", 1)[0]
    web_line = said.split("网页 3.1%", 1)[1].split("；", 1)[0]
    assert "估计不可靠" in chat_line and "估计不可靠" not in web_line
    assert "网页 3.1%" in said and "≥ 0.63" in said
    assert "按本渠道 80 条审核结论校准" in said and "按模型留出数据校准" in said
    engine.dispose()


def test_a_post_the_model_cannot_judge_shows_no_number(live, client_as) -> None:
    import re

    from sqlalchemy import update

    from core.tables import Alert, Post, PostScore

    with session_scope(live.engine) as s:
        story_id = s.get(Alert, live.scene.alerts["road"]).story_id
        post_id = s.scalars(select(Post.id).where(Post.story_id == story_id).order_by(Post.id)).first()
        if s.scalar(select(PostScore.id).where(PostScore.post_id == post_id)) is None:
            s.add(PostScore(post_id=post_id, rumor_probability=0.4, raw_probability=0.9, label=0, explanation=[]))
        s.execute(update(PostScore).where(PostScore.post_id == post_id).values(label=-1, rumor_probability=0.01))
    page = client_as("zhangmin").get(f"/alerts/{live.scene.alerts['road']}").text
    item = re.search(rf'<li id="post-{post_id}"[^>]*>(.*?)</li>', page, re.S)
    assert item is not None
    assert "无法判断" in item.group(1) and "1%" not in item.group(1)
