"""``infra-audit``: the audit of the project in the current folder, from the installed package.

    infra-audit [PYTEST ARGS...]   # the audit (the checks shipped as infra_audit.checks), verdict and report
    infra-audit init               # write the audit's settings into ./pyproject.toml ([tool.infra-audit])

The project's own pytest config stays in charge (its addopts, pythonpath and plugins apply, and its
``[tool.infra-audit]`` or ``infra_*`` keys are the audit's settings); the run loads none of the
project's conftests, writes no ``.pytest_cache`` and collects none of its tests. Exit codes are
pytest's, as for ``pytest infra_tests`` (0 passed, 1 a check did not pass, 2 interrupted, 4 usage).
"""

from __future__ import annotations

import sys
from pathlib import Path

from infra_audit.cli import convention
from infra_audit.core import settings

TOOL = "infra-audit"
# pytest's own config files, in the order pytest reads them, with the section that makes each one count.
PYTEST_CONFIGS = {
    "pytest.ini": "",
    ".pytest.ini": "",
    "pyproject.toml": "[tool.pytest.ini_options]",
    "tox.ini": "[pytest]",
    "setup.cfg": "[tool:pytest]",
}
# What `init` writes: the settings a project changes first, at their defaults.
INIT_KEYS = ("tables", "required_paths", "freshness", "freshness_group", "max_shrink", "history")


def project_root(here: Path) -> Path:
    """The project the current folder belongs to: the nearest folder up holding a pytest config or ``.git``
    (as pytest and git find theirs), else the current folder itself."""
    for folder in (here, *here.parents):
        if pytest_config(folder) or (folder / "pyproject.toml").is_file() or (folder / ".git").exists():
            return folder
    return here


def pytest_config(root: Path) -> Path | None:
    """The config file pytest itself would use for ``root``: the first that holds a pytest section."""
    for name, section in PYTEST_CONFIGS.items():
        path = root / name
        if path.is_file() and section in path.read_text(encoding="utf-8", errors="replace"):
            return path
    return None


def pytest_args(root: Path, args: list[str]) -> list[str]:
    """The pytest command line of the audit of ``root``: the installed checks, the project's own config
    and rootdir, no conftest of the project's and no cache written into it."""
    from infra_audit import checks  # the installed checks (this checkout's infra_tests/)

    folder = Path(checks.__file__).parent
    config = pytest_config(root)
    own = [str(folder), f"--rootdir={root}", f"--confcutdir={folder}", "-p", "no:cacheprovider"]
    return [*own, *([f"--config-file={config}"] if config else []), *args]


def init(root: Path) -> int:
    """Append ``[tool.infra-audit]`` to the project's pyproject.toml (made when missing); the rest of the
    file is left byte for byte as it was. A project that has the table already is left alone."""
    pyproject = root / "pyproject.toml"
    before = pyproject.read_bytes() if pyproject.is_file() else b""
    if settings.has_tool_table(root):
        print(f"{TOOL}: {pyproject} has [tool.{settings.TOOL_TABLE}] already: nothing written")
        return convention.EXIT_OK
    lines = [f"[tool.{settings.TOOL_TABLE}]  # the infrastructure audit's settings: infra-audit --help lists them"]
    for key in INIT_KEYS:
        spec = settings.BY_KEY[key]
        lines += [f"# {spec.help}", f'{key} = "{spec.default}"']
    # after the project's last line (ended, if it was not), blank lines, then the table
    separator = b"" if not before else (b"\n" if before.endswith(b"\n") else b"\n\n") + b"\n"
    with pyproject.open("ab") as out:
        out.write(separator + "\n".join(lines).encode() + b"\n")
    print(f"{TOOL}: wrote [tool.{settings.TOOL_TABLE}] to {pyproject}; change it there, then run {TOOL}")
    return convention.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root = project_root(Path.cwd())
    if argv[:1] == ["init"]:
        return convention.run(TOOL, lambda: convention.Result(init(root)), as_json=False)
    import pytest  # only for the audit itself: `init` and its errors need none of it

    return int(pytest.main(pytest_args(root, argv)))


if __name__ == "__main__":
    sys.exit(main())
