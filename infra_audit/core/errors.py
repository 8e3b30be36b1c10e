"""The library's one error hierarchy.

Every message is one line, safe to print (it never holds a password), and states the cause.
Where the fix is to change a setting, ``setting`` names it by its key in ``infra_audit.core.settings``
(``tables``, ``query_timeout``...) and the caller says it in its own terms: ``--tables`` for a
command, ``infra_tables in pytest.ini`` for the audit.
"""

from __future__ import annotations


class InfraError(Exception):
    """A problem a person can act on. ``exit_code``: what a command exits with for it, when not its default;
    ``data``: what a command's JSON result should still carry (what was done before the stop)."""

    exit_code: int | None = None

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting
        self.data: dict[str, object] = {}

    def advice(self, setting_names: dict[str, str]) -> str:
        """The message, with the setting to change spelled as the caller's user knows it."""
        text = str(self)
        if self.setting is not None and self.setting in setting_names:
            text += f" ({setting_names[self.setting]})"
        return text


class SettingsError(InfraError):
    """A setting's value is out of range or malformed."""


class DbUrlError(InfraError, ValueError):
    """A DB_URL that cannot be used."""


class ConfigError(InfraError):
    """The configuration (environment, ``.env``) cannot be read or holds no usable DB_URL."""


# ProbeError causes that say the probe could not look (a lock, a deadline), not what it would have found.
COULD_NOT_LOOK = frozenset({"locked", "timeout", "no_answer"})


class ProbeError(InfraError):
    """A database check that could not succeed; ``cause`` is a short key (``refused``, ``missing``...)."""

    def __init__(self, cause: str, message: str, *, setting: str | None = None) -> None:
        super().__init__(message, setting=setting)
        self.cause = cause


class GitError(InfraError):
    """git could not say which files are tracked, so project files cannot be told from leftovers."""


class ArchiveError(InfraError):
    """The fixer cannot start or restore: a bad root, a missing or corrupt archive."""


class ArchiveStopped(ArchiveError):
    """The fixer stopped after moves began: a person must look (the archive and its manifest say what moved).

    ``data`` holds the archive's path, so a script reading the JSON result can find it."""

    exit_code = 1

    def __init__(self, message: str, *, archive: str, interrupted: bool = False) -> None:
        super().__init__(message)
        self.data["archive"] = archive
        if interrupted:
            self.exit_code = 130  # Ctrl-C, as every command says it


class SandboxError(InfraError):
    """The sandbox cannot do what was asked."""


class EnvFileError(InfraError):
    """A .env the sandbox must not or cannot edit (read-only, hard-linked, not a regular file)."""


class HistoryError(InfraError):
    """The row-count history file cannot be read or written."""
