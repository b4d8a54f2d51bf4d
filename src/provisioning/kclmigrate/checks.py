"""KCL ``check`` expressions -> Nickel booleans over the record ``r``, and the small
helpers (KCL's ``None``, ``len``, truthiness, ``in``) those booleans use."""

from __future__ import annotations

from .values import Node, Schema, Unmappable, literal, nickel_string, to_nickel_literal

COMPARE = {"Eq": "==", "NotEq": "!=", "Lt": "<", "LtE": "<=", "Gt": ">", "GtE": ">="}


class Checks:
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
