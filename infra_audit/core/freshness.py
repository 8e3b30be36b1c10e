"""Freshness: is the newest row of a table (and of each symbol in it) recent enough?

A dead feed leaves a full, healthy-looking table whose newest row is days old; row counts never
notice. Every query here answers from an index (``max()`` over a btree's leading column, and a
skip scan over ``(symbol, ts)`` for the groups), so the check costs milliseconds on any table
size. A big table without the index it needs is refused with the ``CREATE INDEX`` that fixes it
rather than scanned. Ages are measured against the server's clock, never this machine's.

The settings: ``infra_freshness`` (``TABLE[.COLUMN]=AGE ...``, or ``=warn:AGE,error:AGE`` for two levels, as
dbt's ``warn_after``/``error_after``) and ``infra_freshness_group``. Use::

    rules = parse_rules(text)            # ValueError: a usage error, one line
    group = parse_group(group_text)      # None: the per-group check is off
    result = check(conn, rule, group, exact_limit, timeouts)   # ProbeError: cannot be judged (cause, fix)
    result.ok, result.problems, result.evidence                 # stale data is a result, not an error
    result.warnings                                             # past the warning age: passes, but said
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from datetime import timedelta

import psycopg
from psycopg import sql

from infra_audit.core import probe as db_probe
from infra_audit.core.errors import ProbeError
from infra_audit.core.probe import Timeouts
from infra_audit.core.text import counted

# Names that say "this is the row's time" when a table has several time columns.
PREFERRED_COLUMNS = ("ts", "time", "timestamp", "datetime", "date")
TIME_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")
SHOWN_GROUPS = 20
# The skip scan stops after this many groups: a column with more values (an id?) is no group.
MAX_GROUPS = 10_000
# A table never analyzed has no row estimate; below this many bytes per allowed row it counts as small.
BYTES_PER_ROW_GUESS = 50
MAX_AGE = timedelta(days=36500)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_AGE = re.compile(r"([0-9]{1,9})([smhdw])")
_BARE = re.compile(r'[^\s."=]+')
_WORD_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))
_FORM = "TABLE[.COLUMN]=AGE or TABLE[.COLUMN]=warn:AGE,error:AGE with AGE like 90s, 15m, 6h, 3d or 2w"
_LEVELS = ("warn", "error")


@dataclass(frozen=True)
class FreshnessRule:
    """One ``TABLE[.COLUMN]=AGE`` item. ``names`` are unquoted: 1 (table), 2 (schema.table or
    table.column, told apart by the catalog) or 3 (schema.table.column). ``limit`` is the age past
    which the check fails; ``warn``, when the rule names one, the younger age past which it warns."""

    names: tuple[str, ...]
    limit: timedelta
    age_text: str
    warn: timedelta | None = None

    @property
    def text(self) -> str:
        return ".".join(quote_name(name) for name in self.names) + "=" + self.age_text


def quote_name(name: str) -> str:
    """``market_data`` stays bare; anything else (``Market Data``) is double-quoted as in SQL."""
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else '"' + name.replace('"', '""') + '"'


def parse_age(text: str) -> timedelta:
    """``90s``, ``15m``, ``6h``, ``3d``, ``2w`` -> timedelta; anything else is a ValueError."""
    match = _AGE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"'{text}' is not an age: write a whole number and a unit, like 90s, 15m, 6h, 3d or 2w")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if not 0 < seconds <= MAX_AGE.total_seconds():  # checked before timedelta(), which overflows first
        raise ValueError(f"'{text}' is out of range: an age must be above 0 and at most 100 years")
    return timedelta(seconds=seconds)


def parse_levels(text: str) -> tuple[timedelta, timedelta | None]:
    """``3d`` -> (3 days, None); ``warn:6h,error:3d`` -> (3 days, 6 hours): the error age, and the warning
    age if any. A ValueError says what is wrong."""
    if ":" not in text:
        return parse_age(text), None
    levels: dict[str, timedelta] = {}
    for part in text.split(","):
        level, _, age = part.partition(":")
        if level not in _LEVELS or level in levels:
            raise ValueError(f"'{text}' is not an age or warn:AGE,error:AGE: each level once, named warn or error")
        levels[level] = parse_age(age)
    if "error" not in levels:
        raise ValueError(f"'{text}' has no error age: name both, like warn:6h,error:3d")
    warn = levels.get("warn")
    if warn is not None and warn >= levels["error"]:
        raise ValueError(f"'{text}': the warning age must be below the error age")
    return levels["error"], warn


def parse_rules(text: str) -> tuple[FreshnessRule, ...]:
    """Parse the ``infra_freshness`` setting; a ValueError says what is wrong in one line."""
    rules: list[FreshnessRule] = []
    position = _skip_space(text, 0)
    while position < len(text):
        names, position = _names(text, position)
        if position >= len(text) or text[position] != "=":
            shown = ".".join(quote_name(name) for name in names)
            raise ValueError(f"infra_freshness: '{shown}' has no '=AGE'; the form is {_FORM}")
        end = position + 1
        while end < len(text) and not text[end].isspace():
            end += 1
        age_text = text[position + 1 : end]
        try:
            limit, warn = parse_levels(age_text)
        except ValueError as exc:
            raise ValueError(f"infra_freshness: {exc} (the form is {_FORM})") from None
        rule = FreshnessRule(names, limit, age_text, warn)
        if any(_table_part(other) == _table_part(rule) for other in rules):
            raise ValueError(f"infra_freshness: '{'.'.join(names)}' is listed twice; keep one {_FORM} per table")
        rules.append(rule)
        position = _skip_space(text, end)
    return tuple(rules)


def parse_group(text: str) -> str | None:
    """The ``infra_freshness_group`` column, or None when the setting is empty (per-group check off)."""
    if not text.strip():
        return None
    position = _skip_space(text, 0)
    try:
        names, position = _names(text, position)
    except ValueError:
        names = ()
    if len(names) != 1 or _skip_space(text, position) != len(text):
        raise ValueError(
            f"infra_freshness_group: '{text.strip()}' is not one column name: write e.g. symbol, or leave it empty"
        )
    return names[0]


def _table_part(rule: FreshnessRule) -> tuple[str, ...]:
    return rule.names[:2] if len(rule.names) == 3 else rule.names


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _names(text: str, position: int) -> tuple[tuple[str, ...], int]:
    """Read ``name(.name)*`` where a name is bare or ``"double quoted"`` (``""`` is a quote)."""
    names: list[str] = []
    while True:
        if position < len(text) and text[position] == '"':
            end = position + 1
            name = ""
            while True:
                close = text.find('"', end)
                if close < 0:
                    raise ValueError(f"infra_freshness: unclosed quote in '{text[position:]}'; the form is {_FORM}")
                name += text[end:close]
                if text.startswith('""', close):
                    name += '"'
                    end = close + 2
                    continue
                position = close + 1
                break
        else:
            match = _BARE.match(text, position)
            if not match:
                raise ValueError(
                    f"infra_freshness: expected a name at '{text[position : position + 20]}'; the form is {_FORM}"
                )
            name, position = match.group(0).lower(), match.end()  # bare names fold to lower case, as in SQL
        if not name:
            raise ValueError(f"infra_freshness: empty name in '{text.strip()}'; the form is {_FORM}")
        names.append(name)
        if position < len(text) and text[position] == ".":
            position += 1
            continue
        if len(names) > 3:
            raise ValueError(f"infra_freshness: '{'.'.join(names)}' has too many parts; the form is {_FORM}")
        return tuple(names), position


# --- the database side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """A leaf partition of a partitioned table: walked over its own group index, or (small) read in one pass."""

    table: str  # schema-qualified and quoted
    walked: bool  # big: walked over its index; small: read in one pass


@dataclass(frozen=True)
class Plan:
    """How one rule is answered: which column, and whether indexes answer it (else a small table is scanned)."""

    rule: FreshnessRule
    table: str  # schema-qualified, as the catalog quotes it: public.market_data, public."Market Data"
    column: str
    column_type: str  # one of TIME_TYPES
    indexed: bool
    group: tuple[str, ...]  # () when the per-group check is off; (symbol,) or (symbol, timeframe)
    group_indexed: bool
    row_security: bool = False  # the session sees only the rows the table's policies allow it
    # Every group key is of a type of PostgreSQL's own (text, varchar, integer...): the walk then names
    # pg_catalog's operators, as no "=" of another schema on the search path may stand in for them
    # (pg_catalog has none for exactly varchar). A key of an extension's type (citext) keeps its own.
    pinned: bool = True
    # Why this is the time column when the rule does not name it, for the evidence ("it is the table's only one")
    column_reason: str | None = None
    # A partitioned table's leaf partitions: each gives its groups' newest rows (a walk across the whole
    # tree would probe every partition's index for every group)
    leaves: tuple[Leaf, ...] = ()
    name: str = ""  # the table as infra_freshness names it: monitoring's labels stay those of the configuration

    @property
    def label(self) -> str:
        return f"{self.table}.{quote_name(self.column)}"

    @property
    def named_label(self) -> str:
        """``market_data.ts``: the label as the configuration spells the table (``label`` names its schema)."""
        return f"{self.name or self.table}.{quote_name(self.column)}"

    @property
    def newest_query(self) -> sql.Composed:
        """The table's newest value up to a day ahead, its age, and the newest of all when that is
        further ahead (shown, else NULL): a row dated years ahead must not keep a dead feed "fresh".
        Each is the first entry of a backward scan of a btree leading with the column (``ORDER BY ...
        DESC LIMIT 1``: ``max()`` is planned twice, as an aggregate and as a scan, which costs time over
        hundreds of partitions)."""
        column, table, bound = sql.Identifier(self.column), sql.SQL(self.table), self._bound

        def first(where: sql.Composable) -> sql.Composed:
            return sql.SQL(
                "(SELECT {column} FROM {table} WHERE {column} IS NOT NULL{where} ORDER BY {column} DESC LIMIT 1)"
            ).format(column=column, table=table, where=where)

        return sql.SQL(  # MATERIALIZED: each use of newest below would otherwise plan its scan again
            "WITH m AS MATERIALIZED (SELECT {newest} AS newest, {latest} AS latest)"
            " SELECT {shown}, {age}, CASE WHEN latest > {bound} THEN {latest_shown} END FROM m"
        ).format(
            shown=self._shown,
            age=self._age,
            bound=bound,
            latest_shown=self._shown_of("latest"),
            newest=first(sql.SQL(" AND {} <= {}").format(column, bound)),
            latest=first(sql.SQL("")),
        )

    @property
    def group_query(self) -> sql.Composed:
        """(groups, stale groups, the SHOWN_GROUPS oldest as JSON) in one row; takes the limit in seconds twice.

        Every group's newest row comes from the table's (group..., column) index when it has one: a skip
        scan, one probe per group and one for its newest row, never a scan; a small table without it is
        read in one pass, and so is a partitioned table whose partitions are all small (each is read
        once; a walk across the tree would probe every partition's index for every group).
        """
        table = sql.SQL(self.table)
        rows = self._walk_rows(table) if self.group_indexed else self._read_rows(table)
        return sql.SQL(
            "{aged} SELECT count(*), count(*) FILTER (WHERE age > %s),"
            " (SELECT json_agg(json_build_array(s.key, s.shown, s.age)) FROM"
            " (SELECT * FROM aged WHERE age > %s ORDER BY age DESC, key LIMIT {shown_groups}) AS s)"
            " FROM aged"
        ).format(aged=self._aged(rows), shown_groups=sql.Literal(SHOWN_GROUPS))

    @property
    def leaf_queries(self) -> tuple[sql.Composed, ...]:
        """Per partition with rows, each group's (key, newest shown, age): for a partitioned table with a big
        partition, walked over its own index while the small ones are read (one query each: a single
        query over hundreds of walks would take the planner longer than the deadline)."""
        return tuple(
            sql.SQL("{aged} SELECT key, shown, age FROM aged").format(
                aged=self._aged(
                    self._walk_rows(sql.SQL(leaf.table)) if leaf.walked else self._read_rows(sql.SQL(leaf.table))
                )
            )
            for leaf in self.leaves
        )

    def _aged(self, rows: sql.Composable) -> sql.Composed:
        """``WITH newest, aged``: each group's key as text (NULL stays NULL), its newest shown, its age."""
        keys = [sql.Identifier(name) for name in self.group]
        key_text = sql.SQL("ARRAY[{}]").format(sql.SQL(", ").join(sql.SQL("g.{}::text").format(key) for key in keys))
        return sql.SQL(
            "WITH newest AS MATERIALIZED (SELECT {key_text} AS key, g.infra_newest AS newest FROM {rows} AS g),"
            " aged AS (SELECT key, {shown} AS shown, {age} AS age FROM newest)"
        ).format(key_text=key_text, rows=rows, shown=self._shown, age=self._age)

    def _read_rows(self, table: sql.Composable) -> sql.Composed:
        """(group..., infra_newest) of a small relation in one pass; NULL keys are a group like any other. The
        bound is a sub-select, worked out once rather than for every row."""
        listed = sql.SQL(", ").join(sql.SQL("src.{}").format(sql.Identifier(name)) for name in self.group)
        column = sql.Identifier(self.column)
        return sql.SQL(
            "(SELECT {listed}, max(src.{column}) FILTER (WHERE src.{column} <= (SELECT {bound})) AS infra_newest"
            " FROM {table} AS src GROUP BY {listed})"
        ).format(listed=listed, column=column, bound=self._bound, table=table)

    def _walk_rows(self, table: sql.Composable) -> sql.Composed:
        """(group..., infra_newest) by a recursive skip scan over the (group..., column) index.

        The walk visits the keys in the index's order (NULLs last) and counts a NULL key as a value, so no
        row is left out of every group. The next key after the walked one is the least of a few candidates,
        each one index probe: the first row whose key is greater (a row comparison over each run of the
        walked key's non-NULL columns, its earlier columns equal or ``IS NULL`` as the walked key's), and
        the first whose column is NULL where the walked key's is not. Each candidate runs only for keys
        with its pattern of NULLs (a condition on the walked key alone is a one-time filter); the first
        row whose leading column is NULL is looked up once. The walk stops after MAX_GROUPS + 1 keys.
        """
        names = [sql.Identifier(name) for name in self.group]
        src = [sql.SQL("src.{}").format(name) for name in names]
        walked = [sql.SQL("walk.{}").format(name) for name in names]
        equal, after = (
            (sql.SQL("OPERATOR(pg_catalog.=)"), sql.SQL("OPERATOR(pg_catalog.>)"))
            if self.pinned
            else (sql.SQL("="), sql.SQL(">"))
        )
        listed = sql.SQL(", ").join(src)
        joined = sql.SQL(" AND ").join

        def pattern(nulls: tuple[bool, ...]) -> list[sql.Composable]:
            """The walked key has exactly these NULLs."""
            return [
                sql.SQL("{} IS {}NULL").format(walk, sql.SQL("" if null else "NOT "))
                for walk, null in zip(walked, nulls)
            ]

        def same(nulls: tuple[bool, ...]) -> list[sql.Composable]:
            """The row's first columns are the walked key's (NULL where it is NULL)."""
            return [
                sql.SQL("{} IS NULL").format(s) if null else sql.SQL("{} {} {}").format(s, equal, w)
                for s, w, null in zip(src, walked, nulls)
            ]

        def probe(where: list[sql.Composable]) -> sql.Composed:
            return sql.SQL("(SELECT {listed} FROM {table} AS src WHERE {where} ORDER BY {listed} LIMIT 1)").format(
                listed=listed, table=table, where=joined(where)
            )

        candidates = []
        for nulls in itertools.product((False, True), repeat=len(names)):
            gate = pattern(nulls)
            for position, null in enumerate(nulls):
                if null:
                    continue
                if position == 0 or nulls[position - 1]:  # a run of non-NULL columns starts: one row comparison
                    end = nulls.index(True, position) if True in nulls[position:] else len(nulls)
                    greater = sql.SQL("({}) {} ({})").format(
                        sql.SQL(", ").join(src[position:end]), after, sql.SQL(", ").join(walked[position:end])
                    )
                    candidates.append(probe([*gate, *same(nulls[:position]), greater]))
                if position == 0:
                    candidates.append(sql.SQL("(SELECT * FROM first_null WHERE {})").format(joined(gate)))
                else:
                    is_null = sql.SQL("{} IS NULL").format(src[position])
                    candidates.append(probe([*gate, *same(nulls[:position]), is_null]))
        column = sql.SQL("src.{}").format(sql.Identifier(self.column))
        backwards = sql.SQL(", ").join(sql.SQL("{} DESC").format(term) for term in [*src, column])
        newest = [
            sql.SQL(
                "(SELECT {column} AS t FROM {table} AS src WHERE {where} AND {column} <= {bound}"
                " ORDER BY {backwards} LIMIT 1)"
            ).format(
                column=column,
                table=table,
                bound=self._bound,
                backwards=backwards,
                where=joined([*pattern(nulls), *same(nulls)]),
            )
            for nulls in itertools.product((False, True), repeat=len(names))
        ]
        candidate = sql.SQL(", ").join(sql.SQL("candidate.{}").format(name) for name in names)
        return sql.SQL(
            "(WITH RECURSIVE first_null AS MATERIALIZED ({first_null}), walk AS ("
            " (SELECT {listed}, 1 AS infra_depth FROM {table} AS src ORDER BY {listed} LIMIT 1)"
            " UNION ALL"
            " SELECT {stepped}, walk.infra_depth + 1 FROM walk CROSS JOIN LATERAL"
            " (SELECT * FROM ({candidates}) AS candidate ORDER BY {candidate} LIMIT 1) AS step"
            " WHERE walk.infra_depth <= {max_groups})"
            " SELECT {walked}, (SELECT max(n.t) FROM ({newest}) AS n) AS infra_newest FROM walk)"
        ).format(
            first_null=probe([sql.SQL("{} IS NULL").format(src[0])]),
            listed=listed,
            table=table,
            stepped=sql.SQL(", ").join(sql.SQL("step.{}").format(n) for n in names),
            candidates=sql.SQL(" UNION ALL ").join(candidates),
            candidate=candidate,
            max_groups=sql.Literal(MAX_GROUPS),
            walked=sql.SQL(", ").join(walked),
            newest=sql.SQL(" UNION ALL ").join(newest),
        )

    @property
    def _bound(self) -> sql.SQL:
        """A day after the server's now(), in the column's type: rows dated later are not counted as the
        newest (a time zone's offset or a clock's skew is hours, not a day)."""
        return sql.SQL(
            {
                "timestamp with time zone": "now() + interval '1 day'",
                "timestamp without time zone": "(now() AT TIME ZONE 'UTC') + interval '1 day'",
                "date": "(now() AT TIME ZONE 'UTC')::date + 1",
            }[self.column_type]
        )

    @property
    def _shown(self) -> sql.SQL:
        return self._shown_of("newest")

    def _shown_of(self, name: str) -> sql.SQL:
        """Column ``name`` as text in UTC; a ``timestamp`` without time zone is read as UTC."""
        if self.column_type == "date":
            return sql.SQL(f"CASE WHEN isfinite({name}) THEN to_char({name}, 'YYYY-MM-DD') ELSE {name}::text END")
        utc = f"{name} AT TIME ZONE 'UTC'" if self.column_type == "timestamp with time zone" else name
        return sql.SQL(
            f"CASE WHEN isfinite({name}) THEN to_char({utc}, 'YYYY-MM-DD HH24:MI:SS') || ' UTC' ELSE {name}::text END"
        )

    @property
    def _age(self) -> sql.SQL:
        """Seconds from ``newest`` to the server's now() (negative: in the future); a date counts whole days."""
        age = {
            "timestamp with time zone": "extract(epoch FROM now() - newest)",
            "timestamp without time zone": "extract(epoch FROM (now() AT TIME ZONE 'UTC') - newest)",
            "date": "((now() AT TIME ZONE 'UTC')::date - newest) * 86400",
        }[self.column_type]
        return sql.SQL(  # no row there (or none dated up to a day ahead) is no sign of life: infinitely old
            f"CASE WHEN newest IS NULL THEN 'Infinity'::float8 WHEN isfinite(newest) THEN ({age})::float8"
            " WHEN newest < now() THEN 'Infinity'::float8 ELSE '-Infinity'::float8 END"
        )


@dataclass(frozen=True)
class StaleGroup:
    """A group (a symbol, or a symbol and timeframe) whose newest row is older than a limit."""

    key: tuple[str | None, ...]  # None: the rows whose key column is NULL, a group of their own
    newest: str
    age: float
    names: tuple[str, ...] = ()  # the key's columns, to name a NULL

    @property
    def name(self) -> str:
        """``FX0005 M15``, ``ZZ0009 timeframe=NULL``."""
        return " ".join(
            f"{name}=NULL" if part is None else part for part, name in zip(self.key, self.names or self.key)
        )

    @property
    def shown(self) -> str:
        return f"{self.name} ({age_words(self.age)})"


@dataclass(frozen=True)
class Freshness:
    """What one rule found. ``ok`` is the verdict; ``problems`` and ``evidence`` are one line each."""

    plan: Plan
    newest: str | None  # the newest up to a day ahead
    age: float | None  # seconds; negative when the newest row is in the future
    groups: int
    stale_groups: tuple[StaleGroup, ...]
    stale_group_count: int
    ahead: str | None = None  # the newest of all, when it is dated more than a day ahead
    late_groups: tuple[StaleGroup, ...] = ()  # past the warning age, within the limit (the oldest few)
    late_group_count: int = 0

    @property
    def limit(self) -> timedelta:
        return self.plan.rule.limit

    @property
    def warnings(self) -> tuple[str, ...]:
        """What is past the rule's warning age but within its limit: the check passes, and says so."""
        warn = self.plan.rule.warn
        if warn is None:
            return ()
        found = []
        fails = f"it fails at {age_words(self.limit.total_seconds())}; infra_freshness = {self.plan.rule.text}"
        if self.age is not None and warn.total_seconds() < self.age <= self.limit.total_seconds():
            found.append(
                f"{self.plan.label}: the newest row ({self.newest}) is {age_words(self.age)} old, past the warning "
                f"age of {age_words(warn.total_seconds())} ({fails})"
            )
        if self.late_group_count:
            found.append(self._groups_line(self.late_groups, self.late_group_count, warn) + f" ({fails})")
        return tuple(found)

    @property
    def problems(self) -> tuple[str, ...]:
        found = []
        limit = age_words(self.limit.total_seconds())
        if self.plan.row_security:  # what it sees may be fresh; what it cannot see is unknown
            found.append(
                f"{self.plan.table}: could not check every row: row-level security may hide some from the "
                "audit's user: audit as a role with BYPASSRLS"
            )
        if self.newest is None and self.ahead is not None:
            found.append(
                f"{self.plan.label}: every row is dated more than a day ahead (the newest: {self.ahead}), so "
                "nothing shows the data is current: check the feed's clock and time zone"
            )
        elif self.newest is None:
            found.append(
                f"{self.plan.label}: no row to date (the table is empty, or every {self.plan.column} is "
                "NULL), so nothing shows the data is current: is the feed running?"
            )
        elif self.age is not None and self.age > self.limit.total_seconds():
            found.append(
                f"{self.plan.label}: the newest row ({self.newest}) is {age_words(self.age)} old, "
                f"older than the limit of {limit} (infra_freshness = {self.plan.rule.text}): is the feed running?"
            )
        if self.stale_group_count:
            found.append(self._groups_line(self.stale_groups, self.stale_group_count, self.limit))
        return tuple(found)

    def _groups_line(self, shown: tuple[StaleGroup, ...], count: int, age: timedelta) -> str:
        """``market_data: 3 of 150 symbol/timeframe pairs have no row newer than 3 days: FX0005 H1 (5 days)...``"""
        more = count - len(shown)
        names = ", ".join(group.shown for group in shown) + (f" and {more} more" if more else "")
        if not shown:  # the oldest few of those past the warning age were all past the error age too
            names = f"none named here (the {SHOWN_GROUPS} oldest groups are past the error age)"
        return (
            f"{self.plan.table}: {count} of {self.groups} {self._group_word} have no row newer than "
            f"{age_words(age.total_seconds())}: {names}"
        )

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def evidence(self) -> str:
        """``market_data.ts: newest row 2026-11-29 14:00:00 UTC, 12 minutes old (limit 3 days); 50 symbols...``"""
        if self.newest is None or self.age is None:  # the cause says the rest
            return f"{self.plan.label}: no newest row" + (
                f" up to a day ahead (the newest: {self.ahead})" if self.ahead else ""
            )
        naive = " (no time zone: read as UTC)" if self.plan.column_type == "timestamp without time zone" else ""
        when = f"{age_words(self.age)} old" if self.age >= 0 else age_words(self.age)
        warn, limit = self.plan.rule.warn, age_words(self.limit.total_seconds())
        levels = f"limit {limit}" if warn is None else f"warning at {age_words(warn.total_seconds())}, error at {limit}"
        text = f"{self.plan.label}: newest row {self.newest}{naive}, {when} ({levels})"
        if self.plan.group:
            fresh = self.groups - self.stale_group_count - self.late_group_count
            within = "the limit" if warn is None else "the warning age"
            text += f"; {fresh} of {self.groups} {self._group_word} within {within}"
        walked = sum(leaf.walked for leaf in self.plan.leaves)
        if self.plan.leaves:
            text += (
                f"; {counted(len(self.plan.leaves), 'partition')} with rows: {walked} walked over their index, "
                f"{len(self.plan.leaves) - walked} small ones read whole"
            )
        elif not (self.plan.indexed and (self.plan.group_indexed or not self.plan.group)):
            text += "; small table without an index, scanned"
        if self.plan.column_reason:
            text += f"; {quote_name(self.plan.column)} is the time column: {self.plan.column_reason}"
        if self.ahead is not None:
            text += (
                f"; rows dated more than a day ahead (the newest: {self.ahead}) are not counted: check the "
                "feed's clock and time zone"
            )
        return text

    @property
    def _group_word(self) -> str:
        return "/".join(self.plan.group) + " pairs" if len(self.plan.group) > 1 else self.plan.group[0] + "s"


def age_words(seconds: float) -> str:
    """``5 days 3 hours``, ``12 minutes``, ``45 seconds``: the largest unit and the next; negative ages are
    ``... in the future``."""
    if math.isinf(seconds):  # an 'infinity' timestamp
        return "in the future (infinity)" if seconds < 0 else "infinitely old"
    if seconds < 0:
        return f"{age_words(-seconds)} in the future"
    left = int(seconds)
    index = next(i for i, (_, size) in enumerate(_WORD_UNITS) if left >= size or size == 1)
    name, size = _WORD_UNITS[index]
    parts = [counted(left // size, name)]
    if index + 1 < len(_WORD_UNITS):  # the next unit only: "10 days", never "10 days 5 seconds"
        next_name, next_size = _WORD_UNITS[index + 1]
        if left % size >= next_size:
            parts.append(counted(left % size // next_size, next_name))
    return " ".join(parts)


def check(
    conn: psycopg.Connection, rule: FreshnessRule, group: str | None, exact_limit: int, timeouts: Timeouts
) -> Freshness:
    """Resolve ``rule`` against the catalog, then measure it: the one call the audit and health check need."""
    return measure(conn, resolve(conn, rule, group, exact_limit, timeouts), timeouts)


def measure(conn: psycopg.Connection, plan: Plan, timeouts: Timeouts) -> Freshness:
    """Run the plan's queries, each under the session's statement_timeout and the client's own deadline."""
    newest, age, ahead = db_probe.fetch_one(conn, plan.newest_query, plan.table, timeouts)
    age = None if newest is None else age  # no newest row has no age (and JSON has no Infinity)
    groups, stale_count, stale, late_count, late = 0, 0, (), 0, ()
    if plan.group:
        limit = plan.rule.limit.total_seconds()
        groups, stale_count, stale = _groups_past(conn, plan, limit, timeouts)
        if plan.rule.warn is not None:  # a second walk: exact counts for each level, the oldest of each shown
            _, past_warning, oldest = _groups_past(conn, plan, plan.rule.warn.total_seconds(), timeouts)
            late_count = max(0, past_warning - stale_count)
            late = tuple(group for group in oldest if group.age <= limit)
    return Freshness(plan, newest, age, groups, stale, stale_count, ahead, late, late_count)


def _groups_past(
    conn: psycopg.Connection, plan: Plan, seconds: float, timeouts: Timeouts
) -> tuple[int, int, tuple[StaleGroup, ...]]:
    """(groups, how many have no row newer than ``seconds``, the oldest SHOWN_GROUPS of those)."""
    if any(leaf.walked for leaf in plan.leaves):
        groups, count, rows = _by_partition(conn, plan, seconds, timeouts)
    else:
        groups, count, rows = db_probe.fetch_one(conn, plan.group_query, plan.table, timeouts, (seconds, seconds))
    if groups > MAX_GROUPS:
        raise ProbeError(
            "too_many_groups",
            f"{plan.table} has more than {MAX_GROUPS:,} distinct {'/'.join(plan.group)} values: per-group "
            "freshness is for a column like symbol; set infra_freshness_group to one, or leave it empty",
        )
    return groups, count, tuple(StaleGroup(tuple(key), shown, float(age), plan.group) for key, shown, age in rows or ())


def _by_partition(conn: psycopg.Connection, plan: Plan, limit: float, timeouts: Timeouts) -> tuple[int, int, list]:
    """(groups, stale groups, the SHOWN_GROUPS oldest) from each partition's groups: a group is as fresh as
    the newest row any partition holds for it."""
    newest: dict[tuple, tuple[str, float]] = {}
    for query in plan.leaf_queries:
        for key, shown, age in db_probe.fetch_all(conn, query, plan.table, timeouts):
            if tuple(key) not in newest or age < newest[tuple(key)][1]:
                newest[tuple(key)] = (shown, age)
    stale = sorted(
        ((key, shown, age) for key, (shown, age) in newest.items() if age > limit),
        key=lambda row: (-row[2], [(part is None, part or "") for part in row[0]]),
    )
    return len(newest), len(stale), stale[:SHOWN_GROUPS]


_CATALOG = f"""
SELECT {db_probe.RELATION_COLUMNS}, {db_probe.PRIVILEGE_COLUMNS}, current_user,
       (SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, NULL), a.attnum,
                                         (SELECT typnamespace = 'pg_catalog'::regnamespace FROM pg_type
                                           WHERE oid = a.atttypid)) ORDER BY a.attnum)
          FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
       (SELECT json_agg(to_json(i.indkey::int2[]))
          FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
         WHERE i.indrelid = c.oid AND am.amname = 'btree' AND i.indisvalid AND i.indpred IS NULL)
  FROM pg_class c WHERE c.oid = to_regclass(%s)::oid
"""


def resolve(
    conn: psycopg.Connection, rule: FreshnessRule, group: str | None, exact_limit: int, timeouts: Timeouts
) -> Plan:
    """Find the table, its time column and the indexes that answer the check, or raise ProbeError saying
    what to write (``infra_freshness = market_data.ts=3d``) or which index to create."""
    table_text, column = _split_names(conn, rule, timeouts)
    shown = ".".join(map(quote_name, rule.names[: len(rule.names) - (column is not None)]))  # for messages
    found = db_probe.fetch_one(conn, _CATALOG, shown, timeouts, (table_text,))
    if found is None:
        raise ProbeError(
            "missing",
            f"infra_freshness = {rule.text} names a table that does not exist in database '{conn.info.dbname}': "
            'fix infra_freshness (quote mixed-case names: "Market Data"=3d)',
        )
    *relation_row, readable, qualified, user, columns, indexes = found
    kind = relation_row[2]
    table = qualified or relation_row[0]  # the evidence names the schema it read, whatever the search path
    if not readable:
        raise ProbeError("permission", f"permission denied on table {table}: GRANT SELECT ON {qualified} TO {user}")
    if kind == "v":  # no size, no estimate, no index of its own: it could hide a scan of a big table
        raise ProbeError(
            "view",
            f"infra_freshness = {rule.text} names a view, {table}: whether an index finds its newest rows cannot be "
            "told, and a view over a big table would be read whole: name the table it reads",
        )
    if kind == "f":  # its rows live on another server, with no index this one can use
        raise ProbeError(
            "foreign",
            f"infra_freshness = {rule.text} names a foreign table, {table}: finding its newest rows would fetch "
            "them from the other server: watch the table on that server instead",
        )
    relation = db_probe.Relation.read(conn, tuple(relation_row), shown, timeouts)
    big, size = _bigness(relation.estimate, relation.size, exact_limit)
    types = {name: kind for name, kind, _, _ in columns}
    numbers = {name: number for name, _, number, _ in columns}
    builtin = {name for name, _, _, in_catalog in columns if in_catalog}
    indexes = indexes or ()
    leading = {index[0] for index in indexes}
    reason = None
    if column is None:
        column, reason = _find_column(rule, table, types, numbers, indexes, group)
    if column not in types:
        raise ProbeError("missing_column", f"table {table} has no column '{column}': fix infra_freshness = {rule.text}")
    if types[column] not in TIME_TYPES:
        raise ProbeError(
            "bad_column",
            f"{table}.{quote_name(column)} is {types[column]}, not a timestamp, timestamptz or date: "
            f"fix infra_freshness = {rule.text}",
        )
    indexed = numbers[column] in leading
    if big and not indexed:
        raise _needs_index(table, size, (column,), "its newest row")
    partitioned = kind == "p"
    keys, group_indexed = _group_keys(table, group, column, numbers, indexes, big and not partitioned, size)
    leaves: tuple[Leaf, ...] = ()
    if partitioned and keys:  # each partition answers for its own rows; the small ones are read in one pass
        leaves = _leaves(conn, relation_row[1], (*keys, column), exact_limit, shown, timeouts)
        group_indexed = False  # no walk across the tree: it would probe every partition for every group
    pinned = all(key in builtin for key in keys)
    return Plan(
        rule,
        table,
        column,
        types[column],
        indexed,
        keys,
        group_indexed,
        row_security=relation.row_security,
        pinned=pinned,
        column_reason=reason,
        leaves=leaves,
        name=shown,
    )


def _bigness(estimate: int, size_bytes: int, exact_limit: int) -> tuple[bool, str]:
    """Whether a relation is too big to read whole, and its size in words for the CREATE INDEX advice.
    Never analyzed (a fresh restore, a new partition): judged by its size on disk, not taken for empty."""
    if estimate >= 0:
        return estimate > exact_limit, f"~{counted(estimate, 'row')}"
    return size_bytes >= exact_limit * BYTES_PER_ROW_GUESS, f"never analyzed, {size_bytes // 1024:,} kB on disk"


# A partitioned table's leaf partitions that hold data (an empty one, made ahead of time, has no pages),
# with their size and whether a btree index leads with the given columns, by name (a partition's column
# numbers may differ from its parent's).
_LEAVES = """
SELECT (SELECT quote_ident(nspname) FROM pg_namespace WHERE oid = c.relnamespace) || '.' || quote_ident(c.relname),
       c.relkind, c.reltuples::bigint, pg_relation_size(c.oid), has_table_privilege(c.oid, 'SELECT'), current_user,
       EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
                WHERE i.indrelid = c.oid AND am.amname = 'btree' AND i.indisvalid AND i.indpred IS NULL
                  AND ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
                              JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                             ORDER BY k.n LIMIT cardinality(%s::text[])) = %s::text[])
  FROM pg_partition_tree(%s::oid) AS t JOIN pg_class c ON c.oid = t.relid
 WHERE t.isleaf AND (c.relkind <> 'r' OR pg_relation_size(c.oid) > 0)
 ORDER BY 1
"""


def _leaves(
    conn: psycopg.Connection, oid: int, columns: tuple[str, ...], exact_limit: int, shown: str, timeouts: Timeouts
) -> tuple[Leaf, ...]:
    """The partitions that hold rows: a big one must have the (group..., column) index, never read whole."""
    found = []
    for name, kind, estimate, size_bytes, readable, user, indexed in db_probe.fetch_all(
        conn, _LEAVES, shown, timeouts, (list(columns), list(columns), oid)
    ):
        if kind != "r":  # a foreign partition: its rows would be fetched from another server
            raise ProbeError(
                "foreign",
                f"{shown}: partition {name} is not a table of this server ({kind}): watch "
                "its rows where they live, or detach it",
            )
        big, size = _bigness(estimate, size_bytes, exact_limit)
        if big and not indexed:
            raise _needs_index(name, size, columns, f"each {'/'.join(columns[:-1])}'s newest row")
        if big and not readable:  # a big partition is walked over its own index, so read as itself
            raise ProbeError(
                "permission",
                f"permission denied on partition {name} of {shown} (a big one is read "
                f"over its own index): GRANT SELECT ON {name} TO {user}",
            )
        found.append(Leaf(name, big))
    return tuple(found)


def _split_names(conn: psycopg.Connection, rule: FreshnessRule, timeouts: Timeouts) -> tuple[str, str | None]:
    """(table for to_regclass, column or None). ``a.b`` is schema.table when that table exists, else table.column."""
    names = ['"' + name.replace('"', '""') + '"' for name in rule.names]  # already case-folded: quote all
    if len(names) == 1:
        return names[0], None
    if len(names) == 3:
        return ".".join(names[:2]), rule.names[2]
    qualified = ".".join(names)
    shown = ".".join(map(quote_name, rule.names))
    (exists,) = db_probe.fetch_one(conn, "SELECT to_regclass(%s) IS NOT NULL", shown, timeouts, (qualified,))
    return (qualified, None) if exists else (names[0], rule.names[1])


def _find_column(
    rule: FreshnessRule, table: str, types: dict, numbers: dict, indexes: list, group: str | None
) -> tuple[str, str | None]:
    """The time column not named in the rule, and why it is the one where there was a choice, by a rule a
    user can predict: the
    table's only time column; else the one its grouping index (``(symbol, ts)``, ``(symbol, timeframe,
    ts)``) ends with; else the one named like PREFERRED_COLUMNS; else it asks. An index that merely leads
    with a column (``(updated_at)``, touched by every job) never makes it the row's time."""
    times = [name for name, kind in types.items() if kind in TIME_TYPES]
    if not times:
        raise ProbeError(
            "no_time_column",
            f"table {table} has no timestamp, timestamptz or date column to tell how current it is: "
            f"add one, or take {rule.text} out of infra_freshness",
        )
    if len(times) == 1:  # no choice to explain
        return times[0], None
    names = {number: name for name, number in numbers.items()}
    grouped = {
        names[index[-1]]: index
        for index in indexes
        if group in numbers and len(index) >= 2 and index[0] == numbers[group] and names.get(index[-1]) in times
    }
    if len(grouped) == 1:
        ((column, index),) = grouped.items()
        listed = ", ".join(quote_name(names[number]) if number in names else "(expression)" for number in index)
        return column, f"the index on ({listed}) ends with it"
    pool = sorted(grouped) or times
    preferred = [name for name in PREFERRED_COLUMNS if name in pool]
    if preferred:
        unindexed = f" (no index on {group} ends with a time column)" if group else ""
        return preferred[0], f"it is named {preferred[0]}{unindexed}"
    listed = ", ".join(pool)
    why = f"indexes on {group} end with each of them" if grouped else f"none is named {'/'.join(PREFERRED_COLUMNS)}"
    raise ProbeError(
        "ambiguous_column",
        f"table {table} has several time columns ({listed}) and {why}: say which one tells when a row was "
        f"written, e.g. infra_freshness = {_with_column(rule, pool[0])}",
    )


def _with_column(rule: FreshnessRule, column: str) -> str:
    """The rule with ``column`` added: asked only of a rule that names no column (``table`` or ``schema.table``)."""
    return ".".join(quote_name(name) for name in (*rule.names, column)) + "=" + rule.age_text


def _group_keys(
    table: str, group: str | None, column: str, numbers: dict, indexes: list, big: bool, size: str
) -> tuple[tuple[str, ...], bool]:
    """The group columns an index leads with, ((symbol, timeframe) over (symbol)), and whether one does."""
    if group is None:
        return (), True
    if group not in numbers:
        raise ProbeError(
            "no_group_column",
            f"table {table} has no column '{group}' to check freshness per group by: set infra_freshness_group "
            "to one of its columns, or leave it empty to turn the per-group check off",
        )
    if group == column:
        raise ProbeError(
            "no_group_column",
            f"infra_freshness_group names {table}'s time column '{column}' itself: every value of it is its own "
            "group; set it to a column like symbol, or leave it empty to turn the per-group check off",
        )
    names = {number: name for name, number in numbers.items()}
    g, ts = numbers[group], numbers[column]
    two = [index[1] for index in indexes if len(index) >= 3 and index[0] == g and index[1] > 0 and index[2] == ts]
    if two:
        return (group, names[two[0]]), True
    if any(len(index) >= 2 and index[0] == g and index[1] == ts for index in indexes):
        return (group,), True
    if big:
        raise _needs_index(table, size, (group, column), f"each {group}'s newest row")
    return (group,), False


def _needs_index(table: str, size: str, columns: tuple[str, ...], what: str) -> ProbeError:
    listed = ", ".join(quote_name(name) for name in columns)
    return ProbeError(
        "needs_index",
        f"table {table} ({size}) has no index to find {what} without reading the whole table: "
        f"CREATE INDEX ON {table} ({listed})",
    )
