"""Finding a font file that draws Chinese, for pictures drawn with Pillow (辟谣 cards, posters).

The digest charts (digest/charts.py) use this too, when matplotlib's font cache lacks them: WenQuanYi
Micro Hei (Debian ``fonts-wqy-microhei``, installed by scripts/system-deps.sh) first, then Noto /
Source Han Sans CJK; ``YUQING_DIGEST_FONT`` names a file to use instead. Without one we refuse to
draw (:class:`CJKFontMissing`) rather than print boxes (tofu) where the characters should be.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from core.errors import YuqingError

#: File names of the CJK fonts we know, best first.
CJK_FILES = ("wqy-microhei.ttc", "NotoSansCJK-Regular.ttc", "NotoSansCJKsc-Regular.otf",
             "SourceHanSansSC-Regular.otf", "wqy-zenhei.ttc", "DroidSansFallbackFull.ttf")
FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".local/share/fonts")


class CJKFontMissing(YuqingError):
    """No font file that can draw Chinese was found."""


def find_cjk_font_file(explicit: Path | None = None) -> Path:
    """The CJK font file to draw with: ``explicit`` if given, else the first known one installed."""
    if explicit is not None:
        if not explicit.is_file():
            raise CJKFontMissing(f"字体文件不存在：{explicit}。请检查 YUQING_DIGEST_FONT。")
        return explicit
    found = installed_cjk_font_file()
    if found is None:
        raise CJKFontMissing(
            "找不到可显示中文的字体，无法生成图片。请安装文泉驿微米黑：apt-get install -y fonts-wqy-microhei"
            "（或 fonts-noto-cjk），或用 YUQING_DIGEST_FONT 指定字体文件。"
        )
    return found


@lru_cache(maxsize=1)
def installed_cjk_font_file() -> Path | None:
    """The first known CJK font file found on disk, best first; None when there is none."""
    for name in CJK_FILES:
        for folder in FONT_DIRS:
            if folder.is_dir():
                for path in sorted(folder.rglob(name)):
                    return path
    return None
