"""What a task is: its run forms (an argv, a Nushell or a Python function) and a
submission (name, parameters, priority, timeout, retry policy).

User data never becomes code: a Nushell module path and command name, a Python module
and function are validated against strict patterns here, before anything runs.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from .limits import MAX_PARAMS_BYTES as MAX_PARAMS_BYTES
from .limits import check_params
from .retry import RetryPolicy, Strict

NU_MODULE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")
NU_FUNCTION_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
PY_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
PY_FUNCTION_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class NushellRun(Strict):
    module: str
    function: str
    # An extra library folder (absolute), searched before the platform's: how a
    # taskserv catalog or a workspace's extensions provide their modules.
    lib: str | None = None

    @field_validator("lib")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or "\0" in value):
            raise ValueError("must be an absolute folder path")
        return value

    @field_validator("module")
    @classmethod
    def _module_inside_library(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/") or not NU_MODULE_RE.fullmatch(value):
            raise ValueError(
                "must be a relative path inside the Nushell library "
                "(letters, digits, '_', '-', '.', '/'; no '..', not absolute)"
            )
        return value

    @field_validator("function")
    @classmethod
    def _function_name(cls, value: str) -> str:
        if not NU_FUNCTION_RE.fullmatch(value):
            raise ValueError("must be a Nushell command name (letters, digits, '_', '-')")
        return value


class PythonRun(Strict):
    module: str
    function: str

    @field_validator("module")
    @classmethod
    def _module_name(cls, value: str) -> str:
        if not PY_MODULE_RE.fullmatch(value):
            raise ValueError("must be a dotted Python module name")
        return value

    @field_validator("function")
    @classmethod
    def _function_name(cls, value: str) -> str:
        if not PY_FUNCTION_RE.fullmatch(value):
            raise ValueError("must be a Python identifier")
        return value


class RunSpec(Strict):
    """Exactly one runner: an argv list, a Nushell module function or a Python function."""

    command: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None = None
    nushell: NushellRun | None = None
    python: PythonRun | None = None

    @field_validator("command")
    @classmethod
    def _no_nul(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any("\0" in arg for arg in value):
            raise ValueError("arguments cannot contain NUL bytes")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> RunSpec:
        given = [name for name in ("command", "nushell", "python") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one runner: 'command' (argv list), 'nushell' {module, function} "
                f"or 'python' {{module, function}}; got {given or 'none'}"
            )
        return self

    @property
    def kind(self) -> Literal["command", "nushell", "python"]:
        if self.command:
            return "command"
        return "nushell" if self.nushell else "python"


class NewTask(BaseModel):
    """A task as submitted (``POST /tasks``)."""

    model_config = Strict.model_config

    name: Annotated[str, Field(min_length=1, max_length=200)]
    run: RunSpec
    params: dict[str, Any] = {}
    priority: Literal["low", "normal", "high", "critical"] = "normal"
    timeout_seconds: Annotated[float, Field(gt=0, le=7 * 86_400)] | None = None
    retry: RetryPolicy | None = None

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("must be printable text (no control characters)")
        return value

    @field_validator("params")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_params(value, "params")
        return value
