"""Reading and checking what a client sends: JSON bodies, ids, messages, limits."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from datetime import date
from itertools import accumulate
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request

from app.errors import BadRequest, RequestTimeout, TooLarge
from app.limits import (
    EARLIEST_DATE,
    HANDLE_CHARS,
    LARGEST_INT,
    LATEST_DATE,
    MAX_CUSTOMER_ID_DIGITS,
    MAX_DIGITS,
    MAX_HANDLE_CHARS,
    MAX_MESSAGE_CHARS,
    UUID4_PATTERN,
    Limit,
)

__all__ = ["EARLIEST_DATE", "LARGEST_INT", "LATEST_DATE", "MAX_MESSAGE_CHARS"]

MAX_BODY_BYTES = 64 * 1024
# Under the server's own bound (app/server.py, 30 s), so that the app gives up first and says
# so in its own words; a JSON body of 64 KiB takes a slow phone a few seconds.
BODY_TIMEOUT = 15.0
_UUID4 = re.compile(UUID4_PATTERN)
# Whole numbers from clients: ASCII digits only (str.isdigit takes '²', which int() refuses,
# and int() reads other scripts' and fullwidth digits), at most MAX_DIGITS of them.
_DIGITS = re.compile(f"[0-9]{{1,{MAX_DIGITS}}}")
# json.loads recurses once per level: a body of 60,000 brackets was a RecursionError (and, under a
# raised recursion limit, could crash the worker). Nesting is measured first, without recursing;
# no body of this API is nested more than three deep.
MAX_JSON_DEPTH = 32
# A JSON string, closed or running to the end; unrolled, so that one pass is linear. On the
# UTF-8 bytes: no byte of a multi-byte character is a quote, a backslash or a bracket.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_NESTING = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def ascii_int(raw: str, *, low: int, high: int) -> int | None:
    """`raw` as a whole number from `low` to `high`, or None if it is anything else."""
    if not _DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if low <= value <= high else None


async def read_body(
    request: Request, *, limit: int = MAX_BODY_BYTES, timeout: float = BODY_TIMEOUT
) -> bytes:
    """The whole body: 413 once it is over `limit` bytes (before any is read when it says
    so), 408 when it is still arriving after `timeout` seconds (a client that sends a byte now
    and then holds a worker's request)."""
    declared = ascii_int(request.headers.get("content-length", ""), low=0, high=LARGEST_INT)
    if declared is not None and declared > limit:
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


async def read_form(request: Request, *, timeout: float = BODY_TIMEOUT) -> dict[str, str]:
    """A small urlencoded form (the development pages'): the last value of each field."""
    body = await read_body(request, limit=MAX_BODY_BYTES, timeout=timeout)
    return dict(parse_qsl(body.decode("utf-8", "replace")))


async def read_json_object(
    request: Request, *, limit: int = MAX_BODY_BYTES, timeout: float = BODY_TIMEOUT
) -> dict[str, Any]:
    data = parse_json(await read_body(request, limit=limit, timeout=timeout))
    if not isinstance(data, dict):
        raise BadRequest("invalid_json", "The request body must be a JSON object.")
    return data


def _nesting(body: bytes) -> int:
    """How deep the brackets outside strings go: a linear count, not a recursive parse."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return 0  # the usual body: too few brackets to be too deep
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_NESTING.__getitem__, brackets)), default=0)


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def parse_json(body: bytes) -> Any:
    """JSON as RFC 8259 has it (UTF-8, no NaN or Infinity), nested at most MAX_JSON_DEPTH deep."""
    if _nesting(body) > MAX_JSON_DEPTH:
        raise BadRequest("invalid_json", f"The JSON is nested more than {MAX_JSON_DEPTH} deep.")
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_not_json)
    except UnicodeDecodeError as exc:
        raise BadRequest("invalid_json", "The request body is not UTF-8.") from exc
    except ValueError as exc:  # also a number of more than 4,300 digits
        raise BadRequest("invalid_json", "The request body is not valid JSON.") from exc


def is_uuid4(value: str) -> bool:
    """A random UUID as uuid4_field gives it back: lower case."""
    return bool(_UUID4.fullmatch(value)) and value == value.lower()


def uuid4_field(value: object, name: str, *, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            raise BadRequest(f"missing_{name}", f"{name} is required.")
        return None
    if not isinstance(value, str) or not _UUID4.fullmatch(value.lower()):
        raise BadRequest(f"invalid_{name}", f"{name} must be a random UUID (version 4).")
    return value.lower()


def once(value: object, name: str) -> object:
    """A query parameter that may be given once: a repeated one arrives as a list."""
    if isinstance(value, list):
        raise BadRequest(f"invalid_{name}", f"{name} is given more than once.")
    return value


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


_HANDLE = re.compile(f"^{HANDLE_CHARS}{{1,{MAX_HANDLE_CHARS}}}$")


def is_product_handle(value: object) -> bool:
    return isinstance(value, str) and bool(_HANDLE.fullmatch(value))


@dataclass(frozen=True)
class PageContext:
    """What a message says of the shopper's page: the product's handle (looked up later in
    the shop's own catalog; nothing else is taken), and whether the chat is that product's
    own conversation (the "Ask about this product" block set to one conversation a product)."""

    product: str | None = None
    product_conversation: bool = False


def page_context(value: object) -> PageContext:
    if value is None:
        return PageContext()
    if not isinstance(value, dict):
        raise BadRequest("invalid_context", 'context must be an object like {"product": "handle"}.')
    product = value.get("product")
    if product == "":
        product = None
    if product is not None and not is_product_handle(product):
        raise BadRequest(
            "invalid_context",
            "context.product must be a product handle (letters, digits, -, _ or .).",
        )
    scope = value.get("conversation", "shop")
    if scope not in ("shop", "product") or (scope == "product" and product is None):
        raise BadRequest(
            "invalid_context",
            'context.conversation is "shop" or "product" (which needs context.product).',
        )
    return PageContext(product, scope == "product")


def int_value(raw: object, name: str, limit: Limit) -> int:
    """A query's whole number: its default when not given (or given empty)."""
    if raw is None or raw == "":
        return limit.default
    value = ascii_int(raw, low=limit.low, high=limit.high) if isinstance(raw, str) else None
    if value is None:
        raise BadRequest(
            f"invalid_{name}", f"{name} must be a whole number from {limit.low} to {limit.high}."
        )
    return value


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # fromisoformat also reads 20261121
_CUSTOMER_ID = re.compile(f"[0-9]{{1,{MAX_CUSTOMER_ID_DIGITS}}}")


def date_value(raw: object, name: str) -> date | None:
    """A day a merchant filters by, from EARLIEST_DATE to LATEST_DATE."""
    if not raw:
        return None
    text = raw if isinstance(raw, str) else ""
    try:
        value = date.fromisoformat(text) if _ISO_DATE.fullmatch(text) else None
    except ValueError:
        value = None
    if value is None or not EARLIEST_DATE <= value <= LATEST_DATE:
        raise BadRequest(
            f"invalid_{name}",
            f"{name} must be a date like 2026-11-21, from {EARLIEST_DATE} to {LATEST_DATE}.",
        )
    return value


def is_customer_id(value: str) -> bool:
    return bool(_CUSTOMER_ID.fullmatch(value))


def customer_id_value(raw: object) -> str | None:
    if not raw:
        return None
    if not isinstance(raw, str) or not is_customer_id(raw):
        raise BadRequest(
            "invalid_customer_id",
            f"customer_id must be a number of 1 to {MAX_CUSTOMER_ID_DIGITS} digits.",
        )
    return raw


def last_event_value(value: object) -> tuple[str, int] | None:
    """The message id and offset a resumed reply continues from: `Last-Event-ID` (or
    `last_event_id=`) is `<message id>:<offset>`, as this service sent it; any other form is
    refused."""
    if not value:
        return None
    message_id, _, raw = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    offset = ascii_int(raw, low=0, high=LARGEST_INT)
    if offset is None or not _UUID4.fullmatch(message_id.lower()):
        raise BadRequest(
            "invalid_last_event_id",
            "Last-Event-ID must be an event id of this stream: <message id>:<offset>.",
        )
    return message_id.lower(), offset
