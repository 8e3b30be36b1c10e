"""infra_audit/sandbox/envfile.py: `start` then `stop` gives .env back byte for byte, and never loses a user's line."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra_audit.core import files
from infra_audit.core.errors import EnvFileError
from infra_audit.sandbox import envfile
from infra_audit.sandbox.envfile import restore, set_db_url

URL = "postgresql://trader:s3cret-token@127.0.0.1:54321/mt5_crs"
OTHER_URL = "postgresql://trader:0ther-token@127.0.0.1:54999/mt5_crs"

ROUND_TRIPS = {
    "empty": b"",
    "lf": b"A=1\nB=2\n",
    "crlf": b"A=1\r\nB=2\r\n",
    "crlf, no final newline": b"A=1\r\nB=2",
    "no final newline": b"# settings\nA=1",
    "comments and blanks": b"# top\n\n  # indented\nA=1 # trailing\n\n\n",
    "export DB_URL": b"export DB_URL=postgresql://me@db/prod\nA=1\n",
    "DB_URL with spaces and comment": b"A=1\n  DB_URL = 'postgresql://me@db/prod' # mine\n",
    "two DB_URL lines": b"DB_URL=one\nexport DB_URL=two\r\n",
    "DB_URL= inside a quoted value": b'CERT="-----\nDB_URL=not-a-binding\n-----"\nA=1\n',
    "multi-line quoted DB_URL, CRLF": b'\r\n\r\nDB_URL="postgresql://me@db/\r\nprod"\r\nX=1',
    "not UTF-8": b"NAME=caf\xe9\n",
}


@pytest.fixture
def box(tmp_path: Path) -> Path:
    """The caller's private folder for the record (.sandbox/ in the sandbox)."""
    folder = tmp_path / ".sandbox"
    folder.mkdir(mode=0o700)
    return folder


def write(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("original", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_start_then_stop_gives_back_the_exact_bytes_and_mode(tmp_path: Path, box: Path, original: bytes) -> None:
    env = write(tmp_path / ".env", original, 0o640)
    saved = set_db_url(env, URL, box, force=True)
    assert envfile.has_db_url(env.read_bytes()) and URL.encode() in env.read_bytes()
    assert stat.S_IMODE(env.stat().st_mode) == 0o640
    message = restore(env, saved)
    assert env.read_bytes() == original, message
    assert stat.S_IMODE(env.stat().st_mode) == 0o640


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o664, 0o200], ids=oct)
def test_the_mode_is_kept_while_the_sandbox_runs_and_after(tmp_path: Path, box: Path, mode: int) -> None:
    env = write(tmp_path / ".env", b"A=1\n", mode)
    if not os.access(env, os.R_OK):  # 0200 for an ordinary user: only root reads it
        with pytest.raises(EnvFileError, match="is not readable: left untouched"):
            set_db_url(env, URL, box)
        assert stat.S_IMODE(env.stat().st_mode) == mode and envfile.load_saved(box) is None
        return
    saved = set_db_url(env, URL, box)
    assert stat.S_IMODE(env.stat().st_mode) == mode
    restore(env, saved)
    assert stat.S_IMODE(env.stat().st_mode) == mode and env.read_bytes() == b"A=1\n"


def test_our_line_uses_the_files_line_ending_and_keeps_a_missing_final_newline(tmp_path: Path, box: Path) -> None:
    env = write(tmp_path / ".env", b"A=1\r\nB=2")
    set_db_url(env, URL, box)
    lines = env.read_bytes().split(b"\r\n")
    assert lines[:2] == [b"A=1", b"B=2"] and lines[-1] == f"DB_URL={URL}".encode()
    assert b"\n" not in env.read_bytes().replace(b"\r\n", b"")


def test_a_db_url_line_inside_a_quoted_value_is_not_a_binding(tmp_path: Path, box: Path) -> None:
    original = b'CERT="\nDB_URL=inside\n"\n'
    env = write(tmp_path / ".env", original)
    set_db_url(env, URL, box)  # no --force needed: there is no DB_URL binding to replace
    assert env.read_bytes().startswith(original)


def test_an_existing_db_url_is_refused_untouched_without_force(tmp_path: Path, box: Path) -> None:
    env = write(tmp_path / ".env", b"export DB_URL=mine\n")
    with pytest.raises(EnvFileError, match="already sets DB_URL: pass --force"):
        set_db_url(env, URL, box)
    assert env.read_bytes() == b"export DB_URL=mine\n"
    assert envfile.load_saved(box) is None


def test_force_sets_the_users_db_url_aside_and_stop_brings_it_back(tmp_path: Path, box: Path) -> None:
    env = write(tmp_path / ".env", b"A=1\n\nDB_URL=mine\n")
    saved = set_db_url(env, URL, box, force=True)
    assert "set aside your DB_URL" in saved.message
    text = env.read_bytes()
    assert text.startswith(b"A=1\n\n# DB_URL=mine  # set aside by tools/sandbox.py")  # the blank line stays blank
    assert envfile.has_db_url(text)
    restore(env, saved)
    assert env.read_bytes() == b"A=1\n\nDB_URL=mine\n"


def test_a_symlinked_env_stays_a_link_to_the_same_file(tmp_path: Path, box: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    real = write(shared / "common.env", b"A=1\r\n", 0o600)
    env = tmp_path / ".env"
    env.symlink_to("shared/common.env")
    saved = set_db_url(env, URL, box)
    assert env.is_symlink() and os.readlink(env) == "shared/common.env"
    assert URL.encode() in real.read_bytes()
    restore(env, saved)
    assert env.is_symlink() and os.readlink(env) == "shared/common.env"
    assert real.read_bytes() == b"A=1\r\n" and stat.S_IMODE(real.stat().st_mode) == 0o600
    assert sorted(p.name for p in shared.iterdir()) == ["common.env"]  # no temporary file left behind


@pytest.mark.parametrize("mode", [0o444, 0o400, 0o044])
def test_a_read_only_env_is_refused_untouched(tmp_path: Path, box: Path, mode: int) -> None:
    env = write(tmp_path / ".env", b"A=1\n", mode)
    with pytest.raises(EnvFileError, match="(read-only|is not readable): left untouched"):  # an ordinary user
        set_db_url(env, URL, box)  # cannot read mode 0044
    assert stat.S_IMODE(env.stat().st_mode) == mode
    env.chmod(0o600)  # to look inside
    assert env.read_bytes() == b"A=1\n"
    assert envfile.load_saved(box) is None


def test_an_env_made_read_only_while_the_sandbox_ran_is_left_alone(tmp_path: Path, box: Path) -> None:
    env = write(tmp_path / ".env", b"A=1\n")
    saved = set_db_url(env, URL, box)
    written = env.read_bytes()
    env.chmod(0o444)
    assert "read-only: left untouched" in restore(env, saved)
    assert env.read_bytes() == written and stat.S_IMODE(env.stat().st_mode) == 0o444


def test_a_hard_linked_env_is_refused_untouched(tmp_path: Path, box: Path) -> None:
    env = write(tmp_path / ".env", b"A=1\n")
    os.link(env, tmp_path / "twin.env")
    with pytest.raises(EnvFileError, match="2 hard links: left untouched"):
        set_db_url(env, URL, box)
    assert env.read_bytes() == b"A=1\n" and env.stat().st_ino == (tmp_path / "twin.env").stat().st_ino


def test_a_missing_env_is_created_private_and_removed_at_stop(tmp_path: Path, box: Path) -> None:
    env = tmp_path / ".env"
    saved = set_db_url(env, URL, box)
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert "removed" in restore(env, saved) and not env.exists()


def test_a_created_env_the_user_added_to_is_kept_without_our_lines(tmp_path: Path, box: Path) -> None:
    env = tmp_path / ".env"
    saved = set_db_url(env, URL, box)
    env.write_bytes(env.read_bytes() + b"MINE=1\n")
    restore(env, saved)
    assert env.read_bytes() == b"MINE=1\n"


def test_user_edits_between_start_and_stop_are_kept(tmp_path: Path, box: Path) -> None:
    env = write(tmp_path / ".env", b"A=1\r\nDB_URL=mine\r\nB=2")
    saved = set_db_url(env, URL, box, force=True)
    env.write_bytes(b"NEW=0\r\n" + env.read_bytes().replace(b"A=1", b"A=changed") + b"\r\nC=3")
    message = restore(env, saved)
    assert env.read_bytes() == b"NEW=0\r\nA=changed\r\nDB_URL=mine\r\nB=2\r\nC=3", message
    assert "kept your other changes" in message


def test_the_users_own_new_db_url_is_kept_and_said(tmp_path: Path, box: Path) -> None:
    env = write(tmp_path / ".env", b"DB_URL=old\n")
    saved = set_db_url(env, URL, box, force=True)
    env.write_bytes(env.read_bytes() + b"DB_URL=new\n")
    message = restore(env, saved)
    assert env.read_bytes() == b"# DB_URL=old\nDB_URL=new\n"
    assert "kept the DB_URL you set since" in message


def test_our_line_changed_by_the_user_is_theirs(tmp_path: Path, box: Path) -> None:
    env = write(tmp_path / ".env", b"A=1\n")
    saved = set_db_url(env, URL, box)
    env.write_bytes(env.read_bytes().replace(URL.encode(), b"postgresql://me@elsewhere/db"))
    message = restore(env, saved)
    assert env.read_bytes() == b"A=1\nDB_URL=postgresql://me@elsewhere/db\n"
    assert "kept the DB_URL you set since" in message


def test_a_file_without_our_lines_is_left_alone(tmp_path: Path, box: Path) -> None:
    env = write(tmp_path / ".env", b"A=1\n")
    saved = set_db_url(env, URL, box)
    env.write_bytes(b"REWRITTEN=1\n")
    assert "left as it is" in restore(env, saved)
    assert env.read_bytes() == b"REWRITTEN=1\n"


def test_a_deleted_env_is_not_brought_back(tmp_path: Path, box: Path) -> None:
    env = write(tmp_path / ".env", b"A=1\n")
    saved = set_db_url(env, URL, box)
    env.unlink()
    assert "gone" in restore(env, saved) and not env.exists()


@pytest.mark.parametrize("original", [b"A=1\n", b"DB_URL=mine\r\n", b""], ids=["plain", "own DB_URL", "no .env"])
def test_a_lost_record_then_force_then_stop_gives_back_no_dead_url(tmp_path: Path, box: Path, original: bytes) -> None:
    """`start`, `rm -rf .sandbox`, `start --force`, `stop`: the first sandbox's URL is dead, never 'original'."""
    env = tmp_path / ".env"
    if original:
        write(env, original)
    set_db_url(env, OTHER_URL, box, force=True)
    shutil.rmtree(box)
    box.mkdir()
    saved = set_db_url(env, URL, box, force=True)
    assert OTHER_URL.encode() not in env.read_bytes() and OTHER_URL.encode() not in saved.original
    assert "dropped the DB_URL an earlier sandbox run left" in saved.message
    restore(env, saved)
    assert (env.read_bytes() if original else env.exists()) == (original or False)


def test_the_users_db_url_is_told_from_the_sandboxes(tmp_path: Path, box: Path) -> None:
    env = tmp_path / ".env"
    assert envfile.user_db_url(env, box) is None
    set_db_url(env, OTHER_URL, box)
    assert envfile.user_db_url(env, box) is None  # only a sandbox's line, live or dead
    write(env, b"DB_URL=mine\n")
    set_db_url(env, OTHER_URL, box, force=True)
    shutil.rmtree(box)
    assert envfile.user_db_url(env, box) == "mine"  # the set-aside one is what the user has


def test_a_second_start_with_the_record_undoes_the_first(tmp_path: Path, box: Path) -> None:
    env = write(tmp_path / ".env", b"DB_URL=mine\n")
    set_db_url(env, OTHER_URL, box, force=True)
    saved = set_db_url(env, URL, box, force=True)
    assert OTHER_URL.encode() not in env.read_bytes()
    restore(env, saved)
    assert env.read_bytes() == b"DB_URL=mine\n"


def test_another_checkouts_live_line_is_not_taken_for_dead(tmp_path: Path, box: Path) -> None:
    """Two checkouts sharing one .env through a link: one's `start` must not delete the other's line."""
    env = write(tmp_path / ".env", b"A=1\n")
    other_box = tmp_path / "other-checkout" / ".sandbox"
    other_box.mkdir(parents=True)
    set_db_url(env, OTHER_URL, other_box)
    theirs = env.read_bytes()
    saved = set_db_url(env, URL, box, force=True)
    assert "dropped" not in saved.message and "set aside" in saved.message
    restore(env, saved)
    assert env.read_bytes() == theirs


def test_a_planted_symlink_at_a_temporary_name_is_not_followed(tmp_path: Path, box: Path, monkeypatch) -> None:
    victim = write(tmp_path / "victim", b"precious\n")
    env = write(tmp_path / ".env", b"A=1\n")
    planted = [tmp_path / ".env.sandbox-tmp", tmp_path / ".env.planted.tmp"]
    for link in planted:
        link.symlink_to(victim)
    names = iter(planted)
    real_temp_path = files._temp_path
    monkeypatch.setattr(files, "_temp_path", lambda target: next(names, None) or real_temp_path(target))
    saved = set_db_url(env, URL, box)
    restore(env, saved)
    assert victim.read_bytes() == b"precious\n"
    assert all(link.is_symlink() for link in planted)
    assert env.read_bytes() == b"A=1\n" and not env.is_symlink()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_the_owner_is_kept(tmp_path: Path, box: Path) -> None:
    env = write(tmp_path / ".env", b"A=1\n")
    os.chown(env, 65534, 65534)
    saved = set_db_url(env, URL, box)
    assert (env.stat().st_uid, env.stat().st_gid) == (65534, 65534)
    restore(env, saved)
    assert (env.stat().st_uid, env.stat().st_gid) == (65534, 65534)


def test_the_record_is_private(tmp_path: Path, box: Path) -> None:
    set_db_url(tmp_path / ".env", URL, box)
    assert stat.S_IMODE((box / envfile.RECORD).stat().st_mode) == 0o600


FRAGMENTS = [
    "A=1",
    "export DB_URL=x",
    "DB_URL = 'y' # c",
    "# comment",
    "",
    "  ",
    'B="multi\nDB_URL=inside\n"',
    "C='x\r\ny'",
    "DB_URL",
    "not a binding",
    "=",
    "#DB_URL=z",
]


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(FRAGMENTS), max_size=6),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
    st.sampled_from(["none", "prepend", "append"]),
)
def test_round_trip_property(lines: list[str], eol: str, final_newline: bool, user_edit: str) -> None:
    original = (eol.join(lines) + (eol if final_newline and lines else "")).encode()
    user_line = b"USER=1" + eol.encode()
    with tempfile.TemporaryDirectory() as folder:
        env, box = Path(folder) / ".env", Path(folder) / "box"
        box.mkdir()
        write(env, original)
        saved = set_db_url(env, URL, box, force=True)
        if user_edit == "prepend":  # the file is no longer as we wrote it: only our lines may go
            env.write_bytes(user_line + env.read_bytes())
        elif user_edit == "append":
            env.write_bytes(env.read_bytes() + b"\n" + user_line)
        restore(env, saved)
        restored = env.read_bytes()
    if user_edit == "prepend":
        assert restored == user_line + original
    elif user_edit == "append":
        assert URL.encode() not in restored and restored.endswith(user_line) and b"set aside by" not in restored
    else:
        assert restored == original


@settings(derandomize=True, max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([*"AB_=#'\"\\ \t\n\rx$", "é", "DB_URL", "export ", "\r\n"]), max_size=25).map("".join))
def test_our_lines_come_out_exactly_from_any_text(text: str) -> None:
    """Whatever python-dotenv makes of the text (quotes left open, stray backslashes), removal is exact."""
    original = text.encode()
    written, _ = envfile.add_db_url(original, URL, "a" * 12, "b" * 12, force=True)
    assert envfile.remove_ours(written, "b" * 12, "a" * 12) == (original, False)
    assert envfile.remove_ours(b"X=1\n" + written, "b" * 12, "a" * 12) == (b"X=1\n" + original, False)
    assert envfile.remove_ours(written, "c" * 12) == (written, envfile.has_db_url(written))  # another checkout's
