"""Settings for every stage, read from ``YUQING_*`` environment variables and ``.env``.

Never build settings at import time: call :func:`get_settings` (cached) so tests and the CLI
can change the environment first and call ``get_settings.cache_clear()``.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The repository (or installed package) root: the folder holding core/, models/, ...
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """All configuration. Every field can be set as ``YUQING_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="YUQING_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Field(Path("var"), description="Working folder: SQLite file, caches, crawl state.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means sqlite:///<data_dir>/yuqing.db")
    secret_key: SecretStr | None = Field(
        None, description="Instance secret (HMAC for pseudonyms, sessions). Empty: kept in <data_dir>/secret.key"
    )
    model_dir: Path = Field(PROJECT_ROOT / "models", description="Trained model registry folder.")
    sources_file: Path | None = Field(None, description="YAML list of crawl sources.")
    config_dir: Path | None = Field(None, description="Folder with office config (rules, taxonomy, places).")
    segment_dict: Path | None = Field(
        None, description="Extra jieba user dictionary (word [freq] [tag] per line), e.g. local names; "
                          "models trained here carry its lines, with the place names of places.yaml."
    )
    redis_url: str | None = Field(None, description="Redis for distributed crawling (scrapy-redis).")
    timezone: str = "Asia/Shanghai"
    retention_days: int = Field(180, ge=1, description="Raw chat messages older than this are purged.")
    pseudonymize_senders: bool = Field(True, description="Replace chat sender ids/nicknames by HMAC pseudonyms.")
    mask_personal_data: bool = Field(True, description="Mask phone and ID-card numbers in post text.")
    onebot_secret: SecretStr | None = Field(
        None, description="OneBot v11 secret: pushes to /api/v1/ingest/onebot need X-Signature (HMAC-SHA1)."
    )
    onebot_api_url: str | None = Field(
        None, description="The bot framework's OneBot v11 HTTP API (e.g. http://127.0.0.1:5700): replies to QQ "
                          "tips go out through send_private_msg, publications through send_group_msg.")
    onebot_api_token: SecretStr | None = Field(None, description="access-token of that HTTP API (Bearer).")
    # Residents' tips (core.tips, alerts.tips, api/routes/tips.py).
    tip_auto_reply_channels: list[str] = Field(
        default_factory=list,
        description="Channels whose tips matching a known rumor get the official refutation at once "
                    '(JSON list of web, qq, wechat, e.g. ["web", "qq", "wechat"]); others get "已收到，正在核实…". '
                    "Off by default: bench/bench_tips.py has not yet shown precision >= 0.98 on held-out tips.")
    tip_auto_reply_min_score: float = Field(
        0.945, gt=0, le=1, description="Claim-matcher score (tip vs the matched debunk's claim) needed for an "
                                      "automatic refutation: the high-precision band chosen on the tune sets by "
                                      "bench/bench_tips.py for claim matcher 2026.12.2 (0.86 was 2026.12.1's); "
                                      "kept when the tune choice with more hard negatives, 0.9, did worse "
                                      "held-out (bench/results/tips.md).")
    tip_auto_reply_margin: float = Field(
        0.0, ge=0, le=1, description="How far the matched debunk's claim-matcher score must be above the best other "
                                      "debunk's for an automatic refutation (nlp.reply_gate; chosen on the tune sets "
                                      "by bench/bench_tips.py).")
    tip_rate_per_minute: float = Field(4.0, gt=0, description="Tips one client address may send per minute.")
    tip_rate_burst: int = Field(6, ge=1, description="... and in one burst.")
    tip_form_min_seconds: float = Field(
        3.0, ge=0, description="A tip form sent sooner than this after it was served is refused (a script).")
    tip_form_max_hours: float = Field(24.0, gt=0, description="A tip form older than this must be reloaded.")
    wechat_token: SecretStr | None = Field(
        None, description="公众号 developer-mode Token: the /wechat/callback signature check.")
    wechat_reply_deadline_seconds: float = Field(
        4.0, gt=0, le=4.5, description="公众号 callback: a tip not answered by then gets the acknowledgement as its "
                                      "passive reply (WeChat waits 5 s); a refutation found later follows as a "
                                      "customer-service message (needs the AppID/AppSecret below).")
    wechat_app_id: str | None = Field(None, description="公众号 AppID, for staff answers (客服消息).")
    wechat_app_secret: SecretStr | None = Field(None, description="公众号 AppSecret, for staff answers.")
    wechat_api_url: str = Field("https://api.weixin.qq.com", description="WeChat API base URL.")
    spill_replay_seconds: float = Field(
        5.0, gt=0, description="How often the API and `yuqing run` replay pushes spilled during a database outage."
    )
    max_request_mb: float = Field(16.0, gt=0, description="Larger request bodies are refused with 413 before parsing.")
    public_docs: bool = Field(False, description="Serve /docs and /openapi.json without a login.")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    base_url: str = "http://127.0.0.1:8000"
    office_public_name: str = Field(
        "青禾镇人民政府", min_length=1, max_length=100,
        description="The office's public name: response drafts speak as it, 辟谣 cards and posters name it as publisher.",
    )
    log_level: str = "INFO"
    user_agent: str = "yuqing-crawler/0.1 (+https://github.com/yuqing/yuqing; public-opinion monitoring)"
    crawl_autothrottle: bool = Field(True, description="AutoThrottle on for every source (per-source override).")
    crawl_concurrency: int = Field(16, ge=1, description="Concurrent requests of one crawl process.")
    crawl_batch_size: int = Field(100, ge=1, description="Posts per database batch in the crawl pipeline.")
    crawl_max_page_mb: float = Field(10.0, gt=0, description="Larger pages are abandoned (and reported).")
    crawl_max_idle_seconds: int = Field(10, ge=1, description="Distributed workers stop after this long idle.")
    redis_prefix: str = Field("yuqing", description="Prefix of every Redis key (queues, duplicate filter).")
    demo_site_port: int = Field(0, ge=0, description="Port of the bundled demo site for `run --demo`; 0 = random.")
    label_queue_band: tuple[float, float] = Field(
        (0.15, 0.85), description="The labelling queue holds posts whose rumor probability lies in this band "
                                  '(JSON, e.g. [0.1, 0.9]): the ones the active model is least sure about.')
    label_queue_reach_weight: float = Field(
        1.0, ge=0, description="How much a post's reach (story posts + groups) raises its place in the labelling "
                               "queue: priority = uncertainty x (1 + weight x ln(1 + reach)); 0 ignores reach.")
    label_queue_days: int = Field(
        30, ge=1, description="Posts of the last N days that the active model has not scored yet are scored "
                              "when the labelling queue is read (so it never empties after a promotion).")

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: str = Field("none", description="none | starttls | ssl")
    smtp_sender: str = "yuqing@localhost"
    digest_time: str = Field("18:00", pattern=r"^([01]?\d|2[0-3]):[0-5]\d$",
                             description="Local time (HH:MM) the daily digest is built and sent.")
    digest_recipients_file: Path | None = Field(
        None, description="YAML with the digest's title, recipients and per-recipient sections."
    )
    digest_template_dir: Path | None = Field(
        None, description="Folder whose digest.html / digest.txt override the shipped digest templates."
    )
    digest_title: str = Field("舆情日报", description="Digest title, e.g. 青禾镇舆情日报 (the YAML may override).")
    digest_top_n: int = Field(5, ge=1, le=50, description="Rumors and hot concerns listed in the digest.")
    digest_overdue_hours: dict[str, float] = Field(
        default_factory=lambda: {"urgent": 2.0, "high": 8.0, "medium": 24.0, "low": 72.0},
        description="An open alert older than this (hours, per severity) is listed as overdue.",
    )
    digest_retry_minutes: int = Field(5, ge=1, description="First retry delay of a failed digest (doubles).")
    digest_max_attempts: int = Field(12, ge=1, description="Send attempts before a digest is left failed.")
    digest_font: Path | None = Field(None, description="A CJK font file for the charts (default: WenQuanYi).")
    smtp_ca_file: Path | None = Field(None, description="CA bundle to verify the mail server (private CA).")
    smtp_timeout: float = Field(30.0, gt=0, description="Seconds before an SMTP connection attempt gives up.")

    # Hot concerns (nlp/concerns): topic clustering and burst detection.
    topic_similarity: float = Field(0.35, gt=0, lt=1, description="Cosine a post needs to join a topic.")
    topic_window_hours: int = Field(72, ge=1, description="Topics quiet for longer go dormant (not joined).")
    burst_window_hours: int = Field(2, ge=1, description="Recent hours whose rate is compared to the baseline.")
    burst_baseline_hours: int = Field(48, ge=1, description="Hours before the recent window forming the baseline.")
    burst_z: float = Field(4.0, gt=0, description="Burst z-score (vs own baseline) needed to be hot.")
    burst_min_posts: int = Field(5, ge=1, description="Posts in the recent window needed to be hot.")
    burst_min_ratio: float = Field(2.0, ge=1, description="Recent rate must be at least this times the baseline.")
    burst_prior_rate: float = Field(0.5, ge=0, description="Posts/hour assumed for a topic with little history.")
    burst_prior_hours: float = Field(3.0, ge=0, description="Weight of that prior, in hours of history.")
    burst_overdispersion: float = Field(
        0.05, ge=0, description="Extra variance (phi * mean^2) over Poisson: social counts are bursty."
    )
    local_priority_boost: float = Field(1.0, ge=0, description="Priority bonus for topics about our own places.")
    topic_refresh_seconds: int = Field(600, ge=30, description="How often bursts are re-scored without new posts.")
    concern_category_model: Path | None = Field(
        None, description="Saved concern-category classifier (skops); empty: <data_dir>/models/category/category.skops "
        "when `yuqing categories-train` has saved one."
    )
    analyze_interval_seconds: int = Field(60, ge=5, description="How often `yuqing run` analyses new posts.")
    story_window_days: int = Field(14, ge=1, description="New posts join stories active within this many days.")
    incident_window_days: int = Field(
        7, ge=1, description="New posts join incidents (matters) active within this many days; older ones go dormant."
    )
    alert_rules_file: Path | None = Field(None, description="Alert rules YAML; empty: alerts/rules.yaml.")
    notify_config_file: Path | None = Field(None, description="Notification routing YAML; empty: alerts/notify.yaml.")
    notify_backoff_seconds: float = Field(30.0, gt=0, description="First retry delay of a failed notification.")
    notify_backoff_max_seconds: float = Field(1800.0, gt=0, description="Longest delay between retries.")
    notify_timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one delivery attempt.")
    notify_interval_seconds: int = Field(30, ge=1, description="How often the outbox is delivered.")
    alerts_interval_seconds: int = Field(60, ge=1, description="How often new analysis is turned into alerts.")

    # Pictures in posts and chat messages (core.images, crawler.image_fetch, nlp.images).
    image_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost"],
        description="Hosts pictures may be fetched from (JSON list; the bot framework's host, e.g. "
                    '["127.0.0.1", "gchat.qpic.cn"]); a leading dot also allows subdomains (".qpic.cn").')
    image_max_mb: float = Field(10.0, gt=0, description="Larger pictures are refused (and reported on the message).")
    image_max_pixels: int = Field(40_000_000, ge=1, description="Pictures with more pixels are refused (decompression bombs).")
    image_fetch_timeout: float = Field(15.0, gt=0, description="Seconds before fetching one picture gives up.")
    image_ocr_per_minute: int = Field(120, ge=1, description="Budget of pictures read (OCR) per minute per worker.")
    image_workers: int = Field(1, ge=0, description="OCR worker processes `yuqing run` starts (0: none).")
    image_worker_nice: int = Field(10, ge=0, le=19, description=(
        "How much lower the picture worker's CPU priority is (Unix nice), so text analysis keeps the cores "
        "when both are busy; 0 keeps the normal priority."))
    image_interval_seconds: int = Field(10, ge=1, description="How often the picture worker looks for new pictures.")
    # Picture files in an S3-compatible object store (MinIO, Ceph, a cloud's OSS/COS/S3) instead of
    # <data_dir>/images (core.picture_store); needs the `s3` extra. The rows stay in the database.
    image_s3_endpoint: str | None = Field(
        None, description="S3 endpoint URL, e.g. http://127.0.0.1:9000 or https://oss-cn-hangzhou.aliyuncs.com; "
                          "empty: pictures are kept under <data_dir>/images.")
    image_s3_bucket: str = Field("yuqing-images", min_length=3, max_length=63, description="Bucket (created if missing).")
    image_s3_prefix: str = Field("", max_length=200, description="Key prefix inside the bucket, e.g. yuqing/.")
    image_s3_region: str | None = Field(None, description="Region, when the store needs one (e.g. us-east-1).")
    image_s3_access_key: SecretStr | None = Field(None, description="Access key id of the S3 store.")
    image_s3_secret_key: SecretStr | None = Field(None, description="Secret key of the S3 store.")
    image_s3_timeout: float = Field(
        10.0, gt=0, description="Seconds before one request to the S3 store gives up (it is then unavailable: "
                                "pictures stay queued).")

    # Publishing approved responses (alerts.publish): approval, pacing, the card. The bot's HTTP API
    # is onebot_api_url / onebot_api_token above (shared with the tipline's replies).
    publish_single_approver: bool = Field(
        False, description="One person may draft and approve a publication (default: a second person approves).")
    publish_approver_role: str = Field(
        "analyst", pattern=r"^(staff|analyst|admin)$",
        description="Least role that may approve a publication (staff | analyst | admin); staff draft.")
    publish_send_interval_seconds: float = Field(
        1.5, ge=0, description="Pause between two group messages of the bot (rate limit; QQ bans floods).")
    publish_max_attempts: int = Field(5, ge=1, description="Send attempts per group before it is given up.")
    # 企业微信 (WeCom) groups: publications go out through each group's robot webhook (alerts.wecom_send).
    wecom_robots: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="企业微信 group robots, a JSON object: the group's id or name (as the group list shows it) -> "
                    "its robot's webhook key (or the whole webhook address). Secret: from the environment or "
                    ".env only, never stored in the database.")
    wecom_webhook_url: str = Field(
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send", description="WeCom group robot webhook (without ?key=).")
    wecom_message_format: str = Field(
        "text", pattern=r"^(text|markdown)$",
        description="text (shown everywhere) or markdown (bold heading; WeCom clients only) for publications.")
    wecom_send_card: bool = Field(True, description="Post the 辟谣 card picture after the text in WeCom groups.")
    wecom_per_minute: int = Field(
        20, ge=2, description="WeCom's limit per robot: messages a minute (paced at one under it).")

    @field_validator("label_queue_band", mode="after")
    @classmethod
    def _band(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"YUQING_LABEL_QUEUE_BAND must be two probabilities, low < high, e.g. [0.1, 0.9]: got {value}")
        return value

    @field_validator("image_s3_endpoint", mode="after")
    @classmethod
    def _s3_endpoint(cls, value: str | None) -> str | None:
        from urllib.parse import urlsplit

        if not value or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
            raise ValueError(f"YUQING_IMAGE_S3_ENDPOINT must be http(s)://host[:port] without a path: got {value!r}")
        return value.strip().rstrip("/")

    @field_validator("data_dir", "model_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'yuqing.db'}"

    def secret(self) -> bytes:
        """The instance secret; generated once into ``<data_dir>/secret.key`` if not configured."""
        if self.secret_key is not None and self.secret_key.get_secret_value():
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip().encode()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
