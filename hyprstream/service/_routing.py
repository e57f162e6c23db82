"""Which store can answer a query: the hot cache or the backend (spec/cache.md, CACHE-5..CACHE-8).

A query goes to the hot cache when every table it reads is there and, if it reads ``metrics``,
the hot cache holds every sample it could need: either nothing was ever evicted or left out,
or its ``WHERE`` clause bounds ``timestamp`` from below at or after the instant from which the
hot cache is complete. Otherwise it goes to the backend, translated to the backend's dialect.

The analysis is syntactic (sqlglot) and conservative: a bound it cannot work out counts as no
bound. Parses are cached by query text, so a prepared statement is analysed once.

Pure: sqlglot only; ``now`` is an argument.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import sqlglot
from sqlglot import exp

from hyprstream.backend._series import BUCKET_ORIGIN_US
from hyprstream.errors import InvalidQuery
from hyprstream.model import INSTANT_COLUMNS

__all__ = [
    "Aggregate",
    "GroupedLookup",
    "QueryAnalysis",
    "SeriesLookup",
    "analyse",
    "forbidden_functions",
    "grouped_lookup",
    "series_lookup",
    "to_backend_sql",
]

_UNITS_US = {
    "microsecond": 1,
    "millisecond": 1_000,
    "second": 1_000_000,
    "minute": 60_000_000,
    "hour": 3_600_000_000,
    "day": 86_400_000_000,
    "week": 7 * 86_400_000_000,
}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: Casts that keep an instant as it is (microsecond timestamps, with or without time zone:
#: the hot cache's session time zone is UTC).
_INSTANT_TYPES = frozenset(
    {
        exp.DataType.Type.TIMESTAMP,
        exp.DataType.Type.TIMESTAMPNTZ,
        exp.DataType.Type.TIMESTAMPTZ,
        exp.DataType.Type.TIMESTAMPLTZ,
    }
)
#: Timestamp texts read as DuckDB reads them (anything else is left to DuckDB).
_ISO_INSTANT = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?"
)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_AMOUNT = re.compile(r"[+-]?\d+(?:\.\d+)?")


@dataclass(frozen=True, slots=True)
class QueryAnalysis:
    tables: frozenset[str]  # lower-case names of the tables read (CTEs excluded)
    metrics_reads: int  # how many times ``metrics`` is read
    bound: exp.Expression | None  # the lower bound on metrics.timestamp, if one was found

    def lower_bound(self, now_us: int) -> int | None:
        """The instant the query's ``timestamp >= ...`` bound evaluates to at ``now``."""
        return None if self.bound is None else _evaluate(self.bound, now_us)


@functools.lru_cache(maxsize=4096)
def _parsed(sql: str) -> exp.Expression:
    """sqlglot's tree of ``sql`` (DuckDB dialect), parsed once for every reader below; none
    of them changes it (``transform`` copies). Raises ``sqlglot.errors.ParseError``."""
    return cast(exp.Expression, sqlglot.parse_one(sql, read="duckdb"))


@functools.lru_cache(maxsize=4096)
def analyse(sql: str) -> QueryAnalysis:
    try:
        tree = _parsed(sql)
    except sqlglot.errors.ParseError as exc:
        raise InvalidQuery(f"cannot parse the query: {exc}") from None
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    names = [t.name.lower() for t in tree.find_all(exp.Table) if t.name]
    tables = frozenset(n for n in names if n not in ctes)
    reads = names.count("metrics")
    bound = _bound(tree) if reads == 1 else None
    return QueryAnalysis(tables=tables, metrics_reads=reads, bound=bound)


def _is_timestamp(node: exp.Expression) -> bool:
    return isinstance(node, exp.Column) and node.name.lower() == "timestamp"


def _bound(tree: exp.Expression) -> exp.Expression | None:
    """A lower bound on ``timestamp`` among the top-level AND-ed conditions of the SELECT
    that reads ``metrics`` directly (``FROM metrics``: a bound outside a subquery over
    ``metrics`` filters that subquery's rows, not the samples it reads)."""
    for select in tree.find_all(exp.Select):
        from_ = select.args.get("from") or select.args.get("from_")
        if from_ is None:
            continue
        source = from_.this
        if not (isinstance(source, exp.Table) and source.name.lower() == "metrics"):
            continue
        if select.args.get("joins"):
            return None
        where = select.args.get("where")
        if where is None:
            return None
        for condition in _conjuncts(where.this):
            found = _lower_bound(condition, _is_timestamp)
            if found is not None:
                return found[0]
            if isinstance(condition, exp.Between) and _is_timestamp(condition.this):
                low: exp.Expression = condition.args["low"]
                return low
        return None
    return None


def _lower_bound(
    condition: exp.Expression, is_time: Callable[[exp.Expression], bool]
) -> tuple[exp.Expression, bool] | None:
    """``(bound, strict)`` if ``condition`` bounds a time column from below: ``time >= b``,
    ``time > b`` (strict), ``b <= time`` or ``b < time`` (strict); else None."""
    if isinstance(condition, exp.GTE | exp.GT) and is_time(condition.this):
        return condition.expression, isinstance(condition, exp.GT)
    if isinstance(condition, exp.LTE | exp.LT) and is_time(condition.expression):
        return condition.this, isinstance(condition, exp.LT)
    return None


def _conjuncts(node: exp.Expression) -> list[exp.Expression]:
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    if isinstance(node, exp.Paren):
        return _conjuncts(node.this)
    return [node]


def _evaluate(node: exp.Expression, now_us: int) -> int | None:
    """Microseconds for NOW()/CURRENT_TIMESTAMP, timestamp literals, and +/- INTERVAL."""
    if isinstance(node, exp.Paren):
        return _evaluate(node.this, now_us)
    if isinstance(node, exp.CurrentTimestamp) or (
        isinstance(node, exp.Anonymous) and node.name.lower() in ("now", "current_timestamp")
    ):
        return now_us
    if isinstance(node, exp.Cast | exp.TryCast):
        to = node.args.get("to")
        kind = to.this if isinstance(to, exp.DataType) else None
        if kind in _INSTANT_TYPES:
            return _evaluate(node.this, now_us)
        literal = node.this
        if (  # DATE 'yyyy-mm-dd' is its midnight; a cast of NOW() to DATE truncates
            kind == exp.DataType.Type.DATE
            and isinstance(literal, exp.Literal)
            and literal.is_string
            and _ISO_DATE.fullmatch(literal.this)
        ):
            return _evaluate(literal, now_us)
        return None  # DATE, TIMESTAMP_S/_MS/_NS, ... change the instant: DuckDB says how
    if isinstance(node, exp.Literal) and node.is_string:
        if not _ISO_INSTANT.fullmatch(node.this):
            return None
        try:
            value = dt.datetime.fromisoformat(node.this)
        except ValueError:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return (value - _EPOCH) // dt.timedelta(microseconds=1)
    if isinstance(node, exp.Sub | exp.Add):
        base = _evaluate(node.this, now_us)
        delta = _interval(node.expression)
        if base is None or delta is None:
            return None
        return base - delta if isinstance(node, exp.Sub) else base + delta
    return None


def _interval(node: exp.Expression) -> int | None:
    if not isinstance(node, exp.Interval):
        return None
    text = node.this.name if isinstance(node.this, exp.Literal) else None
    unit = node.args.get("unit")
    parts = (text or "").split()
    if unit is None and len(parts) == 2:
        text, unit_name = parts
    elif unit is not None and text is not None:
        unit_name = unit.name
    else:
        return None
    if text is None or not _AMOUNT.fullmatch(text.strip()):
        return None  # '1e1', 'nan', 'inf', ...: DuckDB says what they mean
    amount = float(text)
    per = _UNITS_US.get(unit_name.lower().rstrip("s"))
    return None if per is None else round(amount * per)  # '1.15 hours': no float residue


def _plain_table(source: exp.Expression | None) -> exp.Table | None:
    """``source`` if it is a table named by one identifier, maybe with an alias, and with
    nothing else (no schema, sample, column aliases, ...)."""
    if not isinstance(source, exp.Table) or not isinstance(source.this, exp.Identifier):
        return None
    if any(value for key, value in source.args.items() if key not in ("this", "alias")):
        return None
    alias = source.args.get("alias")
    if alias is not None and alias.args.get("columns"):
        return None  # FROM metrics AS m(a, b, ...) renames the columns
    return source


def _column(node: exp.Expression, names: frozenset[str]) -> str | None:
    """The lower-case name of the column ``node`` is, if it is a plain column of the table
    read (unqualified, or qualified by one of ``names``: the table or its alias)."""
    if not isinstance(node, exp.Column) or not isinstance(node.this, exp.Identifier):
        return None
    if node.table and node.table.lower() not in names:
        return None
    if node.args.get("db") or node.args.get("catalog"):
        return None
    return str(node.name).lower()


def _metric_equality(condition: exp.EQ, names: frozenset[str]) -> tuple[str | None] | None:
    """``(metric_id,)`` if ``condition`` is ``metric_id = 'text'`` (either way round), or
    ``(None,)`` for ``metric_id = ?``; None if it is anything else."""
    sides = [condition.this, condition.expression]
    if _column(sides[0], names) != "metric_id":
        sides.reverse()
    if _column(sides[0], names) != "metric_id":
        return None
    value = sides[1]
    if isinstance(value, exp.Literal) and value.is_string:
        return (str(value.this),)
    if isinstance(value, exp.Placeholder) and value.this is None:  # ``?``, not ``$1``
        return (None,)
    return None


def _limit(tree: exp.Expression) -> tuple[bool, int | None]:
    """``(understood, n)`` for the query's ``LIMIT n`` (``n`` None without one)."""
    limit = tree.args.get("limit")
    if limit is None:
        return True, None
    if any(value for key, value in limit.args.items() if key != "expression"):
        return False, None  # LIMIT n PERCENT, WITH TIES, ...
    amount = limit.expression
    if not (isinstance(amount, exp.Literal) and not amount.is_string):
        return False, None
    try:
        count = int(amount.this)
    except ValueError:
        return False, None
    return count >= 0, count


@dataclass(frozen=True, slots=True)
class SeriesLookup:
    """A query the series index answers (CACHE-11): one metric's rows of ``metrics`` or of a
    window view ``metrics_<size>``, some columns, maybe bounded below in time, ordered by
    time and limited::

        SELECT <columns | *> FROM metrics [[AS] m]
        WHERE metric_id = <'text' | ?> [AND timestamp >= <bound>]
        [ORDER BY timestamp [ASC | DESC]] [LIMIT n]

        SELECT <columns | *> FROM metrics_<size> [[AS] w]
        WHERE metric_id = <'text' | ?> [AND window_start >= <bound>]
        [ORDER BY window_start [ASC | DESC]] [LIMIT n]

    ``<bound>`` is anything :meth:`lower_bound` can evaluate: NOW()/CURRENT_TIMESTAMP or a
    timestamp literal, plus or minus intervals.
    """

    table: str  # lower-case: "metrics" or "metrics_<size>"
    columns: tuple[str, ...] | None  # lower-case column names in select order; None: ``*``
    metric_id: str | None  # the literal, or None when it is the (only) parameter
    descending: bool
    limit: int | None
    bound: exp.Expression | None = None  # the time column >= (or >) this
    strict: bool = False  # the bound is ``>``

    def lower_bound(self, now_us: int) -> int | None:
        """The earliest time the query admits, at ``now``; None if it cannot tell."""
        if self.bound is None:
            return None
        value = _evaluate(self.bound, now_us)
        return None if value is None else value + (1 if self.strict else 0)


_SELECT_ARGS = frozenset({"expressions", "from", "from_", "where", "order", "limit"})


@functools.lru_cache(maxsize=4096)
def series_lookup(sql: str) -> SeriesLookup | None:
    """The lookup ``sql`` is, if it is one the series index answers as DuckDB would."""
    try:
        tree = _parsed(sql)
    except sqlglot.errors.ParseError:
        return None
    if not isinstance(tree, exp.Select):
        return None
    if any(value for key, value in tree.args.items() if key not in _SELECT_ARGS):
        return None  # DISTINCT, GROUP BY, joins, WITH, OFFSET, QUALIFY, ...
    from_ = tree.args.get("from") or tree.args.get("from_")
    source = _plain_table(from_.this if from_ is not None else None)
    if source is None:
        return None
    table = source.name.lower()
    if table == "metrics":
        time_column = "timestamp"
    elif table.startswith("metrics_"):
        time_column = "window_start"
    else:
        return None
    names = frozenset({table, source.alias_or_name.lower()})

    column = functools.partial(_column, names=names)

    columns: list[str] = []
    aliases: dict[str, str] = {}  # select alias -> the column it names
    star = False
    for item in tree.expressions:
        if isinstance(item, exp.Star):
            star = True
            continue
        name = column(item.this if isinstance(item, exp.Alias) else item)
        if name is None:
            return None
        # DuckDB lets WHERE and ORDER BY name select aliases: keep those names unambiguous.
        alias = item.alias_or_name.lower()
        if alias in ("metric_id", time_column) and alias != name:
            return None
        if isinstance(item, exp.Alias):
            if alias in aliases:
                return None  # which one ORDER BY names is DuckDB's to say
            aliases[alias] = name
        columns.append(name)
    if star and (columns or len(tree.expressions) != 1):
        return None
    where = tree.args.get("where")
    conditions = _conjuncts(where.this) if where is not None else []
    metric_id: str | None = None
    found_metric = False
    bound: exp.Expression | None = None
    strict = False
    for condition in conditions:
        if isinstance(condition, exp.EQ) and not found_metric:
            equality = _metric_equality(condition, names)
            if equality is None:
                return None
            metric_id, found_metric = equality[0], True
        elif bound is None:
            found = _lower_bound(condition, lambda node: column(node) == time_column)
            if found is None:
                return None
            bound, strict = found
            if any(isinstance(n, exp.Column | exp.Placeholder) for n in bound.walk()):
                return None
        else:
            return None
    if not found_metric:
        return None
    descending = False
    order = tree.args.get("order")
    if order is not None:
        if len(order.expressions) != 1:
            return None
        key = order.expressions[0]
        if not isinstance(key, exp.Ordered):
            return None
        name = column(key.this)
        if name is not None and not key.this.table:  # ORDER BY may name a select alias
            name = aliases.get(name, name)
        if name != time_column:
            return None
        descending = bool(key.args.get("desc"))
    understood, limit = _limit(tree)
    if not understood:
        return None
    return SeriesLookup(
        table=table,
        columns=None if star else tuple(columns),
        metric_id=metric_id,
        descending=descending,
        limit=limit,
        bound=bound,
        strict=strict,
    )


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One aggregate of a grouped lookup: ``function`` of ``column`` (None: ``COUNT(*)``)."""

    function: str  # "count", "sum", "avg", "min" or "max"
    column: str | None  # lower-case


#: Columns a grouped lookup aggregates, by the functions it may apply to them: the numeric
#: core columns take all five, ``timestamp`` only those whose result is a timestamp or count.
_AGGREGABLE = {
    "value": frozenset({"count", "sum", "avg", "min", "max"}),
    "value_running_window_sum": frozenset({"count", "sum", "avg", "min", "max"}),
    "value_running_window_avg": frozenset({"count", "sum", "avg", "min", "max"}),
    "value_running_window_count": frozenset({"count", "sum", "avg", "min", "max"}),
    "timestamp": frozenset({"count", "min", "max"}),
}
_AGGREGATES: dict[type[exp.Expression], str] = {
    exp.Count: "count",
    exp.Sum: "sum",
    exp.Avg: "avg",
    exp.Min: "min",
    exp.Max: "max",
}


@dataclass(frozen=True, slots=True)
class GroupedLookup:
    """A per-metric aggregate of recent samples that the series index answers (CACHE-11)::

        SELECT <metric_id | aggregate> [[AS] name], ... FROM metrics [[AS] m]
        [WHERE timestamp >= <bound>]
        GROUP BY metric_id | 1 | ALL
        [ORDER BY <output column | position | metric_id> [ASC | DESC] [NULLS FIRST | LAST],
         ...] [LIMIT n]

    or, over one metric's samples, by time bucket (a dashboard over raw samples)::

        SELECT <time_bucket(INTERVAL '<n unit>', timestamp) | aggregate> [[AS] name], ...
        FROM metrics [[AS] m] WHERE metric_id = <'text' | ?> [AND timestamp >= <bound>]
        GROUP BY <the bucket: alias | position | expression> | ALL
        [ORDER BY ...] [LIMIT n]

    An aggregate is ``COUNT(*)``, or ``COUNT``, ``SUM``, ``AVG``, ``MIN`` or ``MAX`` of
    ``value`` or a ``value_running_window_*`` column (``COUNT``, ``MIN`` and ``MAX`` also of
    ``timestamp``). ``<bound>`` is as for :class:`SeriesLookup`.
    """

    #: In select order; None is the group key column (metric_id, or the time bucket).
    items: tuple[Aggregate | None, ...]
    #: (item position or None for the group key, descending, NULLs first)
    order: tuple[tuple[int | None, bool, bool], ...]
    limit: int | None
    bound: exp.Expression | None = None
    strict: bool = False
    #: Grouped by ``time_bucket(<this many microseconds>, timestamp)`` over one metric's
    #: samples (``metric_id``, or the one parameter when None); None: grouped by metric.
    bucket_us: int | None = None
    metric_id: str | None = None

    def lower_bound(self, now_us: int) -> int | None:
        """The earliest time the query admits, at ``now``; None if it cannot tell."""
        if self.bound is None:
            return None
        value = _evaluate(self.bound, now_us)
        return None if value is None else value + (1 if self.strict else 0)


_GROUPED_ARGS = frozenset({"expressions", "from", "from_", "where", "group", "order", "limit"})


@functools.lru_cache(maxsize=4096)
def grouped_lookup(sql: str) -> GroupedLookup | None:
    """The grouped lookup ``sql`` is, if it is one the series index answers as DuckDB
    would (see :class:`GroupedLookup`)."""
    try:
        tree = _parsed(sql)
    except sqlglot.errors.ParseError:
        return None
    if not isinstance(tree, exp.Select):
        return None
    if any(value for key, value in tree.args.items() if key not in _GROUPED_ARGS):
        return None  # DISTINCT, HAVING, joins, WITH, OFFSET, QUALIFY, ...
    from_ = tree.args.get("from") or tree.args.get("from_")
    source = _plain_table(from_.this if from_ is not None else None)
    if source is None or source.name.lower() != "metrics":
        return None
    names = frozenset({"metrics", source.alias_or_name.lower()})

    column = functools.partial(_column, names=names)

    def aggregate(node: exp.Expression) -> Aggregate | None:
        function = _AGGREGATES.get(type(node))
        if function is None:
            return None
        if any(v for k, v in node.args.items() if k not in ("this", "big_int")):
            return None  # MIN(x, n), ...
        if function == "count" and isinstance(node.this, exp.Star):
            return Aggregate("count", None)
        name = column(node.this)
        if name is None or function not in _AGGREGABLE.get(name, ()):
            return None
        return Aggregate(function, name)

    def bucket(node: exp.Expression) -> int | None:
        """The width of ``time_bucket(INTERVAL ..., timestamp)`` (DuckDB's default origin)."""
        if not isinstance(node, exp.DateBin) or column(node.expression) != "timestamp":
            return None
        if any(v for k, v in node.args.items() if k not in ("this", "expression")):
            return None  # an origin, offset or time zone
        width = _interval(node.this)
        return width if width is not None and width > 0 else None

    items: list[Aggregate | None] = []
    aliases: dict[str, int] = {}
    keys: set[str | int] = set()  # "metric_id", or bucket widths
    for item in tree.expressions:
        node = item.this if isinstance(item, exp.Alias) else item
        found = aggregate(node)
        if found is None:
            key = "metric_id" if column(node) == "metric_id" else bucket(node)
            if key is None:
                return None
            keys.add(key)
        alias = item.alias_or_name.lower()
        # DuckDB lets ORDER BY name select aliases: keep column names unambiguous.
        if (alias in _AGGREGABLE or alias == "metric_id") and (
            found is not None or alias != "metric_id" or "metric_id" not in keys
        ):
            return None
        if alias and alias in aliases:
            return None  # DuckDB's ORDER BY takes the last of equal names: leave it to DuckDB
        aliases[alias] = len(items)
        items.append(found)
    if not any(items) or len(keys) > 1:
        return None
    width = next((k for k in keys if isinstance(k, int)), None)

    def is_key(node: exp.Expression) -> bool:
        """Whether ``node`` names the group key (not by alias or position)."""
        if width is None:
            return column(node) == "metric_id"
        return bucket(node) == width

    group = tree.args.get("group")
    if group is None or any(v for k, v in group.args.items() if k not in ("expressions", "all")):
        return None
    if group.args.get("all"):
        if group.expressions or None not in items:
            return None  # without the key selected, GROUP BY ALL makes one group
    elif len(group.expressions) != 1:
        return None
    else:
        key_node = group.expressions[0]
        if isinstance(key_node, exp.Literal) and not key_node.is_string:
            position = _position(key_node, len(items))
            if position is None or items[position] is not None:
                return None
        elif width is not None and isinstance(key_node, exp.Column) and not key_node.table:
            position = aliases.get(str(key_node.name).lower())
            if position is None or items[position] is not None:
                return None  # (a column of that name would win: DuckDB's shape says so)
        elif not is_key(key_node):
            return None

    bound: exp.Expression | None = None
    strict = False
    metric_id: str | None = None
    found_metric = False
    where = tree.args.get("where")
    for condition in _conjuncts(where.this) if where is not None else []:
        if isinstance(condition, exp.EQ) and width is not None and not found_metric:
            equality = _metric_equality(condition, names)
            if equality is None:
                return None
            metric_id, found_metric = equality[0], True
            continue
        if bound is not None:
            return None
        found_bound = _lower_bound(condition, lambda node: column(node) == "timestamp")
        if found_bound is None:
            return None
        bound, strict = found_bound
        if any(isinstance(n, exp.Column | exp.Placeholder) for n in bound.walk()):
            return None
    if width is not None and not found_metric:
        return None  # buckets of every metric together: DuckDB's

    order: list[tuple[int | None, bool, bool]] = []
    if tree.args.get("order") is not None:
        for key in tree.args["order"].expressions:
            if not isinstance(key, exp.Ordered):
                return None
            target = key.this
            where_to: int | None
            if isinstance(target, exp.Literal) and not target.is_string:
                where_to = _position(target, len(items))
                if where_to is None:
                    return None
            elif (
                isinstance(target, exp.Column)
                and not target.table
                and (str(target.name).lower() in aliases)
            ):
                where_to = aliases[str(target.name).lower()]
            elif is_key(target):
                where_to = None
            else:
                wanted = aggregate(target)
                if wanted is None or wanted not in items:
                    return None
                where_to = items.index(wanted)
            if where_to is not None and items[where_to] is None:
                where_to = None  # the group key
            # sqlglot fills in DuckDB's default (NULLS LAST) where the query says nothing.
            nulls_first = bool(key.args.get("nulls_first"))
            order.append((where_to, bool(key.args.get("desc")), nulls_first))

    understood, limit = _limit(tree)
    if not understood:
        return None
    return GroupedLookup(
        items=tuple(items),
        order=tuple(order),
        limit=limit,
        bound=bound,
        strict=strict,
        bucket_us=width,
        metric_id=metric_id,
    )


def _position(node: exp.Literal, count: int) -> int | None:
    """The 0-based select position a 1-based ``ORDER BY``/``GROUP BY`` number names."""
    try:
        position = int(node.this) - 1
    except ValueError:
        return None
    return position if 0 <= position < count else None


#: Server-side functions a client must not reach through the backend (files, other servers,
#: sessions, settings), whatever the backend role may do (FSQL-22).
_FORBIDDEN = re.compile(
    r"^(pg_read_file|pg_read_binary_file|pg_ls_\w+|pg_stat_file|lo_\w+|dblink\w*|"
    r"pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_rotate_logfile|pg_promote|"
    r"set_config|pg_sleep\w*|pg_file_\w+|query_to_xml\w*|read_\w+|glob|getenv)$",
    re.IGNORECASE,
)


def forbidden_functions(sql: str) -> list[str]:
    """Names of functions in ``sql`` that no client statement may call on the backend."""
    try:
        tree = _parsed(sql)
    except sqlglot.errors.ParseError:
        return []
    names = set()
    for node in tree.find_all(exp.Func):
        name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
        if _FORBIDDEN.match(name or ""):
            names.add(name.lower())
    for table in tree.find_all(exp.Table):  # table functions: FROM read_csv(...)
        if isinstance(table.this, exp.Anonymous) and _FORBIDDEN.match(table.this.name):
            names.add(table.this.name.lower())
    return sorted(names)


def to_backend_sql(sql: str, dialect: str, now_us: int | None = None) -> str:
    """``sql`` (DuckDB's dialect) in the backend's dialect, placeholders numbered ``$1, $2``
    for PostgreSQL (what its ADBC driver binds).

    SQLite has no instant type: hyprstream's instants are ISO text there (see
    :func:`sqlite_instant`). Instants compared with them (``NOW() - INTERVAL ...``, casts,
    and text literals compared with an instant column) become such text, evaluated at
    ``now_us``, so that comparing text compares instants. Other translations do not depend
    on the time and are remembered.
    """
    if dialect == "sqlite" and now_us is not None:
        return _translated(sql, dialect, now_us)
    return _translated_once(sql, dialect)


@functools.lru_cache(maxsize=4096)
def _translated_once(sql: str, dialect: str) -> str:
    return _translated(sql, dialect, None)


def _translated(sql: str, dialect: str, now_us: int | None) -> str:
    if dialect == "duckdb":
        return sql
    try:
        tree = _parsed(sql)
    except sqlglot.errors.ParseError as exc:
        raise InvalidQuery(f"cannot parse the query: {exc}") from None
    if dialect == "sqlite" and now_us is not None:  # first: it knows time_bucket is an instant
        tree = tree.transform(functools.partial(_sqlite_instants, now_us=now_us))
    if dialect == "sqlite":
        tree = tree.transform(_sqlite_time_bucket)
    if dialect == "postgres":
        counter = iter(range(1, 1_000_000))
        tree = tree.transform(
            lambda node: exp.var(f"${next(counter)}") if isinstance(node, exp.Placeholder) else node
        )
        # DuckDB's time_bucket aligns to 2000-01-03; PostgreSQL's date_bin needs an origin.
        tree = tree.transform(_date_bin_origin)
    try:
        return tree.sql(dialect=dialect)
    except sqlglot.errors.UnsupportedError as exc:
        raise InvalidQuery(f"the query cannot be translated for the backend: {exc}") from None


_COMPARISONS = (exp.GT, exp.GTE, exp.LT, exp.LTE, exp.EQ, exp.NEQ)


def sqlite_instant(micros: int) -> str:
    """An instant as a SQLite backend holds it: ISO text in UTC, to the microsecond (what
    its ADBC driver writes for ``timestamp[us, tz=UTC]``); text order is time order."""
    moment = _EPOCH + dt.timedelta(microseconds=micros)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds")


@functools.lru_cache(maxsize=4096)
def instant_outputs(sql: str, dialect: str) -> frozenset[str]:
    """Names of the result columns of ``sql`` that are instant columns of hyprstream's
    tables, bare or under MIN/MAX or time_bucket, whatever their alias, as a backend of
    ``dialect`` names them (for backends that return instants as text)."""
    try:
        tree = _parsed(sql)
    except sqlglot.errors.ParseError:
        return frozenset()
    if not isinstance(tree, exp.Select):
        return frozenset()
    names = set()
    for projection in tree.expressions:
        inner = projection.unalias()
        if isinstance(inner, exp.Min | exp.Max):
            inner = inner.this
        if isinstance(inner, exp.DateBin):
            inner = inner.expression
        if isinstance(inner, exp.Column) and inner.name.lower() in INSTANT_COLUMNS:
            unnamed = projection.unalias() is projection and not isinstance(projection, exp.Column)
            if not unnamed:
                names.add(projection.alias_or_name)
                continue
            sent = projection  # named by the text it is sent as
            if dialect == "sqlite":
                sent = projection.copy().transform(_sqlite_time_bucket)
            names.add(sent.sql(dialect=dialect))
    return frozenset(names)


def _sqlite_instants(node: exp.Expression, now_us: int) -> exp.Expression:
    if isinstance(node, _COMPARISONS):
        for key, other in (("this", node.expression), ("expression", node.this)):
            folded = _stored_instant(node.args[key], other, now_us)
            if folded is not None:
                node.set(key, folded)
    elif isinstance(node, exp.Between):
        for key in ("low", "high"):
            folded = _stored_instant(node.args[key], node.this, now_us)
            if folded is not None:
                node.set(key, folded)
    return node


def _stored_instant(
    node: exp.Expression, other: exp.Expression, now_us: int
) -> exp.Expression | None:
    """``node`` as SQLite instant text if it is an instant: a time expression, or a text
    literal compared with an instant column or a time_bucket (elsewhere text stays text)."""
    if isinstance(node, exp.Column):
        return None
    if isinstance(node, exp.Literal):
        compared_with_instant = isinstance(other, exp.DateBin) or (
            isinstance(other, exp.Column) and other.name.lower() in INSTANT_COLUMNS
        )
        if not (node.is_string and compared_with_instant):
            return None
    value = _evaluate(node, now_us)
    return None if value is None else exp.Literal.string(sqlite_instant(value))


#: DuckDB's origin of time_bucket (see ``BUCKET_ORIGIN_US``), in seconds since the epoch.
_BUCKET_ORIGIN_S = BUCKET_ORIGIN_US // 1_000_000


def _sqlite_time_bucket(node: exp.Expression) -> exp.Expression:
    """``time_bucket(width, instant)`` in SQLite, whose instants are ISO text: the start of
    the bucket, as that text, counted from DuckDB's origin (2000-01-03) in whole seconds.
    Widths of whole seconds only (not months or years), and no origin or offset argument."""
    if not isinstance(node, exp.DateBin):
        return node
    width_us = _interval(node.this)
    if node.args.get("origin") is not None or node.args.get("unit") is not None:
        raise InvalidQuery(
            "time_bucket with an origin, offset or time zone cannot be sent to a SQLite backend"
        )
    if width_us is None or width_us <= 0 or width_us % 1_000_000:
        raise InvalidQuery(
            "time_bucket on a SQLite backend needs a width of whole seconds, minutes, hours, "
            f"days or weeks, not {node.this.sql(dialect='duckdb')}"
        )
    width = width_us // 1_000_000
    instant = node.expression.sql(dialect="sqlite")
    seconds = f"(CAST(STRFTIME('%s', {instant}) AS INTEGER) - {_BUCKET_ORIGIN_S})"
    start = f"{_BUCKET_ORIGIN_S} + {seconds} - ((({seconds} % {width}) + {width}) % {width})"
    text = f"STRFTIME('%Y-%m-%dT%H:%M:%S', {start}, 'unixepoch') || '.000000'"
    return cast(exp.Expression, sqlglot.parse_one(text, read="sqlite"))


def _date_bin_origin(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.DateBin) and node.args.get("origin") is None:
        origin = exp.cast(
            exp.Literal.string("2000-01-03 00:00:00+00"), exp.DataType.build("TIMESTAMPTZ")
        )
        return exp.Anonymous(this="DATE_BIN", expressions=[node.this, node.expression, origin])
    return node
