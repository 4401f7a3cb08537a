"""The one gate every assistant query passes, whatever engine wrote it.

The SQL is parsed with sqlglot and accepted only when it is a single SELECT (CTEs and set
operations allowed) that reads allow-listed `v_*` views through allow-listed functions and
casts. What runs is the statement regenerated from the checked tree, never the text the engine
sent, so a difference between sqlglot's reading of the text and PostgreSQL's cannot smuggle
anything past the check. Execution (`run.py`) adds the read-only role and transaction, a
statement timeout and a row limit: this module is the first of several walls, not the only one.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError

#: views an assistant query may read (schema, view): the services' read contracts
ALLOWED_VIEWS: frozenset[tuple[str, str]] = frozenset(
    {
        ("pricing", "v_cost_lines"),
        ("pricing", "v_daily_costs"),
        ("anomaly", "v_anomalies"),
        ("forecast", "v_forecasts"),
        ("forecast", "v_month_end"),
        ("forecast", "v_budgets"),
        ("forecast", "v_budget_alerts"),
        ("remediation", "v_actions"),
        ("remediation", "v_recommendations"),
        ("remediation", "v_savings"),
        ("remediation", "v_resource_daily_cost"),
    }
)

#: sqlglot function nodes allowed: aggregates, windows, arithmetic, text, dates and JSON access
ALLOWED_FUNCTIONS: frozenset[str] = frozenset(
    {
        "Sum", "Count", "Avg", "Min", "Max", "Stddev", "StddevSamp", "StddevPop", "Variance",
        "PercentileCont", "PercentileDisc", "Median", "Mode", "LogicalOr", "LogicalAnd",
        "ArrayAgg", "GroupConcat", "CountIf",
        "Lag", "Lead", "RowNumber", "Rank", "DenseRank", "NthValue", "FirstValue", "LastValue",
        "PercentRank", "CumeDist", "Ntile",
        "Coalesce", "Nullif", "Greatest", "Least", "If", "Case",
        "Round", "Abs", "Floor", "Ceil", "Sign", "Pow", "Ln", "Sqrt", "Div", "Mod", "SafeDivide",
        "Lower", "Upper", "Concat", "ConcatWs", "Length", "Substring", "Trim", "Replace",
        "SplitPart", "Left", "Right", "StrPosition",
        "TimestampTrunc", "DateTrunc", "Extract", "CurrentDate", "CurrentTimestamp",
        "Localtimestamp", "Date", "TimeToStr", "StrToDate", "DateAdd", "DateSub", "DateDiff",
        "ExplodingGenerateSeries", "GenerateSeries", "GenerateDateArray",
        "JSONExtractScalar", "JSONExtract", "JSONBExtractScalar", "JSONBExtract",
        "JSONBContainsTopKey", "JSONBContains", "ArrayContainsAll",
        "Cast", "TryCast",
    }
)  # fmt: skip

#: functions sqlglot does not model (parsed as Anonymous), by their PostgreSQL names
ALLOWED_ANONYMOUS: frozenset[str] = frozenset(
    {
        "jsonb_each_text",
        "jsonb_object_keys",
        "make_date",
        "date_part",
        "age",
        "jsonb_typeof",
        "to_char",
    }
)

#: types a cast may name; reg* casts (catalog look-ups) and everything else are refused
ALLOWED_CASTS: frozenset[str] = frozenset(
    {
        "TEXT", "VARCHAR", "CHAR", "DECIMAL", "INT", "BIGINT", "SMALLINT", "DOUBLE", "FLOAT",
        "DATE", "TIMESTAMP", "TIMESTAMPTZ", "INTERVAL", "BOOLEAN", "JSONB", "JSON",
    }
)  # fmt: skip

#: statement kinds that must never appear anywhere in the tree (data-modifying CTEs included)
FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name)
    for name in (
        "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "AlterTable",
        "Command", "Copy", "Into", "Lock", "Set", "Transaction", "Commit", "Rollback",
        "Grant", "Revoke", "TruncateTable", "Analyze", "Use", "Pragma", "Describe",
        "LoadData", "Placeholder", "Parameter", "SessionParameter", "Comprehension",
    )
    if hasattr(exp, name)
)  # fmt: skip

MAX_SQL_CHARS = 20_000
#: operators sqlglot also models as functions (AND, OR, comparisons): they read nothing
_OPERATORS = (exp.Anonymous, exp.Connector, exp.Binary, exp.Unary)


class UnsafeQuery(ValueError):
    """The SQL breaks a rule; the message names the rule (shown to the asker)."""


@dataclass(frozen=True)
class CheckedQuery:
    """A statement that passed every rule: `sql` is the regenerated text that runs."""

    sql: str
    views: tuple[str, ...]


def check(sql: str) -> CheckedQuery:
    """Parse and check `sql`; returns the statement to run or raises `UnsafeQuery`."""
    if not isinstance(sql, str) or not sql.strip():
        raise UnsafeQuery("empty query")
    if len(sql) > MAX_SQL_CHARS:
        raise UnsafeQuery(f"query longer than {MAX_SQL_CHARS} characters")
    if "\x00" in sql:
        raise UnsafeQuery("NUL byte in query")
    _no_comments(sql)
    try:
        statements = [s for s in sqlglot.parse(sql, read="postgres") if s is not None]
    except (ParseError, TokenError) as exc:
        raise UnsafeQuery(f"not valid SQL: {str(exc).splitlines()[0][:200]}") from None
    if len(statements) != 1:
        raise UnsafeQuery(f"exactly one statement allowed, got {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, exp.Select | exp.Union | exp.Intersect | exp.Except):
        raise UnsafeQuery(f"only SELECT is allowed, got {tree.key.upper()}")
    views = _walk(tree)
    if not views:
        raise UnsafeQuery("the query reads no allowed view")
    return CheckedQuery(tree.sql(dialect="postgres"), tuple(sorted(views)))


def _no_comments(sql: str) -> None:
    try:
        tokens = Dialect.get_or_raise("postgres").tokenize(sql)
    except (TokenError, ParseError):
        raise UnsafeQuery("not valid SQL: cannot tokenize") from None
    if any(t.comments for t in tokens):
        raise UnsafeQuery("comments are not allowed")


def _walk(tree: exp.Expression) -> set[str]:
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    views: set[str] = set()
    for node in tree.walk():
        if node.comments:
            raise UnsafeQuery("comments are not allowed")
        if isinstance(node, FORBIDDEN_NODES):
            raise UnsafeQuery(f"{node.key.upper()} is not allowed")
        if isinstance(node, exp.With) and node.args.get("recursive"):
            raise UnsafeQuery("recursive queries are not allowed")
        if isinstance(node, exp.Table):
            views |= _table(node, ctes)
        elif isinstance(node, exp.Anonymous):
            name = node.name.lower()
            if name not in ALLOWED_ANONYMOUS:
                raise UnsafeQuery(f"function {name} is not allowed")
        elif isinstance(node, exp.Func) and not isinstance(node, _OPERATORS):
            kind = type(node).__name__
            if kind not in ALLOWED_FUNCTIONS:
                raise UnsafeQuery(f"function {node.sql_name().lower()} is not allowed")
        if isinstance(node, exp.Cast | exp.TryCast):
            to = node.args.get("to")
            target = to.this if isinstance(to, exp.DataType) else None
            name = target.name if isinstance(target, exp.DataType.Type) else ""
            if name not in ALLOWED_CASTS:
                raise UnsafeQuery(f"cast to {to.sql('postgres') if to else '?'} is not allowed")
        if isinstance(node, exp.Column) and node.table and node.args.get("db"):
            raise UnsafeQuery("columns may not be qualified with a schema")
    return views


def _table(node: exp.Table, ctes: set[str]) -> set[str]:
    if isinstance(node.this, exp.Func):
        return set()  # a table function: its name is checked as a function
    name, schema = node.name.lower(), node.db.lower()
    if node.catalog:
        raise UnsafeQuery(f"{node.sql('postgres')}: database-qualified names are not allowed")
    if not schema:
        if name in ctes:
            return set()
        raise UnsafeQuery(f"{name}: name the view with its schema (e.g. pricing.v_cost_lines)")
    if (schema, name) not in ALLOWED_VIEWS:
        raise UnsafeQuery(f"{schema}.{name} is not an allowed view")
    return {f"{schema}.{name}"}
