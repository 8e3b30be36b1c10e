"""The fixer: moves exactly the artifacts, changes nothing else, restores exactly, and says so."""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra_audit.cli import cleanup_root as cleanup_root_command
from infra_audit.core.errors import ArchiveStopped
from infra_audit.core.venv_artifacts import scan_root
from infra_audit.fixer import archive
from tests.support import REPO
from tests.venv_roots import (
    CREATOR_BY_NAME,
    FIXER,
    CreatorRoot,
    PollutedRoot,
    creator_root,
    git,
    git_status,
    polluted_root,
    pyenv_python,
    run_fixer,
    running,
    tree_snapshot,
    write,
)


def cleanup_main(argv: list[str]) -> int:
    """The fixer in this process, as ``python3 tools/cleanup_root.py`` runs it."""
    return cleanup_root_command.main(argv, prog="cleanup_root.py", default_root=REPO)


@pytest.fixture
def polluted(tmp_path: Path) -> PollutedRoot:
    """A fresh polluted root per test (no pip: 0.2 s)."""
    return polluted_root(tmp_path)


@pytest.fixture(scope="module")
def polluted_with_pip(tmp_path_factory: pytest.TempPathFactory) -> PollutedRoot:
    """Made once: a venv with pip takes ~6 s, and its entry points must name this very root."""
    return polluted_root(tmp_path_factory.mktemp("pip"), with_pip=True)


def project_part(snapshot: dict[str, tuple], venv_made: frozenset[str]) -> dict[str, tuple]:
    """The snapshot without the venv-made paths and what lies under them."""
    return {p: f for p, f in snapshot.items() if not any(p == v or p.startswith(v + "/") for v in venv_made)}


def reported(stdout: str, action: str) -> list[str]:
    """The paths of the report lines of one action ('moved', 'FAILED', ...), sorted."""
    return sorted(line.split()[1].rstrip(":") for line in stdout.splitlines() if line.split()[:1] == [action])


def only_archive(pr: PollutedRoot) -> Path:
    """The one archive a cleanup made."""
    archives = pr.archives()
    assert len(archives) == 1, archives
    return archives[0]


@pytest.mark.parametrize("with_pip", [False, True], ids=["without-pip", "with-pip"])
def test_lifecycle(with_pip: bool, request: pytest.FixtureRequest) -> None:
    """scan -> dry-run -> cleanup -> re-run -> restore -> restore again, as a user would run them."""
    pr: PollutedRoot = request.getfixturevalue("polluted_with_pip" if with_pip else "polluted")
    assert ("bin/pip" in pr.expected) == with_pip
    before = tree_snapshot(pr.root)
    assert {a.path for a in scan_root(pr.root).artifacts} == pr.expected

    dry = run_fixer("--root", pr.root, "--dry-run")
    assert dry.returncode == 1, dry.stderr  # something would move: as `diff` says, not "all is well"
    assert reported(dry.stdout, "would-move") == sorted(pr.expected)
    assert tree_snapshot(pr.root, skip_archives=False) == before

    done = run_fixer("--root", pr.root)
    assert done.returncode == 0, done.stdout + done.stderr
    archive = only_archive(pr)
    assert reported(done.stdout, "moved") == sorted(pr.expected)
    assert all(not os.path.lexists(pr.root / p) and os.path.lexists(archive / p) for p in pr.expected)
    assert project_part(tree_snapshot(pr.root), pr.expected) == project_part(before, pr.expected)
    assert scan_root(pr.root).clean
    assert "verified   classifier finds nothing left" in done.stdout

    again = run_fixer("--root", pr.root)
    assert (again.returncode, again.stdout.splitlines()[-1]) == (0, "summary    nothing to clean")
    assert run_fixer("--root", pr.root, "--dry-run").returncode == 0, "nothing would move: the dry run says so with 0"
    assert pr.archives() == [archive]

    back = run_fixer("--restore", archive)
    assert back.returncode == 0, back.stdout + back.stderr
    assert tree_snapshot(pr.root) == before
    twice = run_fixer("--restore", archive)
    assert twice.returncode == 0 and "nothing to restore" in twice.stdout
    assert os.listdir(archive) == ["manifest.json"]


def test_the_oldest_python_the_package_supports_moves_and_restores(tmp_path: Path) -> None:
    """requires-python says 3.9: there too the fixer proves pip's files by their RECORD, fingerprints what it
    moves and puts it back (hashlib.file_digest, which both once used, came with 3.11)."""
    made = creator_root(tmp_path, CREATOR_BY_NAME["pip-install"])
    before = tree_snapshot(made.root)
    python = pyenv_python(9)
    done = run_fixer("--root", made.root, python=python)
    assert done.returncode == 0, done.stdout + done.stderr
    assert reported(done.stdout, "moved") == sorted(made.expected)
    back = run_fixer("--restore", only_archive(made), python=python)
    assert back.returncode == 0, back.stdout + back.stderr
    assert tree_snapshot(made.root) == before


def test_manifest_records_fingerprints_and_statuses(polluted: PollutedRoot) -> None:
    assert run_fixer("--root", polluted.root).returncode == 0
    entries = json.loads((only_archive(polluted) / "manifest.json").read_text())["entries"]
    by_path = {e["source"]: e for e in entries}
    assert set(by_path) == polluted.expected
    assert {e["status"] for e in entries} == {"moved"}
    assert entries[-1]["source"] == "pyvenv.cfg"  # the proof moves last
    assert len(by_path["bin/activate"]["sha256"]) == 64 and by_path["bin/activate"]["size"] > 0
    assert by_path["lib64"]["link_target"] == "lib"
    assert by_path["lib"]["kind"] == "dir" and by_path["lib"]["sha256"]


def test_clean_root_creates_no_archive(tmp_path: Path) -> None:
    write(tmp_path / "bin" / "deploy.sh", "#!/bin/sh\n", 0o755)
    result = run_fixer("--root", tmp_path)
    assert (result.returncode, result.stdout.splitlines()[-1]) == (0, "summary    nothing to clean")
    assert not list(tmp_path.glob("_archive_*"))


def test_without_proof_nothing_moves_and_exit_is_1(polluted: PollutedRoot) -> None:
    (polluted.root / "pyvenv.cfg").unlink()
    before = tree_snapshot(polluted.root, skip_archives=False)
    result = run_fixer("--root", polluted.root)
    assert result.returncode == 1
    gitignore = [".gitignore"] if sys.version_info >= (3, 13) else []  # the '*' this python's venv writes
    assert reported(result.stdout, "suspect") == [*gitignore, "bin/activate", "lib", "lib64"]
    assert f"nothing moved; {3 + len(gitignore)} suspect(s) need a human decision" in result.stdout
    assert tree_snapshot(polluted.root, skip_archives=False) == before


def test_json_result(polluted: PollutedRoot) -> None:
    result = run_fixer("--root", polluted.root, "--dry-run", "--json")
    data = json.loads(result.stdout)
    assert (result.returncode, data["command"], data["exit_code"]) == (1, "dry-run", 1)
    assert {a["path"] for a in data["artifacts"]} == polluted.expected
    assert data["venv_home"] and data["suspects"] == [] and data["archive"] is None


@pytest.mark.parametrize("how", ["its python runs the fixer", "it is the active venv"])
def test_a_venv_in_use_is_refused_and_nothing_moves(polluted: PollutedRoot, how: str) -> None:
    """`python3 -m venv .` then the audit's fix: archiving the running interpreter would pull the floor away."""
    before = tree_snapshot(polluted.root, skip_archives=False)
    if how == "its python runs the fixer":
        result = run_fixer("--root", polluted.root, python=polluted.root / "bin" / "python")
        why = "the python running this comes from it"
    else:
        result = run_fixer("--root", polluted.root, env={**os.environ, "VIRTUAL_ENV": str(polluted.root)})
        why = "it is the active venv: VIRTUAL_ENV"
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f"REFUSED    nothing moved: the venv made in {polluted.root} is in use ({why}): archiving it would pull "
        f"the python from under what runs on it. To make it safe: python3 -m venv {polluted.root}/.venv, reinstall "
        f"the project there ({polluted.root}/.venv/bin/pip install ...), deactivate it and restart what ran on it "
        f"from there, then run {polluted.root}/.venv/bin/python tools/cleanup_root.py --root {polluted.root}"
    ]
    assert result.stderr == ""
    assert tree_snapshot(polluted.root, skip_archives=False) == before
    assert run_fixer("--root", polluted.root, "--dry-run", python=polluted.root / "bin" / "python").returncode == 1


@pytest.mark.parametrize(
    "how", ["started as bin/python", "VIRTUAL_ENV in its environment", "found on its PATH", "found on a relative PATH"]
)
def test_a_venv_another_process_runs_from_is_refused(polluted: PollutedRoot, how: str) -> None:
    """A service started from the venv (no VIRTUAL_ENV, its /proc exe the base python), or a shell's child
    that inherited an activated VIRTUAL_ENV: archiving would break its next import."""
    before = tree_snapshot(polluted.root, skip_archives=False)
    if how == "started as bin/python":
        command, env = [str(polluted.root / "bin" / "python"), "-c", "import sys; sys.stdin.read()"], None
    elif how.startswith("found on"):  # `python3 service.py` with the venv's bin/ first, as a Dockerfile sets it
        command = ["python3", "-c", "import sys; sys.stdin.read()"]
        first = "bin" if how.endswith("relative PATH") else polluted.root / "bin"
        env = {**os.environ, "PATH": f"{first}:{os.environ['PATH']}"}
        env.pop("VIRTUAL_ENV", None)
    else:
        command, env = ["sleep", "60"], {**os.environ, "VIRTUAL_ENV": str(polluted.root)}
    with running(command, env, cwd=polluted.root) as service:
        result = run_fixer("--root", polluted.root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"is in use (process {service.pid} (" in result.stdout and ") runs from it)" in result.stdout
    assert tree_snapshot(polluted.root, skip_archives=False) == before
    assert run_fixer("--root", polluted.root).returncode == 0, "with the process gone, the venv is a leftover"


def test_a_zombie_that_ran_from_the_venv_does_not_hold_it(polluted: PollutedRoot) -> None:
    """A process that ran bin/python with VIRTUAL_ENV set and exited, not yet reaped by its parent: /proc
    still lists it, with no command line, environment, maps or open files left. Nothing runs from the
    venv any more, so the in-use scan reads past it and the venv is archived."""
    child = subprocess.Popen(
        [str(polluted.root / "bin" / "python"), "-c", "pass"], env={**os.environ, "VIRTUAL_ENV": str(polluted.root)}
    )
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # it has exited; WNOWAIT leaves it unreaped
        assert Path(f"/proc/{child.pid}/stat").read_text().rsplit(") ", 1)[1].startswith("Z"), "no zombie to test"
        result = run_fixer("--root", polluted.root)
    finally:
        child.wait()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bin/python" in reported(result.stdout, "moved")


def test_a_running_project_script_in_bin_is_not_the_venv_in_use(polluted: PollutedRoot) -> None:
    """A tracked bin/feed.sh that is running holds only itself open: the venv's own entries still move."""
    write(polluted.root / "bin" / "feed.sh", "#!/bin/sh\nread line\n", 0o755)
    git(polluted.root, "add", "-f", "bin/feed.sh")  # -f: the .gitignore of Python 3.13+ venvs ignores it
    with running(["sh", str(polluted.root / "bin" / "feed.sh")]):
        result = run_fixer("--root", polluted.root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bin/python" in reported(result.stdout, "moved") and (polluted.root / "bin" / "feed.sh").exists()


def test_another_venvs_python_may_clean(polluted: PollutedRoot) -> None:
    """Advice followed: a venv elsewhere (here the project's venv/) runs the fixer, and it archives."""
    result = run_fixer(
        "--root",
        polluted.root,
        python=polluted.root / "venv" / "bin" / "python",
        env={**os.environ, "VIRTUAL_ENV": str(polluted.root / "venv")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert reported(result.stdout, "moved") == sorted(polluted.expected)


def test_restore_refuses_a_same_size_tampered_copy(polluted: PollutedRoot) -> None:
    """Same size, same mode, other bytes: only the content hash can tell."""
    assert run_fixer("--root", polluted.root).returncode == 0
    copy = only_archive(polluted) / "bin" / "activate"
    original = copy.read_bytes()
    copy.write_bytes(bytes(b ^ 1 if i == 0 else b for i, b in enumerate(original)))
    assert copy.stat().st_size == len(original)
    result = run_fixer("--restore", only_archive(polluted))
    assert result.returncode == 1
    assert "REFUSED    bin/activate: archived copy differs from the manifest" in result.stdout
    assert not (polluted.root / "bin" / "activate").exists()


TAMPERED = {
    "kind": lambda _: "dir",
    "mode": lambda mode: mode ^ 0o100,
    "size": lambda size: size + 1,
    "sha256": lambda _: "0" * 64,
    "link_target": lambda _: "elsewhere",
}


@pytest.mark.parametrize("key", archive.FINGERPRINT_KEYS)
def test_restore_refuses_a_copy_that_differs_from_the_manifest_in_one_field(polluted: PollutedRoot, key: str) -> None:
    """Each field of the fingerprint counts on its own: the manifest's bin/activate is changed in just
    that field (as if the copy had changed in it alone), and restore must leave the copy in the archive."""
    assert set(TAMPERED) == set(archive.FINGERPRINT_KEYS), "a new fingerprint field needs its own tampering"
    assert run_fixer("--root", polluted.root).returncode == 0
    manifest_path = only_archive(polluted) / archive.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    (entry,) = [entry for entry in manifest["entries"] if entry["source"] == "bin/activate"]
    entry[key] = TAMPERED[key](entry[key])
    manifest_path.write_text(json.dumps(manifest))
    result = run_fixer("--restore", only_archive(polluted))
    assert result.returncode == 1, result.stdout
    assert "REFUSED    bin/activate: archived copy differs from the manifest" in result.stdout
    assert not (polluted.root / "bin" / "activate").exists()


def test_restore_refuses_an_archived_folder_whose_own_mode_changed(polluted: PollutedRoot) -> None:
    """A folder's fingerprint holds its own mode too, not only its content's."""
    assert run_fixer("--root", polluted.root).returncode == 0
    (only_archive(polluted) / "lib").chmod(0o700)
    result = run_fixer("--restore", only_archive(polluted))
    assert result.returncode == 1, result.stdout
    assert "REFUSED    lib: archived copy differs from the manifest" in result.stdout
    assert not (polluted.root / "lib").exists()


def test_symlinks_inside_archived_folders_are_fingerprinted_as_links(polluted: PollutedRoot) -> None:
    """A link inside lib/ is recorded as a link: its target changing (or vanishing) is not the archive's business."""
    site = polluted.root / "lib" / next(iter(os.listdir(polluted.root / "lib"))) / "site-packages"
    (site / "to-outside").symlink_to(polluted.outside / "data.txt")
    (site / "dangling").symlink_to(polluted.outside / "never-there")
    (site / "loop").symlink_to("..")
    before = tree_snapshot(polluted.root)
    done = run_fixer("--root", polluted.root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lib" in reported(done.stdout, "moved")
    (polluted.outside / "data.txt").write_text("changed after the cleanup, outside the root\n")
    back = run_fixer("--restore", only_archive(polluted))
    assert back.returncode == 0, back.stdout
    assert tree_snapshot(polluted.root) == before


def test_ctrl_c_is_exit_130_one_line_and_moves_nothing(polluted: PollutedRoot, tmp_path: Path) -> None:
    """Interrupted while the classifier waits for git: a stand-in git sends SIGINT to the fixer alone (as
    the terminal would, git being its child) the moment it is asked, then hangs; no clock in the test."""
    bin_dir, asked = tmp_path / "slow-git", tmp_path / "git-asked"
    write(bin_dir / "git", f"#!/bin/sh\ntouch {asked}\nkill -INT $PPID\nexec sleep infinity\n", 0o755)
    before = tree_snapshot(polluted.root, skip_archives=False)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)
    tool = subprocess.Popen(
        [sys.executable, str(FIXER), "--root", str(polluted.root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = tool.communicate()  # bounded by the fixer's own deadline on git
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(tool.pid, signal.SIGKILL)  # whatever of this test's process group is left (the stand-in git)
    assert asked.exists(), "the fixer never asked git"
    assert tool.returncode == 130, stdout + stderr
    assert stderr.splitlines() == ["cleanup_root.py: error: interrupted"]
    assert "Traceback" not in stdout + stderr
    assert tree_snapshot(polluted.root, skip_archives=False) == before


def test_restore_refuses_to_overwrite(polluted: PollutedRoot) -> None:
    before = tree_snapshot(polluted.root)
    assert run_fixer("--root", polluted.root).returncode == 0
    write(polluted.root / "bin" / "activate", "new work, made after the cleanup\n")
    refused = run_fixer("--restore", only_archive(polluted))
    assert refused.returncode == 1
    assert [line for line in refused.stdout.splitlines() if line.startswith("REFUSED")] == [
        f"REFUSED    bin/activate: {polluted.root}/bin/activate exists now; not overwritten "
        "(move it away and re-run --restore)"
    ]
    assert (polluted.root / "bin" / "activate").read_text() == "new work, made after the cleanup\n"
    (polluted.root / "bin" / "activate").unlink()
    assert run_fixer("--restore", only_archive(polluted)).returncode == 0
    assert tree_snapshot(polluted.root) == before


def test_restore_refuses_a_changed_archive_copy(polluted: PollutedRoot) -> None:
    assert run_fixer("--root", polluted.root).returncode == 0
    (only_archive(polluted) / "bin" / "activate").write_text("tampered\n")
    result = run_fixer("--restore", only_archive(polluted))
    assert result.returncode == 1
    assert "REFUSED    bin/activate: archived copy differs from the manifest" in result.stdout
    assert not (polluted.root / "bin" / "activate").exists()


def test_restore_never_writes_through_a_new_symlink(polluted: PollutedRoot) -> None:
    assert run_fixer("--root", polluted.root).returncode == 0
    (polluted.root / "bin").rename(polluted.root / "bin.moved")
    (polluted.root / "bin").symlink_to(polluted.outside)
    result = run_fixer("--restore", only_archive(polluted))
    assert result.returncode == 1
    assert (
        f"REFUSED    bin/activate: {polluted.root}/bin is a symlink (-> {polluted.outside}); "
        "restore never writes through a link"
    ) in result.stdout
    assert os.listdir(polluted.outside) == ["data.txt"]


def test_restore_never_writes_through_a_symlink_inside_the_root(polluted: PollutedRoot) -> None:
    assert run_fixer("--root", polluted.root).returncode == 0
    (polluted.root / "bin").rename(polluted.root / "scripts")
    (polluted.root / "bin").symlink_to("scripts")
    scripts_before = sorted(os.listdir(polluted.root / "scripts"))
    result = run_fixer("--restore", only_archive(polluted))
    assert result.returncode == 1
    in_bin = sorted(p for p in polluted.expected if p.startswith("bin/"))
    assert reported(result.stdout, "REFUSED") == in_bin
    assert f"REFUSED    bin/activate: {polluted.root}/bin is a symlink (-> scripts)" in result.stdout
    assert sorted(os.listdir(polluted.root / "scripts")) == scripts_before
    assert all(os.path.lexists(only_archive(polluted) / p) for p in in_bin)


def test_restore_through_a_link_to_the_archive_goes_into_the_recorded_root(
    polluted: PollutedRoot, tmp_path: Path
) -> None:
    before = tree_snapshot(polluted.root)
    assert run_fixer("--root", polluted.root).returncode == 0
    elsewhere = tmp_path / "w"
    elsewhere.mkdir()
    (elsewhere / "myarchive").symlink_to(only_archive(polluted))
    result = run_fixer("--root", polluted.root, "--restore", elsewhere / "myarchive")
    assert result.returncode == 0, result.stdout + result.stderr
    assert os.listdir(elsewhere) == ["myarchive"]
    assert tree_snapshot(polluted.root) == before


def test_restore_of_a_moved_archive_is_refused(polluted: PollutedRoot, tmp_path: Path) -> None:
    assert run_fixer("--root", polluted.root).returncode == 0
    moved = tmp_path / "w" / only_archive(polluted).name
    moved.parent.mkdir()
    only_archive(polluted).rename(moved)
    before = tree_snapshot(tmp_path, skip_archives=False)
    result = run_fixer("--restore", moved)
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"cleanup_root.py: error: archive {moved} is at {moved}, not directly inside its root"
    )
    assert result.stderr.count("\n") == 1
    assert tree_snapshot(tmp_path, skip_archives=False) == before


def test_restore_refuses_a_root_other_than_the_recorded_one(polluted: PollutedRoot, tmp_path: Path) -> None:
    assert run_fixer("--root", polluted.root).returncode == 0
    other = tmp_path / "other"
    other.mkdir()
    before = tree_snapshot(tmp_path, skip_archives=False)
    result = run_fixer("--root", other, "--restore", only_archive(polluted))
    assert result.returncode == 2
    assert result.stderr == (
        f"cleanup_root.py: error: --root {other} is not the root this archive was made in ({polluted.root}); "
        "nothing restored\n"
    )
    assert tree_snapshot(tmp_path, skip_archives=False) == before


def test_interrupted_cleanup_restores_exactly(polluted: PollutedRoot, monkeypatch: pytest.MonkeyPatch) -> None:
    before = tree_snapshot(polluted.root)
    real_move, calls = archive.move, []

    def crash_on_third(src: Path, dst: Path) -> None:
        calls.append(src)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process dies mid-run
        real_move(src, dst)

    monkeypatch.setattr(archive, "move", crash_on_third)
    with pytest.raises(ArchiveStopped) as stopped:
        archive.clean(polluted.root, False, archive.Report())
    monkeypatch.undo()
    assert stopped.value.exit_code == 130 and stopped.value.data["archive"] == str(only_archive(polluted))
    assert str(stopped.value).startswith(
        f"interrupted after moves began: {only_archive(polluted).name} holds what moved"
    )
    statuses = [e["status"] for e in json.loads((only_archive(polluted) / "manifest.json").read_text())["entries"]]
    assert statuses[:3] == ["moved", "moved", "planned"]
    assert run_fixer("--restore", only_archive(polluted)).returncode == 0
    assert tree_snapshot(polluted.root) == before


def test_a_failure_after_moves_began_is_exit_1_naming_the_archive(
    polluted: PollutedRoot, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Exit 2 means "nothing moved"; once moves began, a stop needs a human: 1, and where things are."""
    before = tree_snapshot(polluted.root)
    real_save, calls = archive.save_manifest, []

    def full_disk_on_third(folder: Path, manifest: dict) -> None:
        calls.append(folder)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_save(folder, manifest)

    monkeypatch.setattr(archive, "save_manifest", full_disk_on_third)
    code = cleanup_main(["--root", str(polluted.root)])
    monkeypatch.undo()
    error = capsys.readouterr().err
    assert code == 1, error
    assert (
        error.startswith(
            "cleanup_root.py: error: stopped after moves began (No space left on device): "
            f"{only_archive(polluted).name} holds what moved"
        )
        and error.count("\n") == 1
    )
    assert run_fixer("--restore", only_archive(polluted)).returncode == 0
    assert tree_snapshot(polluted.root) == before


def test_a_stop_after_moves_began_says_where_things_are_in_json(polluted: PollutedRoot, tmp_path: Path) -> None:
    """git answers the plan's scan, then fails the verifying one (a tracked file keeps lib/ a suspect, so
    there is something to ask about): exit 1 (not 2, "nothing moved"), with the archive and what moved in
    the JSON result."""
    write(next((polluted.root / "lib").iterdir()) / "site-packages" / "vendored.py", "x = 1\n")
    git(polluted.root, "add", "-f", "lib")
    answered = tmp_path / "git-answered"
    write(
        tmp_path / "bin" / "git",
        f"#!/bin/sh\n[ -e {answered} ] && {{ echo 'fatal: index locked' >&2; exit 128; }}\n"
        f'touch {answered}\nexec {shutil.which("git")} "$@"\n',
        0o755,
    )
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)
    result = run_fixer("--root", polluted.root, "--json", env=env)
    data = json.loads(result.stdout)
    assert (result.returncode, data["exit_code"]) == (1, 1), result.stderr
    assert data["archive"] == str(only_archive(polluted)) and "moved" in {e["action"] for e in data["events"]}
    assert data["error"].startswith(
        f"stopped after moves began (git ls-files failed in {polluted.root}: fatal: "
        f"index locked): {only_archive(polluted).name} holds what moved"
    )
    assert run_fixer("--restore", only_archive(polluted)).returncode == 0


def test_a_restore_that_stopped_after_a_move_finishes_on_the_next_run(polluted: PollutedRoot) -> None:
    """The manifest cannot be saved after the first entry went back: exit 1 naming the archive; the next
    restore finds that entry back in place, exactly as archived, and finishes."""
    before = tree_snapshot(polluted.root)
    assert run_fixer("--root", polluted.root).returncode == 0
    folder = only_archive(polluted)

    def no_file_growth() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    stopped = subprocess.run(
        [sys.executable, str(FIXER), "--restore", str(folder)],
        capture_output=True,
        text=True,
        preexec_fn=no_file_growth,
        timeout=120,
    )
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    assert stopped.stderr.startswith(
        f"cleanup_root.py: error: stopped after restores began (File too large): {folder.name} holds what moved"
    )
    assert reported(stopped.stdout, "restored") == ["pyvenv.cfg"]
    again = run_fixer("--restore", folder)
    assert again.returncode == 0, again.stdout + again.stderr
    assert reported(again.stdout, "in-place") == ["pyvenv.cfg"]
    assert tree_snapshot(polluted.root) == before


def test_a_manifest_that_is_a_link_is_refused(polluted: PollutedRoot, tmp_path: Path) -> None:
    assert run_fixer("--root", polluted.root).returncode == 0
    folder = only_archive(polluted)
    (folder / "manifest.json").rename(tmp_path / "manifest.json")
    (folder / "manifest.json").symlink_to(tmp_path / "manifest.json")
    result = run_fixer("--restore", folder)
    assert (result.returncode, result.stderr) == (
        2,
        f"cleanup_root.py: error: {folder}/manifest.json is not a "
        "regular file (a link?); restore by hand from the folder\n",
    )


def test_one_fixer_at_a_time_in_a_root(polluted: PollutedRoot) -> None:
    before = tree_snapshot(polluted.root, skip_archives=False)
    with archive.root_lock(polluted.root):
        result = run_fixer("--root", polluted.root)
    assert (result.returncode, result.stderr) == (
        2,
        f"cleanup_root.py: error: another cleanup_root.py run is "
        f"working in {polluted.root}; wait for it to end, then run again\n",
    )
    assert tree_snapshot(polluted.root, skip_archives=False) == before


def test_the_tools_own_virtualenv_is_not_a_project_root(
    polluted: PollutedRoot, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".venv").symlink_to(polluted.root)  # the venv quickstart made for this checkout's tools
    assert cleanup_root_command.main(["--root", str(polluted.root), "--dry-run"], default_root=checkout) == 2
    assert "is the virtualenv these tools run on (quickstart made it), not a project root" in capsys.readouterr().err


def test_without_psycopg_errors_and_json_still_work(polluted: PollutedRoot, tmp_path: Path) -> None:
    """The fixer needs no requirement: on a bare python3 (-S: no site-packages) its error line and its
    JSON are scrubbed without psycopg, and no traceback replaces them."""
    bare = [sys.executable, "-S", str(FIXER)]
    missing = subprocess.run([*bare, "--root", str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=60)
    assert (missing.returncode, missing.stderr) == (
        2,
        f"cleanup_root.py: error: --root {tmp_path / 'nowhere'} is not a directory; pass the project root folder\n",
    )
    done = subprocess.run([*bare, "--root", str(polluted.root), "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert sorted(e["path"] for e in json.loads(done.stdout)["events"] if e["action"] == "moved") == sorted(
        polluted.expected
    )


def test_same_second_archives_do_not_collide(tmp_path: Path) -> None:
    now = datetime(2025, 12, 29, 12, 0, 0, tzinfo=timezone.utc)
    first, second = archive.make_archive(tmp_path, now), archive.make_archive(tmp_path, now)
    assert (first.name, second.name) == (
        "_archive_venv_cleanup_20251229T120000Z",
        "_archive_venv_cleanup_20251229T120000Z_2",
    )


@contextmanager
def unmovable(folder: Path) -> Iterator[None]:
    """Make folder's entries unmovable: mode bits for a user, the immutable flag for root (bits don't stop root)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        undo = ["chmod", "755", str(folder)]
    else:
        chattr = shutil.which("chattr")
        if chattr is None:
            pytest.skip("running as root without chattr: permission bits cannot stop root from moving files")
        made = subprocess.run([chattr, "+i", str(folder)], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"running as root and chattr +i is refused here ({made.stderr.strip()})")
        undo = [chattr, "-i", str(folder)]
    try:
        yield
    finally:
        subprocess.run(undo, check=True)


def test_unmovable_entries_are_reported_one_by_one(polluted: PollutedRoot) -> None:
    in_bin = sorted(p for p in polluted.expected if p.startswith("bin/"))
    with unmovable(polluted.root / "bin"):
        result = run_fixer("--root", polluted.root)
    assert result.returncode == 1
    # pyvenv.cfg stays too: the proof lets a re-run finish the job.
    assert reported(result.stdout, "FAILED") == in_bin
    assert (
        f"held       pyvenv.cfg: kept as the venv proof because {len(in_bin)} entry(ies) could not move"
        in result.stdout
    )
    assert all(line.endswith("; left in place") for line in result.stdout.splitlines() if line.startswith("FAILED"))
    assert all((polluted.root / p).is_symlink() or (polluted.root / p).is_file() for p in in_bin)
    rerun = run_fixer("--root", polluted.root)
    assert rerun.returncode == 0 and not scan_root(polluted.root).artifacts


def test_proof_is_held_while_a_suspect_remains(polluted: PollutedRoot) -> None:
    vendored = next((polluted.root / "lib").iterdir()) / "site-packages" / "vendored.py"
    write(vendored, "# tracked: lib/ is project content now\n")
    git(polluted.root, "add", "-f", str(vendored))
    dry = run_fixer("--root", polluted.root, "--dry-run")
    assert reported(dry.stdout, "would-hold") == ["pyvenv.cfg"] and "pyvenv.cfg" not in reported(
        dry.stdout, "would-move"
    )
    result = run_fixer("--root", polluted.root)
    assert result.returncode == 1
    assert (
        "held       pyvenv.cfg: kept as the venv proof because 1 suspect(s) remain; fix those and re-run"
        in result.stdout
    )
    assert (polluted.root / "pyvenv.cfg").is_file()
    rerun = scan_root(polluted.root)
    assert rerun.venv_home and [s.path for s in rerun.suspects] == ["lib"]
    assert [a.path for a in rerun.artifacts] == ["pyvenv.cfg"]


def test_control_characters_in_names_cannot_fake_report_lines(polluted: PollutedRoot) -> None:
    name = "bin/weird\nFAILED     pyvenv.cfg\x1b[2K"
    write(polluted.root / name, f"#!{polluted.root}/bin/python\nimport sys\n", 0o755)
    actions = {"venv", "artifact", "archive", "moved", "verified", "summary", "undo"}
    result = run_fixer("--root", polluted.root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {line.split()[0] for line in result.stdout.splitlines()} == actions
    assert "moved      bin/weird\\nFAILED     pyvenv.cfg\\x1b[2K: -> " in result.stdout
    back = run_fixer("--restore", only_archive(polluted), "--json")
    assert back.returncode == 0 and (polluted.root / name).is_file()
    assert name in [e["path"] for e in json.loads(back.stdout)["events"]]


def test_a_very_deep_site_packages_is_archived_and_restored(polluted: PollutedRoot) -> None:
    deep = next((polluted.root / "lib").iterdir()) / "site-packages" / "deep"
    deep.joinpath(*["d"] * 600).mkdir(parents=True)
    (deep.joinpath(*["d"] * 600) / "bottom.txt").write_text("600 folders down\n")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 100)  # a walk that recursed per folder would stop here
    try:
        before = archive.fingerprint(polluted.root / "lib")
    finally:
        sys.setrecursionlimit(limit)
    result = run_fixer("--root", polluted.root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lib" in reported(result.stdout, "moved")
    back = run_fixer("--restore", only_archive(polluted))
    assert back.returncode == 0, back.stdout + back.stderr
    assert archive.fingerprint(polluted.root / "lib") == before


def test_a_failed_first_manifest_write_leaves_no_archive_folder(polluted: PollutedRoot) -> None:
    before = tree_snapshot(polluted.root, skip_archives=False)

    def no_file_growth() -> None:  # Python ignores SIGXFSZ, so every write past 0 bytes fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    result = subprocess.run(
        [sys.executable, str(FIXER), "--root", str(polluted.root)],
        capture_output=True,
        text=True,
        preexec_fn=no_file_growth,
        timeout=120,
    )
    assert result.returncode == 2 and result.stderr == "cleanup_root.py: error: File too large\n", result.stderr
    assert polluted.archives() == []
    assert tree_snapshot(polluted.root, skip_archives=False) == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["--root", "/nonexistent/project"], "cleanup_root.py: error: --root /nonexistent/project is not a directory"),
        (
            ["--restore", "/nonexistent/_archive_venv_cleanup_x"],
            "cleanup_root.py: error: archive /nonexistent/_archive_venv_cleanup_x",
        ),
    ],
)
def test_bad_paths_are_one_clear_line(args: list[str], message: str) -> None:
    result = run_fixer(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_dry_run_restore_is_a_usage_error(tmp_path: Path) -> None:
    result = run_fixer("--dry-run", "--restore", tmp_path)
    assert result.returncode == 2 and "--restore has no preview" in result.stderr


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is unreadable or corrupt"),
        ('{"format": 1, "entries": [{"source": "../etc", "destination": "x"}]}', "has malformed entries"),
        ('["a list"]', "is not a cleanup manifest"),
    ],
)
def test_bad_manifest_is_one_clear_line(tmp_path: Path, content: str, message: str) -> None:
    write(tmp_path / "_archive_venv_cleanup_x" / "manifest.json", content)
    result = run_fixer("--restore", tmp_path / "_archive_venv_cleanup_x")
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1


# --- property: over generated trees, project content never moves and restore is exact -------------

PROJECT_FILES = {  # path -> content; {root} is filled in. Venv-looking ones in bin/ are always tracked.
    "bin/deploy.sh": "#!/bin/sh\necho deploy\n",
    "bin/activate": "VIRTUAL_ENV=/opt/project  # the project's own, tracked\n",
    "bin/runner": "#!{root}/bin/python3\n# tracked, so project content\n",
    "src/app.py": "print('app')\n",
    "setup.py": "print('setup')\n",
    "scripts/run.sh": "echo run\n",
    "venv/pyvenv.cfg": "home = /usr/bin\n",
    "venv/bin/activate": "VIRTUAL_ENV=venv\n",
    ".venv/lib/python3.11/site-packages/x.py": "x = 1\n",
    "lib/python3.11/site-packages/vendored.py": "# tracked under a venv-shaped lib\n",
    "include/project.h": "int x;\n",
}
ALWAYS_TRACKED = {"bin/activate", "bin/runner", "lib/python3.11/site-packages/vendored.py"}
VENV_PIECES = ("lib", "lib/links", "lib64", "include", "bin/activate", "bin/python", "bin/pip")
SITE = "lib/python3.11/site-packages"


def symlink(path: Path, target: str) -> None:
    """Create a symlink and its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def build_tree(root: Path, outside: Path, project: dict[str, bool], venv: set[str], cfg: str | None) -> None:
    """Lay out project files (path -> tracked?), then the venv pieces, then pyvenv.cfg."""
    for rel in project:
        write(root / rel, PROJECT_FILES[rel].format(root=root))
    git(root, "init", "-q")
    tracked = [rel for rel, is_tracked in project.items() if is_tracked or rel in ALWAYS_TRACKED]
    if tracked:
        git(root, "add", "-f", *tracked)
    (root / "outside").symlink_to(outside)
    (outside / "data.txt").write_text("before\n")
    pieces = {
        "lib": lambda: write(root / SITE / "pkg/__init__.py", "", 0o600),
        # links inside an archived folder: to a file outside (changed before restore), dangling, a loop
        "lib/links": lambda: (
            symlink(root / SITE / "pkg/data", str(outside / "data.txt")),
            symlink(root / SITE / "gone", str(outside / "never-there")),
            symlink(root / SITE / "pkg/loop", ".."),
        ),
        "lib64": lambda: symlink(root / "lib64", "lib"),
        "include": lambda: (root / "include/python3.11").mkdir(parents=True, exist_ok=True),
        "bin/activate": lambda: write(root / "bin/activate", f'VIRTUAL_ENV="{root}"\n'),
        "bin/python": lambda: symlink(root / "bin/python", "/usr/bin/python3"),
        "bin/pip": lambda: write(root / "bin/pip", f"#!{root}/bin/python\nimport pip\n", 0o755),
    }
    for piece in sorted(venv):
        if not os.path.lexists(root / piece):
            pieces[piece]()
    if cfg is not None:
        write(root / "pyvenv.cfg", cfg)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    project=st.dictionaries(st.sampled_from(sorted(PROJECT_FILES)), st.booleans(), max_size=len(PROJECT_FILES)),
    venv=st.sets(st.sampled_from(VENV_PIECES)),
    cfg=st.sampled_from([None, "home = /usr/bin\nversion = 3.11.7\n", "version = 3.11.7\n"]),
)
def test_project_content_never_moves_and_restore_is_exact(
    project: dict[str, bool], venv: set[str], cfg: str | None
) -> None:
    with tempfile.TemporaryDirectory() as base:
        root, outside = Path(base) / "root", Path(base) / "outside"
        root.mkdir(), outside.mkdir()
        build_tree(root, outside, project, venv, cfg)
        before = tree_snapshot(root)
        report = archive.Report()
        outcome = archive.clean(root, False, report)
        assert report.count("FAILED") == 0, report.events
        after = tree_snapshot(root)
        assert all(after.get(rel) == before[rel] for rel in project)
        if cfg is None or "home" not in cfg:
            assert outcome.archive is None and after == before
        if outcome.archive:
            (outside / "data.txt").write_text("changed outside the root after the cleanup\n")
            assert not archive.restore(Path(outcome.archive), archive.Report()).unresolved
            assert tree_snapshot(root) == before


# --- every common creator, planted with the real tool ------------------------------------------------


def test_every_creator_is_archived_exactly_and_restored_byte_for_byte(creator_made: CreatorRoot) -> None:
    """The fixer moves exactly what the creator added; git sees the project's new files again (a venv's
    '*' hid them); --restore gives every byte, mode and link back."""
    root = creator_made.root
    write(root / "src" / "new_module.py", "x = 1\n")
    hidden = ".gitignore" in creator_made.expected
    assert ("?? src/new_module.py" not in git_status(root)) == hidden
    before = tree_snapshot(root)
    done = run_fixer("--root", root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert reported(done.stdout, "moved") == sorted(creator_made.expected)
    assert f"a venv was made in the root by {creator_made.creator.named}" in done.stdout
    assert scan_root(root).clean and "?? src/new_module.py" in git_status(root)
    back = run_fixer("--restore", only_archive(creator_made))
    assert back.returncode == 0, back.stdout + back.stderr
    assert tree_snapshot(root) == before


@pytest.mark.parametrize("creator", ["venv-3.13", "uv"])
def test_an_overwritten_tracked_gitignore_is_left_to_git_with_its_fix(tmp_path: Path, creator: str) -> None:
    """The fixer archives the venv and never rewrites the tracked .gitignore: exit 1 with the one command that
    gives it back; after that command the root is clean, and restore still gives the venv back exactly."""
    made = creator_root(tmp_path, CREATOR_BY_NAME[creator], tracked_gitignore=b"build/\n")
    root = made.root
    before, gitignore = tree_snapshot(root), os.lstat(root / ".gitignore")
    done = run_fixer("--root", root)
    assert done.returncode == 1, done.stdout + done.stderr
    assert reported(done.stdout, "moved") == sorted(made.expected)
    fix = f"git -C {root} checkout HEAD -- .gitignore"
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("OVERWRITE")]
    assert line.startswith("OVERWRITE  .gitignore (file): git-tracked, overwritten with what ")
    assert f"fix: {fix} " in line
    summary = done.stdout.splitlines()[-2]
    assert summary.endswith("; 1 tracked file(s) a venv overwrote need git's fix (never done here)")
    assert (os.lstat(root / ".gitignore").st_ino, tree_snapshot(root)[".gitignore"]) == (
        gitignore.st_ino,
        before[".gitignore"],
    )
    assert [a.path for a in scan_root(root).overwritten] == [".gitignore"], "still found, with pyvenv.cfg archived"
    subprocess.run(fix.split(), check=True)
    assert scan_root(root).clean and (root / ".gitignore").read_bytes() == b"build/\n"
    again = run_fixer("--root", root)
    assert (again.returncode, again.stdout.splitlines()[-1]) == (0, "summary    nothing to clean")
    back = run_fixer("--restore", only_archive(made))
    assert back.returncode == 0, back.stdout + back.stderr
    changed_by_git = {".gitignore", ".git/index"}  # the checkout the user ran
    assert {p: f for p, f in tree_snapshot(root).items() if p not in changed_by_git} == {
        p: f for p, f in before.items() if p not in changed_by_git
    }
