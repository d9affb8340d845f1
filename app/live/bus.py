"""The pub/sub bus: says fast that something happened on a channel, to every worker.

The database is the source of truth; a notice only tells a subscriber to read it. A notice
that may have been missed (a lost connection, a subscriber too slow to keep up) becomes a
resync notice, `Notice(None)`: read again from the database, never silently lost. Publish
after the write it announces has committed, so that the reader finds it.

Backends: in-process (here; SQLite, one process), PostgreSQL LISTEN/NOTIFY and Redis pub/sub
(app/live/backends.py, which also chooses one from the settings).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

# PostgreSQL refuses a NOTIFY payload of 8,000 bytes or more; the channel's name and a newline
# travel in it too.
MAX_PAYLOAD_BYTES = 7_000
MAX_CHANNEL_LENGTH = 100
QUEUE_LIMIT = 256


class BusError(Exception):
    """A notice could not be published: the backend is out of reach."""


@dataclass(frozen=True, slots=True)
class Notice:
    """Something happened on the channel (`payload`), or, with None: re-read, you may have
    missed notices."""

    payload: str | None


RESYNC = Notice(None)


def check_channel(channel: str) -> None:
    if not channel or len(channel) > MAX_CHANNEL_LENGTH or not channel.isascii():
        raise ValueError(f"a bus channel is 1 to {MAX_CHANNEL_LENGTH} ASCII characters")
    if not channel.isprintable() or " " in channel:
        raise ValueError("a bus channel has no spaces or control characters")


def frame(channel: str, payload: str) -> str:
    """The channel and payload as one message of the backend's one channel."""
    check_channel(channel)
    if len(payload.encode()) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"a bus payload is at most {MAX_PAYLOAD_BYTES} bytes")
    return f"{channel}\n{payload}"


def unframe(message: str) -> tuple[str, str] | None:
    channel, newline, payload = message.partition("\n")
    return (channel, payload) if newline and channel else None


class Subscription:
    """The notices of one channel for one subscriber, as an async iterator. Its queue is
    bounded: a subscriber that falls `limit` behind loses what was queued and gets one resync
    notice instead, so the publisher never waits and memory never grows."""

    def __init__(self, channel: str, limit: int = QUEUE_LIMIT) -> None:
        self.channel = channel
        self.limit = limit
        self.overflows = 0
        self._queue: deque[Notice] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False

    def put(self, notice: Notice) -> None:
        """Queue a notice; never blocks."""
        if self._ended:
            return
        if notice.payload is None:
            self._queue.clear()  # a resync stands for everything before it
        elif len(self._queue) >= self.limit:
            self.overflows += 1
            self._queue.clear()
            notice = RESYNC
        self._queue.append(notice)
        self._wake()

    def end(self) -> None:
        self._ended = True
        self._queue.clear()
        self._wake()

    @property
    def ended(self) -> bool:
        return self._ended

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Notice:
        while not self._queue:
            if self._ended:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._queue.popleft()

    async def next(self, timeout: float) -> Notice | None:
        """The next notice, or None after `timeout` seconds without one. Waits on a plain
        future with a timer: no task per wait (a thousand idle streams wait at once)."""
        if not self._queue:
            if self._ended:
                raise StopAsyncIteration
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(max(0.0, timeout), _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
            if not self._queue:
                if self._ended:
                    raise StopAsyncIteration
                return None
        return self._queue.popleft()

    def pending(self) -> int:
        return len(self._queue)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Bus(ABC):
    """Channels' notices fanned out to this process's subscriptions. Every notice reaches every
    subscription of its channel once, its publisher's own included."""

    backend = "in-process"

    def __init__(self, *, queue_limit: int = QUEUE_LIMIT) -> None:
        self.queue_limit = queue_limit
        self._channels: dict[str, set[Subscription]] = {}

    @abstractmethod
    async def start(self) -> None:
        """Ready to publish and to receive."""

    async def close(self) -> None:
        """Ends every subscription (their iterators stop) and lets the backend go."""
        for subscriptions in self._channels.values():
            for subscription in subscriptions:
                subscription.end()
        self._channels.clear()

    @abstractmethod
    async def publish(self, channel: str, payload: str) -> None:
        """Tell every subscriber of `channel`, on every worker; ValueError for a channel or
        payload over its limit, BusError when the backend cannot be reached."""

    async def publish_many(self, notices: list[tuple[str, str]]) -> None:
        """Several notices at once (one round trip where the backend allows)."""
        for channel, payload in notices:
            await self.publish(channel, payload)

    @property
    def connected(self) -> bool:
        """Whether notices are flowing now (a remote backend may be reconnecting)."""
        return True

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        """The channel's notices from now on, for one reader. Subscribe first, then read from
        the database what came before: nothing falls between the two."""
        check_channel(channel)
        subscription = Subscription(channel, self.queue_limit)
        self._channels.setdefault(channel, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._channels.get(channel)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._channels[channel]
            subscription.end()

    def subscriptions(self) -> int:
        """How many subscriptions this process holds (tests: none is left behind)."""
        return sum(len(subscribers) for subscribers in self._channels.values())

    def deliver(self, channel: str, payload: str) -> None:
        subscribers = self._channels.get(channel)
        if subscribers:
            notice = Notice(payload)
            for subscription in subscribers:
                subscription.put(notice)

    def resync(self) -> None:
        """Every subscription may have missed notices (the backend's connection was lost)."""
        for subscribers in self._channels.values():
            for subscription in subscribers:
                subscription.put(RESYNC)

    def status(self) -> dict[str, object]:
        """For /readyz: which backend, and whether it is connected."""
        return {"backend": self.backend, "connected": self.connected}


class InProcessBus(Bus):
    """One process only (SQLite): a publish is handed straight to the subscriptions."""

    async def start(self) -> None:
        pass  # nothing to connect to

    async def publish(self, channel: str, payload: str) -> None:
        frame(channel, payload)
        self.deliver(channel, payload)
