#!/usr/bin/env python3
"""`python3 tools/cleanup_root.py`: the installed `infra-cleanup-root` command, for this checkout (see infra_audit/cli/cleanup_root.py)."""

import _checkout

_checkout.run("infra_audit.cli.cleanup_root", "cleanup_root.py", requirements=())  # standard library only
