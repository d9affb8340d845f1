"""2. Streaming: many concurrent replies on one worker, against a fake model 200 tokens long."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from dataclasses import dataclass

import uvloop

from bench.common import Server, app_env, percentile, signed_query
from bench.fake_model import TOKENS

SHOP = "bench-stream.myshopify.com"


@dataclass
class Result:
    """One stream as its client saw it."""

    opened: float
    closed: float
    arrivals: list[float]

    @property
    def ttft(self) -> float:
        return self.arrivals[0] - self.opened if self.arrivals else float("nan")


async def _stream(host: str, port: int, path: str, body: bytes) -> Result:
    """One raw HTTP/1.1 request; when it opened, each token's arrival, when it closed."""
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
    return Result(started, time.perf_counter(), arrivals)


async def _many(url: str, path_of: object, bodies: int, stagger: float) -> list[Result]:
    host, port = url.removeprefix("http://").split(":")

    async def one(index: int) -> Result:
        await asyncio.sleep(index * stagger)
        path, body = path_of()  # type: ignore[operator]
        return await _stream(host, int(port), path, body)

    return await asyncio.gather(*(one(i) for i in range(bodies)))


def _direct() -> tuple[str, bytes]:
    return "/v1/chat/completions", json.dumps(
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()


def _relayed() -> tuple[str, bytes]:
    return "/relay", json.dumps({"message": "Tell me about shipping"}).encode()


def _proxied() -> tuple[str, bytes]:
    body = json.dumps({"session_id": str(uuid.uuid4()), "message": "Tell me about shipping"})
    return f"/proxy/messages?{signed_query(SHOP)}", body.encode()


def _summary(results: list[Result]) -> dict[str, float]:
    first = [r.ttft * 1000 for r in results if r.arrivals]
    gaps = [(b - a) * 1000 for r in results for a, b in itertools.pairwise(r.arrivals)]
    return {
        "ttft_p50": percentile(first, 50),
        "ttft_p99": percentile(first, 99),
        "gap_p99": percentile(gaps, 99),
        "with_tokens": sum(bool(r.arrivals) for r in results),
    }


async def _setup(database_url: str) -> None:
    from app import repo
    from app.db import Database

    db = Database(database_url)
    async with db.session() as session:
        await repo.install_shop(session, domain=SHOP)
    await db.dispose()


def _peak_open(results: list[Result]) -> int:
    edges = sorted([(r.opened, 1) for r in results] + [(r.closed, -1) for r in results])
    open_now = peak = 0
    for _, change in edges:
        open_now += change
        peak = max(peak, open_now)
    return peak


def _through(server: Server, path_of: object, streams: int, stagger: float) -> dict[str, object]:
    """One load through a server: what its clients saw, its memory and its CPU per event."""
    idle = server.rss_kib()
    peak = [idle]

    async def sample() -> None:
        while True:
            peak.append(server.rss_kib())
            await asyncio.sleep(0.2)

    async def load() -> list[Result]:
        sampler = asyncio.create_task(sample())
        try:
            return await _many(server.url, path_of, streams, stagger)
        finally:
            sampler.cancel()

    cpu_before = server.cpu_seconds()
    results = uvloop.run(load())
    cpu = server.cpu_seconds() - cpu_before
    events = sum(len(r.arrivals) for r in results)  # deltas: a token, or a few under load
    # Every reply is the fake model's TOKENS tokens: the service writes those of one read as
    # one event and the relay one event each, so per event counts the same work over fewer
    # events for the service under load; per token does not.
    tokens = sum(bool(r.arrivals) for r in results) * TOKENS
    open_at_peak = _peak_open(results)
    return {
        "summary": _summary(results),
        "open_at_peak": open_at_peak,
        "memory_per_stream_kib": round((max(peak) - idle) / max(1, open_at_peak), 1),
        "worker_cpu_us_per_event": round(cpu / max(1, events) * 1e6, 1),
        "worker_cpu_us_per_token": round(cpu / max(1, tokens) * 1e6, 1),
    }


def _added(through: dict[str, float], direct: dict[str, float]) -> dict[str, float]:
    """What going through a server added to the model's own stream."""
    return {
        "added_ttft_p50_ms": round(through["ttft_p50"] - direct["ttft_p50"], 1),
        "added_ttft_p99_ms": round(through["ttft_p99"] - direct["ttft_p99"], 1),
        "added_gap_p99_ms": round(through["gap_p99"] - direct["gap_p99"], 1),
    }


def _ratio(ours: dict[str, object], relay: dict[str, object], key: str) -> float:
    return round(float(str(ours[key])) / max(0.1, float(str(relay[key]))), 2)


def _within(added: dict[str, float]) -> bool:
    return added["added_ttft_p50_ms"] < 5 and added["added_gap_p99_ms"] < 50


def _level(
    model: Server, baseline: Server, ours: Server, streams: int, stagger: float
) -> dict[str, object]:
    """One load level: the fake model alone, then the minimal relay, then the service."""
    direct = _summary(uvloop.run(_many(model.url, _direct, streams, stagger)))
    relayed = _through(baseline, _relayed, streams, stagger)
    proxied = _through(ours, _proxied, streams, stagger)
    mine, floor = proxied["summary"], relayed["summary"]
    assert isinstance(mine, dict) and isinstance(floor, dict)
    added, relay_added = _added(mine, direct), _added(floor, direct)
    return {
        "streams": streams,
        "open_at_peak": proxied["open_at_peak"],
        **added,
        "memory_per_stream_kib": proxied["memory_per_stream_kib"],
        "worker_cpu_us_per_event": proxied["worker_cpu_us_per_event"],
        "worker_cpu_us_per_token": proxied["worker_cpu_us_per_token"],
        "cpu_ratio_per_event": _ratio(proxied, relayed, "worker_cpu_us_per_event"),
        "cpu_ratio_per_token": _ratio(proxied, relayed, "worker_cpu_us_per_token"),
        "baseline_relay": {
            **relay_added,
            "worker_cpu_us_per_event": relayed["worker_cpu_us_per_event"],
            "worker_cpu_us_per_token": relayed["worker_cpu_us_per_token"],
        },
        "direct": {k: round(v, 1) for k, v in direct.items()},
        "through_service": {k: round(v, 1) for k, v in mine.items()},
        "met": _within(added),
        "baseline_met": _within(relay_added),
    }


def run(
    database_url: str, *, levels: tuple[int, ...] = (100, 250, 500, 1000), stagger: float = 0.004
) -> dict[str, object]:
    """Each level opens its streams `stagger` apart (250 a second), so that the last level
    holds 1,000 streams open at once; the smaller ones show where one worker stops keeping up.
    At each level the minimal relay (bench/relay_baseline.py) takes the same load, as the
    floor of what one worker of this machine can relay."""
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
    baseline = Server(
        "bench.relay_baseline:app", {"BENCH_MODEL_URL": f"{model.url}/v1/chat/completions"}
    )
    try:
        uvloop.run(_many(model.url, _direct, 20, 0))  # warm up
        uvloop.run(_many(baseline.url, _relayed, 20, 0))
        uvloop.run(_many(ours.url, _proxied, 20, 0))
        figures = [_level(model, baseline, ours, streams, stagger) for streams in levels]
    finally:
        ours.stop()
        baseline.stop()
        model.stop()
    top = figures[-1]
    within = [streams for streams, f in zip(levels, figures, strict=True) if f["met"]]
    floor = [streams for streams, f in zip(levels, figures, strict=True) if f["baseline_met"]]
    return {
        **{k: v for k, v in top.items() if k not in ("met", "baseline_met")},
        "most_streams_within_target": max(within) if within else 0,
        "baseline_most_streams_within_target": max(floor) if floor else 0,
        "levels": figures,
        "target": "added TTFT p50 < 5 ms, added inter-token p99 < 50 ms",
        "met": top["met"],
    }
