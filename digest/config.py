"""Who receives the digest, and which sections each one gets (YAML, path in settings).

Example (``YUQING_DIGEST_RECIPIENTS_FILE=/etc/yuqing/digest.yaml``)::

    title: 青禾镇舆情日报            # optional, else YUQING_DIGEST_TITLE
    recipients:
      - email: shuji@qinghe.example
        name: 王书记
        sections: [rumors, concerns, open]   # optional: charts, rumors, concerns, open (default all)
      - zhenzhang@qinghe.example            # a plain address gets every section

Recipients with the same sections share one mail; each such recipient list is one digest per
day (keyed by a hash of its sorted addresses), which is what makes ``--send`` idempotent.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.settings import Settings
from digest.errors import DigestConfigError
from digest.render import normalise_sections

_EMAIL = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")


class Recipient(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    email: str = Field(min_length=3, max_length=320)
    name: str | None = Field(None, max_length=100)
    sections: list[str] | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError(f"'{value}' 不是有效的邮箱地址")
        return value

    @field_validator("name")
    @classmethod
    def _one_line_name(cls, value: str | None) -> str | None:
        return " ".join(value.split()) if value else None

    @field_validator("sections")
    @classmethod
    def _sections(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else normalise_sections(value)


class RecipientsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(None, max_length=100)
    recipients: list[Recipient] = Field(default_factory=list)

    @field_validator("title")
    @classmethod
    def _one_line_title(cls, value: str | None) -> str | None:
        return " ".join(value.split()) if value else None  # it goes into the Subject header

    @field_validator("recipients", mode="before")
    @classmethod
    def _plain_addresses(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"email": v} if isinstance(v, str) else v for v in value]
        return value


@dataclass(frozen=True)
class Audience:
    """One recipient list that gets one mail: same sections for all of them."""

    recipients: tuple[Recipient, ...]
    sections: tuple[str, ...]

    @property
    def emails(self) -> list[str]:
        return [r.email for r in self.recipients]

    @property
    def key(self) -> str:
        return recipients_key(self.emails)

    def as_json(self) -> list[dict[str, Any]]:
        return [{"email": r.email, "name": r.name} for r in self.recipients]


def recipients_key(emails: Sequence[str]) -> str:
    """sha256 of the sorted, lower-cased addresses: the identity of a recipient list."""
    canonical = "\n".join(sorted({e.strip().lower() for e in emails}))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def load_recipients(path: Path) -> RecipientsFile:
    if not path.is_file():
        raise DigestConfigError(
            f"日报收件人配置文件不存在：{path}。请创建它，或修改 YUQING_DIGEST_RECIPIENTS_FILE。"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise DigestConfigError(f"日报收件人配置 {path} 不是有效的 UTF-8 YAML：{err}") from err
    if isinstance(data, list):  # a bare list of recipients is accepted too
        data = {"recipients": data}
    try:
        parsed = RecipientsFile.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DigestConfigError(f"日报收件人配置 {path} 的 {where} 有误：{first['msg']}") from err
    seen: set[str] = set()
    for r in parsed.recipients:
        if r.email.lower() in seen:
            raise DigestConfigError(f"日报收件人配置 {path} 中 {r.email} 出现了两次：请只保留一条。")
        seen.add(r.email.lower())
    return parsed


def audiences(settings: Settings) -> tuple[str, list[Audience]]:
    """The digest title and the recipient lists from the configured file (none if unset)."""
    if settings.digest_recipients_file is None:
        return settings.digest_title, []
    parsed = load_recipients(settings.digest_recipients_file)
    groups: dict[tuple[str, ...], list[Recipient]] = {}
    for r in parsed.recipients:
        sections = tuple(normalise_sections(r.sections))
        groups.setdefault(sections, []).append(r)
    return parsed.title or settings.digest_title, [
        Audience(recipients=tuple(rs), sections=sections) for sections, rs in groups.items()
    ]
