"""KCL schemas (from the engine's syntax tree) -> Nickel contracts.

What maps: attribute types (str, int, float, bool, any, lists, dicts, unions of string
literals, other schemas of the same file), literal defaults, optional attributes, an
open schema (``[...str]: any``), a local parent schema, and ``check`` expressions built
from comparisons, ``in``, ``and``/``or``/``not``, ``len()``, ``regex.match()`` and
``if`` guards. Anything else is kept as a comment and listed in the report.
"""

from __future__ import annotations

import graphlib
import json
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


COMPARE = {"Eq": "==", "NotEq": "!=", "Lt": "<", "LtE": "<=", "Gt": ">", "GtE": ">="}


class _Checks:
    """``check`` expressions -> Nickel booleans over the record ``r``."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    def boolean(self, node: Node) -> str:
        kind = node.get("type")
        if kind == "Compare":
            return self.compare(node)
        if kind == "Binary" and node["op"] in ("And", "Or"):
            joiner = " && " if node["op"] == "And" else " || "
            return f"({self.boolean(node['left'])}{joiner}{self.boolean(node['right'])})"
        if kind == "Unary" and node["op"] == "Not":
            return f"!({self.boolean(node['operand'])})"
        if kind == "Call" and _callee(node) == "regex.match":
            args = node["args"]
            if len(args) != 2 or node.get("keywords") or args[1].get("type") != "StringLit":
                raise Unmappable("regex.match with a pattern that is not a string literal")
            subject = self.value(args[0])
            pattern = nickel_string(args[1]["value"])
            return f"(std.is_string {subject} && std.string.is_match {pattern} {subject})"
        return f"(truthy {self.value(node)})"

    def compare(self, node: Node) -> str:
        parts = []
        left = self.value(node["left"])
        for op, right_node in zip(node["ops"], node["comparators"], strict=True):
            right = self.value(right_node)
            if op in COMPARE:
                parts.append(f"({left} {COMPARE[op]} {right})")
            elif op in ("In", "NotIn"):
                test = f"(contains {right} {left})"
                parts.append(test if op == "In" else f"!{test}")
            else:
                raise Unmappable(f"the comparison {op}")
            left = right
        return "(" + " && ".join(parts) + ")"

    def value(self, node: Node) -> str:
        kind = node.get("type")
        if kind == "Identifier":
            names = node["names"]
            if len(names) == 1 and names[0] in self.schema.attributes:
                return f'(get r "{names[0]}")'
            raise Unmappable(f"the name {'.'.join(names)} (not an attribute of {self.schema.name})")
        if kind == "Call" and _callee(node) == "len" and len(node["args"]) == 1:
            return f"(len {self.value(node['args'][0])})"
        if kind == "Paren":
            return self.value(node["expr"])
        try:
            return to_nickel_literal(literal(node))
        except Unmappable:
            raise Unmappable(f"the expression {kind}") from None


def _callee(node: Node) -> str:
    func = node.get("func") or {}
    return ".".join(func.get("names", [])) if func.get("type") == "Identifier" else ""


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
    import re

    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_'-]*", key) and key not in KEYWORDS:
        return key
    return nickel_string(key)


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
    checker = _Checks(schema)
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


HELPERS = """\
# Helpers of the converted checks and contracts (KCL's None, len, truthiness, in).
let OneOf = fun values => std.contract.custom (fun label value =>
    if std.array.elem value values then 'Ok value
    else 'Error {
      message = "expected one of: %{std.string.join ", " (std.array.map std.to_string values)}"
    })
in
let get = fun r name => if std.record.has_field name r then r."%{name}" else null in
let len = fun v => if std.is_string v then std.string.length v
  else if std.is_array v then std.array.length v
  else std.array.length (std.record.fields v)
in
let truthy = fun v => v != null && v != false && v != 0 && v != "" && v != [] && v != {} in
let contains = fun container v => if std.is_array container then std.array.elem v container
  else if std.is_string container then std.is_string v && std.string.contains v container
  else std.is_string v && std.record.has_field v container
in
"""


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
