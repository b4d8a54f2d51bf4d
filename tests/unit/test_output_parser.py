"""The handler output protocol: ``PROGRESS: <0-100> [message]``, ``RESULT: <json>``, logs."""

from __future__ import annotations

from typing import Any

import pytest

from provisioning.tasks.protocol import OutputLine, parse_line


@pytest.mark.parametrize(
    ("line", "progress", "message"),
    [
        ("PROGRESS: 0", 0, None),
        ("PROGRESS: 50", 50, None),
        ("PROGRESS: 100", 100, None),
        ("PROGRESS: 7 installing containerd", 7, "installing containerd"),
        ("PROGRESS:42 no space after the colon", 42, "no space after the colon"),
        ("PROGRESS:   9    padded message   ", 9, "padded message"),
        ("PROGRESS: 050 leading zero", 50, "leading zero"),
        ("PROGRESS: 60 RESULT: {}", 60, "RESULT: {}"),
        ("PROGRESS: 30 \n", 30, None),
        ("PROGRESS: 30 done\r\n", 30, "done"),
    ],
)
def test_progress_lines(line: str, progress: int, message: str | None) -> None:
    parsed = parse_line(line)
    assert parsed.kind == "progress"
    assert parsed.progress == progress
    assert parsed.message == message
    assert parsed.text == line.rstrip("\r\n")


@pytest.mark.parametrize(
    "line",
    [
        "PROGRESS: 101",
        "PROGRESS: 999 too much",
        "PROGRESS: 1000",
        "PROGRESS: -1",
        "PROGRESS: 50%",
        "PROGRESS: half",
        "PROGRESS:",
        "PROGRESS: ",
        "progress: 50",
        " PROGRESS: 50",
        "[info] PROGRESS: 50",
        "PROGRESS 50",
        "PROGRESS: 5.5",
    ],
)
def test_malformed_progress_stays_log_text(line: str) -> None:
    assert parse_line(line) == OutputLine("log", line)


@pytest.mark.parametrize(
    ("line", "result"),
    [
        ('RESULT: {"servers": ["a", "b"], "count": 2}', {"servers": ["a", "b"], "count": 2}),
        ("RESULT: [1, 2, 3]", [1, 2, 3]),
        ('RESULT: "just a string"', "just a string"),
        ("RESULT: 42", 42),
        ("RESULT: true", True),
        ("RESULT: null", None),
        ("RESULT:{}", {}),
        ('RESULT:   {"padded": true}   ', {"padded": True}),
        ('RESULT: {"a": 1}\r\n', {"a": 1}),
        ('RESULT: {"text": "ünïcode ✓"}', {"text": "ünïcode ✓"}),
    ],
)
def test_result_lines(line: str, result: Any) -> None:
    parsed = parse_line(line)
    assert parsed.kind == "result"
    assert parsed.result == result
    assert parsed.text == line.rstrip("\r\n")
    assert parsed.progress is None


@pytest.mark.parametrize(
    "line",
    [
        "RESULT:",
        "RESULT: ",
        "RESULT: {not json}",
        "RESULT: {'single': 'quotes'}",
        'RESULT: {"a": 1} trailing',
        "result: {}",
        " RESULT: {}",
        "RESULTS: {}",
    ],
)
def test_malformed_result_stays_log_text(line: str) -> None:
    assert parse_line(line) == OutputLine("log", line)


@pytest.mark.parametrize(
    "line",
    [
        "hello, world",
        "",
        "   ",
        "ERROR: something failed",
        "a line with \t tabs and ünïcode",
    ],
)
def test_anything_else_is_log_text(line: str) -> None:
    parsed = parse_line(line)
    assert parsed == OutputLine("log", line)
    assert parsed.progress is None
    assert parsed.result is None


def test_only_the_line_ending_is_stripped() -> None:
    assert parse_line("  indented text  \r\n").text == "  indented text  "
    assert parse_line("line\n").text == "line"


def test_a_result_with_a_huge_integer_stays_log_text() -> None:
    line = "RESULT: " + "9" * 5000
    assert parse_line(line) == OutputLine("log", line)


def test_a_result_nested_too_deep_stays_log_text() -> None:
    line = "RESULT: " + "[" * 100_000
    assert parse_line(line) == OutputLine("log", line)
