"""The health check as monitoring systems read it: a Nagios status line with performance data, and OpenMetrics.

Both render the one ``Health`` record the probe returns, as the text report and ``--json`` do, so
every format says the same thing; the command scrubs each output of the known secrets before it
leaves. The Nagios line follows the Monitoring Plugins guidelines (``SERVICE STATE - text | perfdata``,
exit 0/1/2/3); the metrics follow the OpenMetrics text format, which Prometheus and node_exporter's
textfile collector both read (there ``# UNIT`` and ``# EOF`` are comments).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from infra_audit.core.errors import COULD_NOT_LOOK
from infra_audit.core.health import Health
from infra_audit.core.text import printable

NAGIOS_OK, NAGIOS_WARNING, NAGIOS_CRITICAL, NAGIOS_UNKNOWN = 0, 1, 2, 3
NAGIOS_STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
SERVICE = "INFRA"
PREFIX = "infra_audit_"
UP_HELP = "1 when the database answered (connect and SELECT 1) within the connect deadline"
HEALTHY_HELP = (
    "1 when the health check passes: the database answered, every table holds rows, data within its error age"
)
ROWS_HELP = "rows in the table: an exact count, or the planner's estimate for a big table"
ESTIMATED_HELP = "1 when table_rows is the planner's estimate (or a floor), 0 when it is an exact count"
AGE_HELP = "age of the table's newest row by the server's clock (+Inf: no row to date)"
STALE_HELP = "groups past the warning age but within the error age (level warning), or past the error age (level error)"
GROUP_AGE_HELP = "age of a stale group's newest row (the oldest 20 groups of each level)"


# --- Nagios ---------------------------------------------------------------------------------------


def nagios_state(found: Health) -> int:
    """UNKNOWN for a setting it cannot use; CRITICAL for a database that did not answer or a finding
    (an empty table, stale data); UNKNOWN when all that went wrong is that it could not look (a lock,
    a deadline); WARNING past a warning age; else OK."""
    if found.cause == "config":
        return NAGIOS_UNKNOWN
    if found.error is not None:
        return NAGIOS_CRITICAL
    failed = [result for result in (*found.tables.values(), *found.freshness.values()) if not result["ok"]]
    if any(result.get("cause") not in COULD_NOT_LOOK for result in failed):
        return NAGIOS_CRITICAL
    if failed:
        return NAGIOS_UNKNOWN
    return NAGIOS_WARNING if found.warnings else NAGIOS_OK


def nagios(found: Health, connect_timeout: float) -> tuple[str, int]:
    """The status line (``INFRA OK - ... | 'label'=value[UOM];warn;crit;min;max ...``) and its exit code."""
    state = nagios_state(found)
    return f"{status_line(state, _nagios_text(found, state))} | {' '.join(_perfdata(found, connect_timeout))}", state


def status_line(state: int, text: str) -> str:
    """``INFRA CRITICAL - text``: one line, without the ``|`` that would start the performance data."""
    return f"{SERVICE} {NAGIOS_STATES[state]} - {printable(' '.join(text.replace('|', '/').split()))}"


def _nagios_text(found: Health, state: int) -> str:
    """What a person reads in the alert: the cause, the warnings, or what was found healthy."""
    if found.error is not None:
        return f"{found.database}: {found.error}"
    results = [*found.tables.items(), *found.freshness.items()]
    failed = [f"{name}: {result['error']}" for name, result in results if not result["ok"]]
    if failed:
        return "; ".join(failed)
    if state == NAGIOS_WARNING:
        return "; ".join(found.warnings)
    shown = [f"{table} {result['shown']}" for table, result in found.tables.items()]
    shown += [str(result["shown"]) for result in found.freshness.values()]
    return f"{found.database}: " + "; ".join(shown)


def _perfdata(found: Health, connect_timeout: float) -> list[str]:
    """Connect time, rows per table, the newest row's age and the stale groups per watched table, and
    the check's own time: each ``'label'=value[UOM];warn;crit;min;max``, ``U`` where it could not tell."""
    data = [_perf("check_time", found.check_seconds, "s", minimum=0)]
    if found.connect_seconds is not None:
        data.append(_perf("connect_time", found.connect_seconds, "s", crit=connect_timeout, minimum=0))
    data += [_perf(f"{table} rows", result.get("rows"), minimum=0) for table, result in found.tables.items()]
    for result in _measured(found):
        warn, limit, groups = result["warn_seconds"], result["limit_seconds"], result["groups"]
        data.append(_perf(f"{result['table']} age", result["age_seconds"], "s", warn=warn, crit=limit, minimum=0))
        if groups is not None:  # any stale group is CRITICAL, any late one WARNING: thresholds of 0
            table = result["table_name"]
            data.append(_perf(f"{table} stale groups", result["stale_group_count"], crit=0, minimum=0, maximum=groups))
            if warn is not None:
                data.append(
                    _perf(f"{table} late groups", result["late_group_count"], warn=0, minimum=0, maximum=groups)
                )
    return data


def _measured(found: Health) -> list[dict]:
    """The freshness rules that were measured (one that could not be judged has only its cause)."""
    return [result for result in found.freshness.values() if "limit_seconds" in result]


def _perf(
    label: str,
    value: float | None,
    uom: str = "",
    *,
    warn: float | None = None,
    crit: float | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
) -> str:
    """One performance datum; a label is always quoted (a quote in it doubled; ``=``, ``|`` and control
    characters, which no label may hold, become ``_``); trailing empty fields are dropped."""
    quoted = "'" + re.sub(r"[=|\x00-\x1f\x7f]", "_", label).replace("'", "''") + "'"
    shown = _nagios_number(value) + uom if value is not None and math.isfinite(value) else "U"
    limits = ["" if limit is None else _nagios_number(limit) for limit in (warn, crit, minimum, maximum)]
    return f"{quoted}=" + ";".join([shown, *limits]).rstrip(";")


def _nagios_number(value: float) -> str:
    """Digits, a sign and a point only (no exponent, which the guidelines do not allow)."""
    return str(value) if isinstance(value, int) else f"{value:.6f}".rstrip("0").rstrip(".")


# --- OpenMetrics ----------------------------------------------------------------------------------


def openmetrics(found: Health) -> str:
    """The probe's findings as gauges, one family each, ending with ``# EOF``."""
    up = found.connect_seconds is not None
    tables = [({"table": table}, result) for table, result in found.tables.items() if result["ok"]]
    watched = [({"table": result["table_name"], "column": result["column"]}, result) for result in _measured(found)]
    grouped = [(labels, result) for labels, result in watched if result["groups"] is not None]
    limits = [
        ({**labels, "level": level}, result[key])
        for labels, result in watched
        for level, key in (("warning", "warn_seconds"), ("error", "limit_seconds"))
        if result[key] is not None
    ]
    stale = [({**labels, "level": "error"}, result["stale_group_count"]) for labels, result in grouped]
    stale += [
        ({**labels, "level": "warning"}, result["late_group_count"])
        for labels, result in grouped
        if result["warn_seconds"] is not None
    ]
    group_ages = [
        ({**labels, "group": group["group"], "level": group["level"]}, _age(group["age_seconds"]))
        for labels, result in grouped
        for group in result["group_ages"]
    ]
    families = [
        _family("up", UP_HELP, [({}, int(up))]),
        _family("healthy", HEALTHY_HELP, [({}, int(found.healthy))]),
        _family(
            "connect_seconds",
            "time to connect and run SELECT 1",
            [({}, found.connect_seconds)] if up else [],
            "seconds",
        ),
        _family("table_rows", ROWS_HELP, [(labels, result["rows"]) for labels, result in tables]),
        _family(
            "table_rows_estimated", ESTIMATED_HELP, [(labels, int(not result["exact"])) for labels, result in tables]
        ),
        _family(
            "newest_row_age_seconds",
            AGE_HELP,
            [(labels, _age(result["age_seconds"])) for labels, result in watched],
            "seconds",
        ),
        _family("freshness_limit_seconds", "the age past which the freshness rule warns or fails", limits, "seconds"),
        _family(
            "groups",
            "groups (symbol, or symbol and timeframe) in the watched table",
            [(labels, result["groups"]) for labels, result in grouped],
        ),
        _family("stale_groups", STALE_HELP, stale),
        _family("stale_group_newest_row_age_seconds", GROUP_AGE_HELP, group_ages, "seconds"),
        _family(
            "check_duration_seconds",
            "how long the health check took, from reading DB_URL to the last answer",
            [({}, found.check_seconds)],
            "seconds",
        ),
    ]
    return "".join(families) + "# EOF\n"


def _age(seconds: float | None) -> float:
    """An age; none (no row to date) is infinitely old, as the check judges it."""
    return math.inf if seconds is None else seconds


def _family(name: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]], unit: str = "") -> str:
    """One gauge family: TYPE, UNIT (its name ends with it, as OpenMetrics requires), HELP, then its
    samples; nothing when it has none."""
    lines = [f"{PREFIX}{name}{_labels(labels)} {_value(value)}\n" for labels, value in samples]
    if not lines:
        return ""
    header = f"# TYPE {PREFIX}{name} gauge\n" + (f"# UNIT {PREFIX}{name} {unit}\n" if unit else "")
    return header + f"# HELP {PREFIX}{name} {_escape(help_text)}\n" + "".join(lines)


def _labels(labels: dict[str, str]) -> str:
    """``{table="market_data",column="ts"}``."""
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_label_value(str(value))}"' for key, value in labels.items()) + "}"


def _label_value(text: str) -> str:
    """A label's value escaped: a backslash, a line break and a double quote."""
    return _escape(text).replace('"', '\\"')


def _escape(text: str) -> str:
    """A backslash and a line break escaped, as HELP text and label values need."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _value(value: float) -> str:
    """A sample's value: an integer as digits, a float as Python writes it, infinity as ``+Inf``."""
    if isinstance(value, float) and math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(value) if isinstance(value, int) else repr(float(value))
