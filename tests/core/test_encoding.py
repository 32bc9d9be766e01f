"""core.encoding: the encodings Chinese offices' files come in, Big5 and BOM-less UTF-16 included."""

from __future__ import annotations

import codecs

import pytest

from core.encoding import decode_text, sniff_encoding

SIMPLIFIED = "时间,发送者,内容\n2026-11-22 10:00,张三,石桥村通知：明天上午停水，请大家提前储水。\n"
TRADITIONAL = "時間,發送者,內容\n2026-11-22 10:00,張三,石橋村通知：明天上午停水，請大家提前儲水。\n"


@pytest.mark.parametrize(("text", "encoded"), [
    (SIMPLIFIED, SIMPLIFIED.encode("utf-8")),
    (SIMPLIFIED, codecs.BOM_UTF8 + SIMPLIFIED.encode("utf-8")),
    (SIMPLIFIED, SIMPLIFIED.encode("gbk")),
    (SIMPLIFIED, SIMPLIFIED.encode("utf-16")),
    (SIMPLIFIED, SIMPLIFIED.encode("utf-16-le")),  # no BOM
    (SIMPLIFIED, SIMPLIFIED.encode("utf-16-be")),  # no BOM
    (TRADITIONAL, TRADITIONAL.encode("big5")),
    (TRADITIONAL, TRADITIONAL.encode("utf-8")),
])
def test_every_office_encoding_decodes_to_the_text(text: str, encoded: bytes) -> None:
    assert decode_text(encoded).lstrip("\ufeff") == text


def test_gbk_stays_gb18030() -> None:
    assert sniff_encoding(SIMPLIFIED.encode("gbk") * 3) == "gb18030"
