"""Shared logic of the infrastructure audit: one implementation used by the audit
(`pytest infra_tests`), the health check and the root fixer."""

__version__ = "0.1.0"
