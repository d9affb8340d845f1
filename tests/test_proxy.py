"""The storefront API: turns, history, sessions, limits, retries and isolation."""

from __future__ import annotations

import asyncio
from unittest.mock import ANY

import sqlalchemy as sa
from sqlmodel import col

from app.db import Database
from app.models import Message
from tests.factories import ProxyClient, iter_events, make_shop, messages_of, new_id


async def test_first_message_creates_conversation_and_streams_reply(
    client: ProxyClient, db: Database
) -> None:
    session_id = new_id()
    assert await messages_of(db, client.shop, session_id) == []

    turn = await client.send(session_id, "  hello  ")

    assert turn.status_code == 200
    assert [e.event for e in turn.events][0] == "start"
    assert turn.last.event == "done"
    assert turn.last.data["finish_reason"] == "stop"
    start = turn.first("start").data
    assert set(start) == {"conversation_id", "user_message_id", "assistant_message_id"}
    deltas = [e for e in turn.events if e.event == "delta"]
    assert len(deltas) > 1, "the reply streams in pieces"
    assert deltas[-1].id == f"{start['assistant_message_id']}:{len(turn.text)}"
    saved = await messages_of(db, client.shop, session_id)
    assert [(m.role, m.status) for m in saved] == [("user", "complete"), ("assistant", "complete")]
    assert saved[0].content == "hello", "the message is trimmed"
    assert saved[0].public_id == start["user_message_id"]
    assert saved[1].content == turn.text


async def test_offline_assistant_answers_from_the_shop_faq(server, db: Database) -> None:
    shop = await make_shop(
        db,
        faq=[
            ("How long does shipping take?", "Orders ship within 2 business days."),
            ("What is your return policy?", "You can return unworn items within 30 days."),
        ],
    )
    async with ProxyClient(server.url, shop) as client:
        turn = await client.send(new_id(), "Can I return my shoes?")
        assert turn.text == "You can return unworn items within 30 days."
        turn = await client.send(new_id(), "what are the shipping times")
        assert turn.text == "Orders ship within 2 business days."
        turn = await client.send(new_id(), "Do you sell gift cards?")
        assert "could not find an answer" in turn.text
        assert "How long does shipping take?" in turn.text


async def test_history_pages_newest_first(client: ProxyClient) -> None:
    session_id = new_id()
    for i in range(3):
        turn = await client.send(session_id, f"question {i}")
        assert turn.status_code == 200

    first = await client.history(session_id, limit="4")
    assert first.status_code == 200
    page = first.json()
    assert page["status"] == "active"
    assert [m["content"] for m in page["messages"]][::2] == ["question 1", "question 2"]
    assert [m["role"] for m in page["messages"]] == ["user", "assistant"] * 2
    assert all(
        m["status"] == "complete" and m["created_at"].endswith("Z") for m in page["messages"]
    )
    assert page["next_before"] == page["messages"][0]["id"]

    older = (await client.history(session_id, limit="4", before=page["next_before"])).json()
    assert [m["content"] for m in older["messages"]][0] == "question 0"
    assert len(older["messages"]) == 2
    assert older["next_before"] is None


async def test_unknown_session_has_empty_history_and_status(client: ProxyClient) -> None:
    session_id = new_id()
    response = await client.history(session_id)
    assert response.status_code == 200
    assert response.json() == {
        "session_id": session_id,
        "status": "unknown",
        "handler": "assistant",
        "messages": [],
        "next_before": None,
    }
    status = await client.get("/proxy/sessions/status", {"session_id": session_id})
    assert status.json() == {"session_id": session_id, "status": "unknown", "handler": "assistant"}


async def test_end_session_keeps_it_for_the_merchant_and_a_new_one_starts_fresh(
    client: ProxyClient, db: Database
) -> None:
    session_id = new_id()
    await client.send(session_id, "hello")
    ended = await client.post("/proxy/sessions/end", {"session_id": session_id})
    assert ended.status_code == 200
    assert ended.json() == {"session_id": session_id, "status": "ended", "handler": "assistant"}
    status = await client.get("/proxy/sessions/status", {"session_id": session_id})
    assert status.json()["status"] == "ended"

    again = await client.send(session_id, "still there?")
    assert again.status_code == 409
    assert again.body["error"]["code"] == "session_ended"
    assert len(await messages_of(db, client.shop, session_id)) == 2, "the old one stays"

    fresh = new_id()
    turn = await client.send(fresh, "hello again")
    assert turn.status_code == 200
    history = (await client.history(fresh)).json()
    assert [m["content"] for m in history["messages"] if m["role"] == "user"] == ["hello again"]


async def test_repeated_client_message_id_does_not_create_a_second_turn(
    client: ProxyClient, db: Database
) -> None:
    session_id, client_message_id = new_id(), new_id()
    first = await client.send(session_id, "hello", client_message_id)
    second = await client.send(session_id, "hello", client_message_id)

    assert second.status_code == 200
    assert second.first("start").data == first.first("start").data
    assert second.text == first.text
    assert second.last.event == "done"
    assert len(await messages_of(db, client.shop, session_id)) == 2


async def test_concurrent_retries_with_one_client_message_id_make_one_turn(
    client: ProxyClient, db: Database
) -> None:
    session_id, client_message_id = new_id(), new_id()
    await client.send(session_id, "warm up")
    turns = await asyncio.gather(
        *(client.send(session_id, "hello", client_message_id) for _ in range(4))
    )
    assert {t.status_code for t in turns} == {200}
    assert len({t.first("start").data["assistant_message_id"] for t in turns}) == 1
    assert len(await messages_of(db, client.shop, session_id)) == 4


async def test_new_turn_while_a_reply_streams_is_409(start_server, db: Database) -> None:
    slow = start_server(offline_word_delay=0.1)
    shop = await make_shop(db)
    async with ProxyClient(slow.url, shop) as client:
        session_id = new_id()
        async with client.open_turn(session_id, "hello there") as response:
            assert response.status_code == 200
            second = await client.send(session_id, "are you there?")
            assert second.status_code == 409
            assert second.body["error"]["code"] == "turn_in_progress"
            await response.aread()
        third = await client.send(session_id, "are you there?")
        assert third.status_code == 200
        saved = await messages_of(db, shop, session_id)
        assert [m.content for m in saved if m.role == "user"] == ["hello there", "are you there?"]


async def test_racing_turns_in_one_conversation_one_wins(start_server, db: Database) -> None:
    slow = start_server(offline_word_delay=0.05)
    shop = await make_shop(db)
    async with ProxyClient(slow.url, shop) as client:
        session_id = new_id()
        await client.send(session_id, "first")
        turns = await asyncio.gather(*(client.send(session_id, f"race {i}") for i in range(5)))
        assert sorted(t.status_code for t in turns) == [200, 409, 409, 409, 409]
        saved = await messages_of(db, shop, session_id)
        assert len(saved) == 4
        assert all(m.status == "complete" for m in saved)


async def _fail(db: Database, shop: str, session_id: str) -> None:
    """The session's last reply failed (as an upstream error would leave it)."""
    reply = [m for m in await messages_of(db, shop, session_id) if m.role == "assistant"][-1]
    async with db.session() as session:
        await session.execute(
            sa.update(Message)
            .where(col(Message.id) == reply.id)
            .values(status="error", error_code="upstream_error")
        )


async def test_retry_of_a_failed_turn_while_another_reply_streams_is_409(
    start_server, db: Database
) -> None:
    """A second tab's turn streams: the first tab's Retry waits its turn, as a new one would."""
    slow = start_server(offline_word_delay=0.05)
    shop = await make_shop(db)
    async with ProxyClient(slow.url, shop) as client:
        session_id, failed = new_id(), new_id()
        await client.send(session_id, "hello", failed)
        await _fail(db, shop, session_id)
        async with client.open_turn(session_id, "Tell me everything please") as response:
            events = iter_events(response)
            await anext(events)
            retry = await client.send(session_id, "hello", failed)
            rest = [e async for e in events]
        assert retry.status_code == 409
        assert retry.body == {"error": {"code": "turn_in_progress", "message": ANY}}
        assert rest[-1].event == "done", "the other reply was not disturbed"
        again = await client.send(session_id, "hello", failed)
    assert again.last.event == "done", "once it is done, the retry regenerates the failed reply"
    saved = await messages_of(db, shop, session_id)
    assert [(m.role, m.status) for m in saved] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ] * 2


async def test_history_gives_each_message_of_the_shopper_its_client_message_id(
    client: ProxyClient,
) -> None:
    """What the widget needs to rebuild a failed last turn after a reload: its text and id."""
    session_id, client_message_id = new_id(), new_id()
    await client.send(session_id, "hello", client_message_id)
    await client.send(session_id, "and without one")
    messages = (await client.history(session_id)).json()["messages"]
    assert [(m["role"], m["client_message_id"]) for m in messages] == [
        ("user", client_message_id),
        ("assistant", None),
        ("user", None),
        ("assistant", None),
    ]
