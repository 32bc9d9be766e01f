"""Text normalisation for Chinese social-media posts.

`normalize` turns a raw post (Weibo, forum, group chat) into a canonical form that the
segmenter, the cue extractor and the classifier all share:

* NFKC (full-width letters, digits and punctuation become half-width);
* traditional characters become simplified (OpenCC ``t2s``, the C++ library's binding);
* HTML tags are stripped and entities unescaped;
* URLs, @mentions and emoji become placeholder tokens (``<URL>``, ``<AT>``, ``<EMO>``);
* runs of ``!``/``?`` collapse to one mark followed by ``<REPEAT_PUNCT>``, so the *fact* of
  the repetition survives as a rumor cue; other punctuation runs collapse quietly;
* masked personal data (``138****1234``, ``<PHONE>``, ``<ID>`` ...) is kept exactly as is.

Everything is precompiled at import time except OpenCC, which is built once on first use.
"""

from __future__ import annotations

import html
import re
import unicodedata
from functools import lru_cache
from typing import Any

__all__ = [
    "PLACEHOLDERS",
    "PLACEHOLDER_RE",
    "ConverterMissing",
    "normalize",
    "to_simplified",
]

# Placeholder tokens we emit, plus the ones upstream masking (crawler / importers) may emit.
# The HTML stripper knows only real tag names, so these survive it; downstream they are
# single tokens.
PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "URL", "AT", "EMO", "REPEAT_PUNCT",
        "PHONE", "ID", "IDCARD", "EMAIL", "NAME", "ADDR", "QQ", "WECHAT", "BANK", "PLATE", "NUM",
    }
)
PLACEHOLDER_RE = re.compile(r"<(?:" + "|".join(sorted(PLACEHOLDERS, key=len, reverse=True)) + r")>")

# An HTML tag, comment or doctype. Placeholders like <PHONE> also look like tags; the
# replacement callback keeps them.
_HTML_TAGS = (
    "a|abbr|article|aside|audio|b|big|blockquote|body|br|button|caption|center|code|dd|del|div|dl|dt|em|"
    "embed|figcaption|figure|font|footer|form|h[1-6]|head|header|hr|html|i|iframe|img|input|ins|label|li|"
    "link|main|mark|meta|nav|object|ol|option|p|pre|q|s|section|select|small|source|span|strike|strong|"
    "sub|sup|table|tbody|td|textarea|tfoot|th|thead|title|tr|tt|u|ul|video|wbr"
)
# Only real HTML tags, comments and doctypes: "<Hands up>" in a post is text, not markup.
# script/style blocks go with their content.
_TAG_RE = re.compile(
    r"<(script|style)\b[^>]*>.*?</\1\s*>|<!--.*?-->|<![A-Za-z][^<>]*>"
    r"|</?(?:" + _HTML_TAGS + r")(?:\s[^<>]*)?/?>",
    re.S | re.I,
)
_ENTITY_RE = re.compile(r"&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z]{2,8});")

_URL_RE = re.compile(
    r"(?:https?|ftp)://[!-;=?-~]+"           # explicit scheme: any printable ASCII except < and >
    r"|www\.[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?:/[!-;=?-~]*)?"
    r"|\b(?:t\.cn|dwz\.cn|url\.cn|suo\.im|b23\.tv)/[A-Za-z0-9]+",  # short-link services
    re.I,
)
# Weibo-style mention: @ followed by a nickname (CJK, letters, digits, _ and -), ending at
# whitespace or punctuation. 1-30 characters, like Weibo's own limit.
_AT_RE = re.compile(r"@[\w\u4e00-\u9fff-]{1,30}")

# Emoji and pictographs (after NFKC). Skin-tone modifiers, ZWJ and variation selectors are
# folded into the run so a composed emoji is one <EMO>.
_EMOJI_RE = re.compile(
    "(?:["
    "\U0001f000-\U0001faff"   # mahjong .. symbols & pictographs extended-A (incl. emoticons, transport)
    "\u2600-\u27bf"           # misc symbols, dingbats
    "\u2b00-\u2bff"           # arrows / stars used as emoji
    "\u2300-\u23ff"           # technical (watch, hourglass)
    "]"
    "[\ufe0e\ufe0f\u200d\U0001f3fb-\U0001f3ff\u20e3]*)+"
)
_STRAY_EMOJI_MOD_RE = re.compile("[\ufe0e\ufe0f\u200d\u20e3]")

# After NFKC, ！？ are already ! ?. A run of two or more keeps its first mark and gains a
# marker token. 。 and … never come out of NFKC as ASCII, so list them too.
_REPEAT_EXCL_RE = re.compile(r"([!?])[!?]+")
_REPEAT_DOTS_RE = re.compile(r"[.。]*(?:\.{3}|。{2}|…)[.。…]*")
_REPEAT_OTHER_RE = re.compile(r"([,，、~〜=\-_+#])\1{2,}")
_SPACE_RE = re.compile(r"\s+")

_HAS_MARKUP = re.compile(r"[<&]")


def _strip_tag(m: re.Match[str]) -> str:
    return " "


# --------------------------------------------------------------------------- OpenCC
class ConverterMissing(RuntimeError):
    """The ``opencc`` package (OpenCC's C++ library with its Python binding) is not usable here."""


_INSTALL_HINT = (
    "请安装 opencc 软件包（OpenCC 1.4 的 C++ 库及其 Python 绑定）：pip install 'opencc>=1.4,<1.5'。"
    "没有预编译包的平台需先装 cmake 与 C++ 编译器，pip 会从源码构建。"
)


@lru_cache(maxsize=1)
def _converter() -> Any:  # opencc.OpenCC
    """OpenCC ``t2s``, built once. Raises `ConverterMissing` with what to install."""
    try:
        import opencc
    except ImportError as err:  # no wheel for this platform, or its native library failed to load
        raise ConverterMissing(f"繁简转换不可用（{err}）。{_INSTALL_HINT}") from err
    # opencc-python-reimplemented installs a package of the same name; if it was installed after
    # opencc it shadows it (pure Python, ~10x slower, older dictionaries). Refuse it rather than
    # give different output.
    if not hasattr(opencc, "__version__"):
        raise ConverterMissing(
            "导入的 opencc 是已停用的 opencc-python-reimplemented（两者安装到同一个 opencc 目录）。"
            "请先卸载两者：pip uninstall -y opencc-python-reimplemented opencc，再重新安装。" + _INSTALL_HINT
        )
    # Without the "tofu risk" dictionary (TSCharactersExt): it maps some traditional characters to
    # simplified ones that only CJK extension fonts hold, and normalised text reaches story and
    # alert titles that must render everywhere.
    return opencc.OpenCC("t2s.json", include_tofu_risk_dictionaries=False)


def to_simplified(text: str) -> str:
    """Traditional to simplified Chinese (OpenCC ``t2s``: phrases first, then characters).

    The native converter takes about 4 µs for a typical post, so every text goes through it;
    its ``convert`` is const in C++ and safe to call from several threads.
    """
    if text.isascii():
        return text
    return str(_converter().convert(text))


# --------------------------------------------------------------------------- normalize
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def normalize(text: str | None) -> str:
    """Canonical form of a raw post. Idempotent: ``normalize(normalize(t)) == normalize(t)``."""
    if not text:
        return ""
    # NFKC first: full-width ＜ ＞ ＆ would otherwise hide markup from the stripper.
    text = unicodedata.normalize("NFKC", text)
    # Control characters carry no meaning and NUL is the hashers' token separator.
    if _CONTROL_RE.search(text):
        text = _CONTROL_RE.sub(" ", text)
    if _HAS_MARKUP.search(text):
        if "<" in text:
            text = _TAG_RE.sub(_strip_tag, text)
        if "&" in text:
            # twice: crawled pages often double-escape (&amp;quot;)
            text = html.unescape(html.unescape(text)) if _ENTITY_RE.search(text) else text
            # unescaping may reveal tags that were escaped in the source
            if "<" in text:
                text = _TAG_RE.sub(_strip_tag, text)
    text = to_simplified(text)
    if "://" in text or "www." in text or ".cn/" in text or ".im/" in text or ".tv/" in text:
        text = _URL_RE.sub(" <URL> ", text)
    if "@" in text:
        text = _AT_RE.sub(" <AT> ", text)
    text = _EMOJI_RE.sub(" <EMO> ", text)
    text = _STRAY_EMOJI_MOD_RE.sub("", text)
    if "!" in text or "?" in text:
        text = _REPEAT_EXCL_RE.sub(r"\1 <REPEAT_PUNCT> ", text)
    text = _REPEAT_DOTS_RE.sub("…", text)
    text = _REPEAT_OTHER_RE.sub(r"\1", text)
    return _SPACE_RE.sub(" ", text).strip()
