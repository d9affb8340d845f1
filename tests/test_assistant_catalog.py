"""The assistant knows the shop: the product on the page, the catalog and the policies, and
the cards it shows travel with the reply (its stream, the history, a resume)."""

from __future__ import annotations

from typing import Any

import pytest

from app import repo
from app.catalog.products import from_rest
from app.db import Database
from tests.catalog_data import rest_product
from tests.factories import ProxyClient, make_shop, new_id, shop_id_of


async def _stock(db: Database, shop: str, *bodies: dict[str, Any]) -> None:
    shop_id = await shop_id_of(db, shop)
    async with db.session() as session:
        for body in bodies:
            record = from_rest(body, storefront_url=f"https://{shop}", currency="USD")
            await repo.store_product(session, shop_id=shop_id, record=record)


def _sweater(**changes: Any) -> dict[str, Any]:
    return rest_product(
        title="Merino Crew Sweater", handle="merino-crew", sizes=("S", "M", "L"), **changes
    )


async def test_the_product_on_the_page_answers_is_this_in_stock_in_medium(
    client: ProxyClient, db: Database
) -> None:
    await _stock(db, client.shop, _sweater(sold_out=("S",)))
    session_id = new_id()
    turn = await client.send(
        session_id, "Do you have this in medium?", context={"product": "merino-crew"}
    )
    assert turn.status_code == 200
    assert turn.text == "Yes! The Merino Crew Sweater in M is in stock, at $89.00."
    cards = turn.first("products").data["products"]
    assert [(c["handle"], c["price"], c["available"], c["variant_title"]) for c in cards] == [
        ("merino-crew", {"amount": "89.00", "currency_code": "USD"}, True, "M")
    ]
    assert cards[0]["url"] == f"https://{client.shop}/products/merino-crew"
    sold_out = await client.send(session_id, "and in small?", context={"product": "merino-crew"})
    assert sold_out.text == (
        "Sorry, the Merino Crew Sweater in S is sold out. It is available in M, L."
    )
    # The cards are the reply's: the history and a resume give them back as the stream did.
    history = (await client.history(session_id)).json()["messages"]
    assert history[1]["products"] == cards and history[0]["products"] == []
    resumed = await client.resume(session_id, history[1]["id"])
    assert resumed.first("products").data["products"] == cards
    assert resumed.text == turn.text


@pytest.mark.parametrize("hidden", [{"status": "draft"}, {"published": False}])
async def test_a_product_a_shopper_cannot_see_is_not_the_page_product(
    client: ProxyClient, db: Database, hidden: dict[str, Any]
) -> None:
    await _stock(db, client.shop, _sweater(**hidden))
    turn = await client.send(
        new_id(), "Do you have this in medium?", context={"product": "merino-crew"}
    )
    assert turn.status_code == 200
    assert "Merino" not in turn.text and not any(e.event == "products" for e in turn.events)


async def test_another_shops_product_is_not_the_page_product(
    client: ProxyClient, db: Database
) -> None:
    await _stock(db, await make_shop(db), _sweater())
    turn = await client.send(new_id(), "Is this in stock in M?", context={"product": "merino-crew"})
    assert "Merino" not in turn.text and not any(e.event == "products" for e in turn.events)


@pytest.mark.parametrize(
    "context",
    [
        "merino-crew",
        ["merino-crew"],
        7,
        {"product": 7},
        {"product": ["a"]},
        {"product": "has space"},
        {"product": "x" * 256},
        {"product": "nul\u0000"},
        {"product": "../../admin"},
        {"product": {"deep": [[[[1]]]]}},
    ],
)
async def test_a_malformed_context_is_a_clear_400_and_nothing_is_saved(
    client: ProxyClient, context: Any
) -> None:
    session_id = new_id()
    turn = await client.send(session_id, "hello", context=context)
    assert turn.status_code == 400
    assert turn.body["error"]["code"] == "invalid_context"
    assert (await client.history(session_id)).json()["messages"] == []


async def test_the_catalog_answers_without_a_page(client: ProxyClient, db: Database) -> None:
    await _stock(
        db,
        client.shop,
        _sweater(),
        rest_product(title="Wool Socks", handle="wool-socks", price="12.00", sizes=("One size",)),
        rest_product(title="Alpaca Beanie", handle="alpaca-beanie", price="29.00"),
    )
    turn = await client.send(new_id(), "What's your cheapest beanie under $30?")
    assert turn.status_code == 200
    cards = turn.first("products").data["products"]
    assert [c["handle"] for c in cards] == ["alpaca-beanie"]
    assert "Alpaca Beanie: $29.00" in turn.text


async def test_questions_nothing_answered_are_listed_for_the_merchant(
    client: ProxyClient, db: Database
) -> None:
    await _stock(db, client.shop, _sweater())
    for question in ("Do you sell bicycles?", "do you sell bicycles", "Any kayaks?"):
        turn = await client.send(new_id(), question)
        assert turn.text == "I couldn't find a product matching that in this store."
    answered = await client.send(
        new_id(), "Do you have this in medium?", context={"product": "merino-crew"}
    )
    assert "in stock" in answered.text
    async with db.session() as session:
        listed = await repo.unanswered_questions(session, shop_id=await shop_id_of(db, client.shop))
    assert [(q["question"], q["count"]) for q in listed] == [
        ("Any kayaks?", 1),
        ("do you sell bicycles", 2),
    ]


async def test_a_products_own_conversation_stays_about_it(
    client: ProxyClient, db: Database
) -> None:
    await _stock(db, client.shop, _sweater(), rest_product(title="Wool Socks", handle="socks"))
    session_id = new_id()
    own = {"product": "merino-crew", "conversation": "product"}
    first = await client.send(session_id, "Is this in large?", context=own)
    assert first.text == "Yes! The Merino Crew Sweater in L is in stock, at $89.00."
    # Later turns need not say it again (and another page's product does not change it).
    later = await client.send(session_id, "and in small?")
    assert later.text == "Yes! The Merino Crew Sweater in S is in stock, at $89.00."
    async with db.session() as session:
        conversation = await repo.session_conversation(
            session, shop_id=await shop_id_of(db, client.shop), session_id=session_id
        )
    assert conversation is not None and conversation.product_handle == "merino-crew"
    shared = new_id()
    await client.send(shared, "Is this in large?", context={"product": "merino-crew"})
    async with db.session() as session:
        conversation = await repo.session_conversation(
            session, shop_id=await shop_id_of(db, client.shop), session_id=shared
        )
    assert conversation is not None and conversation.product_handle is None


@pytest.mark.parametrize(
    "context",
    [{"conversation": "product"}, {"product": "x", "conversation": "yes"}, {"conversation": 1}],
)
async def test_a_products_conversation_needs_its_product(
    client: ProxyClient, context: dict[str, Any]
) -> None:
    turn = await client.send(new_id(), "hello", context=context)
    assert turn.status_code == 400 and turn.body["error"]["code"] == "invalid_context"


async def test_the_cheapest_product_under_a_price(client: ProxyClient, db: Database) -> None:
    await _stock(
        db,
        client.shop,
        _sweater(),
        rest_product(title="Wool Socks", handle="wool-socks", price="12.00"),
        rest_product(title="Alpaca Beanie", handle="alpaca-beanie", price="29.00"),
        rest_product(title="Silk Scarf", handle="silk-scarf", price="31.00"),
        rest_product(
            title="Sold Out Mitts", handle="mitts", price="9.00", sold_out=("S", "M", "L")
        ),
    )
    turn = await client.send(new_id(), "What's your cheapest product under $30?")
    prices = [c["price"]["amount"] for c in turn.first("products").data["products"]]
    assert prices == sorted(prices, key=float) and all(float(p) <= 30 for p in prices)
    assert prices[:3] == ["9.00", "12.00", "29.00"]
    assert turn.text.startswith("Here is what I found:\n\n- Sold Out Mitts: $9.00 (sold out)")


async def test_a_retried_reply_of_a_products_conversation_is_still_about_it(
    client: ProxyClient, db: Database
) -> None:
    import sqlalchemy as sa

    from app.repo.chat import messages

    await _stock(db, client.shop, _sweater())
    session_id, message_id = new_id(), new_id()
    own = {"product": "merino-crew", "conversation": "product"}
    first = await client.send(session_id, "Is it in large?", message_id, context=own)
    reply_id = first.first("start").data["assistant_message_id"]
    async with db.session() as session:  # as if its model had failed
        await session.execute(
            sa.update(messages)
            .where(messages.c.public_id == reply_id)
            .values(status="error", error_code="upstream_error", content="")
        )
    retried = await client.send(session_id, "Is it in large?", message_id)
    assert retried.first("start").data["assistant_message_id"] == reply_id
    assert retried.text == "Yes! The Merino Crew Sweater in L is in stock, at $89.00."
