"""The configuration file: found, validated, and every mistake named by file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamflow_data import ConfigurationError, LocalConnector, ServiceSettings
from streamflow_data.configfile import TOKEN_ENVIRONMENT, load_configuration, read_token
from tests.cli.console import run


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[transfer\n", "not valid TOML"),
        ("[transfer]\nblock_sise = 1\n", "transfer.block_sise: Extra inputs are not permitted"),
        (
            "[transfer]\nblock_size = 'big'\n",
            "transfer.block_size: Input should be a valid integer",
        ),
        ("[cache]\nwhen_full = 'never'\n", "cache.budget: Field required; cache.when_full"),
        ("[catalog]\nlock_policy = 'x'\n", "catalog.lock_policy: Input should be 'wait' or 'fail'"),
        ("surprise = 1\n", "surprise: Extra inputs are not permitted"),
        ("[service]\nlisten = 'nowhere'\n", "service.listen: String should match pattern"),
        ("[service]\nurl = 'ftp://x'\n", "service.url: String should match pattern"),
        ("[deployments.d]\ntype = 'nosuch'\n", "deployments.d.type: no connector plugin"),
        ("[deployments.d]\nnodes = []\n", "deployments.d.type: expected the connector type"),
        ("[deployments.d]\ntype = 'ssh'\nnodes = []\n", "deployments.d: invalid options"),
        ("[deployments.local]\ntype = 'ssh'\n", "deployments.local.type"),
        ("[deployments.'a:b']\ntype = 'local'\n", "a deployment name may hold"),
        ("[deployments.d]\ntype = 'ssh'\nusername = '${SFD_NOT_SET}'\n", "SFD_NOT_SET is not set"),
    ],
)
def test_every_mistake_names_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "streamflow-data.toml").write_text(text)
    with pytest.raises(ConfigurationError) as caught:
        load_configuration(str(tmp_path / "streamflow-data.toml"))
    assert str(caught.value).startswith(f"{tmp_path / 'streamflow-data.toml'}: ")
    assert message in str(caught.value)


def test_the_command_line_reports_configuration_errors_as_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "streamflow-data.toml").write_text("[transfer]\nblock_count = 1\n")
    found = run("status", cwd=tmp_path)  # found in the working directory
    assert found.returncode == 2
    assert "streamflow-data.toml: transfer.block_count: Input should be greater" in found.stderr
    missing = run("--config", str(tmp_path / "nope.toml"), "status")
    assert missing.returncode == 2 and "nope.toml: configuration file not found" in missing.stderr
    by_environment = run("status", env={"STREAMFLOW_DATA_CONFIG": str(tmp_path / "e.toml")})
    assert by_environment.returncode == 2 and "e.toml: configuration file not found" in (
        by_environment.stderr
    )


def test_a_valid_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFD_USER", "alice")
    config = tmp_path / "conf" / "my.toml"
    config.parent.mkdir()
    config.write_text(
        """
[catalog]
path = "state/catalog.sqlite"
lock_policy = "fail"

[cache]
budget = 1000

[transfer]
block_size = 65536

[service]
listen = "127.0.0.1:8750"
url = "http://127.0.0.1:8750"
token_file = "secret/token"

[deployments.hpc]
type = "ssh"
nodes = ["login.invalid"]
username = "${SFD_USER}"
check_host_keys = false
"""
    )
    loaded = load_configuration(str(config))
    assert loaded.source == str(config)
    # A relative catalog path is relative to the file, not to the working directory.
    assert loaded.catalog.path == str(config.parent / "state" / "catalog.sqlite")
    assert loaded.catalog.lock_policy == "fail"
    assert loaded.cache is not None and loaded.cache.budget == 1000
    assert loaded.transfer.block_size == 65536
    assert loaded.service.listen == "127.0.0.1:8750"
    assert loaded.service.url == "http://127.0.0.1:8750"
    assert loaded.service.token_file == str(config.parent / "secret" / "token")
    assert loaded.deployments["hpc"].options["username"] == "alice"
    manager = loaded.create_manager()
    assert [loc.name for loc in manager.locations("hpc")] == ["login.invalid"]
    assert isinstance(manager.connector(manager.locations()[0]), LocalConnector)
    assert manager.settings.block_size == 65536


def test_without_a_file_the_embedded_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    loaded = load_configuration()
    assert loaded.source is None and dict(loaded.deployments) == {}
    assert loaded.catalog.path == str(tmp_path / "state" / "streamflow-data" / "catalog.sqlite")
    assert loaded.cache is None
    assert loaded.service == ServiceSettings()


@pytest.mark.parametrize(
    "table",
    [
        "secret_acces_key = 'THE-SECRET'",  # misspelled: an unknown key
        "secret_access_key = 'THE-SECRET'",  # without its access key id: the whole table
        "access_key_id = 'a'\nsecret_access_key = 'THE-SECRET'",  # valid: the repr
        "access_key_id = 'a'\nsecret_access_key = ['THE-SECRET']",  # of the wrong type
        "access_key_id = 'a'\nsecret_access_key = 'x'\nsession_token = ['THE-SECRET']",
    ],
)
def test_a_secret_is_never_shown(tmp_path: Path, table: str) -> None:
    (tmp_path / "streamflow-data.toml").write_text(
        f"[deployments.store]\ntype = 's3'\nbuckets = ['b']\n{table}\n"
    )
    try:
        shown = repr(load_configuration(str(tmp_path / "streamflow-data.toml")))
    except ConfigurationError as exc:
        shown = str(exc)
    assert "THE-SECRET" not in shown and "store" in shown
    for command in ("status", "stats"):
        ran = run("-vv", command, cwd=tmp_path)
        assert "THE-SECRET" not in ran.stdout + ran.stderr
        assert "store" in ran.stderr or ran.returncode == 0


def test_the_token_comes_from_the_option_then_the_environment_then_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given, configured, empty = tmp_path / "given", tmp_path / "configured", tmp_path / "empty"
    given.write_text("from-option\n")
    configured.write_text("from-configuration\nignored\n")
    empty.write_text("\n")
    monkeypatch.delenv(TOKEN_ENVIRONMENT, raising=False)
    assert read_token(None) is None
    assert read_token(None, str(configured)) == "from-configuration"
    monkeypatch.setenv(TOKEN_ENVIRONMENT, "from-environment")
    assert read_token(None, str(configured)) == "from-environment"
    assert read_token(str(given), str(configured)) == "from-option"
    with pytest.raises(ConfigurationError, match="the token file is empty"):
        read_token(str(empty))
    with pytest.raises(ConfigurationError, match="cannot read the token"):
        read_token(str(tmp_path / "missing"))


def test_a_database_url_is_not_a_path_beside_the_file(tmp_path: Path) -> None:
    config = tmp_path / "streamflow-data.toml"
    config.write_text('[catalog]\npath = "postgresql://wf@db.invalid:5432/catalog"\n')
    assert load_configuration(str(config)).catalog.path == "postgresql://wf@db.invalid:5432/catalog"
