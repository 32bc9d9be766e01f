"""Fast literal matching of many Chinese keywords: one regex built as a trie.

Python's ``re`` tries alternatives one by one at each position; a flat ``a|b|c`` of a few
hundred words is slow on 100k posts. Factoring the words into a trie (``口(?:罩|粮)``) makes
each position cost about one branch, and greedy optional groups make the longest word win
("青禾镇卫生院" beats "青禾").
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def trie_pattern(words: Iterable[str]) -> str:
    """A regex source matching any of ``words``, longest first at each position."""
    trie: dict[str, dict] = {}
    for word in set(words):
        if not word:
            continue
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}
    return _node(trie)


def _node(node: dict[str, dict]) -> str:
    end = "" in node
    branches = [re.escape(ch) + _node(child) for ch, child in sorted(node.items()) if ch]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if end:
        # Greedy "?" tries the longer word first, then accepts the word ending here.
        return body + "?" if len(branches) == 1 and len(branches[0]) == 1 else "(?:" + body + ")?"
    return body


def compile_words(words: Iterable[str]) -> re.Pattern[str] | None:
    """A compiled trie regex, or None when there are no words (nothing can match)."""
    words = [w for w in words if w]
    if not words:
        return None
    return re.compile(trie_pattern(words))
