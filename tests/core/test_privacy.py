"""Masking of personal numbers in text (core.privacy), which every write path goes through."""

from __future__ import annotations

import pytest

from core.privacy import mask_personal_data


@pytest.mark.parametrize(("raw", "masked"), [
    ("电话13812345678", "电话138****5678"),
    ("身份证110101199003071234", "身份证110101********1234"),
    ("加我QQ：2718281828，谢谢", "加我QQ：27******28，谢谢"),
    ("qq号 12345", "qq号 12***45"),
    ("扣扣987654321", "扣扣98*****21"),
])
def test_personal_numbers_are_masked(raw: str, masked: str) -> None:
    assert mask_personal_data(raw) == masked


@pytest.mark.parametrize("kept", ["价格12345元", "热线 12345", "订单号 2718281828", "0571-12345", "qq群 123456"])
def test_numbers_without_a_personal_marker_are_kept(kept: str) -> None:
    assert mask_personal_data(kept) == kept


@pytest.mark.parametrize(("raw", "masked"), [
    ("电话１３９８７６５４３２４", "电话１３９****４３２４"),  # full-width: NFKC would make it plain digits later
    ("139.8765.4323", "139.****.4323"),
    ("139 8765 4323", "139 **** 4323"),
    ("+86-139-8765-4323", "+86-139-****-4323"),
    ("4401 0619 9001 0112 34", "4401 06** **** **12 34"),
    ("一三九八七六五四三二三", "一三九****四三二三"),
    ("ＱＱ：２７１８ ２８１８ ２８", "ＱＱ：２７** **** ２８"),
])
def test_numbers_in_other_scripts_and_with_separators_are_masked(raw: str, masked: str) -> None:
    assert mask_personal_data(raw) == masked


@pytest.mark.parametrize("kept", ["2026.11.22 13:45", "第1、3、5组", "价格 1,399.00 元", "订单 2024 1139"])
def test_dates_prices_and_lists_are_kept(kept: str) -> None:
    assert mask_personal_data(kept) == kept
