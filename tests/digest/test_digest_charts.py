"""Charts: PNGs whose Chinese is drawn with real glyphs, never tofu boxes."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import fonts
from digest import charts

HOURLY = [0, 0, 0, 0, 0, 0, 1, 4, 9, 12, 7, 5, 3, 6, 15, 22, 11, 8, 6, 4, 2, 1, 0, 0]
RUMOR = [0] * 9 + [2, 1, 0, 0, 0, 6, 9, 3] + [0] * 7
CATEGORIES = [["物资供应", 30], ["交通出行", 12], ["物价", 9], ["未分类", 40], ["医疗救治", 3]]


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"))


@pytest.fixture(scope="module")
def family() -> str:
    try:
        return charts.find_cjk_family()
    except charts.ChartFontMissing as err:  # pragma: no cover - scripts/system-deps.sh installs it
        pytest.skip(str(err))


def test_charts_render_without_missing_glyphs(family: str) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r"Glyph .* missing")
        spread = charts.spread_chart(HOURLY, RUMOR, families=[family])
        cats = charts.category_chart(CATEGORIES, families=[family])
    for png in (spread, cats):
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = Image.open(io.BytesIO(png)).size
        assert width >= 700 and height >= 150  # sharp on a phone's 2-3x screen


def test_the_check_catches_tofu() -> None:
    """The warning-as-error check above is real: a font without Chinese trips it."""
    with warnings.catch_warnings(), pytest.raises(UserWarning, match=r"Glyph .* missing"):
        warnings.filterwarnings("error", message=r"Glyph .* missing")
        charts.text_image("谣言", families=["DejaVu Sans"])


def test_distinct_characters_get_distinct_glyphs(family: str) -> None:
    """Tofu draws every missing character as the same box; real glyphs differ from each other."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tofu = [_pixels(charts.text_image(ch, families=["DejaVu Sans"])) for ch in "谣言镇"]
    real = [_pixels(charts.text_image(ch, families=[family])) for ch in "谣言镇"]
    assert all(np.array_equal(tofu[0], t) for t in tofu[1:])  # the boxes are identical
    assert not np.array_equal(real[0], real[1]) and not np.array_equal(real[1], real[2])
    for r, t in zip(real, tofu, strict=True):
        assert not np.array_equal(r, t)
        assert (r < 128).sum() > 20  # ink, not an empty canvas


def test_chart_png_holds_real_cjk_glyphs_not_tofu(family: str) -> None:
    """The same chart drawn without a CJK font differs exactly where the Chinese labels are."""
    real = _pixels(charts.category_chart(CATEGORIES, families=[family]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tofu = _pixels(charts.category_chart(CATEGORIES, families=["DejaVu Sans"]))
    assert real.shape == tofu.shape
    left = slice(0, real.shape[1] // 4)  # the category names sit left of the bars
    assert not np.array_equal(real[:, left], tofu[:, left])


def test_same_figures_same_png(family: str) -> None:
    assert charts.spread_chart(HOURLY, RUMOR, families=[family]) == charts.spread_chart(HOURLY, RUMOR,
                                                                                         families=[family])


def test_uncategorised_goes_last_and_long_tails_fold(family: str) -> None:
    many = [[f"类别{i}", 20 - i] for i in range(12)]
    png = charts.category_chart(many, families=[family])
    assert Image.open(io.BytesIO(png)).size[1] < 1000  # at most 8 bars
    with pytest.raises(ValueError):
        charts.spread_chart([1, 2], [0, 0], families=[family])


def test_missing_font_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(charts.ChartFontMissing, match="YUQING_DIGEST_FONT"):
        charts.find_cjk_family(tmp_path / "nope.ttf")


def test_a_font_file_can_be_given(family: str) -> None:
    path = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
    if not path.exists():
        pytest.skip("fonts-wqy-microhei is not installed")
    assert charts.find_cjk_family(path) == "WenQuanYi Micro Hei"


def test_font_installed_after_matplotlib_built_its_cache(monkeypatch: pytest.MonkeyPatch, family: str) -> None:
    """A font cache from before `apt-get install fonts-wqy-microhei` lacks the font: we find it on disk."""
    from matplotlib import font_manager

    if not any(Path(d).is_dir() and any(Path(d).rglob("wqy-microhei.ttc")) for d in fonts.FONT_DIRS):
        pytest.skip("fonts-wqy-microhei is not installed")
    stale = [f for f in font_manager.fontManager.ttflist if f.name not in charts.CJK_FAMILIES]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", stale)
    assert charts.find_cjk_family() == "WenQuanYi Micro Hei"
    assert "WenQuanYi Micro Hei" in {f.name for f in font_manager.fontManager.ttflist}
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r"Glyph .* missing")
        charts.text_image("谣言", families=["WenQuanYi Micro Hei"])
