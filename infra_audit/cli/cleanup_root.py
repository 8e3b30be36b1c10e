"""Archive the leftovers of a venv made in the project root, reversibly.

    infra-cleanup-root [--root PATH] [--dry-run] [--restore ARCHIVE] [--json]

Nothing moves unless <root>/pyvenv.cfg with 'home' proves a venv was made there; entries are
renamed (never copied, never deleted) into <root>/_archive_venv_cleanup_<UTC>/ with a manifest,
so any run can be undone with --restore (infra_audit.fixer.archive does the work). A tracked file a
venv overwrote (a .gitignore of '*') is reported with git's fix, never rewritten. Exit codes: 0 clean
(or nothing to do), 1 something needs a human (suspects, an overwritten tracked file, a failed move
or restore, a failed verification) or, with --dry-run, something would move (as `diff` and
`git diff --exit-code` say), 2 cannot start (bad arguments, bad root, missing archive, corrupt
manifest, git failure), 130 interrupted. See docs/cleanup.md.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

from infra_audit.cli import convention
from infra_audit.core.errors import ArchiveError, ArchiveStopped
from infra_audit.core.text import typed_path
from infra_audit.fixer import archive

TOOL = "infra-cleanup-root"


def parse_args(argv: list[str] | None, prog: str):
    parser = convention.Parser(prog=prog, description="Archive (or restore) venv leftovers in a project root.")
    parser.add_argument(
        "--root",
        type=Path,
        help="project root (default: the current folder, or this checkout for tools/cleanup_root.py; "
        "with --restore: the archive's recorded root)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    parser.add_argument("--restore", type=Path, metavar="ARCHIVE", help="move an archive's entries back")
    parser.add_argument("--json", action="store_true", help="print one JSON result instead of lines")
    args = parser.parse_args(argv)
    if args.dry_run and args.restore is not None:
        parser.error("--dry-run previews a cleanup; --restore has no preview (it refuses, per entry, to overwrite)")
    return args


def run(args, report: archive.Report, default_root: Path, command: list[str]) -> archive.Outcome:
    """Dispatch to clean or restore after checking the paths given; ``command`` is how the user typed this tool."""
    root = (args.root or default_root).absolute()
    if not root.is_dir():
        raise ArchiveError(f"--root {args.root} is not a directory; pass the project root folder")
    if os.path.realpath(root) == os.path.realpath(default_root / ".venv"):
        raise ArchiveError(
            f"--root {args.root} is the virtualenv these tools run on (quickstart made it), "
            "not a project root; pass the project root folder"
        )
    if args.restore is not None:
        folder = args.restore if args.restore.is_absolute() or args.restore.exists() else root / args.restore
        return archive.restore(folder.absolute(), report, root if args.root else None)
    outcome = archive.clean(root, args.dry_run, report)
    if outcome.archive:
        report.say("undo", "", shlex.join([*command, "--restore", outcome.archive]))
    return outcome


def _typed(path: Path) -> str:
    """The path as a person would type it from here: relative when it lies below the current folder."""
    try:
        here = Path.cwd()
    except OSError:  # the current folder was removed: the full path still works
        return str(path)
    return typed_path(path, here)


def main(argv: list[str] | None = None, *, prog: str = TOOL, default_root: Path | None = None) -> int:
    """``default_root`` is given for ``tools/cleanup_root.py``: this checkout, and the script typed to undo."""
    args = parse_args(argv, prog)
    command = ["python3", _typed(default_root / "tools" / prog)] if default_root else [prog]
    report = archive.Report(echo=None if args.json else lambda line: print(line, flush=True))

    def work() -> convention.Result:
        try:
            outcome = run(args, report, default_root or Path.cwd(), command)
        except ArchiveStopped as stop:
            stop.data["events"] = report.events
            raise
        would_move = args.dry_run and bool(outcome.artifacts)  # a check that found leftovers is no success
        code = convention.EXIT_PROBLEM if outcome.unresolved or would_move else convention.EXIT_OK
        return convention.Result(code, {**asdict(outcome), "events": report.events})

    return convention.run(prog, work, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
