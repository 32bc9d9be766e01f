"""The sources file: a validated YAML list of places to collect from.

Sources are configuration, not code. Each entry is checked by pydantic; an error names the
source (by position and name) and the exact key, in Chinese, so staff can fix the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import InvalidInput

_INTERVAL = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_INTERVAL_SECONDS = 10


class SourcesFileError(InvalidInput):
    """The sources file cannot be used; the message says where and how to fix it."""


def parse_interval(value: str | int) -> int:
    """``30s`` / ``15m`` / ``2h`` / ``1d`` (or a number of seconds) -> seconds."""
    if isinstance(value, bool):
        raise ValueError("间隔必须写成 30s / 15m / 2h / 1d 这样的形式")
    if isinstance(value, int):
        seconds = value
    else:
        match = _INTERVAL.match(str(value))
        if not match:
            raise ValueError(f"间隔 '{value}' 无法识别：请写成 30s / 15m / 2h / 1d 这样的形式")
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds < MIN_INTERVAL_SECONDS:
        raise ValueError(f"间隔 {seconds} 秒太短：至少 {MIN_INTERVAL_SECONDS} 秒，以免给网站造成负担")
    return seconds


def check_selector(spec: str) -> str:
    """A selector is CSS (with ``::text`` / ``::attr(x)``) or ``xpath:<expr>``; reject ones that cannot compile."""
    from parsel import Selector

    spec = spec.strip()
    if not spec:
        raise ValueError("选择器不能为空")
    probe = Selector(text="<html><body></body></html>")
    try:
        if spec.startswith("xpath:"):
            probe.xpath(spec[len("xpath:"):])
        else:
            probe.css(spec)
    except Exception as err:  # parsel raises several types (SelectorSyntaxError, ValueError, XPathError)
        raise ValueError(f"选择器 '{spec}' 写法有误：{err}") from err
    return spec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)


class RepliesConfig(_Strict):
    """Replies on a thread page: each match of ``each`` becomes its own post linked to the thread."""

    each: str
    body: str
    author: str | None = None
    author_id: str | None = Field(None, description="selector of the author's user id (pseudonymised in groups)")
    published: str | None = None
    id: str | None = Field(None, description="selector of a stable reply id, e.g. '::attr(data-pid)'")
    next_page: str | None = Field(None, description="link to the thread's next page of replies (followed up to "
                                                    "max_pages)")
    quote: str | None = Field(None, description="selector of the id of the reply this one quotes")

    _sel = field_validator("each", "body", "author", "author_id", "published", "id", "quote", "next_page")(
        lambda v: check_selector(v) if v is not None else v)


class ListConfig(_Strict):
    item_links: str
    next_page: str | None = None

    _sel = field_validator("item_links", "next_page")(lambda v: check_selector(v) if v is not None else v)


class DetailConfig(_Strict):
    title: str | None = None
    body: str
    author: str | None = None
    author_id: str | None = None
    published: str | None = None
    replies: RepliesConfig | None = None
    images: str | None = Field(None, description="the post's pictures, e.g. \"div.post-body img::attr(src)\": "
                                                "fetched by Scrapy (same politeness), stored and read by `yuqing images`")

    _sel = field_validator("title", "body", "author", "author_id", "published", "images")(
        lambda v: check_selector(v) if v is not None else v)


class GroupConfig(_Strict):
    """A public group board or channel: its posts and replies are messages of this group."""

    name: str = Field(min_length=1, max_length=200)
    platform: str | None = Field(None, description="forum / tieba / telegram-channel ...; default by kind")
    id: str | None = Field(None, min_length=1, max_length=200,
                           description="stable group id (e.g. the channel's username); default: the name")
    tags: list[str] = Field(default_factory=list)
    keep_names: bool = Field(False, description="store nicknames as shown instead of pseudonyms")

    @field_validator("platform")
    @classmethod
    def _platform(cls, value: str | None) -> str | None:
        if value is not None and not _PLATFORM.match(value):
            raise ValueError(f"平台 '{value}' 无效：只能用小写字母、数字和连字符，最多 20 个字符（如 forum / tieba / "
                             "telegram-channel）")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        clean = [t.strip() for t in tags if t.strip()]
        if any(len(t) > 50 for t in clean):
            raise ValueError("每个标签最多 50 个字符")
        return sorted(set(clean))


_PLATFORM = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
#: The platform of a group source that names none, by source kind.
DEFAULT_GROUP_PLATFORM = {"html": "forum", "json": "web"}


class SourceConfig(_Strict):
    """One source. Key names are the interface documented in the README."""

    name: str = Field(min_length=1, max_length=200)
    kind: Literal["feed", "html", "json", "custom"]
    urls: list[str] = Field(min_length=1)
    interval: int = Field(description="seconds; written as 30s / 15m / 2h / 1d")
    enabled: bool = True
    encoding: str | None = None
    max_pages: int = Field(5, ge=1, le=1000)
    obey_robots: bool = True
    # html
    list_: ListConfig | None = Field(None, alias="list")
    detail: DetailConfig | None = None
    # json
    page_start: int = 1
    items: str | None = None
    fields: dict[str, str] | None = None
    # custom
    spider: str | None = None
    # html / json: a public group board or channel whose posts are messages of this group
    group: GroupConfig | None = None
    # optional politeness / robustness knobs
    download_delay: float = Field(0.0, ge=0, le=60)
    concurrency: int = Field(4, ge=1, le=32, description="concurrent requests to this source's sites")
    timeout: float = Field(20.0, gt=0, le=300, description="seconds per request")
    autothrottle: bool | None = Field(None, description="override YUQING_CRAWL_AUTOTHROTTLE for this source")

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> int:
        return parse_interval(value)

    @field_validator("urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not re.match(r"^https?://[^/\s]+", url):
                raise ValueError(f"网址 '{url}' 无效：必须以 http:// 或 https:// 开头")
        return urls

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import codecs

        try:
            codecs.lookup(value)
        except LookupError as err:
            raise ValueError(f"编码 '{value}' 不存在：常用的有 utf-8 / gbk / gb18030 / big5") from err
        return value

    @model_validator(mode="after")
    def _per_kind(self) -> SourceConfig:
        if self.kind == "html" and self.detail is None:
            raise ValueError("html 类信息源必须有 detail（详情页的 title / body 等选择器）")
        if self.kind == "json":
            if not self.items or not self.fields:
                raise ValueError("json 类信息源必须有 items（列表路径）和 fields（字段对应）")
            unknown = set(self.fields) - JSON_FIELDS
            if unknown:
                raise ValueError(f"fields 里有未知字段 {sorted(unknown)}：可用 {sorted(JSON_FIELDS)}")
            if "body" not in self.fields and "title" not in self.fields:
                raise ValueError("fields 至少要有 body 或 title")
        if self.kind == "custom" and not self.spider:
            raise ValueError("custom 类信息源必须写 spider: 爬虫类的完整路径（如 mypkg.spiders.MySpider）")
        if self.group is not None:
            self._check_group()
        return self

    def _check_group(self) -> None:
        """Group messages need a time (per-hour counts) and, for JSON, an id per message (re-crawls)."""
        assert self.group is not None
        if self.kind not in DEFAULT_GROUP_PLATFORM:
            raise ValueError(f"group 只能用于 html 或 json 类信息源，不能用于 {self.kind}")
        if self.group.platform is None:
            self.group.platform = DEFAULT_GROUP_PLATFORM[self.kind]
        if self.kind == "html":
            assert self.detail is not None
            if not self.detail.published:
                raise ValueError("群版块（group）的 detail 必须有 published：每条消息都要有发送时间")
            if self.detail.replies is not None and not self.detail.replies.published:
                raise ValueError("群版块（group）的 detail.replies 必须有 published：每条回复都要有发送时间")
        else:
            missing = [key for key in ("id", "body", "published") if key not in (self.fields or {})]
            if missing:
                raise ValueError(f"群频道（group）的 fields 必须有 {' / '.join(missing)}：每条消息都要有 ID、正文和发送时间")

    def public(self) -> dict[str, Any]:
        """The config as stored in ``sources.config`` (JSON-safe)."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


JSON_FIELDS = {"id", "title", "body", "url", "author", "author_id", "published", "parent_id"}


class SourcesFile(_Strict):
    sources: list[SourceConfig]

    @model_validator(mode="after")
    def _unique(self) -> SourcesFile:
        seen: set[str] = set()
        for src in self.sources:
            if src.name in seen:
                raise ValueError(f"信息源名称 '{src.name}' 重复：每个信息源的 name 必须唯一")
            seen.add(src.name)
        return self

    def get(self, name: str) -> SourceConfig:
        for src in self.sources:
            if src.name == name:
                return src
        names = "、".join(s.name for s in self.sources) or "（无）"
        raise SourcesFileError(f"没有名为 '{name}' 的信息源。文件里有：{names}")


def _where(raw: Any, loc: tuple[Any, ...]) -> str:
    """'第 2 个信息源「乡镇论坛」的 detail.body' from a pydantic error location."""
    if len(loc) >= 2 and loc[0] == "sources" and isinstance(loc[1], int):
        index = loc[1]
        name = None
        if isinstance(raw, dict) and isinstance(raw.get("sources"), list) and index < len(raw["sources"]):
            entry = raw["sources"][index]
            name = entry.get("name") if isinstance(entry, dict) else None
        label = f"第 {index + 1} 个信息源" + (f"「{name}」" if name else "")
        rest = ".".join(str(p) for p in loc[2:] if not str(p).startswith(("function-", "json-or-python")))
        return f"{label}的 {rest}" if rest else label
    return ".".join(str(p) for p in loc) or "文件顶层"


def parse_sources(raw: Any, *, origin: str = "信息源文件") -> SourcesFile:
    """Validate already-loaded YAML; raise :class:`SourcesFileError` listing every problem."""
    if not isinstance(raw, dict) or "sources" not in raw:
        raise SourcesFileError(f"{origin}：顶层必须是 `sources:` 列表（见 README 的示例）。")
    try:
        return SourcesFile.model_validate(raw)
    except ValidationError as err:
        lines = []
        for problem in err.errors():
            msg = str(problem["msg"]).removeprefix("Value error, ")
            lines.append(f"- {_where(raw, tuple(problem['loc']))}：{_zh(msg, problem['type'])}")
        raise SourcesFileError(f"{origin} 有 {len(lines)} 处错误：\n" + "\n".join(lines)) from err


def _zh(msg: str, kind: str) -> str:
    return {
        "missing": "缺少这个必填项",
        "extra_forbidden": "不认识这个键（拼写错了吗？）",
        "literal_error": "取值无效：kind 只能是 feed / html / json / custom",
        "too_short": "不能为空",
        "bool_parsing": "应为 true 或 false",
        "int_parsing": "应为整数",
        "float_parsing": "应为数字",
        "string_type": "应为文字",
        "list_type": "应为列表，如 [\"https://...\"]",
        "dict_type": "应为键值对",
        "greater_than_equal": "数值太小",
        "less_than_equal": "数值太大",
    }.get(kind, msg)


def load_sources(path: str | Path) -> SourcesFile:
    """Read and validate a sources YAML file."""
    path = Path(path)
    if not path.exists():
        raise SourcesFileError(f"信息源文件 {path} 不存在：请检查路径，或设置 YUQING_SOURCES_FILE。")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise SourcesFileError(f"信息源文件 {path} 不是 UTF-8 编码：请另存为 UTF-8。") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"第 {mark.line + 1} 行第 {mark.column + 1} 列" if mark else "某处"
        raise SourcesFileError(f"信息源文件 {path} 的 YAML 格式有误（{where}）：{getattr(err, 'problem', err)}") \
            from err
    return parse_sources(raw, origin=f"信息源文件 {path}")
