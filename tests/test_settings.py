"""infra_audit/core/settings.py: where a project keeps its settings (pyproject.toml, pytest.ini)."""

from __future__ import annotations

import pytest

from infra_audit.core import settings
from infra_audit.core.errors import SettingsError


def test_a_projects_settings_come_from_its_tool_table_its_pytest_options_then_its_pytest_ini(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.infra-audit]\ntables = ["assets", "Market Data"]\nmax_shrink = "20%"\n\n'
        '[tool.pytest.ini_options]\ninfra_max_shrink = "5%"\ninfra_connect_timeout = "4"\n'
    )
    assert settings.has_tool_table(tmp_path)
    assert settings.read_project_settings(tmp_path) == {
        "infra_tables": 'assets "Market Data"',
        "infra_max_shrink": "5%",
        "infra_connect_timeout": "4",
    }
    (tmp_path / "pytest.ini").write_text("[pytest]\ninfra_connect_timeout = 7\n")
    assert settings.read_project_settings(tmp_path)["infra_connect_timeout"] == "7"


def test_a_pyproject_without_the_tool_table_holds_no_settings(tmp_path):
    assert not settings.has_tool_table(tmp_path) and settings.read_project_settings(tmp_path) == {}
    (tmp_path / "pyproject.toml").write_text('[tool.black]\nline-length = 120\n')
    assert not settings.has_tool_table(tmp_path) and settings.read_project_settings(tmp_path) == {}


def test_an_unreadable_pyproject_is_one_line_naming_it(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.infra-audit\n")
    with pytest.raises(SettingsError) as raised:
        settings.has_tool_table(tmp_path)
    assert str(raised.value).startswith(f"{tmp_path / 'pyproject.toml'} cannot be read as TOML (TOMLDecodeError: ")
    assert "\n" not in str(raised.value)
