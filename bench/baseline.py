"""The baseline for turn throughput: a minimal hand-written Starlette + asyncpg endpoint.

It does the same work as a turn of the real service, and nothing more: verify the app-proxy
signature, save the shopper's message, stream a 20-word reply as server-sent events, save it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

SECRET = os.environ["SHOPIFY_API_SECRET"]
REPLY = os.environ.get("BENCH_REPLY", "").split(" ")
pool: asyncpg.Pool


def verified_shop(query: str) -> str | None:
    params = dict(parse_qsl(query, keep_blank_values=True))
    signature = params.pop("signature", "")
    message = "".join(f"{k}={v}" for k, v in sorted(params.items()))
    expected = hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature, expected):
        return None
    if abs(time.time() - int(params.get("timestamp", "0"))) > 90:
        return None
    return params.get("shop")


def sse(event: str, data: dict[str, str]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


async def open_turn(shop: str, session_id: str, text: str) -> tuple[int, int]:
    """The conversation (on a first message), the shopper's message and the empty reply:
    the shop's id and the reply's."""
    async with pool.acquire() as connection, connection.transaction():
        shop_id = await connection.fetchval(
            "SELECT id FROM shops WHERE domain = $1 AND installed", shop
        )
        conversation = await connection.fetchval(
            "INSERT INTO conversations (public_id, shop_id, session_id, status, created_at,"
            " last_activity_at) VALUES ($1, $2, $3, 'active', now(), now())"
            " ON CONFLICT (shop_id, session_id) DO UPDATE SET last_activity_at = now()"
            " RETURNING id",
            str(uuid.uuid4()),
            shop_id,
            session_id,
        )
        user = await connection.fetchval(
            "INSERT INTO messages (public_id, conversation_id, role, content, status,"
            " created_at, updated_at) VALUES ($1, $2, 'user', $3, 'complete', now(), now())"
            " RETURNING id",
            str(uuid.uuid4()),
            conversation,
            text,
        )
        reply = await connection.fetchval(
            "INSERT INTO messages (public_id, conversation_id, role, content, status,"
            " reply_to_id, created_at, updated_at) VALUES ($1, $2, 'assistant', '', 'streaming',"
            " $3, now(), now()) RETURNING id",
            str(uuid.uuid4()),
            conversation,
            user,
        )
    return int(shop_id), int(reply)


async def turn(request: Request) -> Response:
    shop = verified_shop(request.url.query)
    if shop is None:
        return JSONResponse({"error": {"code": "invalid_signature", "message": "bad"}}, 401)
    body = json.loads(await request.body())
    _, reply = await open_turn(shop, body["session_id"], body["message"].strip())

    async def events() -> AsyncIterator[bytes]:
        yield sse("start", {"assistant_message_id": str(reply)})
        content = ""
        for index, word in enumerate(REPLY):
            piece = word if index == 0 else " " + word
            content += piece
            yield sse("delta", {"text": piece})
        await pool.execute(
            "UPDATE messages SET content = $1, status = 'complete', updated_at = now()"
            " WHERE id = $2",
            content,
            reply,
        )
        yield sse("done", {"assistant_message_id": str(reply)})

    return StreamingResponse(events(), media_type="text/event-stream")


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    global pool
    pool = await asyncpg.create_pool(os.environ["BENCH_DSN"], min_size=5, max_size=30)
    yield
    await pool.close()


app = Starlette(
    routes=[Route("/turn", turn, methods=["POST"]), Route("/healthz", healthz)], lifespan=lifespan
)
