"""A fake OpenAI-compatible model for the streaming benchmark: 200 tokens, 20 ms apart."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

TOKENS = int(os.environ.get("BENCH_TOKENS", "200"))
INTERVAL = float(os.environ.get("BENCH_INTERVAL", "0.02"))


def _chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
    payload = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(payload)}\n\n".encode()


async def completions(request: Request) -> Response:
    await request.body()

    async def tokens() -> AsyncIterator[bytes]:
        for index in range(TOKENS):
            await asyncio.sleep(INTERVAL)
            yield _chunk({"content": f" t{index}"})
        yield _chunk({}, "stop")
        yield b"data: [DONE]\n\n"

    return StreamingResponse(tokens(), media_type="text/event-stream")


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/v1/chat/completions", completions, methods=["POST"]),
        Route("/healthz", healthz),
    ]
)
