"""`pytest infra_tests` end to end, as a user runs it: a subprocess against a real, seeded PostgreSQL."""

from __future__ import annotations

from tests.support import write_env

AUDIT_TESTS = (
    "test_env_has_db_url",
    "test_db_reachable_within_3s",
    "test_row_counts_nonzero",
    "test_health_check_passes",
    "test_root_is_clean",
    "test_required_paths_present",
)


def test_healthy_project_passes_every_check(project, target, run_audit):
    write_env(project, f"DB_URL={target.url}\n")
    run = run_audit(project)
    assert run.exit_code == 0, run.output
    assert {name: run.outcome(name) for name in AUDIT_TESTS} == dict.fromkeys(AUDIT_TESTS, "passed")
    assert "market_data: 120 rows" in run.output
    assert "assets: 4 rows" in run.output
    assert target.role.password not in run.output + run.junit
