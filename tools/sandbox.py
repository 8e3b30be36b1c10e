#!/usr/bin/env python3
"""`python3 tools/sandbox.py`: the installed `infra-sandbox` command, for this checkout (see infra_audit/cli/sandbox.py)."""

import _checkout

_checkout.run("infra_audit.cli.sandbox", "sandbox.py")
