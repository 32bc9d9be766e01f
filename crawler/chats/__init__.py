"""Group messages: import chat exports (QQ txt, WeChat CSV, Telegram JSON) and bot pushes.

Everything goes through core.ingest, which pseudonymises senders and masks personal numbers.
Public entry points:

* :func:`import_chat_file` - stream one export file into the database, batch by batch;
* :func:`detect_format` - which format a file is;
* :mod:`crawler.chats.push` - OneBot v11 events and generic JSON batches (the API uses these);
* :mod:`crawler.chats.groups` - list groups with counts, change their settings;
* :func:`purge_chat_messages` - retention.
"""

from __future__ import annotations

from crawler.chats.detect import detect_format
from crawler.chats.importer import ImportReport, MessageSink, import_chat_file
from crawler.chats.model import FORMATS, ChatFormatError, ChatMessage, ParseIssue, Skipped
from crawler.chats.retention import PurgeResult, purge_chat_messages

__all__ = [
    "FORMATS",
    "ChatFormatError",
    "ChatMessage",
    "ImportReport",
    "MessageSink",
    "ParseIssue",
    "PurgeResult",
    "Skipped",
    "detect_format",
    "import_chat_file",
    "purge_chat_messages",
]
