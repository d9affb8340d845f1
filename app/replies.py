"""Replies being generated: run apart from any request, flushed in batches, followed live."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from app import repo
from app.ai import Finished, Provider, ProviderError, ReplyRequest
from app.assistant.loop import Products, ToolUse, respond
from app.assistant.tools import Toolbox
from app.db import Database
from app.heartbeat import Heartbeat
from app.models import utcnow

log = logging.getLogger("app.replies")

ERROR_MESSAGES = {
    "upstream_timeout": "The assistant took too long to answer. Please try again.",
    "upstream_unavailable": "The assistant is unavailable right now. Please try again shortly.",
    "upstream_error": "The assistant ran into a problem. Please try again.",
    "upstream_rate_limited": "The assistant is busy right now. Please try again shortly.",
    "upstream_overloaded": "The assistant is busy right now. Please try again shortly.",
    "upstream_stream_cut": "The assistant's answer was cut off. Please try again.",
    "upstream_bad_response": "The assistant ran into a problem. Please try again.",
    "interrupted": "The answer was interrupted. Please try again.",
    "internal_error": "Something went wrong on our side. Please try again.",
}


def _json(value: object) -> str | None:
    return None if value is None or value == [] else json.dumps(value, separators=(",", ":"))


def _unanswered(reply: LiveReply, status: str, finish: str | None) -> bool | None:
    """A complete reply whose searches all came back empty, or that ran out of tool rounds:
    a question the shop's catalog, policies and FAQ have no answer to. (None, not False, for
    the rest: the index on it holds only these.)"""
    if status != "complete":
        return None
    searched = bool(reply.tools) and not any(tool["matched"] for tool in reply.tools)
    return True if searched or finish == "tool_limit" else None


def error_message(code: str | None) -> str:
    return ERROR_MESSAGES.get(code or "", ERROR_MESSAGES["internal_error"])


class Sink(Protocol):
    """A response the reply's own task writes to (app/streaming.ReplySink)."""

    async def push(self) -> None: ...

    def tick(self, now: float, idle: float) -> None: ...

    def wake(self) -> None: ...


@dataclass
class LiveReply:
    """One reply being generated in this process; any number of requests may follow it."""

    message_id: int
    public_id: str
    conversation_id: int
    worker_id: str | None = None  # as recorded on the reply's row: its writes are only its own
    text: str = ""
    # Where each piece the model sent ends in `text`: followers relay them one event each,
    # as the model sent them, however many arrived since they last woke.
    ends: array[int] = field(default_factory=lambda: array("q"))
    status: str = "streaming"
    finish_reason: str | None = None
    error_code: str | None = None
    flushed: int = 0
    flushed_at: float = field(default_factory=time.monotonic)
    # The reply's product cards (None until a tool found some) and the tools it used.
    products: list[dict[str, object]] | None = None
    tools: list[dict[str, object]] = field(default_factory=list)
    stop_requested: bool = False
    task: asyncio.Task[None] | None = None
    consuming: bool = False
    finishing: bool = False  # its final write (the whole text) is on its way: no flush needed
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    # Followers waiting for the next change: plain futures, woken all at once with True, or
    # with False for a keep-alive by the flusher's tick. The relay of every token goes
    # through here; a timer per wait, or asyncio.wait_for on an Event, cost a fifth of a
    # short turn's CPU (bench/).
    _waiters: list[asyncio.Future[bool]] = field(default_factory=list)
    changed_at: float = field(default_factory=time.monotonic)
    # The responses this task writes to itself as the pieces come (the turn's own stream, a
    # resume on this worker); `_waiters` are the followers who wake up to read them.
    sinks: list[Sink] = field(default_factory=list)

    def append(self, piece: str) -> None:
        self.text += piece
        self.ends.append(len(self.text))
        if self._waiters:
            self._notify()

    def show(self, cards: list[dict[str, object]]) -> None:
        self.products = cards
        self.ends.append(len(self.text))  # wakes followers, who look at `products`
        if self._waiters:
            self._notify()

    def _notify(self, changed: bool = True) -> None:
        self.changed_at = time.monotonic()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(changed)

    def keep_alive(self, now: float, idle: float) -> None:
        """Wake followers with nothing new for `idle` seconds, so they can send a keep-alive."""
        if self._waiters and now - self.changed_at >= idle:
            self._notify(changed=False)
        for sink in self.sinks:
            sink.tick(now, idle)

    def stop(self) -> None:
        if self.stop_requested:
            return
        self.stop_requested = True
        if self.consuming and self.task is not None:
            self.task.cancel()  # only while it reads the model, never while it saves

    def close(self, status: str, finish_reason: str | None, error_code: str | None) -> None:
        self.status, self.finish_reason, self.error_code = status, finish_reason, error_code
        self.finished.set()
        self._notify()
        for sink in self.sinks:
            sink.wake()

    async def follow(self, offset: int) -> AsyncIterator[list[str] | None]:
        """Yield the text after `offset`, each time all the pieces that have come since: what
        is there first as one piece, then each piece as the model sent it. The caller writes
        a batch at once, so a busy worker makes fewer, fuller writes. None asks for a
        keep-alive."""
        loop = asyncio.get_running_loop()
        index, position = len(self.ends), len(self.text)
        cards = self.products
        if position > offset:
            yield [self.text[offset:position]]
            offset = position
        while True:
            if index < len(self.ends):
                batch = []
                for end in self.ends[index:]:
                    if end > offset:
                        batch.append(self.text[max(offset, position) : end])
                        offset = end
                    position = end
                index = len(self.ends)
                if batch or self.products is not cards:
                    # Empty when only the cards changed (show()): the caller sends those.
                    cards = self.products
                    yield batch
                continue  # more may have arrived while the batch was being sent
            if self.finished.is_set():
                return
            waiter = loop.create_future()
            self._waiters.append(waiter)
            if not await waiter:
                yield None


class Replies:
    """Every reply this worker is generating, the batch flusher, the heartbeat (which ends the
    replies of dead workers, app/heartbeat.py) and the fallback reaper of replies that recorded
    no worker and have not been written for `stale_after` seconds."""

    def __init__(
        self,
        *,
        db: Database,
        provider: Provider,
        flush_interval: float = 0.2,
        stale_after: float = 60.0,
        dead_after: float = 10.0,
        grace: float = 10.0,
        keep_alive: float = 15.0,
    ) -> None:
        self.db = db
        self.provider = provider
        self.flush_interval = flush_interval
        self.stale_after = stale_after
        self.grace = grace
        self.keep_alive = keep_alive  # seconds of silence after which followers get a ping
        self.heartbeat = Heartbeat(db=db, dead_after=dead_after)
        self.live: dict[str, LiveReply] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        # The row first: replies this worker begins must never look orphaned to the others.
        await self.heartbeat.beat()
        try:
            await self.reap()
        except Exception:
            log.exception("could not sweep stale replies at start; will retry")
        self._loops = [
            asyncio.create_task(self._every(self.flush_interval, self.flush)),
            asyncio.create_task(self._every(self.heartbeat.interval, self.heartbeat.beat)),
            asyncio.create_task(self._every(max(1.0, self.stale_after / 4), self.reap)),
        ]

    async def close(self) -> None:
        """Let running replies finish for a while, then cut them off as interrupted."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.grace)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self.heartbeat.stop()

    def begin(
        self,
        *,
        message_id: int,
        public_id: str,
        conversation_id: int,
        worker_id: str | None,
        request: ReplyRequest,
        provider: Provider | None = None,
        toolbox: Toolbox | None = None,
        tool_rounds: int = 3,
    ) -> LiveReply:
        reply = LiveReply(
            message_id=message_id,
            public_id=public_id,
            conversation_id=conversation_id,
            worker_id=worker_id,
        )
        self.live[public_id] = reply
        items = respond(provider or self.provider, request, toolbox, max_rounds=tool_rounds)
        task = asyncio.create_task(self._run(reply, items))
        reply.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return reply

    async def _run(
        self, reply: LiveReply, items: AsyncIterator[str | Finished | Products | ToolUse]
    ) -> None:
        status, finish, error = "complete", None, None
        reply.consuming = True
        try:
            async for item in items:
                if type(item) is str:  # the most of them by far: a piece of the text
                    if item:
                        reply.append(item)
                        for sink in reply.sinks[:]:  # a sink may go while another writes
                            await sink.push()
                elif isinstance(item, Finished):
                    reply.finish_reason = item.reason
                elif isinstance(item, ToolUse):
                    reply.tools.append(
                        {
                            "name": item.name,
                            "arguments": item.arguments,
                            "ok": item.ok,
                            "matched": item.matched,
                        }
                    )
                elif isinstance(item, Products):
                    reply.show(item.cards)
                    await self._save_extras(reply)
                    for sink in reply.sinks[:]:
                        await sink.push()
            finish = reply.finish_reason or "stop"
        except asyncio.CancelledError:
            reply.consuming = False
            if not reply.stop_requested:  # shutting down
                status, error = "error", "interrupted"
                await self._finish(reply, status, None, error)
                raise
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            status, finish = "stopped", "stopped"
        except ProviderError as exc:
            log.warning("reply %s failed: %s (%s)", reply.public_id, exc.code, exc.message)
            status, error = "error", exc.code
        except Exception:
            log.exception("reply %s failed unexpectedly", reply.public_id)
            status, error = "error", "internal_error"
        reply.consuming = False
        if reply.stop_requested and status == "complete":
            status, finish = "stopped", "stopped"
        await self._finish(reply, status, finish, error)

    async def _save_extras(self, reply: LiveReply) -> None:
        """The cards and tool uses, saved at once: a follower on another worker, a resume and
        the transcript read them from the row."""
        async with self.db.connection() as connection:
            await repo.save_reply_extras(
                connection,
                message_id=reply.message_id,
                worker_id=reply.worker_id,
                products=_json(reply.products),
                tools=_json(reply.tools),
            )

    async def _finish(
        self, reply: LiveReply, status: str, finish: str | None, error: str | None
    ) -> None:
        # The final state must reach the database; a brief outage is waited out.
        reply.finishing = True
        for attempt in range(8):
            try:
                async with self.db.connection() as connection:
                    await repo.finish_reply(
                        connection,
                        message_id=reply.message_id,
                        worker_id=reply.worker_id,
                        content=reply.text,
                        status=status,
                        finish_reason=finish,
                        error_code=error,
                        products=_json(reply.products),
                        tools=_json(reply.tools),
                        unanswered=_unanswered(reply, status, finish),
                    )
                break
            except Exception:
                log.exception("saving reply %s failed (attempt %d)", reply.public_id, attempt + 1)
                await asyncio.sleep(min(0.25 * 2**attempt, 5))
        self.live.pop(reply.public_id, None)
        reply.close(status, finish, error)

    async def flush(self) -> None:
        """One batched write of every reply's new text; notices replies stopped elsewhere."""
        now = time.monotonic()
        for reply in list(self.live.values()):
            reply.keep_alive(now, self.keep_alive)
        heartbeat = self.stale_after / 4
        # A reply being finished is left to its final write, which holds all its text: the
        # replies of a fast model were flushed in the moment before it (bench/ 9: 33 replies
        # in 16 flushes, of 967 turns).
        due = [
            r
            for r in list(self.live.values())
            if not r.finished.is_set()
            and not r.finishing
            and (len(r.text) != r.flushed or now - r.flushed_at >= heartbeat)
        ]
        if not due:
            return
        snapshot = [(r, len(r.text)) for r in due]
        async with self.db.connection() as connection:
            stopped = await repo.save_progress(
                connection, progress=[(r.message_id, r.text[:n], r.worker_id) for r, n in snapshot]
            )
        for reply, length in snapshot:
            reply.flushed, reply.flushed_at = length, now
            if reply.message_id in stopped:
                reply.stop()

    async def reap(self) -> None:
        older_than = utcnow() - timedelta(seconds=self.stale_after)
        keep = [r.message_id for r in self.live.values()]
        async with self.db.session() as session:
            count = await repo.reap_stale_replies(session, older_than=older_than, keep=keep)
            await repo.forget_dead_workers(session, dead_after=self.stale_after)
        if count:
            log.warning("marked %d abandoned streaming replies as interrupted", count)

    @staticmethod
    async def _every(seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                log.exception("background job %s failed; retrying", job.__name__)
