"""The infrastructure audit for PostgreSQL-backed Python projects.

Rooms, each knowing only what is below it: ``core`` (the audit's library, no pytest), ``fixer``
(the root fixer), ``sandbox`` (a local PostgreSQL seeded like production, and the test tooling),
``plugin`` (the pytest plugin), ``checks`` (the audit's checks, this checkout's ``infra_tests/``)
and ``cli`` (the commands). docs/architecture.md is the map.

PYTEST_DONT_REWRITE: the package is imported before pytest starts (``infra-audit``); its pytest11
entry point would otherwise have pytest warn that it cannot rewrite it.
"""

__version__ = "0.2.0"
