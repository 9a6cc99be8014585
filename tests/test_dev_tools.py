"""The dev tools are pinned: CI installs them at exact versions, never the newest."""

from __future__ import annotations

import re

from tests.configs import REPO
from tests.conftest import SHARED_MODULES

CONSTRAINTS = REPO / "constraints-dev.txt"


def _name(requirement: str) -> str:
    """A requirement's project name, normalised as pip compares them."""
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert name, requirement
    return re.sub(r"[-_.]+", "-", name.group(1)).lower()


def _pins() -> dict[str, str]:
    lines = CONSTRAINTS.read_text().splitlines()
    pins = [line for line in lines if line.strip() and not line.startswith("#")]
    return {_name(pin): pin.split("==", 1)[1] for pin in pins if "==" in pin}


def test_every_dev_tool_has_an_exact_pin():
    pyproject = (REPO / "pyproject.toml").read_text()
    dev = re.search(r"^dev = \[(.*?)^\]", pyproject, re.MULTILINE | re.DOTALL)
    assert dev, "no dev extra in pyproject.toml"
    tools = [_name(item) for item in re.findall(r'"([^"]+)"', dev.group(1))]
    assert tools
    pins = _pins()
    assert [tool for tool in tools if tool not in pins] == []
    assert "psycopg-binary" in pins  # psycopg[binary] brings it


def test_scripts_test_installs_with_the_constraints():
    script = (REPO / "scripts" / "test").read_text()
    assert "--constraint constraints-dev.txt" in script
    assert "scripts/test" in (REPO / ".ci" / "run").read_text()


def test_every_module_with_a_module_scoped_fixture_is_one_unit_of_work():
    # pytest-xdist would make the fixture again on each worker that ran one of the
    # module's tests: such a module is handed to one worker whole (conftest.py).
    # The SDK's test class syncs once per class (a class-scoped fixture): the same.
    fixture = re.compile(
        r'^@pytest\.fixture\(scope="module"|= get_tap_test_class\(', re.MULTILINE
    )
    shared = {
        path.relative_to(REPO).as_posix()
        for path in (REPO / "tests").glob("test_*.py")
        if fixture.search(path.read_text())
    }
    assert shared
    assert shared == set(SHARED_MODULES)
