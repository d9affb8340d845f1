"""A shopper session's live stream (docs/live.md): everything that happens to its
conversation, replayed from the database after a cursor and then followed through the bus.

The cursor is `M.E`, or `M.E.O` in the middle of a reply: every message of the conversation up
to id M has been sent whole (with O: message M is a reply sent up to its O-th character), and
every event up to id E. Messages and events are read from the database each time a notice
says something changed (and every so often without one), so a lost notice, a reload, a
dropped connection or a restarted worker costs a re-read, never an event.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from app import repo, turns
from app.conversations import notices
from app.conversations.handover import DEFAULT_NAME
from app.models import aware, iso, utcnow
from app.repo.live import EventRow
from app.repo.rows import ConversationRow, MessageRow
from app.state import AppState
from app.streaming import POLL_INTERVAL, sse

KEEP_ALIVE = 20.0
# Without a notice a stream reads the database this often anyway (a notice lost to a failed
# publish), and notes the shopper as present.
REREAD_EVERY = 30.0


@dataclass
class Cursor:
    message: int = 0
    event: int = 0
    offset: int | None = None

    def __str__(self) -> str:
        base = f"{self.message}.{self.event}"
        return base if self.offset is None else f"{base}.{self.offset}"

    @classmethod
    def parse(cls, raw: str | None) -> Cursor | None:
        """A cursor this stream gave out, or None (start from now... or from the beginning:
        see `start`). Anything else is refused by the schema before it gets here."""
        if not raw:
            return None
        parts = raw.split(".")
        if len(parts) not in (2, 3) or not all(p.isascii() and p.isdigit() for p in parts):
            return None
        numbers = [int(p) for p in parts]
        if any(n > 2**62 for n in numbers):
            return None
        return cls(numbers[0], numbers[1], numbers[2] if len(numbers) == 3 else None)


def message_json(message: MessageRow) -> dict[str, Any]:
    """A message as the history and the live stream give it. A dict, not
    schemas.storefront.Message: the history is a hot path (tests hold the two to each other).
    client_message_id: the shopper's own id of the message (None for replies), with which the
    widget retries a failed last turn after a reload; products: a reply's cards, as its
    `products` event gave them; author: a team member's name, on their messages."""
    return {
        "id": message.public_id,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "created_at": iso(message.created_at),
        "client_message_id": message.client_message_id,
        "products": json.loads(message.products) if message.products else [],
        "author": message.author,
    }


class SessionStream:
    def __init__(self, state: AppState, caller: turns.Caller, session_id: str) -> None:
        self.state = state
        self.caller = caller
        self.shop_id = caller.shop_id
        self.session_id = session_id
        self.id = uuid.uuid4().hex[:12]
        self.newer: set[str] = set()  # streams of this session opened after this one
        self.conversation: ConversationRow | None = None

    async def _read_conversation(self) -> ConversationRow | None:
        async with self.state.db.connection() as connection:
            found = await repo.session_conversation(
                connection, shop_id=self.shop_id, session_id=self.session_id
            )
        return turns.visible(found, self.caller)  # a logged-in customer's is theirs alone

    async def _state(self) -> bytes:
        conversation = self.conversation
        online = False
        assignee = None
        if conversation is not None:
            async with self.state.db.connection() as connection:
                online = await repo.team_online(connection, shop_id=self.shop_id, now=utcnow()) > 0
                if conversation.assignee:
                    assignee = (
                        await repo.staff_name(
                            connection, shop_id=self.shop_id, sub=conversation.assignee
                        )
                        or DEFAULT_NAME
                    )
        data = {
            "session_id": self.session_id,
            "status": conversation.status if conversation else "unknown",
            "handler": conversation.handler if conversation else "assistant",
            "assignee": assignee,
            "team_online": online,
            "contact_email": bool(conversation and conversation.contact_email),
        }
        return sse("state", data)

    async def events(self, cursor: Cursor | None) -> AsyncGenerator[bytes, None]:
        state = self.state
        deadline = time.monotonic() + state.settings.live_stream_seconds
        channel = notices.session_channel(self.shop_id, self.session_id)
        async with state.bus.subscribe(channel) as subscription:
            await self._say(notices.HELLO)
            try:
                self.conversation = await self._read_conversation()
                if cursor is None:
                    # A first connection starts from now: the history gives what came before.
                    cursor = Cursor()
                    if self.conversation is not None:
                        async with state.db.connection() as connection:
                            cursor.message, cursor.event = await repo.last_ids(
                                connection, conversation_id=self.conversation.id
                            )
                        # Again: a change saved since the first read (a turn's hand-over, as
                        # its reply starts) is before the cursor, so only the state tells it.
                        self.conversation = await self._read_conversation()
                yield b"retry: 1000\n\n" + await self._state_with_id(cursor)
                self._present()
                # Spread over the interval: streams opened together do not read together.
                next_read = time.monotonic() + REREAD_EVERY * (0.5 + random.random())
                while True:
                    async for chunk in self._catch_up(cursor):
                        yield chunk
                    left = deadline - time.monotonic()
                    if left <= 0:
                        yield sse("closed", {"reason": "timeout"}, str(cursor))
                        return
                    try:
                        notice = await subscription.next(
                            min(left, KEEP_ALIVE, next_read - time.monotonic())
                        )
                    except StopAsyncIteration:  # the bus closed: the worker is stopping
                        return
                    if notice is None:
                        if time.monotonic() >= next_read:
                            next_read = time.monotonic() + REREAD_EVERY
                            self._present()
                            self.conversation = await self._read_conversation()
                        else:
                            yield b": keep-alive\n\n"
                        continue
                    if notice.payload is None:  # notices may have been missed: read again
                        self.conversation = await self._read_conversation()
                        continue
                    said = notices.decode(notice.payload)
                    kind, other = said.get("k"), said.get("s")
                    if kind == notices.TYPING:
                        yield sse("typing", {"name": str(said.get("name", ""))[:80]})
                    elif kind == notices.HELLO and other != self.id:
                        self.newer.add(str(other))
                        if len(self.newer) >= state.settings.live_streams_per_session:
                            yield sse("closed", {"reason": "replaced"}, str(cursor))
                            return
                    elif kind == notices.BYE:
                        self.newer.discard(str(other))
                    elif kind == notices.TEAM and self.conversation is not None:
                        yield await self._state_with_id(cursor)  # the team came online
                    elif kind == notices.CHANGED and self.conversation is None:
                        self.conversation = await self._read_conversation()
                        if self.conversation is not None:
                            yield await self._state_with_id(cursor)
            finally:
                await self._say(notices.BYE)

    async def _say(self, kind: str) -> None:
        channel = notices.session_channel(self.shop_id, self.session_id)
        try:
            await self.state.bus.publish(channel, notices.encode(kind, s=self.id))
        except Exception:  # the cap on streams is a courtesy; the stream goes on
            pass

    def _present(self) -> None:
        if self.conversation is not None:
            self.state.presence.seen(self.shop_id, self.session_id)

    async def _state_with_id(self, cursor: Cursor) -> bytes:
        chunk = await self._state()
        return f"id: {cursor}\n".encode() + chunk

    async def _catch_up(self, cursor: Cursor) -> AsyncGenerator[bytes, None]:
        """What the cursor has not seen, oldest first, until nothing is left."""
        if self.conversation is None:
            return
        conversation_id = self.conversation.id
        while True:
            async with self.state.db.connection() as connection:
                after = cursor.message - 1 if cursor.offset is not None else cursor.message
                found = await repo.messages_after(
                    connection, conversation_id=conversation_id, after_id=after, limit=50
                )
                happened = await repo.events_after(
                    connection, conversation_id=conversation_id, after_id=cursor.event, limit=50
                )
            if not found and not happened:
                return
            items: list[tuple[Any, int, MessageRow | EventRow]] = [
                (aware(m.created_at), m.id, m) for m in found
            ] + [(aware(e.created_at), e.id, e) for e in happened]
            items.sort(key=lambda item: (item[0], isinstance(item[2], EventRow)))
            for _, _, item in items:
                if isinstance(item, EventRow):
                    cursor.event = item.id
                    yield sse(
                        "status",
                        {"kind": item.kind, "name": item.name, "at": iso(item.created_at)},
                        str(cursor),
                    )
                    self.conversation = await self._read_conversation()
                    if self.conversation is None:
                        return
                    yield await self._state()
                    continue
                if item.role == "assistant" and item.status == "streaming":
                    async for chunk in self._relay(item, cursor):
                        yield chunk
                    break  # read again: the reply took a while, more may have come
                cursor.message, cursor.offset = item.id, None
                yield sse("message", message_json(item), str(cursor))

    async def _relay(self, reply: MessageRow, cursor: Cursor) -> AsyncGenerator[bytes, None]:
        """A reply being generated: from this worker as it comes, else from the database."""
        offset = cursor.offset if cursor.offset is not None and cursor.message == reply.id else 0
        cursor.message, cursor.offset = reply.id, offset
        public_id = reply.public_id
        user = ""
        if reply.reply_to_id is not None:
            async with self.state.db.connection() as connection:
                asked = await repo.get_message_by_id(connection, message_id=reply.reply_to_id)
            user = asked.public_id if asked else ""
        yield sse(
            "reply", {"assistant_message_id": public_id, "user_message_id": user}, str(cursor)
        )
        live = self.state.replies.live.get(public_id)
        shown: object = None
        if live is not None:
            async for batch in live.follow(offset):
                if batch is None:
                    yield b": keep-alive\n\n"
                    continue
                chunks = []
                if live.products is not shown and live.products is not None:
                    shown = live.products
                    data = {"assistant_message_id": public_id, "products": live.products}
                    chunks.append(sse("products", data, str(cursor)))
                for piece in batch:
                    cursor.offset = (cursor.offset or 0) + len(piece)
                    data = {"assistant_message_id": public_id, "text": piece}
                    chunks.append(sse("delta", data, str(cursor)))
                if chunks:
                    yield b"".join(chunks)
        else:
            cards: str | None = None
            while True:
                async with self.state.db.connection() as connection:
                    saved = await repo.get_message_by_id(connection, message_id=reply.id)
                if saved is None:
                    return
                if saved.products is not None and saved.products != cards:
                    cards = saved.products
                    data = {"assistant_message_id": public_id, "products": json.loads(cards)}
                    yield sse("products", data, str(cursor))
                if len(saved.content) > (cursor.offset or 0):
                    piece = saved.content[cursor.offset or 0 :]
                    cursor.offset = len(saved.content)
                    data = {"assistant_message_id": public_id, "text": piece}
                    yield sse("delta", data, str(cursor))
                if saved.status != "streaming":
                    break
                await asyncio.sleep(POLL_INTERVAL)
        async with self.state.db.connection() as connection:
            final = await repo.get_message_by_id(connection, message_id=reply.id)
        if final is not None and final.status == "streaming":
            # Saved a moment after this worker's live copy ended: wait for the row.
            for _ in range(40):
                await asyncio.sleep(0.05)
                async with self.state.db.connection() as connection:
                    final = await repo.get_message_by_id(connection, message_id=reply.id)
                if final is None or final.status != "streaming":
                    break
        cursor.offset = None
        if final is not None:
            yield sse("message", message_json(final), str(cursor))
