"""The debunk library page: search, add, edit and CSV import through nlp.debunks (when installed)."""

from __future__ import annotations

import re

from sqlalchemy import select

from core.db import session_scope
from core.tables import Debunk
from tests.console.conftest import csrf_of


def test_library_search_is_read_only_for_viewers(live, client_as) -> None:
    viewer = client_as("chenkz")
    page = viewer.get("/debunks", params={"q": "自来水"})
    assert page.status_code == 200
    assert "县水务公司" in page.text and "封路计划" not in page.text
    assert "/debunks/new" not in page.text and "/edit" not in page.text and "导入" not in page.text
    token = csrf_of(page.text)
    assert viewer.post("/debunks", data={"claim": "x", "refutation": "y", "csrf_token": token}).status_code in (403, 404)
    assert viewer.get("/debunks", params={"q": "%_"}).status_code == 200


def test_staff_add_edit_and_import_debunks(live, client_as) -> None:
    c = client_as("zhangmin")
    token = csrf_of(c.get("/debunks/new").text)
    r = c.post("/debunks", data={"csrf_token": token, "claim": "柳树村小学下周起停课",
                                 "refutation": "县教育局：各校正常上课，没有停课安排。", "publisher": "青禾县教育局",
                                 "url": "https://www.qinghe.example/jyj/1", "published_at": "2026-11-28",
                                 "category": "教育", "tags": "停课、柳树村"})
    assert r.status_code == 303, r.text
    with session_scope(live.engine) as s:
        row = s.scalar(select(Debunk).where(Debunk.claim == "柳树村小学下周起停课"))
        assert row.publisher == "青禾县教育局" and row.tags == ["停课", "柳树村"] and row.created_by
        debunk_id = row.id
    # the same claim again is refused with the service's own message, and the form keeps the text
    again = c.post("/debunks", data={"csrf_token": token, "claim": "柳树村小学下周起停课", "refutation": "重复"})
    assert again.status_code == 409 and "已有相同的谣言" in again.text and "柳树村小学下周起停课" in again.text
    bad = c.post("/debunks", data={"csrf_token": token, "claim": "新说法", "refutation": "内容",
                                   "url": "javascript:alert(1)"})
    assert bad.status_code == 422
    edit = c.get(f"/debunks/{debunk_id}/edit")
    assert edit.status_code == 200 and "青禾县教育局" in edit.text
    r = c.post(f"/debunks/{debunk_id}", data={"csrf_token": token, "claim": "柳树村小学下周起停课",
                                              "refutation": "县教育局：各校正常上课。", "publisher": "青禾县教育局"})
    assert r.status_code == 303
    with session_scope(live.engine) as s:
        row = s.get(Debunk, debunk_id)
        assert row.refutation == "县教育局：各校正常上课。" and row.active is False  # unchecked box: disabled

    csv_text = ("claim,refutation,publisher\n"
                "南坪村要封村,镇政府：没有封村计划。,青禾镇人民政府\n"
                "东湾村超市停业,超市正常营业。,青禾镇市场监管所\n"
                ",缺少说法的一行,\n")
    for encoding in ("gbk", "utf-8-sig"):
        files = {"file": ("辟谣.csv", csv_text.encode(encoding), "text/csv")}
        r = c.post("/debunks/import", data={"csrf_token": token}, files=files)
        assert r.status_code == 303
        page = c.get(r.headers["location"])
        assert "1 行有误" in page.text, page.text[:2000]
    with session_scope(live.engine) as s:
        assert s.scalar(select(Debunk.refutation).where(Debunk.claim == "南坪村要封村")) == "镇政府：没有封村计划。"
        assert len(s.scalars(select(Debunk.id).where(Debunk.claim == "东湾村超市停业")).all()) == 1
    r = c.post("/debunks/import", data={"csrf_token": token},
               files={"file": ("x.csv", b"\xff\xfe\x00garbage\x81", "text/csv")})
    assert r.status_code == 303 and "err=" in r.headers["location"]


def test_one_taxonomy_and_the_library_by_date(live, client_as) -> None:
    """Debunks are filed under the concern taxonomy's categories (as alerts and hot concerns are),
    and listed newest first by date, as every other list."""
    from nlp.concerns.taxonomy import load_taxonomy

    c = client_as("zhangmin")
    form = c.get("/debunks/new").text
    for name in load_taxonomy().categories:
        assert f'<option value="{name}">' in form
    token = csrf_of(form)
    unknown = c.post("/debunks", data={"csrf_token": token, "claim": "石桥要拆了", "refutation": "只是检修。",
                                       "category": "城乡建设"})
    assert unknown.status_code == 422 and "不在分类表中" in unknown.text and "交通出行" in unknown.text
    for claim, day in (("南坪村要修机场", "2026-11-30"), ("东湾村要建化工厂", "2026-10-01")):
        r = c.post("/debunks", data={"csrf_token": token, "claim": claim, "refutation": "没有此事。",
                                     "published_at": day, "category": "政策咨询"})
        assert r.status_code == 303, r.text
    page = c.get("/debunks").text
    claims = re.findall(r"<td><strong>([^<]+)</strong>", page)
    assert claims.index("南坪村要修机场") < claims.index("东湾村要建化工厂")  # added later, published earlier


def test_the_category_list_names_each_category_once(live, client_as) -> None:
    """The taxonomy's default (其他) is also one of its categories: the form lists it once."""
    form = client_as("zhangmin").get("/debunks/new")
    assert form.status_code == 200
    options = re.findall(r'<option value="([^"]+)"', form.text)
    assert "其他" in options and len(options) == len(set(options)), options
