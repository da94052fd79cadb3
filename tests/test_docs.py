"""The user documentation agrees with the code and with itself."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from streamflow_data.cli import session

ROOT = Path(__file__).parent.parent


def _blocks(path: Path, language: str) -> list[str]:
    """The fenced code blocks of ``language`` in a Markdown file."""
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), re.DOTALL)


def test_the_readme_commands_use_the_configuration_example() -> None:
    """Every DEPLOYMENT[/LOCATION]: in the README's command-line examples is defined by the
    example of docs/configuration.md, which the README points to."""
    [example] = _blocks(ROOT / "docs" / "configuration.md", "toml")
    deployments = tomllib.loads(example)["deployments"]
    commands = "".join(b for b in _blocks(ROOT / "README.md", "console") if "$ " in b)
    targets = re.findall(r"\s([a-z][\w.-]*)(?:/([\w.-]+))?:/(?!/)", commands)  # not URLs
    assert targets, commands
    for deployment, location in targets:
        assert deployment in deployments, deployment
        if location:
            assert location in deployments[deployment]["nodes"], location


def test_getting_started_installs_as_the_readme_does() -> None:
    assert "bash .ci/install" in (ROOT / "README.md").read_text()
    assert "bash .ci/install" in (ROOT / "docs" / "getting-started.md").read_text()


def test_every_exit_status_of_the_command_line_is_in_its_table() -> None:
    table = (ROOT / "docs" / "cli.md").read_text().split("## Exit status", 1)[1]
    documented = {int(status) for status in re.findall(r"^\| (\d+) \|", table, re.MULTILINE)}
    used = {value for name, value in vars(session).items() if name.startswith("EXIT_")}
    assert documented == used
    assert "no valid replica" in table.split("| 1 |", 1)[1].split("\n", 1)[0]
