"""Server-sent events for a reply: live from this worker, or polled from the database."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app import repo
from app.db import Database, database_unreachable
from app.observability import BODY_SEND
from app.replies import LiveReply, Replies, error_message

# One encoder for every event: json.dumps with options builds a new one per call, which was a
# twentieth of a streaming worker's CPU (bench/).
_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
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


class EventStream(Response):
    """A server-sent event response that stops when the shopper goes away.

    Starlette's StreamingResponse watches for the disconnect through an anyio task group per
    response (and formats a task's repr each time it cancels one); this does the same with
    one plain asyncio task, which counts when one worker holds a thousand streams.
    """

    media_type = "text/event-stream"

    def __init__(self, events: AsyncGenerator[bytes, None], headers: Mapping[str, str]) -> None:
        self.events = events
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
) -> AsyncGenerator[bytes, None]:
    """A reply's events from `offset` on: from this worker while it generates the reply, else
    from the database, where another worker (or none, if it died) writes it."""
    yield sse("start", start, f"{public_id}:{offset}")
    live = replies.live.get(public_id)
    events = (
        _live_events(live, public_id, offset)
        if live is not None
        else _saved_events(db, replies.keep_alive, message_id, public_id, offset)
    )
    async for chunk in events:
        yield chunk


async def _live_events(live: LiveReply, public_id: str, offset: int) -> AsyncGenerator[bytes, None]:
    shown = live.products
    if shown is not None:
        yield _products(shown, public_id, offset)
    async for batch in live.follow(offset):
        if batch is None:
            yield b": keep-alive\n\n"
            continue
        events = []
        if live.products is not shown:
            shown = live.products
            events.append(_products(shown, public_id, offset))
        for piece in batch:  # an event each, written together
            offset += len(piece)
            events.append(sse("delta", {"text": piece}, f"{public_id}:{offset}"))
        if events:
            yield b"".join(events)
    if live.products is not shown:
        yield _products(live.products, public_id, offset)
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
                yield sse("delta", {"text": piece}, f"{public_id}:{offset}")
            if len(content) >= offset:
                seen = content[max(0, offset - SEEN) : offset]
            if message.status != "streaming":
                yield _ending(public_id, message.status, message.finish_reason, message.error_code)
                return
        if time.monotonic() - quiet_since > keep_alive:
            quiet_since = time.monotonic()
            yield b": keep-alive\n\n"
        await asyncio.sleep(POLL_INTERVAL if unreachable_since is None else POLL_INTERVAL * 2)
