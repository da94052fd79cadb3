"""The replica-graph commands and the reports, as a user runs them."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import sys
from pathlib import Path

import aiohttp
import pytest

from streamflow_data.cli.main import build_parser, command_parsers, main
from streamflow_data.cli.session import JsonFormatter, PlainFormatter
from tests.cli.console import run

ALL_COMMANDS = list(command_parsers()[1])


def test_register_locate_source_invalidate(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x").write_text("x")
    data = str(tmp_path / "data")
    registered = run("register", f"local:{data}")
    assert registered.returncode == 0, registered.stderr
    assert f"registered {data} (primary)" in registered.stdout
    # A replica on a deployment this configuration has no connector for, named in full.
    remote = run("register", "hpc/login:/scratch/data", "--same-as", f"local:{data}")
    assert remote.returncode == 0, remote.stderr

    located = run("locate", data)
    assert located.returncode == 0, located.stderr
    header, *rows = located.stdout.splitlines()
    assert header.split() == ["LOCATION", "PATH", "TYPE", "AVAILABLE"]
    assert sorted(row.split()[:3] for row in rows) == [
        ["hpc/login", "/scratch/data", "primary"],
        ["local/localhost", data, "primary"],
    ]
    on_hpc = json.loads(run("locate", "--json", "--deployment", "hpc", data).stdout)
    assert [r["location"] for r in on_hpc["replicas"]] == ["hpc/login"]
    assert on_hpc["replicas"][0]["available"] is True

    # The destination deployment's own replica first, else the local node.
    assert run("source", "/scratch/data", "--to", "hpc").stdout.strip() == "hpc/login:/scratch/data"
    assert run("source", data, "--to", "local").stdout.strip() == f"local/localhost:{data}"

    invalidated = run("invalidate", f"local:{data}")
    assert invalidated.returncode == 0, invalidated.stderr
    assert "invalidated 1 replica(s)" in invalidated.stdout
    remaining = json.loads(run("locate", "--json", "/scratch/data").stdout)
    assert [r["location"] for r in remaining["replicas"]] == ["hpc/login"]
    assert run("source", data, "--to", "local").returncode == 1


def test_register_refuses_a_missing_path_and_an_unknown_relation(tmp_path: Path) -> None:
    missing = run("register", f"local:{tmp_path}/nothing")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    (tmp_path / "x").write_text("x")
    unknown = run("register", f"local:{tmp_path}/x", "--same-as", "hpc/a:/never/registered")
    assert unknown.returncode == 2 and "/never/registered" in unknown.stderr
    nothing = run("locate", f"{tmp_path}/x")
    assert nothing.returncode == 1 and "no valid replica" in nothing.stdout


def test_a_deployment_with_several_locations_needs_one_named(tmp_path: Path) -> None:
    config = tmp_path / "streamflow-data.toml"
    config.write_text(
        '[deployments.cluster]\ntype = "ssh"\n'
        'nodes = ["node1.invalid", "node2.invalid"]\ncheck_host_keys = false\n'
    )
    result = run("register", "cluster:/data", cwd=tmp_path)
    assert result.returncode == 2
    assert "write cluster/LOCATION:PATH with one of node1.invalid, node2.invalid" in result.stderr


def test_stats_add_up_every_run(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a" * 5000)
    for name in ("b", "c"):
        assert run("cp", "a", name, cwd=tmp_path).returncode == 0
    stats = json.loads(run("stats", "--json").stdout)
    local = stats["locations"]["local/localhost"]
    assert (local["bytes_read"], local["bytes_written"]) == (10_000, 10_000)
    assert stats["errors"] == {} and stats["retries"] == 0
    assert stats["cache"]["budget"] is None
    text = run("stats").stdout
    assert "local/localhost" in text and "9.8 KiB" in text and "errors: none" in text


def test_status_json(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    assert run("cp", "a", "b", cwd=tmp_path).returncode == 0
    [record] = json.loads(run("status", "--json").stdout)
    assert (record["id"], record["state"], record["files"]) == (1, "done", 1)
    assert record["verifications"] == ["size"]  # copied by the file system, by size
    assert run("status").stdout.splitlines()[1].split()[:5] == ["1", "done", "1", "1.0", "B"]
    assert " size " in run("status").stdout.splitlines()[1]
    assert run("status", "9").returncode == 2
    dumped = json.loads(run("dump-state", "--json", "1").stdout)
    assert dumped == {
        "transfer": 1,
        "files": [
            {
                "relpath": "",
                "destination": f"local/localhost:{tmp_path / 'b'}",
                "state": "valid",
                "size": 1,
                "bytes_written": 1,
                "partial_file": None,
            }
        ],
    }


def test_running_main_twice_in_one_process_keeps_one_log_handler(tmp_path: Path) -> None:
    package = logging.getLogger("streamflow_data")
    saved = (list(package.handlers), package.level, package.propagate)
    try:
        for _ in range(2):
            assert main(["status", "--catalog", str(tmp_path / "c.sqlite"), "-q"]) == 0
        ours = [h for h in package.handlers if h not in saved[0]]
        assert len(ours) == 1
    finally:
        package.handlers[:] = saved[0]
        package.setLevel(saved[1])
        package.propagate = saved[2]


@pytest.mark.parametrize(
    ("argv", "built"),
    [
        (["cp", "a", "b"], ["cp"]),
        (["-q", "--config", "stats", "locate", "/x"], ["locate"]),  # a value, not a command
        (["--conf", "cp", "status"], ["status"]),  # an abbreviated option takes its value too
        (["--config=cp", "-v", "dump-state", "1"], ["dump-state"]),
        (["--help", "cp"], ALL_COMMANDS),  # the main help lists every command
        (["cpx", "a"], ALL_COMMANDS),  # argparse's error lists the choices
        ([], ALL_COMMANDS),
    ],
)
def test_only_the_named_commands_parser_is_built(argv: list[str], built: list[str]) -> None:
    listed = build_parser(argv).format_help().splitlines()
    assert [
        name for name in ALL_COMMANDS if any(line.split()[:1] == [name] for line in listed)
    ] == built


def test_a_command_parsed_alone_reads_its_arguments_as_with_every_parser() -> None:
    argv = ["--config", "deliver", "-q", "cp", "--no-progress", "src", "dst1", "dst2"]
    alone, every = build_parser(argv).parse_args(argv), build_parser().parse_args(argv)
    assert vars(alone) == vars(every)
    assert (alone.config, alone.src, alone.dst, alone.quiet) == (
        "deliver",
        "src",
        ["dst1", "dst2"],
        True,
    )


def test_a_configured_ssh_deployment_prints_no_library_warnings(tmp_path: Path) -> None:
    # Loading the SSH plugin imports asyncssh, which trips cryptography's DSA deprecation.
    (tmp_path / "streamflow-data.toml").write_text(
        '[deployments.hpc]\ntype = "ssh"\nnodes = ["127.0.0.1"]\nusername = "alice"\n'
    )
    for command in ("status", "stats"):
        shown = run(command, cwd=tmp_path, env={"PYTHONWARNINGS": "default"})
        assert shown.returncode == 0, shown.stderr
        assert shown.stderr == ""


@pytest.mark.parametrize(
    ("catalog", "message"),
    [
        ("regular/cat.sqlite", "regular' is not a directory"),
        ("directory", "is a directory; name a file in it"),
        ("garbage", "not a SQLite database, or damaged"),
    ],
)
def test_an_unusable_catalog_is_one_line_and_exit_2(
    tmp_path: Path, catalog: str, message: str
) -> None:
    (tmp_path / "regular").write_text("a file")
    (tmp_path / "directory").mkdir()
    (tmp_path / "garbage").write_bytes(b"not sqlite" * 1000)
    for _ in range(3):  # the directory's aiosqlite thread traceback came in most runs
        shown = run("--catalog", str(tmp_path / catalog), "status")
        assert shown.returncode == 2
        assert shown.stderr.count("\n") == 1 and message in shown.stderr, shown.stderr


def test_a_damaged_catalog_stops_a_copy_before_it_writes(tmp_path: Path) -> None:
    source, catalog = tmp_path / "src", tmp_path / "cat.sqlite"
    source.mkdir()
    for number in range(300):
        (source / f"f{number}").write_text(str(number))
    assert (
        run("--catalog", str(catalog), "cp", "-q", str(source), str(tmp_path / "one")).returncode
        == 0
    )
    # Spoil the first page whose damage only a scan of the file finds.
    pristine = catalog.read_bytes()
    for page in range(1, len(pristine) // 4096):
        catalog.write_bytes(
            pristine[: page * 4096] + b"\xff" * 4096 + pristine[(page + 1) * 4096 :]
        )
        with (
            contextlib.closing(sqlite3.connect(catalog)) as database,
            contextlib.suppress(sqlite3.DatabaseError),
        ):
            if database.execute("PRAGMA quick_check").fetchall() != [("ok",)]:
                break
    else:
        pytest.fail("no page of the catalog is found damaged by a scan alone")
    copied = run("--catalog", str(catalog), "cp", "-q", str(source), str(tmp_path / "two"))
    assert copied.returncode == 2 and "damaged" in copied.stderr
    assert not (tmp_path / "two").exists()


def test_library_warnings_print_in_the_chosen_format_without_dead_socket_noise(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--log-format", "json", "--catalog", ":memory:", "status"]) == 0
    capsys.readouterr()
    # What asyncio logs for each write asyncssh makes to a socket it has not yet seen lost.
    logging.getLogger("asyncio").warning("socket.send() raised exception.")
    # What asyncio's default handler logs for aiohttp's body task when the endpoint
    # drops: the request itself fails, and is reported, with the connection's error.
    reset = aiohttp.ClientConnectionResetError("Cannot write to closing transport")
    for coroutine, failure in [
        ("ClientRequest.write_bytes", reset),
        ("our_task", reset),
        ("ClientRequest.write_bytes", ValueError("a bug")),
    ]:
        logging.getLogger("asyncio").error(
            "Task exception was never retrieved\nfuture: <Task finished name='Task-31' "
            f"coro=<{coroutine}() done, defined at x.py:1> exception={failure!r}>",
            exc_info=(type(failure), failure, None),
        )
    logging.getLogger("aiohttp.client").warning("a library's warning")
    shown = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["logger"], line["message"].split("coro=<")[-1][:9]) for line in shown] == [
        ("asyncio", "our_task("),
        ("asyncio", "ClientReq"),
        ("aiohttp.client", "a library"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("cp", "{f}", ""), "an empty path"),
        (("cp", "", "{f}.copy"), "an empty path"),
        (("locate", ""), "an empty path"),
        (("register", "hpc:/x"), "name the location in full (hpc/LOCATION:/x)"),
        (("source", "{f}", "--to", "nosuch"), "'nosuch' (known: local), and it holds no"),
    ],
)
def test_arguments_that_name_nothing_are_usage_errors(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    (tmp_path / "f").write_text("f")
    assert run("register", f"local:{tmp_path / 'f'}").returncode == 0
    shown = run(*(arg.format(f=tmp_path / "f") for arg in args), cwd=tmp_path)
    assert shown.returncode == 2 and message in shown.stderr, shown.stderr
    assert shown.stdout == ""
    assert sorted(os.listdir(tmp_path)) == ["f"]


def test_with_json_logs_every_line_on_stderr_is_a_json_record(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("f")
    for args, status in (
        (("cp", "nothing", "x"), 2),  # refused before any work
        (("cp", "--no-progress", "f", "/proc/"), 1),  # failed while copying
        (("--catalog", str(tmp_path), "status"), 2),  # before any session
    ):
        shown = run("--log-format", "json", *args, cwd=tmp_path)
        assert shown.returncode == status
        records = [json.loads(line) for line in shown.stderr.splitlines()]
        assert records and {record["level"] for record in records} == {"error"}


def test_log_lines_show_an_exception_as_one_line_unless_tracebacks_are_asked() -> None:
    try:
        raise ValueError("the cause")
    except ValueError:
        record = logging.LogRecord("x", logging.WARNING, "", 0, "failed", (), sys.exc_info())
    assert PlainFormatter().format(record) == "streamflow-data: WARNING: failed: the cause"
    assert json.loads(JsonFormatter().format(record))["exception"] == "the cause"
    assert "Traceback" in PlainFormatter(tracebacks=True).format(record)
    assert "Traceback" in json.loads(JsonFormatter(tracebacks=True).format(record))["exception"]
