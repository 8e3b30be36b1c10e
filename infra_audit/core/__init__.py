"""The audit's library: URLs, configuration, the database probe, the venv classifier, the archive,
the private server, `.env` editing and the seed.

Nothing here imports pytest: the command-line tools use it as it is, and the pytest plugin
(``infra_audit.plugin``) builds on it. Messages state the cause; each caller adds the fix in its own
terms (a flag for a command, a ``pytest.ini`` key for the audit).
"""
