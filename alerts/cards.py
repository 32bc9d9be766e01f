"""Pictures for residents, drawn with Pillow and the CJK font: the 辟谣 card and the tip poster.

- :func:`refutation_card`: a shareable PNG, 1080 px wide (朋友圈 and 公众号 take it as is), with
  the claim, the official answer, the publisher, the date and a QR code of the link.
- :func:`tip_poster`: a printable A4 page (PNG at 300 dpi, or PDF) with a QR code of the tip page
  and how to use it, for the notice boards (通知公告贴起来).

Text is wrapped per character (Chinese has no spaces) without starting a line with closing
punctuation, and cut with "…" past a line budget, so no input makes an endless picture. Before
drawing, every character is checked against the font: a character the font lacks would come out
as a box (tofu), so we refuse (:class:`CardFontError`) instead.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import segno
from PIL import Image, ImageDraw, ImageFont

from core.errors import YuqingError
from core.fonts import find_cjk_font_file
from core.settings import get_settings

CARD_WIDTH = 1080
A4_MM = (210, 297)
POSTER_DPI = 300
MAX_CLAIM_LINES = 6
MAX_TEXT_LINES = 22
#: Characters that must not start a line (kinsoku): they stay at the end of the line before.
NO_LINE_START = set("，。、；：！？）》」』】〕”’…—·,.;:!?)]}%")
INK = (34, 34, 34)
MUTED = (110, 110, 110)
RUMOR_RED = (200, 48, 42)
ANSWER_BLUE = (28, 92, 170)
FACT_GREEN = (24, 128, 76)
PAPER = (255, 255, 255)
SOFT = (246, 244, 240)


class CardFontError(YuqingError):
    """The font cannot draw some of the text (it would print boxes)."""


@dataclass(frozen=True)
class CardText:
    claim: str
    text: str
    publisher: str
    date: dt.date
    url: str | None
    concern: bool = False  # a concern gets an answer (回应), a rumor a refutation (辟谣)


# ----------------------------------------------------------------------------- fonts and text


@lru_cache(maxsize=32)
def font(size: int, path: str | None = None) -> ImageFont.FreeTypeFont:
    file = Path(path) if path else find_cjk_font_file(get_settings().digest_font)
    return ImageFont.truetype(str(file), size=size, index=0)


def _mask_bytes(f: ImageFont.FreeTypeFont, ch: str) -> bytes:
    mask = f.getmask(ch)
    return bytes(mask) + str(mask.size).encode()


def missing_glyphs(f: ImageFont.FreeTypeFont, text: str) -> list[str]:
    """Characters of ``text`` the font draws as its "missing glyph" box (tofu)."""
    notdef = _mask_bytes(f, "\U0010fffd")  # a private-use code point no font draws
    return sorted({ch for ch in text if not ch.isspace() and _mask_bytes(f, ch) == notdef})


def check_drawable(f: ImageFont.FreeTypeFont, *texts: str) -> None:
    missing = missing_glyphs(f, "".join(texts))
    if missing:
        raise CardFontError(
            f"字体 {f.getname()[0]} 缺少这些字：{''.join(missing[:20])}，画出来会是方框。"
            "请安装 fonts-wqy-microhei 或用 YUQING_DIGEST_FONT 指定含这些字的字体。"
        )


def wrap(text: str, f: ImageFont.FreeTypeFont, width: float, max_lines: int) -> list[str]:
    """Lines of ``text`` no wider than ``width`` (paragraph breaks kept), at most ``max_lines``."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for ch in paragraph:
            if line and f.getlength(line + ch) > width and ch not in NO_LINE_START:
                lines.append(line)
                line = ""
            line += ch
        lines.append(line)
    lines = [x for x in lines if x.strip()] or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and f.getlength(last + "…") > width:
            last = last[:-1]
        lines[-1] = last + "…"
    return lines


def qr_image(data: str, size: int) -> Image.Image:
    """A QR code of ``data`` (error correction M, quiet zone included), ``size`` px square."""
    qr = segno.make(data, error="m", micro=False)
    modules = qr.symbol_size(scale=1, border=4)[0]
    scale = max(1, size // modules)  # whole pixels per module: every module the same size, sharp
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=scale, border=4)
    buf.seek(0)
    code = Image.open(buf).convert("RGB")
    img = Image.new("RGB", (size, size), PAPER)
    img.paste(code, ((size - code.width) // 2, (size - code.height) // 2))
    return img


def _date_zh(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


# ----------------------------------------------------------------------------- the card


def refutation_card(card: CardText) -> Image.Image:
    """The 辟谣 (or 回应) card: 1080 px wide, as tall as its text needs."""
    word = "回应" if card.concern else "辟谣"
    accent = ANSWER_BLUE if card.concern else RUMOR_RED
    f_title, f_tag, f_label = font(96), font(34), font(38)
    f_claim, f_body, f_small = font(40), font(44), font(32)
    claim_label = "群众关切" if card.concern else "网传"
    answer_label = "官方答复" if card.concern else "真相"
    check_drawable(f_body, card.claim, card.text, card.publisher, word, claim_label, answer_label)
    margin, inner = 72, CARD_WIDTH - 2 * 72
    claim_lines = wrap(card.claim, f_claim, inner - 64, MAX_CLAIM_LINES)
    text_lines = wrap(card.text, f_body, inner, MAX_TEXT_LINES)
    claim_h, body_h = 58, 68
    qr_size = 260
    # drawn on a canvas tall enough for any text within the line budgets, then cut to what was drawn
    height = 600 + (len(claim_lines) * claim_h + len(text_lines) * body_h) + 800
    img = Image.new("RGB", (CARD_WIDTH, height), PAPER)
    d = ImageDraw.Draw(img)
    # header band
    d.rectangle((0, 0, CARD_WIDTH, 260), fill=accent)
    d.text((margin, 58), word, font=f_title, fill=PAPER)
    tagline = "请以官方发布为准" if card.concern else "网传消息不实 · 请勿转发"
    d.text((margin, 180), tagline, font=f_tag, fill=PAPER)
    y = 300
    # the claim, in a soft box with its label
    d.text((margin, y), claim_label, font=f_label, fill=accent)
    y += 70
    box_bottom = y + len(claim_lines) * claim_h + 40
    d.rounded_rectangle((margin, y, CARD_WIDTH - margin, box_bottom), radius=18, fill=SOFT)
    ty = y + 20
    for line in claim_lines:
        d.text((margin + 32, ty), line, font=f_claim, fill=MUTED)
        ty += claim_h
    if not card.concern:  # a stamp: this claim is false
        d.text((CARD_WIDTH - margin - 130, y - 66), "不实", font=font(52), fill=accent)
    y = box_bottom + 64
    # the answer
    d.text((margin, y), answer_label, font=f_label, fill=FACT_GREEN)
    y += 70
    for line in text_lines:
        d.text((margin, y), line, font=f_body, fill=INK)
        y += body_h
    y += 70
    # footer: publisher and date on the left, the QR code on the right
    d.line((margin, y - 30, CARD_WIDTH - margin, y - 30), fill=(220, 220, 220), width=2)
    qr_target = card.url or get_settings().base_url.rstrip("/") + "/tip"
    qr = qr_image(qr_target, qr_size)
    img.paste(qr, (CARD_WIDTH - margin - qr_size, y))
    qr_label = "扫码查看详情" if card.url else "扫码向我们反映"
    d.text((CARD_WIDTH - margin - qr_size / 2 - f_small.getlength(qr_label) / 2, y + qr_size + 6),
           qr_label, font=f_small, fill=MUTED)
    publisher_lines = wrap(card.publisher, f_label, inner - qr_size - 40, 2)
    py = y + 20
    for line in publisher_lines:
        d.text((margin, py), line, font=f_label, fill=INK)
        py += 54
    d.text((margin, py + 10), f"发布日期：{_date_zh(card.date)}", font=f_small, fill=MUTED)
    bottom = max(y + qr_size + 6 + 50, py + 60) + 60
    return img.crop((0, 0, CARD_WIDTH, bottom))


# ----------------------------------------------------------------------------- the poster


def a4_pixels(dpi: int = POSTER_DPI) -> tuple[int, int]:
    return round(A4_MM[0] / 25.4 * dpi), round(A4_MM[1] / 25.4 * dpi)


def tip_poster(*, tip_url: str, office: str, day: dt.date | None = None) -> Image.Image:
    """An A4 page at 300 dpi: 扫码举报谣言/反映问题, a large QR code of the tip page, three steps."""
    width, height = a4_pixels()
    k = width / 2480  # all sizes below are for 300 dpi
    f_title, f_sub, f_step = font(int(190 * k)), font(int(96 * k)), font(int(76 * k))
    f_small = font(int(58 * k))
    steps = ["① 用微信或手机浏览器扫描上方二维码", "② 写下您看到的消息或想反映的问题，可附截图",
             "③ 我们核实后尽快答复；留下联系方式可收到回复"]
    check_drawable(f_step, "扫码举报谣言反映问题", office, *steps, "不用注册登录，可以匿名", tip_url)
    img = Image.new("RGB", (width, height), PAPER)
    d = ImageDraw.Draw(img)
    band = int(620 * k)
    d.rectangle((0, 0, width, band), fill=RUMOR_RED)
    _centered(d, "扫码举报谣言", f_title, width, int(150 * k), PAPER)
    _centered(d, "反映问题 · 有疑问就问", f_sub, width, int(400 * k), PAPER)
    qr_size = int(1300 * k)
    qr_top = band + int(170 * k)
    img.paste(qr_image(tip_url, qr_size), ((width - qr_size) // 2, qr_top))
    y = qr_top + qr_size + int(70 * k)
    _centered(d, tip_url, f_small, width, y, MUTED)
    y += int(150 * k)
    left = int(230 * k)
    for step in steps:
        for line in wrap(step, f_step, width - 2 * left, 2):
            d.text((left, y), line, font=f_step, fill=INK)
            y += int(110 * k)
        y += int(20 * k)
    y += int(40 * k)
    _centered(d, "不用注册登录，可以匿名", f_step, width, y, FACT_GREEN)
    foot = office + (f" · {_date_zh(day)}" if day else "")
    _centered(d, foot, f_sub, width, height - int(260 * k), INK)
    return img


def _centered(d: ImageDraw.ImageDraw, text: str, f: ImageFont.FreeTypeFont, width: int, y: int,
              fill: tuple[int, int, int]) -> None:
    d.text(((width - f.getlength(text)) / 2, y), text, font=f, fill=fill)


def png_bytes(img: Image.Image, dpi: int | None = None) -> bytes:
    buf = io.BytesIO()
    # no optimize: 3 % larger, 3.6 times faster (the card is drawn on each download)
    img.save(buf, format="PNG", **({"dpi": (dpi, dpi)} if dpi else {}))
    return buf.getvalue()


def pdf_bytes(img: Image.Image, dpi: int = POSTER_DPI) -> bytes:
    """One-page PDF whose page is the picture's size at ``dpi`` (A4 for the poster)."""
    buf = io.BytesIO()
    img.save(buf, format="PDF", resolution=float(dpi))
    return buf.getvalue()
