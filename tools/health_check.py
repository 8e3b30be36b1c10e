#!/usr/bin/env python3
"""`python3 tools/health_check.py`: the installed `infra-health-check` command, for this checkout (see infra_audit/cli/health_check.py)."""

import _checkout

_checkout.run("infra_audit.cli.health_check", "health_check.py")
