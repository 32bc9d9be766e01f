"""Whether a chat line asks something: the question forms of spoken and written Chinese, with and
without a question mark. Read by the role rules (`nlp.roles`) and by the role model's dense block
(`nlp.role_model`), so both see the same questions."""

from __future__ import annotations

import re

from nlp.normalize import PLACEHOLDER_RE

__all__ = ["ASKS_RE", "CLAUSE_ASKS_RE", "CLAUSE_SPLIT_RE", "WH_RE", "asks", "asks_in_a_clause", "ends_asking"]

# "嘛" ends statements ("好嘛", "宁可信其有嘛", "我就说嘛"); "吗/么/呢" ask.
# "…着呢" states ("水位低着呢", "早着呢"): only a bare "呢" asks.
ASKS_RE = re.compile(r"(?:吗|么|(?<!着)呢|\?)(?:\s|<[A-Z_]+>)*$|\?|(?:了|过)没(?:有|得)?$")
# The last clause asks: a question word, an A-not-A choice ("停不停", "要不要"), a tag ("对吧"), or
# the spoken yes-no tags without a question mark: "…发的不", "给钱不", "涨了没得", "看清没" (not "我才不",
# "还没", "都没").
CLAUSE_SPLIT_RE = re.compile(r"[,.!;:。，！；：\s]+")
CLAUSE_ASKS_RE = re.compile(
    r"(.)不\1|有没有|是不是|能不能|要不要|会不会|到底|对吧$|是吧$|不是.{1,10}吧$|(?:吗|么|(?<!着)呢)(?:啊|呀)?$|[了过]没(?:有|得)?$"
    r"|^.+[^不没别才也都就]不$|[^还都也就啥么并从不]没(?:有|得)?$"
    r"|(?<![别就])(?!不会吧$|不是吧$|不至于吧$|没事吧$)(?:不|没)[^,.!?;:。，！；：\s吧]{0,6}吧$"
)


def asks(norm_text: str) -> bool:
    """The line asks something: a question mark, or its last clause is a question."""
    if ASKS_RE.search(norm_text):
        return True
    clauses = [c for c in CLAUSE_SPLIT_RE.split(PLACEHOLDER_RE.sub("", norm_text)) if c]
    return bool(clauses) and CLAUSE_ASKS_RE.search(clauses[-1]) is not None


# A question word asks without a question mark in voice-to-text and elderly writing ("违反了咋罚",
# "这几天是几天", "那我们去镇上赶集咋走啊"). Laments and exclamations built on the same words do not:
# "咋办/怎么办", "咋活", "咋了", "咋这么…", "哪有…", a clause ending in "嘛" ("咋搬嘛"). Only
# `ends_asking` reads it: a denial's rhetorical "哪有什么…" must not turn into a question where
# `asks` guards the denial rules.
WH_RE = re.compile(r"咋(?!办|整|样|回事|了|活|过|这么|那么|弄)|怎么(?!办|回事|这么|那么|样|了|活|过)|啥时候|什么时候|"
            r"几(?:天|号|点|时|岁|块)|哪(?:个|家|天|里|儿)(?!有)|多少|为啥|为什么")


def ends_asking(norm_text: str) -> bool:
    """The line ends on its question ("天哪 那我明天还能去上班吗", "违反了咋罚"), not on a remark after
    it ("啥?我家刚拉了两吨煤" is surprise)."""
    clauses = [c for c in CLAUSE_SPLIT_RE.split(PLACEHOLDER_RE.sub("", norm_text).replace("?", "? ")) if c]
    if not clauses:
        return False
    last = clauses[-1]
    return (last.endswith("?") or CLAUSE_ASKS_RE.search(last) is not None
            or (not last.endswith("嘛") and WH_RE.search(last) is not None))


def asks_in_a_clause(norm_text: str) -> bool:
    """Some clause asks, not only the last: "养殖区受影响不 我的扇贝笼子在外边" asks, then explains."""
    clauses = [c for c in CLAUSE_SPLIT_RE.split(PLACEHOLDER_RE.sub("", norm_text)) if c]
    return any(CLAUSE_ASKS_RE.search(c) or (WH_RE.search(c) and not c.endswith("嘛")) for c in clauses)
