"""The 辟谣 card and the tip poster: drawn in Chinese (never tofu), the QR codes read back as the
links, the card 1080 px wide and bounded for any text, the poster an A4 page (PNG and PDF)."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from alerts import cards
from core.fonts import CJKFontMissing, find_cjk_font_file
from core.settings import get_settings

CLAIM = "听说青禾镇明天要封路，东湾村的赶紧囤菜！所有车辆禁止通行。"
ANSWER = "经核实，青禾镇明天没有封路安排，全镇道路正常通行，超市正常营业。请大家不信谣、不传谣。"
URL = "https://qinghe.example.gov.cn/piyao/7"
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def _card(**kw: object) -> Image.Image:
    values: dict[str, object] = {"claim": CLAIM, "text": ANSWER, "publisher": "青禾镇人民政府",
                                 "date": dt.date(2026, 12, 6), "url": URL}
    return cards.refutation_card(cards.CardText(**(values | kw)))  # type: ignore[arg-type]


def _decode_qr(img: Image.Image) -> str:
    cv2 = pytest.importorskip("cv2")
    text, _points, _ = cv2.QRCodeDetector().detectAndDecode(np.array(img.convert("RGB")))
    return str(text)


def _ink(img: Image.Image) -> int:
    return int((np.array(img.convert("L")) < 128).sum())


@pytest.fixture(autouse=True)
def _cjk_font() -> None:
    try:
        find_cjk_font_file()
    except CJKFontMissing:
        pytest.skip("no CJK font installed (scripts/system-deps.sh installs fonts-wqy-microhei)")


def test_the_font_draws_every_character_of_the_card() -> None:
    f = cards.font(44)
    assert cards.missing_glyphs(f, CLAIM + ANSWER + "青禾镇人民政府辟谣网传真相不实") == []
    # the check can fail: a Latin-only font has none of these characters
    latin = cards.font(44, str(DEJAVU)) if DEJAVU.exists() else pytest.skip("DejaVu absent")
    assert set("青禾镇封路") <= set(cards.missing_glyphs(latin, CLAIM))


def test_glyphs_are_not_tofu_pixels() -> None:
    """Draw known characters and the font's missing-glyph box: the characters' pixels differ from
    the box and from each other (tofu would draw the same box for each)."""
    f = cards.font(64)

    def drawn(ch: str) -> bytes:
        img = Image.new("L", (80, 80), 255)
        ImageDraw.Draw(img).text((8, 0), ch, font=f, fill=0)
        return img.tobytes()

    box = drawn("\U0010fffd")
    glyphs = {ch: drawn(ch) for ch in "辟谣封路"}
    assert all(g != box for g in glyphs.values())
    assert len(set(glyphs.values())) == 4
    assert all(g.count(0) > 50 for g in glyphs.values())  # ink


def test_card_is_1080_wide_with_the_text_drawn_and_the_link_in_its_qr() -> None:
    img = _card()
    assert img.width == cards.CARD_WIDTH and 900 < img.height < 2000
    header, body = img.crop((0, 0, 1080, 260)), img.crop((0, 300, 700, img.height - 400))
    assert _ink(body) > 5000  # the claim and the answer are there
    assert (np.array(header.convert("RGB"))[5, 5] == cards.RUMOR_RED).all()
    assert _decode_qr(img) == URL


def test_a_card_without_a_link_points_to_the_tip_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUQING_BASE_URL", "https://yuqing.qinghe.example.gov.cn")
    get_settings.cache_clear()
    try:
        assert _decode_qr(_card(url=None, concern=True)) == "https://yuqing.qinghe.example.gov.cn/tip"
    finally:
        get_settings.cache_clear()


def test_long_text_is_cut_not_endless() -> None:
    short, long = _card(), _card(text="不信谣不传谣。" * 300, claim="封路" * 400)
    assert long.width == 1080 and long.height < short.height + (cards.MAX_TEXT_LINES + cards.MAX_CLAIM_LINES) * 70
    lines = cards.wrap("不信谣不传谣。" * 300, cards.font(44), 936, cards.MAX_TEXT_LINES)
    assert len(lines) == cards.MAX_TEXT_LINES and lines[-1].endswith("…")


def test_wrapping_never_starts_a_line_with_closing_punctuation() -> None:
    f = cards.font(44)
    for n in range(15, 30):
        text = "青" * n + "，。" + "禾" * 30
        lines = cards.wrap(text, f, 936, 10)
        assert "".join(lines) == text
        assert all(line[0] not in cards.NO_LINE_START for line in lines)


def test_a_font_without_chinese_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    if not DEJAVU.exists():
        pytest.skip("DejaVu absent")
    monkeypatch.setenv("YUQING_DIGEST_FONT", str(DEJAVU))
    get_settings.cache_clear()
    cards.font.cache_clear()
    try:
        with pytest.raises(cards.CardFontError, match="方框"):
            _card()
    finally:
        get_settings.cache_clear()
        cards.font.cache_clear()


def test_poster_is_an_a4_page_with_the_tip_page_qr() -> None:
    img = cards.tip_poster(tip_url="https://yuqing.qinghe.example.gov.cn/tip", office="青禾镇人民政府",
                           day=dt.date(2026, 12, 6))
    assert img.size == (2480, 3508)  # A4 at 300 dpi
    png = Image.open(io.BytesIO(cards.png_bytes(img, dpi=300)))
    assert png.size == (2480, 3508) and round(png.info["dpi"][0]) == 300
    pdf = cards.pdf_bytes(img)
    assert pdf.startswith(b"%PDF")
    box = re.search(rb"MediaBox \[ ?0 0 ([\d.]+) ([\d.]+) ?\]", pdf)
    assert box and abs(float(box.group(1)) - 595.28) < 1 and abs(float(box.group(2)) - 841.89) < 1
    assert _decode_qr(img.resize((1240, 1754))) == "https://yuqing.qinghe.example.gov.cn/tip"
    assert _ink(img.crop((0, 2700, 2480, 3508))) > 10000  # the instructions are drawn
