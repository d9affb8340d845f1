"""Queries of the team (docs/live.md): the inbox's queues, team members' names and presence."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.models import StaffMember
from app.repo.chat import conversations, messages
from app.repo.common import Executor, is_postgres
from app.repo.rows import ConversationRow, many

staff: sa.Table = StaffMember.__table__  # type: ignore[attr-defined]

# The team is online while one of them had the inbox open this recently; a shopper while their
# page beat or held a stream.
ONLINE_WITHIN = timedelta(seconds=60)
INBOX_QUEUE = 100
ASSISTANT_QUEUE = 50


class InboxRows(NamedTuple):
    counts: dict[str, int]
    queues: dict[str, list[ConversationRow]]
    last: dict[int, tuple[str, str, datetime]]  # conversation id: its last message
    # conversation id: its last shopper message's id and when it was written
    last_from_shopper: dict[int, tuple[int, datetime]]


async def inbox(session: Executor, *, shop_id: int) -> InboxRows:
    """The shop's conversations by queue: waiting for a person (oldest waiting first), held
    by the team, and the assistant's active ones (latest first), with their counts."""
    open_ = conversations.c.status != "ended"
    mine = conversations.c.shop_id == shop_id
    queues: dict[str, list[ConversationRow]] = {}
    for handler in ("waiting", "team"):
        result = await session.execute(
            sa.select(conversations)
            .where(mine, conversations.c.handler == handler, open_)
            .order_by(conversations.c.waiting_since, conversations.c.id)
            .limit(INBOX_QUEUE)
        )
        queues[handler] = many(ConversationRow, result)
    result = await session.execute(
        sa.select(conversations)
        .where(mine, conversations.c.handler == "assistant", conversations.c.status == "active")
        .order_by(conversations.c.last_activity_at.desc())
        .limit(ASSISTANT_QUEUE)
    )
    queues["assistant"] = many(ConversationRow, result)
    counted = await session.execute(
        sa.select(conversations.c.handler, sa.func.count())
        .where(
            mine,
            sa.or_(
                sa.and_(conversations.c.handler != "assistant", open_),
                conversations.c.status == "active",
            ),
        )
        .group_by(conversations.c.handler)
    )
    counts = {"waiting": 0, "team": 0, "assistant": 0}
    counts.update({handler: int(n) for handler, n in counted})
    ids = [c.id for queue in queues.values() for c in queue]
    last: dict[int, tuple[str, str, datetime]] = {}
    from_shopper: dict[int, tuple[int, datetime]] = {}
    if ids:
        newest = (
            sa.select(sa.func.max(messages.c.id))
            .where(messages.c.conversation_id.in_(ids))
            .group_by(messages.c.conversation_id)
        )
        result = await session.execute(
            sa.select(
                messages.c.conversation_id,
                messages.c.role,
                messages.c.content,
                messages.c.created_at,
            ).where(messages.c.id.in_(newest))
        )
        last = {row[0]: (row[1], row[2], row[3]) for row in result}
        result = await session.execute(
            sa.select(
                messages.c.conversation_id,
                sa.func.max(messages.c.id),
                sa.func.max(messages.c.created_at),
            )
            .where(messages.c.conversation_id.in_(ids), messages.c.role == "user")
            .group_by(messages.c.conversation_id)
        )
        from_shopper = {row[0]: (int(row[1]), row[2]) for row in result}
    return InboxRows(counts, queues, last, from_shopper)


# ---- the team ----------------------------------------------------------------------------


async def staff_name(session: Executor, *, shop_id: int, sub: str) -> str | None:
    result = await session.execute(
        sa.select(staff.c.display_name).where(staff.c.shop_id == shop_id, staff.c.sub == sub)
    )
    row = result.first()
    return None if row is None else row[0]


async def staff_names(session: Executor, *, shop_id: int, subs: set[str]) -> dict[str, str]:
    if not subs:
        return {}
    result = await session.execute(
        sa.select(staff.c.sub, staff.c.display_name).where(
            staff.c.shop_id == shop_id, staff.c.sub.in_(sorted(subs))
        )
    )
    return {sub: name for sub, name in result if name}


def _upsert_staff(session: Executor, values: dict[str, Any], update: list[str]) -> Any:
    insert = postgresql.insert if is_postgres(session) else sqlite.insert
    statement = insert(staff).values(**values)
    return statement.on_conflict_do_update(
        index_elements=[staff.c.shop_id, staff.c.sub],
        set_={name: statement.excluded[name] for name in update},
    )


async def set_staff_name(session: Executor, *, shop_id: int, sub: str, name: str) -> None:
    await session.execute(
        _upsert_staff(
            session, {"shop_id": shop_id, "sub": sub, "display_name": name}, ["display_name"]
        )
    )


async def staff_seen(session: Executor, *, shop_id: int, sub: str, now: datetime) -> None:
    await session.execute(
        _upsert_staff(session, {"shop_id": shop_id, "sub": sub, "seen_at": now}, ["seen_at"])
    )


async def team_online(session: Executor, *, shop_id: int, now: datetime) -> int:
    """How many of the shop's team had the inbox open within ONLINE_WITHIN."""
    result = await session.execute(
        sa.select(sa.func.count()).where(
            staff.c.shop_id == shop_id, staff.c.seen_at >= now - ONLINE_WITHIN
        )
    )
    return int(result.one()[0])


async def handed_over_sessions(session: Executor, *, shop_id: int, limit: int) -> list[str]:
    """The sessions of the shop's open conversations waiting for a person or held by one,
    longest waiting first (the inbox's partial index: handler <> 'assistant')."""
    result = await session.execute(
        sa.select(conversations.c.session_id)
        .where(
            conversations.c.shop_id == shop_id,
            conversations.c.handler != "assistant",
            conversations.c.status == "active",
        )
        .order_by(conversations.c.waiting_since, conversations.c.id)
        .limit(limit)
    )
    return [row[0] for row in result]


__all__ = [
    "ASSISTANT_QUEUE",
    "INBOX_QUEUE",
    "ONLINE_WITHIN",
    "InboxRows",
    "handed_over_sessions",
    "inbox",
    "set_staff_name",
    "staff_name",
    "staff_names",
    "staff_seen",
    "team_online",
]
