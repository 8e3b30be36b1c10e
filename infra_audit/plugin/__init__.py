"""The audit's pytest plugin: its settings, fixtures, terminal summary and reports.

``infra_audit.plugin.settings`` (the options, with ``usage``: the nearest flag for a mistyped one)
is the ``pytest11`` entry point: pytest knows the flags before it reads the command line. The rest
is registered by ``activate``, which the checks' conftest calls: it is loaded only when the audit
runs, so another pytest run (the project's own tests, this suite's) never sets the audit up.
"""
