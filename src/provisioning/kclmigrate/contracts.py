"""KCL schemas (from the engine's syntax tree) -> Nickel contracts.

What maps: attribute types (str, int, float, bool, any, lists, dicts, unions of string
literals, other schemas of the same file), literal defaults, optional attributes, an
open schema (``[...str]: any``), a local parent schema, and ``check`` expressions built
from comparisons, ``in``, ``and``/``or``/``not``, ``len()``, ``regex.match()`` and
``if`` guards. Anything else is kept as a comment and listed in the report.
"""

from __future__ import annotations

import graphlib
from typing import Any

from .checks import Checks
from .values import (
    Attribute,
    Node,
    Schema,
    Unmappable,
    Unmapped,
    field_name,
    literal,
    nickel_string,
    to_nickel_literal,
)

BASIC = {"Str": "String", "Int": "std.number.Integer", "Float": "Number", "Bool": "Bool"}


def nickel_type(node: Node | None, schemas: set[str]) -> str:
    if node is None:
        return "Dyn"
    kind = node.get("type")
    value: Any = node.get("value")
    if kind == "Any":
        return "Dyn"
    if kind == "Basic" and value in BASIC:
        return BASIC[value]
    if kind == "List":
        return f"Array {_wrapped(nickel_type(value.get('inner_type'), schemas))}"
    if kind == "Dict":
        key = value.get("key_type")
        if key is not None and not (key.get("type") == "Basic" and key.get("value") == "Str"):
            raise Unmappable("a dict whose keys are not strings")
        return f"{{ _ : {nickel_type(value.get('value_type'), schemas)} }}"
    if kind == "Named" and len(value["names"]) == 1 and value["names"][0] in schemas:
        return str(value["names"][0])
    if kind == "Literal" and value.get("type") == "Str":
        return f"OneOf [{nickel_string(value['value'])}]"
    if kind == "Union":
        elements = value["type_elements"]
        if all(e.get("type") == "Literal" and e["value"].get("type") == "Str" for e in elements):
            return f"OneOf [{', '.join(nickel_string(e['value']['value']) for e in elements)}]"
        raise Unmappable("a union of types other than string literals")
    if kind == "Named":
        raise Unmappable(f"the type {'.'.join(value['names'])} (not a schema of this file)")
    raise Unmappable(f"the type {kind}")


def _wrapped(text: str) -> str:
    return f"({text})" if " " in text else text


def read_schemas(body: list[Node], lines: list[str]) -> tuple[dict[str, Schema], list[Unmapped]]:
    """Every schema of the file that maps, and what does not."""
    unmapped: list[Unmapped] = []
    nodes = {n["name"]: n for n in body if n.get("type") == "Schema"}
    names = set(nodes)
    schemas: dict[str, Schema] = {}
    for name in _ordered(nodes):
        node = nodes[name]
        try:
            schemas[name] = _schema(node, names, schemas, lines, unmapped)
        except Unmappable as exc:
            names.discard(name)
            unmapped.append(
                Unmapped(node["line"], f"schema {name}: {exc}; its instances are written as data")
            )
    return schemas, unmapped


def _ordered(nodes: dict[str, Node]) -> list[str]:
    graph: dict[str, set[str]] = {}
    for name, node in nodes.items():
        refs = set()
        parent = node.get("parent_name")
        if parent:
            refs.add(".".join(parent["names"]))
        for attr in node.get("body", []):
            refs |= _type_refs(attr.get("ty"))
        graph[name] = refs & set(nodes)
    try:
        return list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError:
        return list(nodes)


def _type_refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = set()
        if node.get("type") == "Named":
            found.add(".".join(node["value"]["names"]))
        for value in node.values():
            found |= _type_refs(value)
        return found
    if isinstance(node, list):
        return {r for item in node for r in _type_refs(item)}
    return set()


def _schema(
    node: Node,
    names: set[str],
    done: dict[str, Schema],
    lines: list[str],
    unmapped: list[Unmapped],
) -> Schema:
    for what in ("mixins", "args", "for_host_name"):
        if node.get(what):
            raise Unmappable(f"{what} are not mapped")
    if node.get("is_mixin") or node.get("is_protocol"):
        raise Unmappable("mixins and protocols are not mapped")
    schema = Schema(node["name"], node["line"])
    parent = node.get("parent_name")
    if parent:
        base = done.get(".".join(parent["names"]))
        if base is None:
            raise Unmappable(f"its parent {'.'.join(parent['names'])} is not a schema that maps")
        schema.attributes = dict(base.attributes)
        schema.open = base.open
        schema.checks = list(base.checks)
    signature = node.get("index_signature")
    if signature:
        if not signature.get("any_other") or (signature.get("value_ty") or {}).get("type") != "Any":
            raise Unmappable("an index signature other than [...str]: any")
        schema.open = True
    for attr in node.get("body", []):
        if attr.get("type") != "SchemaAttr":
            raise Unmappable(f"a {attr.get('type')} statement in the schema body")
        if attr.get("decorators"):
            raise Unmappable(f"the decorators of {attr['name']}")
        nickel_type(attr.get("ty"), names)  # raises if the type does not map
        attribute = Attribute(attr["name"], attr.get("ty"), bool(attr.get("is_optional")))
        if attr.get("value") is not None:
            try:
                attribute.default = literal(attr["value"])
                attribute.has_default = True
            except Unmappable as exc:
                unmapped.append(
                    Unmapped(
                        attr["line"],
                        f"schema {schema.name}: the default of {attr['name']} ({exc}); "
                        "every value is written out instead",
                    )
                )
        schema.attributes[attr["name"]] = attribute
    checker = Checks(schema)
    for check in node.get("checks", []):
        source = lines[check["line"] - 1].strip() if 0 < check["line"] <= len(lines) else "check"
        try:
            condition = checker.boolean(check["test"])
            if check.get("if_cond") is not None:
                condition = f"(if {checker.boolean(check['if_cond'])} then {condition} else true)"
            message = (
                check["msg"]["value"]
                if (check.get("msg") or {}).get("type") == "StringLit"
                else f"check failed: {source}"
            )
            schema.checks.append((condition, message))
        except Unmappable as exc:
            unmapped.append(
                Unmapped(check["line"], f"schema {schema.name}: check `{source}` ({exc})")
            )
    return schema


def contract_text(schema: Schema, names: set[str]) -> str:
    """``let Name = ... in`` for one schema."""
    fields = []
    for attribute in schema.attributes.values():
        parts = [field_name(attribute.name), nickel_type(attribute.type, names)]
        if attribute.has_default:
            parts.append(f"default = {to_nickel_literal(attribute.default)}")
        elif attribute.optional:
            parts.append("optional")
        fields.append("    " + " | ".join(parts) + ",")
    if schema.open:
        fields.append("    ..")
    record = "{\n" + "\n".join(fields) + "\n  }"
    if not schema.checks:
        return f"let {schema.name} = {record} in\n"
    tests = "".join(
        f"    if !{condition} then 'Error {{ message = {nickel_string(message)} }} else\n"
        for condition, message in schema.checks
    )
    checks = f"std.contract.custom (fun label r =>\n{tests}    'Ok r)"
    return f"let {schema.name} = std.contract.Sequence [\n  {record},\n  {checks},\n] in\n"
