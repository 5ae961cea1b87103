"""Typed access to decoded vendor JSON, raising :class:`InvalidPayload` with the JSON path.

Vendor payloads are loose (ids as ints or strings, nulls where a key could be absent), so
the connectors read them through these helpers rather than trusting a schema: every wrong
type becomes a 422 naming the field, never a ``KeyError`` turned into a 500.
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

from services.ingest.connectors.base import InvalidPayload

JsonObject = dict[str, Any]
_MAX_SHOWN: Final = 40
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")


def decode_json(body: bytes) -> Any:
    """Decode a JSON body; malformed JSON or bad UTF-8 is an :class:`InvalidPayload`."""
    try:
        # Checked up front: msgspec only validates UTF-8 inside strings, and reports stray
        # bytes elsewhere as malformed JSON, which hides the real problem from the sender.
        # ASCII (most bodies) is valid UTF-8, and isascii() neither copies nor decodes.
        if not body.isascii():
            body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPayload(f"body: invalid UTF-8 at byte {exc.start}", reason="bad_encoding") from None
    try:
        return msgspec.json.decode(body)
    except (msgspec.MsgspecError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise InvalidPayload(f"body: invalid JSON ({exc})", reason="bad_json") from None


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def type_name(value: object) -> str:
    if value is None:
        return "null"
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
    }.get(type(value), type(value).__name__)


def shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


def expect_object(value: object, path: str) -> JsonObject:
    if not isinstance(value, dict):
        raise InvalidPayload(f"{path or 'body'}: expected object, got {type_name(value)}")
    return value


def opt_object(obj: JsonObject, key: str, path: str) -> JsonObject | None:
    value = obj.get(key)
    if value is None:
        return None
    return expect_object(value, join(path, key))


def opt_list(obj: JsonObject, key: str, path: str) -> list[Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidPayload(f"{join(path, key)}: expected array, got {type_name(value)}")
    return value


def opt_str(obj: JsonObject, key: str, path: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidPayload(f"{join(path, key)}: expected string, got {type_name(value)}")
    return value


def req_str(obj: JsonObject, key: str, path: str) -> str:
    value = opt_str(obj, key, path)
    if not value:
        raise InvalidPayload(f"{join(path, key)}: required")
    return value


def opt_bool(obj: JsonObject, key: str, path: str) -> bool | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise InvalidPayload(f"{join(path, key)}: expected boolean, got {type_name(value)}")
    return value


def opt_id(obj: JsonObject, key: str, path: str) -> str | None:
    """An identifier sent as an integer or a non-empty string (vendors mix both), as a string."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidPayload(f"{join(path, key)}: expected integer or string id, got {type_name(value)}")
    text = str(value).strip()
    if not text:
        raise InvalidPayload(f"{join(path, key)}: empty id")
    return text


def req_id(obj: JsonObject, key: str, path: str) -> str:
    value = opt_id(obj, key, path)
    if value is None:
        raise InvalidPayload(f"{join(path, key)}: required")
    return value


def opt_int(obj: JsonObject, key: str, path: str) -> int | None:
    """An integer sent as a JSON integer or a decimal string."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    raise InvalidPayload(f"{join(path, key)}: expected integer, got {shown(value)}")
