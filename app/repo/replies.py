"""Queries of a conversation's messages: a turn's retry, the history, the model's context,
and a reply's progress, end and reaping."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.models import utcnow
from app.pgfast import FastConnection
from app.repo.chat import messages
from app.repo.common import Executor, _rowcount, is_postgres
from app.repo.rows import MessageRow, many, one
from app.repo.workers import alive_since, workers

_CONTEXT = (
    sa.select(messages)
    .where(
        messages.c.conversation_id == sa.bindparam("conversation_id"),
        messages.c.id < sa.bindparam("before_id"),
        # Two comparisons, not IN: an IN list is expanded per call, which app/pgfast.py skips.
        sa.or_(messages.c.status == "complete", messages.c.status == "stopped"),
        messages.c.content != "",
    )
    .order_by(messages.c.id.desc())
    .limit(sa.bindparam("limit"))
)
# Built once: pgfast compiles a statement once per object, so one built per call compiles
# every time (it cost a turn more CPU than all its inserts together). A reply's final write
# is its worker's only while the reply is still its own: streaming, or stopped by a shopper
# on another worker. One that another worker ended (its worker seemed dead) or restarted (a
# retry) keeps what that worker wrote.
_FINISH = (
    sa.update(messages)
    .where(
        messages.c.id == sa.bindparam("message_id"),
        messages.c.worker_id.is_not_distinct_from(sa.bindparam("owner")),
        sa.or_(messages.c.status == "streaming", messages.c.status == "stopped"),
    )
    .values(
        content=sa.bindparam("content"),
        status=sa.bindparam("status"),
        finish_reason=sa.bindparam("finish_reason"),
        error_code=sa.bindparam("error_code"),
        products=sa.bindparam("products"),
        tools=sa.bindparam("tools"),
        unanswered=sa.bindparam("unanswered"),
        updated_at=sa.bindparam("updated_at"),
    )
)

# Prebuilt, as _FINISH: a statement built per call is compiled per call on the fast path.
_EXTRAS = (
    sa.update(messages)
    .where(
        messages.c.id == sa.bindparam("message_id"),
        messages.c.worker_id.is_not_distinct_from(sa.bindparam("owner")),
        messages.c.status == "streaming",
    )
    .values(
        products=sa.bindparam("products"),
        tools=sa.bindparam("tools"),
        updated_at=sa.bindparam("updated_at"),
    )
)

# The widget sends a client_message_id with every message: each later turn looks it up.
_TURN = sa.select(messages).where(
    messages.c.conversation_id == sa.bindparam("conversation_id"),
    messages.c.client_message_id == sa.bindparam("client_message_id"),
)
_TURN_REPLY = (
    sa.select(messages)
    .where(messages.c.reply_to_id == sa.bindparam("user_id"))
    .order_by(messages.c.id.desc())
    .limit(1)
)


async def find_turn(
    session: Executor, *, conversation_id: int, client_message_id: str
) -> tuple[MessageRow, MessageRow | None] | None:
    result = await session.execute(
        _TURN, {"conversation_id": conversation_id, "client_message_id": client_message_id}
    )
    user = one(MessageRow, result.first())
    if user is None:
        return None
    result = await session.execute(_TURN_REPLY, {"user_id": user.id})
    return user, one(MessageRow, result.first())


async def restart_failed_reply(
    session: Executor, *, message_id: int, worker_id: str | None
) -> bool:
    """Turn a failed reply back into a streaming one, for a retry of the same turn, generated
    by `worker_id`. Only one retry restarts it; another reply streaming in the conversation
    refuses it (IntegrityError, from uq_messages_one_streaming)."""
    result = await session.execute(
        sa.update(messages)
        .where(messages.c.id == message_id, messages.c.status == "error")
        .values(
            status="streaming",
            content="",
            error_code=None,
            finish_reason=None,
            products=None,
            tools=None,
            worker_id=worker_id,
            updated_at=utcnow(),
        )
    )
    return bool(_rowcount(result))


async def get_message(
    session: Executor, *, conversation_id: int, public_id: str
) -> MessageRow | None:
    result = await session.execute(
        sa.select(messages).where(
            messages.c.conversation_id == conversation_id,
            messages.c.public_id == public_id,
        )
    )
    return one(MessageRow, result.first())


async def get_message_by_id(session: Executor, *, message_id: int) -> MessageRow | None:
    result = await session.execute(sa.select(messages).where(messages.c.id == message_id))
    return one(MessageRow, result.first())


_PAGE = (
    sa.select(messages)
    .where(messages.c.conversation_id == sa.bindparam("conversation_id"))
    .order_by(messages.c.id.desc())
    .limit(sa.bindparam("limit"))
)
_PAGE_BEFORE = _PAGE.where(
    messages.c.id
    < sa.select(messages.c.id)
    .where(
        messages.c.conversation_id == sa.bindparam("conversation_id"),
        messages.c.public_id == sa.bindparam("before"),
    )
    .scalar_subquery()
)


async def history_page(
    session: Executor, *, conversation_id: int, limit: int, before: str | None
) -> tuple[list[MessageRow], bool]:
    """The newest `limit` messages older than `before`, oldest first, and whether more exist."""
    params: dict[str, object] = {"conversation_id": conversation_id, "limit": limit + 1}
    if before is not None:
        params["before"] = before
    result = await session.execute(_PAGE if before is None else _PAGE_BEFORE, params)
    rows = many(MessageRow, result)
    more = len(rows) > limit
    rows = rows[:limit]
    rows.reverse()
    return rows, more


async def recent_context(
    session: Executor, *, conversation_id: int, before_id: int, limit: int = 200
) -> list[MessageRow]:
    """Messages worth showing the model: saved text, oldest first, up to the given reply."""
    result = await session.execute(
        _CONTEXT, {"conversation_id": conversation_id, "before_id": before_id, "limit": limit}
    )
    rows = many(MessageRow, result)
    rows.reverse()
    return rows


# Every streaming reply's text in one statement on PostgreSQL, as the flusher writes them
# five times a second: the replies that were written come back, and the rest (stopped,
# ended as interrupted, or restarted by another worker) are given up by their worker.
_SAVE_PROGRESS = (
    sa.text(
        "UPDATE messages AS m SET content = v.content, updated_at = :now"
        " FROM unnest(CAST(:ids AS BIGINT[]), CAST(:contents AS TEXT[]),"
        " CAST(:workers AS VARCHAR[])) AS v(id, content, worker)"
        " WHERE m.id = v.id AND m.status = 'streaming'"
        " AND m.worker_id IS NOT DISTINCT FROM v.worker RETURNING m.id"
    )
    .bindparams(
        sa.bindparam("ids"),
        sa.bindparam("contents"),
        sa.bindparam("workers"),
        sa.bindparam("now", type_=messages.c.updated_at.type),
    )
    .columns(messages.c.id)
)


async def save_progress(
    session: Executor, *, progress: Sequence[tuple[int, str, str | None]]
) -> set[int]:
    """Write streaming text in one batch, each (id, text, worker); return the ids that are no
    longer streaming for that worker (stopped, ended as interrupted, or restarted by another
    worker): their worker gives them up."""
    if not progress:
        return set()
    now = utcnow()
    if is_postgres(session):
        result = await session.execute(
            _SAVE_PROGRESS,
            {
                "ids": [message_id for message_id, _, _ in progress],
                "contents": [content for _, content, _ in progress],
                "workers": [worker_id for _, _, worker_id in progress],
                "now": now,
            },
        )
        return {message_id for message_id, _, _ in progress} - {row.id for row in result}
    assert not isinstance(session, FastConnection)  # only on PostgreSQL
    await session.execute(
        sa.update(messages)
        .where(
            messages.c.id == sa.bindparam("b_id"),
            messages.c.status == "streaming",
            messages.c.worker_id.is_not_distinct_from(sa.bindparam("b_worker")),
        )
        .values(content=sa.bindparam("b_content"), updated_at=now),
        [
            {"b_id": message_id, "b_content": content, "b_worker": worker_id}
            for message_id, content, worker_id in progress
        ],
    )
    workers_of = {message_id: worker_id for message_id, _, worker_id in progress}
    result = await session.execute(
        sa.select(messages.c.id, messages.c.status, messages.c.worker_id).where(
            messages.c.id.in_(list(workers_of))
        )
    )
    found = {row.id: row for row in result}
    return {
        message_id
        for message_id, worker_id in workers_of.items()
        if (row := found.get(message_id)) is None
        or row.status != "streaming"
        or row.worker_id != worker_id
    }


async def finish_reply(
    session: Executor,
    *,
    message_id: int,
    worker_id: str | None = None,
    content: str,
    status: str,
    finish_reason: str | None,
    error_code: str | None,
    products: str | None = None,
    tools: str | None = None,
    unanswered: bool | None = None,
) -> None:
    await session.execute(
        _FINISH,
        {
            "message_id": message_id,
            "owner": worker_id,
            "content": content,
            "status": status,
            "finish_reason": finish_reason,
            "error_code": error_code,
            "products": products,
            "tools": tools,
            "unanswered": unanswered,
            "updated_at": utcnow(),
        },
    )


async def save_reply_extras(
    session: Executor,
    *,
    message_id: int,
    worker_id: str | None,
    products: str | None,
    tools: str | None,
) -> None:
    """A reply's cards and tool uses (JSON), written once they are known, while the reply is
    still its worker's."""
    await session.execute(
        _EXTRAS,
        {
            "message_id": message_id,
            "owner": worker_id,
            "products": products,
            "tools": tools,
            "updated_at": utcnow(),
        },
    )


async def mark_stopped(session: Executor, *, message_id: int) -> bool:
    """Stop a reply that another worker is writing; it notices on its next flush."""
    result = await session.execute(
        sa.update(messages)
        .where(messages.c.id == message_id, messages.c.status == "streaming")
        .values(status="stopped", finish_reason="stopped", updated_at=utcnow())
    )
    return bool(_rowcount(result))


async def reap_stale_replies(
    session: Executor, *, older_than: datetime, keep: Sequence[int] = ()
) -> int:
    """Replies whose worker stopped writing (it died): they end as errors, not `streaming`."""
    query = sa.update(messages).where(
        messages.c.status == "streaming",
        messages.c.updated_at < older_than,
    )
    if keep:
        query = query.where(messages.c.id.not_in(list(keep)))
    result = await session.execute(
        query.values(status="error", error_code="interrupted", updated_at=utcnow())
    )
    return _rowcount(result)


def _orphaned(*, alive_since: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """A reply whose worker is known to be dead: it has one, and that worker's heartbeat is
    stale or gone (a worker's row is written before its first reply, app/replies.py)."""
    beating = (
        sa.select(workers.c.id)
        .where(workers.c.id == messages.c.worker_id, workers.c.heartbeat_at >= alive_since)
        .exists()
    )
    return sa.and_(messages.c.worker_id.is_not(None), ~beating)


async def end_orphaned_replies(
    session: Executor,
    *,
    dead_after: float,
    this_worker: str,
    conversation_id: int | None = None,
) -> int:
    """End as interrupted the streaming replies whose worker has not beaten for `dead_after`
    seconds: all of them (the reaper) or a conversation's (a turn taking over). Conditional
    on the row as it is when updated, so of two workers doing it at once one ends it."""
    query = sa.update(messages).where(
        messages.c.status == "streaming",
        messages.c.worker_id != this_worker,
        _orphaned(alive_since=alive_since(session, dead_after=dead_after)),
    )
    if conversation_id is not None:
        query = query.where(messages.c.conversation_id == conversation_id)
    result = await session.execute(
        query.values(status="error", error_code="interrupted", updated_at=utcnow())
    )
    return _rowcount(result)


async def stop_conversation_replies(session: Executor, *, conversation_id: int) -> None:
    await session.execute(
        sa.update(messages)
        .where(messages.c.conversation_id == conversation_id, messages.c.status == "streaming")
        .values(status="stopped", finish_reason="stopped", updated_at=utcnow())
    )
