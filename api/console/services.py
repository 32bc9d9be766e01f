"""The other stages' write services the console calls (the console never writes their tables itself).

Debunks belong to nlp (``nlp.debunks``), sources to the crawler (``crawler.service``), chat groups
to the chat importers (``crawler.chats.groups``).
"""

from __future__ import annotations

from types import ModuleType

from crawler import service as crawler_service
from crawler.chats import groups as chat_groups
from nlp import debunks as nlp_debunks


def debunks() -> ModuleType:
    return nlp_debunks


def sources() -> ModuleType:
    return crawler_service


def groups() -> ModuleType:
    return chat_groups
