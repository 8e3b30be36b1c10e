"""The checkout itself: no virtualenv left in the root, and the project's required paths present."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from infra_audit.core import venv_artifacts
from infra_audit.core.errors import GitError
from infra_audit.core.settings import AuditSettings
from infra_audit.plugin import report


@pytest.mark.check("root is clean")
def test_root_is_clean(project_root: Path, evidence) -> None:
    """No orphaned virtualenv artifacts (pyvenv.cfg, bin/ lib/ lib64 include/, .gitignore, what pip installed)
    in the root, and no tracked file a venv overwrote."""
    evidence.add("root", project_root)
    try:
        scan = venv_artifacts.scan_root(project_root)
    except GitError as exc:  # it could not tell: not a finding
        report.conclude([], [f"cannot tell project files from venv leftovers: {exc}"])
    evidence.add(
        "venv made in root", f"yes, by {scan.creator} (pyvenv.cfg home = {scan.venv_home})" if scan.venv_home else "no"
    )
    found = venv_artifacts.describe(scan)
    evidence.add("artifacts", "; ".join(found) if found else "none")
    why = venv_artifacts.in_use(project_root, [a.path for a in scan.artifacts]) if scan.artifacts else None
    listed = "(each with its evidence under artifacts)"  # said once, in the evidence
    if why is not None:  # not orphaned, and the fixer would refuse: say how to make it safe instead
        pytest.fail(
            f"{len(scan.artifacts)} virtualenv artifact(s) in {project_root} {listed}\n"
            + venv_artifacts.in_use_advice(project_root, why),
            pytrace=False,
        )
    if scan.artifacts:
        pytest.fail(
            f"{len(scan.artifacts)} orphaned virtualenv artifact(s) in {project_root} {listed}\n"
            f"fix: {fixer(project_root)} --root {shlex.quote(str(project_root))}"
            "  (archives them, never deletes; --dry-run to preview)"
            + (
                "\nand give back the overwritten tracked file(s) with git, as said under artifacts"
                if scan.overwritten
                else ""
            ),
            pytrace=False,
        )
    if scan.suspects:
        pytest.fail(
            f"{len(scan.suspects)} entry(ies) in {project_root} look venv-made but nothing proves it {listed}\n"
            "fix: inspect them by hand; the fixer moves nothing without a pyvenv.cfg proving a venv was made here",
            pytrace=False,
        )
    if scan.overwritten:
        pytest.fail(
            f"{len(scan.overwritten)} git-tracked file(s) in {project_root} overwritten by a venv {listed}\n"
            "fix: give each back with the git command said there (the fixer never rewrites a tracked file)",
            pytrace=False,
        )


@pytest.mark.check("required paths present")
def test_required_paths_present(project_root: Path, audit_settings: AuditSettings, evidence) -> None:
    """The files the spec requires (docs, health check, cleanup script) exist in the project."""
    if not audit_settings.required_paths:
        pytest.skip("infra_required_paths is empty: nothing shows the project's paths are there")
    missing = []
    for relative in audit_settings.required_paths:
        path = project_root / relative
        wants_dir = relative.endswith("/")
        present = path.is_dir() if wants_dir else path.is_file()
        evidence.add(relative, "present" if present else "MISSING")
        if not present:
            missing.append(f"{relative} ({'folder' if wants_dir else 'file'})")
    if missing:
        pytest.fail(
            f"missing from {project_root}: {', '.join(missing)}: add them, or change infra_required_paths in the project's settings",
            pytrace=False,
        )


def fixer(project_root: Path) -> str:
    """The root fixer as the user types it: the project's own script where it carries one, else the installed command."""
    return (
        "python3 tools/cleanup_root.py"
        if (project_root / "tools" / "cleanup_root.py").is_file()
        else "infra-cleanup-root"
    )
