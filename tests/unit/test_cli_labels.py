"""Names and outcomes a run is shown with, and Nickel's errors as a user reads them."""

from __future__ import annotations

import pytest

from provisioning.cli.labels import outcome_of, reports_no_change, target_of, task_label
from provisioning.schemas.loader import tidy_nickel_error


@pytest.mark.parametrize(
    ("name", "step", "label", "target"),
    [
        ("server-create-wuji/servers/web-1", "servers", "web-1", "web-1"),
        ("cluster-create-web/taskserv-runc/web-2", "taskserv-runc", "runc@web-2", "web-2"),
        ("deploy/smoke", "smoke", "smoke", "smoke"),
        ("deploy/fan[1]", "fan", "fan[1]", "fan"),
    ],
)
def test_tasks_are_named_after_what_they_act_on(
    name: str, step: str, label: str, target: str
) -> None:
    task = {"name": name}
    assert task_label(task, step) == label
    assert target_of(task, step) == target


@pytest.mark.parametrize(
    ("status", "result", "outcome", "no_change"),
    [
        ("completed", {"created": True}, "changed", False),
        ("completed", {"changed": False, "version": "3.5.12"}, "ok", True),
        ("completed", None, "ok", False),
        ("timed_out", None, "failed", False),
        ("cancelled", None, "cancelled", False),
    ],
)
def test_outcomes_in_ansible_words(
    status: str, result: object, outcome: str, no_change: bool
) -> None:
    task = {"status": status, "result": result}
    assert outcome_of(task) == outcome
    assert reports_no_change(task) is no_change


NICKEL = """error: unexpected token
  ┌─ /tmp/w/syntax.ncl:4:1
  │
4 │ }
  │ ^
  │
  ┌─ python:1:87
  │
1 │ let schema = import "/x/workflow.ncl" in let raw = import "/tmp/w/syntax.ncl" in raw
  │                                                  ----------------- imported here
"""


def test_nickel_error_keeps_the_users_file_and_caret_only() -> None:
    tidy = tidy_nickel_error(NICKEL)
    assert tidy.splitlines()[0] == "unexpected token"  # the CLI adds "error:" once
    assert "/tmp/w/syntax.ncl:4:1" in tidy
    assert "  │ ^" in tidy
    assert "python:" not in tidy and "let schema" not in tidy
