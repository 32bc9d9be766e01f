"""The command line's help in Chinese, one line per command.

The commands' docstrings stay in English (they document the code, like every docstring here);
the people who run the commands read Chinese, so `--help` shows these. `apply` is called once
the command tree is built; a test checks that every command has a line here.
"""

from __future__ import annotations

from typing import Any

import typer

COMMAND_HELP: dict[str, str] = {
    "serve": "启动接口和审核台（默认 http://127.0.0.1:8000）。",
    "run": "主任务：按计划抓取、导入、分析、生成预警、发送通知和日报，同时提供接口和审核台。",
    "topics": "列出最近一段时间（--since）明显高于自身基线的热点话题。",
    "categories-train": "用类别标注训练关切类别分类器；之后 `yuqing analyze` 会使用它。",
    "crawl": "抓取一次全部信息源并打印汇总；只有某个信息源完全失败时才以代码 1 退出。",
    "digest": "生成某天的舆情日报：打印、写入文件夹（--out）或发送邮件（--send）。",
    "train": "训练一个候选谣言识别模型（用 `yuqing models promote` 启用之前不会被使用）。",
    "recalibrate": (
        "只用本单位的标注重新校准当前模型的概率换算，生成候选版本。\n\n"
        "保留模型权重；需要评估集之外至少 20 条谣言和 20 条非谣言标注。预警普遍偏高或偏低、"
        "但真正的谣言大多排在前面时使用；模型漏掉整类谣言时应重新训练（`yuqing train`）。"
    ),
    "rescore": "用当前启用的模型重新评分近期帖子（可中断后继续；已评分的帖子会跳过）。",
    "import-chats": "导入群聊导出文件或文件夹（流式读取；重复导入不会重复保存）。",
    "purge": "删除超过保留期限的群消息原文（预警证据和事件保留）。",
    "images work": "图片处理：抓取排队的图片（只从 YUQING_IMAGE_HOSTS），去重保存，按每分钟预算识别文字。",
    "images status": "图片存放在哪里、存储是否可用；按状态统计图片（待识别、已识别……）和图片引用（待抓取、已保存、稍后重试……）。",
    "images copy-to-store": "改用 S3 存储后：把数据目录中的图片复制到 YUQING_IMAGE_S3_* 指定的存储（可重复执行，本地文件保留）。",
    "analyze": "分析所有未分析的帖子：谣言概率及理由（概率按各渠道估计的谣言占比换算）、辟谣库匹配、事件归并；--reestimate 立即重新估计谣言占比。",
    "classify": "用当前启用的模型为任意 CSV 评分：按文件本身估计（或 --prevalence 指定）的谣言占比调整概率，增加 rumor_probability、label（1 / 0 / 无法判断）、raw_score、abstain_reason 和 top_terms。",
    "tips import": "导入 12345 热线导出的 CSV（时间、来电人、内容）作为群众举报线索；编码自动识别，重复导入不会重复保存。",
    "db upgrade": "创建或升级数据库表结构到最新版本（可重复运行）。",
    "users add": "添加用户并指定角色，打印一次新的 API 令牌（会提示输入密码）。",
    "users list": "列出用户及其角色。",
    "users passwd": "设置用户密码；该用户已登录的审核台会话全部失效（需重新登录）。",
    "tokens create": "为用户创建 API 令牌，只打印一次。",
    "sources validate": "检查信息源配置文件，逐条指出出错的信息源和字段。",
    "sources list": "列出数据库中的信息源及其最近一次运行情况。",
    "alerts evaluate": "根据上次运行以来分析过的帖子、事件和热点话题生成或合并预警。",
    "alerts escalate": "升级超时无人认领的高级和紧急预警（见通知路由配置）。",
    "alerts rules validate": "检查预警规则 YAML 文件（可同时检查通知路由文件）；无效时以代码 1 退出。",
    "notify deliver": "发送到期的通知；失败的稍后按退避间隔重试，不会丢弃。",
    "models list": "列出模型版本及其状态和指标。",
    "models promote": "启用某个版本；样本不足或在两者都没训练过的评估标注上明显更差时会被拒绝（可 --force 并说明理由）。",
    "models rollback": "重新启用上一个启用过的版本。",
    "models compare": "比较两个版本（默认与在用版本比）：只用两者都没训练过的评估标注，给出条数、区间、分类别/来源/渠道结果和判断不同的文本；不做任何改动。",
    "models delete": "删除从未启用过的候选版本（连同本机模型目录中的文件）。",
    "models history": "模型操作记录：训练、校准、启用、强制启用（含理由）、回滚、删除，以及操作人。",
    "labels import": "导入训练标注（重复导入同一文件不会有变化）。",
    "labels conflicts": "同一文本既被标为谣言又被标为非谣言的情况（解决之前不参与训练）。",
    "labels queue": "模型最拿不准、传播又广的帖子：先标注这些。",
    "labels list": "列出标注（最新的在前），可按来源、结论、矛盾与否和文字筛选；--json 输出 JSON。",
    "labels set": "更正一条标注的结论（或类别）；原来的结论记入修改记录。",
    "labels delete": "删除一条标注；修改记录保留。",
    "labels resolve": "裁定矛盾的标注：这条文本的所有标注都改为选定的结论。",
    "labels export": "把全部标注导出为 CSV（默认输出到屏幕，- 表示标准输出）；text,label,category 三列可直接重新导入。",
    "groups list": "列出群及其消息数。",
    "groups set": "修改群的名称、标签、成员数、是否保留昵称或是否停用。",
    "debunks import": "从 CSV 或 YAML 导入辟谣条目；重复导入同一文件不会有变化。",
    "debunks list": "列出辟谣库，最新的在前。",
}


def apply(app: typer.Typer, prefix: str = "") -> None:
    """Set the Chinese help of every command of ``app`` (and of its sub-apps) found in the table."""
    for info in app.registered_commands:
        name = info.name or (info.callback.__name__.replace("_", "-") if info.callback else "")
        if f"{prefix}{name}" in COMMAND_HELP:
            info.help = COMMAND_HELP[f"{prefix}{name}"]
    for group in app.registered_groups:
        if group.typer_instance is not None and group.name:
            apply(group.typer_instance, f"{prefix}{group.name} ")


#: Click's and Typer's own words on a help page and in usage errors (they pass them through
#: gettext's ``_``): with only the command lines in Chinese, a help page read half English.
FRAMEWORK_ZH: dict[str, str] = {
    "Usage:": "用法：",
    "Options": "选项",
    "Arguments": "参数",
    "Commands": "命令",
    "Show this message and exit.": "显示本帮助并退出。",
    "default: {default}": "默认：{default}",
    "required": "必填",
    "Error: {message}": "错误：{message}",
    "Try '{command} {option}' for help.": "运行 '{command} {option}' 查看帮助。",
    "Invalid value: {message}": "取值无效：{message}",
    "Invalid value for {param_hint}: {message}": "{param_hint} 的取值无效：{message}",
    "Missing argument": "缺少参数",
    "Missing option": "缺少选项",
    "Missing parameter": "缺少参数",
    "No such option {name!r}.": "没有选项 {name!r}。",
    "No such command {name!r}.": "没有命令 {name!r}。",
    "Got unexpected extra argument ({args})": "多余的参数（{args}）",
    "Got unexpected extra arguments ({args})": "多余的参数（{args}）",
}


def _zh(message: str) -> str:
    return FRAMEWORK_ZH.get(message, message)


def translate_framework() -> None:
    """Swap the ``_`` that Click and Typer call at run time for our table (no locale files needed)."""
    import click.core
    import click.exceptions
    import click.formatting
    import click.parser
    import typer.core

    for module in (click.core, click.exceptions, click.formatting, click.parser, typer.core):
        if hasattr(module, "_"):
            module._ = _zh  # type: ignore[attr-defined]
    _translate_vendored_click()


def _translate_vendored_click() -> None:
    """Typer (0.29) carries its own copy of Click whose usage line and help option are plain
    strings: wrap the two methods that print them. A Typer without them keeps its English."""
    try:
        from typer._click.core import Command
        from typer._click.formatting import HelpFormatter
    except ImportError:
        return
    if getattr(HelpFormatter.write_usage, "_zh", False):
        return
    write_usage = HelpFormatter.write_usage
    get_help_option = Command.get_help_option

    def usage_zh(self: Any, prog: str, args: str = "", prefix: str | None = None) -> None:
        write_usage(self, prog, args, "用法：" if prefix is None else prefix)

    def help_option_zh(self: Any, ctx: Any) -> Any:
        option = get_help_option(self, ctx)
        if option is not None:
            option.help = FRAMEWORK_ZH["Show this message and exit."]
        return option

    usage_zh._zh = True  # type: ignore[attr-defined]
    HelpFormatter.write_usage = usage_zh  # type: ignore[method-assign]
    Command.get_help_option = help_option_zh  # type: ignore[method-assign]
