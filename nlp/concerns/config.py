"""Where the office's editable files come from: ``config_dir`` if it holds one, else our default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from core.settings import get_settings
from nlp.concerns.errors import ConcernConfigError

DEFAULTS = Path(__file__).resolve().parent


def config_path(name: str) -> Path:
    """``<config_dir>/<name>`` when the office has one, else the default shipped next to this module."""
    cfg = get_settings().config_dir
    if cfg is not None and (Path(cfg) / name).is_file():
        return Path(cfg) / name
    return DEFAULTS / name


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping, with errors that name the file and the fix (in Chinese, for office staff)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError as err:
        raise ConcernConfigError(
            f"配置文件 {path} 不存在：请检查路径，或删除 YUQING_CONFIG_DIR 中的同名文件以使用默认配置。"
        ) from err
    except yaml.YAMLError as err:
        raise ConcernConfigError(
            f"配置文件 {path} 不是有效的 YAML：{err}。请修正格式（注意缩进和冒号）。"
        ) from err
    if not isinstance(data, dict):
        raise ConcernConfigError(
            f"配置文件 {path} 的顶层应是键值对（如 categories: ...），现在是 {type(data).__name__}。"
        )
    return data
