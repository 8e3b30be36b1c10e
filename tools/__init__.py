"""Shared logic of the infrastructure audit: one implementation used by the audit
(`pytest infra_tests`), the health check and the root fixer."""
