"""The turn's statement (one on PostgreSQL, several on SQLite) saves what it says it saved."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from app import repo
from app.db import Database
from app.models import aware, utcnow
from app.repo.chat import OpenedTurn, conversations, messages
from app.repo.rows import MessageRow
from tests.factories import make_shop, new_id, shop_id_of


async def _shop_id(db: Database) -> int:
    return await shop_id_of(db, await make_shop(db))


async def _turn(
    db: Database,
    shop_id: int,
    session_id: str,
    *,
    content: str = "Do you ship to Canada?",
    client_message_id: str | None = None,
    customer_id: str | None = None,
    worker_id: str | None = None,
) -> OpenedTurn:
    async with db.connection() as session:
        return await repo.open_turn(
            session,
            shop_id=shop_id,
            session_id=session_id,
            customer_id=customer_id,
            content=content,
            client_message_id=client_message_id,
            worker_id=worker_id,
        )


async def _stored(db: Database, conversation_id: int) -> list[sa.Row]:  # type: ignore[type-arg]
    async with db.transaction() as connection:
        result = await connection.execute(
            sa.select(messages)
            .where(messages.c.conversation_id == conversation_id)
            .order_by(messages.c.id)
        )
        return list(result)


async def _finish(db: Database, turn: OpenedTurn, content: str) -> None:
    assert turn.reply is not None
    async with db.session() as session:
        await repo.finish_reply(
            session,
            message_id=turn.reply.id,
            content=content,
            status="complete",
            finish_reason="stop",
            error_code=None,
        )


def test_message_rows_have_the_columns_of_the_table() -> None:
    assert MessageRow._fields == tuple(column.key for column in messages.c)


async def test_a_turn_is_saved_as_it_is_returned(db: Database) -> None:
    shop_id = await _shop_id(db)
    client_message_id = new_id()
    turn = await _turn(
        db,
        shop_id,
        new_id(),
        content="hé 🚚",
        client_message_id=client_message_id,
        worker_id="a" * 32,
    )
    assert turn.created and turn.user is not None and turn.reply is not None
    assert turn.conversation.id is not None and turn.conversation.status == "active"
    stored = await _stored(db, turn.conversation.id)
    assert len(stored) == 2
    for returned, row in zip((turn.user, turn.reply), stored, strict=True):
        for field in MessageRow._fields:
            mine, theirs = getattr(returned, field), getattr(row, field)
            if field.endswith("_at"):
                mine, theirs = aware(mine), aware(theirs)
            assert mine == theirs, field
    assert turn.reply.reply_to_id == turn.user.id
    assert (turn.user.worker_id, turn.reply.worker_id) == (None, "a" * 32), "who generates it"
    assert (turn.user.content, turn.user.client_message_id) == ("hé 🚚", client_message_id)
    assert (turn.reply.role, turn.reply.status, turn.reply.content) == (
        "assistant",
        "streaming",
        "",
    )


async def test_a_repeated_client_message_id_adds_nothing(db: Database) -> None:
    shop_id = await _shop_id(db)
    session_id, client_message_id = new_id(), new_id()
    first = await _turn(db, shop_id, session_id, client_message_id=client_message_id)
    assert first.conversation.id is not None and first.reply is not None
    await _finish(db, first, "Yes.")
    again = await _turn(db, shop_id, session_id, client_message_id=client_message_id)
    assert not again.created and again.conversation.id == first.conversation.id
    assert again.user is None and again.reply is None
    assert len(await _stored(db, first.conversation.id)) == 2
    other = await _turn(db, shop_id, session_id, client_message_id=new_id())
    assert other.user is not None, "another message id is a new turn"


async def test_no_message_goes_into_an_ended_conversation(db: Database) -> None:
    shop_id = await _shop_id(db)
    session_id = new_id()
    first = await _turn(db, shop_id, session_id)
    assert first.conversation.id is not None and first.reply is not None
    async with db.session() as session:
        await repo.stop_conversation_replies(session, conversation_id=first.conversation.id)
        await repo.end_conversation(session, conversation_id=first.conversation.id)
    async with db.transaction() as connection:
        ended = await repo.session_conversation(connection, shop_id=shop_id, session_id=session_id)
    later = await _turn(db, shop_id, session_id)
    assert later.conversation.status == "ended" and later.user is None and later.reply is None
    assert later.conversation.last_activity_at == ended.last_activity_at, "left as it was"
    assert len(await _stored(db, first.conversation.id)) == 2


async def test_no_message_goes_into_another_customers_conversation(db: Database) -> None:
    shop_id = await _shop_id(db)
    session_id = new_id()
    anonymous = await _turn(db, shop_id, session_id)
    assert anonymous.conversation.id is not None and anonymous.reply is not None
    await _finish(db, anonymous, "Hi")
    claimed = await _turn(db, shop_id, session_id, customer_id="111")
    assert claimed.conversation.customer_id == "111" and claimed.user is not None
    assert claimed.reply is not None
    await _finish(db, claimed, "Hi again")
    for stranger in ("222", None):
        refused = await _turn(db, shop_id, session_id, customer_id=stranger)
        assert refused.conversation.customer_id == "111"
        assert refused.user is None and refused.reply is None
    assert len(await _stored(db, anonymous.conversation.id)) == 4


async def test_a_worker_taken_for_dead_no_longer_writes_the_reply_it_lost(db: Database) -> None:
    """Worker A was silent too long for B: B ended its reply and a retry restarted it on B.
    A, alive after all, must not write over what B writes.

    A has just beaten, so the reaper of any server running against this database (which
    waits WORKER_DEAD_AFTER) leaves its reply alone; only B, judging with a tolerance of
    a few milliseconds, takes A for dead."""
    shop_id = await _shop_id(db)
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    async with db.session() as session:
        await repo.beat(session, worker_id=a)
    turn = await _turn(db, shop_id, new_id(), worker_id=a)
    assert turn.reply is not None and turn.conversation.id is not None
    reply_id = turn.reply.id
    await asyncio.sleep(0.05)
    async with db.session() as session:
        await repo.beat(session, worker_id=b)
        ended = await repo.end_orphaned_replies(
            session, dead_after=0.01, this_worker=b, conversation_id=turn.conversation.id
        )
        assert ended == 1
        assert await repo.restart_failed_reply(session, message_id=reply_id, worker_id=b)
    async with db.session() as session:
        given_up = await repo.save_progress(session, progress=[(reply_id, "A's words", a)])
        await repo.finish_reply(
            session,
            message_id=reply_id,
            worker_id=a,
            content="A's words",
            status="complete",
            finish_reason="stop",
            error_code=None,
        )
    assert given_up == {reply_id}, "A learns at its next flush that the reply is not its own"
    stored = (await _stored(db, turn.conversation.id))[1]
    assert (stored.status, stored.content, stored.worker_id) == ("streaming", "", b)

    async with db.session() as session:
        assert await repo.save_progress(session, progress=[(reply_id, "B's", b)]) == set()
        await repo.finish_reply(
            session,
            message_id=reply_id,
            worker_id=b,
            content="B's words",
            status="complete",
            finish_reason="stop",
            error_code=None,
        )
        await repo.remove_worker(session, worker_id=b)
        await repo.remove_worker(session, worker_id=a)
    stored = (await _stored(db, turn.conversation.id))[1]
    assert (stored.status, stored.content) == ("complete", "B's words")


async def test_only_replies_of_workers_with_a_stale_or_no_heartbeat_are_orphaned(
    db: Database,
) -> None:
    shop_id = await _shop_id(db)
    alive, stale, gone, me = (uuid.uuid4().hex for _ in range(4))
    async with db.session() as session:
        for worker_id in (alive, stale, me):
            await repo.beat(session, worker_id=worker_id)
        await session.execute(
            sa.update(repo.workers)
            .where(repo.workers.c.id == stale)
            .values(heartbeat_at=utcnow() - timedelta(seconds=11))
        )
    turns = {
        worker_id: await _turn(db, shop_id, new_id(), worker_id=worker_id)
        for worker_id in (alive, stale, gone, me, None)
    }
    async with db.session() as session:
        # (The database is the whole suite's: others' orphans may be ended here too.)
        assert await repo.end_orphaned_replies(session, dead_after=10, this_worker=me) >= 2
    ended = {}
    for worker_id, turn in turns.items():
        assert turn.conversation.id is not None
        reply = (await _stored(db, turn.conversation.id))[1]
        ended[worker_id] = (reply.status, reply.error_code)
    # Only now: without its row, any running server's next beat ends a worker's replies.
    async with db.session() as session:
        for worker_id in (alive, stale, me):
            await repo.remove_worker(session, worker_id=worker_id)
    assert ended == {
        alive: ("streaming", None),
        stale: ("error", "interrupted"),
        gone: ("error", "interrupted"),
        me: ("streaming", None),  # never this worker's own
        None: ("streaming", None),  # no worker: left to the stale-reply fallback
    }


async def _counters(db: Database, shop_id: int, session_id: str) -> tuple[int, str | None]:
    async with db.transaction() as connection:
        found = await repo.session_conversation(connection, shop_id=shop_id, session_id=session_id)
    assert found is not None
    return found.message_count, found.first_question


async def test_a_conversation_counts_its_messages_and_keeps_its_first_question(
    db: Database,
) -> None:
    """What the merchant's statistics read instead of every message (app/repo/stats.py)."""
    shop_id = await _shop_id(db)
    session_id, repeated = new_id(), new_id()
    first = await _turn(db, shop_id, session_id, content="Do you ship?", client_message_id=repeated)
    assert first.conversation.message_count == 2
    assert first.conversation.first_question == "Do you ship?"
    await _finish(db, first, "Yes.")
    await _turn(db, shop_id, session_id, content="Do you ship?", client_message_id=repeated)
    assert await _counters(db, shop_id, session_id) == (2, "Do you ship?"), "a retry adds none"
    await _turn(db, shop_id, session_id, content="And to Canada?")
    assert await _counters(db, shop_id, session_id) == (4, "Do you ship?")
    assert first.conversation.id is not None
    assert len(await _stored(db, first.conversation.id)) == 4
    async with db.session() as session:
        await repo.open_conversation(
            session, shop_id=shop_id, session_id=session_id, customer_id=None
        )
        await repo.stop_conversation_replies(session, conversation_id=first.conversation.id)
        await repo.end_conversation(session, conversation_id=first.conversation.id)
    assert await _counters(db, shop_id, session_id) == (4, "Do you ship?"), "opening adds none"
    await _turn(db, shop_id, session_id, content="Still there?")
    assert await _counters(db, shop_id, session_id) == (4, "Do you ship?"), "refused: none"


async def test_a_turn_that_fails_half_way_keeps_nothing_of_it_on_either_database(
    db: Database,
) -> None:
    # A second streaming reply in one conversation breaks a unique index when the reply is
    # written, after the conversation and the shopper's message: on PostgreSQL the one
    # statement fails whole; on SQLite the turn's own transaction goes back.
    shop_id = await _shop_id(db)
    session_id = new_id()
    first = await _turn(db, shop_id, session_id, content="one")
    with pytest.raises(sa_exc.IntegrityError):
        await _turn(db, shop_id, session_id, content="two")
    assert [row.content for row in await _stored(db, first.conversation.id)] == ["one", ""]
    async with db.transaction() as connection:
        count = await connection.scalar(
            sa.select(conversations.c.message_count).where(
                conversations.c.id == first.conversation.id
            )
        )
    assert count == 2, "the failed turn counted nothing"
    # The connection is usable again, and the next turn after the reply ends goes through.
    await _finish(db, first, "done")
    third = await _turn(db, shop_id, session_id, content="three")
    assert third.user is not None and third.user.content == "three"


async def test_a_turn_inside_a_callers_transaction_goes_with_it(db: Database) -> None:
    # Inside a caller's transaction the turn is part of it: rolled back with it, the turn
    # leaves nothing, on either database.
    shop_id = await _shop_id(db)
    session_id = new_id()

    class Undone(Exception):
        pass

    with pytest.raises(Undone):
        async with db.transaction() as connection:
            opened = await repo.open_turn(
                connection,
                shop_id=shop_id,
                session_id=session_id,
                customer_id=None,
                content="kept?",
                client_message_id=None,
            )
            assert opened.user is not None
            raise Undone
    async with db.transaction() as connection:
        found = await repo.session_conversation(connection, shop_id=shop_id, session_id=session_id)
    assert found is None
