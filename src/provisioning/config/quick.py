"""The configuration without pydantic, for the CLI's start-up.

Importing pydantic and building the models' validators costs the CLI ~0.1 s on every
command, more than most commands take. The models' JSON schema is shipped beside them
(``settings.schema.json``, kept equal to ``Settings.model_json_schema()`` by a unit
test; ``write_schema`` remakes it), and this module checks the merged layers against
it, with the same rule functions the models call (``rules.py``).

It only ever accepts: a value it is not sure of (any conversion pydantic would make
but a plain one, anything out of range or unknown) makes :func:`validated` answer
``None``, and the loader then validates with pydantic, whose answer and error
messages stay the reference. What it accepts it converts as pydantic does (an
integer in a float field becomes a float, an enum's value its member)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from . import rules

if TYPE_CHECKING:
    from .models import Settings

SCHEMA_FILE = Path(__file__).with_name("settings.schema.json")


class _Doubt(Exception):
    """Not for the quick path to decide."""


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


def _section_schema(name: str) -> dict[str, Any]:
    found = schema()["properties"][name]
    target: dict[str, Any] = schema()["$defs"][found["$ref"].rsplit("/", 1)[1]]
    return target


def sections() -> dict[str, list[str]]:
    """Every section and its keys, in the models' order."""
    return {name: list(_section_schema(name)["properties"]) for name in schema()["properties"]}


def _bounded(spec: Mapping[str, Any], value: float) -> None:
    if (
        ("minimum" in spec and not value >= spec["minimum"])
        or ("maximum" in spec and not value <= spec["maximum"])
        or ("exclusiveMinimum" in spec and not value > spec["exclusiveMinimum"])
        or ("exclusiveMaximum" in spec and not value < spec["exclusiveMaximum"])
    ):
        raise _Doubt


# A JSON schema type -> the Python types taken as they are (a bool is no integer here).
_TYPES: dict[str | None, tuple[type, ...]] = {
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "array": (list,),
    "object": (dict,),
}


def _value(spec: Mapping[str, Any], value: Any) -> Any:
    if "$ref" in spec:
        target = schema()["$defs"][spec["$ref"].rsplit("/", 1)[1]]
        if type(value) is not str or value not in target.get("enum", ()):
            raise _Doubt
        return rules.ENUMS[target["title"]](value)
    kind = spec.get("type")
    if type(value) not in _TYPES.get(kind, ()) or value not in spec.get("enum", (value,)):
        raise _Doubt
    if kind == "number":
        value = float(value)
    if kind in ("integer", "number"):
        _bounded(spec, value)
    elif kind == "array":
        value = [_value(spec["items"], item) for item in value]
    elif kind == "object":
        inner = spec.get("additionalProperties")
        if inner is None or inner is False:
            raise _Doubt
        value = {key: item if inner is True else _value(inner, item) for key, item in value.items()}
    rule = spec.get("x-rule")
    return value if rule is None else rules.FIELD_RULES[rule](value)


def _default(spec: Mapping[str, Any]) -> Any:
    """A key no layer gives: the model's default, unconverted (pydantic does not
    validate defaults), but an enum's value as its member."""
    value = spec["default"]
    if "$ref" in spec:
        return _value(spec, value)
    return json.loads(json.dumps(value)) if isinstance(value, list | dict) else value


def _section(name: str, given: Any) -> dict[str, Any]:
    spec = _section_schema(name)
    before = spec.get("x-before")
    if before is not None:
        given = rules.SECTION_RULES[before](given)
    if not isinstance(given, dict) or set(given) - set(spec["properties"]):
        raise _Doubt
    values = {
        key: _value(field, given[key]) if key in given else _default(field)
        for key, field in spec["properties"].items()
    }
    after = spec.get("x-after")
    if after is not None:
        values = rules.SECTION_RULES[after](values)
    return values


class QuickSection:
    """One section's values as attributes; anything else a model has (``model_dump``)
    comes from the pydantic section, built on first use."""

    def __init__(self, values: Mapping[str, Any], real: Callable[[], Any]) -> None:
        self.__dict__.update(values)
        self.__dict__["_real"] = real

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.__dict__["_real"](), name)


class QuickSettings(rules.DerivedPaths):
    """The settings with the model's attributes, and its derived paths (``rules.py``);
    anything else comes from the pydantic ``Settings``, validated on first use."""

    def __init__(self, merged: Mapping[str, Any], real: Callable[[], Settings]) -> None:
        self.__dict__["_real"] = cache(real)
        for name in schema()["properties"]:
            values = _section(name, merged.get(name, {}))
            self.__dict__[name] = QuickSection(values, self._section_of(name))

    def _section_of(self, name: str) -> Callable[[], Any]:
        return lambda: getattr(self.__dict__["_real"](), name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.__dict__["_real"](), name)


def validated(merged: Mapping[str, Any], real: Callable[[], Settings]) -> Settings | None:
    """The settings ``merged`` gives, when every value is one this module is sure of;
    else ``None`` (pydantic decides). ``real`` builds the pydantic model when asked."""
    try:
        quick = QuickSettings(merged, real)
    except (_Doubt, ValueError, TypeError):
        return None
    # It has every attribute of Settings (the rest from the model itself).
    return cast("Settings", quick)


def write_schema() -> None:
    """Remake ``settings.schema.json`` from the models."""
    from .models import Settings

    SCHEMA_FILE.write_text(json.dumps(Settings.model_json_schema(), indent=1) + "\n")
