"""The baseline for streaming: a minimal hand-written Starlette + aiohttp relay of the model.

It does less than a turn of the real service, on purpose: no signature, no database, no
reply kept apart from the request. It reads the model's stream line by line and writes each
piece of text to the shopper as a server-sent event, which is the least any relay must do;
what it costs per event is the floor for one worker (bench/streaming.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL_URL = os.environ.get("BENCH_MODEL_URL", "")
session: aiohttp.ClientSession


async def relay(request: Request) -> Response:
    body = await request.json()
    payload = {
        "model": "m",
        "stream": True,
        "messages": [{"role": "user", "content": body["message"]}],
    }

    async def events() -> AsyncIterator[bytes]:
        async with session.post(MODEL_URL, json=payload) as response:
            async for line in response.content:
                if not line.startswith(b"data: "):
                    continue
                data = line[6:].strip()
                if data == b"[DONE]":
                    break
                text = json.loads(data)["choices"][0]["delta"].get("content")
                if text:
                    yield b"event: delta\ndata: " + json.dumps({"text": text}).encode() + b"\n\n"
        yield b"event: done\ndata: {}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    global session
    # No connection limit: aiohttp's default of 100 would queue the streams, not relay them.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    yield
    await session.close()


app = Starlette(
    routes=[Route("/relay", relay, methods=["POST"]), Route("/healthz", healthz)],
    lifespan=lifespan,
)
