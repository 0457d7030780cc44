"""The `accord` command, run in-process: publish validates and refuses bad data with exactly one
readable line on stderr and exit code 2, sending nothing; events and schemas."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiokafka.errors import KafkaConnectionError

import accord.events.publisher as publisher_module
from accord.events import REGISTRY, Envelope
from accord.events import cli as cli_module
from accord.events.cli import main

#: Nothing listens here: a send would fail with a connection error, never silently succeed.
NOWHERE = "127.0.0.1:1"
USER = {"user_id": "e-1001", "user_name": "ada", "email": "ada@example.org"}
ACCESS = {
    "request_id": "req-1",
    "requester_id": "e-1000",
    "principal_id": "e-1001",
    "resource": {"application": "crm", "entitlement": "crm-admin"},
}


class SpyPublisher:
    """Stands in for accord.events.publisher.Publisher; records what would have been sent."""

    created: ClassVar[list[SpyPublisher]] = []

    def __init__(self, *, source: str, bootstrap_servers: str | None = None) -> None:
        self.source = source
        self.bootstrap_servers = bootstrap_servers
        self.sent: list[Envelope] = []
        SpyPublisher.created.append(self)

    async def __aenter__(self) -> SpyPublisher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def send(self, envelope: Envelope) -> None:
        self.sent.append(envelope)


@pytest.fixture(autouse=True)
def hermetic_cli(monkeypatch: pytest.MonkeyPatch, no_kafka_env: None) -> None:
    """Only accord-events' own commands: other workspace packages' plugins are not under test."""
    monkeypatch.setattr(cli_module, "entry_points", lambda **_: [])


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> type[SpyPublisher]:
    SpyPublisher.created = []
    monkeypatch.setattr(publisher_module, "Publisher", SpyPublisher)
    return SpyPublisher


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    """Run `accord ARGV` in-process: exit code, stdout, stderr lines."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def publish(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    return run(capsys, "publish", *argv, "--bootstrap-servers", NOWHERE)


def assert_refused(
    result: tuple[int, str, list[str]], spy: type[SpyPublisher], *fragments: str
) -> str:
    """Exit 2, nothing on stdout, exactly one `accord: error:` line naming every fragment,
    no publisher ever created."""
    code, out, err = result
    assert code == 2, err
    assert out == ""
    assert len(err) == 1, err
    line = err[0]
    assert line.startswith("accord: error: "), line
    for fragment in fragments:
        assert fragment in line, line
    assert "Kafka" not in line, "a validation error must be reported before any connection"
    assert spy.created == [], "nothing may be sent when the data is refused"
    return line


# --- publish: refusals ---------------------------------------------------------------------


def test_invalid_json_is_refused(capsys: Any, spy: type[SpyPublisher]) -> None:
    result = publish(capsys, "user.created", "--data", '{"user_id": ')
    assert_refused(result, spy, "--data is not valid JSON")


def test_json_that_is_not_an_object_is_refused(capsys: Any, spy: type[SpyPublisher]) -> None:
    result = publish(capsys, "user.created", "--data", '["e-1001"]')
    assert_refused(result, spy, "--data must be a JSON object")


def test_missing_required_field_is_refused_naming_the_field(
    capsys: Any, spy: type[SpyPublisher], tmp_path: Path
) -> None:
    path = tmp_path / "user.json"
    path.write_text(json.dumps({"user_id": "e-1001"}))
    result = publish(capsys, "user.created", "--data", f"@{path}")
    assert_refused(result, spy, "user.created data is invalid", "user_name: Field required")


def test_every_invalid_field_is_named_on_one_line(capsys: Any, spy: type[SpyPublisher]) -> None:
    data = {**ACCESS, "resource": {"application": "crm"}, "duration_seconds": -5, "extra": 1}
    result = publish(capsys, "access.requested", "--data", json.dumps(data))
    assert_refused(result, spy, "resource.entitlement: Field required", "duration_seconds", "extra")


def test_the_invalid_value_is_not_echoed(capsys: Any, spy: type[SpyPublisher]) -> None:
    data = {**USER, "email": "hunter2-not-an-email"}
    line = assert_refused(publish(capsys, "user.created", "--data", json.dumps(data)), spy)
    assert "email" in line
    assert "hunter2" not in line


def test_unknown_type_is_refused(capsys: Any, spy: type[SpyPublisher]) -> None:
    result = publish(capsys, "user.exploded", "--data", json.dumps(USER))
    assert_refused(result, spy, "unknown event type 'user.exploded'")


def test_missing_data_file_is_refused(capsys: Any, spy: type[SpyPublisher], tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    result = publish(capsys, "user.created", "--data", f"@{missing}")
    assert_refused(result, spy, f"cannot read {missing}", "No such file")


def test_identity_event_data_is_validated_before_the_sequence(
    capsys: Any, spy: type[SpyPublisher]
) -> None:
    result = publish(capsys, "user.created", "--data", "{}", "--sequence", "3")
    assert_refused(result, spy, "user_id: Field required", "user_name: Field required")


@pytest.mark.parametrize(
    "option",
    [
        ["--sequence", "-1"],
        ["--source", ""],
        ["--correlation-id", "c" * 129],
        ["--id", "i" * 129],
    ],
    ids=["negative-sequence", "empty-source", "long-correlation-id", "long-id"],
)
def test_bad_envelope_options_are_refused(
    capsys: Any, spy: type[SpyPublisher], option: list[str]
) -> None:
    result = publish(capsys, "user.created", "--data", json.dumps(USER), *option)
    assert_refused(result, spy)


def test_data_file_that_is_not_utf8_is_refused(
    capsys: Any, spy: type[SpyPublisher], tmp_path: Path
) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes('{"user_id": "e-1001", "user_name": "J\u00f6rg"}'.encode("latin-1"))
    assert_refused(publish(capsys, "user.created", "--data", f"@{path}"), spy)


def test_error_stays_on_one_line_whatever_the_keys(capsys: Any, spy: type[SpyPublisher]) -> None:
    data = {**USER, "evil\nkey": 1}
    assert_refused(publish(capsys, "user.created", "--data", json.dumps(data)), spy)


# --- publish: dry run and send -------------------------------------------------------------


def dry_run(capsys: Any, event_type: str, data: dict[str, Any], *argv: str) -> dict[str, Any]:
    code, out, err = publish(capsys, event_type, "--data", json.dumps(data), "--dry-run", *argv)
    assert (code, err) == (0, [])
    document: dict[str, Any] = json.loads(out)
    return document


def test_dry_run_prints_a_valid_envelope(capsys: Any, spy: type[SpyPublisher]) -> None:
    before = time.time_ns() // 1000
    document = dry_run(capsys, "user.created", USER, "--correlation-id", "flow-42")
    spec = REGISTRY.spec("user.created")
    assert document["specversion"] == "1.0"
    assert document["type"] == "user.created"
    assert document["source"] == "urn:accord:cli"
    assert document["subject"] == "e-1001"
    assert document["dataschema"] == spec.dataschema
    assert document["datacontenttype"] == "application/json"
    assert document["correlationid"] == "flow-42"
    assert document["causationid"] is None
    assert isinstance(document["sequence"], int)
    assert before <= document["sequence"] <= time.time_ns() // 1000
    assert datetime.fromisoformat(document["time"]).tzinfo is not None
    assert spec.model.model_validate(document["data"]) == spec.model.model_validate(USER)
    assert spy.created == [], "--dry-run sends nothing"


def test_dry_run_uses_the_given_sequence_id_and_source(
    capsys: Any, spy: type[SpyPublisher]
) -> None:
    options = ["--sequence", "7", "--id", "evt-1", "--source", "urn:hr:workday"]
    document = dry_run(capsys, "user.deleted", {"user_id": "e-1001"}, *options)
    assert (document["sequence"], document["id"], document["source"]) == (
        7,
        "evt-1",
        "urn:hr:workday",
    )
    assert document["correlationid"] == "evt-1", "the correlation id defaults to the event id"


def test_dry_run_of_a_non_identity_event_has_no_sequence(
    capsys: Any, spy: type[SpyPublisher]
) -> None:
    document = dry_run(capsys, "access.requested", ACCESS)
    assert document["sequence"] is None
    assert document["subject"] == "req-1"


def test_data_from_a_file_and_from_stdin(
    capsys: Any, spy: type[SpyPublisher], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "group.json"
    path.write_text(json.dumps({"group_id": "g-1", "display_name": "Ops"}))
    code, out, _ = publish(capsys, "group.created", "--data", f"@{path}", "--dry-run")
    assert code == 0
    assert json.loads(out)["subject"] == "g-1"
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"group_id": "g-2"})))
    code, out, _ = publish(capsys, "group.deleted", "--data", "@-", "--dry-run")
    assert code == 0
    assert json.loads(out)["subject"] == "g-2"


def test_publish_sends_the_validated_envelope(capsys: Any, spy: type[SpyPublisher]) -> None:
    code, out, err = publish(capsys, "user.created", "--data", json.dumps(USER), "--id", "evt-9")
    assert (code, err) == (0, [])
    assert out == "published user.created evt-9 (subject e-1001)\n"
    [publisher] = spy.created
    assert publisher.bootstrap_servers == NOWHERE
    assert publisher.source == "urn:accord:cli"
    [envelope] = publisher.sent
    assert envelope.id == "evt-9"
    assert envelope.sequence is not None
    assert envelope.data == REGISTRY.spec("user.created").model.model_validate(USER)


class UnreachableProducer:
    """Stands in for AIOKafkaProducer: start() fails like a broker that does not answer."""

    instances: ClassVar[list[UnreachableProducer]] = []

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.sent = 0
        UnreachableProducer.instances.append(self)

    async def start(self) -> None:
        raise KafkaConnectionError(f"Unable to bootstrap from {self.config['bootstrap_servers']}")

    async def stop(self) -> None:
        return None

    async def send_and_wait(self, *args: Any, **kwargs: Any) -> None:
        self.sent += 1


def test_unreachable_broker_is_one_line_and_exit_1(
    capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection error (exit 1) is told apart from a validation error (exit 2)."""
    UnreachableProducer.instances = []
    monkeypatch.setattr(publisher_module, "AIOKafkaProducer", UnreachableProducer)
    code, out, err = publish(capsys, "user.created", "--data", json.dumps(USER))
    assert code == 1
    assert out == ""
    expected = (
        f"could not publish to Kafka: KafkaConnectionError: Unable to bootstrap from {NOWHERE}"
    )
    assert err == [f"accord: error: {expected}"]
    [producer] = UnreachableProducer.instances
    assert producer.config["bootstrap_servers"] == NOWHERE
    assert producer.sent == 0


# --- events, schemas, help -----------------------------------------------------------------


def test_events_lists_every_type(capsys: Any) -> None:
    code, out, err = run(capsys, "events")
    assert (code, err) == (0, [])
    lines = out.splitlines()
    assert len(lines) == len(list(REGISTRY))
    rows = {}
    for line in lines:
        match = re.fullmatch(r"(\S+) +v(\d+)  (identity|        )  (.+)", line)
        assert match, line
        rows[match[1]] = match.groups()
    for spec in REGISTRY:
        _, version, kind, description = rows[spec.type]
        assert int(version) == spec.version
        assert (kind == "identity") is spec.model.identity_event
        assert description == spec.description


def test_schemas_check_passes_on_the_repo_folder(capsys: Any, events_folder: Path) -> None:
    code, out, err = run(capsys, "schemas", str(events_folder), "--check")
    assert (code, err) == (0, []), "run `make schemas`"
    assert out == "schemas match the models\n"


def test_schemas_check_fails_on_an_empty_folder(capsys: Any, tmp_path: Path) -> None:
    code, out, err = run(capsys, "schemas", str(tmp_path), "--check")
    assert code == 1
    assert out == ""
    assert len(err) == 1
    assert err[0].startswith("accord: error: schemas drifted from the models: missing: ")
    assert list(tmp_path.iterdir()) == [], "--check writes nothing"


def test_schemas_writes_then_checks(capsys: Any, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "schemas", str(tmp_path))
    assert code == 0
    assert out.startswith(f"wrote {len(list(REGISTRY)) + 1} file(s): ")
    assert run(capsys, "schemas", str(tmp_path))[1] == "wrote 0 file(s)\n"
    assert run(capsys, "schemas", str(tmp_path), "--check")[0] == 0


@pytest.mark.parametrize("argv", [["--help"], ["publish", "--help"], ["schemas", "--help"]])
def test_help_exits_0(capsys: Any, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: accord")


def test_publish_help_lists_every_event_type(capsys: Any) -> None:
    with pytest.raises(SystemExit):
        main(["publish", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for spec in REGISTRY:
        assert spec.type in out


def test_no_command_is_a_usage_error(capsys: Any) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2


# --- plugins -------------------------------------------------------------------------------


class FakeEntryPoint:
    def __init__(self, name: str, target: Any) -> None:
        self.name = name
        self._target = target

    def load(self) -> Any:
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def test_plugins_add_commands(capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def register(commands: Any) -> None:
        parser: argparse.ArgumentParser = commands.add_parser("hello")
        parser.set_defaults(func=lambda args: print("hi") or 0)

    monkeypatch.setattr(cli_module, "entry_points", lambda **_: [FakeEntryPoint("hello", register)])
    assert run(capsys, "hello") == (0, "hi\n", [])


def test_a_broken_plugin_does_not_take_publish_down(
    capsys: Any, monkeypatch: pytest.MonkeyPatch, spy: type[SpyPublisher]
) -> None:
    broken = FakeEntryPoint("up", ImportError("No module named 'accord.stack.cli'"))
    monkeypatch.setattr(cli_module, "entry_points", lambda **_: [broken])
    code, out, err = publish(capsys, "user.created", "--data", json.dumps(USER), "--dry-run")
    assert code == 0
    assert json.loads(out)["type"] == "user.created"
    assert err == ["accord: warning: command 'up' unavailable: No module named 'accord.stack.cli'"]


# --- traces --------------------------------------------------------------------------------

TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-[0-9a-f]{16}-01")


def test_publish_starts_a_trace(capsys: Any, spy: type[SpyPublisher]) -> None:
    """The README promises one trace id per flow: the event that starts it carries it too."""
    for _ in range(2):
        code, _, err = publish(capsys, "user.created", "--data", json.dumps(USER))
        assert (code, err) == (0, [])
    traces = []
    for publisher in spy.created:
        [envelope] = publisher.sent
        match = TRACEPARENT.fullmatch(envelope.traceparent or "")
        assert match, envelope.traceparent
        traces.append(match[1])
    assert traces[0] != traces[1], "each published event starts a trace of its own"


def test_dry_run_shows_the_trace_it_would_start(capsys: Any, spy: type[SpyPublisher]) -> None:
    assert TRACEPARENT.fullmatch(dry_run(capsys, "user.created", USER)["traceparent"])


# --- whatever goes wrong: one line ---------------------------------------------------------


def with_command(monkeypatch: pytest.MonkeyPatch, name: str, func: Any, **defaults: Any) -> None:
    """Install a plugin command NAME running func(args)."""

    def register(commands: Any) -> None:
        parser: argparse.ArgumentParser = commands.add_parser(name)
        parser.set_defaults(func=func, **defaults)

    monkeypatch.setattr(cli_module, "entry_points", lambda **_: [FakeEntryPoint(name, register)])


def test_an_unexpected_error_is_one_line(capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(args: argparse.Namespace) -> int:
        raise RuntimeError("the flux\ncapacitor broke")

    with_command(monkeypatch, "boom", boom)
    assert run(capsys, "boom") == (
        1,
        "",
        [
            "accord: error: unexpected RuntimeError: the flux capacitor broke"
            " (accord -v ... shows the traceback)"
        ],
    )
    code, _, err = run(capsys, "-v", "boom")
    assert code == 1
    assert err[0] == "Traceback (most recent call last):"
    assert err[-1] == "accord: error: unexpected RuntimeError: the flux capacitor broke"


def test_settings_that_do_not_parse_are_one_line_without_the_value(
    capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import BaseModel

    class WidgetSettings(BaseModel):
        retries: int
        password: int

    def settings(args: argparse.Namespace) -> int:
        WidgetSettings.model_validate({"retries": "often", "password": "hunter2"})
        return 0

    with_command(monkeypatch, "widget", settings)
    code, out, err = run(capsys, "widget")
    assert (code, out) == (2, "")
    assert err == [
        "accord: error: WidgetSettings: retries: Input should be a valid integer, unable to parse"
        " string as an integer (and 1 more)"
    ]


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    """`accord dlq list --json | head`: a closed pipe is no error to report (exit 141, the
    shell's code for SIGPIPE), and no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "accord.events.cli", "events"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.stderr.decode() == ""
    assert done.returncode == 141


# --- beside accord up: its env file --------------------------------------------------------


def test_env_file_round_trip(tmp_path: Path) -> None:
    values = {
        "DATABASE_URL": "postgresql://accord:p@ss w'rd\"$x@127.0.0.1:5433/accord",
        "EMPTY": "",
        "ACCORD_TARGETS_FILE": "/a folder/targets.yaml",
    }
    path = tmp_path / "env"
    path.write_text("# a comment\n\n" + cli_module.env_file_text(values))
    assert cli_module.read_env_file(path) == values
    assert cli_module.read_env_file(tmp_path / "missing") == {}


@pytest.mark.parametrize("line", ["JUST_A_NAME", "1BAD=x", "A=two words", "A='unclosed"])
def test_a_broken_env_file_is_one_line(
    capsys: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, line: str
) -> None:
    env = tmp_path / "env"
    env.write_text(f"OK=1\n{line}\n")
    with_command(monkeypatch, "hello", lambda args: 0)
    code, _, err = run_beside(capsys, env, "hello")
    assert (code, err) == (1, [f"accord: error: {env}:2: not a NAME=value line"])


def run_beside(capsys: Any, env: Path, *argv: str) -> tuple[int, str, list[str]]:
    code = main(list(argv), local_env=env)
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def test_beside_accord_up_its_env_file_fills_the_gaps(
    capsys: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("ACCORD_TEST_FROM_FILE", "ACCORD_TEST_SET"):
        monkeypatch.setenv(name, "")  # restored after the test, whatever main() sets
        monkeypatch.delenv(name)
    monkeypatch.setenv("ACCORD_TEST_SET", "from the environment")
    env = tmp_path / "env"
    env.write_text(
        cli_module.env_file_text(
            {"ACCORD_TEST_FROM_FILE": "from the file", "ACCORD_TEST_SET": "no"}
        )
    )

    def show(args: argparse.Namespace) -> int:
        print(os.environ.get("ACCORD_TEST_FROM_FILE"), "/", os.environ["ACCORD_TEST_SET"])
        return 0

    with_command(monkeypatch, "show", show)
    assert run(capsys, "show") == (0, "None / from the environment\n", [])
    assert run_beside(capsys, env, "show") == (0, "from the file / from the environment\n", [])


def test_accord_up_does_not_read_the_env_file_it_writes(
    capsys: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ACCORD_TEST_FROM_FILE", "")
    monkeypatch.delenv("ACCORD_TEST_FROM_FILE")
    env = tmp_path / "env"
    env.write_text("ACCORD_TEST_FROM_FILE=previous-run\n")

    def show(args: argparse.Namespace) -> int:
        print(os.environ.get("ACCORD_TEST_FROM_FILE"))
        return 0

    with_command(monkeypatch, "up", show, local_env=False)
    assert run_beside(capsys, env, "up") == (0, "None\n", [])


def test_a_producer_the_broker_will_not_start_names_the_likely_cause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tansu answers an idempotent producer's InitProducerId with UnknownError only."""
    from aiokafka.errors import KafkaConnectionError, UnknownError

    from accord.events.cli import _start_hint

    monkeypatch.setenv("ACCORD_BROKER", "kafka")
    assert "set ACCORD_BROKER=tansu" in _start_hint(UnknownError(), started=False)
    assert _start_hint(UnknownError(), started=True) == ""
    assert _start_hint(KafkaConnectionError("down"), started=False) == ""
    monkeypatch.setenv("ACCORD_BROKER", "tansu")
    assert _start_hint(UnknownError(), started=False) == ""
