"""infra_audit/core/settings.py: where a project keeps its settings (pyproject.toml, pytest.ini)."""

from __future__ import annotations

import pytest

from infra_audit.core import settings
from infra_audit.core.errors import SettingsError


def _refusal(values: dict[str, str], rootdir) -> tuple[str, str | None]:
    """What ``build`` refuses the values with: its message and the setting it names."""
    with pytest.raises(SettingsError) as raised:
        settings.build(values, rootdir)
    return str(raised.value), raised.value.setting


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


def test_a_toml_string_keeps_its_case_and_a_boolean_reads_as_the_ini_writes_it(tmp_path):
    """Only a TOML boolean becomes lower case (``true``): a table or a project named in capitals stays so."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.infra-audit]\ntables = "Market"\nproject_name = "MT5 Feed"\nfreshness_group = false\n'
    )
    assert settings.read_project_settings(tmp_path) == {
        "infra_tables": "Market",
        "infra_project_name": "MT5 Feed",
        "infra_freshness_group": "false",
    }


def test_a_pyproject_without_the_tool_table_holds_no_settings(tmp_path):
    assert not settings.has_tool_table(tmp_path) and settings.read_project_settings(tmp_path) == {}
    (tmp_path / "pyproject.toml").write_text("[tool.black]\nline-length = 120\n")
    assert not settings.has_tool_table(tmp_path) and settings.read_project_settings(tmp_path) == {}


def test_an_unreadable_pyproject_is_one_line_naming_it(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.infra-audit\n")
    with pytest.raises(SettingsError) as raised:
        settings.has_tool_table(tmp_path)
    assert str(raised.value).startswith(f"{tmp_path / 'pyproject.toml'} cannot be read as TOML (TOMLDecodeError: ")
    assert "\n" not in str(raised.value)


def test_tool_table_keys_may_carry_the_ini_prefix_and_booleans_read_as_ini_text(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.infra-audit]\ninfra_tables = "assets"\nproject_name = true\n')
    assert settings.read_project_settings(tmp_path) == {"infra_tables": "assets", "infra_project_name": "true"}


def test_an_unknown_setting_and_a_pytest_ini_without_its_section_are_told_apart(tmp_path):
    (tmp_path / "pytest.ini").write_text("[tool:other]\ninfra_tables = x\n")
    assert settings.read_project_settings(tmp_path) == {}
    (tmp_path / "pyproject.toml").write_text('[tool.infra-audit]\ntabels = "assets"\nmax_srink = "5%"\n')
    with pytest.raises(SettingsError) as raised:
        settings.read_project_settings(tmp_path)
    assert str(raised.value) == f"unknown setting infra_max_srink in {tmp_path}'s config: see infra-audit --help"


def test_a_project_root_that_is_no_folder_names_the_setting(tmp_path):
    (tmp_path / "file").write_text("")
    assert _refusal({"infra_project_root": "file"}, tmp_path) == (
        f"project root {tmp_path / 'file'} is not a directory",
        "project_root",
    )
    assert settings.build({"infra_project_root": "."}, tmp_path).project_root == tmp_path.resolve()


def test_a_pytest_ini_that_cannot_be_parsed_is_one_line_naming_it(tmp_path):
    (tmp_path / "pytest.ini").write_text("infra_tables = assets\n[pytest]\n")
    with pytest.raises(SettingsError) as raised:
        settings.read_project_settings(tmp_path)
    assert str(raised.value) == f"{tmp_path / 'pytest.ini'} cannot be read as an ini file (MissingSectionHeaderError)"


def test_every_setting_given_reaches_the_built_settings(tmp_path):
    (tmp_path / "project").mkdir()
    built = settings.build(
        {
            "infra_project_root": "project",
            "infra_tables": 'assets "Market Data"',
            "infra_required_paths": "docs/ tools/x.py",
            "infra_connect_timeout": "0.1",
            "infra_query_timeout": "3600",
            "infra_exact_count_limit": "7",
            "infra_report_dir": "out",
            "infra_project_name": "mt5-crs",
            "infra_freshness_group": "timeframe",
            "infra_history": "h.jsonl",
            "infra_max_shrink": "20%",
            "infra_health_check": "tools/hc.py",
        },
        tmp_path,
    )
    root = tmp_path.resolve()
    assert (built.project_root, built.tables, built.required_paths) == (
        root / "project",
        ("assets", '"Market Data"'),
        ("docs/", "tools/x.py"),
    )
    assert (built.timeouts.connect, built.timeouts.query, built.exact_count_limit) == (0.1, 3600, 7)
    assert (built.report_dir, built.project_name, built.freshness_group) == (root / "out", "mt5-crs", "timeframe")
    assert (built.history, built.max_shrink) == (root / "h.jsonl", 0.2)
    assert built.health_check == root / "project" / "tools" / "hc.py", "relative to the project root, not the rootdir"


def test_an_empty_table_list_names_the_setting(tmp_path):
    assert _refusal({"infra_tables": " "}, tmp_path) == ("the table list is empty: name the tables to check", "tables")


@pytest.mark.parametrize(
    ("key", "lowest", "under", "highest", "over"),
    [
        ("connect_timeout", "0.1", "0.099", "3600", "3600.001"),
        ("query_timeout", "0.1", "0.099", "3600", "3600.001"),
        ("exact_count_limit", "0", "-1", "1000000000000", "1000000000001"),
    ],
)
def test_each_number_holds_its_edges_and_a_refusal_names_it(tmp_path, key, lowest, under, highest, over):
    ini = settings.BY_KEY[key].ini
    for accepted in (lowest, highest):
        built = settings.build({ini: accepted}, tmp_path)
        got = {"connect_timeout": built.timeouts.connect, "query_timeout": built.timeouts.query}.get(
            key, built.exact_count_limit
        )
        assert got == float(accepted)
    upper = "3600" if "timeout" in key else "1e+12"
    lower = "0.1" if "timeout" in key else "0"
    for refused in (under, over, "nan", "inf", "soon", ""):
        assert _refusal({ini: refused}, tmp_path) == (
            f"the {key.replace('_', ' ')} must be a number >= {lower} and <= {upper}, got '{refused}'",
            key,
        )


@pytest.mark.parametrize("key", ["tables", "required_paths"])
def test_an_unbalanced_quote_names_the_list_it_is_in(tmp_path, key):
    text = 'assets "Market Data'
    assert _refusal({settings.BY_KEY[key].ini: text}, tmp_path) == (
        f"unbalanced double quote in '{text}': quote a name with spaces as \"Market Data\"",
        key,
    )


@pytest.mark.parametrize(
    ("key", "text", "parser"),
    [
        ("freshness", "market_data", "parse_rules"),
        ("freshness_group", "a b", "parse_group"),
        ("max_shrink", "100%", None),
    ],
)
def test_a_setting_with_its_own_parser_is_refused_with_the_parsers_words_naming_the_setting(
    tmp_path, key, text, parser
):
    from infra_audit.core import freshness

    parse = getattr(freshness, parser) if parser else settings.parse_max_shrink
    with pytest.raises(ValueError) as said:
        parse(text)
    assert _refusal({settings.BY_KEY[key].ini: text}, tmp_path) == (str(said.value), key)


@pytest.mark.parametrize("key", ["project_root", "report_dir", "history", "health_check"])
def test_a_path_in_no_users_home_names_its_setting(tmp_path, key):
    assert _refusal({settings.BY_KEY[key].ini: "~nosuchuser/x"}, tmp_path) == (
        "cannot expand '~nosuchuser/x': no such user's home folder",
        key,
    )


def test_the_history_keeps_a_link_as_named_where_other_paths_resolve_it(tmp_path):
    """The history file's own checks refuse a symbolic link, so ``build`` must hand them the link itself."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "h.jsonl").write_text("")
    (tmp_path / "linked").symlink_to("real", target_is_directory=True)
    (tmp_path / "real" / "link.jsonl").symlink_to("h.jsonl")
    built = settings.build(
        {"infra_history": "linked/link.jsonl", "infra_report_dir": "linked", "infra_health_check": "real/link.jsonl"},
        tmp_path,
    )
    root = tmp_path.resolve()
    assert built.history == root / "real" / "link.jsonl", "its folder resolved, its own name kept"
    assert (built.report_dir, built.health_check) == (root / "real", root / "real" / "h.jsonl")


def test_an_empty_history_setting_is_the_default_file(tmp_path):
    assert settings.build({"infra_history": ""}, tmp_path).history == tmp_path / "reports" / "infra-history.jsonl"
