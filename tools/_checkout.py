"""This checkout's commands as ``python3 tools/<tool>.py``, whether or not the package is installed.

Python puts ``tools/`` first on ``sys.path`` for a script; importing this module puts the checkout
before the rest, so ``infra_audit`` is this checkout's own. When the python typed lacks the
requirements (Debian's own ``python3``, say) and ``python3 tools/quickstart.py`` set up ``.venv/``,
the command runs again on ``.venv/bin/python``; without that virtualenv it ends with one line, not an
ImportError traceback. Standard library only: quickstart runs this before anything is installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import NoReturn

CHECKOUT = Path(__file__).resolve().parents[1]
VENV = CHECKOUT / ".venv"  # where quickstart sets the requirements up
REQUIREMENTS = ("psycopg", "dotenv")  # what every command but quickstart needs installed
REEXEC_MARK = "INFRA_AUDIT_REEXEC"  # set for the command run again on .venv's python
EXIT_USAGE = 2

sys.path.insert(0, str(CHECKOUT))


def venv_python(venv: Path = VENV) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def require_installed(tool: str, requirements: tuple[str, ...] = REQUIREMENTS) -> None:
    """Go on when this python has the requirements; else run on ``.venv/``'s python, or end with one line."""
    missing = [name for name in requirements if importlib.util.find_spec(name) is None]
    if not missing:
        return
    python = venv_python()
    fix = f"run `python3 tools/quickstart.py` once; it sets up {VENV}, which `python3 tools/{tool}` then uses"
    error = f"this python ({sys.executable}) lacks the requirements ({', '.join(missing)}): {fix}"
    if python.exists() and REEXEC_MARK not in os.environ:  # once: a .venv/ python that lacks them too stops here
        sys.stdout.flush()
        try:
            os.execve(python, [str(python), *sys.argv], {**os.environ, REEXEC_MARK: str(python)})
        except OSError as exc:  # a .venv/ whose python cannot start (its base python removed, say)
            error = f"{python} cannot start ({exc.strerror or exc}): move {VENV} away, then {fix}"
    if "--json" in sys.argv[1:]:
        print(json.dumps({"tool": tool, "ok": False, "exit_code": EXIT_USAGE, "error": error}))
    sys.stderr.write(f"{tool}: error: {error}\n")
    raise SystemExit(EXIT_USAGE)


def run(module: str, tool: str, requirements: tuple[str, ...] = REQUIREMENTS) -> NoReturn:
    """Run the command ``module`` (``infra_audit.cli.<name>``) for this checkout: its root is the default root.
    The fixer needs no requirement (``requirements=()``): it runs on the python typed, never on another."""
    require_installed(tool, requirements)
    command = importlib.import_module(module)
    sys.exit(command.main(prog=tool, default_root=CHECKOUT))
