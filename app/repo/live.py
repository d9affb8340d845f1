"""Queries of live conversations (docs/live.md): who answers a conversation, its events, what a
live stream has not seen yet, the team's names and presence, and the shopper's presence.

Every change of who answers is one conditional UPDATE: two team members taking a conversation
at once both run it, the database lets one through (a row lock on PostgreSQL, one writer on
SQLite), and the other finds the row no longer matching and is told who has it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa

from app.models import ConversationEvent, new_public_id, utcnow
from app.repo.chat import conversations, messages
from app.repo.common import Executor, _rowcount, is_postgres
from app.repo.rows import ConversationRow, MessageRow, many, one

events: sa.Table = ConversationEvent.__table__  # type: ignore[attr-defined]

HANDLERS = ("assistant", "waiting", "team")


class EventRow(NamedTuple):
    id: int
    conversation_id: int
    kind: str
    name: str | None
    created_at: datetime


class Changed(NamedTuple):
    """The outcome of a change of who answers: the conversation as it now is, whether this
    call changed it, and why not when it did not (`taken`: another holds it; `ended`)."""

    conversation: ConversationRow | None
    changed: bool
    refusal: str | None = None


async def add_event(
    session: Executor, *, conversation_id: int, kind: str, name: str | None = None
) -> int:
    result = await session.execute(
        sa.insert(events)
        .values(conversation_id=conversation_id, kind=kind, name=name, created_at=utcnow())
        .returning(events.c.id)
    )
    return int(result.one()[0])


async def conversation_with_id(
    session: Executor, *, conversation_id: int
) -> ConversationRow | None:
    result = await session.execute(
        sa.select(conversations).where(conversations.c.id == conversation_id)
    )
    return one(ConversationRow, result.first())


async def shop_conversation(
    session: Executor, *, shop_id: int, public_id: str
) -> ConversationRow | None:
    result = await session.execute(
        sa.select(conversations).where(
            conversations.c.shop_id == shop_id, conversations.c.public_id == public_id
        )
    )
    return one(ConversationRow, result.first())


async def messages_after(
    session: Executor, *, conversation_id: int, after_id: int, limit: int = 100
) -> list[MessageRow]:
    result = await session.execute(
        sa.select(messages)
        .where(messages.c.conversation_id == conversation_id, messages.c.id > after_id)
        .order_by(messages.c.id)
        .limit(limit)
    )
    return many(MessageRow, result)


async def events_after(
    session: Executor, *, conversation_id: int, after_id: int, limit: int = 100
) -> list[EventRow]:
    result = await session.execute(
        sa.select(events)
        .where(events.c.conversation_id == conversation_id, events.c.id > after_id)
        .order_by(events.c.id)
        .limit(limit)
    )
    return [EventRow._make(row) for row in result]


async def last_ids(session: Executor, *, conversation_id: int) -> tuple[int, int]:
    """The conversation's last message id and last event id (0 for none)."""
    last_message = await session.execute(
        sa.select(sa.func.max(messages.c.id)).where(messages.c.conversation_id == conversation_id)
    )
    last_event = await session.execute(
        sa.select(sa.func.max(events.c.id)).where(events.c.conversation_id == conversation_id)
    )
    return int(last_message.one()[0] or 0), int(last_event.one()[0] or 0)


async def _change(
    session: Executor,
    conversation_id: int,
    sub: str | None,
    values: dict[str, Any],
    *,
    only_from: tuple[str, ...] = HANDLERS,
) -> Changed:
    """Apply `values` if the conversation has not ended and is held by nobody or by `sub`
    (any holder, with sub None: the shopper's own hand-over), and its handler is one of
    `only_from`."""
    condition = [
        conversations.c.id == conversation_id,
        conversations.c.status != "ended",
        conversations.c.handler.in_(only_from),
    ]
    if sub is not None:
        condition.append(
            sa.or_(conversations.c.assignee.is_(None), conversations.c.assignee == sub)
        )
    result = await session.execute(
        sa.update(conversations).where(*condition).values(**values).returning(*conversations.c)
    )
    row = one(ConversationRow, result.first())
    if row is not None:
        return Changed(row, True)
    found = await conversation_with_id(session, conversation_id=conversation_id)
    if found is None:
        return Changed(None, False, "missing")
    if found.status == "ended":
        return Changed(found, False, "ended")
    if sub is not None and found.assignee not in (None, sub):
        return Changed(found, False, "taken")
    return Changed(found, False, None)  # already as asked


async def hand_over(session: Executor, *, conversation_id: int) -> Changed:
    """The shopper (or the assistant) asks for a person: waiting, unless a person has it."""
    now = utcnow()
    return await _change(
        session,
        conversation_id,
        None,
        {"handler": "waiting", "waiting_since": now, "last_activity_at": now},
        only_from=("assistant",),
    )


async def take(session: Executor, *, conversation_id: int, sub: str) -> Changed:
    now = utcnow()
    return await _change(
        session,
        conversation_id,
        sub,
        {
            "handler": "team",
            "assignee": sub,
            "waiting_since": sa.func.coalesce(conversations.c.waiting_since, now),
        },
    )


async def hand_back(session: Executor, *, conversation_id: int, sub: str) -> Changed:
    return await _change(
        session,
        conversation_id,
        sub,
        {"handler": "assistant", "assignee": None, "waiting_since": None},
        only_from=("waiting", "team"),
    )


async def end_by_team(session: Executor, *, conversation_id: int, sub: str) -> Changed:
    now = utcnow()
    return await _change(
        session,
        conversation_id,
        sub,
        {"status": "ended", "ended_at": now, "last_activity_at": now},
    )


async def add_team_message(
    session: Executor, *, conversation_id: int, content: str, author: str
) -> MessageRow:
    now = utcnow()
    result = await session.execute(
        sa.insert(messages)
        .values(
            public_id=new_public_id(),
            conversation_id=conversation_id,
            role="team",
            content=content,
            status="complete",
            author=author,
            created_at=now,
            updated_at=now,
        )
        .returning(*messages.c)
    )
    message = one(MessageRow, result.first())
    assert message is not None
    await session.execute(
        sa.update(conversations)
        .where(conversations.c.id == conversation_id)
        .values(
            message_count=conversations.c.message_count + 1,
            last_activity_at=now,
            read_message_id=message.id,  # what the team writes, the team has read
        )
    )
    return message


async def save_contact(session: Executor, *, conversation_id: int, email: str) -> bool:
    """Whether the address is new for the conversation (the same one again changes nothing:
    no event, no notice, however often a page sends it)."""
    result = await session.execute(
        sa.update(conversations)
        .where(
            conversations.c.id == conversation_id,
            conversations.c.contact_email.is_distinct_from(email),
        )
        .values(contact_email=email)
    )
    return bool(_rowcount(result))


async def mark_read(session: Executor, *, conversation_id: int) -> None:
    last = (
        sa.select(sa.func.max(messages.c.id))
        .where(messages.c.conversation_id == conversation_id)
        .scalar_subquery()
    )
    await session.execute(
        sa.update(conversations)
        .where(conversations.c.id == conversation_id)
        .values(read_message_id=last)
    )


# ---- the shopper's presence --------------------------------------------------------------


async def touch_sessions(
    session: Executor, *, shop_id: int, session_ids: list[str], now: datetime, recent: timedelta
) -> int:
    """The shopper was around: page loads, heartbeats, open streams, gathered in one write per
    shop and skipped where the last one is more recent than `recent` (no write for most
    heartbeats). Keeps an active conversation from being abandoned. On PostgreSQL a row
    another transaction holds (a turn, a team reply) is skipped, not waited for: presence is
    written again within seconds, and the writer it would hold up is a shopper's turn."""
    due = sa.and_(
        conversations.c.shop_id == shop_id,
        conversations.c.session_id.in_(session_ids),
        conversations.c.status == "active",
        sa.or_(conversations.c.seen_at.is_(None), conversations.c.seen_at < now - recent),
    )
    if is_postgres(session):
        free = (
            sa.select(conversations.c.id)
            .where(due)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        where: sa.ColumnElement[bool] = conversations.c.id.in_(free)
    else:
        where = due
    result = await session.execute(
        sa.update(conversations).where(where).values(seen_at=now, last_activity_at=now)
    )
    return _rowcount(result)


__all__ = [
    "HANDLERS",
    "Changed",
    "EventRow",
    "add_event",
    "add_team_message",
    "conversation_with_id",
    "end_by_team",
    "events_after",
    "hand_back",
    "hand_over",
    "last_ids",
    "mark_read",
    "messages_after",
    "save_contact",
    "shop_conversation",
    "take",
    "touch_sessions",
]
