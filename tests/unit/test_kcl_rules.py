"""The KCL -> Nickel mapping rules (no engine: hand-made syntax-tree nodes) and the
one-line form of KCL's error reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provisioning.kclmigrate.contracts import nickel_type, read_schemas
from provisioning.kclmigrate.migrate import ours_unedited, with_marker
from provisioning.kclmigrate.values import Unmappable, field_name, literal, to_nickel_literal
from provisioning.schemas.kcl import kcl_error_line


def basic(name: str) -> dict[str, Any]:
    return {"type": "Basic", "value": name}


def ident(name: str) -> dict[str, Any]:
    return {"type": "Identifier", "names": name.split(".")}


def num(value: int) -> dict[str, Any]:
    return {"type": "NumberLit", "value": {"type": "Int", "value": value}}


def string(value: str) -> dict[str, Any]:
    return {"type": "StringLit", "value": value}


def attr(
    name: str, ty: dict[str, Any], *, value: Any = None, optional: bool = False
) -> dict[str, Any]:
    return {
        "type": "SchemaAttr",
        "name": name,
        "ty": ty,
        "value": value,
        "is_optional": optional,
        "line": 2,
    }


def schema(
    name: str, *attrs: dict[str, Any], checks: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "type": "Schema",
        "name": name,
        "line": 1,
        "body": list(attrs),
        "checks": checks or [],
        **extra,
    }


@pytest.mark.parametrize(
    ("ty", "nickel"),
    [
        (basic("Str"), "String"),
        (basic("Int"), "std.number.Integer"),
        (basic("Float"), "Number"),
        (basic("Bool"), "Bool"),
        ({"type": "Any"}, "Dyn"),
        ({"type": "List", "value": {"inner_type": basic("Str")}}, "Array String"),
        ({"type": "List", "value": {"inner_type": basic("Int")}}, "Array std.number.Integer"),
        (
            {"type": "Dict", "value": {"key_type": basic("Str"), "value_type": basic("Int")}},
            "{ _ : std.number.Integer }",
        ),
        ({"type": "Named", "value": {"names": ["Disk"]}}, "Disk"),
        (
            {
                "type": "Union",
                "value": {
                    "type_elements": [
                        {"type": "Literal", "value": {"type": "Str", "value": "a"}},
                        {"type": "Literal", "value": {"type": "Str", "value": "b"}},
                    ]
                },
            },
            'OneOf ["a", "b"]',
        ),
    ],
)
def test_types_map(ty: dict[str, Any], nickel: str) -> None:
    assert nickel_type(ty, {"Disk"}) == nickel


@pytest.mark.parametrize(
    ("ty", "why"),
    [
        (
            {"type": "Union", "value": {"type_elements": [basic("Int"), basic("Str")]}},
            "a union of types",
        ),
        ({"type": "Named", "value": {"names": ["pkg", "Other"]}}, "not a schema of this file"),
        (
            {"type": "Dict", "value": {"key_type": basic("Int"), "value_type": basic("Int")}},
            "keys are not strings",
        ),
    ],
)
def test_types_that_do_not_map_say_why(ty: dict[str, Any], why: str) -> None:
    with pytest.raises(Unmappable, match=why):
        nickel_type(ty, set())


def test_literals_and_their_nickel_text() -> None:
    node = {
        "type": "Config",
        "items": [
            {
                "key": ident("a"),
                "value": {
                    "type": "List",
                    "elts": [num(1), {"type": "NameConstantLit", "value": "None"}],
                },
                "operation": "Override",
            }
        ],
    }
    assert literal(node) == {"a": [1, None]}
    assert (
        to_nickel_literal({"a": [1, None], "if": "100%{x}"})
        == '{a = [1, null], "if" = "100\\%{x}"}'
    )
    with pytest.raises(Unmappable):
        literal({"type": "Binary", "op": "Add", "left": num(1), "right": num(2)})


def test_field_names_are_quoted_when_not_identifiers() -> None:
    assert field_name("web-1") == "web-1"
    assert field_name("default") == '"default"'
    assert field_name("a b") == '"a b"'


def test_schema_attributes_defaults_optional_and_checks() -> None:
    checks = [
        {
            "line": 3,
            "test": {
                "type": "Compare",
                "left": {
                    "type": "Call",
                    "func": ident("len"),
                    "args": [ident("name")],
                    "keywords": [],
                },
                "ops": ["Lt"],
                "comparators": [num(64)],
            },
            "if_cond": None,
            "msg": string("too long"),
        },
        {
            "line": 4,
            "test": {
                "type": "Compare",
                "left": ident("cores"),
                "ops": ["Gt"],
                "comparators": [num(0)],
            },
            "if_cond": ident("cores"),
            "msg": None,
        },
        {
            "line": 5,
            "test": {"type": "Call", "func": ident("other.fn"), "args": [], "keywords": []},
            "if_cond": None,
            "msg": None,
        },
    ]
    body = [
        schema(
            "Server",
            attr("name", basic("Str")),
            attr("provider", basic("Str"), value=string("local")),
            attr("cores", basic("Int"), optional=True),
            checks=checks,
        )
    ]
    lines = [
        "schema Server:",
        "  ...",
        "  len(name) < 64, 'too long'",
        "  cores > 0 if cores",
        "  other.fn()",
    ]
    schemas, unmapped = read_schemas(body, lines)
    server = schemas["Server"]
    assert server.literal_default("provider") == (True, "local")
    assert server.attributes["cores"].optional
    assert [message for _, message in server.checks] == [
        "too long",
        "check failed: cores > 0 if cores",
    ]
    assert server.checks[1][0].startswith('(if (truthy (get r "cores")) then')
    assert [str(u) for u in unmapped] == [
        "line 5: schema Server: check `other.fn()` (the expression Call)"
    ]


def test_a_schema_whose_parent_does_not_map_is_written_as_data() -> None:
    body = [schema("Child", attr("a", basic("Str")), parent_name={"names": ["pkg", "Base"]})]
    schemas, unmapped = read_schemas(body, ["schema Child(pkg.Base):"])
    assert schemas == {}
    assert "its instances are written as data" in str(unmapped[0])


def test_the_marker_recognises_only_unedited_output() -> None:
    text = with_marker(Path("infra.k"), "{ a = 1 }\n")
    assert ours_unedited(text)
    assert not ours_unedited(text + "# my change\n")
    assert not ours_unedited("{ a = 1 }\n")


REPORT = (
    "error[E2G22]: TypeError\n \x1b[1;38;5;12m-->\x1b[0m /w/infra.k:3:8\n  |\n3 | a = S {name = 3}\n"
    "  |        ^ expected str, got int(3)\n  |\n\n --> /w/infra.k:2:5\n  |\n2 |     name: str\n"
    "  |     ^ variable is defined here, its type is str, but got int(3)\n  |\n"
)


def test_a_kcl_report_is_one_line_with_file_line_and_column() -> None:
    assert kcl_error_line(REPORT, Path("/w/infra.k")) == (
        "/w/infra.k:3:8: TypeError: expected str, got int(3) "
        "(/w/infra.k:2:5: variable is defined here, its type is str, but got int(3))"
    )
    assert (
        kcl_error_line("Cannot find the kcl file", Path("x.k"))
        == "x.k: KCL: Cannot find the kcl file"
    )
