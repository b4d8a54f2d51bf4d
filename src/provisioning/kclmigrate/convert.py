"""One ``.k`` file -> idiomatic Nickel: the schemas as contracts, the evaluated data
as a record whose schema instances carry their contract (and leave out what the
contract's defaults give).

The data always comes from the KCL engine's evaluation, so what the KCL computed
(comprehensions, arithmetic, interpolation) is written as its value; the syntax tree
only says which values are schema instances and which fields the user wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .checks import HELPERS
from .contracts import contract_text, read_schemas
from .values import (
    Node,
    Schema,
    Unmappable,
    Unmapped,
    config_key,
    field_name,
    strip,
    to_nickel_literal,
)

INDENT = "  "


@dataclass
class Conversion:
    text: str
    unmapped: list[Unmapped] = field(default_factory=list)


class _Writer:
    def __init__(self, schemas: dict[str, Schema]) -> None:
        self.schemas = schemas

    def schema_of(self, node: Node | None, declared: Node | None = None) -> Schema | None:
        """The schema a value is an instance of: ``S {...}`` or ``x: S = {...}``."""
        if node is not None and node.get("type") == "Schema":
            names = node["name"]["names"]
            return self.schemas.get(names[0]) if len(names) == 1 else None
        if declared is not None and declared.get("type") == "Named" and node is not None:
            names = declared["value"]["names"]
            if node.get("type") == "Config" and len(names) == 1:
                return self.schemas.get(names[0])
        return None

    def value(self, value: Any, node: Node | None, depth: int) -> str:
        """A value, with its schema's contract when it is an instance."""
        schema = self.schema_of(node)
        if schema is not None and isinstance(value, dict):
            return f"({self.instance(schema, value, node, depth)} | {schema.name})"
        return self.plain(value, node, depth)

    def plain(self, value: Any, node: Node | None, depth: int) -> str:
        if isinstance(value, dict):
            if value and all(not isinstance(v, dict | list) for v in value.values()):
                inline = to_nickel_literal(value).replace("{", "{ ", 1)[:-1] + " }"
                if len(inline) <= 72:
                    return inline
            items = _config_items(node)
            return self.record([(k, v, items.get(k), None) for k, v in value.items()], depth)
        if isinstance(value, list):
            elements = _list_elements(node, len(value))
            if not value:
                return "[]"
            if all(not isinstance(v, dict | list) for v in value):
                inline = "[" + ", ".join(to_nickel_literal(v) for v in value) + "]"
                if len(inline) <= 72:
                    return inline
            pad = INDENT * (depth + 1)
            inner = ",\n".join(
                pad + self.value(v, elements[i], depth + 1) for i, v in enumerate(value)
            )
            return "[\n" + inner + ",\n" + INDENT * depth + "]"
        return to_nickel_literal(value)

    def record(self, entries: list[tuple[str, Any, Node | None, Node | None]], depth: int) -> str:
        """``{ key = value, ... }``; an entry whose value is a schema instance (or a list
        of instances of one schema) is annotated at the field."""
        if not entries:
            return "{}"
        pad = INDENT * (depth + 1)
        lines = []
        for key, value, node, declared in entries:
            lines.append(pad + self.entry(key, value, node, declared, depth + 1) + ",")
        return "{\n" + "\n".join(lines) + "\n" + INDENT * depth + "}"

    def entry(
        self, key: str, value: Any, node: Node | None, declared: Node | None, depth: int
    ) -> str:
        name = field_name(key)
        schema = self.schema_of(node, declared)
        if schema is not None and isinstance(value, dict):
            return f"{name} | {schema.name} = {self.instance(schema, value, node, depth)}"
        element = self.list_schema(value, node, declared)
        if element is not None:
            nodes = _list_elements(node, len(value))
            pad = INDENT * (depth + 1)
            inner = ",\n".join(
                pad + self.instance(element, v, nodes[i], depth + 1) for i, v in enumerate(value)
            )
            return f"{name} | Array {element.name} = [\n{inner},\n{INDENT * depth}]"
        return f"{name} = {self.plain(value, node, depth)}"

    def list_schema(self, value: Any, node: Node | None, declared: Node | None) -> Schema | None:
        """The one schema every element of a list is an instance of, if any."""
        if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
            return None
        elements = _list_elements(node, len(value))
        inner = None
        if declared is not None and declared.get("type") == "List":
            inner = declared["value"].get("inner_type")
        found = [self.schema_of(e, inner) for e in elements]
        first = found[0]
        if first is not None and all(f is first for f in found):
            return first
        return None

    def instance(self, schema: Schema, value: dict[str, Any], node: Node | None, depth: int) -> str:
        """The fields of an instance; a field the user did not write whose value is the
        schema's literal default is left to the contract."""
        given = _config_items(_config_of(node))
        entries = []
        for key, item in value.items():
            attribute = schema.attributes.get(key)
            has_default, default = schema.literal_default(key)
            if key not in given and has_default and _same(item, default):
                continue
            declared = attribute.type if attribute is not None else None
            sub = given.get(key)
            nested = self.schema_of(sub, declared) if sub is not None else None
            if nested is None and declared is not None and declared.get("type") == "Named":
                nested = self.schemas.get(declared["value"]["names"][0])
            if nested is not None and isinstance(item, dict):
                # The parent's contract applies the nested one: no annotation needed.
                entries.append(f"{field_name(key)} = {self.instance(nested, item, sub, depth + 1)}")
                continue
            entries.append(self.entry(key, item, sub, declared, depth + 1))
        if not entries:
            return "{}"
        pad = INDENT * (depth + 1)
        return "{\n" + "".join(f"{pad}{e},\n" for e in entries) + INDENT * depth + "}"


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _config_of(node: Node | None) -> Node | None:
    if node is None:
        return None
    if node.get("type") == "Schema":
        config = node.get("config")
        return config if isinstance(config, dict) else None
    return node


def _config_items(node: Node | None) -> dict[str, Node]:
    """Key -> value node of a ``{...}`` the user wrote (plain overrides only)."""
    node = _config_of(node)
    if node is None or node.get("type") != "Config":
        return {}
    items: dict[str, Node] = {}
    for item in node.get("items", []):
        key = item.get("key")
        if key is None or item.get("operation") not in ("Override", "Union"):
            continue
        try:
            items[config_key(key)] = item["value"]
        except Unmappable:
            continue
    return items


def _list_elements(node: Node | None, count: int) -> list[Node | None]:
    if node is not None and node.get("type") == "List":
        elements = node.get("elts", [])
        if len(elements) == count and all(e.get("type") not in ("Starred",) for e in elements):
            return list(elements)
    return [None] * count


def convert(data: dict[str, Any], ast: dict[str, Any], source: str) -> Conversion:
    """The Nickel text for a file that evaluated to ``data`` (top-level values)."""
    lines = source.splitlines()
    body = strip(ast.get("body", []))
    schemas, unmapped = read_schemas(body, lines)
    assigned: dict[str, tuple[Node | None, Node | None]] = {}
    for statement in body:
        kind = statement.get("type")
        if kind == "Assign":
            for target in statement.get("targets", []):
                if target.get("paths"):
                    continue
                name = target["name"]
                assigned[name] = (
                    (statement.get("value"), statement.get("ty"))
                    if name not in assigned
                    else (None, None)  # assigned twice: the evaluated value decides
                )
        elif kind == "Import":
            module = str(statement.get("rawpath") or statement.get("path"))
            if module not in _BUILTINS:
                unmapped.append(
                    Unmapped(
                        statement["line"],
                        f"import {module}: its schemas are not converted here "
                        "(their instances are written as data; migrate that file too)",
                    )
                )
        elif kind not in ("Schema", "Expr"):
            unmapped.append(
                Unmapped(
                    statement.get("line", 0), f"a top-level {kind} (its result is written as data)"
                )
            )
    writer = _Writer(schemas)
    names = set(schemas)
    header = "".join(contract_text(s, names) for s in schemas.values())
    notes = "".join(f"# KCL, not mapped ({u}): {_source_line(lines, u.line)}\n" for u in unmapped)
    entries = [(k, v, *assigned.get(k, (None, None))) for k, v in data.items()]
    record = writer.record(entries, 0)
    uses_helpers = any(s.checks for s in schemas.values()) or "OneOf" in header
    prelude = (HELPERS if uses_helpers else "") + header
    return Conversion(text=notes + prelude + record + "\n", unmapped=unmapped)


_BUILTINS = {
    "regex",
    "math",
    "datetime",
    "units",
    "json",
    "yaml",
    "base64",
    "net",
    "crypto",
    "file",
    "template",
    "runtime",
    "manifests",
    "collection",
}


def _source_line(lines: list[str], number: int) -> str:
    return lines[number - 1].strip() if 0 < number <= len(lines) else ""
