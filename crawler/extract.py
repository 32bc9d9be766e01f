"""Selectors from the sources file, applied to pages and JSON.

A selector is CSS with Parsel's ``::text`` / ``::attr(name)``, or ``xpath:<expr>``. A selector that
ends in an element (``div.post-body``) means that element's whole visible text, with line breaks
at block boundaries and without scripts and styles.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree
from parsel import Selector, SelectorList

_BLOCK = {"p", "div", "br", "li", "ul", "ol", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6",
          "section", "article", "blockquote", "pre", "header", "footer", "dd", "dt", "hr"}
_SKIP = {"script", "style", "noscript", "template", "head"}
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u3000]+")


def select(node: Any, spec: str) -> SelectorList[Selector]:
    """Matches of a selector in a Selector, SelectorList or Scrapy response."""
    spec = spec.strip()
    if spec.startswith("xpath:"):
        return node.xpath(spec[len("xpath:"):])
    return node.css(spec)


def _is_element(sel: Selector) -> bool:
    return isinstance(sel.root, etree._Element)


def visible_text(sel: Selector) -> str:
    """The text a reader sees in an element: block elements become line breaks."""
    if not _is_element(sel):
        return _clean(str(sel.get()))
    parts: list[str] = []

    def walk(el: Any) -> None:
        tag = el.tag if isinstance(el.tag, str) else ""
        tag = tag.rsplit("}", 1)[-1].lower()
        if tag in _SKIP or not isinstance(el.tag, str):
            if el.tail:
                parts.append(el.tail)
            return
        if tag in _BLOCK:
            parts.append("\n")
        if el.text:
            parts.append(el.text)
        for child in el:
            walk(child)
        if tag in _BLOCK:
            parts.append("\n")
        if el.tail:
            parts.append(el.tail)

    root = sel.root
    if root.text:
        parts.append(root.text)
    for child in root:
        walk(child)
    return _clean("".join(parts))


def _clean(text: str) -> str:
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line)


def first_text(node: Any, spec: str | None) -> str | None:
    """The first match as text (visible text for elements), or None when nothing matched."""
    if not spec:
        return None
    found = select(node, spec)
    if not found:
        return None
    texts = [visible_text(s) for s in found]
    # Elements: one block each; ::text nodes of one element: joined on one line.
    text = "\n".join(t for t in texts if t) if _is_element(found[0]) else _clean(" ".join(texts))
    return text or None


def all_values(node: Any, spec: str) -> list[str]:
    """Every match as a string (for links): attribute values, text nodes or element text."""
    out = []
    for sel in select(node, spec):
        value = visible_text(sel) if _is_element(sel) else str(sel.get()).strip()
        if value:
            out.append(value)
    return out


def dotted(data: Any, path: str | None) -> Any:
    """``data.list`` / ``user.nick`` / ``items.0.id`` in nested JSON; None when absent."""
    if path is None:
        return None
    current = data
    for part in path.split("."):
        if part == "":
            continue
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            index = int(part)
            current = current[index] if -len(current) <= index < len(current) else None
        else:
            return None
        if current is None:
            return None
    return current
