"""The claim matcher: same claim through rewording, never across villages or amounts; the index."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from nlp.claim_words import canonical_key
from nlp.claims import (
    FEATURES,
    ClaimMatcher,
    ClaimModelMissing,
    card,
    claim_key,
    load_claim_matcher,
    save_claim_matcher,
)
from nlp.normalize import normalize


@pytest.fixture(scope="module")
def cm() -> ClaimMatcher:
    return load_claim_matcher()


def n(text: str) -> str:
    return normalize(text)


# Our own examples, not the benchmark's: (claim, retelling).
RETOLD = [  # shortened, with forward decoration, synonyms: the operating point accepts these
    ("柳树村后天开始拆迁，每户补偿20万", "紧急扩散！柳树村后天拆迁，每户补偿20万"),
    ("84岁钟南山院士再度出征，赶赴武汉", "84岁的钟南山院士又一次出征，赶赴武汉"),
]
REWORDED = [  # freer rewordings: they must score far above unrelated text (the benchmark measures
    # how many pass the operating point: bench/results/claims.md)
    ("南坪村的井水被养猪场污染了，喝了会生病", "听说南坪村井水被养猪场弄脏了，喝了要生病，大家注意"),
    ("青禾中学食堂的饭菜吃坏了好几个学生", "青禾中学食堂饭菜把几个学生吃坏了？"),
]
SAME = RETOLD + REWORDED
# Another destination (武汉 / 北京): a retelling or another claim; the matcher may doubt it, but
# it must still rank far above unrelated text.
DOUBTFUL = ("84岁钟南山院士再度出征，赶赴武汉", "84岁钟南山院士再次出征北京")
DIFFERENT = [
    # another village, another amount, another school, the opposite change: same words, another claim
    ("南坪村的井水被养猪场污染了，喝了会生病", "东湾村的井水被养猪场污染了，喝了会生病"),
    ("柳树村后天开始拆迁，每户补偿20万", "柳树村后天开始拆迁，每户补偿50万"),
    ("青禾中学食堂的饭菜吃坏了好几个学生", "实验小学食堂的饭菜吃坏了好几个学生"),
    ("燃气下个月每方涨价五毛", "燃气下个月每方降价五毛"),
    # another count of a thing the anchors have no unit for; who did it to whom swapped
    ("村里办酒席以后不能超过8桌", "村里办酒席以后不能超过12桌"),
    ("东湾小学一个老师把学生打伤了", "东湾小学一个学生把老师打伤了"),
]
UNRELATED = "明天镇上有集市，大家去赶集"


def test_claim_key_drops_spoken_hooks() -> None:
    assert claim_key(n("听说石桥村停水了，是真的吗？")) == "石桥村停水了"
    assert claim_key(n("转发：紧急扩散！石桥村停水了")) == "石桥村停水了"
    assert claim_key(n("是真的吗")) == "是真的吗"  # nothing but a hook stays itself


def test_retellings_are_the_same_claim_and_anchors_keep_claims_apart(cm: ClaimMatcher) -> None:
    retold = cm.score_pairs([n(a) for a, _ in RETOLD], [n(b) for _, b in RETOLD])
    assert (retold >= cm.threshold).all(), retold
    same = cm.score_pairs([n(a) for a, _ in SAME], [n(b) for _, b in SAME])
    unrelated = cm.score_pairs([n(a) for a, _ in SAME], [n(UNRELATED)] * len(SAME))
    assert (same - unrelated >= 0.3).all(), (same, unrelated)
    doubtful = cm.score_pairs([n(DOUBTFUL[0]), n(DOUBTFUL[0])], [n(DOUBTFUL[1]), n(UNRELATED)])
    assert doubtful[0] - doubtful[1] >= 0.3, doubtful
    diff = cm.score_pairs([n(a) for a, _ in DIFFERENT], [n(b) for _, b in DIFFERENT])
    assert diff.tolist() == [0.0] * len(DIFFERENT)  # a conflict is never the same claim
    # symmetric enough to be used either way round
    back = cm.score_pairs([n(b) for _, b in SAME], [n(a) for a, _ in SAME])
    assert np.allclose(same, back, atol=0.05)


def test_claim_key_is_rewritten_to_canonical_words() -> None:
    assert canonical_key("南坪村八岁小姑娘又一次走丢了") == "南坪村8岁女孩再次失踪了"
    assert canonical_key("每方涨一块钱二十多户不同意") == "每方涨1元20多户不同意"
    assert canonical_key("一个人") == "一个人"  # "一个" is a word, not a count
    # a canonical word stays itself inside a longer one ("菜市场" holds "市场")
    assert canonical_key("菜市场和农贸市场") == "菜市场和菜市场"


def test_score_pairs_edges(cm: ClaimMatcher) -> None:
    assert cm.score_pairs([], []).shape == (0,)
    assert cm.score_pairs(["", n("石桥村停水了")], [n("石桥村停水了"), ""]).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="aligned"):
        cm.score_pairs([n("石桥村停水了")], [])
    x = cm.featurizer.features([cm.doc(n("石桥村停水了"))], [cm.doc(n("石桥村停水了"))])
    assert x.shape == (1, len(FEATURES))


def test_index_is_incremental_and_finds_retellings_among_many(cm: ClaimMatcher) -> None:
    index = cm.index()
    # distractors: the same few words about other places and things
    places = ["东湾村", "柳树村", "石桥村", "河西路", "新华路", "红星小区"]
    things = ["停电一天", "修路封闭", "着火了", "有人打架", "集市改期"]
    key = 0
    for p in places:
        for t in things:
            index.add(("x", key), n(f"{p}{t}，大家注意"))
            key += 1
    for i, (claim, _) in enumerate(SAME):
        index.add(("claim", i), n(claim))
    assert len(index) == key + len(SAME)
    # the best candidate of each retelling is its own claim (min_score 0: rank, not decide)
    hits = index.query([n(b) for _, b in SAME], k=3, min_score=0.0)
    assert [h[0][0] for h in hits] == [("claim", i) for i in range(len(SAME))]
    accepted = index.query([n(b) for _, b in RETOLD], k=3)
    assert [h[0][0] for h in accepted] == [("claim", i) for i in range(len(RETOLD))]
    # another village finds nothing
    assert all(k != ("claim", 2) for k, _ in index.query([n("东湾村的井水被养猪场污染了，喝了会生病")], min_score=0.0)[0])
    assert index.query([n("东湾村的井水被养猪场污染了，喝了会生病")])[0] == []
    # remove and re-add under another key
    index.remove(("claim", 0))
    assert ("claim", 0) not in index
    assert all(k != ("claim", 0) for k, _ in index.query([n(SAME[0][1])], min_score=0.0)[0])
    index.add(("again", 0), n(SAME[0][0]))
    assert index.query([n(SAME[0][1])])[0][0][0] == ("again", 0)


def test_index_blocks_and_pending_agree(cm: ClaimMatcher) -> None:
    small = cm.index()
    small.block_size = 4  # several frozen blocks plus a pending tail
    for i, (claim, _) in enumerate(SAME * 3):
        small.add(i, n(claim + "。" * (i // len(SAME))))
    got = small.query([n(SAME[1][1])], k=10)[0]
    assert {k for k, _ in got} == {1, 5, 9}


def test_pickle_and_save_load_round_trip(cm: ClaimMatcher, tmp_path: Path) -> None:
    twin = pickle.loads(pickle.dumps(cm))
    a, b = [n(x) for x, _ in SAME], [n(y) for _, y in SAME]
    assert np.allclose(twin.score_pairs(a, b), cm.score_pairs(a, b))
    save_claim_matcher(cm, tmp_path / "v1", {"version": "v1", "threshold": cm.threshold})
    (tmp_path / "ACTIVE").write_text("v1\n", encoding="utf-8")
    loaded = load_claim_matcher(base=tmp_path)
    assert np.allclose(loaded.score_pairs(a, b), cm.score_pairs(a, b), atol=1e-3)
    with pytest.raises(ClaimModelMissing, match="train one"):
        load_claim_matcher(base=tmp_path / "nowhere")


def test_shipped_card_says_what_it_was_trained_on() -> None:
    info = card()
    # the active model reads the first columns of today's rows (features are only appended)
    assert 0 < info["threshold"] < 1 and info["features"] == list(FEATURES[:len(info["features"])])
    assert "weibo_ced" in info["data_terms"] and "research" in info["data_terms"]


def test_a_claim_about_the_town_covers_its_villages(cm: ClaimMatcher) -> None:
    # places.yaml: 石桥村 and 东湾村 lie in 青禾镇, 柳树村 elsewhere (our own gazetteer)
    town, village = n("青禾镇的井水被养猪场污染了，不能喝"), n("石桥村的井水被养猪场污染了，不能喝")
    sibling = n("东湾村的井水被养猪场污染了，不能喝")
    s = cm.score_pairs([town, village, village], [village, town, sibling])
    assert s[0] >= cm.threshold and s[1] == s[0], s  # nested places: one claim, either way round
    assert s[2] == 0.0  # two villages: two claims


def test_an_older_model_still_loads_and_scores() -> None:
    # features are only appended: 2026.12.1 (27 columns) reads the first columns of today's rows
    old = load_claim_matcher("2026.12.1")
    assert old.model.n_features_in_ < len(FEATURES)
    a, b = n("柳树村后天开始拆迁，每户补偿20万"), n("紧急扩散！柳树村后天拆迁，每户补偿20万")
    s = old.score_pairs([a, a], [b, n(UNRELATED)])
    assert s[0] >= old.threshold > s[1], s
