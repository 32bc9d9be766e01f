"""Labels for retraining: CSV import is idempotent, conflicts are reported, the queue is ordered."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from core.errors import InvalidInput
from core.ingest import ingest_posts
from core.tables import ModelVersion, Post, PostScore, Story
from nlp.labels import (
    active_learning_queue,
    import_labels_csv,
    label_conflicts,
    label_post,
    text_key,
    training_labels,
)


def _csv(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(body, encoding="utf-8")
    return path


def test_import_is_idempotent_and_reports_bad_lines(session: Session, tmp_path: Path) -> None:
    path = _csv(tmp_path, "text,label\n青禾镇明天封城，赶紧囤菜！,谣言\n镇卫生院周六照常开诊,0\n,1\n东湾村停水,maybe\n")
    first = import_labels_csv(session, path)
    assert (first.new, first.unchanged) == (2, 0)
    assert [e.split("：")[0] for e in first.errors] == ["第 4 行", "第 5 行"]
    second = import_labels_csv(session, path)
    assert (second.new, second.unchanged) == (0, 2)


def test_missing_columns_say_what_is_needed(session: Session, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="text,label"):
        import_labels_csv(session, _csv(tmp_path, "content,y\na,1\n"))


def test_text_key_ignores_width_and_spacing() -> None:
    assert text_key("青禾镇 明天封城！") == text_key("青禾镇明天封城!")
    assert text_key("青禾镇明天封城") != text_key("青禾镇后天封城")


def test_conflicts_are_reported_and_left_out_of_training(session: Session, tmp_path: Path) -> None:
    ingest_posts(session, [{"source": "冲突测试", "external_id": "c1", "text": "柳树村的井水不能喝了 "}])
    post = session.query(Post).filter_by(external_id="c1").one()
    label_post(session, post_id=post.id, label=1, user_id=None)
    import_labels_csv(session, _csv(tmp_path, "text,label\n柳树村的井水不能喝了,0\n南坪村修路,0\n"))
    conflicts = label_conflicts(session)
    assert len(conflicts) == 1 and conflicts[0].labels == {1: 1, 0: 1}
    texts, labels, left_out = training_labels(session)
    assert texts == ["南坪村修路"] and labels == [0] and len(left_out) == 1


def _post_with_score(session: Session, ext: str, p: float, story_posts: int, model_id: int) -> int:
    ingest_posts(session, [{"source": "队列测试", "external_id": ext, "text": f"测试帖子 {ext}"}])
    post = session.query(Post).filter_by(external_id=ext).one()
    now = dt.datetime.now(dt.UTC)
    story = Story(first_seen=now, last_seen=now, post_count=story_posts, group_count=0)
    session.add(story)
    session.flush()
    post.story_id = story.id
    session.add(PostScore(post_id=post.id, model_version_id=model_id, rumor_probability=p, label=int(p >= 0.5)))
    session.flush()
    return post.id


def test_active_learning_prefers_uncertain_and_far_reaching(session: Session) -> None:
    mv = ModelVersion(name="rumor", version="t1", path="-", status="active")
    session.add(mv)
    session.flush()
    sure = _post_with_score(session, "sure", 0.97, 50, mv.id)
    unsure_small = _post_with_score(session, "unsure-small", 0.5, 1, mv.id)
    unsure_big = _post_with_score(session, "unsure-big", 0.55, 40, mv.id)
    fairly = _post_with_score(session, "fairly", 0.75, 1, mv.id)
    queue, total = active_learning_queue(session, model_version_id=mv.id)
    ids = [q.post_id for q in queue]
    assert sure not in ids and total == 3
    assert ids == [unsure_big, unsure_small, fairly]
    label_post(session, post_id=unsure_big, label=1, user_id=None)
    assert [q.post_id for q in active_learning_queue(session, model_version_id=mv.id)[0]] == [unsure_small, fairly]


def test_the_queue_asks_about_a_text_once(session: Session) -> None:
    mv = ModelVersion(name="rumor", version="t2", path="-", status="active")
    session.add(mv)
    session.flush()
    # one notice copied by two sites (a trailing space and a full-width comma apart): one question
    ids = []
    for ext, text in (("site-a", "石桥村明日临时停水，请提前储水"), ("site-b", "石桥村明日临时停水,请提前储水 ")):
        ingest_posts(session, [{"source": f"站点{ext}", "external_id": ext, "text": text}])
        post = session.query(Post).filter_by(external_id=ext).one()
        session.add(PostScore(post_id=post.id, model_version_id=mv.id, rumor_probability=0.5, label=1))
        ids.append(post.id)
    other = _post_with_score(session, "other", 0.6, 1, mv.id)
    session.flush()
    queue, total = active_learning_queue(session, model_version_id=mv.id)
    assert total == 2 and [q.post_id for q in queue] == [ids[0], other]
    label_post(session, post_id=ids[0], label=0, user_id=None)  # the verdict covers the copy too
    assert [q.post_id for q in active_learning_queue(session, model_version_id=mv.id)[0]] == [other]
