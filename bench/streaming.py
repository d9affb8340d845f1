"""2. Streaming: many concurrent replies on one worker, against a fake model 200 tokens long."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from urllib.parse import urlencode

import uvloop

from app.shopify import sign_proxy_query
from bench.common import SECRET, Server, app_env, percentile

SHOP = "bench-stream.myshopify.com"


async def _stream(host: str, port: int, path: str, body: bytes) -> tuple[float, list[float]]:
    """One raw HTTP/1.1 request; the time to the first token and the arrival of each token."""
    reader, writer = await asyncio.open_connection(host, port)
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    started = time.perf_counter()
    writer.write(request)
    arrivals: list[float] = []
    marker = b'"content"' if path.startswith("/v1/") else b"event: delta"
    tail = b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            break
        now = time.perf_counter()
        data = tail + chunk
        arrivals += [now] * data.count(marker)
        tail = data[-len(marker) :]
        if b"[DONE]" in data or b"event: done" in data:
            break
    writer.close()
    return (arrivals[0] - started if arrivals else float("nan")), arrivals


async def _many(
    url: str, path_of: object, bodies: int, stagger: float
) -> list[tuple[float, list[float]]]:
    host, port = url.removeprefix("http://").split(":")

    async def one(index: int) -> tuple[float, list[float]]:
        await asyncio.sleep(index * stagger)
        path, body = path_of()  # type: ignore[operator]
        return await _stream(host, int(port), path, body)

    return await asyncio.gather(*(one(i) for i in range(bodies)))


def _direct() -> tuple[str, bytes]:
    return "/v1/chat/completions", json.dumps(
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()


def _proxied() -> tuple[str, bytes]:
    params = {
        "shop": SHOP,
        "path_prefix": "/apps/chat",
        "timestamp": str(int(time.time())),
        "logged_in_customer_id": "",
    }
    params["signature"] = sign_proxy_query(params, SECRET)
    body = json.dumps({"session_id": str(uuid.uuid4()), "message": "Tell me about shipping"})
    return f"/proxy/messages?{urlencode(params)}", body.encode()


def _summary(results: list[tuple[float, list[float]]]) -> dict[str, float]:
    first = [r[0] * 1000 for r in results if r[1]]
    gaps = [(b - a) * 1000 for _, arrivals in results for a, b in itertools.pairwise(arrivals)]
    return {
        "ttft_p50": percentile(first, 50),
        "ttft_p99": percentile(first, 99),
        "gap_p99": percentile(gaps, 99),
        "with_tokens": sum(bool(r[1]) for r in results),
    }


async def _setup(database_url: str) -> None:
    from app import repo
    from app.db import Database

    db = Database(database_url)
    async with db.session() as session:
        await repo.install_shop(session, domain=SHOP)
    await db.dispose()


def run(database_url: str, *, streams: int = 1000, stagger: float = 0.004) -> dict[str, object]:
    asyncio.run(_setup(database_url))
    model = Server("fake model", {}, module="bench.fake_model")
    ours = Server(
        "app.main:app",
        app_env(
            database_url,
            AI_PROVIDER="openai",
            AI_BASE_URL=f"{model.url}/v1",
            AI_API_KEY="k",
            AI_MODEL="m",
            AI_TIMEOUT="60",
        ),
    )
    try:
        uvloop.run(_many(model.url, _direct, 20, 0))  # warm up
        uvloop.run(_many(ours.url, _proxied, 20, 0))
        direct = _summary(uvloop.run(_many(model.url, _direct, streams, stagger)))
        idle = ours.rss_kib()
        peak = [idle]

        async def sample() -> None:
            while True:
                peak.append(ours.rss_kib())
                await asyncio.sleep(0.2)

        async def proxied_run() -> list[tuple[float, list[float]]]:
            sampler = asyncio.create_task(sample())
            try:
                return await _many(ours.url, _proxied, streams, stagger)
            finally:
                sampler.cancel()

        proxied = _summary(uvloop.run(proxied_run()))
    finally:
        ours.stop()
        model.stop()
    added_ttft = proxied["ttft_p50"] - direct["ttft_p50"]
    added_gap = proxied["gap_p99"] - direct["gap_p99"]
    concurrent = min(streams, int(200 * 0.02 / stagger)) if stagger else streams
    per_stream = (max(peak) - idle) / max(1, concurrent)
    return {
        "streams": streams,
        "open_at_peak": concurrent,
        "added_ttft_p50_ms": round(added_ttft, 1),
        "added_ttft_p99_ms": round(proxied["ttft_p99"] - direct["ttft_p99"], 1),
        "added_gap_p99_ms": round(added_gap, 1),
        "memory_per_stream_kib": round(per_stream, 1),
        "direct": {k: round(v, 1) for k, v in direct.items()},
        "through_service": {k: round(v, 1) for k, v in proxied.items()},
        "target": "added TTFT p50 < 5 ms, added inter-token p99 < 50 ms",
        "met": added_ttft < 5 and added_gap < 50,
    }
