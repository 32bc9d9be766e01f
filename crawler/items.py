"""What spiders hand to the pipeline.

Posts are plain dicts with core.ingest.PostItem's field names (``source``, ``url``, ``title``,
``text``, ``author``, ``published_at``, ...), so the pipeline passes them to ``ingest_posts``
unchanged. :class:`FetchMark` records a fetched URL's HTTP validators; the pipeline writes it in
the same transaction as the posts that came from that response, so a crash can never leave a
feed marked "seen" whose posts were not stored.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FetchMark:
    url: str
    status: int
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
