"""A shop sees only its own conversations; a logged-in customer's chat is theirs alone."""

from __future__ import annotations

from app.db import Database
from tests.factories import DirectClient, ProxyClient, make_shop, messages_of, new_id


async def test_another_shop_never_sees_a_conversation(client: ProxyClient, db: Database) -> None:
    session_id = new_id()
    turn = await client.send(session_id, "my secret order question")
    reply_id = turn.first("start").data["assistant_message_id"]
    other_shop = await make_shop(db)

    async with client.as_shop(other_shop) as other:
        history = await other.history(session_id)
        assert history.json()["messages"] == []
        assert history.json()["status"] == "unknown"
        status = await other.get("/proxy/sessions/status", {"session_id": session_id})
        assert status.json()["status"] == "unknown"
        resumed = await other.get(f"/proxy/messages/{reply_id}/stream", {"session_id": session_id})
        assert resumed.status_code == 404
        stopped = await other.post(f"/proxy/messages/{reply_id}/stop", {"session_id": session_id})
        assert stopped.status_code == 404
        ended = await other.post("/proxy/sessions/end", {"session_id": session_id})
        assert ended.json()["status"] == "unknown"
        # The same session id in another shop is simply another conversation.
        own = await other.send(session_id, "hello")
        assert own.status_code == 200

    mine = (await client.history(session_id)).json()
    assert mine["status"] == "active"
    assert [m["content"] for m in mine["messages"]][0] == "my secret order question"
    assert len(await messages_of(db, other_shop, session_id)) == 2


async def test_reply_ids_are_bound_to_their_session(client: ProxyClient) -> None:
    session_id = new_id()
    turn = await client.send(session_id, "hello")
    reply_id = turn.first("start").data["assistant_message_id"]
    other_session = new_id()
    await client.send(other_session, "hi")
    response = await client.get(f"/proxy/messages/{reply_id}/stream", {"session_id": other_session})
    assert response.status_code == 404


async def test_a_customers_conversation_is_hidden_from_others(server, db: Database) -> None:
    shop = await make_shop(db)
    session_id = new_id()
    async with ProxyClient(server.url, shop, customer_id="1001") as alice:
        turn = await alice.send(session_id, "where is my order 1234?")
        assert turn.status_code == 200
        reply_id = turn.first("start").data["assistant_message_id"]
        assert len((await alice.history(session_id)).json()["messages"]) == 2

    for customer in ("2002", None):
        async with ProxyClient(server.url, shop, customer_id=customer) as other:
            history = (await other.history(session_id)).json()
            assert history["messages"] == [] and history["status"] == "unknown"
            post = await other.send(session_id, "let me in")
            assert post.status_code == 403
            assert post.body["error"]["code"] == "session_not_yours"
            resumed = await other.get(
                f"/proxy/messages/{reply_id}/stream", {"session_id": session_id}
            )
            assert resumed.status_code == 404
            ended = await other.post("/proxy/sessions/end", {"session_id": session_id})
            assert ended.json()["status"] == "unknown"

    async with ProxyClient(server.url, shop, customer_id="1001") as alice:
        assert (await alice.get("/proxy/sessions/status", {"session_id": session_id})).json()[
            "status"
        ] == "active"
    saved = await messages_of(db, shop, session_id)
    assert [m.content for m in saved if m.role == "user"] == ["where is my order 1234?"]


async def test_anonymous_conversation_is_claimed_when_the_shopper_logs_in(
    server, db: Database
) -> None:
    shop = await make_shop(db)
    session_id = new_id()
    async with ProxyClient(server.url, shop) as anonymous:
        assert (await anonymous.send(session_id, "hello")).status_code == 200
    async with ProxyClient(server.url, shop, customer_id="77") as customer:
        assert (await customer.send(session_id, "I logged in")).status_code == 200
        assert len((await customer.history(session_id)).json()["messages"]) == 4
    async with ProxyClient(server.url, shop) as anonymous:
        assert (await anonymous.history(session_id)).json()["messages"] == [], (
            "after login the conversation is the customer's; a logged-out visitor cannot read it"
        )


async def test_another_shop_never_sees_a_conversation_directly(
    client: ProxyClient, db: Database
) -> None:
    """The same as through the proxy: another shop's ticket for the same session id reaches
    only that shop's conversation."""
    session_id = new_id()
    mine = DirectClient(client)
    turn = await mine.send(session_id, "my secret order question")
    reply_id = turn.first("start").data["assistant_message_id"]
    other_shop = await make_shop(db)
    async with client.as_shop(other_shop) as other_proxy:
        other = DirectClient(other_proxy)
        resumed = await other.resume(session_id, reply_id)
        assert resumed.status_code == 404
        own = await other.send(session_id, "hello")
        assert own.status_code == 200
        assert "secret" not in own.text
        history = (await other_proxy.history(session_id)).json()
        assert [m["content"] for m in history["messages"]][0] == "hello"
    assert (await mine.resume(session_id, reply_id)).text == turn.text
    assert len(await messages_of(db, other_shop, session_id)) == 2


async def test_reply_ids_are_bound_to_their_session_directly(client: ProxyClient) -> None:
    direct = DirectClient(client)
    session_id = new_id()
    reply_id = (await direct.send(session_id, "hello")).first("start").data["assistant_message_id"]
    other_session = new_id()
    await direct.send(other_session, "hi")
    assert (await direct.resume(other_session, reply_id)).status_code == 404


async def test_a_customers_conversation_is_hidden_from_others_directly(
    server, db: Database
) -> None:
    shop = await make_shop(db)
    session_id = new_id()
    async with ProxyClient(server.url, shop, customer_id="1001") as alice:
        turn = await DirectClient(alice).send(session_id, "where is my order 1234?")
        assert turn.status_code == 200
        reply_id = turn.first("start").data["assistant_message_id"]
    for customer in ("2002", None):
        async with ProxyClient(server.url, shop, customer_id=customer) as other_proxy:
            other = DirectClient(other_proxy)
            post = await other.send(session_id, "let me in")
            assert post.status_code == 403
            assert post.body["error"]["code"] == "session_not_yours"
            assert (await other.resume(session_id, reply_id)).status_code == 404
    saved = await messages_of(db, shop, session_id)
    assert [m.content for m in saved if m.role == "user"] == ["where is my order 1234?"]
