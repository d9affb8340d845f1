"""Bad input gets a clear 4xx in the documented shape, and nothing half-saved."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.requests import Request
from starlette.types import Message

from app.db import Database
from app.errors import ApiError, api_error
from app.validation import read_form, read_json_object
from tests.factories import ProxyClient, messages_of, new_id
from tests.servers import free_port


def _assert_error(response_json: dict, code: str) -> None:
    assert set(response_json) == {"error"}
    assert response_json["error"]["code"] == code
    assert isinstance(response_json["error"]["message"], str) and response_json["error"]["message"]


async def test_message_of_4000_characters_is_accepted(client: ProxyClient, db: Database) -> None:
    session_id = new_id()
    turn = await client.send(session_id, "x" * 4000)
    assert turn.status_code == 200
    assert (await messages_of(db, client.shop, session_id))[0].content == "x" * 4000


async def test_message_over_4000_characters_is_413(client: ProxyClient, db: Database) -> None:
    session_id = new_id()
    turn = await client.send(session_id, "x" * 4001)
    assert turn.status_code == 413
    _assert_error(turn.body, "message_too_long")
    assert await messages_of(db, client.shop, session_id) == []


async def test_limit_counts_after_trimming(client: ProxyClient) -> None:
    turn = await client.send(new_id(), "   " + "x" * 4000 + "\n\n ")
    assert turn.status_code == 200


@pytest.mark.parametrize("message", ["", "   ", "\n\t "])
async def test_empty_message_is_400(client: ProxyClient, message: str) -> None:
    turn = await client.send(new_id(), message)
    assert turn.status_code == 400
    _assert_error(turn.body, "empty_message")


@pytest.mark.parametrize(
    "body,code",
    [
        ({"message": "hi"}, "missing_session_id"),
        ({"session_id": "not-a-uuid", "message": "hi"}, "invalid_session_id"),
        (
            {"session_id": "00000000-0000-1000-8000-000000000000", "message": "hi"},
            "invalid_session_id",
        ),
        ({"session_id": 12, "message": "hi"}, "invalid_session_id"),
        (
            {"session_id": "SESSION", "message": "hi", "client_message_id": "x"},
            "invalid_session_id",
        ),
        (
            {"session_id": "{sid}", "message": "hi", "client_message_id": "abc"},
            "invalid_client_message_id",
        ),
        ({"session_id": "{sid}", "message": 5}, "invalid_message"),
        ({"session_id": "{sid}", "message": ["hi"]}, "invalid_message"),
        ({"session_id": "{sid}"}, "invalid_message"),
    ],
)
async def test_bad_fields_are_400(client: ProxyClient, body: dict, code: str) -> None:
    body = {k: (new_id() if v == "{sid}" else v) for k, v in body.items()}
    response = await client.post("/proxy/messages", body)
    assert response.status_code == 400
    _assert_error(response.json(), code)


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[1, 2]",
        b'"text"',
        b"",
        b"\xff\xfe",
        # Nested thousands deep (within 64 KiB): json.loads ran out of stack, a 500.
        b"[" * 5000,
        b'{"session_id": ' * 3000,
        b'{"session_id": "x", "message": "hi", "n": NaN}',
        b'{"session_id": "x", "message": 1' + b"0" * 5000 + b"}",
    ],
)
async def test_malformed_json_is_400(client: ProxyClient, raw: bytes) -> None:
    response = await client.http.post(
        client.url("/proxy/messages"), content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    _assert_error(response.json(), "invalid_json")


async def test_unstorable_characters_are_replaced_not_refused(
    client: ProxyClient, db: Database
) -> None:
    session_id = new_id()
    raw = b'{"session_id": "%s", "message": "bad \\ud800 and nul \\u0000 text"}' % (
        session_id.encode()
    )
    response = await client.http.post(client.url("/proxy/messages"), content=raw)
    await response.aread()
    assert response.status_code == 200
    saved = await messages_of(db, client.shop, session_id)
    assert saved[0].content == "bad \ufffd and nul \ufffd text"


async def test_huge_body_is_413(client: ProxyClient) -> None:
    response = await client.http.post(
        client.url("/proxy/messages"), content=b"{" + b" " * 70_000 + b"}"
    )
    assert response.status_code == 413
    _assert_error(response.json(), "body_too_large")


def _posted(receive: Callable[[], Awaitable[Message]]) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)


async def _trickle() -> Message:
    await asyncio.sleep(0.2)
    return {"type": "http.request", "body": b" ", "more_body": True}


@pytest.mark.parametrize(
    "read",
    [lambda r: read_json_object(r, timeout=0.5), lambda r: read_form(r, timeout=0.5)],
    ids=["json", "form"],
)
async def test_a_body_that_trickles_in_is_408(read: Callable[[Request], Awaitable[Any]]) -> None:
    request = _posted(_trickle)
    started = time.monotonic()
    with pytest.raises(ApiError) as refused:
        await read(request)
    assert time.monotonic() - started < 1.5
    response = await api_error(request, refused.value)
    assert response.status_code == 408
    _assert_error(json.loads(bytes(response.body)), "body_timeout")


async def test_a_client_that_leaves_mid_body_is_a_quiet_400() -> None:
    # Not a 500 in the error log: nobody is left to read the answer.
    async def leave() -> Message:
        return {"type": "http.disconnect"}

    with pytest.raises(ApiError) as refused:
        await read_json_object(_posted(leave))
    assert refused.value.status_code == 400 and refused.value.code == "body_incomplete"


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/proxy/messages"),
        ("PUT", "/proxy/messages"),
        ("DELETE", "/proxy/history"),
        ("POST", "/proxy/history"),
        ("GET", "/proxy/sessions/end"),
        ("POST", "/proxy/sessions/status"),
        ("GET", "/proxy/messages/{mid}/stop"),
        ("POST", "/proxy/messages/{mid}/stream"),
    ],
)
async def test_wrong_method_is_405(client: ProxyClient, method: str, path: str) -> None:
    response = await client.http.request(method, client.url(path.replace("{mid}", new_id())))
    assert response.status_code == 405
    _assert_error(response.json(), "method_not_allowed")


async def test_unknown_path_is_404_json(client: ProxyClient) -> None:
    response = await client.http.get(client.url("/proxy/nope"))
    assert response.status_code == 404
    _assert_error(response.json(), "not_found")


@pytest.mark.parametrize(
    "params,code",
    [
        ({}, "missing_session_id"),
        ({"session_id": "nope"}, "invalid_session_id"),
        ({"session_id": "{sid}", "limit": "0"}, "invalid_limit"),
        ({"session_id": "{sid}", "limit": "101"}, "invalid_limit"),
        ({"session_id": "{sid}", "limit": "-1"}, "invalid_limit"),
        ({"session_id": "{sid}", "limit": "ten"}, "invalid_limit"),
        # str.isdigit takes these; int() refuses some and reads others: neither may pass.
        ({"session_id": "{sid}", "limit": "²"}, "invalid_limit"),
        ({"session_id": "{sid}", "limit": "１０"}, "invalid_limit"),
        ({"session_id": "{sid}", "limit": "١٠"}, "invalid_limit"),
        ({"session_id": "{sid}", "limit": " 10"}, "invalid_limit"),
        ({"session_id": "{sid}", "limit": "1_0"}, "invalid_limit"),
        ({"session_id": "{sid}", "limit": "9" * 5000}, "invalid_limit"),
        ({"session_id": "{sid}", "before": "yesterday"}, "invalid_before"),
    ],
)
async def test_bad_history_parameters_are_400(client: ProxyClient, params: dict, code: str) -> None:
    params = {k: (new_id() if v == "{sid}" else v) for k, v in params.items()}
    response = await client.get("/proxy/history", params)
    assert response.status_code == 400
    _assert_error(response.json(), code)


async def test_bad_ids_in_reply_paths_are_400(client: ProxyClient) -> None:
    response = await client.get("/proxy/messages/abc/stream", {"session_id": new_id()})
    assert response.status_code == 400
    _assert_error(response.json(), "invalid_message_id")
    response = await client.post("/proxy/messages/abc/stop", {"session_id": new_id()})
    assert response.status_code == 400
    response = await client.post(f"/proxy/messages/{new_id()}/stop", {"session_id": "x"})
    assert response.status_code == 400
    _assert_error(response.json(), "invalid_session_id")


async def test_unknown_reply_is_404(client: ProxyClient) -> None:
    session_id = new_id()
    await client.send(session_id, "hello")
    response = await client.get(f"/proxy/messages/{new_id()}/stream", {"session_id": session_id})
    assert response.status_code == 404
    _assert_error(response.json(), "reply_not_found")


async def test_database_outage_is_a_clear_503(start_server) -> None:
    # A worker whose database is unreachable starts anyway and answers fast with 503.
    nowhere = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/chat"
    broken = start_server(database_url=nowhere)
    async with ProxyClient(broken.url, "any-shop.myshopify.com") as client:
        response = await client.get("/proxy/sessions/status", {"session_id": new_id()})
        turn = await client.send(new_id(), "hello")
    assert response.status_code == 503
    _assert_error(response.json(), "database_unavailable")
    assert response.headers["retry-after"]
    assert turn.status_code == 503
