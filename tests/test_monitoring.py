"""The health check for monitoring systems, against a real database: the Nagios status line (checked
against the Monitoring Plugins guidelines) and OpenMetrics (read by the Prometheus client's parsers)."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import parser as text_format
from prometheus_client.openmetrics import parser as openmetrics_format

from tests.support import stage, write_env

# The guidelines' performance data: 'label'=value[UOM];[warn];[crit];[min];[max], space separated; a label
# is quoted when it holds a space, a quote in it doubled, and it never holds '='; value, min and max are
# [-0-9.] (or U: could not tell); warn and crit are ranges ([@][start:][end], ~ for minus infinity).
PERFDATUM = re.compile(
    r"'(?P<label>(?:[^'=]|'')+)'=(?P<value>U|-?[0-9]+(?:\.[0-9]+)?)(?P<uom>us|ms|s|%|B|KB|MB|TB|c)?"
    r"(?:;(?P<warn>@?(?:~|-?[0-9.]+)?:?(?:-?[0-9.]+)?)(?:;(?P<crit>@?(?:~|-?[0-9.]+)?:?(?:-?[0-9.]+)?)"
    r"(?:;(?P<min>-?[0-9.]*)(?:;(?P<max>-?[0-9.]*))?)?)?)?"
)
STATES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


def nagios(done) -> tuple[str, str, dict[str, dict]]:
    """(state, text, perfdata by label) of a plugin's output, each part checked against the guidelines:
    one line on stdout, nothing on stderr, the state's own exit code, a text without '|'."""
    assert done.stderr == "", done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    match = re.fullmatch(r"INFRA (OK|WARNING|CRITICAL|UNKNOWN) - ([^|]+) \| (.+)", lines[0])
    assert match, lines[0]
    state, text, perfdata = match.groups()
    assert done.returncode == STATES[state], (done.returncode, lines[0])
    found, position = {}, 0
    while position < len(perfdata):
        datum = PERFDATUM.match(perfdata, position)
        assert datum, f"not performance data at {perfdata[position:]!r}"
        found[datum["label"].replace("''", "'")] = datum.groupdict()
        position = datum.end() + (1 if perfdata[datum.end() : datum.end() + 1] == " " else 0)
        assert position == len(perfdata) or perfdata[position - 1] == " ", perfdata
    return state, text, found


def families(text: str) -> dict:
    """The metrics by family name, through the OpenMetrics parser; the Prometheus text parser (what
    node_exporter's textfile collector reads) must take the same text."""
    assert text.endswith("# EOF\n")
    assert list(text_format.text_string_to_metric_families(text)), "the Prometheus text format reads it too"
    return {family.name: family for family in openmetrics_format.text_string_to_metric_families(text)}


def samples(family) -> dict[tuple, float]:
    return {tuple(sorted(sample.labels.items())): sample.value for sample in family.samples}


def age_all(target, interval: str) -> None:
    """Move every row ``interval`` back (in two steps: the unique key is checked row by row)."""
    stage(target, "UPDATE market_data SET ts = ts - interval '1000 days'")
    stage(target, f"UPDATE market_data SET ts = ts + interval '1000 days' - interval '{interval}'")


def test_nagios_ok_with_perfdata_on_a_healthy_database(project, target, run_health_check):
    write_env(project, f"DB_URL={target.url}\n")
    done = run_health_check("--root", str(project), "--format=nagios")
    state, text, perf = nagios(done)
    assert state == "OK" and "market_data 120 rows" in text and ":***@" in text
    labels = ["check_time", "connect_time", "market_data rows", "assets rows", "market_data.ts age"]
    assert list(perf) == [*labels, "market_data stale groups"]
    assert perf["connect_time"]["uom"] == "s" and perf["connect_time"]["crit"] == "3"
    assert (perf["market_data rows"]["value"], perf["assets rows"]["value"]) == ("120", "4")
    age = perf["market_data.ts age"]
    assert (age["uom"], age["warn"], age["crit"], age["min"]) == ("s", "", "259200", "0")
    assert 0 <= float(age["value"]) < 86400, "a seeded copy's newest row is as old as the session's template"
    stale = perf["market_data stale groups"]
    assert (stale["value"], stale["crit"], stale["max"]) == ("0", "0", "12")
    assert target.role.password not in done.stdout


def test_nagios_critical_when_the_database_refuses(project, run_health_check, closed_port):
    write_env(project, f"DB_URL=postgresql://trader:hunter2-secret@127.0.0.1:{closed_port}/mt5_crs\n")
    done = run_health_check("--root", str(project), "--format=nagios")
    state, text, perf = nagios(done)
    assert state == "CRITICAL" and "refused" in text and "trader:***@" in text
    assert list(perf) == ["check_time"] and perf["check_time"]["uom"] == "s"
    assert "hunter2" not in done.stdout


@pytest.mark.parametrize(
    ("env_text", "flags", "said"),
    [
        ("DB_URL=postgresql//trader:hunter2-secret@localhost/mt5_crs\n", (), "is invalid: not a URL"),
        (None, (), "DB_URL is not set"),
        ("", ("--connect-timeout=-1",), "timeout must be a number >= 0.1"),
        ("", ("--freshness=market_data=warn:3d,error:1d",), "the warning age must be below the error age"),
        ("", ("--no-such-flag",), "unrecognized arguments: --no-such-flag"),
    ],
    ids=["malformed DB_URL", "no DB_URL", "bad timeout", "levels out of order", "unknown flag"],
)
def test_nagios_unknown_for_what_it_cannot_use(project, run_health_check, env_text, flags, said):
    """A setting it cannot use is UNKNOWN (3), said in the one status line Nagios reads, even a bad flag."""
    if env_text:
        write_env(project, env_text)
    done = run_health_check("--root", str(project), "--format", "nagios", *flags)
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stdout.startswith("INFRA UNKNOWN - ") and said in done.stdout and done.stdout.count("\n") == 1
    if env_text is not None and "DB_URL" in env_text:  # the probe ran: it says how long it took
        assert nagios(done)[2]["check_time"]["uom"] == "s"
    assert "hunter2" not in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_nagios_warning_past_the_warning_age_and_critical_past_the_error_age(project, target, run_health_check):
    write_env(project, f"DB_URL={target.url}\n")
    age_all(target, "8 hours")
    rule = "--freshness=market_data=warn:6h,error:3d"
    state, text, perf = nagios(run_health_check("--root", str(project), "--format=nagios", rule))
    assert state == "WARNING" and re.search(r"is 8 hours( \d+ minutes?)? old, past the warning age of 6 hours", text)
    age = perf["market_data.ts age"]
    assert (age["warn"], age["crit"]) == ("21600", "259200") and 8 * 3600 <= float(age["value"]) < 9 * 3600
    late = perf["market_data late groups"]
    assert (late["value"], late["warn"], late["max"]) == ("12", "0", "12")
    text_report = run_health_check("--root", str(project), rule)
    assert text_report.returncode == 0, "the spec's format keeps its codes: a warning is still healthy"
    assert "   ⚠️ public.market_data.ts: the newest row (" in text_report.stdout
    assert text_report.stdout.endswith("✅ System Healthy\n")

    age_all(target, "4 days")
    state, text, perf = nagios(run_health_check("--root", str(project), "--format=nagios", rule))
    assert state == "CRITICAL" and "older than the limit of 3 days" in text
    assert perf["market_data stale groups"]["value"] == "12" and perf["market_data late groups"]["value"] == "0"


def test_openmetrics_hold_rows_and_the_newest_rows_age_of_each_table(project, target, run_health_check):
    write_env(project, f"DB_URL={target.url}\n")
    age_all(target, "8 hours")
    rules = "--freshness=market_data=warn:6h,error:3d assets.created_at=30d"
    done = run_health_check("--root", str(project), "--format=openmetrics", "--exact-count-limit=10", rules)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    found = families(done.stdout)
    assert samples(found["infra_audit_up"]) == {(): 1.0} and samples(found["infra_audit_healthy"]) == {(): 1.0}
    assert found["infra_audit_connect_seconds"].unit == "seconds"
    assert samples(found["infra_audit_table_rows"]) == {(("table", "market_data"),): 120, (("table", "assets"),): 4}
    estimated = samples(found["infra_audit_table_rows_estimated"])
    assert estimated == {(("table", "market_data"),): 1, (("table", "assets"),): 0}
    ages = samples(found["infra_audit_newest_row_age_seconds"])
    assert set(ages) == {(("column", "ts"), ("table", "market_data")), (("column", "created_at"), ("table", "assets"))}
    assert 8 * 3600 <= ages[(("column", "ts"), ("table", "market_data"))] < 9 * 3600
    limits = samples(found["infra_audit_freshness_limit_seconds"])
    assert limits[(("column", "ts"), ("level", "warning"), ("table", "market_data"))] == 21600
    stale = samples(found["infra_audit_stale_groups"])
    assert stale[(("column", "ts"), ("level", "warning"), ("table", "market_data"))] == 12
    group_ages = found["infra_audit_stale_group_newest_row_age_seconds"].samples
    assert len(group_ages) == 12 and {sample.labels["level"] for sample in group_ages} == {"warning"}
    assert found["infra_audit_check_duration_seconds"].unit == "seconds"
    assert target.role.password not in done.stdout


def test_a_symbol_with_quotes_and_backslashes_is_one_label_value(project, target, run_health_check):
    """A group's name comes from the data: escaped, it reads back as itself and breaks no line."""
    odd = 'Q"X\\Y\nZ'
    asset = "INSERT INTO assets (symbol, name, asset_class, currency, exchange) VALUES (%s, 'odd', 'fx', 'USD', 'X')"
    bar = "INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume)"
    bar += " VALUES (%s, 'H1', %s, 1, 1, 1, 1, 1)"
    target.admin.execute(asset, (odd,))
    target.admin.execute(bar, (odd, datetime.now(timezone.utc) - timedelta(days=5)))
    write_env(project, f"DB_URL={target.url}\n")
    done = run_health_check("--root", str(project), "--format=openmetrics")
    assert done.returncode == 1, "a stale symbol is unhealthy"
    (sample,) = families(done.stdout)["infra_audit_stale_group_newest_row_age_seconds"].samples
    assert (sample.labels["group"], sample.labels["level"]) == (f"{odd} H1", "error") and sample.value >= 5 * 86400
    state, _, perf = nagios(run_health_check("--root", str(project), "--format=nagios"))
    assert state == "CRITICAL" and perf["market_data stale groups"]["value"] == "1"


def test_openmetrics_output_is_replaced_whole_and_says_when_the_database_is_down(
    project, target, run_health_check, closed_port, tmp_path
):
    """--output replaces the file by a rename (a new inode, no temporary left), as node_exporter's
    textfile collector needs; a database that went down is written as up 0, never left as it was."""
    collector = tmp_path / "textfile"
    collector.mkdir()
    output = collector / "infra_audit.prom"
    write_env(project, f"DB_URL={target.url}\n")
    done = run_health_check("--root", str(project), "--format=openmetrics", "--output", str(output))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    first = os.stat(output)
    assert samples(families(output.read_text())["infra_audit_up"]) == {(): 1.0}

    write_env(project, f"DB_URL=postgresql://trader:hunter2-secret@127.0.0.1:{closed_port}/mt5_crs\n")
    done = run_health_check("--root", str(project), "--format=openmetrics", "--output", str(output))
    assert done.returncode == 1, done.stderr
    assert os.stat(output).st_ino != first.st_ino and os.listdir(collector) == ["infra_audit.prom"]
    found = families(output.read_text())
    assert samples(found["infra_audit_up"]) == {(): 0.0} and "infra_audit_table_rows" not in found
    assert "hunter2" not in output.read_text()


def test_openmetrics_output_never_writes_through_a_link(project, target, run_health_check, tmp_path):
    """A link at the output path is refused in one line and left as it is, and so is the file it points to."""
    write_env(project, f"DB_URL={target.url}\n")
    theirs = tmp_path / "theirs.txt"
    theirs.write_text("not ours\n")
    link = tmp_path / "infra_audit.prom"
    link.symlink_to(theirs)
    done = run_health_check("--root", str(project), "--format=openmetrics", "--output", str(link))
    assert done.returncode == 2 and done.stderr.startswith("health_check.py: error: ")
    assert "is not a regular file" in done.stderr
    assert link.is_symlink() and theirs.read_text() == "not ours\n"


def test_json_and_another_format_are_refused(run_health_check):
    done = run_health_check("--json", "--format=openmetrics")
    assert done.returncode == 2 and "--json and --format=openmetrics are two outputs: choose one" in done.stderr
    done = run_health_check("--output", "x.prom")
    assert done.returncode == 2 and "--output is for --format=openmetrics" in done.stderr
