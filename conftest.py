"""The fixtures that supply the audit's checks: the project root (`project_root`) and one read-only
database connection for the whole run (`db`), with `audit_settings`, `db_url` and `health_check_run`.

They are defined in one place, `infra_audit/plugin/fixtures.py`, which the installed audit uses in
any project; this checkout's root conftest loads the same module.
"""

pytest_plugins = ("infra_audit.plugin.fixtures",)
