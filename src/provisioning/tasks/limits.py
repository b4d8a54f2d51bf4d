"""Bounds on user-supplied JSON: nesting depth and encoded size.

Deeply nested data is cheap to send and expensive everywhere after: every
reader of it recurses (pydantic, ``json``, Nushell's ``from json``). So it is
refused at the door, before anything is queued.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

# Task parameters (and an operation's params and items): deep enough for any real
# configuration, shallow enough that no reader comes near its recursion limit.
MAX_PARAMS_DEPTH = 32
MAX_PARAMS_BYTES = 64 * 1024
# A whole request body: the params plus the envelope around them (a workflow's
# operations list, an operation, its run record).
MAX_BODY_DEPTH = MAX_PARAMS_DEPTH + 8

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_NOT_QUOTES_OR_BRACKETS = bytes(b for b in range(256) if b not in b'[]{}"')


def depth_of(value: Any) -> int:
    """Nesting depth of decoded JSON (a scalar is 0, ``{}`` and ``[]`` are 1)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            deepest = max(deepest, level)
            continue
        deepest = max(deepest, level + 1)
        stack.extend((child, level + 1) for child in children)
    return deepest


def encoded_depth(body: bytes) -> int:
    """Nesting depth of a JSON text, without decoding it (so without recursing)."""
    if b"\\" in body:
        brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    else:
        # Without escapes every quote opens or closes a string, in turn: dropping
        # adjacent pairs of quotes leaves what is outside strings as it was, and costs
        # no match object per string (a million of them held ~200 MB at 10,000 nodes).
        quotes_and_brackets = body.translate(None, _NOT_QUOTES_OR_BRACKETS)
        rest = quotes_and_brackets.replace(b'""', b"")
        brackets = _STRING.sub(b"", rest) if b'"' in rest else rest
    if not brackets:
        return 0
    steps = (1 if byte in b"[{" else -1 for byte in brackets)
    return max(0, *accumulate(steps))


def check_params(value: Any, what: str = "params") -> None:
    """Raise ``ValueError`` when ``value`` is nested or sized beyond the limits."""
    depth = depth_of(value)
    if depth > MAX_PARAMS_DEPTH:
        raise ValueError(f"{what} nested {depth} levels deep; the limit is {MAX_PARAMS_DEPTH}")
    size = len(json.dumps(value, separators=(",", ":")))
    if size > MAX_PARAMS_BYTES:
        raise ValueError(f"{what} is {size} bytes as JSON; the limit is {MAX_PARAMS_BYTES}")
