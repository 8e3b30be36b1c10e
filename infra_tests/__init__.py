"""The audit's checks, one test a success criterion. Installed, this folder is ``infra_audit.checks``."""
