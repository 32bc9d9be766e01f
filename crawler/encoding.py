"""Which encoding a Chinese page is really in.

Scrapy's TextResponse honours a charset declared in the HTTP header, a BOM or a meta tag. When
nothing is declared it guesses among ascii/utf-8/cp1252, which turns undeclared GBK pages into
mojibake. Here: declared -> as declared (GBK and GB2312 widened to GB18030, their superset);
undeclared -> strict UTF-8 if it decodes, else charset-normalizer's best Chinese guess, else
GB18030. Traditional characters (Big5 pages) are kept as they are; nlp normalises them later.
"""

from __future__ import annotations

from w3lib.encoding import html_body_declared_encoding, http_content_type_encoding, read_bom

_WIDEN = {"gbk": "gb18030", "gb2312": "gb18030", "cp936": "gb18030", "x-gbk": "gb18030", "big5": "big5hkscs"}
_CHINESE = ("gb18030", "gbk", "gb2312", "big5", "big5hkscs", "cp950", "hz", "utf_8", "utf-8")


def widen(encoding: str) -> str:
    return _WIDEN.get(encoding.lower().replace("_", "-"), encoding)


def declared_encoding(body: bytes, content_type: str | None) -> str | None:
    bom, _ = read_bom(body)
    if bom:
        return bom
    # w3lib maps the GB names to one of its own choosing (gb18030 before 2.6, gbk since): widen
    # here so a page declared GB2312 with a character outside it still decodes.
    declared = (http_content_type_encoding(content_type) if content_type else None) \
        or html_body_declared_encoding(body[:4096])
    return widen(declared) if declared else None


def detect_encoding(body: bytes) -> str:
    """Best encoding for an undeclared body, preferring UTF-8 and then Chinese encodings."""
    sample = body[:200_000]
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as err:
        if err.start >= len(sample) - 4 and len(body) > len(sample):
            return "utf-8"  # cut in the middle of a character by our sampling
    from charset_normalizer import from_bytes

    best = from_bytes(sample, cp_isolation=list(_CHINESE)).best()
    if best is not None and best.encoding:
        return widen(best.encoding)
    return "gb18030"
