"""Tool calling in both wire formats, against the fake model server on loopback: the model
searches the catalog, reads the results, and the reply carries the cards."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from app import repo
from app.catalog.products import from_rest
from app.db import Database
from app.models import Message
from tests.catalog_data import rest_product
from tests.factories import ProxyClient, make_shop, messages_of, new_id, shop_id_of
from tests.fake_upstream import FakeUpstream
from tests.servers import LiveServer, serve
from tests.test_ai_providers import PROVIDERS, _provider_server


@pytest.fixture(scope="module")
def model_server() -> Iterator[tuple[FakeUpstream, LiveServer]]:
    fake = FakeUpstream()
    live = serve(fake.app, timeout_graceful_shutdown=1)
    yield fake, live
    live.stop()


@pytest.fixture
def model(model_server: tuple[FakeUpstream, LiveServer]) -> Iterator[FakeUpstream]:
    fake, _ = model_server
    fake.requests.clear()
    yield fake
    fake.tool_steps.clear()


SEARCH = ("search_products", json.dumps({"query": "merino", "max_price": 100}))


async def _shop_with_catalog(db: Database) -> str:
    shop = await make_shop(db)
    shop_id = await shop_id_of(db, shop)
    async with db.session() as session:
        for body in (
            rest_product(title="Merino Crew Sweater", handle="merino-crew"),
            rest_product(
                title="Cotton Tee", handle="cotton-tee", price="25.00", body_html="<p>Cotton.</p>"
            ),
        ):
            record = from_rest(body, storefront_url=f"https://{shop}", currency="USD")
            await repo.store_product(session, shop_id=shop_id, record=record)
    return shop


def _tool_messages(provider: str, body: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """(the assistant's tool calls, the tool results) a request sent back to the model."""
    messages = body["messages"]
    if provider == "openai":
        calls = [c for m in messages if m["role"] == "assistant" for c in m.get("tool_calls", [])]
        results = [m for m in messages if m["role"] == "tool"]
        return calls, results
    blocks = [b for m in messages if isinstance(m["content"], list) for b in m["content"]]
    return (
        [b for b in blocks if b["type"] == "tool_use"],
        [b for b in blocks if b["type"] == "tool_result"],
    )


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_model_searches_the_catalog_and_the_reply_shows_its_cards(
    provider: str,
    model: FakeUpstream,
    model_server: tuple[FakeUpstream, LiveServer],
    start_server: Callable[..., LiveServer],
    db: Database,
) -> None:
    server = _provider_server(start_server, model_server[1].url, provider)
    shop = await _shop_with_catalog(db)
    model.tool_steps = [[SEARCH]]
    async with ProxyClient(server.url, shop) as client:
        session_id = new_id()
        turn = await client.send(session_id, "Any merino sweaters under $100?")
    assert turn.status_code == 200 and turn.last.event == "done"
    assert turn.text == "Hello from the model."  # nothing of the tool call as text
    cards = turn.first("products").data["products"]
    assert [c["handle"] for c in cards] == ["merino-crew"]
    first, second = model.requests[-2]["body"], model.requests[-1]["body"]
    names = [t["function"]["name"] if provider == "openai" else t["name"] for t in first["tools"]]
    # Only the searches that can find something (this shop has products, no policies or FAQ),
    # and the hand-over to a person, which any conversation has.
    assert names == ["search_products", "get_product", "hand_over_to_person"]
    calls, results = _tool_messages(provider, second)
    if provider == "openai":
        assert calls[0]["function"] == {"name": SEARCH[0], "arguments": SEARCH[1]}
        assert results[0]["tool_call_id"] == calls[0]["id"] == "call_0"
        found = json.loads(results[0]["content"])
    else:
        assert calls[0]["name"] == SEARCH[0] and calls[0]["input"] == json.loads(SEARCH[1])
        assert results[0]["tool_use_id"] == calls[0]["id"] == "toolu_0"
        found = json.loads(results[0]["content"])
        roles = [m["role"] for m in second["messages"]]
        assert roles == ["user", "assistant", "user"], "tool results are the user's turn"
    assert [p["handle"] for p in found["products"]] == ["merino-crew"]
    assert found["products"][0]["price_min"] == "89.00"
    saved = await messages_of(db, shop, session_id)
    assert json.loads(saved[-1].products or "[]") == cards
    assert [t["name"] for t in json.loads(saved[-1].tools or "[]")] == ["search_products"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_bad_arguments_and_unknown_tools_are_errors_the_model_reads(
    provider: str,
    model: FakeUpstream,
    model_server: tuple[FakeUpstream, LiveServer],
    start_server: Callable[..., LiveServer],
    db: Database,
) -> None:
    server = _provider_server(start_server, model_server[1].url, provider)
    shop = await _shop_with_catalog(db)
    model.tool_steps = [
        [("search_products", '{"query": "merino", '), ("drop_tables", "{}")],
        [("get_product", '{"handle": "no-such-thing"}'), ("search_products", '{"query": 5}')],
    ]
    async with ProxyClient(server.url, shop) as client:
        turn = await client.send(new_id(), "merino?")
    assert turn.status_code == 200 and turn.last.event == "done"
    assert turn.text == "Hello from the model."
    assert not any(e.event == "products" for e in turn.events)
    errors = []
    for sent in model.requests[-2:]:
        _, results = _tool_messages(provider, sent["body"])
        errors = [json.loads(r["content"])["error"] for r in results]
    assert errors == [
        "The arguments are not valid JSON.",
        "There is no tool called 'drop_tables'; the tools are search_products, get_product, "
        "hand_over_to_person.",
        "No product of this shop has that handle or id.",
        "query is a string.",
    ]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_model_that_keeps_calling_tools_gets_a_polite_end(
    provider: str,
    model: FakeUpstream,
    model_server: tuple[FakeUpstream, LiveServer],
    start_server: Callable[..., LiveServer],
    db: Database,
) -> None:
    server = _provider_server(start_server, model_server[1].url, provider, ai_tool_rounds=2)
    shop = await _shop_with_catalog(db)
    model.tool_steps = [[SEARCH]] * 5
    async with ProxyClient(server.url, shop) as client:
        session_id = new_id()
        turn = await client.send(session_id, "merino?")
    assert turn.status_code == 200
    assert turn.last.event == "done" and turn.last.data["finish_reason"] == "tool_limit"
    assert "couldn't find a good answer" in turn.text
    assert len(model.requests) == 3 and "tools" not in model.requests[-1]["body"]
    saved = await messages_of(db, shop, session_id)
    assert saved[-1].status == "complete" and saved[0].content == "merino?"
    async with db.session() as session:
        count = await session.execute(sa.select(sa.func.count()).select_from(Message))
    assert count.scalar_one() >= 2


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_model_hands_the_conversation_to_a_person_with_its_tool(
    provider: str,
    model: FakeUpstream,
    model_server: tuple[FakeUpstream, LiveServer],
    start_server: Callable[..., LiveServer],
    db: Database,
) -> None:
    """The model's hand_over_to_person: the conversation waits for a person (docs/live.md),
    the model reads whether anyone is online, and the next turn calls no model."""
    server = _provider_server(start_server, model_server[1].url, provider)
    shop = await make_shop(db)
    model.tool_steps = [[("hand_over_to_person", "{}")]]
    async with ProxyClient(server.url, shop) as client:
        session_id = new_id()
        turn = await client.send(session_id, "My parcel arrived broken, this is unacceptable.")
        assert turn.status_code == 200 and turn.last.event == "done"
        _, results = _tool_messages(provider, model.requests[-1]["body"])
        result = results[0]["content"]
        text = result if isinstance(result, str) else result[0]["text"]
        assert json.loads(text) == {"handed_over": True, "team_online": False}
        asked = len(model.requests)
        quiet = await client.send(session_id, "Hello?")
        assert [e.event for e in quiet.events] == ["start", "queued"]
        assert len(model.requests) == asked  # no model called while a person answers
        status = await client.get("/proxy/sessions/status", {"session_id": session_id})
    assert status.json()["handler"] == "waiting"
    stored = await messages_of(db, shop, session_id)
    assert [m.role for m in stored] == ["user", "assistant", "user"]
