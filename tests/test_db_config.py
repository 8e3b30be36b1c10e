"""tools/db_config.py: where DB_URL comes from, and what is said when it is missing or broken."""

from __future__ import annotations

import os

import pytest

from infra_audit.core.db_config import known_secrets, resolve_db_url
from infra_audit.core.errors import ConfigError
from tests.support import REPO

URL = "postgresql://trader:from-file@localhost:5432/mt5_crs"


def test_environment_wins_over_the_env_file(tmp_path):
    (tmp_path / ".env").write_text(f"DB_URL={URL}\n")
    setting = resolve_db_url(tmp_path, {"DB_URL": "postgresql://ci@db/mt5_crs"})
    assert (setting.value, setting.origin) == ("postgresql://ci@db/mt5_crs", "the environment (DB_URL)")


def test_env_file_is_read_with_quotes_comments_and_export(tmp_path):
    (tmp_path / ".env").write_text(f'# Database\nexport DB_URL="{URL}"  # verified\nOTHER=1\n')
    setting = resolve_db_url(tmp_path, {})
    assert setting.value == URL
    assert setting.origin == f"{tmp_path / '.env'} (DB_URL)"


def test_components_are_assembled_when_db_url_is_absent(tmp_path):
    (tmp_path / ".env").write_text(
        "POSTGRES_HOST=localhost\nPOSTGRES_PORT=5432\nPOSTGRES_USER=trader\nPOSTGRES_PASSWORD=p@ss\nPOSTGRES_DB=mt5_crs\n"
    )
    setting = resolve_db_url(tmp_path, {"POSTGRES_HOST": "db.internal"})
    assert setting.value == "postgresql://trader:p%40ss@db.internal:5432/mt5_crs"
    assert setting.parse().password == "p@ss"
    assert "POSTGRES_*" in setting.origin


@pytest.mark.parametrize(
    ("env_file", "environ", "complaint"),
    [
        (None, {}, "does not exist): copy .env.example to .env and set DB_URL, or export DB_URL"),
        ("OTHER=1\n", {}, "has no DB_URL"),
        ("DB_URL=\n", {}, "is empty"),
        (None, {"DB_URL": "  "}, "DB_URL in the environment (DB_URL) is empty"),
        ("DB_URL=postgresql://a:b@h/db\nthis line is broken\n", {}, "line 2 is not KEY=value"),
        ("a broken\nDB_URL=postgresql://a:b@h/db\nalso broken\n", {}, "line 1, 3 is not KEY=value"),
        (b"DB_URL=postgresql://a:\xff@h/db\n", {}, "UnicodeDecodeError: fix its permissions or encoding"),
        ("#" * (1 << 20) + "\n", {}, "is over 1048576 bytes: .env must be a small text file"),
        ("POSTGRES_USER=trader\nPOSTGRES_PASSWORD=x\n", {}, "POSTGRES_HOST, POSTGRES_DB is missing"),
    ],
)
def test_missing_or_broken_configuration_is_named(tmp_path, env_file, environ, complaint):
    if env_file is not None:
        write = (tmp_path / ".env").write_bytes if isinstance(env_file, bytes) else (tmp_path / ".env").write_text
        write(env_file)
    with pytest.raises(ConfigError) as raised:
        resolve_db_url(tmp_path, environ)
    assert complaint in str(raised.value)


def test_no_db_url_anywhere_offers_the_local_sandbox(tmp_path):
    """Nothing configured is the one case where starting a local sandbox is the fix: the error names that
    setting, so the audit and the health check can say how (a broken DB_URL names no such thing)."""
    with pytest.raises(ConfigError) as raised:
        resolve_db_url(tmp_path, {})
    assert raised.value.setting == "local_server"
    (tmp_path / ".env").write_text("DB_URL=\n")
    with pytest.raises(ConfigError) as raised:
        resolve_db_url(tmp_path, {})
    assert raised.value.setting is None


def test_invalid_url_error_names_its_origin_but_not_the_password(tmp_path):
    (tmp_path / ".env").write_text("DB_URL=postgresql//trader:hunter2@localhost/mt5_crs\n")
    with pytest.raises(ConfigError) as raised:
        resolve_db_url(tmp_path, {}).parse()
    assert str(raised.value).startswith(f"DB_URL from {tmp_path / '.env'} (DB_URL) is invalid: not a URL")
    assert "hunter2" not in str(raised.value)


def test_known_secrets_include_every_configured_password(tmp_path):
    (tmp_path / ".env").write_text("DB_URL=postgresql//trader:in-url@h/db\nPOSTGRES_PASSWORD=in-parts\n")
    assert set(known_secrets(tmp_path, {"PGPASSWORD": "in-libpq"})) >= {"in-url", "in-parts", "in-libpq"}


def test_setting_shows_a_rebuilt_url_or_nothing(tmp_path):
    good = resolve_db_url(tmp_path, {"DB_URL": "postgresql://trader:it's@db/mt5_crs"})
    assert good.shown == "postgresql://trader:***@db/mt5_crs"
    broken = resolve_db_url(tmp_path, {"DB_URL": "postgresql:/trader:hunter2@db/mt5_crs"})
    assert broken.shown == "(not shown: DB_URL is not a valid URL)"
    assert "hunter2" not in repr(broken), "pytest -l prints reprs of locals"


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_env_that_is_not_a_regular_file_is_refused_without_reading_it(tmp_path, kind):
    env = tmp_path / ".env"
    if kind == "fifo":
        os.mkfifo(env)  # reading it would block forever
    elif kind == "directory":
        env.mkdir()
    else:
        env.symlink_to("/dev/zero")  # reading it would never end
    with pytest.raises(ConfigError) as raised:
        resolve_db_url(tmp_path, {})
    assert "is not a regular file" in str(raised.value)
    # The audit also reads .env for passwords to mask when DB_URL comes from the environment: no hang there either.
    assert known_secrets(tmp_path, {"DB_URL": "postgresql://u:hunter2@h/db"}) == ("hunter2",)


def test_env_example_copied_unedited_is_refused_naming_the_placeholders(tmp_path):
    (tmp_path / ".env").write_text((REPO / ".env.example").read_text())
    setting = resolve_db_url(tmp_path, {})
    with pytest.raises(ConfigError) as raised:
        setting.parse()
    assert str(raised.value) == (
        f"DB_URL from {tmp_path / '.env'} (DB_URL) still holds the placeholders of .env.example "
        "(user USER, the password, host HOST, database DATABASE): put your database's user, password, host and name "
        "there, e.g. postgresql://trader:<password>@db.internal:5432/mt5_crs with <password> replaced (percent-encode @ : / in it)"
    )
    assert setting.shown == "postgresql://USER:***@HOST:5432/DATABASE"


def test_a_filled_in_url_is_not_a_placeholder(tmp_path):
    url = resolve_db_url(tmp_path, {"DB_URL": "postgresql://trader:password@localhost:5432/database"}).parse()
    assert (url.user, url.dbname) == ("trader", "database")


@pytest.mark.parametrize(
    ("url", "shown", "kept"),
    [
        ("postgresql://trader:assets@db:5432/mt5_crs", ("market_data", "assets"), ()),
        ("postgresql://trader:market@db:5432/mt5_crs", ("market_data", "assets"), ()),
        ("postgresql://trader:6543@db:6543/mt5_crs", (), ()),
        ("postgresql://trader:trader@db:5432/mt5_crs", (), ()),
        ("postgresql://trader:mt5_crs@db:5432/mt5_crs", (), ()),
        ("postgresql://trader:hunter22@db:5432/mt5_crs", ("market_data", "assets"), ("hunter22",)),
    ],
)
def test_a_password_equal_to_a_shown_word_is_not_hunted_in_free_text(tmp_path, url, shown, kept):
    """Masking 'assets' in 'assets: 4 rows' would say the password is 'assets'; the .env check calls it weak instead."""
    assert known_secrets(tmp_path, {"DB_URL": url}, shown=shown) == kept


def test_a_file_of_exactly_the_limit_is_read(tmp_path):
    line = f"DB_URL={URL}\n"
    (tmp_path / ".env").write_text(line + "#" * ((1 << 20) - len(line) - 1) + "\n")
    assert (tmp_path / ".env").stat().st_size == 1 << 20
    assert resolve_db_url(tmp_path, {}).value == URL


def test_known_secrets_read_every_source_and_nothing_else(tmp_path):
    assert known_secrets(tmp_path, {}) == ()
    assert known_secrets(tmp_path, {"POSTGRES_PASSWORD": "from-env-part"}) == ("from-env-part",)
