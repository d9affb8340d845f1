"""Queries of the storefront chat: conversations, and the turn that opens one (its shopper's
message and the empty reply)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

import sqlalchemy as sa

from app.models import Conversation, Message, aware, new_public_id, utcnow
from app.repo.common import Executor, is_postgres

# The chat's hot path runs Core statements on the tables: a turn is a few short statements,
# and the ORM's per-statement bookkeeping cost more than the database did (see bench/).
conversations: sa.Table = Conversation.__table__  # type: ignore[attr-defined]
messages: sa.Table = Message.__table__  # type: ignore[attr-defined]


# Core reads hand back rows: read-only views with the model's attributes. Building a model
# instance per row cost 35 µs, more than the database's answer (see bench/).
def _conversation(row: sa.Row[Any] | None) -> Conversation | None:
    return cast(Conversation | None, row)


def _message(row: sa.Row[Any] | None) -> Message | None:
    return cast(Message | None, row)


# Statements of every turn, built once: only their parameters change from turn to turn.
_CONVERSATION = sa.select(conversations).where(
    conversations.c.shop_id == sa.bindparam("shop_id"),
    conversations.c.session_id == sa.bindparam("session_id"),
)
# A shopper's message opens the conversation: created, or reopened (an abandoned one),
# touched, and claimed by a customer who logged in: one statement, whichever it is. One the
# shopper may not write to (ended, or another customer's) is left as it is, and no row comes
# back. A row whose created_at is this call's timestamp was inserted by it.
_OPEN_CONVERSATION_SQL = (
    "INSERT INTO conversations (public_id, shop_id, session_id, customer_id, status,"
    " created_at, last_activity_at, message_count, first_question)"
    " VALUES (:public_id, :shop_id, :session_id, :customer_id, 'active', :now, :now, :added,"
    " :first_question)"
    " ON CONFLICT (shop_id, session_id) DO UPDATE SET"
    " last_activity_at = excluded.last_activity_at, status = 'active',"
    " customer_id = COALESCE(conversations.customer_id, excluded.customer_id),"
    # The merchant's statistics read these instead of the shop's messages (app/repo/stats.py).
    " message_count = conversations.message_count + excluded.message_count,"
    " first_question = COALESCE(conversations.first_question, excluded.first_question)"
    " WHERE conversations.status <> 'ended' AND (conversations.customer_id IS NULL"
    " OR conversations.customer_id = excluded.customer_id)"
    " RETURNING id, public_id, shop_id, session_id, customer_id, status, created_at,"
    " last_activity_at, ended_at, message_count, first_question"
)
_CONVERSATION_PARAMS = (
    sa.bindparam("added", type_=conversations.c.message_count.type),
    sa.bindparam("first_question", type_=conversations.c.first_question.type),
    sa.bindparam("public_id", type_=conversations.c.public_id.type),
    sa.bindparam("shop_id", type_=conversations.c.shop_id.type),
    sa.bindparam("session_id", type_=conversations.c.session_id.type),
    sa.bindparam("customer_id", type_=conversations.c.customer_id.type),
    sa.bindparam("now", type_=conversations.c.created_at.type),
)
_OPEN_CONVERSATION = (
    sa.text(_OPEN_CONVERSATION_SQL).bindparams(*_CONVERSATION_PARAMS).columns(*conversations.c)
)
# A turn's two messages: the shopper's, unless its client_message_id already has one (a
# retry), and the empty reply to it, marked with the worker that generates it. Written once,
# then as VALUES for SQLite and as SELECTs from the opened conversation for PostgreSQL's
# one-statement turn.
_USER_COLUMNS = (
    "(public_id, conversation_id, role, content, status, client_message_id, created_at, updated_at)"
)
_USER_VALUES = (
    ":user_public_id, {conversation}, 'user', :content, 'complete', :client_message_id, :now, :now"
)
_USER_CONFLICT = " ON CONFLICT (conversation_id, client_message_id) DO NOTHING RETURNING id"
_REPLY_COLUMNS = (
    "(public_id, conversation_id, role, content, status, reply_to_id, worker_id, created_at,"
    " updated_at)"
)
_REPLY_VALUES = (
    ":reply_public_id, {conversation}, 'assistant', '', 'streaming', {user}, :worker_id,"
    " :reply_at, :now"
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
_NEW_USER_MESSAGE = (
    sa.text(
        f"INSERT INTO messages {_USER_COLUMNS}"
        f" VALUES ({_USER_VALUES.format(conversation=':conversation_id')})" + _USER_CONFLICT
    )
    .bindparams(*_TURN_PARAMS[:3], *_IN_CONVERSATION)
    .columns(messages.c.id)
)
_NEW_REPLY = (
    sa.text(
        f"INSERT INTO messages {_REPLY_COLUMNS}"
        f" VALUES ({_REPLY_VALUES.format(conversation=':conversation_id', user=':user_id')})"
        " RETURNING id"
    )
    .bindparams(
        *_TURN_PARAMS[3:],
        *_IN_CONVERSATION,
        sa.bindparam("user_id", type_=messages.c.id.type),
    )
    .columns(messages.c.id)
)
_UNCOUNT = sa.text(
    "UPDATE conversations SET message_count = message_count - 2 WHERE id = :conversation_id"
).bindparams(sa.bindparam("conversation_id", type_=conversations.c.id.type))
# On PostgreSQL a whole turn is one statement, so it needs no transaction around it (a round
# trip is most of a statement's cost): the conversation opened as _OPEN_CONVERSATION does,
# then the two messages. No row comes back when the shopper may not write to the
# conversation. SQLite runs the same steps one statement at a time, in a transaction.
_OPEN_TURN = (
    sa.text(
        f"WITH c AS ({_OPEN_CONVERSATION_SQL}),"
        f" u AS (INSERT INTO messages {_USER_COLUMNS}"
        f" SELECT {_USER_VALUES.format(conversation='c.id')} FROM c{_USER_CONFLICT}),"
        f" r AS (INSERT INTO messages {_REPLY_COLUMNS}"
        f" SELECT {_REPLY_VALUES.format(conversation='c.id', user='u.id')} FROM c, u"
        " RETURNING id)"
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
# ---- conversations ---------------------------------------------------------------------


async def get_conversation(
    session: Executor, *, shop_id: int, session_id: str
) -> Conversation | None:
    result = await session.execute(_CONVERSATION, {"shop_id": shop_id, "session_id": session_id})
    return _conversation(result.first())


async def open_conversation(
    session: Executor, *, shop_id: int, session_id: str, customer_id: str | None
) -> tuple[Conversation, bool]:
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
        }
        row = (await session.execute(_OPEN_CONVERSATION, params)).first()
        if row is not None:
            return cast(Conversation, row), aware(row.created_at) == now
        # One the shopper may not write to, left as it was; read it to say why. (Deleted by
        # the merchant in between, it is opened afresh.)
        found = await get_conversation(session, shop_id=shop_id, session_id=session_id)
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
    it was; the caller refuses the turn) or when client_message_id already had a turn."""

    conversation: Conversation
    created: bool
    user: Message | None
    reply: Message | None


class MessageRow(NamedTuple):
    """A message as its row reads, for one whose values the caller knows without a read."""

    id: int
    public_id: str
    conversation_id: int
    role: str
    content: str
    status: str
    client_message_id: str | None
    reply_to_id: int | None
    finish_reason: str | None
    error_code: str | None
    created_at: datetime
    updated_at: datetime
    worker_id: str | None


async def open_turn(
    session: Executor,
    *,
    shop_id: int,
    session_id: str,
    customer_id: str | None,
    content: str,
    client_message_id: str | None,
    worker_id: str | None = None,
) -> OpenedTurn:
    """Open the session's conversation and add the shopper's message and an empty reply,
    generated by `worker_id` (None: a worker the others cannot watch; see app/replies.py)."""
    now = utcnow()
    params: dict[str, Any] = {
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
    user_id = reply_id = None
    if is_postgres(session):
        row = (await session.execute(_OPEN_TURN, params)).first()
        if row is not None:
            user_id, reply_id = row.user_id, row.reply_id
    else:
        row = (await session.execute(_OPEN_CONVERSATION, params)).first()
        if row is not None:
            writing = {**params, "conversation_id": row.id}
            inserted = (await session.execute(_NEW_USER_MESSAGE, writing)).first()
            if inserted is not None:
                user_id = inserted.id
                replied = await session.execute(_NEW_REPLY, {**writing, "user_id": user_id})
                reply_id = replied.one().id
    if row is None:  # the shopper may not write to it: read it to say why
        refused = await get_conversation(session, shop_id=shop_id, session_id=session_id)
        if refused is None:  # deleted by the merchant in between: opened afresh
            return await open_turn(
                session,
                shop_id=shop_id,
                session_id=session_id,
                customer_id=customer_id,
                content=content,
                client_message_id=client_message_id,
                worker_id=worker_id,
            )
        return OpenedTurn(refused, False, None, None)
    conversation = cast(Conversation, row)
    created = aware(conversation.created_at) == now
    if user_id is None or reply_id is None or conversation.id is None:
        # A retry of a client_message_id: no message was added after all.
        await session.execute(_UNCOUNT, {"conversation_id": row.id})
        return OpenedTurn(conversation, created, None, None)
    user = MessageRow(
        id=user_id,
        public_id=params["user_public_id"],
        conversation_id=conversation.id,
        role="user",
        content=content,
        status="complete",
        client_message_id=client_message_id,
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
        conversation_id=conversation.id,
        role="assistant",
        content="",
        status="streaming",
        client_message_id=None,
        reply_to_id=user_id,
        finish_reason=None,
        error_code=None,
        created_at=params["reply_at"],
        updated_at=now,
        worker_id=worker_id,
    )
    return OpenedTurn(conversation, created, cast(Message, user), cast(Message, reply))
