"""Server-sent events for a reply: live from this worker, or polled from the database."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from app import repo
from app.db import Database, database_unreachable
from app.observability import BODY_SEND
from app.replies import LiveReply, Replies, error_message

log = logging.getLogger("app.streaming")
# One encoder for every event: json.dumps with options builds a new one per call, which was a
# twentieth of a streaming worker's CPU (bench/).
_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_json_string = json.encoder.encode_basestring  # what _to_json writes a string as
POLL_INTERVAL = 0.25
# How much of what a follower of the database sent it compares with the saved text each time,
# to notice a reply restarted under it.
SEEN = 64
# How long a reply followed from the database waits out a database outage before giving up.
DATABASE_PATIENCE = 20.0
UNREADABLE = {
    "code": "database_unavailable",
    "message": "The reply cannot be read right now. Please try again.",
}
SSE_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}


class Output:
    """The body of an EventStream, for a ReplySink to write to from the task generating the
    reply: bound once the response has begun."""

    __slots__ = ("send",)

    def __init__(self) -> None:
        self.send: Callable[[Message], Awaitable[None]] = _unbound

    def bind(self, send: Callable[[Message], Awaitable[None]]) -> None:
        self.send = send


async def _unbound(_message: Message) -> None:
    raise RuntimeError("the event stream has not begun")


class EventStream(Response):
    """A server-sent event response that stops when the shopper goes away.

    Starlette's StreamingResponse watches for the disconnect through an anyio task group per
    response (and formats a task's repr each time it cancels one); this does the same with
    one plain asyncio task, which counts when one worker holds a thousand streams.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        events: AsyncGenerator[bytes, None],
        headers: Mapping[str, str],
        output: Output | None = None,
    ) -> None:
        self.events = events
        self.output = output
        self.status_code = 200
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.current_task()
        assert streaming is not None
        done = gone = False

        async def watch() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            if not done:
                gone = True
                streaming.cancel()

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            send_body = scope.get(BODY_SEND, send)
            if self.output is not None:
                self.output.bind(send_body)
            async for chunk in self.events:
                await send_body({"type": "http.response.body", "body": chunk, "more_body": True})
            done = True
            await send_body({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not gone:
                raise
            streaming.uncancel()  # the shopper left; the reply itself goes on without them
        finally:
            done = True
            watcher.cancel()
            await self.events.aclose()


def delta(text: str, event_id: str) -> bytes:
    """sse("delta", {"text": text}, event_id), the same bytes, with one call of the JSON
    encoder's C string escaper instead of a trip through the encoder: every token of every
    reply is one (bench/ 2)."""
    return f'id: {event_id}\nevent: delta\ndata: {{"text":{_json_string(text)}}}\n\n'.encode()


def sse(event: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    if event_id is None:
        return f"event: {event}\ndata: {_to_json(data)}\n\n".encode()
    return f"id: {event_id}\nevent: {event}\ndata: {_to_json(data)}\n\n".encode()


def _ending(public_id: str, status: str, finish: str | None, error: str | None) -> bytes:
    if status == "error":
        return sse(
            "error",
            {
                "code": error or "internal_error",
                "message": error_message(error),
                "assistant_message_id": public_id,
            },
        )
    return sse(
        "done",
        {
            "assistant_message_id": public_id,
            "finish_reason": finish or ("stopped" if status == "stopped" else "stop"),
            "status": status,
        },
    )


def _products(cards: list[dict[str, Any]] | None, public_id: str, offset: int) -> bytes:
    """The reply's cards as they now stand: each `products` event replaces the last."""
    data = {"assistant_message_id": public_id, "products": cards or []}
    return sse("products", data, f"{public_id}:{offset}")


async def reply_events(
    *,
    replies: Replies,
    db: Database,
    message_id: int,
    public_id: str,
    offset: int,
    start: dict[str, Any],
    output: Output,
) -> AsyncGenerator[bytes, None]:
    """A reply's events from `offset` on: from this worker while it generates the reply, else
    from the database, where another worker (or none, if it died) writes it. (`output` is the
    body of the EventStream this feeds, which the reply's own task writes to.)"""
    yield sse("start", start, f"{public_id}:{offset}")
    live = replies.live.get(public_id)
    if live is not None:
        async for chunk in _live_events(live, output, public_id, offset):
            yield chunk
        return
    async for chunk in _saved_events(db, replies.keep_alive, message_id, public_id, offset):
        yield chunk


class ReplySink:
    """One response's share of a reply this worker generates: the task generating the reply
    writes each piece to it as it comes (LiveReply.sinks), so relaying a token wakes no other
    task (bench/ 2). The response's own task waits for the end, sends a keep-alive when the
    reply has been quiet, and sends whatever the reply's task had not written (a piece cut
    short by a stop) before the ending.

    One write at a time: a push while another is under way (waiting for a slow shopper's
    socket) leaves its text to that one, which sends what has come since before it returns.
    The reply's task waits for such a write, as any relay waits for its reader; a reply is
    far smaller than the socket's buffers, so in practice it never does.
    """

    __slots__ = (
        "busy",
        "gone",
        "live",
        "offset",
        "output",
        "public_id",
        "sent_at",
        "shown",
        "waiter",
    )

    def __init__(self, live: LiveReply, output: Output, public_id: str, offset: int) -> None:
        self.live, self.output, self.public_id, self.offset = live, output, public_id, offset
        self.shown: list[dict[str, object]] | None = None  # the cards as last sent
        self.busy = self.gone = False
        self.sent_at = time.monotonic()
        self.waiter: asyncio.Future[bool] | None = None

    def _pending(self) -> bytes:
        live, events = self.live, []
        if live.products is not self.shown:
            self.shown = live.products
            events.append(_products(self.shown, self.public_id, self.offset))
        end = len(live.text)
        if end > self.offset:
            piece, self.offset = live.text[self.offset : end], end
            events.append(delta(piece, f"{self.public_id}:{end}"))
        return b"".join(events)

    async def push(self, extra: bytes = b"") -> None:
        """Write what the reply has that this response has not been sent (and `extra` first)."""
        if self.busy or self.gone:
            return
        self.busy = True
        try:
            chunk = extra + self._pending()
            while chunk:
                await self.output.send(
                    {"type": "http.response.body", "body": chunk, "more_body": True}
                )
                self.sent_at = time.monotonic()
                chunk = self._pending()
        except Exception:
            # The response cannot take more: the reply goes on without it.
            log.exception("writing reply %s to a stream failed", self.public_id)
            self.gone = True
            self.wake()
        finally:
            self.busy = False

    def tick(self, now: float, idle: float) -> None:
        """The flusher's tick: after `idle` seconds with nothing written, ask for a keep-alive."""
        if self.waiter is not None and not self.waiter.done() and now - self.sent_at >= idle:
            self.waiter.set_result(False)

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(True)


async def _live_events(
    live: LiveReply, output: Output, public_id: str, offset: int
) -> AsyncGenerator[bytes, None]:
    sink = ReplySink(live, output, public_id, offset)
    loop = asyncio.get_running_loop()
    live.sinks.append(sink)
    try:
        await sink.push()  # what there is already
        while not live.finished.is_set() and not sink.gone:
            sink.waiter = loop.create_future()
            if not await sink.waiter:
                await sink.push(b": keep-alive\n\n")
    finally:
        live.sinks.remove(sink)
    if sink.gone:
        return
    await sink.push()
    yield _ending(public_id, live.status, live.finish_reason, live.error_code)


async def _saved_events(
    db: Database, keep_alive: float, message_id: int, public_id: str, offset: int
) -> AsyncGenerator[bytes, None]:
    quiet_since = time.monotonic()
    unreachable_since: float | None = None
    seen = ""  # the end of the saved text up to `offset`, once it has reached it
    cards: str | None = None  # the cards as last sent (JSON, as saved)
    while True:
        try:
            async with db.session() as session:
                message = await repo.get_message_by_id(session, message_id=message_id)
            unreachable_since = None
        except Exception as exc:
            if not database_unreachable(exc):
                raise
            # The response has begun, so no 503 any more: wait a while, then say so in-stream.
            unreachable_since = unreachable_since or time.monotonic()
            if time.monotonic() - unreachable_since > DATABASE_PATIENCE:
                yield sse("error", UNREADABLE | {"assistant_message_id": public_id})
                return
        else:
            if message is None:
                yield sse("error", {"code": "not_found", "message": "The reply no longer exists."})
                return
            content = message.content
            if seen and (len(content) < offset or not content.startswith(seen, offset - len(seen))):
                # Ended and restarted by a retry (its worker had died) since the last look:
                # the text sent so far is not the reply's any more. The shopper's retry
                # replays the new one from its start. (Until the saved text reaches the
                # offset asked for, it may just lag behind the worker writing it.)
                yield _ending(public_id, "error", None, "interrupted")
                return
            if message.products is not None and message.products != cards:
                cards = message.products
                yield _products(json.loads(cards), public_id, offset)
            if len(content) > offset:
                piece = content[offset:]
                offset = len(content)
                quiet_since = time.monotonic()
                yield delta(piece, f"{public_id}:{offset}")
            if len(content) >= offset:
                seen = content[max(0, offset - SEEN) : offset]
            if message.status != "streaming":
                yield _ending(public_id, message.status, message.finish_reason, message.error_code)
                return
        if time.monotonic() - quiet_since > keep_alive:
            quiet_since = time.monotonic()
            yield b": keep-alive\n\n"
        await asyncio.sleep(POLL_INTERVAL if unreachable_since is None else POLL_INTERVAL * 2)
