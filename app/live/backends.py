"""The bus across workers and machines: PostgreSQL LISTEN/NOTIFY, Redis pub/sub, and the
choice between them and the in-process bus (app/live/bus.py).

Each worker holds one listening connection on one backend channel; a notice carries its bus
channel inside (`channel + "\\n" + payload`) and is fanned out in the process, so subscribing
costs no round trip. A worker's own publishes come back to it through that connection too,
and that is how they reach its subscribers: every notice is delivered once, by one path, in
the order the backend gives every worker. A lost connection is taken up again with backoff
and jitter, and every subscription then gets a resync notice.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
import uuid
from abc import abstractmethod

import asyncpg
import redis.asyncio as aioredis
import sqlalchemy as sa
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from app.config import Settings
from app.db import Database
from app.live.bus import Bus, BusError, InProcessBus, frame, unframe

log = logging.getLogger("app.live.bus")

PG_CHANNEL = "chat_bus"
REDIS_CHANNEL = "storefront-chat:bus"
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 5.0
CONNECT_TIMEOUT = 5.0
# A listening connection that has said nothing for this long is asked whether it is there: a
# connection cut without a word (a partition) would otherwise be listened to forever.
KEEPALIVE = 10.0

_NOTIFY = sa.text("SELECT pg_notify(:channel, :payload)")


@functools.lru_cache(maxsize=16)
def _notify_many(count: int) -> sa.TextClause:
    calls = ", ".join(f"pg_notify(:channel, :m{n}) AS n{n}" for n in range(count))
    return sa.text(f"SELECT {calls}")


class ListeningBus(Bus):
    """One listening connection, kept: connected at start, watched, and taken up again."""

    def __init__(self, *, queue_limit: int) -> None:
        super().__init__(queue_limit=queue_limit)
        self._connected = False
        self._task: asyncio.Task[None] | None = None
        self.reconnects = 0

    @property
    def connected(self) -> bool:
        return self._connected

    @abstractmethod
    async def _listen(self) -> None:
        """Open the listening connection; raises OSError or the backend's error."""

    @abstractmethod
    async def _watch(self) -> None:
        """Return once the listening connection is lost."""

    @abstractmethod
    async def _hang_up(self) -> None:
        """Let the listening connection go (it may be broken already)."""

    async def start(self) -> None:
        # The first attempt is awaited (subscribers of a started bus hear what follows), but a
        # backend away at start does not stop the app: it is tried again in the background.
        try:
            await self._listen()
            self._connected = True
        except Exception as exc:
            log.warning("the %s bus cannot listen yet (%s); retrying", self.backend, exc)
        self._task = asyncio.create_task(self._keep())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._connected = False
        await self._hang_up()
        await super().close()

    async def _keep(self) -> None:
        backoff, lost_at = FIRST_BACKOFF, time.monotonic()
        while True:
            if not self._connected:
                await self._hang_up()
                try:
                    await self._listen()
                except Exception as exc:
                    log.debug("the %s bus cannot listen yet: %s", self.backend, exc)
                    await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                    backoff = min(backoff * 2, MAX_BACKOFF)
                    continue
                self._connected, backoff = True, FIRST_BACKOFF
                self.reconnects += 1
                log.info(
                    "the %s bus listens again after %.1f s",
                    self.backend,
                    time.monotonic() - lost_at,
                )
                # Whatever was published while nobody listened is in the database only.
                self.resync()
            try:
                await self._watch()
            except Exception as exc:
                log.debug("the %s bus's watch failed: %s", self.backend, exc)
            self._connected, lost_at = False, time.monotonic()
            log.warning("the %s bus lost its listening connection; reconnecting", self.backend)


def asyncpg_dsn(url: str) -> str:
    """SQLAlchemy's postgresql+asyncpg:// URL as asyncpg's own DSN."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresBus(ListeningBus):
    """LISTEN on a connection of its own (asyncpg's listeners need one, outside SQLAlchemy's
    pool); NOTIFY through the app's connections (Database.connection(): no connection more
    per worker, and no queue of publishes behind one; bench/bus.py measures it against a
    connection of its own)."""

    backend = "postgres"

    def __init__(self, db: Database, *, channel: str = PG_CHANNEL, queue_limit: int = 256):
        super().__init__(queue_limit=queue_limit)
        self.db = db
        self.channel = channel
        self.dsn = asyncpg_dsn(db.url)
        self.listener: asyncpg.Connection | None = None
        self._lost = asyncio.Event()

    async def publish(self, channel: str, payload: str) -> None:
        message = frame(channel, payload)
        try:
            async with self.db.connection() as connection:
                await connection.execute(_NOTIFY, {"channel": self.channel, "payload": message})
        except (DBAPIError, OSError) as exc:
            raise BusError(f"could not notify {channel}: {type(exc).__name__}") from exc

    async def publish_many(self, notices: list[tuple[str, str]]) -> None:
        """One statement of several pg_notify calls: one round trip, not one each."""
        if len(notices) < 2:
            for channel, payload in notices:
                await self.publish(channel, payload)
            return
        messages = [frame(channel, payload) for channel, payload in notices]
        params: dict[str, str] = {"channel": self.channel}
        params.update({f"m{n}": message for n, message in enumerate(messages)})
        try:
            async with self.db.connection() as connection:
                await connection.execute(_notify_many(len(messages)), params)
        except (DBAPIError, OSError) as exc:
            raise BusError(f"could not notify: {type(exc).__name__}") from exc

    def _notified(self, _connection: object, _pid: int, _channel: str, message: object) -> None:
        if isinstance(message, str) and (framed := unframe(message)) is not None:
            self.deliver(*framed)

    async def _listen(self) -> None:
        lost = self._lost = asyncio.Event()
        listener = await asyncpg.connect(
            self.dsn,
            timeout=CONNECT_TIMEOUT,
            server_settings={"application_name": "storefront-chat bus"},
        )
        try:
            listener.add_termination_listener(lambda _connection: lost.set())
            await listener.add_listener(self.channel, self._notified)
        except BaseException:
            listener.terminate()
            raise
        self.listener = listener

    async def _watch(self) -> None:
        listener = self.listener
        while listener is not None and not listener.is_closed():
            try:
                await asyncio.wait_for(self._lost.wait(), KEEPALIVE)
                return
            except TimeoutError:
                await listener.fetchval("SELECT 1", timeout=CONNECT_TIMEOUT)

    async def _hang_up(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None and not listener.is_closed():
            try:
                await asyncio.wait_for(listener.close(), 1.0)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                listener.terminate()


def redis_channel(url: str) -> str:
    """Pub/sub ignores Redis's database numbers: deployments that share a Redis by database
    number share the bus unless the number is in the channel's name."""
    return f"{REDIS_CHANNEL}:{parse_url(url).get('db', 0)}"


class RedisBus(ListeningBus):
    """SUBSCRIBE on a connection of its own, with redis-py's own silent reconnection turned
    off (notices published meanwhile would be lost unseen); PUBLISH through a pooled client."""

    backend = "redis"

    def __init__(self, url: str, *, channel: str | None = None, queue_limit: int = 256):
        super().__init__(queue_limit=queue_limit)
        self.url = url
        self.channel = channel or redis_channel(url)
        self.client_name = f"storefront-chat-bus-{uuid.uuid4().hex[:12]}"
        self.publisher = aioredis.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        self.listener: aioredis.Redis | None = None
        self.pubsub: aioredis.client.PubSub | None = None

    async def publish(self, channel: str, payload: str) -> None:
        message = frame(channel, payload)
        try:
            await self.publisher.publish(self.channel, message)
        except (RedisError, OSError) as exc:
            raise BusError(f"could not publish {channel}: {type(exc).__name__}") from exc

    async def _listen(self) -> None:
        self.listener = aioredis.Redis.from_url(
            self.url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            client_name=self.client_name,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        self.pubsub = self.listener.pubsub(ignore_subscribe_messages=True)
        await self.pubsub.subscribe(self.channel)
        # The subscription's confirmation, so that a started bus hears what follows.
        await self.pubsub.get_message(timeout=CONNECT_TIMEOUT)

    async def _watch(self) -> None:
        pubsub = self.pubsub
        heard, pinged = time.monotonic(), 0.0
        while pubsub is not None:
            message = await pubsub.get_message(timeout=1.0)
            now = time.monotonic()
            if message is not None:
                heard, pinged = now, 0.0
                if message.get("type") == "message" and isinstance(message["data"], str):
                    if (framed := unframe(message["data"])) is not None:
                        self.deliver(*framed)
            elif pinged and now - pinged > CONNECT_TIMEOUT:
                return  # asked, and no answer: the connection is gone
            elif not pinged and now - heard >= KEEPALIVE:
                await pubsub.ping()
                pinged = now

    async def _hang_up(self) -> None:
        pubsub, listener, self.pubsub, self.listener = self.pubsub, self.listener, None, None
        try:
            if pubsub is not None:
                await pubsub.aclose()
            if listener is not None:
                await listener.aclose()
        except (RedisError, OSError):
            pass

    async def close(self) -> None:
        await super().close()
        await self.publisher.aclose()


def make_bus(settings: Settings, db: Database) -> Bus:
    """Redis when it is configured, else PostgreSQL's LISTEN/NOTIFY, else in-process (SQLite:
    one process)."""
    if settings.redis_url:
        return RedisBus(settings.redis_url)
    if db.postgres:
        return PostgresBus(db)
    return InProcessBus()
