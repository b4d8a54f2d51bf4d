"""Checks on hostile input that need no I/O: JSON bounds, full-match names, what
environment a task gets."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from provisioning.execution.environment import is_platform_operation, task_environment
from provisioning.infra.models import NAME_RE
from provisioning.providers.base import HOSTNAME_RE
from provisioning.tasks import NewTask, RunSpec, parse_line
from provisioning.tasks.limits import MAX_PARAMS_DEPTH, depth_of, encoded_depth


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [0, 1, 5, MAX_PARAMS_DEPTH])
def test_depth_of_decoded_and_encoded_json_agree(depth: int) -> None:
    import json

    value = nested(depth)
    assert depth_of(value) == depth
    assert encoded_depth(json.dumps(value).encode()) == depth


def test_brackets_inside_strings_do_not_count() -> None:
    assert encoded_depth(b'{"a": "[[[[{{{{", "b": "\\"[["}') == 1


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b'["a[", "]]", "{", ""]', 1),  # no escapes: strings dropped pairwise
        (b'[["]", ""], "", [{"k[": ["}}"]}]]', 4),
        (b'["","",""]', 1),
        (b'["\\\\", ["\\"]"]]', 2),  # escapes: the string-by-string path
        (b'{"a": "x\\ny", "b": [[]]}', 3),
    ],
)
def test_encoded_depth_with_and_without_escapes(text: bytes, depth: int) -> None:
    import json

    assert depth_of(json.loads(text)) == depth
    assert encoded_depth(text) == depth


def test_params_deeper_than_the_limit_are_refused() -> None:
    run = {"command": ["true"]}
    NewTask.model_validate(
        {"name": "ok", "run": run, "params": {"a": nested(MAX_PARAMS_DEPTH - 1)}}
    )
    with pytest.raises(ValidationError, match="nested"):
        NewTask.model_validate({"name": "x", "run": run, "params": {"a": nested(MAX_PARAMS_DEPTH)}})


@pytest.mark.parametrize("name", ["web-1\n", "web-1\r", "\nweb-1", "web_1", "-web", "a" * 64, ""])
def test_names_are_checked_as_full_matches(name: str) -> None:
    assert HOSTNAME_RE.fullmatch(name) is None
    assert NAME_RE.fullmatch(name) is None


@pytest.mark.parametrize("line", ["RESULT: 1\n2", "PROGRESS: 5\nRESULT: 1"])
def test_a_protocol_line_is_one_whole_line(line: str) -> None:
    assert parse_line(line).kind == "log"


DAEMON_ENV = {
    "PATH": "/usr/bin",
    "LANG": "C.UTF-8",
    "HOME": "/root",
    "DATABASE_URL": "postgres://a:b@c/d",
    "AWS_ACCESS_KEY_ID": "AKIA",
    "UPCLOUD_PASSWORD": "pw",
    "PROVISIONING_CONFIG": "/etc/p.toml",
    "PROVISIONING_STORAGE_DSN": "postgresql://secret",
    "PROVISIONING_SERVER_TOKEN_FILE": "/x",
}


def test_a_user_task_gets_no_credentials() -> None:
    run = RunSpec.model_validate({"command": ["env"]})
    env = task_environment(run, {"STAGE": "blue"}, daemon_env=DAEMON_ENV)
    assert env == {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "HOME": "/root",
        "PROVISIONING_CONFIG": "/etc/p.toml",
        "STAGE": "blue",
    }


def test_a_platform_operation_gets_the_provider_credentials_only() -> None:
    run = RunSpec.model_validate(
        {"python": {"module": "provisioning.operations.handlers", "function": "server_create"}}
    )
    assert is_platform_operation(run)
    env = task_environment(run, {}, daemon_env=DAEMON_ENV)
    assert env["AWS_ACCESS_KEY_ID"] == "AKIA"
    assert env["UPCLOUD_PASSWORD"] == "pw"
    assert "DATABASE_URL" not in env
    assert "PROVISIONING_STORAGE_DSN" not in env


def test_a_nushell_task_of_a_user_library_is_not_a_platform_operation() -> None:
    run = RunSpec.model_validate(
        {"nushell": {"module": "x.nu", "function": "go", "lib": "/srv/mine"}}
    )
    assert not is_platform_operation(run)
