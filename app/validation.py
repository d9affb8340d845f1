"""Reading and checking what a client sends: JSON bodies, ids, messages, limits."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request

from app.errors import BadRequest, RequestTimeout, TooLarge

MAX_BODY_BYTES = 64 * 1024
# Under the server's own bound (app/server.py, 30 s), so that the app gives up first and says
# so in its own words; a JSON body of 64 KiB takes a slow phone a few seconds.
BODY_TIMEOUT = 15.0
MAX_MESSAGE_CHARS = 4000
_UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


async def read_body(request: Request, *, limit: int, timeout: float) -> bytes:
    """The whole body: 413 once it is over `limit` bytes, 408 when it is still arriving after
    `timeout` seconds (a client that sends a byte now and then holds a worker's request)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge("body_too_large", f"The request body is over {limit} bytes.")
    body = bytearray()
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise TooLarge("body_too_large", f"The request body is over {limit} bytes.")
    except TimeoutError as exc:
        raise RequestTimeout(
            "body_timeout", f"The request body did not arrive within {timeout:g} seconds."
        ) from exc
    except ClientDisconnect as exc:
        # Nobody reads the answer; this keeps a client's leaving out of the error log.
        raise BadRequest("body_incomplete", "The client left before sending the body.") from exc
    return bytes(body)


async def read_json_object(
    request: Request, *, limit: int = MAX_BODY_BYTES, timeout: float = BODY_TIMEOUT
) -> dict[str, Any]:
    body = await read_body(request, limit=limit, timeout=timeout)
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("invalid_json", "The request body is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise BadRequest("invalid_json", "The request body must be a JSON object.")
    return data


async def read_form(request: Request, *, timeout: float = BODY_TIMEOUT) -> dict[str, str]:
    """A small form (the development pages'), bounded as a JSON body is."""
    body = await read_body(request, limit=MAX_BODY_BYTES, timeout=timeout)
    return dict(parse_qsl(body.decode("utf-8", "replace")))


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
