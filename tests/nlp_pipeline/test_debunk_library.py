"""The debunk library: idempotent imports, service rules, and matching posts we wrote."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import Conflict, InvalidInput, NotFound
from core.tables import Debunk
from nlp.debunks import (
    DebunkIn,
    DebunkMatcher,
    DebunkUpdate,
    claim_key,
    create_debunk,
    delete_debunk,
    import_debunks,
    insert_new_debunks,
    list_debunks,
    read_debunk_file,
    update_debunk,
)
from nlp.normalize import normalize
from nlp.similarity import match_key
from tests.nlp_pipeline.conftest import DEMO_DEBUNKS

CSV_HEADER = "claim,refutation,publisher,url,published_at,category,tags\n"


def test_yaml_import_is_idempotent(session: Session) -> None:
    first = import_debunks(session, DEMO_DEBUNKS)
    assert first.new == len(read_debunk_file(DEMO_DEBUNKS)) >= 6 and not first.rejected
    again = import_debunks(session, DEMO_DEBUNKS)
    assert (again.new, again.updated, again.unchanged) == (0, 0, first.new)
    assert session.scalar(select(func.count()).select_from(Debunk)) == first.new
    row = session.scalar(select(Debunk).where(Debunk.publisher == "青禾县水务局"))
    assert row is not None and "自来水" in row.claim and row.published_at.tzinfo is not None


def test_a_claim_another_import_added_meanwhile_is_not_counted_new(session: Session, monkeypatch) -> None:
    """Two imports racing: the other one inserts the claim between our look-up and our insert.
    Nothing is duplicated and the claim is reported unchanged, not new (psycopg's rowcount is -1
    for the insert, so only RETURNING can say which rows were ours)."""
    import nlp.debunks as debunks

    claim = "网传石桥村水源被化工厂污染"
    row = {"claim": claim, "refutation": "经检测水质达标。", "publisher": "镇政府"}

    def racing_insert(s: Session, rows):
        insert_new_debunks(s, rows)  # the other process's import wins the race
        return insert_new_debunks(s, rows)

    monkeypatch.setattr(debunks, "insert_new_debunks", racing_insert)
    result = debunks.upsert_debunks(session, [row])
    assert (result.new, result.unchanged) == (0, 1)
    assert session.scalar(select(func.count()).select_from(Debunk)) == 1
    assert len(result.ids) == 1


def test_csv_import_updates_changed_rows_and_reports_bad_ones(session: Session, tmp_path) -> None:
    path = tmp_path / "debunks.csv"
    path.write_text(
        CSV_HEADER
        + "石桥村的石桥要拆了,石桥只是例行检修,青禾镇人民政府,,2026-11-24,交通出行,石桥村;拆迁\n"
        + ",没有谣言内容的一行,,,,,\n"
        + "南坪村猪肉是病死猪肉,经检查均有检疫合格证明,青禾县市场监督管理局,,not-a-date,,\n",
        encoding="utf-8",
    )
    result = import_debunks(session, path)
    assert result.new == 1 and len(result.rejected) == 2
    assert all("第" in reason for _, reason in result.rejected)
    # Same claim with other punctuation and a forward prefix is the same debunk: updated, not duplicated.
    path.write_text(
        CSV_HEADER + "转发：石桥村的石桥要拆了！！,石桥只是例行检修，不会拆除。,青禾镇人民政府,,,,\n",
        encoding="utf-8",
    )
    updated = import_debunks(session, path)
    assert (updated.new, updated.updated) == (0, 1)
    row = session.get(Debunk, updated.ids[0])
    assert row.refutation.endswith("不会拆除。") and row.tags == []


def test_bad_files_get_clear_chinese_errors(tmp_path) -> None:
    missing = tmp_path / "x.csv"
    missing.write_text("text,label\n青禾镇封城,1\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="缺少列 claim, refutation"):
        read_debunk_file(missing)
    with pytest.raises(InvalidInput, match="不存在"):
        read_debunk_file(tmp_path / "nope.yaml")
    gbk = tmp_path / "gbk.csv"  # as Excel on Chinese Windows saves it: read, not refused
    gbk.write_bytes((CSV_HEADER + "青禾镇封城,假的,,,,,\n").encode("gbk"))
    assert [r["claim"] for r in read_debunk_file(gbk)] == ["青禾镇封城"]
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes((CSV_HEADER + "青禾镇封城,假的,,,,,\n").encode("utf-16"))
    assert [r["refutation"] for r in read_debunk_file(utf16)] == ["假的"]
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("debunks: {claim: 只有一个}\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="列表"):
        read_debunk_file(bad_yaml)
    with pytest.raises(InvalidInput, match=r"\.csv 或 \.yaml"):
        read_debunk_file(tmp_path / "x.xlsx", data=b"")


def test_service_create_update_delete(session: Session) -> None:
    item = DebunkIn(
        claim="柳树村小学有学生被人贩子抢走", refutation="经派出所调查，没有发生此事。", tags=["柳树村"]
    )
    row = create_debunk(session, item)
    assert row.dedup_key == claim_key("【转】柳树村小学有学生被人贩子抢走！！")
    with pytest.raises(Conflict):
        create_debunk(session, item)
    changed = update_debunk(
        session, row.id, DebunkUpdate(claim="柳树村小学有学生被人贩子抢走了", active=False)
    )
    assert changed.dedup_key == claim_key("柳树村小学有学生被人贩子抢走了") and changed.active is False
    rows, total = list_debunks(session, q="人贩子")
    assert total == 1 and rows[0].id == row.id
    assert list_debunks(session, q="人贩子", active=True)[1] == 0
    delete_debunk(session, row.id)
    with pytest.raises(NotFound):
        delete_debunk(session, row.id)


POSTS = {
    "转发：青禾镇明天封城，所有人不准出门，赶紧去超市囤货！！不转不是中国人": "封城",
    "紧急扩散！青禾镇自来水被污染了，千万不要喝自来水，快去买桶装水": "自来水",
    "家人们，群里都在说喝板蓝根和熏醋可以预防新型病毒，药店板蓝根要卖断货了，是真的吗": "板蓝根",
    "【转】东湾村出现大量确诊病例，整个村已经被封锁了！！": "东湾村",
}
UNRELATED = [
    "青禾镇今天的集市很热闹，大家都去买年货了",
    "柳树村出现大量确诊病例，整个村已经被封锁了",  # another village: not the 东湾村 debunk
    "东湾村今天开了村民大会，讨论修路的事情，大家都很支持",
    "青禾镇人民政府通知：本周六上午在镇文化站举办健康讲座，欢迎居民参加",
    "石桥村的桥修好了吗？想周末去镇上赶集",
    "收到",
    "",
]


def test_matcher_flags_known_rumors_and_only_them() -> None:
    rows = [DebunkIn.model_validate(r) for r in read_debunk_file(DEMO_DEBUNKS)]
    matcher = DebunkMatcher(list(range(1, len(rows) + 1)), [r.claim for r in rows])
    keys = [match_key(normalize(t)) for t in [*POSTS, *UNRELATED]]
    hits = matcher.match(keys)
    for (text, word), hit in zip(POSTS.items(), hits, strict=False):
        assert hit is not None, text
        assert word in rows[hit.debunk_id - 1].claim, (text, hit)
        assert 0 < hit.similarity <= 1 and hit.method in {"minhash", "tfidf", "containment"}
    assert hits[0].method == "minhash" and hits[0].similarity >= 0.9
    assert hits[len(POSTS) :] == [None] * len(UNRELATED)
    assert DebunkMatcher([], []).match(keys) == [None] * len(keys)


def test_a_debunk_about_the_town_covers_its_villages_not_the_reverse(session: Session) -> None:
    # places.yaml: 石桥村 and 东湾村 lie in 青禾镇
    create_debunk(session, DebunkIn(claim="网传青禾镇自来水被工厂污染了，千万别喝", refutation="经检测水质合格。"))
    create_debunk(session, DebunkIn(claim="东湾村明天开始封村，所有人不准出门", refutation="没有封村安排。"))
    matcher = DebunkMatcher.from_session(session)  # the product's path: hierarchy from places.yaml
    posts = ["石桥村的自来水被工厂污染了，千万别喝", "青禾镇明天开始封村，所有人不准出门",
             "柳树村明天开始封村，所有人不准出门"]
    hits = matcher.match([match_key(normalize(t)) for t in posts])
    assert hits[0] is not None and "青禾镇" in session.get(Debunk, hits[0].debunk_id).claim
    assert hits[1] is None  # a village's debunk says nothing about the whole town
    assert hits[2] is None  # nor about another village
    flat = DebunkMatcher(matcher.ids.tolist(), [session.get(Debunk, i).claim for i in matcher.ids.tolist()])
    assert flat.match([match_key(normalize(posts[0]))]) == [None]  # without the hierarchy: two places


def test_reworded_retellings_match_through_the_claim_matcher_and_amounts_stay_apart() -> None:
    claims = ["镇政府给每户发800元取暖补贴，带身份证去村委会领", "柳树村后天开始拆迁，每户补偿20万"]
    posts = [
        "取暖补贴每户800元，去村委会领，转给身边的人",  # reworded: the paraphrase path
        "镇政府给每户发500元取暖补贴，带身份证去村委会领",  # another amount: no path may match it
        "柳树村后天拆迁，每户补偿50万",
        "紧急扩散！柳树村后天拆迁，每户补偿20万",  # a near-copy: MinHash, as before
    ]
    keys = [match_key(normalize(t)) for t in posts]
    hits = DebunkMatcher([1, 2], claims).match(keys)
    assert hits[0] is not None and hits[0].debunk_id == 1 and hits[0].method == "paraphrase"
    assert hits[1] is None and hits[2] is None
    assert hits[3] is not None and hits[3].debunk_id == 2 and hits[3].method == "minhash"
    # Without the claim matcher (the matcher before): the rewording is missed.
    assert DebunkMatcher([1, 2], claims, claim_matcher=None).match(keys[:1]) == [None]


def test_the_workers_matcher_matches_alike_without_importing_sklearn(tmp_path) -> None:
    """What `yuqing analyze` sends its worker processes (DebunkMatcher.portable) when the claim
    model is a logistic one (2026.12.1; the shipped trees of 2026.12.2 have no numpy twin and go
    as they are): the same hits on reworded, near-copied and unrelated posts, and unpickled in a
    fresh interpreter without scikit-learn (importing it cost each worker about 3 CPU-seconds)."""
    import json
    import pickle
    import subprocess
    import sys
    from pathlib import Path

    from nlp.claims import load_claim_matcher

    rows = [DebunkIn.model_validate(r) for r in read_debunk_file(DEMO_DEBUNKS)]
    claims = [r.claim for r in rows] + ["镇政府给每户发800元取暖补贴，带身份证去村委会领"]
    matcher = DebunkMatcher(list(range(1, len(claims) + 1)), claims, claim_matcher=load_claim_matcher("2026.12.1"))
    portable = matcher.portable()
    assert portable.claim_matcher is not None and portable.claim_matcher.model is not matcher.claim_matcher.model
    texts = [*POSTS, *UNRELATED, "取暖补贴每户800元，去村委会领，转给身边的人", "镇政府给每户发500元取暖补贴"]
    keys = [match_key(normalize(t)) for t in texts]
    expected = matcher.match(keys)
    assert any(h is not None and h.method == "paraphrase" for h in expected)  # the claim model was used
    (tmp_path / "matcher.pickle").write_bytes(pickle.dumps(portable))
    (tmp_path / "keys.json").write_text(json.dumps(keys, ensure_ascii=False), encoding="utf-8")
    code = (
        "import json, pickle, sys\n"
        f"m = pickle.loads(open({str(tmp_path / 'matcher.pickle')!r}, 'rb').read())\n"
        f"keys = json.loads(open({str(tmp_path / 'keys.json')!r}, encoding='utf-8').read())\n"
        "hits = [None if h is None else [h.debunk_id, h.similarity, h.method] for h in m.match(keys)]\n"
        "print(json.dumps({'hits': hits, 'sklearn': any(k.startswith('sklearn') for k in sys.modules)}))\n"
    )
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo, check=True,
                         env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"})
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["sklearn"] is False
    assert got["hits"] == [None if h is None else [h.debunk_id, h.similarity, h.method] for h in expected]



def test_a_csv_with_a_stray_carriage_return_is_a_clear_error_or_reads() -> None:
    """Found by schemathesis: a lone carriage return in an unquoted field made the csv module
    raise, and the import route answered 500."""
    from nlp.debunks import read_debunk_file

    data = "claim,refutation\n甲村停水\r了,不实\n".encode()
    try:
        rows = read_debunk_file("x.csv", data=data)
    except InvalidInput as err:
        assert "CSV" in str(err)
    else:
        assert rows and rows[0]["claim"].startswith("甲村停水")
