"""Plain values for plain options: Typer builds a Pydantic ``TypeAdapter`` for every
parameter it parses (~5-10 ms each, several per command, paid on every CLI start,
and pydantic's import with the first), though a ``str``, a ``Path``, a flag, an enum's
exact value or a number in its range written plainly needs none. Anything
else (a conversion, a range, a file, a bad value and its message) still goes to
Typer's own coercion, built only then."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import typer.core
from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param


@dataclass(frozen=True)
class _PlainRuntimeParam(RuntimeParam):
    descriptor: TypeDescriptor
    typer_param: list[RuntimeParam] = field(default_factory=list)

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        kind = self.annotation
        if kind in (str, Path) and isinstance(value, str | Path):
            return kind(value)
        if kind is bool and isinstance(value, bool):
            return value
        if kind in (int, float):
            number = _plain_number(kind, value)
            low, high = self.parameter_info.min, self.parameter_info.max
            if (
                number is not None
                and (low is None or number >= low)
                and (high is None or number <= high)
            ):
                return number
        if isinstance(kind, type) and issubclass(kind, Enum):
            if isinstance(value, kind):
                return value
            for member in kind:
                if member.value == value:
                    return member
        if not self.typer_param:
            self.typer_param.append(build_runtime_param(self.descriptor))
        return self.typer_param[0]._coerce_value(value, param=param, ctx=ctx)


# Numbers written the one way every parser reads alike; anything else is Typer's to read.
_INT = re.compile(r"-?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")


def _plain_number(kind: type, value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if kind is int:
        if isinstance(value, int):
            return value
        return int(value) if isinstance(value, str) and _INT.fullmatch(value) else None
    if isinstance(value, int | float):
        return float(value)
    return float(value) if isinstance(value, str) and _FLOAT.fullmatch(value) else None


def _plain_or_typer(descriptor: TypeDescriptor) -> RuntimeParam:
    info = descriptor.parameter_info
    kind = descriptor.annotation
    plain_kind = kind in (str, Path, bool, int, float) or (
        isinstance(kind, type) and issubclass(kind, Enum)
    )
    if any(getattr(info, name, False) for name in ("clamp", "min_open", "max_open")):
        plain_kind = False
    if (
        not plain_kind
        or descriptor.file_annotation is not None
        or getattr(info, "parser", None) is not None
        or getattr(info, "click_type", None) is not None
    ):
        return build_runtime_param(descriptor)
    return _PlainRuntimeParam(annotation=kind, parameter_info=info, descriptor=descriptor)


def install() -> None:
    """Route Typer's parameter coercion through :func:`_plain_or_typer`."""
    typer.core.build_runtime_param = _plain_or_typer  # type: ignore[attr-defined]
