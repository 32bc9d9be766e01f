"""Every command explains itself in Chinese (`--help`), from yuqing.help_zh."""

from __future__ import annotations

import re

import click
import typer.main
from typer.testing import CliRunner

from yuqing.cli import app
from yuqing.help_zh import COMMAND_HELP

CJK = re.compile(r"[\u4e00-\u9fff]")


def _leaves(cmd: click.Command, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    subs = getattr(cmd, "commands", None)
    if not subs:
        return [(path, cmd)]
    return [leaf for name, sub in subs.items() for leaf in _leaves(sub, (*path, name))]


def test_every_command_has_chinese_help() -> None:
    leaves = _leaves(typer.main.get_command(app))
    assert len(leaves) >= 30
    missing = [" ".join(p) for p, c in leaves if not CJK.search(c.help or "")]
    assert missing == [], f"add these to yuqing/help_zh.py: {missing}"
    assert {" ".join(p) for p, _ in leaves} == set(COMMAND_HELP)  # no stale lines either


def test_help_page_shows_it() -> None:
    out = CliRunner().invoke(app, ["analyze", "--help"])
    assert out.exit_code == 0 and "谣言概率及理由" in out.output and "--batch-size" in out.output
