"""Queries of the storefront chat: conversations and their messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import Conversation, Message, new_public_id, utcnow
from app.repo.common import _rowcount

messages_table = Message.__table__  # type: ignore[attr-defined]


# ---- conversations ---------------------------------------------------------------------


async def get_conversation(
    session: AsyncSession, *, shop_id: int, session_id: str
) -> Conversation | None:
    result = await session.execute(
        sa.select(Conversation).where(
            col(Conversation.shop_id) == shop_id,
            col(Conversation.session_id) == session_id,
        )
    )
    return result.scalar_one_or_none()


async def create_conversation(
    session: AsyncSession, *, shop_id: int, session_id: str, customer_id: str | None
) -> Conversation | None:
    """Insert a conversation; None when a concurrent request created it first."""
    conversation = Conversation(shop_id=shop_id, session_id=session_id, customer_id=customer_id)
    session.add(conversation)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        return None
    return conversation


async def open_conversation(
    session: AsyncSession, *, shop_id: int, session_id: str, customer_id: str | None
) -> tuple[Conversation, bool]:
    """The session's conversation, created on its first message; and whether it was created.

    An insert that does nothing on a conflict settles two first messages racing each other.
    """
    found = await get_conversation(session, shop_id=shop_id, session_id=session_id)
    if found is not None:
        return found, False
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    now = utcnow()
    created = (
        await session.execute(
            insert(Conversation)
            .values(
                public_id=new_public_id(),
                shop_id=shop_id,
                session_id=session_id,
                customer_id=customer_id,
                status="active",
                created_at=now,
                last_activity_at=now,
            )
            .on_conflict_do_nothing(index_elements=["shop_id", "session_id"])
            .returning(Conversation)
        )
    ).scalar_one_or_none()
    if created is not None:
        return created, True
    found = await get_conversation(session, shop_id=shop_id, session_id=session_id)
    assert found is not None
    return found, False


async def touch_conversation(
    session: AsyncSession, *, conversation_id: int, customer_id: str | None = None
) -> None:
    values: dict[str, object] = {"last_activity_at": utcnow(), "status": "active"}
    if customer_id is not None:
        values["customer_id"] = customer_id
    await session.execute(
        sa.update(Conversation).where(col(Conversation.id) == conversation_id).values(**values)
    )


async def end_conversation(session: AsyncSession, *, conversation_id: int) -> None:
    now = utcnow()
    await session.execute(
        sa.update(Conversation)
        .where(col(Conversation.id) == conversation_id)
        .values(status="ended", ended_at=now, last_activity_at=now)
    )


# ---- messages --------------------------------------------------------------------------


async def add_turn(
    session: AsyncSession,
    *,
    conversation_id: int,
    content: str,
    client_message_id: str | None,
) -> tuple[Message, Message]:
    """The shopper's message and an empty streaming reply; the caller commits both at once."""
    now = utcnow()
    user = (
        await session.execute(
            sa.insert(Message)
            .values(
                public_id=new_public_id(),
                conversation_id=conversation_id,
                role="user",
                content=content,
                status="complete",
                client_message_id=client_message_id,
                created_at=now,
                updated_at=now,
            )
            .returning(Message)
        )
    ).scalar_one()
    reply = (
        await session.execute(
            sa.insert(Message)
            .values(
                public_id=new_public_id(),
                conversation_id=conversation_id,
                role="assistant",
                content="",
                status="streaming",
                reply_to_id=user.id,
                created_at=now + timedelta(microseconds=1),
                updated_at=now,
            )
            .returning(Message)
        )
    ).scalar_one()
    return user, reply


async def find_turn(
    session: AsyncSession, *, conversation_id: int, client_message_id: str
) -> tuple[Message, Message | None] | None:
    result = await session.execute(
        sa.select(Message).where(
            col(Message.conversation_id) == conversation_id,
            col(Message.client_message_id) == client_message_id,
        )
    )
    user = result.scalar_one_or_none()
    if user is None:
        return None
    result = await session.execute(
        sa.select(Message)
        .where(col(Message.reply_to_id) == user.id)
        .order_by(col(Message.id).desc())
        .limit(1)
    )
    return user, result.scalar_one_or_none()


async def restart_failed_reply(session: AsyncSession, *, message_id: int) -> bool:
    """Turn a failed reply back into a streaming one, for a retry of the same turn."""
    result = await session.execute(
        sa.update(Message)
        .where(col(Message.id) == message_id, col(Message.status) == "error")
        .values(
            status="streaming", content="", error_code=None, finish_reason=None, updated_at=utcnow()
        )
    )
    return bool(_rowcount(result))


async def get_message(
    session: AsyncSession, *, conversation_id: int, public_id: str
) -> Message | None:
    result = await session.execute(
        sa.select(Message).where(
            col(Message.conversation_id) == conversation_id,
            col(Message.public_id) == public_id,
        )
    )
    return result.scalar_one_or_none()


async def get_message_by_id(session: AsyncSession, *, message_id: int) -> Message | None:
    return await session.get(Message, message_id)


async def history_page(
    session: AsyncSession, *, conversation_id: int, limit: int, before: str | None
) -> tuple[list[Message], bool]:
    """The newest `limit` messages older than `before`, oldest first, and whether more exist."""
    query = sa.select(Message).where(col(Message.conversation_id) == conversation_id)
    if before is not None:
        cursor = (
            sa.select(col(Message.id))
            .where(
                col(Message.conversation_id) == conversation_id, col(Message.public_id) == before
            )
            .scalar_subquery()
        )
        query = query.where(col(Message.id) < cursor)
    result = await session.execute(query.order_by(col(Message.id).desc()).limit(limit + 1))
    rows = list(result.scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    rows.reverse()
    return rows, more


async def recent_context(
    session: AsyncSession, *, conversation_id: int, before_id: int, limit: int = 200
) -> list[Message]:
    """Messages worth showing the model: saved text, oldest first, up to the given reply."""
    result = await session.execute(
        sa.select(Message)
        .where(
            col(Message.conversation_id) == conversation_id,
            col(Message.id) < before_id,
            col(Message.status).in_(("complete", "stopped")),
            col(Message.content) != "",
        )
        .order_by(col(Message.id).desc())
        .limit(limit)
    )
    rows = list(result.scalars())
    rows.reverse()
    return rows


async def save_progress(session: AsyncSession, *, progress: Sequence[tuple[int, str]]) -> set[int]:
    """Write streaming text in one batch; return the ids that are no longer streaming."""
    if not progress:
        return set()
    now = utcnow()
    await session.execute(
        sa.update(messages_table)
        .where(
            messages_table.c.id == sa.bindparam("b_id"),
            messages_table.c.status == "streaming",
        )
        .values(content=sa.bindparam("b_content"), updated_at=now),
        [{"b_id": message_id, "b_content": content} for message_id, content in progress],
    )
    result = await session.execute(
        sa.select(col(Message.id)).where(
            col(Message.id).in_([message_id for message_id, _ in progress]),
            col(Message.status) != "streaming",
        )
    )
    return {int(message_id) for message_id in result.scalars() if message_id is not None}


async def finish_reply(
    session: AsyncSession,
    *,
    message_id: int,
    content: str,
    status: str,
    finish_reason: str | None,
    error_code: str | None,
) -> None:
    await session.execute(
        sa.update(Message)
        .where(col(Message.id) == message_id)
        .values(
            content=content,
            status=status,
            finish_reason=finish_reason,
            error_code=error_code,
            updated_at=utcnow(),
        )
    )


async def mark_stopped(session: AsyncSession, *, message_id: int) -> bool:
    """Stop a reply that another worker is writing; it notices on its next flush."""
    result = await session.execute(
        sa.update(Message)
        .where(col(Message.id) == message_id, col(Message.status) == "streaming")
        .values(status="stopped", finish_reason="stopped", updated_at=utcnow())
    )
    return bool(_rowcount(result))


async def reap_stale_replies(
    session: AsyncSession, *, older_than: datetime, keep: Sequence[int] = ()
) -> int:
    """Replies whose worker stopped writing (it died): they end as errors, not `streaming`."""
    query = sa.update(Message).where(
        col(Message.status) == "streaming",
        col(Message.updated_at) < older_than,
    )
    if keep:
        query = query.where(col(Message.id).not_in(list(keep)))
    result = await session.execute(
        query.values(status="error", error_code="interrupted", updated_at=utcnow())
    )
    return _rowcount(result)


async def stop_conversation_replies(session: AsyncSession, *, conversation_id: int) -> None:
    await session.execute(
        sa.update(Message)
        .where(col(Message.conversation_id) == conversation_id, col(Message.status) == "streaming")
        .values(status="stopped", finish_reason="stopped", updated_at=utcnow())
    )
