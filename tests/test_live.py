"""Live conversations (docs/live.md): the session's live stream, its replay after a drop, a
restart or on another worker, handing over to a person, the team's inbox and actions, the
email offer, and the limits."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from app import repo
from app.db import Database
from app.models import Conversation, ConversationEvent, Message
from tests.factories import ProxyClient, messages_of, new_id, read_turn, shop_id_of
from tests.live_client import LiveStream, TeamClient
from tests.servers import LiveServer

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


async def conversation_row(db: Database, shop: str, session_id: str) -> Conversation:
    async with db.session() as session:
        found = await session.execute(
            sa.select(Conversation).where(
                Conversation.shop_id == await shop_id_of(db, shop),  # type: ignore[arg-type]
                Conversation.session_id == session_id,  # type: ignore[arg-type]
            )
        )
        return found.scalar_one()


async def started(client: ProxyClient, session_id: str, text: str = "Do you ship?") -> str:
    """A conversation with one turn: its public id."""
    turn = await client.send(session_id, text)
    assert turn.status_code == 200
    return str(turn.first("start").data["conversation_id"])


# ---- the stream ---------------------------------------------------------------------------


async def test_a_stream_for_an_unknown_session_is_an_empty_stream(client: ProxyClient) -> None:
    async with LiveStream(client, new_id()) as live:
        state = live.of("state")[0]
        assert state.data == {
            "session_id": live.session_id,
            "status": "unknown",
            "handler": "assistant",
            "assignee": None,
            "team_online": False,
            "contact_email": False,
        }
        assert state.id == "0.0"
        closed = await live.wait_for(lambda e: e.event == "closed", timeout=10)
        assert closed.data == {"reason": "timeout"}  # after LIVE_STREAM_SECONDS (3 s in tests)
    assert [e.event for e in live.events] == ["state", "closed"]


async def test_a_turn_in_another_tab_reaches_the_stream_whole(client: ProxyClient) -> None:
    session_id = new_id()
    async with LiveStream(client, session_id) as live:
        sent_id = new_id()
        turn = await client.send(session_id, "Do you ship?", sent_id)  # the other tab
        reply_id = turn.first("start").data["assistant_message_id"]
        done = await live.wait_for(lambda e: e.event == "message" and e.data["id"] == reply_id)
    kinds = [e.event for e in live.events]
    assert kinds[:3] == ["state", "state", "message"], kinds  # the conversation began
    user = live.events[2].data
    assert user["role"] == "user" and user["content"] == "Do you ship?"
    assert user["client_message_id"] == sent_id
    assert user["id"] == turn.first("start").data["user_message_id"]
    assert live.of("reply")[0].data["assistant_message_id"] == reply_id
    assert done.data["status"] == "complete" and done.data["role"] == "assistant"
    relayed = "".join(e.data["text"] for e in live.of("delta"))
    assert relayed == done.data["content"] == turn.text
    assert all(e.id for e in live.events if e.event != "typing")


async def test_a_reconnect_from_its_last_id_misses_nothing(
    client: ProxyClient, db: Database
) -> None:
    session_id = new_id()
    await started(client, session_id)
    async with LiveStream(client, session_id) as live:
        cursor = live.cursor
    # While nobody listens: two more turns, and an ending.
    await client.send(session_id, "What is your return policy?")
    await client.send(session_id, "Thanks")
    assert (await client.post("/proxy/sessions/end", {"session_id": session_id})).status_code == 200
    async with LiveStream(client, session_id, cursor) as again:
        await again.wait_for(lambda e: e.event == "status" and e.data["kind"] == "ended")
    contents = [(e.data["role"], e.data["content"]) for e in again.of("message")]
    history = [(m.role, m.content) for m in await messages_of(db, client.shop, session_id)][2:]
    assert contents == history and len(contents) == 4
    assert again.of("state")[-1].data["status"] == "ended"
    # From the last id of all: nothing again.
    async with LiveStream(client, session_id, again.cursor) as last:
        await last.wait_for(lambda e: e.event == "closed")
    assert not last.of("message") and not last.of("status")


async def test_a_reconnect_in_the_middle_of_a_reply_goes_on_from_its_offset(
    start_server: Callable[..., LiveServer], db: Database
) -> None:
    slow = start_server(offline_word_delay=0.05)
    async with ProxyClient.for_new_shop(slow.url, db) as client:
        session_id = new_id()
        await started(client, session_id, "hi")
        async with LiveStream(client, session_id) as live:
            async with client.open_turn(session_id, "What is your return policy?") as response:
                await live.wait_for(lambda e: e.event == "delta")
                await live.wait_for(lambda e: len(live.of("delta")) >= 3)
                await live.stop()
                cursor = live.cursor
                assert cursor is not None and cursor.count(".") == 2  # M.E.O
                sent = "".join(e.data["text"] for e in live.of("delta"))
                async with LiveStream(client, session_id, cursor) as rest:
                    final = await rest.wait_for(lambda e: e.event == "message")
                await read_turn(response)
    rest_text = "".join(e.data["text"] for e in rest.of("delta"))
    assert sent + rest_text == final.data["content"]
    assert final.data["status"] == "complete"


async def test_a_bad_cursor_is_a_clear_400(client: ProxyClient) -> None:
    for bad in ("abc", "1", "1.2.3.4", "١.٢", "1.-2", "9" * 19 + ".1", "1..2"):
        in_query = client.url(
            "/proxy/sessions/events", {"session_id": new_id(), "last_event_id": bad}
        )
        responses = [await client.http.get(in_query)]
        if bad.isascii():
            url = client.url("/proxy/sessions/events", {"session_id": new_id()})
            responses.append(await client.http.get(url, headers={"Last-Event-ID": bad}))
        for response in responses:
            assert response.status_code == 400, bad
            assert response.json()["error"]["code"] == "invalid_last_event_id"


async def test_a_new_stream_beyond_the_cap_closes_the_oldest(client: ProxyClient) -> None:
    session_id = new_id()
    await started(client, session_id)
    oldest = LiveStream(client, session_id)
    await oldest.__aenter__()
    others = [LiveStream(client, session_id) for _ in range(4)]
    try:
        for other in others:
            await other.__aenter__()
        closed = await oldest.wait_for(lambda e: e.event == "closed", timeout=5)
        assert closed.data == {"reason": "replaced"}
        assert not any(
            o.of("closed") and o.of("closed")[0].data["reason"] == "replaced" for o in others
        )
    finally:
        for other in [oldest, *others]:
            await other.stop()


async def test_another_customers_conversation_is_not_streamed(client: ProxyClient) -> None:
    session_id = new_id()
    mine = client.as_shop(client.shop, customer_id="1001")
    await started(mine, session_id)
    other = client.as_shop(client.shop, customer_id="2002")
    async with LiveStream(other, session_id) as live:
        await mine.send(session_id, "Anything new?")
        await asyncio.sleep(0.5)
    assert live.of("state")[0].data["status"] == "unknown"
    assert not live.of("message")
    await mine.http.aclose()
    await other.http.aclose()


# ---- handing over -------------------------------------------------------------------------


async def test_handover_from_the_menu_quiets_the_assistant_until_handed_back(
    client: ProxyClient, server: LiveServer, db: Database
) -> None:
    session_id = new_id()
    conversation = await started(client, session_id)
    async with (
        TeamClient(server.url, client.shop, sub="7") as team,
        LiveStream(client, session_id) as live,
    ):
        await team.name("Alex")
        response = await client.post("/proxy/sessions/handover", {"session_id": session_id})
        assert response.status_code == 200
        assert response.json() == {
            "session_id": session_id,
            "status": "active",
            "handler": "waiting",
            "team_online": False,
        }
        await live.wait_for(lambda e: e.event == "status" and e.data["kind"] == "handed_over")
        waiting = await live.wait_for(
            lambda e: e.event == "state" and e.data["handler"] == "waiting"
        )
        assert waiting.data["team_online"] is False

        quiet = await client.send(session_id, "Where is my order #1001?")
        assert quiet.status_code == 200, quiet.body
        assert [e.event for e in quiet.events] == ["start", "queued"]
        assert quiet.first("start").data["assistant_message_id"] == ""
        assert quiet.first("queued").data == {"handler": "waiting", "team_online": False}
        stored = await messages_of(db, client.shop, session_id)
        assert [m.role for m in stored] == ["user", "assistant", "user"]  # no reply: quiet
        assert (await conversation_row(db, client.shop, session_id)).message_count == 3

        taken = await team.act(conversation, "take")
        assert taken.status_code == 200, taken.text
        assert taken.json()["handler"] == "team"
        assert taken.json()["assignee"] == {"sub": "7", "name": "Alex"}
        joined = await live.wait_for(lambda e: e.event == "status" and e.data["kind"] == "joined")
        assert joined.data["name"] == "Alex"
        sent = await team.act(conversation, "messages", {"message": "It ships tomorrow."})
        assert sent.status_code == 201, sent.text
        assert sent.json()["message"]["role"] == "team"
        assert sent.json()["message"]["author"] == "Alex"
        shown = await live.wait_for(lambda e: e.event == "message" and e.data["role"] == "team")
        assert shown.data["content"] == "It ships tomorrow." and shown.data["author"] == "Alex"

        back = await team.act(conversation, "hand-back")
        assert back.status_code == 200 and back.json()["handler"] == "assistant"
        await live.wait_for(lambda e: e.event == "status" and e.data["kind"] == "handed_back")
        answered = await client.send(session_id, "Do you ship?")
        assert answered.text  # the assistant answers again
    history = (await client.history(session_id)).json()
    assert history["handler"] == "assistant"
    assert [m["role"] for m in history["messages"]] == [
        "user", "assistant", "user", "team", "user", "assistant"
    ]  # fmt: skip
    assert history["messages"][3]["author"] == "Alex"


@pytest.mark.parametrize(
    "words",
    [
        "Can I speak to a human?",
        "I want to talk to someone",
        "Je voudrais parler à quelqu'un",
        "Ich möchte mit einem Mitarbeiter sprechen",
        "Quiero hablar con alguien",
    ],
)
async def test_asking_for_a_person_in_words_hands_over(
    client: ProxyClient, db: Database, words: str
) -> None:
    session_id = new_id()
    turn = await client.send(session_id, words)
    assert turn.status_code == 200
    assert "person from our team" in turn.text
    conversation = await conversation_row(db, client.shop, session_id)
    assert conversation.handler == "waiting"
    assert conversation.waiting_since is not None
    stored = await messages_of(db, client.shop, session_id)
    assert '"hand_over_to_person"' in (stored[-1].tools or "")


async def test_a_question_that_is_not_for_a_person_stays_with_the_assistant(
    client: ProxyClient, db: Database
) -> None:
    session_id = new_id()
    await client.send(session_id, "Is this sweater made of human hair?")
    assert (await conversation_row(db, client.shop, session_id)).handler == "assistant"


async def test_two_team_members_taking_at_once_exactly_one_gets_it(
    client: ProxyClient, server: LiveServer
) -> None:
    for round_ in range(4):
        session_id = new_id()
        conversation = await started(client, session_id)
        async with (
            TeamClient(server.url, client.shop, sub="1") as one,
            TeamClient(server.url, client.shop, sub="2") as two,
        ):
            await one.name("Sam")
            await two.name("Kim")
            first, second = await asyncio.gather(
                one.act(conversation, "take"), two.act(conversation, "take")
            )
        statuses = sorted([first.status_code, second.status_code])
        assert statuses == [200, 409], (round_, first.text, second.text)
        winner, loser = (first, second) if first.status_code == 200 else (second, first)
        holder = winner.json()["assignee"]["name"]
        assert loser.json()["error"]["code"] == "conversation_taken"
        assert loser.json()["error"]["message"] == f"{holder} has this conversation."


async def test_taking_a_conversation_stops_the_reply_being_generated(
    start_server: Callable[..., LiveServer], db: Database
) -> None:
    slow = start_server(offline_word_delay=0.1)
    async with (
        ProxyClient.for_new_shop(slow.url, db) as client,
        TeamClient(slow.url, client.shop) as team,
    ):
        session_id = new_id()
        await started(client, session_id, "hi")
        async with client.open_turn(session_id, "What is your return policy?") as response:
            lines = response.aiter_lines()
            async for line in lines:
                if line.startswith("event: delta"):
                    break
            conversation = (await conversation_row(db, client.shop, session_id)).public_id
            assert (await team.act(conversation, "take")).status_code == 200
            async for _line in lines:
                pass
        stored = await messages_of(db, client.shop, session_id)
    assert stored[-1].role == "assistant" and stored[-1].status == "stopped"


async def test_team_actions_refuse_what_they_cannot_do(
    client: ProxyClient, server: LiveServer, db: Database
) -> None:
    session_id = new_id()
    conversation = await started(client, session_id)
    async with (
        TeamClient(server.url, client.shop, sub="1") as one,
        TeamClient(server.url, client.shop, sub="2") as two,
    ):
        assert (await one.act(conversation, "take")).status_code == 200
        for action, body in (("messages", {"message": "hi"}), ("hand-back", None), ("end", None)):
            refused = await two.act(conversation, action, body)
            assert refused.status_code == 409, (action, refused.text)
            assert refused.json()["error"]["code"] == "conversation_taken"
        for body, status, code in (
            ({"message": ""}, 400, "empty_message"),
            ({"message": "x" * 4001}, 413, "message_too_long"),
            ({"message": 5}, 400, "invalid_message"),
            ({}, 400, "invalid_message"),
        ):
            response = await one.act(conversation, "messages", body)
            assert response.status_code == status, (body, response.text)
            assert response.json()["error"]["code"] == code
        assert (await one.act(conversation, "messages", {"message": "x" * 4000})).status_code == 201
        assert (await one.act(conversation, "end")).status_code == 200
        ended = await one.act(conversation, "messages", {"message": "still there?"})
        assert ended.status_code == 409 and ended.json()["error"]["code"] == "conversation_ended"
        assert (await one.act(conversation, "take")).status_code == 409
        missing = await one.act(new_id(), "take")
        assert missing.status_code == 404
    # Ended by the team: the shopper's next page starts afresh.
    status = (await client.get("/proxy/sessions/status", {"session_id": session_id})).json()
    assert status["status"] == "ended"


async def test_another_shops_team_never_sees_or_touches_this_shops_conversations(
    client: ProxyClient, server: LiveServer, db: Database
) -> None:
    session_id = new_id()
    conversation = await started(client, session_id)
    await client.post("/proxy/sessions/handover", {"session_id": session_id})
    async with (
        ProxyClient.for_new_shop(server.url, db) as other_shop,
        TeamClient(server.url, other_shop.shop) as stranger,
    ):
        for action, body in (
            ("take", None),
            ("messages", {"message": "hello"}),
            ("hand-back", None),
            ("end", None),
            ("read", None),
            ("typing", None),
        ):
            response = await stranger.act(conversation, action, body)
            assert response.status_code == 404, (action, response.text)
        inbox = (await stranger.get("/api/admin/inbox")).json()
        assert inbox["counts"] == {"waiting": 0, "team": 0, "assistant": 0}
    assert (await conversation_row(db, client.shop, session_id)).handler == "waiting"


# ---- the inbox ----------------------------------------------------------------------------


async def test_the_inbox_orders_its_queues_and_counts_them(
    client: ProxyClient, server: LiveServer
) -> None:
    sessions = [new_id() for _ in range(4)]
    conversations = [await started(client, s) for s in sessions]
    for session_id in sessions[:2]:  # the first waits longest
        await client.post("/proxy/sessions/handover", {"session_id": session_id})
    async with TeamClient(server.url, client.shop, sub="9") as team:
        await team.name("Robin")
        await team.act(conversations[2], "take")
        inbox = (await team.get("/api/admin/inbox")).json()
        assert inbox["counts"] == {"waiting": 2, "team": 1, "assistant": 1}
        assert [c["id"] for c in inbox["waiting"]] == conversations[:2]
        assert [c["id"] for c in inbox["team"]] == [conversations[2]]
        assert [c["id"] for c in inbox["assistant"]] == [conversations[3]]
        first = inbox["waiting"][0]
        assert first["waiting_seconds"] >= 0 and first["unread"] is True
        assert first["first_question"] == "Do you ship?"
        assert first["last_message"]["role"] == "assistant"
        for _ in range(80):  # a turn is the shopper's presence, written within 5 s
            if first["online"]:
                break
            await asyncio.sleep(0.1)
            first = (await team.get("/api/admin/inbox")).json()["waiting"][0]
        assert first["online"] is True
        assert inbox["team"][0]["assignee"] == {"sub": "9", "name": "Robin"}
        assert (await team.act(conversations[0], "read")).status_code == 200
        inbox = (await team.get("/api/admin/inbox")).json()
        assert inbox["waiting"][0]["unread"] is False
        await client.send(sessions[0], "Hello?")
        inbox = (await team.get("/api/admin/inbox")).json()
        assert inbox["waiting"][0]["unread"] is True
        assert inbox["waiting"][0]["last_message"]["content"] == "Hello?"


async def test_the_inbox_stream_tells_of_every_change(
    client: ProxyClient, server: LiveServer
) -> None:
    session_id = new_id()
    async with TeamClient(server.url, client.shop) as team:
        seen: list[dict[str, Any]] = []

        async def follow() -> None:
            async with team.http.stream(
                "GET", "/api/admin/inbox/events", headers=team.headers()
            ) as response:
                assert response.status_code == 200
                from tests.factories import iter_events

                async for event in iter_events(response):
                    seen.append({"event": event.event, **event.data})

        reader = asyncio.create_task(follow())
        try:
            for _ in range(50):
                if seen:
                    break
                await asyncio.sleep(0.05)
            assert seen[0] == {"event": "ready"}
            conversation = await started(client, session_id)
            await client.post("/proxy/sessions/handover", {"session_id": session_id})
            for _ in range(100):
                kinds = [s.get("kind") for s in seen]
                if "handed_over" in kinds and "reply" in kinds:  # (a turn's come in a batch)
                    break
                await asyncio.sleep(0.05)
            assert {"event": "inbox", "conversation_id": conversation, "kind": "message"} in seen
            # The assistant's reply ended (the turn was read to its end before the hand-over).
            assert {"event": "inbox", "conversation_id": conversation, "kind": "reply"} in seen
            assert {
                "event": "inbox", "conversation_id": conversation, "kind": "handed_over"
            } in seen  # fmt: skip
            # The team member's open inbox makes the team "online" for shoppers.
            handed = await client.post("/proxy/sessions/handover", {"session_id": new_id()})
            assert handed.json()["team_online"] is True
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


async def test_a_team_member_sets_the_name_shoppers_see(
    client: ProxyClient, server: LiveServer
) -> None:
    async with TeamClient(server.url, client.shop, sub="55") as team:
        me = (await team.get("/api/admin/me")).json()
        assert me == {"sub": "55", "display_name": None}
        await team.name("  Jo   Smith ")
        assert (await team.get("/api/admin/me")).json() == {"sub": "55", "display_name": "Jo Smith"}
        for bad in ("", "   ", "x" * 61, 7):
            response = await team.http.put(
                "/api/admin/me", json={"display_name": bad}, headers=team.headers()
            )
            assert response.status_code == 400, bad
            assert response.json()["error"]["code"] == "invalid_display_name"


# ---- the email offer, presence, abandonment ---------------------------------------------


async def test_an_email_left_when_nobody_is_online_is_kept_and_redacted(
    client: ProxyClient, server: LiveServer, db: Database
) -> None:
    from tests.test_webhooks import send_webhook  # the signed delivery, as Shopify sends it

    session_id = new_id()
    handed = await client.post("/proxy/sessions/handover", {"session_id": session_id})
    assert handed.json()["team_online"] is False
    async with LiveStream(client, session_id) as live:
        for bad in ("nope", "a@b", "<a@b.co>", "a b@c.de", 5, "x" * 320 + "@a.co"):
            refused = await client.post(
                "/proxy/sessions/contact", {"session_id": session_id, "email": bad}
            )
            assert refused.status_code == 400, bad
            assert refused.json()["error"]["code"] == "invalid_email"
        saved = await client.post(
            "/proxy/sessions/contact", {"session_id": session_id, "email": "Shopper@Example.com"}
        )
        assert saved.json() == {"session_id": session_id, "contact_email": True}
        await live.wait_for(lambda e: e.event == "state" and e.data["contact_email"] is True)
        for _ in range(3):  # the same address again: saved once, one event
            again = await client.post(
                "/proxy/sessions/contact",
                {"session_id": session_id, "email": "Shopper@Example.com"},
            )
            assert again.status_code == 200
    async with db.session() as session:
        kinds = (
            (
                await session.execute(
                    sa.select(ConversationEvent.kind)
                    .join(
                        Conversation,
                        Conversation.id == ConversationEvent.conversation_id,  # type: ignore[arg-type]
                    )
                    .where(Conversation.session_id == session_id)  # type: ignore[arg-type]
                )
            )
            .scalars()
            .all()
        )
    assert sorted(kinds) == ["contact_saved", "handed_over"]
    conversation = await conversation_row(db, client.shop, session_id)
    assert conversation.contact_email == "Shopper@Example.com"
    async with TeamClient(server.url, client.shop) as team:
        inbox = (await team.get("/api/admin/inbox")).json()
        assert inbox["waiting"][0]["contact_email"] == "Shopper@Example.com"
    body = {
        "shop_id": 1,
        "shop_domain": client.shop,
        "customer": {"id": 777, "email": "shopper@example.com", "phone": None},
        "orders_to_redact": [],
    }
    response = await send_webhook(server, "customers/redact", client.shop, body)
    assert response.status_code == 200
    for _ in range(50):
        conversation = await conversation_row(db, client.shop, session_id)
        if conversation.contact_email is None:
            break
        await asyncio.sleep(0.1)
    assert conversation.contact_email is None


async def test_the_team_coming_online_is_told_to_the_shoppers_waiting(
    start_server: Callable[..., LiveServer], db: Database
) -> None:
    # Streams longer than the tests' 3 s: the news comes over the open stream, not a reconnect.
    server = start_server(live_stream_seconds=60.0)
    async with (
        ProxyClient.for_new_shop(server.url, db) as client,
        TeamClient(server.url, client.shop, sub="1") as one,
        TeamClient(server.url, client.shop, sub="2") as two,
        TeamClient(server.url, client.shop, sub="3") as holder,
    ):
        waiting, held, chatting = new_id(), new_id(), new_id()
        handed = await client.post("/proxy/sessions/handover", {"session_id": waiting})
        assert handed.json()["team_online"] is False
        taken = await holder.act(await started(client, held), "take")  # not online: no inbox
        assert taken.status_code == 200, taken.text
        await started(client, chatting)
        async with (
            LiveStream(client, waiting) as live,
            LiveStream(client, held) as held_live,
            LiveStream(client, chatting) as assistant,
        ):
            for stream, handler in ((live, "waiting"), (held_live, "team")):
                first = stream.of("state")[-1].data
                assert (first["handler"], first["team_online"]) == (handler, False)
            async with one.inbox_open():
                told = await live.wait_for(lambda e: e.event == "state" and e.data["team_online"])
                assert told.data["handler"] == "waiting" and told.data["contact_email"] is False
                assert told.id == live.of("state")[0].id  # nothing else happened
                told = await held_live.wait_for(
                    lambda e: e.event == "state" and e.data["team_online"]
                )
                assert told.data["handler"] == "team"
                # Told once: a second team member, or the first again, finds the team online.
                async with two.inbox_open():
                    pass
                async with one.inbox_open():
                    await asyncio.sleep(1.0)
            for stream in (live, held_live, assistant):
                assert not stream.ended.is_set() and not stream.of("closed")  # the same stream
        assert [e.data["team_online"] for e in live.of("state")] == [False, True]
        assert [e.data["team_online"] for e in held_live.of("state")] == [False, True]
        assert [e.event for e in assistant.events] == ["state"]  # with the assistant: not told


async def test_heartbeats_keep_a_conversation_active_and_a_silent_one_is_abandoned(
    db: Database, database_url: str
) -> None:
    """The presence batch and the sweeper, on the database: a page that beats stays active
    past the idle limit; one that does not is abandoned, with its event."""
    from datetime import timedelta

    from app.conversations.presence import Presence
    from app.models import utcnow
    from app.sweeper import Sweeper
    from tests.factories import make_shop

    shop = await make_shop(db)
    shop_id = await shop_id_of(db, shop)
    beating, silent = new_id(), new_id()
    async with db.session() as session:
        for session_id in (beating, silent):
            await repo.open_turn(
                session,
                shop_id=shop_id,
                session_id=session_id,
                customer_id=None,
                content="hello",
                client_message_id=None,
            )
        await session.execute(
            sa.update(Message)
            .where(Message.status == "streaming")  # type: ignore[arg-type]
            .values(status="complete")
        )
        # Both last wrote 40 minutes ago.
        await session.execute(
            sa.update(Conversation)
            .where(Conversation.shop_id == shop_id)  # type: ignore[arg-type]
            .values(last_activity_at=utcnow() - timedelta(minutes=40))
        )
    presence = Presence(db)
    for _ in range(3):  # three heartbeats of one page in a batch: one write
        presence.seen(shop_id, beating)
    await presence.flush()
    assert presence.writes == 1
    presence.seen(shop_id, beating)  # a recent one is not written again
    await presence.flush()
    assert presence.writes == 1
    announced: list[Any] = []

    async def announce(left: list[Any]) -> None:
        announced.extend(left)

    sweeper = Sweeper(db=db, abandon_after_minutes=30, interval=60, announce=announce)
    await sweeper.sweep()
    async with db.session() as session:
        rows = {
            c.session_id: c
            for c in (
                await session.execute(
                    sa.select(Conversation).where(Conversation.shop_id == shop_id)  # type: ignore[arg-type]
                )
            ).scalars()
        }
        kinds = (
            (
                await session.execute(
                    sa.select(ConversationEvent.kind).where(
                        ConversationEvent.conversation_id == rows[silent].id  # type: ignore[arg-type]
                    )
                )
            )
            .scalars()
            .all()
        )
    assert rows[beating].status == "active" and rows[beating].seen_at is not None
    assert rows[silent].status == "abandoned"
    assert list(kinds) == ["abandoned"]
    assert [a[2] for a in announced] == [silent]


async def test_a_heartbeat_is_answered_without_a_conversation_and_written_later(
    client: ProxyClient, db: Database
) -> None:
    unknown = await client.post("/proxy/sessions/heartbeat", {"session_id": new_id()})
    assert unknown.status_code == 200 and unknown.json()["ok"] is True
    session_id = new_id()
    await started(client, session_id)
    response = await client.post("/proxy/sessions/heartbeat", {"session_id": session_id})
    assert response.json() == {"session_id": session_id, "ok": True}
    for _ in range(80):  # the batch is written every 5 s
        if (await conversation_row(db, client.shop, session_id)).seen_at is not None:
            break
        await asyncio.sleep(0.1)
    assert (await conversation_row(db, client.shop, session_id)).seen_at is not None


# ---- several workers ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["database", "redis"])
async def test_a_team_reply_on_one_worker_reaches_a_stream_on_another(
    start_server: Callable[..., LiveServer], db: Database, database_url: str, backend: str
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite is one process: its bus is in-process")
    if backend == "redis" and "postgresql" not in database_url:
        pytest.skip("with PostgreSQL only")
    extra = {"redis_url": REDIS_URL} if backend == "redis" else {}
    worker_a, worker_b = start_server(**extra), start_server(**extra)
    async with (
        ProxyClient.for_new_shop(worker_b.url, db) as shopper,
        TeamClient(worker_a.url, shopper.shop) as team,
    ):
        session_id = new_id()
        conversation = await started(shopper, session_id)
        async with LiveStream(shopper, session_id) as live:
            sent = await team.act(conversation, "messages", {"message": "Hi, I'm here."})
            assert sent.status_code == 201
            shown = await live.wait_for(
                lambda e: e.event == "message" and e.data["role"] == "team", timeout=5
            )
            assert shown.data["content"] == "Hi, I'm here."
            await live.wait_for(lambda e: e.event == "status" and e.data["kind"] == "joined")
            cursor = live.cursor
        # A restart: the stream comes back on the other worker from its cursor.
        await team.act(conversation, "messages", {"message": "Still there?"})
        moved = ProxyClient(worker_a.url, shopper.shop)
        async with LiveStream(moved, session_id, cursor) as again:
            missed = await again.wait_for(lambda e: e.event == "message")
        await moved.http.aclose()
    assert missed.data["content"] == "Still there?"
