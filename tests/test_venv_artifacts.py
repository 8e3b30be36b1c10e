"""The classifier: exactly the venv-made entries, by evidence; project content never; read-only."""

from __future__ import annotations

import _ctypes
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from infra_audit.core.errors import GitError
from infra_audit.core.venv_artifacts import (
    Artifact,
    Scan,
    _head,
    describe,
    describe_artifact,
    git_changed,
    git_tracked,
    in_use,
    in_use_advice,
    process_using,
    scan_root,
)
from tests.support import REPO
from tests.venv_roots import (
    CREATOR_BY_NAME,
    CreatorRoot,
    PollutedRoot,
    creator_root,
    data_wheel,
    git,
    git_status,
    make_venv,
    pip_install,
    polluted_root,
    record_digest,
    running,
    tree_snapshot,
    without_venv,
    write,
)

T = TypeVar("T")
PY_DIR = f"python{sys.version_info.major}.{sys.version_info.minor}"
GITIGNORE = {".gitignore"} if sys.version_info >= (3, 13) else set()  # what this python's venv writes besides
MANTOOL_RECORD = f"lib/{PY_DIR}/site-packages/mantool-1.0.dist-info/RECORD"  # of the data wheel pip installs


@pytest.fixture
def polluted(tmp_path: Path) -> PollutedRoot:
    """A fresh polluted root per test (no pip: 0.2 s)."""
    return polluted_root(tmp_path)


def paths(artifacts: tuple[Artifact, ...]) -> set[str]:
    """The paths of a scan's findings."""
    return {a.path for a in artifacts}


def test_finds_exactly_what_the_venv_added(polluted: PollutedRoot) -> None:
    scan = scan_root(polluted.root)
    assert paths(scan.artifacts) == polluted.expected
    assert scan.suspects == () and scan.root == polluted.root
    kinds = {a.path: a.kind for a in scan.artifacts}
    assert (kinds["pyvenv.cfg"], kinds["lib"], kinds["lib64"]) == ("file", "dir", "symlink")
    assert {kind for path, kind in kinds.items() if path.startswith("bin/")} == {"file", "symlink"}
    assert not scan.clean


def test_venv_home_is_the_cfg_home(polluted: PollutedRoot) -> None:
    cfg = (polluted.root / "pyvenv.cfg").read_text()
    home = next(line.split("=", 1)[1].strip() for line in cfg.splitlines() if line.startswith("home"))
    assert scan_root(polluted.root).venv_home == home


def test_scan_is_read_only(polluted: PollutedRoot) -> None:
    before = tree_snapshot(polluted.root)
    scan_root(polluted.root)
    assert tree_snapshot(polluted.root) == before


def test_all_venv_bin_is_one_dir_artifact(tmp_path: Path) -> None:
    make_venv(tmp_path)
    scan = scan_root(tmp_path)
    assert paths(scan.artifacts) == {"pyvenv.cfg", "lib", "lib64", "include", "bin"} | GITIGNORE
    (whole_bin,) = [a for a in scan.artifacts if a.path == "bin"]
    assert whole_bin.kind == "dir"
    assert re.fullmatch(
        r"all \d+ entries are venv-made \(activate, interpreters, entry points, installed scripts\)", whole_bin.evidence
    )


def test_entry_points_need_this_roots_shebang(polluted: PollutedRoot) -> None:
    bin_dir = polluted.root / "bin"
    write(bin_dir / "pip-like", f"#!{polluted.root}/bin/python3\nimport pip\n", 0o755)
    write(bin_dir / "long-path", f"#!/bin/sh\n'''exec' \"{polluted.root}/bin/python3\" \"$0\" \"$@\"\n' '''\n", 0o755)
    write(bin_dir / "other-venv", f"#!{polluted.root}/venv/bin/python3\n", 0o755)
    write(bin_dir / "python-ish", f"#!{polluted.root}/bin/pythonic-tool\n", 0o755)
    found = paths(scan_root(polluted.root).artifacts)
    assert {"bin/pip-like", "bin/long-path"} <= found
    assert not {"bin/other-venv", "bin/python-ish"} & found


def test_tracked_and_project_files_in_bin_stay(polluted: PollutedRoot) -> None:
    write(polluted.root / "bin" / "activate.sh", "echo project activate, no venv variable\n")
    found = paths(scan_root(polluted.root).artifacts)
    assert not {p for p in found if p.startswith("bin/task_")}
    assert not {"bin/run_tracked", "bin/local_tool", "bin/outside-link", "bin/activate.sh"} & found


def test_an_activate_script_for_another_venv_is_project_content(polluted: PollutedRoot) -> None:
    """bin/activate.prod exporting VIRTUAL_ENV=/opt/prod/venv is the project's, not this root's venv's."""
    write(polluted.root / "bin" / "activate.prod", "export VIRTUAL_ENV=/opt/prod/venv\n")
    write(polluted.root / "bin" / "activate.csh", f'setenv VIRTUAL_ENV "{polluted.root}-old"\n')
    found = paths(scan_root(polluted.root).artifacts)
    assert not {"bin", "bin/activate.prod", "bin/activate.csh"} & found
    assert {"bin/activate", "bin/activate.fish", "bin/Activate.ps1"} <= found


def test_tracked_activate_is_project_content(polluted: PollutedRoot) -> None:
    git(polluted.root, "add", "-f", "bin/activate")  # -f: the .gitignore of Python 3.13+ venvs ignores it
    assert "bin/activate" not in paths(scan_root(polluted.root).artifacts)


def test_tracked_path_under_lib_makes_it_a_suspect(polluted: PollutedRoot) -> None:
    write(polluted.root / "lib" / PY_DIR / "site-packages" / "vendored.py", "x = 1\n")
    git(polluted.root, "add", "-f", "lib")
    scan = scan_root(polluted.root)
    assert "lib" not in paths(scan.artifacts)
    assert [describe_artifact(a) for a in scan.suspects if a.path == "lib"] == [
        "lib (dir): holds only pythonX.Y/site-packages, but 1 git-tracked path(s) under it; not movable"
    ]


def test_without_proof_only_suspects(polluted: PollutedRoot) -> None:
    (polluted.root / "pyvenv.cfg").unlink()
    scan = scan_root(polluted.root)
    assert scan.venv_home is None and scan.artifacts == () and scan.root == polluted.root
    kinds = {"lib": "dir", "lib64": "symlink", "bin/activate": "file"} | dict.fromkeys(GITIGNORE, "file")
    assert {a.path: a.kind for a in scan.suspects} == kinds
    assert all("no pyvenv.cfg with 'home'" in a.evidence for a in scan.suspects)


def test_cfg_without_home_is_a_suspect(polluted: PollutedRoot) -> None:
    write(polluted.root / "pyvenv.cfg", "version = 3.11.7\n")
    scan = scan_root(polluted.root)
    assert scan.artifacts == ()
    assert [a for a in scan.suspects if a.path == "pyvenv.cfg"] == [
        Artifact("pyvenv.cfg", "file", "has no 'home' key (or is unreadable), so it proves no venv; suspect")
    ]


def test_a_pyvenv_cfg_that_is_no_untracked_file_proves_nothing(polluted: PollutedRoot) -> None:
    """A pyvenv.cfg the project tracks is its own (a template, say); a folder or a link by that name is not read
    (a link may lead to another venv's): none proves a venv, so nothing moves."""
    cfg = polluted.root / "pyvenv.cfg"
    git(polluted.root, "add", "-f", "pyvenv.cfg")
    scan = scan_root(polluted.root)
    assert (scan.venv_home, scan.artifacts, "pyvenv.cfg" in paths(scan.suspects)) == (None, (), False)
    git(polluted.root, "rm", "-q", "--cached", "pyvenv.cfg")
    cfg.rename(polluted.outside / "pyvenv.cfg")
    seen = {}
    for kind, make in (("dir", cfg.mkdir), ("symlink", lambda: cfg.symlink_to(polluted.outside / "pyvenv.cfg"))):
        make()
        scan = scan_root(polluted.root)
        assert scan.artifacts == ()
        seen[kind] = [a for a in scan.suspects if a.path == "pyvenv.cfg"]
        cfg.rmdir() if kind == "dir" else cfg.unlink()
    assert seen == {
        kind: [Artifact("pyvenv.cfg", kind, f"is a {kind}, not a file; not read, so it proves no venv")]
        for kind in ("dir", "symlink")
    }


def test_pyvenv_cfg_is_read_the_way_site_py_reads_it(tmp_path: Path) -> None:
    """Split at the first '=' (a home path may hold one), bytes that are not UTF-8 replaced, not fatal."""
    make_venv(tmp_path)
    (tmp_path / "pyvenv.cfg").write_bytes(b"home = /opt/py=3.12/bin\nprompt = caf\xe9\n")
    assert scan_root(tmp_path).venv_home == "/opt/py=3.12/bin"


def test_the_creator_is_named_as_pyvenv_cfg_names_it(tmp_path: Path) -> None:
    """uv and virtualenv write a line of their own with their version; python -m venv none, and its version as
    ``version`` (tools built on it may write only ``version_info``), or not at all: the evidence names each so."""
    make_venv(tmp_path)
    named = {}
    for lines in ("version = 3.12.1", "version_info = 3.12.1.final.0", "", "uv = 0.5.1", "virtualenv = 20.28.0"):
        (tmp_path / "pyvenv.cfg").write_text(f"home = /opt/python/bin\n{lines}\n")
        scan = scan_root(tmp_path)
        named[lines] = scan.creator, next(a.evidence for a in scan.artifacts if a.path == "pyvenv.cfg")
    written = "venv config written by"
    assert named == {
        "version = 3.12.1": (
            "python -m venv (Python 3.12.1)",
            f"{written} python -m venv (Python 3.12.1) (no uv or virtualenv line; home = /opt/python/bin)",
        ),
        "version_info = 3.12.1.final.0": (
            "python -m venv (Python 3.12.1.final.0)",
            f"{written} python -m venv (Python 3.12.1.final.0) (no uv or virtualenv line; home = /opt/python/bin)",
        ),
        "": ("python -m venv", f"{written} python -m venv (no uv or virtualenv line; home = /opt/python/bin)"),
        "uv = 0.5.1": ("uv 0.5.1", f"{written} uv 0.5.1 (its line uv = 0.5.1; home = /opt/python/bin)"),
        "virtualenv = 20.28.0": (
            "virtualenv 20.28.0",
            f"{written} virtualenv 20.28.0 (its line virtualenv = 20.28.0; home = /opt/python/bin)",
        ),
    }


def test_nothing_venv_shaped_is_clean(tmp_path: Path) -> None:
    write(tmp_path / "lib" / "helpers.sh", "echo\n")
    write(tmp_path / "include" / "project.h", "int x;\n")
    write(tmp_path / "bin" / "activate", "echo mine\n")
    (tmp_path / "lib64").symlink_to("/usr/lib")
    make_venv(tmp_path / ".venv")
    scan = scan_root(tmp_path)
    assert scan.clean and describe(scan) == []


def test_symlinked_lib_is_not_descended(polluted: PollutedRoot) -> None:
    shutil.rmtree(polluted.root / "lib")
    (polluted.outside / "lib" / PY_DIR / "site-packages").mkdir(parents=True)
    (polluted.root / "lib").symlink_to(polluted.outside / "lib")
    found = paths(scan_root(polluted.root).artifacts)
    assert "lib" not in found and "lib64" in found


def test_interpreter_links_are_symlink_artifacts(polluted: PollutedRoot) -> None:
    (polluted.root / "bin" / "python3").unlink()
    (polluted.root / "bin" / "python3").symlink_to("/nonexistent/python3.11")  # dangling
    scan = scan_root(polluted.root)
    assert [(a.kind, a.evidence) for a in scan.artifacts if a.path == "bin/python3"] == [
        ("symlink", "interpreter symlink -> /nonexistent/python3.11")
    ]


def test_lib64_pointing_elsewhere_is_only_a_suspect(polluted: PollutedRoot) -> None:
    (polluted.root / "lib64").unlink()
    (polluted.root / "lib64").symlink_to(polluted.outside)
    scan = scan_root(polluted.root)
    assert "lib64" in paths(scan.suspects) and "lib64" not in paths(scan.artifacts)


def test_include_with_pip_headers_is_venv_made(polluted: PollutedRoot) -> None:
    write(polluted.root / "include" / "site" / PY_DIR / "greenlet" / "greenlet.h", "/* */\n")
    assert "include" in paths(scan_root(polluted.root).artifacts)
    write(polluted.root / "include" / "project.h", "int x;\n")
    assert "include" not in paths(scan_root(polluted.root).artifacts)


def test_include_site_holding_a_project_folder_is_project_content(polluted: PollutedRoot) -> None:
    """pip puts headers in include/site/pythonX.Y/ only: any other folder there is the project's."""
    write(polluted.root / "include" / "site" / "project" / "api.h", "int x;\n")
    assert "include" not in paths(scan_root(polluted.root).artifacts)


def test_weird_names_and_special_files_do_not_crash(polluted: PollutedRoot) -> None:
    bin_dir = os.fsencode(polluted.root / "bin")
    for name in (b"new\nline", b"\xff\xfe-latin", b"sp ace"):
        with open(os.path.join(bin_dir, name), "wb") as handle:
            handle.write(b"#!/bin/sh\n")
    os.mkfifo(polluted.root / "bin" / "fifo")
    scan = scan_root(polluted.root)
    assert paths(scan.artifacts) == polluted.expected


def suspects_seen_without_root_powers(root: Path) -> dict[str, str]:
    """scan_root's suspects (path -> evidence) as a process that may not read what its mode forbids: as
    root, one without the capabilities that let root list any folder (setpriv drops them for good)."""
    scan = (
        "import json, sys; from pathlib import Path; from infra_audit.core.venv_artifacts import scan_root; "
        "print(json.dumps({a.path: a.evidence for a in scan_root(Path(sys.argv[1])).suspects}))"
    )
    powerless = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    done = subprocess.run(
        [*powerless, sys.executable, "-c", scan, str(root)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_unreadable_bin_is_reported_not_raised(polluted: PollutedRoot) -> None:
    """Root included (CI runs as root): a bin/ the scan may not list is left for review, never a crash."""
    (polluted.root / "bin").chmod(0)
    try:
        suspects = suspects_seen_without_root_powers(polluted.root)
    finally:
        (polluted.root / "bin").chmod(0o755)
    assert suspects.get("bin") == "could not be listed; left for review"


def test_describe_lines(tmp_path: Path) -> None:
    scan = Scan(
        tmp_path,
        "/usr/bin",
        (Artifact("lib64", "symlink", "symlink -> lib"),),
        (Artifact("bin/activate", "file", "only a suspect"),),
    )
    assert describe(scan) == ["lib64 (symlink): symlink -> lib", "bin/activate (file): only a suspect"]


def test_git_tracked_lists_relative_paths(polluted: PollutedRoot, tmp_path: Path) -> None:
    tracked = git_tracked(polluted.root)
    assert "bin/task_00.sh" in tracked and "notes.txt" not in tracked
    assert git_tracked(polluted.outside) == frozenset()


def fake_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    """Put a stand-in `git` first on PATH."""
    write(tmp_path / "fakebin" / "git", f"#!/bin/sh\n{body}\n", 0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "fakebin"))


def test_git_missing_outside_a_repository_means_nothing_tracked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert git_tracked(tmp_path) == frozenset()


def test_git_missing_inside_a_repository_refuses_to_guess(
    polluted: PollutedRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without git, a tracked bin/activate would look like a leftover: a .git above the root makes git a must."""
    git(polluted.root, "add", "-f", "bin/activate")  # -f: the .gitignore of Python 3.13+ venvs ignores it
    write(polluted.root / "sub" / "bin" / "activate", f'VIRTUAL_ENV="{polluted.root}/sub"\n')  # a suspect there
    monkeypatch.setenv("PATH", str(polluted.root / "empty"))
    for root in (polluted.root, polluted.root / "sub"):
        with pytest.raises(GitError) as refused:
            scan_root(root)
        assert str(refused.value) == (
            f"{polluted.root}/.git makes {root} part of a git repository, but git is not installed (not on PATH); "
            "without git's list of tracked files nothing can move safely: install git or repair the repository, "
            "then run again"
        )
    (polluted.root / "sub" / "bin" / "activate").unlink()
    assert scan_root(polluted.root / "sub").clean, "nothing venv-like: git need not be asked (a slim image has none)"


@pytest.mark.parametrize("how", ["ceiling", "broken worktree"])
def test_git_told_not_to_look_up_still_lists_or_refuses(
    polluted: PollutedRoot, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """GIT_CEILING_DIRECTORIES above the root is ignored; a .git git cannot read (a worktree whose main
    repository moved) is a GitError, not 'not a repository, so nothing is tracked'."""
    git(polluted.root, "add", "-f", "bin/activate")  # -f: the .gitignore of Python 3.13+ venvs ignores it
    if how == "ceiling":
        monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(polluted.root))  # git would not look up from bin/
        assert "activate" in git_tracked(polluted.root / "bin")
    else:
        shutil.rmtree(polluted.root / ".git")
        (polluted.root / ".git").write_text(f"gitdir: {polluted.outside}/moved/.git/worktrees/project\n")
        with pytest.raises(GitError, match="part of a git repository, but git says: fatal: not a git repository"):
            git_tracked(polluted.root)


@pytest.mark.parametrize("variable", ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"])
def test_git_variables_pointing_at_another_repository_are_not_followed(
    polluted: PollutedRoot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """A git hook (pre-commit) runs with GIT_DIR, GIT_INDEX_FILE (and GIT_WORK_TREE in a repository that sets
    core.worktree) set for its own repository: the root's list of tracked files is still the root's."""
    other = polluted.outside / "other"
    write(other / "bin" / "activate", "echo the other repository's\n")
    git(other, "init", "-q")
    git(other, "add", "-f", "bin/activate")
    tracked = git_tracked(polluted.root)
    target = {"GIT_DIR": other / ".git", "GIT_WORK_TREE": tmp_path, "GIT_INDEX_FILE": other / ".git" / "index"}
    monkeypatch.setenv(variable, str(target[variable]))
    assert git_tracked(polluted.root) == tracked


def test_git_tracked_says_in_one_line_why_git_could_not_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """git's first line of complaint (bytes of any encoding shown), its exit status when it said nothing (killed
    by the OOM killer, say), or how long it was waited for; git's English is recognised whatever the user's
    language (LANGUAGE=de makes git speak German even in the C.UTF-8 locale)."""
    sleep = shutil.which("sleep")
    stranded = tmp_path / "stranded"  # a worktree whose repository is gone, in a folder whose name is not UTF-8
    stranded.mkdir()
    (stranded / ".git").write_bytes(b"gitdir: " + os.fsencode(tmp_path) + b"/\xff/moved/.git\n")
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("LANGUAGE", "de")
    assert git_tracked(tmp_path) == frozenset(), "no .git here or above: nothing is tracked"

    def refusal(body: str) -> str:
        if body:
            fake_git(tmp_path, monkeypatch, body)
        with pytest.raises(GitError) as refused:
            git_tracked(stranded)
        return str(refused.value)

    said = [refusal(""), refusal("echo 'fatal: detected dubious ownership' >&2; exit 128"), refusal("kill -9 $$")]
    monkeypatch.setattr("infra_audit.core.venv_artifacts.GIT_TIMEOUT_S", 0.2)
    said.append(refusal(f"exec {sleep} 5"))
    assert said == [
        f"{stranded}/.git makes {stranded} part of a git repository, but git says: fatal: not a git repository: "
        f"{tmp_path}/\ufffd/moved/.git; without git's list of tracked files nothing can move safely: install git or "
        "repair the repository, then run again",
        f"git ls-files failed in {stranded}: fatal: detected dubious ownership",
        f"git ls-files failed in {stranded}: exit code -9",
        f"git ls-files took over 0.2s in {stranded}; retry when git is responsive",
    ]


def test_head_never_reads_through_a_link_nor_waits_on_a_fifo(tmp_path: Path) -> None:
    """Callers lstat first, but an entry can be swapped between their lstat and this open: a link's target may be
    another venv's file, and opening a FIFO to read waits for a writer for ever."""
    write(tmp_path / "real", "#!/bin/sh\n")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    os.mkfifo(tmp_path / "fifo")
    read = never_waiting_on(tmp_path / "fifo", lambda: [_head(tmp_path / name) for name in ("link", "fifo")])
    assert read == [b"", b""]


def never_waiting_on(fifo: Path, call: Callable[[], T]) -> T:
    """``call()``, given 60 s (it takes well under a second): one that opened ``fifo`` to read, and so waits for a
    writer for ever, fails the test instead of hanging the suite (then a writer's open frees its thread)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running_call = pool.submit(call)
        try:
            return running_call.result(timeout=60)
        except concurrent.futures.TimeoutError:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            pytest.fail(f"{fifo} was opened to read, and the open waited for a writer")


def test_git_changed_says_in_one_line_why_git_could_not_compare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each failure is one line naming the root and git's first line of complaint (bytes of any encoding
    shown), or git's exit status when it said nothing (killed by a signal: the OOM killer, say)."""
    corrupt, stranded = tmp_path / "corrupt", tmp_path / "stranded"
    write(corrupt / ".gitignore", "build/\n")
    git(corrupt, "init", "-q")
    git(corrupt, "add", ".gitignore")  # no commit yet: git's copy is the index's
    (corrupt / ".git" / "index").write_bytes(b"x" * 64)  # git: "error: bad signature", then "fatal: index file corrupt"
    stranded.mkdir()  # a worktree whose repository is gone, in a folder whose name is not UTF-8
    (stranded / ".git").write_bytes(b"gitdir: " + os.fsencode(tmp_path) + b"/\xff/moved/.git\n")

    def refusal(root: Path) -> str:
        with pytest.raises(GitError) as refused:
            git_changed(root, ".gitignore")
        return str(refused.value)

    said = [refusal(corrupt), refusal(stranded)]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    said.append(refusal(corrupt))
    fake_git(tmp_path, monkeypatch, "kill -9 $$")
    said.append(refusal(corrupt))
    assert said == [
        f"git ls-files failed in {corrupt}: error: bad signature 0x78787878",
        f"git ls-files failed in {stranded}: fatal: not a git repository: {tmp_path}/\ufffd/moved/.git",
        f"git is not installed (not on PATH), so {corrupt}/.gitignore cannot be compared with git's copy; "
        "install git, then run again",
        f"git ls-files failed in {corrupt}: -9",
    ]


# --- every common creator, planted with the real tool ------------------------------------------------


def test_every_creator_is_found_by_evidence_and_named(creator_made: CreatorRoot) -> None:
    """Exactly what the creator added (its .gitignore and CACHEDIR.TAG, its bin/ companions, what pip put
    into share/, etc/ and bin/), and the creator named as pyvenv.cfg shows it."""
    scan = scan_root(creator_made.root)
    assert paths(scan.artifacts) == creator_made.expected
    assert (scan.suspects, scan.overwritten) == ((), ())
    assert scan.creator.startswith(creator_made.creator.named), scan.creator
    evidence = {a.path: a.evidence for a in scan.artifacts}
    assert evidence["pyvenv.cfg"].startswith(f"venv config written by {creator_made.creator.named}")
    if ".gitignore" in evidence:
        assert evidence[".gitignore"].endswith("writes: '*' makes git ignore every new file in the root")


@pytest.mark.parametrize(
    ("creator", "writes"),
    [
        ("venv-3.13", {".gitignore"}),
        ("virtualenv", {".gitignore", "CACHEDIR.TAG", "bin/deactivate.csh", "bin/activate.nu"}),
        ("uv", {".gitignore", "CACHEDIR.TAG", "bin/activate.ps1", "bin/deactivate.bat", "bin/pydoc.bat"}),
        ("pip-install", {"share", "etc", "bin/mantool-report"}),
        ("uv-pip-install", {"share", "etc", "bin/mantool-report", "CACHEDIR.TAG", ".lock"}),
    ],
)
def test_what_each_creator_writes_beyond_the_five_names(creator_made: CreatorRoot, writes: set[str]) -> None:
    """The entries the issue names are really there, so the test above covers them; each says why it is the venv's."""
    assert writes <= creator_made.expected
    artifacts = scan_root(creator_made.root).artifacts
    evidence = {a.path: a.evidence for a in artifacts}
    for path in writes & {"share", "etc"}:
        assert evidence[path].startswith("1 file(s) installed by ") and ".dist-info/RECORD" in evidence[path]
    assert {a.kind for a in artifacts if a.path in {"share", "etc"}} <= {"dir"}
    if "bin/mantool-report" in writes:
        assert evidence["bin/mantool-report"].startswith(
            (
                "installed by pip: listed with its sha256 in lib/python3",
                "installed by uv: listed with its sha256 in lib/python3",
            )
        )


@pytest.mark.parametrize("creator", ["pip-install"])
def test_a_folder_two_packages_installed_into_names_both_records(creator_made: CreatorRoot, tmp_path: Path) -> None:
    """A second package with its own man page and configuration: share/ and etc/ hold the files of two RECORDs."""
    pip_install(creator_made.root, data_wheel(tmp_path, "othertool"))
    evidence = {a.path: a.evidence for a in scan_root(creator_made.root).artifacts}
    records = f"{MANTOOL_RECORD}, {MANTOOL_RECORD.replace('mantool', 'othertool')}"
    assert [evidence["share"], evidence["etc"]] == [
        f"2 file(s) installed by pip, each listed with its sha256 in {records}",
        f"2 file(s) installed by pip, each listed with its sha256 in {records}",
    ]


@pytest.mark.parametrize("creator", ["pip-install"])
def test_installed_folders_holding_other_files_are_suspects(creator_made: CreatorRoot) -> None:
    """A configuration file the user edited beside one of their own, or files of the project's own (one of them
    tracked) beside a man page: the folder is no longer only what pip installed, so it is reported, with every
    reason, and stays."""
    root = creator_made.root
    (root / "etc" / "mantool" / "mantool.toml").write_text("level = 2  # tuned by hand\n")
    write(root / "etc" / "mantool" / "local.toml", "level = 3\n")
    write(root / "share" / "project" / "notes.txt", "the project's own\n")
    write(root / "share" / "project" / "tracked.txt", "the project's own, in git\n")
    git(root, "add", "-f", "share/project/tracked.txt")
    scan = scan_root(root)
    assert paths(scan.artifacts) == creator_made.expected - {"share", "etc"}
    installed = f"1 file(s) installed by pip, each listed with its sha256 in {MANTOOL_RECORD}, but"
    assert {a.path: (a.kind, a.evidence) for a in scan.suspects} == {
        "etc": (
            "dir",
            f"{installed} 1 changed since (content differs from its RECORD) and 1 other file(s) under it; not movable",
        ),
        "share": ("dir", f"{installed} 2 other file(s) and 1 git-tracked path(s) under it; not movable"),
    }


@pytest.mark.parametrize("creator", ["venv-3.13", "uv"])
def test_a_tracked_gitignore_a_creator_overwrote_is_reported_with_gits_fix(tmp_path: Path, creator: str) -> None:
    """Python 3.13 and uv write '*' over the project's .gitignore: git then hides every new file. It is no
    leftover to archive (git has the project's copy): it is reported with the command that gives it back."""
    made = creator_root(tmp_path, CREATOR_BY_NAME[creator], tracked_gitignore=b"build/\n")
    write(made.root / "src" / "new_module.py", "x = 1\n")
    assert git_status(made.root) == [" M .gitignore"], "the venv hides the project's new file from git"
    before = tree_snapshot(made.root)
    scan = scan_root(made.root)
    assert tree_snapshot(made.root) == before, "asking git changed nothing, not even its index"
    assert paths(scan.artifacts) == made.expected and ".gitignore" not in paths(scan.artifacts + scan.suspects)
    (overwritten,) = scan.overwritten
    fix = f"git -C {made.root} checkout HEAD -- .gitignore"
    assert overwritten.evidence.startswith("git-tracked, overwritten with what ")
    assert f"fix: {fix} (gives back the copy of HEAD; the fixer never rewrites a tracked file)" in overwritten.evidence
    git(made.root, "add", "-f", ".gitignore")  # staged (git add -A): the index holds the '*' now, HEAD does not
    assert scan_root(made.root).overwritten == scan.overwritten
    subprocess.run(fix.split(), check=True)
    assert scan_root(made.root).overwritten == ()
    assert "?? src/new_module.py" in git_status(made.root)


def test_a_tracked_gitignore_holding_the_venv_text_is_the_projects_choice(tmp_path: Path) -> None:
    """Only the .gitignore is compared with git's copy: another tracked file the project is editing changes nothing."""
    made = creator_root(
        tmp_path,
        CREATOR_BY_NAME["venv-3.13"],
        tracked_gitignore=b"# Created by venv; see https://docs.python.org/3/library/venv.html\n*\n",
    )
    write(made.root / "src" / "app.py", "print('work in progress')\n")
    scan = scan_root(made.root)
    assert scan.overwritten == () and ".gitignore" not in paths(scan.artifacts + scan.suspects)


def test_asking_git_about_a_tracked_gitignore_writes_nothing(tmp_path: Path) -> None:
    """The venv rewrote the project's tracked .gitignore with the very text it holds, long after its last git add
    (mtime an hour on): comparing it with git's copy must not leave git's index refreshed."""
    made = creator_root(
        tmp_path,
        CREATOR_BY_NAME["venv-3.13"],
        tracked_gitignore=b"# Created by venv; see https://docs.python.org/3/library/venv.html\n*\n",
    )
    later = os.stat(made.root / ".gitignore").st_mtime + 3600
    os.utime(made.root / ".gitignore", (later, later))
    before = tree_snapshot(made.root)
    assert scan_root(made.root).overwritten == ()
    assert tree_snapshot(made.root) == before, "asking git changed nothing, not even its index"


def test_a_gitignore_overwritten_before_the_first_commit_is_given_back_from_the_index(tmp_path: Path) -> None:
    """Before the first commit git's copy is the staged one: the fix checks it out of the index (no HEAD to name),
    and a project file named HEAD is not taken for a commit (rev-parse --verify)."""
    root, scratch = tmp_path / "project", tmp_path / "scratch"
    write(root / ".gitignore", "build/\n")
    write(root / "HEAD", "the project's notes on its release head\n")
    scratch.mkdir()
    git(root, "init", "-q")
    git(root, "add", ".gitignore", "HEAD")
    assert git_changed(root, ".gitignore") is None, "as staged"
    CREATOR_BY_NAME["uv"].make(root, scratch)
    fix = f"git -C {root} checkout -- .gitignore"
    assert scan_root(root).overwritten == (
        Artifact(
            ".gitignore",
            "file",
            f"git-tracked, overwritten with what uv writes: '*' makes git ignore every new file in the root; "
            f"fix: {fix} (gives back the copy of the index; the fixer never rewrites a tracked file)",
        ),
    )
    overwritten = scan_root(root).overwritten
    (root / "pyvenv.cfg").unlink()
    assert scan_root(root).overwritten == overwritten, "reported with no venv proven too: git has the project's copy"
    subprocess.run(fix.split(), check=True)
    assert (root / ".gitignore").read_text() == "build/\n" and scan_root(root).overwritten == ()


@pytest.mark.parametrize("creator", ["uv-pip-install"])
def test_a_cache_tag_and_a_lock_are_the_venvs_only_as_its_creator_writes_them(creator_made: CreatorRoot) -> None:
    """uv's bare CACHEDIR.TAG and empty .lock are the venv's, and a tag that names its writer is named so; a tag with
    more than comments after its signature, a .lock that holds anything, or either one tracked is the project's."""
    root = creator_made.root

    def found() -> dict[str, tuple[str, str]]:
        scan = scan_root(root)
        assert not {"CACHEDIR.TAG", ".lock"} & paths(scan.suspects)
        return {a.path: (a.kind, a.evidence) for a in scan.artifacts if a.path in {"CACHEDIR.TAG", ".lock"}}

    uv = scan_root(root).creator
    assert found() == {
        "CACHEDIR.TAG": (
            "file",
            f"cache directory tag (the bare signature, as {uv} writes it): backup tools skip the whole root",
        ),
        ".lock": ("file", f"empty: the lock uv takes on the venv it installs into ({uv})"),
    }
    signature = (root / "CACHEDIR.TAG").read_text().strip()
    (root / "CACHEDIR.TAG").write_text(f"{signature}\n# created by a backup script\n# see its wiki\n")
    (root / ".lock").write_text("4242\n")
    assert found() == {
        "CACHEDIR.TAG": ("file", "cache directory tag ('created by a backup script'): backup tools skip the whole root")
    }
    (root / "CACHEDIR.TAG").write_text(f"{signature}\nkeep: backed up by hand\n")
    assert found() == {}
    (root / "CACHEDIR.TAG").write_text(signature)
    (root / ".lock").write_text("")
    git(root, "add", "-f", "CACHEDIR.TAG", ".lock")
    assert found() == {}


@pytest.mark.parametrize("creator", ["pip-install"])
def test_a_record_is_read_whole_in_any_order_and_never_above_the_root(creator_made: CreatorRoot) -> None:
    """A RECORD's rows come in no set order and RECORDs run past 16 KiB (pip's own: 75 kB): every row is read, and
    rows without a sha256, blank, in another encoding or pointing above the root prove nothing; a missing INSTALLER
    is 'an installer'. A dist-info reached through a link is not read: it may be another venv's."""
    root = creator_made.root
    info = root / "lib" / PY_DIR / "site-packages" / "mantool-1.0.dist-info"
    data = [row for row in (info / "RECORD").read_bytes().splitlines() if row.startswith(b"../")]
    above = creator_made.outside / "data.txt"
    (info / "RECORD").write_bytes(
        b"\n".join(
            [
                b"mantool-1.0.dist-info/RECORD,,",
                b"",
                b"mantool/caf\xe9.py,sha256=" + record_digest(b"x = 1\n").encode() + b",6",  # Latin-1
                *(f"mantool/part_{i:03d}.py,sha256={record_digest(b'')},0".encode() for i in range(300)),
                f"../../../../outside/data.txt,sha256={record_digest(above.read_bytes())},17".encode(),
                *data,
            ]
        )
    )
    (info / "INSTALLER").unlink()
    for installer, named in ((None, "an installer"), (b"pip\xff\n", "pip\ufffd")):
        if installer is not None:
            (info / "INSTALLER").write_bytes(installer)
        scan = scan_root(root)
        assert (paths(scan.artifacts), scan.suspects) == (creator_made.expected, ())
        evidence = {a.path: a.evidence for a in scan.artifacts}
        assert [evidence["share"], evidence["etc"], evidence["bin/mantool-report"]] == [
            f"1 file(s) installed by {named}, each listed with its sha256 in {MANTOOL_RECORD}",
            f"1 file(s) installed by {named}, each listed with its sha256 in {MANTOOL_RECORD}",
            f"installed by {named}: listed with its sha256 in {MANTOOL_RECORD}",
        ]
    info.rename(creator_made.outside / info.name)
    info.symlink_to(creator_made.outside / info.name)
    scan = scan_root(root)
    assert (paths(scan.artifacts), scan.suspects) == (
        creator_made.expected - {"share", "etc", "bin/mantool-report"},
        (),
    )


@pytest.mark.parametrize("creator", ["pip-install"])
def test_a_link_or_a_fifo_where_a_record_lists_a_file_proves_nothing(creator_made: CreatorRoot) -> None:
    """A file a RECORD lists, replaced by a link to a copy of the same content or by a FIFO, is no longer what pip
    installed: its content is never read through the link, and the FIFO is never waited on (opening it to read
    would wait for a writer: for ever)."""
    root = creator_made.root
    for rel in ("bin/mantool-report", "share/man/man1/mantool.1"):
        copy = creator_made.outside / Path(rel).name
        (root / rel).rename(copy)
        (root / rel).symlink_to(copy)
    fifo = root / "etc" / "mantool" / "mantool.toml"
    fifo.unlink()
    os.mkfifo(fifo)
    scan = never_waiting_on(fifo, lambda: scan_root(root))
    assert paths(scan.artifacts) == creator_made.expected - {"share", "etc", "bin/mantool-report"}
    changed = (
        f"1 file(s) installed by pip, each listed with its sha256 in {MANTOOL_RECORD}, but 1 changed since "
        "(content differs from its RECORD) under it; not movable"
    )
    assert {a.path: a.evidence for a in scan.suspects} == {"share": changed, "etc": changed}


def test_a_creators_gitignore_without_proof_is_a_suspect(tmp_path: Path) -> None:
    """pyvenv.cfg gone (deleted by hand): the '*' left behind still hides the project from git."""
    made = creator_root(tmp_path, CREATOR_BY_NAME["uv"])
    (made.root / "pyvenv.cfg").unlink()
    scan = scan_root(made.root)
    assert scan.artifacts == ()
    assert [a for a in scan.suspects if a.path == ".gitignore"] == [
        Artifact(
            ".gitignore",
            "file",
            "holds exactly what uv writes: '*' makes git ignore every new file in the root; no pyvenv.cfg with "
            "'home' proves a venv was made here, so it is only a suspect",
        )
    ]


# A service: says it is up (once exec has filled in its /proc entry), then runs until the test is done with it.
READS_STDIN = "import sys; print('ready', flush=True); sys.stdin.read()"


def project_root_in(base: Path) -> Path:
    """A polluted project root in a folder named ``base`` (made here): its path holds what that name holds."""
    base.mkdir()
    return polluted_root(base).root


def test_in_use_says_why_the_venv_is_not_orphaned_and_how_to_free_it(tmp_path: Path) -> None:
    """in_use's reasons in its order, read whole (the fixer's REFUSED line and the audit's failure show them): the
    python running this, the active venv; another venv active (the advice followed) or none is no reason. The
    advice is the line a user pastes from: every path quoted, for a root whose path holds a space."""
    root = project_root_in(tmp_path / "my projects")
    artifacts = [a.path for a in scan_root(root).artifacts]
    other = str(root / "venv")  # the project's own venv/
    assert [
        in_use(root, artifacts, prefix=str(root), environ={}),
        in_use(root, artifacts, prefix=other, environ={"VIRTUAL_ENV": str(root)}),
        in_use(root, artifacts, prefix=other, environ={"VIRTUAL_ENV": other}),
        in_use(root, artifacts, prefix=other, environ={}),
        in_use(Path(sys.prefix), []),  # this very python, with this process's environment
    ] == [
        "the python running this comes from it",
        "it is the active venv: VIRTUAL_ENV",
        None,
        None,
        "the python running this comes from it",
    ]
    venv = f"'{root}/.venv"
    assert in_use_advice(root, "it is the active venv: VIRTUAL_ENV") == (
        f"the venv made in {root} is in use (it is the active venv: VIRTUAL_ENV): archiving it would pull the python "
        f"from under what runs on it. To make it safe: python3 -m venv {venv}', reinstall the project there "
        f"({venv}/bin/pip' install ...), deactivate it and restart what ran on it from there, then run "
        f"{venv}/bin/python' tools/cleanup_root.py --root '{root}'"
    )


def test_the_in_use_scan_reads_past_its_own_process_and_names_the_program(tmp_path: Path) -> None:
    """The scan skips only itself: a process listed after it in /proc (a child's pid is usually higher) is still read.
    Its VIRTUAL_ENV is read whole though the root's path holds an '=' (a folder 'branch=main'), and it is named by its
    program as the kernel keeps the name: cut to 15 bytes, here inside the 'é', shown with a replacement character."""
    root = project_root_in(tmp_path / "branch=main")
    program = tmp_path / "actualisation-été"
    program.symlink_to(shutil.which("sh"))
    command = [str(program), "-c", "echo ready; read line"]
    with running(command, env={**os.environ, "VIRTUAL_ENV": str(root)}, ready=True) as child:
        found = process_using(os.path.realpath(root), [])
    assert found == f"process {child.pid} (actualisation-\ufffd) runs from it"


@pytest.mark.parametrize(
    ("how", "program"),
    [
        ("as bin/python", "python"),
        ("as bin/python, from the root", "python"),
        ("as python3, found on its PATH", "python3"),
        ("as python3, found on a relative PATH", "python3"),
        ("holding a data file of its package in lib/ open", Path(sys.executable).name[:15]),
        ("a project script of bin/", None),
    ],
)
def test_the_in_use_scan_finds_a_process_by_the_program_it_started_as(
    polluted: PollutedRoot, how: str, program: str | None
) -> None:
    """No VIRTUAL_ENV, and bin/python links to the base python (what /proc shows mapped): only the first word of the
    command line, found as exec found it (from the process's cwd, along its PATH, past a namesake that is no
    executable), shows the venv runs; else only a file of the venv it holds open does. A running project script of
    bin/ is not the venv, though it lies in it."""
    root = polluted.root
    decoy = root.parent / "decoy"
    write(decoy / "python3", "not a program\n")
    relative = how.endswith(("from the root", "relative PATH"))
    path = f"{decoy}:{'bin' if relative else root / 'bin'}:{os.environ['PATH']}"
    command = {
        "as bin/python": [str(root / "bin" / "python"), "-c", READS_STDIN],
        "as bin/python, from the root": ["bin/python", "-c", READS_STDIN],
        "holding a data file of its package in lib/ open": [
            sys.executable,
            "-c",
            f"prices = open('prices.csv'); {READS_STDIN}",
        ],
        "a project script of bin/": ["sh", str(root / "bin" / "feed.sh")],
    }.get(how, ["python3", "-c", READS_STDIN])
    site = root / "lib" / PY_DIR / "site-packages"
    write(site / "prices.csv", "symbol,price\n")
    write(root / "bin" / "feed.sh", "#!/bin/sh\necho ready\nread line\n", 0o755)
    git(root, "add", "-f", "bin/feed.sh")  # -f: the .gitignore of Python 3.13+ venvs ignores it
    artifacts = [a.path for a in scan_root(root).artifacts]
    cwd = root if relative else site if how.startswith("holding") else None
    with running(command, without_venv(PATH=path), cwd=cwd, ready=True) as child:
        found = process_using(os.path.realpath(root), artifacts)
    assert found == (f"process {child.pid} ({program}) runs from it" if program else None)


def test_the_in_use_scan_finds_a_c_extension_mapped_from_lib(tmp_path: Path) -> None:
    """A service run by another python with the venv's site-packages on its PYTHONPATH: only /proc/<pid>/maps shows the
    C extension it loaded from lib/ (its file closed since), at a path with a space; a file it maps whose name is not
    UTF-8 (Latin-1 'données') is read past."""
    root = project_root_in(tmp_path / "my projects")
    site = root / "lib" / PY_DIR / "site-packages"
    shutil.copy(_ctypes.__file__, site)
    latin1 = tmp_path / os.fsdecode(b"donn\xe9es.bin")
    latin1.write_bytes(b"prices")
    service = (
        "import mmap, sys, _ctypes; prices = open(sys.argv[1], 'rb')\n"
        f"mapped = mmap.mmap(prices.fileno(), 0, prot=mmap.PROT_READ); {READS_STDIN}"
    )
    artifacts = [a.path for a in scan_root(root).artifacts]
    command = [sys.executable, "-c", service, str(latin1)]
    with running(command, without_venv(PYTHONPATH=str(site)), ready=True) as child:
        found = process_using(os.path.realpath(root), artifacts)
    assert found == f"process {child.pid} ({Path(sys.executable).name[:15]}) runs from it"


@contextmanager
def seeing_proc_as(uid: int) -> Iterator[None]:
    """This process reads /proc as user ``uid`` does (its effective uid; root's capabilities wait in its saved set)."""
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can read /proc as another user would, in this process")
def test_the_in_use_scan_reads_past_processes_it_may_not_read(polluted: PollutedRoot) -> None:
    """As an ordinary user sees another user's processes (here root's, read with nobody's uid): their environment,
    cwd, maps and open files are closed to it, their command line is not. The scan reads past what it may not read,
    with no traceback; a process started as the venv's bin/python is still known by its command line; one started as
    a relative bin/python cannot be placed without its cwd, so it is not counted (the scan is best effort)."""
    root = os.path.realpath(polluted.root)
    artifacts = [a.path for a in scan_root(polluted.root).artifacts]
    nobody = 65534
    with running(["bin/python", "-c", READS_STDIN], cwd=polluted.root, ready=True):
        with seeing_proc_as(nobody):
            unplaced = process_using(root, artifacts)
        command = [str(polluted.root / "bin" / "python"), "-c", READS_STDIN]
        with running(command, ready=True) as child, seeing_proc_as(nobody):
            placed = process_using(root, artifacts)
    assert (unplaced, placed) == (None, f"process {child.pid} (python) runs from it")


# --- each finding read whole: its kind and why, as the fixer shows it --------------------------------


def found_lines(scan: Scan) -> tuple[list[str], list[str]]:
    """A scan's artifacts and suspects as the fixer shows them, one line each."""
    return [describe_artifact(a) for a in scan.artifacts], [describe_artifact(a) for a in scan.suspects]


def test_a_venvs_folders_are_described_whole_and_lib64_as_it_points(tmp_path: Path) -> None:
    """Each folder's kind and reason as the fixer shows them; lib64 judged by what it is: venv's link to lib (as
    written, with a slash, or absolute), a lib-shaped folder of its own, or a link elsewhere (left for review)."""
    root = tmp_path / "project"
    make_venv(root)
    artifacts, suspects = found_lines(scan_root(root))
    assert (artifacts[1:4], suspects) == (
        [
            "lib (dir): holds only pythonX.Y/site-packages",
            "lib64 (symlink): symlink -> lib, as venv makes it",
            "include (dir): empty or only pythonX.Y/ header folders",
        ],
        [],
    )
    lib64 = root / "lib64"
    seen = {}
    for variant in ("lib/", str(root / "lib"), "a folder", str(tmp_path)):
        if lib64.is_symlink():
            lib64.unlink()
        else:
            shutil.rmtree(lib64)
        if variant == "a folder":
            (lib64 / PY_DIR / "site-packages").mkdir(parents=True)
        else:
            lib64.symlink_to(variant)
        artifacts, suspects = found_lines(scan_root(root))
        seen[variant] = [line for line in artifacts if line.startswith("lib64")], suspects
    assert seen == {
        "lib/": (["lib64 (symlink): symlink -> lib/, as venv makes it"], []),
        str(root / "lib"): ([f"lib64 (symlink): symlink -> {root}/lib, as venv makes it"], []),
        "a folder": (["lib64 (dir): holds only pythonX.Y/site-packages"], []),
        str(tmp_path): ([], [f"lib64 (symlink): symlink -> {tmp_path}, not to lib; left for review"]),
    }


def test_a_record_never_explains_what_the_creator_made_nor_git_nor_from_behind_a_link(tmp_path: Path) -> None:
    """Whatever a RECORD lists: the five names the creator's rules judge (and a project's own cache tag, lock and
    .gitignore beside them) are judged once, by those rules; .git is never offered; a RECORD reached through a
    linked lib/pythonX.Y/ proves nothing (and that lib/ is no venv's shape)."""
    root, outside = tmp_path / "project", tmp_path / "outside"
    make_venv(root)
    git(root, "init", "-q")
    before = describe(scan_root(root))
    for rel, text in {
        "CACHEDIR.TAG": "project cache tag\n",
        ".lock": "",
        ".gitignore": "*.pyc\n",
        f"include/site/{PY_DIR}/greenlet/greenlet.h": "/* */\n",
    }.items():
        write(root / rel, text)
    listed = [
        "pyvenv.cfg",
        "CACHEDIR.TAG",
        ".lock",
        ".gitignore",
        f"include/site/{PY_DIR}/greenlet/greenlet.h",
        ".git/HEAD",
    ]
    rows = [f"../../../{rel},sha256={record_digest((root / rel).read_bytes())},1" for rel in listed]
    rows.append("../../../lib64,sha256=AAAA,1")  # the link itself, as if a file
    write(root / "lib" / PY_DIR / "site-packages" / "greenlet-3.0.dist-info" / "RECORD", "\n".join(rows) + "\n")
    assert describe(scan_root(root)) == before
    man_page = ".TH TOOL 1\n"
    write(root / "share" / "man" / "tool.1", man_page)
    row = f"../../../share/man/tool.1,sha256={record_digest(man_page.encode())},11\n"
    write(outside / "python3.99" / "site-packages" / "tool-1.0.dist-info" / "RECORD", row)
    (root / "lib" / "python3.99").symlink_to(outside / "python3.99")
    assert describe(scan_root(root)) == [line for line in before if not line.startswith("lib (")]


def test_each_bin_entry_says_why_when_bin_holds_the_projects_too(tmp_path: Path) -> None:
    """A venv made with --copies beside project tools: a compiled tool is no interpreter, a script with a bare or
    unfinished shebang is the project's (no crash), pip's exec form runs this venv's python quoted or not, even as
    the last line of a file."""
    root = tmp_path / "project"
    subprocess.run(
        [sys.executable, "-m", "venv", "--copies", "--without-pip", str(root)], check=True, capture_output=True
    )
    shutil.copy("/bin/true", root / "bin" / "compiled-tool")
    exec_line = "#!/bin/sh\n'''exec' {} \"$0\" \"$@\""
    for name, text in {
        "bare-shebang": "#!\necho\n",
        "sh-without-newline": "#!/bin/sh",
        "unquoted": exec_line.format(f"{root}/bin/python3") + "\n' '''\n",
        "exec-line-last": exec_line.format(f'"{root}/bin/python3"'),
    }.items():
        write(root / "bin" / name, text, 0o755)
    artifacts, suspects = found_lines(scan_root(root))
    activation = "activation script (sets VIRTUAL_ENV to this root)"
    copied = "interpreter binary copied by venv --copies"
    assert ([line for line in artifacts if line.startswith("bin")], suspects) == (
        [
            f"bin/Activate.ps1 (file): {activation}",
            f"bin/activate (file): {activation}",
            f"bin/activate.csh (file): {activation}",
            f"bin/activate.fish (file): {activation}",
            f"bin/exec-line-last (file): entry point; shebang runs {root}/bin/python3",
            f"bin/python (file): {copied}",
            f"bin/python3 (file): {copied}",
            f"bin/{PY_DIR} (file): {copied}",
            f"bin/unquoted (file): entry point; shebang runs {root}/bin/python3",
        ],
        [],
    )


def test_what_git_tracks_stays_the_projects_with_or_without_proof(tmp_path: Path) -> None:
    """A tracked lib64 and bin/activate are never found (the rest of bin/ is, file by file), nor suspects without a
    proven venv; a bin/ that is a git submodule is never looked into."""
    root = tmp_path / "project"
    make_venv(root)
    git(root, "init", "-q")
    git(root, "add", "-f", "lib64", "bin/activate")
    proven = found_lines(scan_root(root))
    cfg = (root / "pyvenv.cfg").read_text()
    (root / "pyvenv.cfg").write_text("version = 3.11.7\n")
    unproven = found_lines(scan_root(root))
    (root / "pyvenv.cfg").write_text(cfg)
    git(root, "rm", "-q", "--cached", "bin/activate")
    git(root, "update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},bin")
    submodule = found_lines(scan_root(root))
    bin_files = [
        "bin/Activate.ps1",
        "bin/activate.csh",
        "bin/activate.fish",
        "bin/python",
        "bin/python3",
        f"bin/{PY_DIR}",
    ]
    assert [line.split(" ", 1)[0] for line in proven[0] + proven[1]] == ["pyvenv.cfg", "lib", "include", *bin_files]
    assert unproven == (
        [],
        [
            "pyvenv.cfg (file): has no 'home' key (or is unreadable), so it proves no venv; suspect",
            "lib (dir): holds only pythonX.Y/site-packages; no pyvenv.cfg with 'home' proves a venv was made here, "
            "so it is only a suspect",
        ],
    )
    assert [line.split(" ", 1)[0] for line in submodule[0] + submodule[1]] == ["pyvenv.cfg", "lib", "include"]


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A folder any user may enter (pytest's tmp_path lies in root's 0700 folder), removed after."""
    folder = Path(tempfile.mkdtemp(prefix="venv-unlistable-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can scan as another user would, in this process")
def test_folders_the_scan_may_not_list_are_left_for_review_and_prove_nothing(open_tmp: Path) -> None:
    """As a user who may enter but not list bin/, lib/, lib64/ and include/ (root's, mode 0311; scanned with
    nobody's uid): each is left for review, never moved, never a crash; without a proven venv none is a suspect,
    as nothing shows it holds a venv's shape."""
    root = open_tmp / "project"
    make_venv(root)
    (root / "lib64").unlink()
    (root / "lib64" / PY_DIR / "site-packages").mkdir(parents=True)
    for name in ("bin", "lib", "lib64", "include"):
        (root / name).chmod(0o311)
    with seeing_proc_as(65534):  # tracked given: git refuses a repository another user owns, and there is none here
        proven = found_lines(scan_root(root, frozenset()))
    unlisted = "(dir): could not be listed; left for review"
    assert ([line.split(" ", 1)[0] for line in proven[0]], proven[1]) == (
        ["pyvenv.cfg"],
        [f"lib {unlisted}", f"lib64 {unlisted}", f"include {unlisted}", f"bin {unlisted}"],
    )
    (root / "pyvenv.cfg").write_text("version = 3.11.7\n")
    with seeing_proc_as(65534):
        unproven = found_lines(scan_root(root, frozenset()))
    assert unproven == ([], ["pyvenv.cfg (file): has no 'home' key (or is unreadable), so it proves no venv; suspect"])


def test_git_changed_reads_git_copy_of_that_file_alone(tmp_path: Path) -> None:
    """The copy git keeps of that one file: not the first file of the commit (``.editorconfig`` sorts before
    ``.gitignore``), and none at all for a file staged since the last commit (it then differs from HEAD)."""
    root = tmp_path / "project"
    write(root / ".editorconfig", "root = true\n")
    write(root / ".gitignore", "build/\n")
    git(root, "init", "-q")
    git(root, "add", ".editorconfig", ".gitignore")
    git(root, "commit", "-qm", "editor and ignore settings")
    assert git_changed(root, ".gitignore") is None
    write(root / "notes" / ".gitignore", "*.tmp\n")
    git(root, "add", "notes/.gitignore")
    assert git_changed(root / "notes", ".gitignore") == "HEAD", "staged since the last commit"
