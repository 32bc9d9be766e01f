"""The other stages' write services the console calls, looked up when they are installed.

Debunks belong to nlp (``nlp.debunks``), sources to the crawler (``crawler.service``), chat groups
to the chat importers (``crawler.chats.groups``). Each stage lands on main on its own schedule;
until its service is there, the console shows its pages read-only and hides those buttons.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def _module(name: str, *needed: str) -> ModuleType | None:
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    return module if all(hasattr(module, attr) for attr in needed) else None


def debunks() -> ModuleType | None:
    return _module("nlp.debunks", "create_debunk", "update_debunk", "import_debunks", "DebunkIn", "DebunkUpdate")


def sources() -> ModuleType | None:
    return _module("crawler.service", "set_enabled")


def groups() -> ModuleType | None:
    return _module("crawler.chats.groups", "update_group")
