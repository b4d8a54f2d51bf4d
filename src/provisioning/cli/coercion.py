"""Plain values for plain options: Typer builds a Pydantic ``TypeAdapter`` for every
parameter it parses (~5-10 ms each, several per command, paid on every CLI start),
though a ``str``, a ``Path``, a flag or an enum's exact value needs none. Anything
else (a conversion, a range, a file, a bad value and its message) still goes to
Typer's own coercion, built only then."""

from __future__ import annotations

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
        if isinstance(kind, type) and issubclass(kind, Enum):
            if isinstance(value, kind):
                return value
            for member in kind:
                if member.value == value:
                    return member
        if not self.typer_param:
            self.typer_param.append(build_runtime_param(self.descriptor))
        return self.typer_param[0]._coerce_value(value, param=param, ctx=ctx)


def _plain_or_typer(descriptor: TypeDescriptor) -> RuntimeParam:
    info = descriptor.parameter_info
    kind = descriptor.annotation
    plain_kind = kind in (str, Path, bool) or (isinstance(kind, type) and issubclass(kind, Enum))
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
