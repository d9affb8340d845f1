"""Reading and checking what a client sends: JSON bodies, ids, messages, limits."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request

from app.errors import BadRequest, TooLarge

MAX_BODY_BYTES = 64 * 1024
# Deeper than any body we take has a reason to be; json.loads itself stops near 1,000 with a
# RecursionError, and whatever walks the result recursively would too.
MAX_JSON_DEPTH = 32
MAX_MESSAGE_CHARS = 4000
_UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


class JsonTooDeep(ValueError):
    """JSON nested deeper than MAX_JSON_DEPTH."""


def loads_json(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads, refusing (ValueError) nesting deeper than max_depth, checked without
    recursion; numbers past Python's 4,300 digits are a ValueError already."""
    try:
        data = json.loads(text)
    except RecursionError as exc:
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels") from exc
    pending: list[tuple[Any, int]] = [(data, 1)] if isinstance(data, dict | list) else []
    while pending:
        value, depth = pending.pop()
        children = value.values() if isinstance(value, dict) else value
        if depth > max_depth:
            raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels")
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return data


async def read_json_object(request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise TooLarge("body_too_large", f"The request body is over {MAX_BODY_BYTES} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise TooLarge("body_too_large", f"The request body is over {MAX_BODY_BYTES} bytes.")
    try:
        data = loads_json(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("invalid_json", "The request body is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise BadRequest("invalid_json", "The request body must be a JSON object.")
    return data


def uuid4_field(value: object, name: str, *, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            raise BadRequest(f"missing_{name}", f"{name} is required.")
        return None
    if not isinstance(value, str) or not _UUID4.fullmatch(value.lower()):
        raise BadRequest(f"invalid_{name}", f"{name} must be a random UUID (version 4).")
    return value.lower()


def session_id_param(request: Request) -> str:
    values = request.query_params.getlist("session_id")
    if len(values) > 1:
        raise BadRequest("invalid_session_id", "session_id is given more than once.")
    session_id = uuid4_field(values[0] if values else None, "session_id")
    assert session_id is not None
    return session_id


# JSON's idea of white space (what a client's schema validator trims), not Python's wider one.
WHITESPACE = (
    "\t\n\x0b\x0c\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def clean_text(value: str) -> str:
    """Trimmed text that every database can store: a NUL or a lone surrogate becomes U+FFFD.

    JSON allows both; PostgreSQL stores neither. Replacing them keeps the shopper's message
    (nothing is lost but an unprintable character) instead of refusing it.
    """
    return _UNSTORABLE.sub("\ufffd", value).strip(WHITESPACE)


def message_text(value: object) -> str:
    if not isinstance(value, str):
        raise BadRequest("invalid_message", "message must be a string.")
    text = clean_text(value)
    if not text:
        raise BadRequest("empty_message", "message is empty.")
    if len(text) > MAX_MESSAGE_CHARS:
        raise TooLarge(
            "message_too_long", f"message is over {MAX_MESSAGE_CHARS} characters ({len(text)})."
        )
    return text


def int_param(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"invalid_{name}", f"{name} must be a whole number from {low} to {high}.")
    return int(raw)
