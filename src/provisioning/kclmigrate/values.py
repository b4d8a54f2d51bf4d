"""The KCL syntax tree's building blocks and their Nickel text: literals, keys,
strings, and the schemas read from a file (see ``contracts.py``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

Node = dict[str, Any]


class Unmappable(Exception):
    """A KCL construct with no Nickel counterpart here; the message names it."""


@dataclass(frozen=True)
class Unmapped:
    line: int
    what: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.what}"


@dataclass
class Attribute:
    name: str
    type: Node | None
    optional: bool
    default: Any = None
    has_default: bool = False


@dataclass
class Schema:
    name: str
    line: int
    attributes: dict[str, Attribute] = field(default_factory=dict)
    open: bool = False
    checks: list[tuple[str, str]] = field(default_factory=list)  # (Nickel condition, message)

    def literal_default(self, name: str) -> tuple[bool, Any]:
        attribute = self.attributes.get(name)
        if attribute is None or not attribute.has_default:
            return False, None
        return True, attribute.default


def strip(node: Any) -> Any:
    """The tree without positions, keeping each node's ``line``."""
    if isinstance(node, dict):
        if "node" in node and "line" in node:
            inner = strip(node["node"])
            if isinstance(inner, dict):
                inner.setdefault("line", node["line"])
            return inner
        return {k: strip(v) for k, v in node.items() if k not in _NOISE}
    if isinstance(node, list):
        return [strip(item) for item in node]
    return node


_NOISE = {"filename", "column", "end_line", "end_column", "ctx", "is_long_string", "binary_suffix"}


def literal(node: Node | None) -> Any:
    """The value of a literal expression; raises :class:`Unmappable` otherwise."""
    if node is None:
        raise Unmappable("no value")
    kind = node.get("type")
    if kind == "StringLit":
        return node["value"]
    if kind == "NumberLit":
        if node["value"].get("type") not in ("Int", "Float"):
            raise Unmappable("a number with a unit suffix")
        return node["value"]["value"]
    if kind == "NameConstantLit":
        constants = {"True": True, "False": False, "None": None}
        if node["value"] not in constants:
            raise Unmappable(f"the constant {node['value']}")
        return constants[node["value"]]
    if kind == "List":
        return [literal(e) for e in node["elts"]]
    if kind == "Config":
        result = {}
        for item in node["items"]:
            key = item.get("key")
            if item.get("operation") != "Override" or key is None:
                raise Unmappable("a dict with computed entries")
            result[config_key(key)] = literal(item["value"])
        return result
    raise Unmappable(f"a computed value ({kind})")


def config_key(node: Node) -> str:
    if node.get("type") == "Identifier" and len(node["names"]) == 1:
        return str(node["names"][0])
    if node.get("type") == "StringLit":
        return str(node["value"])
    raise Unmappable("a computed key")


def nickel_string(text: str) -> str:
    """A Nickel string literal (no interpolation)."""
    return json.dumps(text, ensure_ascii=False).replace("%", "\\%")


def to_nickel_literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return nickel_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(to_nickel_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        fields = ", ".join(f"{field_name(k)} = {to_nickel_literal(v)}" for k, v in value.items())
        return "{" + fields + "}"
    raise Unmappable(f"the value {value!r}")


KEYWORDS = {
    "if", "then", "else", "let", "in", "fun", "import", "match", "null", "true", "false",
    "rec", "forall", "default", "doc", "optional", "priority", "force", "not_exported",
    "Array", "Dyn", "Number", "Bool", "String", "include", "merge",
}  # fmt: skip


def field_name(key: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_'-]*", key) and key not in KEYWORDS:
        return key
    return nickel_string(key)
