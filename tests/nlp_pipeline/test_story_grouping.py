"""Story grouping on posts we wrote: edited forwards join one story, other stories stay apart,
and a later run continues the stories of an earlier one without re-clustering."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.ingest import ingest_posts
from core.tables import Post, Story
from nlp.normalize import normalize
from nlp.similarity import match_key, shingle_batch
from nlp.stories import StoryIndex, StoryMember, assign_stories, refresh_counts, write_stories
from tests.nlp_pipeline.conftest import ORDINARY, STORY_A, STORY_B, STORY_C, chat

UTC = dt.UTC


def _group(session: Session, index: StoryIndex, posts: list[Post]) -> list[int | None]:
    keys = [match_key(normalize(p.raw_text)) for p in posts]
    members = [
        StoryMember(
            post_id=p.id,
            key=k,
            when=p.published_at,
            old_story_id=p.story_id,
            title=normalize(p.raw_text),
            rumor_probability=0.5,
        )
        for p, k in zip(posts, keys, strict=True)
    ]
    assigned, updates = assign_stories(index, members, shingle_batch(keys).signatures())
    ids = write_stories(session, index, assigned, updates)
    for post, story_id in zip(posts, ids, strict=True):
        post.story_id = story_id
    session.flush()
    refresh_counts(session, [s for s in ids if s is not None] + [u for u in updates if u > 0])
    session.expire_all()
    return ids


def _ingest(
    session: Session, texts_groups: list[tuple[str, str]], start: int = 0, day: int = 28
) -> list[Post]:
    items = [chat(text, start + i, group, minute=i, day=day) for i, (text, group) in enumerate(texts_groups)]
    result = ingest_posts(session, items)
    assert not result.rejected
    keys = list(result.keys)
    return list(session.scalars(select(Post).where(Post.dedup_key.in_(keys)).order_by(Post.id)))


def test_forwards_join_one_story_and_other_stories_stay_apart(session: Session) -> None:
    groups = ["qh-1", "qh-2", "dw-1", "lsc-1"]
    texts = [(t, groups[i % 4]) for i, t in enumerate(STORY_A + STORY_B + STORY_C + ORDINARY)]
    texts.append(("柳树村出现大量确诊病例，整个村已经被封锁", "lsc-1"))  # like STORY_C, another village
    posts = _ingest(session, texts)
    ids = _group(session, StoryIndex(), posts)
    a, b, c = len(STORY_A), len(STORY_B), len(STORY_C)
    assert len(set(ids[:a])) == 1 and ids[0] is not None
    assert len(set(ids[a : a + b])) == 1 and ids[a] not in ids[:a]
    assert len(set(ids[a + b : a + b + c])) == 1 and ids[a + b] not in ids[: a + b]
    ordinary = ids[a + b + c : a + b + c + len(ORDINARY)]
    assert ordinary[-1] is None  # "收到" founds no story
    assert len(set(ordinary[:-1])) == len(ORDINARY) - 1 and not set(ordinary) & set(ids[: a + b + c])
    assert ids[-1] not in ids[:-1]  # 柳树村 is not 东湾村

    story = session.get(Story, ids[0])
    assert story.post_count == a and story.group_count == 4 and story.source_count == 0
    assert sum(story.hourly_counts.values()) == a
    assert story.first_seen == posts[0].published_at and story.last_seen == posts[a - 1].published_at
    assert story.representative_post_id == posts[0].id and "青禾镇明天封城" in story.title
    assert story.signature and story.max_rumor_probability == 0.5


def test_a_later_run_continues_earlier_stories(session: Session) -> None:
    first = _ingest(session, [(STORY_A[0], "qh-1"), (STORY_B[0], "qh-1")], start=100)
    ids = _group(session, StoryIndex(), first)
    # A new run: the index is rebuilt from stories.signature, nothing else.
    index = StoryIndex.load(session, now=dt.datetime(2026, 11, 29, tzinfo=UTC))
    assert len(index) >= 2
    later = _ingest(
        session,
        [(STORY_A[3], "nanping"), (STORY_B[1], "dw-1"), ("石桥村的石桥要拆了，以后只能绕远路", "sq-1")],
        start=200,
        day=29,
    )
    more = _group(session, index, later)
    assert more[0] == ids[0] and more[1] == ids[1] and more[2] not in ids
    story = session.get(Story, ids[0])
    assert story.post_count == 2 and story.group_count == 2
    assert story.last_seen == later[0].published_at and len(story.hourly_counts) == 2
    # Stories outside the window are not joined: an old story starts over.
    stale = StoryIndex.load(session, now=dt.datetime(2027, 1, 31, tzinfo=UTC), window_days=14)
    assert len(stale) == 0
