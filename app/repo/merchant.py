"""Queries of the merchant side: listing, search, transcripts, export, privacy and sweeps
(the statistics are app/repo/stats.py)."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import (
    Conversation,
    ConversationEvent,
    Message,
    Shop,
    aware,
    utcnow,
)
from app.repo.common import _rowcount
from app.repo.rows import MessageRow, many

messages: sa.Table = Message.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ConversationFilter:
    q: str | None = None
    status: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    customer_id: str | None = None


@dataclass(frozen=True)
class ListedConversation:
    conversation: Conversation
    message_count: int
    preview: str | None


def _like(text: str) -> str:
    return "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"


def _filtered(shop_id: int, where: ConversationFilter) -> sa.Select[Conversation]:
    query = sa.select(Conversation).where(col(Conversation.shop_id) == shop_id)
    if where.status:
        query = query.where(col(Conversation.status) == where.status)
    if where.customer_id:
        query = query.where(col(Conversation.customer_id) == where.customer_id)
    if where.date_from:
        start = datetime(where.date_from.year, where.date_from.month, where.date_from.day)
        query = query.where(col(Conversation.created_at) >= start.replace(tzinfo=utcnow().tzinfo))
    if where.date_to:
        end = datetime(where.date_to.year, where.date_to.month, where.date_to.day) + timedelta(1)
        query = query.where(col(Conversation.created_at) < end.replace(tzinfo=utcnow().tzinfo))
    if where.q:
        matches = (
            sa.select(sa.literal(1))
            .where(
                col(Message.conversation_id) == col(Conversation.id),
                col(Message.content).ilike(_like(where.q), escape="\\"),
            )
            .exists()
        )
        query = query.where(matches)
    return query


def encode_cursor(conversation: Conversation) -> str:
    raw = f"{aware(conversation.created_at).isoformat()}|{conversation.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


# What encode_cursor writes: a UTC time as isoformat() gives it, and an id that fits in 63 bits
# (a longer one overflowed SQLite's INTEGER and asyncpg's int8: a 500; a time in another zone
# could overflow when asyncpg moved it to UTC).
_CURSOR = re.compile(
    r"(?P<stamp>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{6})?\+00:00)"
    r"\|(?P<id>[0-9]{1,19})"
)
MAX_CURSOR_CHARS = 200


def decode_cursor(cursor: str) -> tuple[datetime, int] | None:
    """The position a cursor of encode_cursor names; None for anything it did not write."""
    if len(cursor) > MAX_CURSOR_CHARS or not cursor.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    found = _CURSOR.fullmatch(raw)
    if found is None or int(found["id"]) >= 2**63:
        return None
    try:
        return datetime.fromisoformat(found["stamp"]), int(found["id"])
    except ValueError:  # a month 13, a 25th hour
        return None


async def list_conversations(
    session: AsyncSession,
    *,
    shop_id: int,
    where: ConversationFilter,
    limit: int,
    after: tuple[datetime, int] | None = None,
) -> tuple[list[ListedConversation], bool]:
    """Newest first, keyset-paginated on (created_at, id)."""
    query = _filtered(shop_id, where)
    if after is not None:
        created, ident = after
        query = query.where(
            sa.or_(
                col(Conversation.created_at) < created,
                sa.and_(col(Conversation.created_at) == created, col(Conversation.id) < ident),
            )
        )
    query = query.order_by(col(Conversation.created_at).desc(), col(Conversation.id).desc())
    conversations = list((await session.execute(query.limit(limit + 1))).scalars())
    more = len(conversations) > limit
    conversations = conversations[:limit]
    ids = [c.id for c in conversations]
    counts: dict[int, int] = {}
    previews: dict[int, str] = {}
    if ids:
        rows = await session.execute(
            sa.select(col(Message.conversation_id), sa.func.count())
            .where(col(Message.conversation_id).in_(ids))
            .group_by(col(Message.conversation_id))
        )
        counts = {int(cid): int(n) for cid, n in rows.all()}
        first = (
            sa.select(sa.func.min(col(Message.id)))
            .where(col(Message.conversation_id).in_(ids), col(Message.role) == "user")
            .group_by(col(Message.conversation_id))
        )
        rows = await session.execute(
            sa.select(col(Message.conversation_id), col(Message.content)).where(
                col(Message.id).in_(first)
            )
        )
        previews = {int(cid): str(content) for cid, content in rows.all()}
    result = [
        ListedConversation(c, counts.get(c.id or 0, 0), previews.get(c.id or 0))
        for c in conversations
    ]
    return result, more


async def conversation_by_id(
    session: AsyncSession, *, shop_id: int, public_id: str
) -> Conversation | None:
    result = await session.execute(
        sa.select(Conversation).where(
            col(Conversation.shop_id) == shop_id, col(Conversation.public_id) == public_id
        )
    )
    return result.scalar_one_or_none()


async def transcript(
    session: AsyncSession, *, conversation_id: int, limit: int, after: str | None = None
) -> tuple[list[MessageRow], bool]:
    """A page of the conversation, oldest first: `limit` messages after the one whose public id
    is `after` (none, if it is not this conversation's), and whether more follow."""
    query = sa.select(messages).where(messages.c.conversation_id == conversation_id)
    if after is not None:
        start = (
            sa.select(messages.c.id)
            .where(messages.c.conversation_id == conversation_id, messages.c.public_id == after)
            .scalar_subquery()
        )
        query = query.where(messages.c.id > start)
    result = await session.execute(query.order_by(messages.c.id).limit(limit + 1))
    # Rows, read as messages: a model instance per row cost more than the query (bench/).
    page = many(MessageRow, result)
    return page[:limit], len(page) > limit


async def delete_conversation(session: AsyncSession, *, shop_id: int, public_id: str) -> bool:
    result = await session.execute(
        sa.delete(Conversation).where(
            col(Conversation.shop_id) == shop_id, col(Conversation.public_id) == public_id
        )
    )
    return bool(_rowcount(result))


async def export_rows(
    session: AsyncSession, *, shop_id: int, where: ConversationFilter
) -> AsyncIterator[tuple[Conversation, Message]]:
    """Every message of the matching conversations, streamed from the database."""
    matching = _filtered(shop_id, where).with_only_columns(col(Conversation.id)).scalar_subquery()
    query = (
        sa.select(Conversation, Message)
        .join(Message, col(Message.conversation_id) == col(Conversation.id))
        .where(col(Conversation.id).in_(matching))
        .order_by(col(Conversation.created_at).desc(), col(Conversation.id).desc(), col(Message.id))
    )
    result = await session.stream(query.execution_options(yield_per=500))
    async for conversation, message in result:
        yield conversation, message


# ---- sweeps ----------------------------------------------------------------------------


async def mark_abandoned(
    session: AsyncSession, *, inactive_since: datetime
) -> list[tuple[int, int, str, str]]:
    """Active conversations with no activity since then, and no reply still streaming: each
    with its event (for its live streams). Returns their ids, shop ids, session ids and
    public ids."""
    streaming = (
        sa.select(sa.literal(1))
        .where(
            col(Message.conversation_id) == col(Conversation.id), col(Message.status) == "streaming"
        )
        .exists()
    )
    result = await session.execute(
        sa.update(Conversation)
        .where(
            col(Conversation.status) == "active",
            col(Conversation.last_activity_at) < inactive_since,
            ~streaming,
        )
        .values(status="abandoned")
        .returning(
            col(Conversation.id),
            col(Conversation.shop_id),
            col(Conversation.session_id),
            col(Conversation.public_id),
        )
    )
    abandoned = [(int(r[0] or 0), int(r[1]), str(r[2]), str(r[3])) for r in result]
    if abandoned:
        now = utcnow()
        await session.execute(
            sa.insert(ConversationEvent),
            [{"conversation_id": c[0], "kind": "abandoned", "created_at": now} for c in abandoned],
        )
    return abandoned


async def delete_expired(session: AsyncSession, *, now: datetime) -> int:
    """Conversations older than their shop's retention setting."""
    shops = await session.execute(
        sa.select(col(Shop.id), col(Shop.retention_days)).where(
            col(Shop.retention_days).is_not(None)
        )
    )
    deleted = 0
    for shop_id, days in shops.all():
        result = await session.execute(
            sa.delete(Conversation).where(
                col(Conversation.shop_id) == shop_id,
                col(Conversation.last_activity_at) < now - timedelta(days=int(days or 0)),
            )
        )
        deleted += _rowcount(result)
    return deleted


__all__ = [
    "ConversationFilter",
    "ListedConversation",
    "conversation_by_id",
    "decode_cursor",
    "delete_conversation",
    "delete_expired",
    "encode_cursor",
    "export_rows",
    "list_conversations",
    "mark_abandoned",
    "transcript",
]
