"""Match keys, MinHash signatures and the banded LSH index on sentences we wrote."""

from __future__ import annotations

import numpy as np
from datasketch import MinHash

from nlp.normalize import normalize
from nlp.similarity import (
    SEED,
    BandedIndex,
    jaccard_estimate,
    match_key,
    pack_signature,
    place_marks,
    places_conflict,
    shingle_batch,
    to_datasketch,
    unpack_signature,
)


def key(text: str) -> str:
    return match_key(normalize(text))


def test_forward_decorations_do_not_change_the_key() -> None:
    plain = key("青禾镇明天封城，所有人不准出门")
    assert plain == "青禾镇明天封城所有人不准出门"
    for decorated in (
        "转发：青禾镇明天封城，所有人不准出门",
        "【转】青禾镇明天封城，所有人不准出门！！",
        "紧急扩散！！！青禾镇明天封城,所有人不准出门 不转不是中国人",
        "紧急扩散！转发：青禾镇明天封城，所有人不准出门。转发扩散 http://t.cn/abc123 @青禾小灵通",
    ):
        assert key(decorated) == plain, decorated
    assert key("") == "" and key(None) == "" and key("！！！😀") == ""


def test_signatures_are_datasketch_minhashes() -> None:
    keys = ["青禾镇自来水被污染了千万别喝", "好", "东湾村今天开了村民大会讨论修路"]
    batch = shingle_batch(keys)
    sigs = batch.signatures()
    for d, text in enumerate(keys):
        reference = MinHash(num_perm=sigs.shape[1], seed=SEED, hashfunc=lambda x: x)
        reference.update_batch([int(h >> np.uint64(32)) for h in batch.doc_hashes(d)])
        assert np.array_equal(reference.hashvalues, sigs[d]), text
        assert to_datasketch(sigs[d]).jaccard(reference) == 1.0
    assert np.array_equal(unpack_signature(pack_signature(sigs[0])), sigs[0])
    assert unpack_signature(b"") is None and unpack_signature(b"\x07" + sigs[0].tobytes()) is None


def test_index_finds_edited_copies_and_keeps_other_stories_apart() -> None:
    texts = [
        "青禾镇明天封城所有人不准出门赶紧去超市囤货",
        "青禾镇明天要封城所有人都不准出门赶紧去超市囤货吧",
        "青禾镇自来水被污染了千万不要喝自来水快去买桶装水",
        "东湾村封村了大家不要去东湾村走亲戚",
        "柳树村封村了大家不要去柳树村走亲戚",
    ]
    sigs = shingle_batch(texts).signatures()
    assert jaccard_estimate(sigs[0], sigs[1]) >= 0.5
    index = BandedIndex(0.5)
    index.insert(0, sigs[0])
    index.insert(2, sigs[2])
    index.insert(3, sigs[3])
    assert index.best(sigs[1])[0] == 0
    assert index.best(sigs[2]) == (2, 1.0)
    # Same wording, another village: similar bigrams, but a different story.
    assert index.best(sigs[4]) is not None and places_conflict(place_marks(texts[4]), place_marks(texts[3]))
    assert (
        index.best(
            sigs[4], accept=lambda c: not places_conflict(place_marks(texts[4]), place_marks(texts[c]))
        )
        is None
    )
    assert not places_conflict(place_marks(texts[0]), place_marks(texts[1]))
    index.remove(0)
    assert index.best(sigs[1]) is None and len(index) == 2


def test_insert_many_builds_the_same_index_as_one_insert_at_a_time() -> None:
    texts = [f"青禾镇{place}明天{event}，大家注意" for place in ("东湾村", "柳树村", "石桥村") for event in
             ("停电三天", "停水两天", "封路一周", "举办集市")] * 2  # repeats: equal signatures share buckets
    sigs = shingle_batch([match_key(normalize(t)) for t in texts]).signatures()
    one, many = BandedIndex(0.5), BandedIndex(0.5)
    one.insert(1000, sigs[0])
    many.insert(1000, sigs[0])
    keys = [1000, *range(1, len(texts))]  # 1000 is already there: skipped by both
    for key, sig in zip(keys, sigs, strict=True):
        one.insert(key, sig)
    many.insert_many(keys, sigs, many.band_keys(sigs))
    assert one._row == many._row and one._keys == many._keys
    assert one._buckets == many._buckets
    np.testing.assert_array_equal(one._matrix[: len(one._keys)], many._matrix[: len(many._keys)])
    assert many.query_many(sigs) == one.query_many(sigs)


def test_everyday_words_are_not_places() -> None:
    """"超市", "小区", "农村" end in a place suffix; the words around them must not make two
    copies of one rumor look like two places."""
    a = "青禾镇下周要封城所有路口都要设卡超市米面都被抢光了"
    b = "群里都在传青禾镇下周要封城我刚去超市米面都快被抢光了"
    assert place_marks(a) == place_marks(b) == {"青禾镇"}
    assert not places_conflict(place_marks(a), place_marks(b))
    assert place_marks("住在老小区回农村的都说城市里") == frozenset()
    assert place_marks("东湾新村和南坪村") == {"湾新村", "南坪村"}  # 新村 still ends a name
    assert places_conflict(place_marks("东湾村超市断货了"), place_marks("柳树村超市断货了"))
