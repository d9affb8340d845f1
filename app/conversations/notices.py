"""The bus channels of live conversations, and publishing to them.

A session's channel wakes the streams of that shopper session (any tab, device or worker); a
shop's inbox channel wakes its team's inboxes. A notice only says "read again" (or carries
what is never stored: who is typing, a stream saying hello or goodbye); what it announces is
in the database first, so a notice lost with a dropped connection costs a re-read, nothing
more (app/live/bus.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine
from typing import Any, NamedTuple, Protocol

from app.live.bus import Bus, BusError

log = logging.getLogger("app.conversations")

# What a session's notice says, in "k".
CHANGED = "c"  # messages or events to read
TYPING = "t"  # a team member types: "name"
HELLO = "h"  # a stream opened: "s" (its id)
BYE = "b"  # a stream closed: "s"
TEAM = "o"  # the team came online: the stream tells its state again

_pending: set[asyncio.Task[None]] = set()


def session_channel(shop_id: int, session_id: str) -> str:
    return f"s:{shop_id}:{session_id}"


def inbox_channel(shop_id: int) -> str:
    return f"i:{shop_id}"


def encode(kind: str, **fields: Any) -> str:
    return json.dumps({"k": kind, **fields}, separators=(",", ":"))


def decode(payload: str) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def _publish(bus: Bus, notices: list[tuple[str, str]]) -> None:
    try:
        await bus.publish_many(notices)
    except BusError as exc:
        # The change is saved; streams find it on their next read (each re-reads the
        # database every so often as well).
        log.warning("a live notice was not published: %s", exc)


class Conversation(Protocol):
    """What a notice names of a conversation (a row, or the sweeper's tuple of it)."""

    @property
    def shop_id(self) -> int: ...
    @property
    def session_id(self) -> str: ...
    @property
    def public_id(self) -> str: ...


def _changed(conversation: Conversation, kind: str) -> list[tuple[str, str]]:
    """Its session's streams and its shop's inboxes read again; `kind` is what happened
    (for the inbox)."""
    inbox = json.dumps({"conversation_id": conversation.public_id, "kind": kind})
    return [
        (session_channel(conversation.shop_id, conversation.session_id), encode(CHANGED)),
        (inbox_channel(conversation.shop_id), inbox),
    ]


async def changed(bus: Bus, conversation: Conversation, kind: str) -> None:
    """Something of the conversation was saved: tell its streams and its shop's inboxes."""
    await _publish(bus, _changed(conversation, kind))


class Abandoned(NamedTuple):
    id: int
    shop_id: int
    session_id: str
    public_id: str


async def abandoned(bus: Bus, conversations: list[tuple[int, int, str, str]]) -> None:
    """The sweeper abandoned these (id, shop id, session id, public id): one statement."""
    items = [n for c in conversations for n in _changed(Abandoned(*c), "abandoned")]
    await _publish_batches(bus, items)


async def team_online(bus: Bus, *, shop_id: int, session_ids: list[str]) -> None:
    """Nobody of the shop's team was online and now one is: these sessions' streams tell
    their shoppers (the email offer goes)."""
    items = [(session_channel(shop_id, s), encode(TEAM)) for s in session_ids]
    await _publish_batches(bus, items)


async def _publish_batches(bus: Bus, items: list[tuple[str, str]]) -> None:
    for start in range(0, len(items), BATCH_MOST):
        await _publish(bus, items[start : start + BATCH_MOST])


async def inbox_changed(bus: Bus, *, shop_id: int, conversation: str, kind: str) -> None:
    """For the team's inboxes only (a reply ended: the shopper's streams follow it already)."""
    payload = json.dumps({"conversation_id": conversation, "kind": kind})
    await _publish(bus, [(inbox_channel(shop_id), payload)])


def soon(work: Coroutine[Any, Any, None]) -> None:
    """Publish without making the request wait for it (a turn's answer starts first)."""
    task = asyncio.get_running_loop().create_task(work)
    _pending.add(task)
    task.add_done_callback(_pending.discard)


# The notices of turns, gathered for BATCH_EVERY and sent together: one statement (one
# NOTIFY round trip, one commit of PostgreSQL's notification queue) for every turn of that
# time on this worker, not one a turn; the same notice twice in a batch goes once.
BATCH_EVERY = 0.02
BATCH_MOST = 100
_batches: dict[int, tuple[Bus, dict[tuple[str, str], None]]] = {}


def _send_batch(key: int) -> None:
    bus, queued = _batches.pop(key)
    items = list(queued)
    for start in range(0, len(items), BATCH_MOST):
        soon(_publish(bus, items[start : start + BATCH_MOST]))


def _later(bus: Bus, items: list[tuple[str, str]]) -> None:
    key = id(bus)
    batch = _batches.get(key)
    if batch is None:
        batch = _batches[key] = (bus, {})
        asyncio.get_running_loop().call_later(BATCH_EVERY, _send_batch, key)
    for item in items:
        batch[1][item] = None


def changed_later(bus: Bus, conversation: Conversation, kind: str) -> None:
    """`changed`, in the next batch (a turn: its answer does not wait, nor pay a round trip)."""
    _later(bus, _changed(conversation, kind))


def inbox_changed_later(bus: Bus, *, shop_id: int, conversation: str, kind: str) -> None:
    payload = json.dumps({"conversation_id": conversation, "kind": kind})
    _later(bus, [(inbox_channel(shop_id), payload)])


async def typing(bus: Bus, *, shop_id: int, session_id: str, name: str) -> None:
    await _publish(bus, [(session_channel(shop_id, session_id), encode(TYPING, name=name))])
