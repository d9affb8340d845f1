"""What the HTTP providers share: one client, SSE parsing and one mapping of failures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx

from app.ai.base import ProviderError


def make_client(timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
    )


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """Yield (event, data) pairs of a server-sent event stream."""
    event, data = "", list[str]()
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield event or "message", "\n".join(data)
            event, data = "", list[str]()
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
    if data:
        yield event or "message", "\n".join(data)


def _upstream_message(response: httpx.Response, body: bytes) -> str:
    text = body.decode("utf-8", "replace")[:300].strip()
    return f"The AI service answered HTTP {response.status_code}" + (f": {text}" if text else ".")


@asynccontextmanager
async def upstream_stream(
    client: httpx.AsyncClient, url: str, *, headers: Mapping[str, str], json: Any
) -> AsyncIterator[httpx.Response]:
    """Open a streaming POST and turn every transport failure into a ProviderError."""
    try:
        async with client.stream("POST", url, headers=headers, json=json) as response:
            if response.status_code >= 400:
                body = await response.aread()
                code = "upstream_rate_limited" if response.status_code == 429 else "upstream_error"
                raise ProviderError(code, _upstream_message(response, body))
            yield response
    except ProviderError:
        raise
    except httpx.TimeoutException as exc:
        raise ProviderError("upstream_timeout", "The AI service took too long to answer.") from exc
    except httpx.ConnectError as exc:
        raise ProviderError("upstream_unavailable", "The AI service cannot be reached.") from exc
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        raise ProviderError(
            "upstream_stream_cut", "The AI service broke off its answer half-way."
        ) from exc
    except httpx.HTTPError as exc:
        raise ProviderError("upstream_unavailable", f"The AI service failed: {exc}") from exc


def cut_short() -> ProviderError:
    return ProviderError("upstream_stream_cut", "The AI service broke off its answer half-way.")


def bad_payload() -> ProviderError:
    return ProviderError("upstream_bad_response", "The AI service sent something unreadable.")
