"""Pictures of the kinds that spread in township groups, rendered here (no downloaded data):
forged notices with a red header and a seal, chat screenshots, photo captions; and the
transformations a picture goes through when forwarded (recompression, resize, rotation, blur,
perspective, a light crop, a screenshot's border).

Used by bench/bench_images.py and by the tests (tests/images). Text is our own templates filled
with fictional places; the font is Debian's WenQuanYi Micro Hei (fonts-wqy-microhei).
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_PATHS = ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "/usr/share/fonts/wqy-microhei/wqy-microhei.ttc")

PLACES = ["青禾镇", "东湾村", "石桥村", "柳树村", "南坪村", "金塘镇", "松岗镇", "北岭村", "河口村", "杏花村"]
ISSUERS = ["人民政府", "卫生健康局", "应急管理局", "疫情防控指挥部", "市场监督管理局", "教育局"]
MATTERS = [
    ("全镇封闭管理", ["即日起全镇实行封闭管理，", "所有人员不得外出，", "超市药店暂停营业。"]),
    ("自来水停止供应", ["因管道检修，自来水停止供应三天，", "请居民提前储水，", "恢复时间另行通知。"]),
    ("发放生活补贴", ["每户发放生活补贴两千元，", "请携带身份证到村委会登记，", "过期不予办理。"]),
    ("燃气安全检查", ["燃气公司将上门进行安全检查，", "每户收取检查费二百元，", "拒不配合者停气处理。"]),
    ("学校提前放假", ["全镇中小学提前放假，", "期末考试取消，", "开学时间另行通知。"]),
    ("银行暂停取款", ["辖区银行网点暂停取款业务，", "请勿前往排队，", "具体安排等候通知。"]),
    ("暂停公交运营", ["镇内公交线路暂停运营，", "出租车不得进出，", "请合理安排出行。"]),
    ("核酸检测", ["全体居民明日上午进行核酸检测，", "请在村委会门口排队，", "未检测者赋黄码。"]),
]
CHAT_LINES = [
    "听说{p}要封了，是真的吗", "我表哥在镇上上班说的", "超市都排长队了", "大家赶紧囤点米和油",
    "别信谣言，镇政府没发过", "有人看到红头文件了吗", "{p}的药店都关门了", "群里转的，不知道真假",
    "刚从{p}回来，路上都是车", "明天还要上学吗", "等官方通知吧", "我妈让我去买菜",
]
CAPTIONS = ["{p}药店门口排长队，封城了", "{p}超市货架空了", "{p}路口设卡了，别过来", "{p}加油站排起长队"]


@dataclass
class Rendered:
    kind: str  # notice | chat | caption
    text: str  # the text drawn, line by line (the truth for character accuracy)
    image: Image.Image


def font(size: int) -> ImageFont.FreeTypeFont:
    for path in FONT_PATHS:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    raise FileNotFoundError("CJK font missing: apt-get install fonts-wqy-microhei")


def notice(rng: random.Random, *, phone: str | None = None, width: int = 900) -> Rendered:
    """A forged official notice: red header, red rule, document number, body, issuer and a red seal."""
    place, issuer = rng.choice(PLACES), rng.choice(ISSUERS)
    matter, body = rng.choice(MATTERS)
    lines_drawn: list[str] = []
    img = Image.new("RGB", (width, int(width * 1.3)), (252, 252, 250))
    d = ImageDraw.Draw(img)
    red = (205, 20, 25)
    head = f"{place}{issuer}文件"
    f_head, f_title, f_body = font(46), font(32), font(28)
    w = d.textlength(head, font=f_head)
    d.text(((width - w) / 2, 60), head, font=f_head, fill=red)
    lines_drawn.append(head)
    number = f"{place[:1]}政发〔2026〕{rng.randint(1, 99)}号"
    w = d.textlength(number, font=f_body)
    d.text(((width - w) / 2, 140), number, font=f_body, fill=(20, 20, 20))
    lines_drawn.append(number)
    d.rectangle([50, 190, width - 50, 195], fill=red)
    title = f"关于{matter}的紧急通知"
    w = d.textlength(title, font=f_title)
    d.text(((width - w) / 2, 230), title, font=f_title, fill=(15, 15, 15))
    lines_drawn.append(title)
    y = 310
    body_lines = ["各村（社区）、各有关单位：", *body]
    if phone:
        body_lines.append(f"咨询电话：{phone}")
    body_lines.append("特此通知。")
    for line in body_lines:
        d.text((80, y), line, font=f_body, fill=(15, 15, 15))
        lines_drawn.append(line)
        y += 56
    sign = f"{place}{issuer}"
    date = f"2026年{rng.randint(1, 12)}月{rng.randint(1, 28)}日"
    d.text((width - 80 - d.textlength(sign, font=f_body), y + 60), sign, font=f_body, fill=(15, 15, 15))
    d.text((width - 80 - d.textlength(date, font=f_body), y + 116), date, font=f_body, fill=(15, 15, 15))
    lines_drawn += [sign, date]
    cx, cy, r = width - 200, y + 90, 95
    d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=red, width=7)
    star = font(40)
    d.text((cx - 20, cy - 24), "★", font=star, fill=red)
    return Rendered("notice", "\n".join(lines_drawn), img)


def chat_screenshot(rng: random.Random, *, width: int = 720) -> Rendered:
    """A screenshot of another group's chat: grey background, avatars, bubbles, a title bar."""
    place = rng.choice(PLACES)
    n = rng.randint(4, 7)
    img = Image.new("RGB", (width, 140 + n * 120), (237, 237, 237))
    d = ImageDraw.Draw(img)
    f_title, f_msg = font(30), font(28)
    title = f"{place}村民群({rng.randint(120, 499)})"
    d.rectangle([0, 0, width, 80], fill=(245, 245, 245))
    d.text(((width - d.textlength(title, font=f_title)) / 2, 22), title, font=f_title, fill=(20, 20, 20))
    drawn = [title]
    y = 110
    for _ in range(n):
        msg = rng.choice(CHAT_LINES).format(p=place)
        mine = rng.random() < 0.3
        avatar_x = width - 80 if mine else 20
        d.rectangle([avatar_x, y, avatar_x + 60, y + 60], fill=tuple(rng.randint(60, 200) for _ in range(3)))
        tw = d.textlength(msg, font=f_msg)
        bx = width - 100 - tw - 30 if mine else 100
        d.rounded_rectangle([bx, y + 10, bx + tw + 30, y + 70], radius=8,
                            fill=(149, 236, 105) if mine else (255, 255, 255))
        d.text((bx + 15, y + 24), msg, font=f_msg, fill=(10, 10, 10))
        drawn.append(msg)
        y += 120
    return Rendered("chat", "\n".join(drawn), img)


def caption_photo(rng: random.Random, *, size: tuple[int, int] = (800, 600)) -> Rendered:
    """A 'photo' (noisy shapes standing in for a queue outside a pharmacy) with a caption bar."""
    place = rng.choice(PLACES)
    img = Image.new("RGB", size, tuple(rng.randint(90, 160) for _ in range(3)))
    d = ImageDraw.Draw(img)
    for _ in range(40):
        x, y = rng.randint(0, size[0]), rng.randint(0, size[1] - 150)
        d.ellipse([x, y, x + rng.randint(20, 80), y + rng.randint(40, 140)],
                  fill=tuple(rng.randint(0, 255) for _ in range(3)))
    img = img.filter(ImageFilter.GaussianBlur(2))
    d = ImageDraw.Draw(img)
    cap = rng.choice(CAPTIONS).format(p=place)
    d.rectangle([0, size[1] - 110, size[0], size[1]], fill=(0, 0, 0))
    f = font(40)
    d.text(((size[0] - d.textlength(cap, font=f)) / 2, size[1] - 85), cap, font=f, fill=(255, 255, 255))
    return Rendered("caption", cap, img)


# ----------------------------------------------------------------------------- forwarding


def jpeg(img: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    img.convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


def png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def reopen(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def degrade(img: Image.Image, rng: random.Random) -> Image.Image:
    """A photographed / re-saved copy: resize, rotation ±5°, blur, perspective, JPEG 30-70."""
    w, h = img.size
    scale = rng.uniform(0.7, 1.0)
    out = img.resize((int(w * scale), int(h * scale)), Image.Resampling.BILINEAR)
    if rng.random() < 0.8:
        out = out.rotate(rng.uniform(-5, 5), resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(235, 235, 235))
    if rng.random() < 0.6:
        out = perspective(out, rng, 0.04)
    if rng.random() < 0.7:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.0)))
    return reopen(jpeg(out, rng.randint(30, 70)))


def perspective(img: Image.Image, rng: random.Random, amount: float) -> Image.Image:
    w, h = img.size
    dx, dy = w * amount, h * amount
    quad = (rng.uniform(0, dx), rng.uniform(0, dy), rng.uniform(0, dx), h - rng.uniform(0, dy),
            w - rng.uniform(0, dx), h - rng.uniform(0, dy), w - rng.uniform(0, dx), rng.uniform(0, dy))
    return img.transform((w, h), Image.Transform.QUAD, quad, resample=Image.Resampling.BICUBIC, fillcolor=(235, 235, 235))


FORWARDS = ("recompress", "resize", "png", "crop", "rotate", "border", "recompress+resize")


def forward(img: Image.Image, how: str, rng: random.Random) -> Image.Image:
    """What forwarding does to a picture (one named transformation)."""
    w, h = img.size
    if how == "recompress":
        return reopen(jpeg(img, rng.randint(30, 70)))
    if how == "resize":
        s = rng.uniform(0.4, 0.8)
        return img.resize((int(w * s), int(h * s)), Image.Resampling.BILINEAR)
    if how == "png":
        return reopen(png(img))
    if how == "crop":
        c = rng.uniform(0.02, 0.05)
        return img.crop((int(w * c), int(h * c), int(w * (1 - c)), int(h * (1 - c))))
    if how == "rotate":
        return img.rotate(rng.uniform(-2, 2), resample=Image.Resampling.BICUBIC, fillcolor=(240, 240, 240))
    if how == "border":  # a screenshot of the picture inside a chat window: a bar on top and bottom
        out = Image.new("RGB", (w, int(h * 1.08)), (240, 240, 240))
        out.paste(img, (0, int(h * 0.04)))
        return out
    if how == "recompress+resize":
        return forward(forward(img, "resize", rng), "recompress", rng)
    raise ValueError(how)
