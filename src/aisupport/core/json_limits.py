"""Bounds on JSON: how deep a request body nests, and how deep, wide and large a stored object is.

Nothing here recurses, so no input can exhaust the stack, and each check costs at most one pass over
its input at C speed: the limits are enforced before anything recursive (json.loads, pydantic,
serialisation, the logger) sees the value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # a backslash and the character it escapes
_STRING = re.compile(rb'"[^"]*"')  # a string, once its escapes are gone
# Opening brackets become +1 and closing ones -1 (0xff as a signed byte); everything else is deleted.
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_A_BRACKET = bytes(byte for byte in range(256) if byte not in b"[]{}")


def json_text_depth(body: bytes) -> int:
    """How deep the containers of the JSON text `body` nest (0 for a scalar), without parsing it.

    Strings are cut out first (their brackets do not count), then the depth is the highest running
    sum of +1 per opening and -1 per closing bracket. Invalid JSON gets some number; the parser
    rejects it anyway.
    """
    if json.detect_encoding(body) not in {"utf-8", "utf-8-sig"}:
        try:  # UTF-16 and UTF-32 (which json.loads accepts) are measured as UTF-8
            body = body.decode(json.detect_encoding(body)).encode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return 0  # not decodable: the parser answers that
    steps = _STRING.sub(b"", _ESCAPE.sub(b"", body)).translate(_STEPS, _NOT_A_BRACKET)
    return max(accumulate(memoryview(steps).cast("b")), default=0)


@dataclass(frozen=True)
class JsonObjectBounds:
    """Limits for a stored JSON object: nesting (the object itself is level 1), keys and array items
    counted over the whole value, and its size as compact UTF-8 JSON."""

    max_depth: int
    max_items: int
    max_bytes: int

    def check(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return value  # the type check that follows says what is wrong
        level: list[Any] = [value]
        depth = items = 0
        while level:
            depth += 1
            if depth > self.max_depth:
                raise ValueError(f"nests deeper than {self.max_depth} levels")
            children: list[Any] = []
            for container in level:
                members = list(container.values()) if isinstance(container, dict) else container
                items += len(members)
                if items > self.max_items:
                    raise ValueError(f"has more than {self.max_items} keys and array items in all")
                children.extend(member for member in members if isinstance(member, dict | list))
            level = children
        try:
            size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        except (TypeError, ValueError, UnicodeEncodeError):
            return value  # not JSON (or a lone surrogate): the type check that follows says so
        if size > self.max_bytes:
            raise ValueError(f"is larger than {self.max_bytes} bytes as JSON")
        return value

    def describe(self) -> str:
        return (
            f"At most {self.max_depth} levels deep, {self.max_items} keys and array items in all, "
            f"and {self.max_bytes} bytes as JSON."
        )

    # Used as `Annotated[dict[str, JsonValue], bounds]`: the bounds run before the type's own validation
    # (which recurses), so a value too deep for it never reaches it.
    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_before_validator_function(self.check, handler(source))
