"""The other stages' write services the console calls (the console never writes their tables itself).

Debunks belong to nlp (``nlp.debunks``), sources to the crawler (``crawler.service``), chat groups
to the chat importers (``crawler.chats.groups``), labels and model versions to nlp (``nlp.labels``,
``nlp.registry``: the same functions the API's /labels and /models routes call; ``nlp.retrain`` for
recalibration, the same call as `yuqing recalibrate`).
"""

from __future__ import annotations

from types import ModuleType

from crawler import service as crawler_service
from crawler.chats import groups as chat_groups
from nlp import debunks as nlp_debunks
from nlp import labels as nlp_labels
from nlp import registry as nlp_registry
from nlp import retrain as nlp_retrain


def debunks() -> ModuleType:
    return nlp_debunks


def sources() -> ModuleType:
    return crawler_service


def groups() -> ModuleType:
    return chat_groups


def labels() -> ModuleType:
    return nlp_labels


def models() -> ModuleType:
    return nlp_registry


def retraining() -> ModuleType:
    return nlp_retrain
