"""What the HTTP providers share: one client, SSE parsing and one mapping of failures.

The upstream is read with aiohttp: relaying a model's tokens is the hot loop of a busy
worker, and aiohttp's C parser and plain asyncio reads cost a fraction of what httpx's
per-read machinery does (profiled in bench/: httpx was 59% of a worker's CPU at 400 streams).
Each read is parsed whole, so the tokens that arrived together are handed on together.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from app.ai.base import Finished, ProviderError, ReplyRequest, ToolCall

# (event name, data) of one server-sent event.
Event = tuple[str, str]


class SSEParser:
    """Incremental server-sent event parser: feed it bytes, get whole events back."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[Event]:
        if not self._buffer and not self._data and chunk.endswith(b"\n\n") and b"\r" not in chunk:
            return self._whole(chunk)
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            # CRLF and lone CR end lines too; a CR at the very end may be half of a CRLF.
            held = buffer.endswith(b"\r")
            buffer = buffer[:-1] if held else buffer
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            buffer += b"\r" if held else b""
        *lines, self._buffer = buffer.split(b"\n")
        events: list[Event] = []
        for line in lines:
            self._line(line, events)
        return events

    def _whole(self, chunk: bytes) -> list[Event]:
        """Whole events from a clean start, as a model's stream mostly comes: a single `data:`
        line each is read at once; any other is read line by line, as feed() would."""
        events: list[Event] = []
        blocks = chunk.split(b"\n\n")
        blocks.pop()  # the empty end after the last event
        for block in blocks:
            if block.startswith(b"data: ") and b"\n" not in block:
                events.append((self._event or "message", block[6:].decode("utf-8", "replace")))
                self._event = ""
                continue
            for line in block.split(b"\n"):
                self._line(line, events)
            self._line(b"", events)
        return events

    def close(self) -> list[Event]:
        """What a stream that ended without a final blank line still held."""
        events: list[Event] = []
        if self._buffer:
            self._line(self._buffer.rstrip(b"\r"), events)
            self._buffer = b""
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[Event]) -> None:
        if not line:
            if self._data:
                data = b"\n".join(self._data).decode("utf-8", "replace")
                events.append((self._event or "message", data))
            self._event, self._data = "", []
            return
        if line.startswith(b":"):
            return
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")


class ToolCalls:
    """Tool calls as a stream writes them: in pieces, each by its index (a name and an id
    first, then the arguments' JSON a few characters at a time)."""

    MAX_ARGUMENTS = 64 * 1024  # beyond it the JSON is cut, so the tool reports it invalid
    MAX_CALLS = 16

    def __init__(self) -> None:
        self._calls: dict[int, list[Any]] = {}

    def add(self, index: int, *, id: str = "", name: str = "", arguments: str = "") -> None:
        if index not in self._calls and len(self._calls) >= self.MAX_CALLS:
            return
        call = self._calls.setdefault(index, ["", "", []])
        call[0] = call[0] or id
        call[1] += name
        if arguments and sum(len(part) for part in call[2]) < self.MAX_ARGUMENTS:
            call[2].append(arguments)

    def done(self) -> list[ToolCall]:
        calls = []
        for index in sorted(self._calls):
            ident, name, parts = self._calls[index]
            if name:
                arguments = "".join(parts)[: self.MAX_ARGUMENTS]
                calls.append(ToolCall(ident or f"call_{index}", name[:100], arguments))
        return calls


class Watchdog:
    """The read timeout of one streaming request: no byte from the model for `timeout`
    seconds while it is read is upstream_timeout. aiohttp's own (sock_read) re-arms a timer
    for every chunk, a few per cent of a streaming worker's CPU (bench/ 2); this one arms a
    timer once per `timeout` and, when it fires, looks at when the last chunk came. Time the
    task spends elsewhere, with the stream's pieces, does not count."""

    def __init__(self, timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.timeout = timeout
        self.reading = True
        self.last = self.loop.time()
        self.fired = False
        self._handle = self.loop.call_at(self.last + timeout, self._check)

    def read(self) -> None:
        self.reading = True

    def got(self) -> None:
        self.reading = False
        self.last = self.loop.time()

    def _check(self) -> None:
        now = self.loop.time()
        due = self.last + self.timeout
        if now < due or not self.reading:
            self._handle = self.loop.call_at(max(due, now + 0.1), self._check)
            return
        self.fired = True
        self.task.cancel()

    def close(self) -> None:
        self._handle.cancel()


class UpstreamClient:
    """One connection pool per provider, opened on first use inside the running event loop."""

    def __init__(self, base_url: str, timeout: float) -> None:
        connect = min(timeout, 10.0)
        self.read_timeout = timeout  # kept by a Watchdog per request
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=connect, sock_connect=connect, sock_read=None
        )
        # An egress proxy from the environment (HTTPS_PROXY, NO_PROXY), looked up once:
        # aiohttp's trust_env would look it up, and read ~/.netrc, on a thread for every request.
        parts = urlsplit(base_url)
        proxies = urllib.request.getproxies()
        bypass = urllib.request.proxy_bypass(parts.hostname or "") if proxies else True
        self.proxy = None if bypass else proxies.get(parts.scheme)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout,
                # An idle connection is dropped after 4 s: model servers commonly close theirs
                # after 5, and a request sent just as they do would fail a healthy turn.
                connector=aiohttp.TCPConnector(limit=1000, limit_per_host=0, keepalive_timeout=4.0),
                proxy=self.proxy,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


async def sse_batches(
    response: aiohttp.ClientResponse, watchdog: Watchdog
) -> AsyncIterator[list[Event]]:
    """The events of a server-sent event stream, in batches: those that arrived in one read."""
    parser = SSEParser()
    content = response.content
    while True:
        watchdog.read()
        chunk = await content.readany()
        watchdog.got()
        if not chunk:
            break
        events = parser.feed(chunk)
        if events:
            yield events
    events = parser.close()
    if events:
        yield events


def _upstream_message(status: int, body: bytes) -> str:
    text = body.decode("utf-8", "replace")[:300].strip()
    return f"The AI service answered HTTP {status}" + (f": {text}" if text else ".")


@asynccontextmanager
async def upstream_stream(
    client: UpstreamClient, url: str, *, headers: Mapping[str, str], json: Any
) -> AsyncIterator[tuple[aiohttp.ClientResponse, Watchdog]]:
    """Open a streaming POST and turn every transport failure into a ProviderError; the
    response comes with the watchdog its reader tells of each read (sse_batches)."""
    started = False
    watchdog = Watchdog(client.read_timeout)
    try:
        async with client.session().post(url, headers=headers, json=json) as response:
            if response.status >= 400:
                body = await response.content.read(4096)
                code = "upstream_rate_limited" if response.status == 429 else "upstream_error"
                raise ProviderError(code, _upstream_message(response.status, body))
            started = True
            watchdog.got()
            yield response, watchdog
    except ProviderError:
        raise
    except asyncio.CancelledError:
        if not watchdog.fired:
            raise
        asyncio.current_task().uncancel()  # type: ignore[union-attr]
        raise ProviderError("upstream_timeout", "The AI service took too long to answer.") from None
    except TimeoutError as exc:  # aiohttp's connect timeouts are TimeoutErrors
        raise ProviderError("upstream_timeout", "The AI service took too long to answer.") from exc
    except (aiohttp.ClientError, OSError) as exc:
        if started:  # the answer had begun: whatever broke, it broke off half-way
            raise cut_short() from exc
        if isinstance(exc, aiohttp.ClientConnectorError):
            raise ProviderError(
                "upstream_unavailable", "The AI service cannot be reached."
            ) from exc
        raise ProviderError("upstream_unavailable", f"The AI service failed: {exc}") from exc
    finally:
        watchdog.close()


class HTTPProvider(ABC):
    """What both HTTP providers do: post the request, relay the text of the stream's events.

    A subclass says where and what to post (`prepare`) and what one event means (`read`).
    """

    name: str  # each provider names itself
    default_finish: str | None = None

    def __init__(
        self, *, base_url: str, api_key: str, model: str, timeout: float, max_tokens: int
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.model = model
        self.max_tokens = max_tokens
        self.client = UpstreamClient(self.base_url, timeout)

    @abstractmethod
    def prepare(self, request: ReplyRequest) -> tuple[str, dict[str, str], dict[str, Any]]:
        """The URL, headers and JSON body of the streaming request."""

    @abstractmethod
    def read(
        self, event: str, data: str, finish: str | None, calls: ToolCalls
    ) -> tuple[str | None, str | None, bool]:
        """One event's text, the finish reason so far, and whether the answer is over; the
        pieces of tool calls it carries go into `calls`."""

    async def stream(self, request: ReplyRequest) -> AsyncIterator[str | Finished | ToolCall]:
        url, headers, payload = self.prepare(request)
        finish, done = self.default_finish, False
        calls = ToolCalls()
        async with upstream_stream(self.client, url, headers=headers, json=payload) as opened:
            async for batch in sse_batches(*opened):
                texts: list[str] = []
                try:
                    for event, data in batch:
                        text, finish, done = self.read(event, data, finish, calls)
                        if text:
                            texts.append(text)
                        if done:
                            break
                except ProviderError:
                    if texts:  # what came before the failure is kept
                        yield "".join(texts)
                    raise
                if texts:
                    yield "".join(texts)
                if done:
                    for call in calls.done():
                        yield call
                    yield Finished(finish or "stop")
                    return
        raise cut_short()

    async def aclose(self) -> None:
        await self.client.aclose()


def json_object(data: str) -> dict[str, Any]:
    """An event's data, which must be a JSON object."""
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise bad_payload() from exc
    if not isinstance(body, dict):
        raise bad_payload()
    return body


def cut_short() -> ProviderError:
    return ProviderError("upstream_stream_cut", "The AI service broke off its answer half-way.")


def bad_payload() -> ProviderError:
    return ProviderError("upstream_bad_response", "The AI service sent something unreadable.")
