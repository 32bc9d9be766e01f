"""Retraining in the console over real HTTP: labelling posts, the active-learning list, promoting and
rolling back model versions, the drift badge; with roles and CSRF checked on every action."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from sqlalchemy import select

from api.console import queries
from core.db import session_scope
from core.tables import AnalysisRun, Label, ModelVersion, Post, User, utcnow
from tests.console.conftest import csrf_of
from tests.console.factories import Uncertain, add_scored_posts


def _labels(engine, post_id: int) -> list[tuple[int, str, str]]:
    """(label, origin, username) of every label on a post."""
    with session_scope(engine) as s:
        return [tuple(r) for r in s.execute(
            select(Label.label, Label.origin, User.username).outerjoin(User, User.id == Label.user_id)
            .where(Label.post_id == post_id).order_by(Label.id))]


def _post_item(html: str, post_id: int) -> str:
    """The <li> of one post on a page (alert evidence or the active-learning list)."""
    m = re.search(rf'<li id="post-{post_id}"[^>]*>(.*?)</li>', html, re.S)
    assert m, f"post {post_id} is not on the page"
    return m.group(1)


def _evidence_post(live, alert: str = "road") -> int:
    with session_scope(live.engine) as s:
        from core.tables import Alert

        story_id = s.get(Alert, live.scene.alerts[alert]).story_id
        return s.scalars(select(Post.id).where(Post.story_id == story_id).order_by(Post.id)).first()


def _active(live) -> ModelVersion:
    with session_scope(live.engine) as s:
        row = s.scalars(select(ModelVersion).where(ModelVersion.status == "active")).one()
        s.expunge(row)
        return row


def _queue_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<li id="post-(\d+)" class="queue-item">', html)]


# --------------------------------------------------------------------------- labelling posts


def test_analyst_labels_replaces_and_clears_a_label_on_the_alert_page(live, client_as) -> None:
    alert_id, post_id = live.scene.alerts["road"], _evidence_post(live)
    c = client_as("wangfang")
    page = c.get(f"/alerts/{alert_id}").text
    assert f'action="/posts/{post_id}/label"' in page
    token = csrf_of(page)
    back_to = f"/alerts/{alert_id}#post-{post_id}"

    r = c.post(f"/posts/{post_id}/label", data={"label": "1", "csrf_token": token, "next": back_to})
    assert r.status_code == 303
    location = r.headers["location"]
    assert location.startswith(f"/alerts/{alert_id}?msg=") and location.endswith(f"#post-{post_id}")
    assert "标注为「谣言」" in unquote(location)
    assert _labels(live.engine, post_id) == [(1, "manual", "wangfang")]
    with session_scope(live.engine) as s:
        stored = s.scalars(select(Label).where(Label.post_id == post_id)).one()
        assert stored.text == s.get(Post, post_id).raw_text  # the text as it was judged
    item = _post_item(c.get(location.split("#")[0]).text, post_id)
    assert "谣言<small>人工标注 · 王芳 · " in item
    assert re.search(r'value="1" class="btn small danger" aria-pressed="true"', item)

    # Labelling again replaces the analyst's own label (one row), it does not add a second vote.
    c.post(f"/posts/{post_id}/label", data={"label": "0", "csrf_token": token, "next": back_to})
    assert _labels(live.engine, post_id) == [(0, "manual", "wangfang")]
    item = _post_item(c.get(f"/alerts/{alert_id}").text, post_id)
    assert "非谣言<small>人工标注 · 王芳" in item and "清除我的标注" in item

    r = c.post(f"/posts/{post_id}/label", data={"label": "clear", "csrf_token": token, "next": back_to})
    assert "已清除" in unquote(r.headers["location"])
    assert _labels(live.engine, post_id) == []
    item = _post_item(c.get(f"/alerts/{alert_id}").text, post_id)
    assert "label-chip" not in item and "清除我的标注" not in item
    again = c.post(f"/posts/{post_id}/label", data={"label": "clear", "csrf_token": token, "next": back_to})
    assert "无需清除" in unquote(again.headers["location"])


def test_disagreeing_labels_are_shown_as_a_conflict(live, client_as) -> None:
    alert_id, post_id = live.scene.alerts["road"], _evidence_post(live)
    for username, label in (("wangfang", "1"), ("admin", "0")):
        c = client_as(username)
        token = csrf_of(c.get(f"/alerts/{alert_id}").text)
        assert c.post(f"/posts/{post_id}/label", data={"label": label, "csrf_token": token}).status_code == 303
    assert sorted(_labels(live.engine, post_id)) == [(0, "manual", "admin"), (1, "manual", "wangfang")]
    item = _post_item(c.get(f"/alerts/{alert_id}").text, post_id)
    assert "王芳" in item and "管理员" in item
    assert "标注矛盾：1 条判为谣言，1 条判为非谣言" in item
    labels_page = c.get("/labels").text
    with session_scope(live.engine) as s:
        text = s.get(Post, post_id).raw_text
    conflicts = labels_page.split('id="conflicts"', 1)[1]
    assert "1 条文本" in conflicts and text[:20] in conflicts


def test_only_analysts_label_and_every_label_needs_the_csrf_token(live, client_as) -> None:
    alert_id, post_id = live.scene.alerts["road"], _evidence_post(live)
    for username in ("zhangmin", "chenkz"):  # staff, viewer
        c = client_as(username)
        page = c.get(f"/alerts/{alert_id}").text
        assert "/label\"" not in page and 'href="/labels"' not in page
        r = c.post(f"/posts/{post_id}/label", data={"label": "1", "csrf_token": csrf_of(page)})
        assert r.status_code == 403 and "权限不足" in r.text and "分析员" in r.text
        assert c.get("/labels").status_code == 403
    analyst = client_as("wangfang")
    for data in ({"label": "1"}, {"label": "1", "csrf_token": "forged"}):
        r = analyst.post(f"/posts/{post_id}/label", data=data)
        assert r.status_code == 403 and "CSRF" in r.text
    assert _labels(live.engine, post_id) == []
    token = csrf_of(analyst.get("/labels").text)
    odd = analyst.post(f"/posts/{post_id}/label", data={"label": "maybe", "csrf_token": token})
    assert odd.status_code == 303 and "err=" in odd.headers["location"]
    assert analyst.post("/posts/999999/label", data={"label": "1", "csrf_token": token}).status_code == 404
    assert _labels(live.engine, post_id) == []


# --------------------------------------------------------------------------- the active-learning list


def test_labels_page_lists_the_least_certain_posts_by_reach_and_pages_through_them(live, client_as) -> None:
    active = _active(live)
    named = {"wide_unsure": Uncertain("听说青禾镇要停水三天，真的假的？", 0.5, reach=40),
             "narrow_unsure": Uncertain("有人说东湾村要修路，有通知吗", 0.5, reach=1),
             "wide_leaning": Uncertain("南坪村的菜价要涨一倍，赶紧囤", 0.75, reach=40),
             "narrow_leaning": Uncertain("柳树村小学下周放假？", 0.75, reach=1),
             "hostile": Uncertain("<script>alert('x')</script>石桥村停电", 0.6, reach=3),
             "sure_rumor": Uncertain("紧急扩散！！青禾镇封城，速转", 0.97, reach=100),
             "sure_fine": Uncertain("镇政府通知：周三上午发放补贴", 0.03, reach=100)}
    filler = [Uncertain(f"青禾镇第{i}条待核实的消息", 0.3 + 0.01 * i, reach=2) for i in range(20)]
    with session_scope(live.engine) as s:
        ids = dict(zip(named, add_scored_posts(s, list(named.values()), active.id), strict=True))
        filler_ids = add_scored_posts(s, filler, active.id)

    c = client_as("wangfang")
    first = c.get("/labels")
    assert first.status_code == 200 and 'href="/labels" aria-current="page"' in first.text
    in_band = len(named) - 2 + len(filler)
    assert f"共 {in_band} 条" in first.text and "第 1 / 2 页" in first.text
    second = c.get("/labels?page=2").text
    order = _queue_ids(first.text) + _queue_ids(second)
    assert len(_queue_ids(first.text)) == 20 and sorted(order) == sorted(
        [i for k, i in ids.items() if not k.startswith("sure")] + filler_ids)
    pos = {k: order.index(i) for k, i in ids.items() if not k.startswith("sure")}
    assert pos["wide_unsure"] < pos["narrow_unsure"] and pos["wide_leaning"] < pos["narrow_leaning"]  # reach
    assert pos["wide_unsure"] < pos["wide_leaning"] and pos["narrow_unsure"] < pos["narrow_leaning"]  # doubt
    assert order[0] == ids["wide_unsure"]

    item = _post_item(first.text + second, ids["hostile"])
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;石桥村停电" in item and "<script>alert" not in item
    assert "谣言概率 60%" in item and "传播 3" in item and "prob-mid" in item
    assert "prob-low" in _post_item(first.text + second, filler_ids[0])  # 30%: not coloured as an alarm

    # Labelling from the list takes the post off it and comes back to the same page.
    token = csrf_of(first.text)
    next_url = re.search(r'name="next" value="([^"]+)"', _post_item(first.text, ids["wide_unsure"])).group(1)
    r = c.post(f"/posts/{ids['wide_unsure']}/label", data={"label": "1", "csrf_token": token, "next": next_url})
    assert r.status_code == 303 and r.headers["location"].startswith("/labels?")
    after = c.get(r.headers["location"]).text
    assert "标注为「谣言」" in after and ids["wide_unsure"] not in _queue_ids(after)
    assert f"共 {in_band - 1} 条" in after
    assert _labels(live.engine, ids["wide_unsure"]) == [(1, "manual", "wangfang")]


# --------------------------------------------------------------------------- promote and roll back


def test_promote_is_refused_when_worse_then_forced_with_a_reason_then_rolled_back(
        live, client_as, trained_models) -> None:
    c = client_as("wangfang")
    page = c.get("/models").text
    assert 'href="/models/good/promote"' in page and 'href="/models/bad/promote"' in page
    assert 'href="/models/rollback"' not in page  # nothing was active before the scene's model

    confirm = c.get("/models/good/promote")
    assert confirm.status_code == 200 and "确认启用" in confirm.text and trained_models["active"] in confirm.text
    assert "<details class=\"force\">" in confirm.text  # closed until a refusal
    assert "两个模型都没训练过" in confirm.text and "按类别" in confirm.text  # the dry-run comparison first
    token = csrf_of(confirm.text)
    r = c.post("/models/good/promote", data={"csrf_token": token})
    assert r.status_code == 303 and r.headers["location"].startswith("/models?msg=")
    assert "已启用模型 good" in unquote(r.headers["location"]) and "两个模型都没训练过" in unquote(r.headers["location"])
    assert _active(live).version == "good"
    page = c.get(r.headers["location"]).text
    assert "当前在用：rumor good" in page and f"回滚到 {trained_models['active']}" in page
    active_panel = page.split('class="panel active-model"', 1)[1].split("</section>", 1)[0]
    assert "<span>宏平均 F1</span>" in active_panel and "以上为固定评估集" in active_panel

    # A worse candidate is refused, with the reason in Chinese and the force option opened.
    r = c.post("/models/bad/promote", data={"csrf_token": token})
    assert r.status_code == 303 and r.headers["location"].startswith("/models/bad/promote?refused=1&err=")
    refused = c.get(r.headers["location"]).text
    assert "明显更差" in refused and '<details class="force" open>' in refused
    assert _active(live).version == "good"
    r = c.post("/models/bad/promote", data={"csrf_token": token, "force": "1", "reason": "  "})
    assert "强制启用必须填写理由" in unquote(r.headers["location"])
    assert _active(live).version == "good"
    r = c.post("/models/bad/promote", data={"csrf_token": token, "force": "1", "reason": "覆盖本镇新出现的停水谣言"})
    assert r.status_code == 303 and "理由已记录" in unquote(r.headers["location"])
    active = _active(live)
    assert active.version == "bad"
    with session_scope(live.engine) as s:
        assert s.get(User, active.promoted_by).username == "wangfang"
    history = c.get("/models").text.split('id="history"', 1)[1]  # the reason is in the history, notes stay
    assert "强制启用" in history and "覆盖本镇新出现的停水谣言" in history and "<code>bad</code>" in history

    # Roll back: a confirmation page, then the previous version is active again.
    confirm = c.get("/models/rollback").text
    assert "确认回滚到 good" in confirm
    r = c.post("/models/rollback", data={"csrf_token": csrf_of(confirm)})
    assert r.status_code == 303 and "已回滚到模型 good" in unquote(r.headers["location"])
    assert _active(live).version == "good"
    page = c.get("/models").text
    assert re.search(r"<code>bad</code></td>\s*<td><span class=\"model-rolled_back\">已回滚</span>", page)


def test_model_actions_need_an_analyst_and_the_csrf_token(live, client_as) -> None:
    before = _active(live).version
    staff = client_as("zhangmin")
    token = csrf_of(staff.get("/").text)
    assert 'href="/models"' not in staff.get("/").text
    for path in ("/models", "/models/2026.10.01/promote", "/models/rollback"):
        assert staff.get(path).status_code == 403, path
    for path, data in (("/models/2026.10.01/promote", {}), ("/models/2026.10.01/promote", {"force": "1", "reason": "x"}),
                       ("/models/rollback", {})):
        r = staff.post(path, data=data | {"csrf_token": token})
        assert r.status_code == 403 and "分析员" in r.text, path
    analyst = client_as("wangfang")
    for path in ("/models/2026.10.01/promote", "/models/rollback"):
        for data in ({}, {"csrf_token": "forged"}):
            r = analyst.post(path, data=data)
            assert r.status_code == 403 and "CSRF" in r.text, path
    assert _active(live).version == before
    # With the token the analyst reaches the registry, which says why nothing can be rolled back.
    r = analyst.post("/models/rollback", data={"csrf_token": csrf_of(analyst.get("/models").text)})
    assert r.status_code == 303 and "没有可以回滚到的历史版本" in unquote(r.headers["location"])
    assert analyst.get("/models/no-such-version/promote").status_code == 404


def test_analyst_recalibrates_on_the_offices_labels_then_promotes(live, client_as, trained_models, tmp_path) -> None:
    import numpy as np

    from nlp.classifier import RumorModel
    from nlp.labels import import_labels_csv
    from tests.fixtures.labelled_texts import labelled_texts, write_csv

    staff = client_as("zhangmin")
    r = staff.post("/models/recalibrate", data={"csrf_token": csrf_of(staff.get("/").text)})
    assert r.status_code == 403 and "分析员" in r.text
    c = client_as("wangfang")
    page = c.get("/models").text
    assert 'action="/models/recalibrate"' in page
    token = csrf_of(page)
    assert c.post("/models/recalibrate", data={}).status_code == 403  # no CSRF token

    # Too few labels in the database: refused, with what to do.
    r = c.post("/models/recalibrate", data={"csrf_token": token})
    refused = unquote(r.headers["location"])
    assert r.status_code == 303 and "至少 20 条谣言" in refused
    assert re.search(r"现有谣言 \d+ 条、非谣言 \d+ 条", refused) and "`" not in refused  # no CLI markup on a page

    # The office calls only the most alarming third of these texts rumors: same ranking, a stricter threshold.
    active = RumorModel.load(_active(live).path)
    texts, _ = labelled_texts(200, seed=5)
    margins = active.decision_function(texts)
    csv_file = tmp_path / "office.csv"
    write_csv(csv_file, texts, [int(m > np.quantile(margins, 0.66)) for m in margins])
    with session_scope(live.engine) as s:
        import_labels_csv(s, csv_file)
    r = c.post("/models/recalibrate", data={"csrf_token": token})
    assert r.status_code == 303, r.text
    msg = unquote(r.headers["location"])
    assert "已生成候选模型" in msg and "宏平均 F1" in msg
    version = re.search(r"候选模型 (\S+?)（", msg).group(1)
    with session_scope(live.engine) as s:
        row = s.scalars(select(ModelVersion).where(ModelVersion.version == version)).one()
        assert row.status == "candidate" and row.created_by is not None
        assert row.note.startswith(f"由 {trained_models['active']} 重新校准")
    page = c.get(r.headers["location"]).text
    assert "已生成候选模型" in page and f'href="/models/{version}/promote"' in page
    r = c.post(f"/models/{version}/promote", data={"csrf_token": token})
    assert r.status_code == 303 and f"已启用模型 {version}" in unquote(r.headers["location"])
    assert _active(live).version == version


# --------------------------------------------------------------------------- drift


@pytest.mark.parametrize("username", ["zhangmin", "wangfang"])
def test_drift_badge_says_what_shifted(live, client_as, username) -> None:
    c = client_as(username)
    assert "drift-badge" not in c.get("/").text
    with session_scope(live.engine) as s:
        active = s.scalars(select(ModelVersion).where(ModelVersion.status == "active")).one()
        # Trained on mostly low scores; today's runs score far higher.
        active.reference_distribution = {"bins": [300, 200, 150, 100, 80, 60, 40, 30, 20, 20]}
        for hist in ([10, 10, 10, 10, 20, 40, 60, 80, 90, 90], [5, 5, 10, 10, 10, 20, 30, 40, 60, 60]):
            s.add(AnalysisRun(started_at=utcnow(), model_version_id=active.id, posts_processed=sum(hist),
                              score_histogram=hist))
    queries.forget_drift()  # the header caches the status for a minute
    page = c.get("/").text
    badge = re.search(r'<(a|span) class="drift-badge"[^>]*title="([^"]+)"[^>]*>模型评分漂移<', page)
    assert badge, "no drift badge in the header"
    assert "评分分布明显升高" in badge.group(2) and "高分（≥0.8）占比" in badge.group(2) and "平均分" in badge.group(2)
    assert (badge.group(1) == "a") == (username == "wangfang")  # analysts get a link to the models page
    if username == "wangfang":
        models = c.get("/models").text
        assert 'class="panel drift drifting"' in models and "基准" in models


def test_the_shipped_model_shows_its_cross_validation_until_an_evaluation_set_exists() -> None:
    import json

    from api.console.render import SHIPPED_CV, model_metrics
    from nlp.scoring import default_model_path

    shipped = json.loads((default_model_path() / "metrics.json").read_text(encoding="utf-8"))
    numbers = model_metrics(shipped)  # the real card: research-data CV, not an empty column
    assert numbers["macro_f1"] == pytest.approx(shipped[SHIPPED_CV]["macro_f1"]) and len(numbers) >= 4
    trained_here = {**shipped, "evalset": {"macro_f1": 0.81, "rumor_f1": 0.8}}
    assert model_metrics(trained_here) == {"macro_f1": 0.81, "rumor_f1": 0.8}


def test_labels_are_corrected_resolved_deleted_and_exported_in_the_console(live, client_as, tmp_path) -> None:
    from sqlalchemy import select

    from core.ingest import ingest_posts
    from core.tables import Label, LabelEvent, Post
    from nlp.labels import import_labels_csv, label_post

    with session_scope(live.engine) as s:
        ingest_posts(s, [{"source": "控制台标注", "external_id": "lab-1", "text": "南坪村的桥被冲垮了，别走"}])
        post_id = s.scalar(select(Post.id).where(Post.external_id == "lab-1"))
        label_post(s, post_id=post_id, label=1, user_id=None)
    path = tmp_path / "imp.csv"
    path.write_text("text,label\n南坪村的桥被冲垮了，别走,0\n", encoding="utf-8")
    with session_scope(live.engine) as s:
        import_labels_csv(s, path)
    c = client_as("wangfang")
    page = c.get("/labels")
    assert page.status_code == 200 and 'action="/labels/resolve"' in page.text and 'id="all-labels"' in page.text
    token = csrf_of(page.text)
    with session_scope(live.engine) as s:
        text_hash = s.scalar(select(Label.text_hash).where(Label.post_id == post_id))
        manual_id = s.scalar(select(Label.id).where(Label.origin == "manual"))
    r = c.post("/labels/resolve", data={"csrf_token": token, "text_hash": text_hash, "label": "0"})
    assert r.status_code == 303 and "已裁定为「非谣言」" in unquote(r.headers["location"])
    assert "没有矛盾的标注" in c.get("/labels").text
    r = c.post(f"/labels/{manual_id}/set", data={"csrf_token": token, "label": "1"})
    assert r.status_code == 303 and "已改为「谣言」" in unquote(r.headers["location"])
    exported = c.get("/labels/export.csv")
    assert exported.status_code == 200 and "南坪村的桥被冲垮了" in exported.content.decode("utf-8-sig")
    r = c.post(f"/labels/{manual_id}/delete", data={"csrf_token": token})
    assert r.status_code == 303 and "已删除标注" in unquote(r.headers["location"])
    assert c.post("/labels/99999999/delete", data={"csrf_token": token}).status_code == 404
    assert c.post(f"/labels/{manual_id}/set", data={"csrf_token": token}).status_code == 303  # no verdict: a message
    with session_scope(live.engine) as s:  # this text's history (the scene's reviews have their own)
        actions = [e.action for e in s.scalars(select(LabelEvent).where(LabelEvent.text_hash == text_hash)
                                                .order_by(LabelEvent.id))]
    assert actions == ["created", "created", "resolved", "corrected", "deleted"]
    viewer = client_as("chenkz")
    refused = viewer.post("/labels/resolve", data={"csrf_token": csrf_of(viewer.get("/").text),
                                                   "text_hash": text_hash, "label": "1"})
    assert refused.status_code == 403
