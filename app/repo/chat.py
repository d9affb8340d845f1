"""Queries of the storefront chat: conversations, and the turn that opens one (its shopper's
message and the empty reply)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.models import Conversation, Message, aware, new_public_id, utcnow
from app.repo.common import Executor, is_postgres
from app.repo.rows import ConversationRow, MessageRow, one

# The chat's hot path runs Core statements on the tables: a turn is a few short statements,
# and the ORM's per-statement bookkeeping cost more than the database did (see bench/).
conversations: sa.Table = Conversation.__table__  # type: ignore[attr-defined]
messages: sa.Table = Message.__table__  # type: ignore[attr-defined]


# Statements of every turn, built once: only their parameters change from turn to turn.
_CONVERSATION = sa.select(conversations).where(
    conversations.c.shop_id == sa.bindparam("shop_id"),
    conversations.c.session_id == sa.bindparam("session_id"),
)
_CONVERSATION_COLUMNS = (
    "id, public_id, shop_id, session_id, customer_id, status, created_at, last_activity_at,"
    " ended_at, message_count, first_question, product_handle, handler, assignee, waiting_since,"
    " contact_email, seen_at, read_message_id"
)
# A shopper's message opens the conversation: created, or reopened (an abandoned one),
# touched, and claimed by a customer who logged in: one statement, whichever it is. One the
# shopper may not write to (ended, or another customer's) is left as it is, and no row comes
# back. A row whose created_at is this call's timestamp was inserted by it.
_OPEN_CONVERSATION_SQL = (
    "INSERT INTO conversations (public_id, shop_id, session_id, customer_id, status,"
    " created_at, last_activity_at, message_count, first_question, product_handle)"
    " VALUES (:public_id, :shop_id, :session_id, :customer_id, 'active', :now, :now, :added,"
    " :first_question, :product_handle)"
    " ON CONFLICT (shop_id, session_id) DO UPDATE SET"
    " last_activity_at = excluded.last_activity_at, status = 'active',"
    " customer_id = COALESCE(conversations.customer_id, excluded.customer_id),"
    # The merchant's statistics read these instead of the shop's messages (app/repo/stats.py).
    # (A turn adds two messages, but only the shopper's while a person answers: the
    # assistant is quiet then, docs/live.md.)
    " message_count = conversations.message_count + excluded.message_count"
    " - CASE WHEN conversations.handler <> 'assistant' AND excluded.message_count = 2"
    " THEN 1 ELSE 0 END,"
    " first_question = COALESCE(conversations.first_question, excluded.first_question),"
    # A conversation about a product stays about it.
    " product_handle = COALESCE(conversations.product_handle, excluded.product_handle)"
    " WHERE conversations.status <> 'ended' AND (conversations.customer_id IS NULL"
    " OR conversations.customer_id = excluded.customer_id)"
    f" RETURNING {_CONVERSATION_COLUMNS}"
)
_CONVERSATION_PARAMS = (
    sa.bindparam("added", type_=conversations.c.message_count.type),
    sa.bindparam("first_question", type_=conversations.c.first_question.type),
    sa.bindparam("product_handle", type_=conversations.c.product_handle.type),
    sa.bindparam("public_id", type_=conversations.c.public_id.type),
    sa.bindparam("shop_id", type_=conversations.c.shop_id.type),
    sa.bindparam("session_id", type_=conversations.c.session_id.type),
    sa.bindparam("customer_id", type_=conversations.c.customer_id.type),
    sa.bindparam("now", type_=conversations.c.created_at.type),
)
_OPEN_CONVERSATION = (
    sa.text(_OPEN_CONVERSATION_SQL).bindparams(*_CONVERSATION_PARAMS).columns(*conversations.c)
)
_TURN_PARAMS = (
    sa.bindparam("user_public_id", type_=messages.c.public_id.type),
    sa.bindparam("content", type_=messages.c.content.type),
    sa.bindparam("client_message_id", type_=messages.c.client_message_id.type),
    sa.bindparam("reply_public_id", type_=messages.c.public_id.type),
    sa.bindparam("reply_at", type_=messages.c.created_at.type),
    sa.bindparam("worker_id", type_=messages.c.worker_id.type),
)
_IN_CONVERSATION = (
    sa.bindparam("conversation_id", type_=messages.c.conversation_id.type),
    sa.bindparam("now", type_=messages.c.created_at.type),
)
# A turn's two messages: the shopper's, unless its client_message_id already has one (a
# retry), and the empty reply to it, marked with the worker that generates it.
#
# On PostgreSQL the whole turn is one statement, so it needs no transaction around it (a
# round trip is most of a statement's cost): the conversation opened as _OPEN_CONVERSATION
# does, then the two messages. No row comes back when the shopper may not write to the
# conversation. SQLite has no INSERT inside WITH: there the same three writes are three
# statements (_OPEN_CONVERSATION, _NEW_USER_MESSAGE, _NEW_REPLY) in one transaction of
# their own (_write_turn), so the turn commits whole on its own on both databases.
_OPEN_TURN = (
    sa.text(
        f"WITH c AS ({_OPEN_CONVERSATION_SQL}),"
        " u AS (INSERT INTO messages (public_id, conversation_id, role, content, status,"
        " client_message_id, created_at, updated_at)"
        " SELECT :user_public_id, c.id, 'user', :content, 'complete', :client_message_id, :now,"
        " :now FROM c"
        " ON CONFLICT (conversation_id, client_message_id) DO NOTHING RETURNING id),"
        " r AS (INSERT INTO messages (public_id, conversation_id, role, content, status,"
        " reply_to_id, worker_id, created_at, updated_at)"
        " SELECT :reply_public_id, c.id, 'assistant', '', 'streaming', u.id, :worker_id,"
        " :reply_at, :now FROM c, u WHERE c.handler = 'assistant' RETURNING id)"
        " SELECT c.*, u.id AS user_id, r.id AS reply_id FROM c"
        " LEFT JOIN u ON true LEFT JOIN r ON true"
    )
    .bindparams(*_CONVERSATION_PARAMS, *_TURN_PARAMS)
    .columns(
        *conversations.c,
        sa.column("user_id", messages.c.id.type),
        sa.column("reply_id", messages.c.id.type),
    )
)
_NEW_USER_MESSAGE = (
    sa.text(
        "INSERT INTO messages (public_id, conversation_id, role, content, status,"
        " client_message_id, created_at, updated_at)"
        " VALUES (:user_public_id, :conversation_id, 'user', :content, 'complete',"
        " :client_message_id, :now, :now)"
        " ON CONFLICT (conversation_id, client_message_id) DO NOTHING RETURNING id"
    )
    .bindparams(*_TURN_PARAMS[:3], *_IN_CONVERSATION)
    .columns(messages.c.id)
)
_NEW_REPLY = (
    sa.text(
        "INSERT INTO messages (public_id, conversation_id, role, content, status, reply_to_id,"
        " worker_id, created_at, updated_at)"
        " VALUES (:reply_public_id, :conversation_id, 'assistant', '', 'streaming', :user_id,"
        " :worker_id, :reply_at, :now) RETURNING id"
    )
    .bindparams(
        *_TURN_PARAMS[3:],
        *_IN_CONVERSATION,
        sa.bindparam("user_id", type_=messages.c.id.type),
    )
    .columns(messages.c.id)
)
_UNCOUNT = sa.text(
    "UPDATE conversations SET message_count = message_count - :added WHERE id = :conversation_id"
).bindparams(
    sa.bindparam("conversation_id", type_=conversations.c.id.type),
    sa.bindparam("added", type_=conversations.c.message_count.type),
)
# ---- conversations ---------------------------------------------------------------------


async def conversation_product(session: Executor, *, conversation_id: int) -> str | None:
    """The product a product's own conversation is about (None for the shop-wide chat)."""
    result = await session.execute(
        sa.select(conversations.c.product_handle).where(conversations.c.id == conversation_id)
    )
    row = result.first()
    return None if row is None else row[0]


async def session_conversation(
    session: Executor, *, shop_id: int, session_id: str
) -> ConversationRow | None:
    result = await session.execute(_CONVERSATION, {"shop_id": shop_id, "session_id": session_id})
    return one(ConversationRow, result.first())


async def customers_conversation(
    session: Executor, *, shop_id: int, customer_id: str
) -> ConversationRow | None:
    """A logged-in customer's current conversation with the shop, on whichever device they
    started it: their latest active one, not one of a product's own."""
    result = await session.execute(
        sa.select(conversations)
        .where(
            conversations.c.shop_id == shop_id,
            conversations.c.customer_id == customer_id,
            conversations.c.status == "active",
            conversations.c.product_handle.is_(None),
        )
        .order_by(conversations.c.last_activity_at.desc(), conversations.c.id.desc())
        .limit(1)
    )
    return one(ConversationRow, result.first())


async def open_conversation(
    session: Executor, *, shop_id: int, session_id: str, customer_id: str | None
) -> tuple[ConversationRow, bool]:
    """The session's conversation, created on its first message, touched on every later one.

    One the shopper may not write to (ended, or another customer's) comes back as it was; the
    caller checks for that. Returns the conversation and whether this call created it.
    """
    while True:
        now = utcnow()
        params = {
            "public_id": new_public_id(),
            "shop_id": shop_id,
            "session_id": session_id,
            "customer_id": customer_id,
            "now": now,
            "added": 0,
            "first_question": None,
            "product_handle": None,
        }
        row = (await session.execute(_OPEN_CONVERSATION, params)).first()
        if row is not None:
            return ConversationRow._make(row), aware(row.created_at) == now
        # One the shopper may not write to, left as it was; read it to say why. (Deleted by
        # the merchant in between, it is opened afresh.)
        found = await session_conversation(session, shop_id=shop_id, session_id=session_id)
        if found is not None:
            return found, False


async def end_conversation(session: Executor, *, conversation_id: int) -> None:
    now = utcnow()
    await session.execute(
        sa.update(conversations)
        .where(conversations.c.id == conversation_id)
        .values(status="ended", ended_at=now, last_activity_at=now)
    )


class OpenedTurn(NamedTuple):
    """A turn begun: its conversation, whether this turn created it, and the shopper's message
    and empty reply, both None when the conversation is ended or another customer's (left as
    it was; the caller refuses the turn) or when client_message_id already had a turn. While
    a person answers (conversation.handler is not "assistant") there is no reply."""

    conversation: ConversationRow
    created: bool
    user: MessageRow | None
    reply: MessageRow | None


_BEGIN = sa.text("BEGIN IMMEDIATE")
_COMMIT = sa.text("COMMIT")
_ROLLBACK = sa.text("ROLLBACK")


def _commits_each_statement(session: Executor) -> bool:
    return (
        isinstance(session, AsyncConnection)
        and session.sync_connection is not None
        and session.sync_connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
    )


async def _write_turn(
    session: Executor, params: dict[str, Any]
) -> tuple[Any, int | None, int | None]:
    """The turn's writes: the conversation's row (None when the shopper may not write to it)
    and the ids of the two messages (None when the client_message_id had its turn)."""
    if is_postgres(session):
        row = (await session.execute(_OPEN_TURN, params)).first()
        return (row, row.user_id, row.reply_id) if row is not None else (None, None, None)
    if not _commits_each_statement(session):
        return await _write_turn_in_steps(session, params)  # in the caller's transaction
    # SQLite, on a connection where each statement commits on its own (Database.connection):
    # the three writes are a transaction of their own. (Not a savepoint: Python's sqlite3
    # opens no transaction before one, so inside a caller's that had not written yet, its
    # RELEASE would commit.)
    await session.execute(_BEGIN)
    try:
        written = await _write_turn_in_steps(session, params)
    except BaseException:
        await session.execute(_ROLLBACK)
        raise
    await session.execute(_COMMIT)
    return written


async def _write_turn_in_steps(
    session: Executor, params: dict[str, Any]
) -> tuple[Any, int | None, int | None]:
    row = (await session.execute(_OPEN_CONVERSATION, params)).first()
    if row is None:
        return None, None, None
    writing = {**params, "conversation_id": row.id}
    inserted = (await session.execute(_NEW_USER_MESSAGE, writing)).first()
    if inserted is None:
        return row, None, None
    if row.handler != "assistant":  # a person answers: the assistant is quiet
        return row, inserted.id, None
    replied = await session.execute(_NEW_REPLY, {**writing, "user_id": inserted.id})
    return row, inserted.id, replied.one().id


def _turn_rows(
    params: dict[str, Any], conversation_id: int, user_id: int, reply_id: int
) -> tuple[MessageRow, MessageRow]:
    """The two messages as their rows now read, from what was written: no read back."""
    now = params["now"]
    user = MessageRow(
        id=user_id,
        public_id=params["user_public_id"],
        conversation_id=conversation_id,
        role="user",
        content=params["content"],
        status="complete",
        client_message_id=params["client_message_id"],
        reply_to_id=None,
        finish_reason=None,
        error_code=None,
        created_at=now,
        updated_at=now,
        worker_id=None,
    )
    reply = MessageRow(
        id=reply_id,
        public_id=params["reply_public_id"],
        conversation_id=conversation_id,
        role="assistant",
        content="",
        status="streaming",
        client_message_id=None,
        reply_to_id=user_id,
        finish_reason=None,
        error_code=None,
        created_at=params["reply_at"],
        updated_at=now,
        worker_id=params["worker_id"],
    )
    return user, reply


async def open_turn(
    session: Executor,
    *,
    shop_id: int,
    session_id: str,
    customer_id: str | None,
    content: str,
    client_message_id: str | None,
    worker_id: str | None = None,
    product_handle: str | None = None,
) -> OpenedTurn:
    """Open the session's conversation and add the shopper's message and an empty reply,
    generated by `worker_id` (None: a worker the others cannot watch; see app/replies.py).
    A conversation opened with a product_handle is about that product for good."""
    now = utcnow()
    params: dict[str, Any] = {
        "product_handle": product_handle,
        "public_id": new_public_id(),
        "shop_id": shop_id,
        "session_id": session_id,
        "customer_id": customer_id,
        "now": now,
        "user_public_id": new_public_id(),
        "content": content,
        "client_message_id": client_message_id,
        "reply_public_id": new_public_id(),
        "reply_at": now + timedelta(microseconds=1),
        "worker_id": worker_id,
        # Counted with the conversation in the same statement: the shopper's message and the
        # reply (taken back below when the message was a retry and added nothing).
        "added": 2,
        "first_question": content,
    }
    row, user_id, reply_id = await _write_turn(session, params)
    if row is None:  # the shopper may not write to it: read it to say why
        refused = await session_conversation(session, shop_id=shop_id, session_id=session_id)
        if refused is None:  # deleted by the merchant in between: opened afresh
            return await open_turn(
                session,
                shop_id=shop_id,
                session_id=session_id,
                customer_id=customer_id,
                content=content,
                client_message_id=client_message_id,
                worker_id=worker_id,
                product_handle=product_handle,
            )
        return OpenedTurn(refused, False, None, None)
    conversation = ConversationRow._make(row[: len(ConversationRow._fields)])
    created = aware(conversation.created_at) == now
    quiet = conversation.handler != "assistant"
    if user_id is None or (reply_id is None and not quiet):
        # A retry of a client_message_id: no message was added after all.
        await session.execute(_UNCOUNT, {"conversation_id": row.id, "added": 1 if quiet else 2})
        return OpenedTurn(conversation, created, None, None)
    user, reply = _turn_rows(params, conversation.id, user_id, reply_id or 0)
    return OpenedTurn(conversation, created, user, None if quiet else reply)
