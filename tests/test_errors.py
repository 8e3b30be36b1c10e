"""infra_audit/core/errors.py: what a command reads off an error (the setting to name, the exit code)."""

from __future__ import annotations

from infra_audit.core.errors import ArchiveStopped, InfraError


def test_the_advice_names_a_setting_only_as_the_caller_spells_it():
    names = {"tables": "--tables"}
    assert InfraError("the table list is empty", setting="tables").advice(names) == "the table list is empty (--tables)"
    assert InfraError("no DB_URL", setting="local_server").advice(names) == "no DB_URL", "a setting it has no name for"
    assert InfraError("down").advice(names) == "down"


def test_a_stop_after_moves_began_exits_1_or_130_for_ctrl_c_and_says_where_the_archive_is():
    stopped = ArchiveStopped("stopped", archive="/p/.infra-archive/1")
    interrupted = ArchiveStopped("interrupted", archive="/p/.infra-archive/1", interrupted=True)
    assert (stopped.exit_code, interrupted.exit_code) == (1, 130)
    assert stopped.data == interrupted.data == {"archive": "/p/.infra-archive/1"}
