"""The profile rules (definitions §1): read a rules file, validate it, compile it to SQL.

Reads `pipeline/rules.toml` (shipped) or a user's file (`--rules FILE`); writes nothing. A
condition is parsed with Python's `ast` into a small grammar (and / or / not, parentheses,
column names, true / false, integer comparisons) and compiled to a DuckDB expression; it is
never evaluated as Python. Every problem is a `RulesError` naming the rule, raised before any
data is read.
"""

from __future__ import annotations

import ast
import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pipeline.vocabulary import FLAG_COLUMNS


class RulesError(ValueError):
    """The rules file is unreadable or a rule is invalid (the message names the rule)."""


# Columns a condition may use: the boolean flags bare, the integer columns in comparisons.
BOOLEAN_COLUMNS: tuple[str, ...] = FLAG_COLUMNS
INTEGER_COLUMNS: tuple[str, ...] = ("departments_involved", "birth_year", "municipality_code")
# definitions §1: misuse_any = alcohol OR soft_drugs OR hard_drugs (a name, not a column).
MACROS: dict[str, str] = {"misuse_any": "alcohol or soft_drugs or hard_drugs"}
# a category's value in a condition: a code of the vocabulary or of the rules file
_VALUE = re.compile(r"[a-z0-9][a-z0-9_]*\Z")


@dataclass(frozen=True)
class Columns:
    """What a condition may name: flags (tested bare), integer columns (compared with a
    whole number) and category columns (compared with == or != to a quoted code; the codes
    allowed, or None for any code, checked by the caller: the profile codes of the rules in
    use). The profile rules use the case review's flags and integers; the worklist
    (`pipeline.worklist`) adds what segment derived."""

    booleans: tuple[str, ...] = BOOLEAN_COLUMNS
    integers: tuple[str, ...] = INTEGER_COLUMNS
    categories: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.booleans, *MACROS, *self.integers, *self.categories)


PROFILE_COLUMNS = Columns()

_RULE_FIELDS = ("code", "label_da", "label_en", "depth", "condition")
_BASE_RULE_FIELDS = ("code", "condition")
_TOP_KEYS = ("version", "rule", "base_rule")
_CODE = re.compile(r"[a-z][a-z0-9_]*\Z")
_KEYWORDS = re.compile(r"\b(and|or|not|true|false)\b", re.IGNORECASE)
_COMPARISONS: dict[type[ast.cmpop], str] = {
    ast.GtE: ">=", ast.Gt: ">", ast.LtE: "<=", ast.Lt: "<", ast.Eq: "=", ast.NotEq: "<>",
}  # fmt: skip


@dataclass(frozen=True)
class Condition:
    """A validated condition: the text as written, its SQL, and the columns it tests.

    `flags` are the columns referenced outside any `not`, in order of first appearance: the
    candidates for "the flags that made it match"; `flag_tests` pairs each with the SQL that is
    true when it helped (the flag is set, or a comparison on the column holds). `always` is
    True for the catch-all `true`.
    """

    text: str
    sql: str
    flag_tests: tuple[tuple[str, str], ...]
    always: bool
    # every column the condition names (macros as written), in order of first appearance;
    # the category comparisons as (column, code), for the caller to check the codes
    names: tuple[str, ...] = ()
    codes: tuple[tuple[str, str], ...] = ()

    @property
    def flags(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.flag_tests)


@dataclass(frozen=True)
class Rule:
    """One profile rule; its code is the profile code."""

    code: str
    label_da: str
    label_en: str
    depth: int
    condition: Condition


@dataclass(frozen=True)
class BaseRule:
    """One base-profile rule; its code is one of the profile codes."""

    code: str
    condition: Condition


@dataclass(frozen=True)
class Rules:
    """A validated rules file: profile rules and base rules in precedence order."""

    version: str
    rules: tuple[Rule, ...]
    base_rules: tuple[BaseRule, ...]
    sha256: str
    source: str

    @property
    def codes(self) -> tuple[str, ...]:
        """Profile codes in precedence order."""
        return tuple(r.code for r in self.rules)

    @property
    def base_codes(self) -> tuple[str, ...]:
        """Base-profile codes in precedence order."""
        return tuple(r.code for r in self.base_rules)

    def rule(self, code: str) -> Rule:
        """The rule with this code."""
        for r in self.rules:
            if r.code == code:
                return r
        raise KeyError(code)

    def label(self, code: str, lang: str = "da") -> str:
        """The Danish or English label of a profile code."""
        r = self.rule(code)
        return r.label_da if lang == "da" else r.label_en

    # The SQL below is composed only from validated rule ASTs and codes matching `_CODE`,
    # never from data (see `segment.py`, which places it in `sql/marts/citizens.sql`).

    def rule_sql(self) -> str:
        """A CASE expression giving the code of the first rule that holds."""
        return _case([(r.condition.sql, _literal(r.code)) for r in self.rules])

    def base_profile_sql(self) -> str:
        """A CASE expression giving the code of the first base rule that holds."""
        return _case([(r.condition.sql, _literal(r.code)) for r in self.base_rules])

    def matched_flags_sql(self, rule_column: str = "rule") -> str:
        """An expression giving, for the matched rule (in `rule_column`), its true flags."""
        whens = [
            f"when {_literal(r.code)} then {_true_flags_sql(r.condition.flag_tests)}"
            for r in self.rules
        ]
        return f"case {rule_column}\n    " + "\n    ".join(whens) + "\nend"


def read_toml(path: Path | None, shipped: str, what: str,
              error: type[RulesError] = RulesError) -> tuple[dict[str, Any], str, str]:
    """A data file of the package's kind (rules, worklist, catalogue): `path`, or the one
    shipped as `shipped` ("pipeline/<name>.toml") when None. Returns (table, source, SHA-256
    of the bytes); an unreadable file, one not UTF-8 or not TOML is `error` naming it."""
    if path is None:
        data_bytes = resources.files("pipeline").joinpath(Path(shipped).name).read_bytes()
        source = shipped
    else:
        source = str(path)
        try:
            data_bytes = Path(path).read_bytes()
        except FileNotFoundError:
            raise error(f"{source}: {what} file not found") from None
        except OSError as e:
            raise error(f"{source}: cannot read {what} file: {e}") from None
    try:
        data = tomllib.loads(data_bytes.decode("utf-8"))
    except UnicodeDecodeError:
        raise error(f"{source}: {what} file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise error(f"{source}: not valid TOML: {e}") from None
    return data, source, hashlib.sha256(data_bytes).hexdigest()


def load_rules(path: Path | None = None) -> Rules:
    """Read and validate a rules file (None = the one shipped with the package)."""
    return _parse(*read_toml(path, "pipeline/rules.toml", "rules"))


def _parse(data: dict[str, Any], source: str, sha256: str) -> Rules:
    for key in data:
        if key not in _TOP_KEYS:
            raise RulesError(f"{source}: unknown key '{key}' (known: {', '.join(_TOP_KEYS)})")
    version = data.get("version")
    if not isinstance(version, str) or not version.strip():
        raise RulesError(f"{source}: missing 'version' (text, e.g. version = \"faxe-2013.1\")")

    raw_rules = _tables(data, "rule", source)
    rules: list[Rule] = []
    for i, raw in enumerate(raw_rules, start=1):
        fields = _fields(raw, _RULE_FIELDS, "rule", i, source)
        code = fields["code"]
        where = f"{source}: rule '{code}'"
        for name in ("label_da", "label_en"):
            if not isinstance(fields[name], str) or not fields[name].strip():
                raise RulesError(f"{where}: field '{name}' must be non-empty text")
        depth = fields["depth"]
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise RulesError(f"{where}: field 'depth' must be a positive integer, got {depth!r}")
        if code in {r.code for r in rules}:
            raise RulesError(f"{where}: duplicate code (rule #{i})")
        condition = compile_condition(fields["condition"], where)
        rules.append(Rule(code, fields["label_da"], fields["label_en"], depth, condition))
    _check_catch_all([(r.code, r.condition) for r in rules], "rule", source)

    codes = {r.code for r in rules}
    base_rules: list[BaseRule] = []
    for i, raw in enumerate(_tables(data, "base_rule", source), start=1):
        fields = _fields(raw, _BASE_RULE_FIELDS, "base_rule", i, source)
        code = fields["code"]
        where = f"{source}: base_rule '{code}'"
        if code not in codes:
            raise RulesError(f"{where}: code is not the code of a [[rule]]")
        if code in {r.code for r in base_rules}:
            raise RulesError(f"{where}: duplicate code (base_rule #{i})")
        base_rules.append(BaseRule(code, compile_condition(fields["condition"], where)))
    _check_catch_all([(r.code, r.condition) for r in base_rules], "base_rule", source)

    return Rules(version.strip(), tuple(rules), tuple(base_rules), sha256, source)


def _tables(data: dict[str, Any], key: str, source: str) -> list[dict[str, Any]]:
    raw = data.get(key)
    if raw is None or raw == []:
        raise RulesError(f"{source}: no [[{key}]] tables: the rule list is empty")
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise RulesError(f"{source}: '{key}' must be a list of [[{key}]] tables")
    return raw


def _fields(
    raw: dict[str, Any], names: tuple[str, ...], kind: str, i: int, source: str
) -> dict[str, Any]:
    code = raw.get("code")
    if not isinstance(code, str) or not _CODE.match(code):
        shown = f"{kind} #{i}" if code is None else f"{kind} #{i} ({code!r})"
        raise RulesError(
            f"{source}: {shown}: field 'code' must be lower-case letters, digits and _"
            if code is not None
            else f"{source}: {shown}: missing field 'code'"
        )
    where = f"{source}: {kind} '{code}'"
    for name in raw:
        if name not in names:
            raise RulesError(f"{where}: unknown field '{name}' (known: {', '.join(names)})")
    for name in names:
        if name not in raw:
            raise RulesError(f"{where}: missing field '{name}'")
    return raw


def _check_catch_all(rules: list[tuple[str, Condition]], kind: str, source: str) -> None:
    for i, (code, cond) in enumerate(rules):
        last = i == len(rules) - 1
        if cond.always and not last:
            following = rules[i + 1][0]
            raise RulesError(
                f"{source}: {kind} '{code}': condition is always true, so '{following}'"
                " after it can never match"
            )
        if last and not cond.always:
            raise RulesError(
                f"{source}: {kind} '{code}': the last {kind} must be the catch-all"
                ' (condition = "true"), so that every reviewed citizen gets a profile'
            )


def compile_condition(
    text: Any, where: str = "condition", columns: Columns = PROFILE_COLUMNS
) -> Condition:
    """Parse `text` into the restricted grammar and compile it to a DuckDB expression over
    `columns` (default: what a profile rule may test)."""
    if not isinstance(text, str):
        raise RulesError(f"{where}: field 'condition' must be text, got {text!r}")
    normalised = _KEYWORDS.sub(lambda m: m.group(1).lower(), text.strip())
    try:
        tree = ast.parse(normalised, mode="eval").body
    except SyntaxError as e:
        lead = len(text) - len(text.lstrip())  # the parser counts in the stripped text
        raise RulesError(f"{where}: syntax error in condition {text!r}: "
                         f"{_syntax_hint(normalised, e, lead)}. {_GRAMMAR}") from None
    compiler = _Compiler(where, text, columns)
    sql = compiler.sql(tree)
    tests: dict[str, list[str]] = {}
    for name, test in compiler.flags:
        if test not in tests.setdefault(name, []):
            tests[name].append(test)
    flag_tests = tuple((name, " or ".join(t)) for name, t in tests.items())
    return Condition(text, sql, flag_tests, _is_true(tree), tuple(dict.fromkeys(compiler.names)),
                     tuple(dict.fromkeys(compiler.codes)))


# What a condition may say, with examples: the end of every syntax-error message
_GRAMMAR = (
    "A condition names a flag alone to test it (psych_undiagnosed), compares an integer column"
    " with a whole number (departments_involved >= 3), and joins these with and / or / not"
    " and parentheses, e.g. \"psych_diagnosis and not misuse_any\""
)
# Operators of other languages (SQL, C, Excel, maths), and what to write instead; a single
# "=" has a hint of its own (`_syntax_hint`)
_OTHER_OPERATORS = {
    "&&": "and", "&": "and", "||": "or", "|": "or", "!": "not", "=>": ">=", "=<": "<=",
    "<>": "!=", "≥": ">=", "≤": "<=", "≠": "!=",
}  # fmt: skip
_OPERATOR_CHARS = "=<>!&|"
_FOUND = re.compile(rf"\w+|[{_OPERATOR_CHARS}]+|\S")
_LONE_EQUALS = re.compile(r"(?<![=<>!])=(?!=)")


def _syntax_hint(normalised: str, e: SyntaxError, lead: int) -> str:
    """What the parser stopped at, and what to write instead where a familiar mistake
    explains it (`psych_undiagnosed = 1`: a flag compared as in SQL)."""
    at = (e.offset or 0) - 1
    lone = _LONE_EQUALS.search(normalised, max(at, 0))
    if "'='" in e.msg and lone:  # Python points at the start of "(flag = 1)", not at the "="
        at = lone.start()
    found = ""
    if 0 <= at < len(normalised):
        # the parser may point into an operator ("&&" at its second "&"): take all of it
        while at > 0 and normalised[at] in _OPERATOR_CHARS and (
                normalised[at - 1] in _OPERATOR_CHARS):
            at -= 1
        m = _FOUND.match(normalised, at)
        found = m.group() if m else ""
    if not found:
        tail = normalised.split()[-1:] or [""]
        if tail[0] in ("and", "or", "not"):
            return f"it ends after '{tail[0]}': something must follow it"
        if not normalised.strip():
            return "the condition is empty"
        return e.msg
    where = f"found '{found}' at character {lead + at + 1}"
    if found == "=":
        left = re.search(r"(\w+)\s*\Z", normalised[:at])
        right = re.match(r"\s*(\w+)", normalised[at + 1:])
        column, value = left[1] if left else "", right[1] if right else "1"
        if column in BOOLEAN_COLUMNS or column in MACROS:
            instead = f"not {column}" if value in ("0", "false") else column
            return (f"{where}: '=' is not how a flag is tested; write the flag alone:"
                    f" '{instead}' instead of '{column} = {value}'")
        if column in INTEGER_COLUMNS:
            return f"{where}: compare with '==' (or >=, >, <=, <, !=): '{column} == {value}'"
        return f"{where}: '=' is no operator here (a comparison is written '==' or '>=')"
    if found in _OTHER_OPERATORS:
        return f"{where}: write '{_OTHER_OPERATORS[found]}' instead of '{found}'"
    if e.msg.startswith("'(' was never closed"):
        return f"{where}: '(' is never closed"
    return f"{where} ({e.msg.split('.')[0]})"  # without Python's own advice (":=")


def _is_true(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "true") or (
        isinstance(node, ast.Constant) and node.value is True
    )


class _Compiler:
    """Walks the AST: whitelists node types, emits SQL, collects the positive columns."""

    def __init__(self, where: str, text: str, columns: Columns = PROFILE_COLUMNS) -> None:
        self.where, self.text, self.columns = where, text, columns
        self.flags: list[tuple[str, str]] = []  # (column, SQL true when it helped)
        self.names: list[str] = []  # every column named
        self.codes: list[tuple[str, str]] = []  # (category column, code compared with)

    def fail(self, what: str) -> RulesError:
        return RulesError(f"{self.where}: {what} in condition {self.text!r}")

    def sql(self, node: ast.expr, negated: bool = False) -> str:
        if isinstance(node, ast.BoolOp):
            op = " and " if isinstance(node.op, ast.And) else " or "
            return "(" + op.join(self.sql(v, negated) for v in node.values) + ")"
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return f"(not {self.sql(node.operand, not negated)})"
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return "true" if node.value else "false"
        if isinstance(node, ast.Name):
            name = node.id
            if name in ("true", "false"):
                return name
            cols = self.columns
            if name in MACROS:
                self.names.append(name)
                return self.sql(ast.parse(MACROS[name], mode="eval").body, negated)
            if name in cols.booleans:
                self.names.append(name)
                if not negated:
                    self.flags.append((name, _ident(name)))
                return _ident(name)
            if name in cols.integers:
                raise self.fail(f"integer column '{name}' must be compared (e.g. {name} >= 3)")
            if name in cols.categories:
                raise self.fail(f"column '{name}' must be compared with a code"
                                f" (e.g. {name} == \"{(cols.categories[name] or ('code',))[0]}\")")
            raise self.fail(f"unknown column '{name}'")
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1:
                raise self.fail("chained comparison")
            left, (op,), (right,) = node.left, node.ops, node.comparators
            if not isinstance(left, ast.Name):
                raise self.fail("a comparison must have a column on its left")
            if left.id in self.columns.categories:
                return self.category(left.id, op, right, negated)
            if left.id not in self.columns.integers:
                known = left.id in self.columns.booleans or left.id in MACROS
                raise self.fail(
                    f"column '{left.id}' is not an integer column: a flag is tested by its"
                    f" name alone ('{left.id}', or 'not {left.id}')"
                    if known
                    else f"unknown column '{left.id}'"
                )
            if (
                not isinstance(right, ast.Constant)
                or isinstance(right.value, bool)
                or not isinstance(right.value, int)
            ):
                raise self.fail(f"'{left.id}' must be compared with a whole number")
            if type(op) not in _COMPARISONS:
                raise self.fail("unsupported comparison operator")
            # A missing value never satisfies a comparison (two-valued logic, as in the flags).
            sql = f"coalesce({_ident(left.id)} {_COMPARISONS[type(op)]} {right.value}, false)"
            self.names.append(left.id)
            if not negated:
                self.flags.append((left.id, sql))
            return sql
        raise self.fail(f"'{ast.unparse(node)}' is not allowed")

    def category(self, column: str, op: ast.cmpop, right: ast.expr, negated: bool) -> str:
        """`course_class == "long_continuous"`: a category compared with one of its codes."""
        allowed = self.columns.categories[column]
        if not isinstance(right, ast.Constant) or not isinstance(right.value, str):
            raise self.fail(f"'{column}' must be compared with a quoted code"
                            f" (e.g. {column} == \"{(allowed or ('code',))[0]}\")")
        code = right.value
        if not _VALUE.match(code) or (allowed is not None and code not in allowed):
            known = f" (known: {', '.join(allowed)})" if allowed is not None else ""
            raise self.fail(f"unknown code {code!r} for '{column}'{known}")
        if type(op) not in (ast.Eq, ast.NotEq):
            raise self.fail(f"'{column}' is compared with == or !=, not ordered")
        self.names.append(column)
        self.codes.append((column, code))
        sql = f"coalesce({_ident(column)} {_COMPARISONS[type(op)]} '{code}', false)"
        if not negated:
            self.flags.append((column, sql))
        return sql


def _ident(name: str) -> str:
    return f'"{name}"'


def _literal(code: str) -> str:
    assert _CODE.match(code)  # validated on load; no quote can reach the SQL
    return f"'{code}'"


def _case(whens: list[tuple[str, str]]) -> str:
    body = "\n    ".join(f"when {cond} then {value}" for cond, value in whens)
    return f"case\n    {body}\nend"


def _true_flags_sql(flag_tests: tuple[tuple[str, str], ...]) -> str:
    if not flag_tests:
        return "[]::varchar[]"
    items = ", ".join(f"case when {test} then {_literal(name)} end" for name, test in flag_tests)
    return f"list_filter([{items}], lambda f: f is not null)"
