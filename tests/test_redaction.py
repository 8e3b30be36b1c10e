"""The report scrubber: even a check that crashes with the password in its locals leaks nothing.

The audit's messages are built without the password; this is the last line of defence behind them,
for bugs and for libraries that put a connection string into an exception.
"""

from __future__ import annotations

import pytest

from tests.support import REPO

pytest_plugins = ("pytester",)

SECRET = "hunter2-Zq9"

LEAKY_TEST = f"""
import psycopg

def test_crashes_with_the_url_in_locals_and_output():
    url = "postgresql://trader:{SECRET}@127.0.0.1:1/mt5_crs"
    print("connecting to", url)
    raise RuntimeError("could not use " + url)

def test_libpq_echo():
    psycopg.connect("postgresql//trader:{SECRET}@x/y")
"""

CONFTEST = f'''
from infra_audit.plugin.report import remember_secrets

pytest_plugins = ("infra_audit.plugin.report",)

def pytest_configure(config):
    remember_secrets(config, ("{SECRET}",))
'''


def test_crashing_check_leaks_nothing_to_terminal_or_junit(pytester: pytest.Pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_leaky=LEAKY_TEST)
    result = pytester.runpytest_subprocess("--tb=long", "--showlocals", "-rA", "--junitxml=junit.xml")
    result.assert_outcomes(failed=2)
    output = result.stdout.str() + result.stderr.str()
    junit = (pytester.path / "junit.xml").read_text()
    assert "could not use postgresql://trader:***@127.0.0.1:1/mt5_crs" in output, "the scrubbed text is still shown"
    assert SECRET not in output
    assert SECRET not in junit
