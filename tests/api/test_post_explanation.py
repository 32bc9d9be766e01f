"""The API names a score's reasons as staff read them: a cue's Chinese label, never "cue:short"."""

from __future__ import annotations

from sqlalchemy import select

from core.db import session_scope
from core.ingest import ingest_posts
from core.tables import Post, PostScore
from nlp.cues import CUE_LABELS_ZH


def test_post_detail_labels_cue_terms(api_client, api_engine, make_user) -> None:
    with session_scope(api_engine) as s:
        ingest_posts(s, [{"source": "青禾论坛", "external_id": "p1", "text": "听说明天封城，赶紧转发！！"}])
        post_id = s.scalar(select(Post.id))
        s.add(PostScore(post_id=post_id, rumor_probability=0.9, label=1,
                        explanation=[["cue:hearsay", 0.8], ["封城", 0.5], ["cue:short", -0.1]]))
    detail = api_client.get(f"/api/v1/posts/{post_id}", headers=make_user("viewer"))
    assert detail.status_code == 200
    assert detail.json()["explanation"] == [[CUE_LABELS_ZH["hearsay"], 0.8], ["封城", 0.5],
                                            [CUE_LABELS_ZH["short"], -0.1]]
