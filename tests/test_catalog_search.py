"""The catalog search finds what a shopper asks for, best first, misspelt or not, only among
the products they could see in this shop; and the policy or FAQ entry that answers them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from app import repo
from app.catalog.products import from_rest
from app.db import Database
from app.models import Catalog
from app.search import search_knowledge, search_products
from tests.catalog_data import rest_product
from tests.factories import make_shop, shop_id_of

STOREFRONT = "https://shop.example.com"


async def _shop(db: Database, language: str = "en") -> int:
    """A shop whose catalog's language is known, as its import leaves it."""
    shop_id = await shop_id_of(db, await make_shop(db))
    async with db.session() as session:
        session.add(Catalog(shop_id=shop_id, language=language))
    return shop_id


async def _store(
    db: Database,
    shop_id: int,
    *,
    colours: tuple[str, ...] | None = None,
    prices: tuple[str, ...] | None = None,
    **fields: Any,
) -> int:
    """A product as a products/* webhook stores it; `colours` become its one option."""
    if colours:
        fields["sizes"] = colours
    body = rest_product(**fields)
    if colours:
        body["options"][0]["name"] = "Colour"
    for variant, price in zip(body["variants"], prices or (), strict=False):
        variant["price"] = price
    async with db.session() as session:
        record = from_rest(body, storefront_url=STOREFRONT, currency="USD")
        await repo.store_product(session, shop_id=shop_id, record=record)
    return int(body["id"])


async def _titles(db: Database, shop_id: int, query: str, **filters: Any) -> list[str]:
    async with db.session() as session:
        found = await search_products(session, shop_id=shop_id, query=query, **filters)
    return [product.title for product in found]


async def test_a_title_match_ranks_above_a_description_match(db: Database) -> None:
    shop_id = await _shop(db)
    await _store(db, shop_id, title="Cotton Tee", body_html="<p>As soft as merino.</p>")
    await _store(db, shop_id, title="Merino Crew Sweater")
    await _store(db, shop_id, title="Canvas Tote", body_html="<p>Carries anything.</p>")
    assert await _titles(db, shop_id, "merino") == ["Merino Crew Sweater", "Cotton Tee"]
    # Plurals find singulars, on either database's stemmer.
    assert (await _titles(db, shop_id, "sweaters"))[0] == "Merino Crew Sweater"


@pytest.mark.parametrize("query", ["sweter", "mernio", "Merino sweter"])
async def test_misspelt_words_still_find_the_product(db: Database, query: str) -> None:
    shop_id = await _shop(db)
    await _store(db, shop_id, title="Merino Crew Sweater")
    await _store(db, shop_id, title="Canvas Tote", product_type="Bags", tags="canvas")
    assert (await _titles(db, shop_id, query))[:1] == ["Merino Crew Sweater"]


async def test_a_correctly_spelt_word_is_not_taken_for_a_near_one(db: Database) -> None:
    shop_id = await _shop(db)
    await _store(db, shop_id, title="Oxford Shirt", product_type="Shirts", tags="cotton")
    await _store(db, shop_id, title="Linen Skirt", product_type="Skirts", tags="linen")
    assert await _titles(db, shop_id, "shirt") == ["Oxford Shirt"]


async def test_option_values_find_the_size_and_the_colour(db: Database) -> None:
    shop_id = await _shop(db)
    await _store(db, shop_id, title="Merino Beanie", sizes=("Small", "Large"))
    await _store(db, shop_id, title="Merino Scarf", sizes=("Small", "Medium", "Large"))
    await _store(db, shop_id, title="Wool Socks", colours=("Forest Green", "Navy"))
    await _store(db, shop_id, title="Wool Gloves", colours=("Charcoal",))
    assert (await _titles(db, shop_id, "merino in medium"))[0] == "Merino Scarf"
    assert (await _titles(db, shop_id, "green wool"))[0] == "Wool Socks"


async def test_price_filters_and_orders(db: Database) -> None:
    shop_id = await _shop(db)
    await _store(db, shop_id, title="Wool Socks", price="18.00", body_html="Warm.")
    await _store(db, shop_id, title="Merino Beanie", price="35.00")
    await _store(db, shop_id, title="Merino Crew Sweater", price="89.00")
    # S costs 25, M and L 45: it is under 30 in its cheapest size.
    await _store(db, shop_id, title="Merino Scarf", prices=("25.00", "45.00", "45.00"))
    cheapest_under_30 = await _titles(db, shop_id, "", max_price=Decimal(30), order="price_asc")
    assert cheapest_under_30 == ["Wool Socks", "Merino Scarf"]
    assert await _titles(db, shop_id, "merino", order="price_desc") == [
        "Merino Crew Sweater",
        "Merino Beanie",
        "Merino Scarf",
    ]
    assert await _titles(db, shop_id, "merino", min_price=Decimal(40), order="price_asc") == [
        "Merino Scarf",  # up to 45
        "Merino Crew Sweater",
    ]
    assert await _titles(db, shop_id, "", order="price_asc", limit=2) == [
        "Wool Socks",
        "Merino Scarf",
    ]


async def test_availability_and_product_type_filters(db: Database) -> None:
    shop_id = await _shop(db)
    await _store(db, shop_id, title="Merino Crew Sweater", sold_out=("S", "M", "L"))
    await _store(db, shop_id, title="Merino Cardigan", product_type="Cardigans")
    await _store(db, shop_id, title="Merino Socks", product_type="Socks")
    assert await _titles(db, shop_id, "merino", available=True, product_type="sweaters") == []
    assert await _titles(db, shop_id, "merino", available=False) == ["Merino Crew Sweater"]
    assert await _titles(db, shop_id, "merino", product_type="Socks") == ["Merino Socks"]
    assert await _titles(db, shop_id, "", product_type="cardigans") == ["Merino Cardigan"]


async def test_what_a_shopper_cannot_see_is_never_found(db: Database) -> None:
    shop_id = await _shop(db)
    await _store(db, shop_id, title="Merino Crew Sweater")
    await _store(db, shop_id, title="Merino Draft Vest", status="draft")
    await _store(db, shop_id, title="Merino Archived Vest", status="archived")
    await _store(db, shop_id, title="Merino Unpublished Vest", published=False)
    deleted = await _store(db, shop_id, title="Merino Deleted Vest")
    hidden_later = await _store(db, shop_id, title="Merino Hidden Vest")
    async with db.session() as session:
        await repo.delete_product(session, shop_id=shop_id, product_id=deleted)
    await _store(
        db, shop_id, product_id=hidden_later, title="Merino Hidden Vest", status="draft",
        updated_at="2026-11-21T10:00:00Z",
    )  # fmt: skip
    for query in ("merino", "mernio", "merino vest", ""):
        assert await _titles(db, shop_id, query, order="price_asc") == ["Merino Crew Sweater"]
    assert await _titles(db, shop_id, "vest") == []


async def test_the_index_follows_updates_imports_and_uninstalls(db: Database) -> None:
    shop_id = await _shop(db)
    product_id = await _store(db, shop_id, title="Alpaca Beanie")
    await _store(
        db, shop_id, product_id=product_id, title="Cashmere Beanie",
        updated_at="2026-11-21T10:00:00Z",
    )  # fmt: skip
    assert await _titles(db, shop_id, "alpaca") == []
    assert await _titles(db, shop_id, "cashmere beanie") == ["Cashmere Beanie"]
    async with db.session() as session:  # an import that did not see it
        await repo.remove_unseen(
            session, shop_id=shop_id, import_id=1, started_at=datetime.now(UTC) + timedelta(1)
        )
    assert await _titles(db, shop_id, "cashmere") == []
    await _store(db, shop_id, title="Cashmere Scarf")
    async with db.session() as session:
        await repo.drop_catalog(session, shop_id=shop_id)
    assert await _titles(db, shop_id, "cashmere") == []


async def test_another_shops_products_are_never_found(db: Database) -> None:
    mine, theirs = await _shop(db), await _shop(db)
    await _store(db, mine, title="Merino Crew Sweater")
    await _store(db, theirs, title="Merino Beanie")
    await _store(db, theirs, title="Alpaca Poncho")
    assert await _titles(db, mine, "merino beanie") == ["Merino Crew Sweater"]
    assert await _titles(db, mine, "alpaka poncho") == []
    assert await _titles(db, mine, "", max_price=Decimal(1000)) == ["Merino Crew Sweater"]


async def _knowledge(db: Database, shop_id: int) -> None:
    async with db.session() as session:
        await repo.replace_policies(
            session,
            shop_id=shop_id,
            entries=[
                ("refund", "Refund policy", "Unworn items are refunded within 30 days.", None),
                ("shipping", "Shipping policy", "We deliver within the United States.", None),
                ("privacy", "Privacy policy", "We keep your address to deliver orders.", None),
            ],
        )
        await repo.replace_faq(
            session,
            shop_id=shop_id,
            entries=[
                ("Do you ship to Canada?", "Yes: Canada Post delivers in 5 to 8 days."),
                ("Is the wool itchy?", "Merino is soft and does not itch."),
            ],
        )


async def test_knowledge_search_finds_the_policy_or_faq_that_answers(db: Database) -> None:
    shop_id = await _shop(db)
    await _knowledge(db, shop_id)
    async with db.session() as session:
        canada = await search_knowledge(session, shop_id=shop_id, query="do you ship to canada")
        refund = await search_knowledge(session, shop_id=shop_id, query="refund")
        typo = await search_knowledge(session, shop_id=shop_id, query="refnud")
        nothing = await search_knowledge(session, shop_id=shop_id, query="gift cards")
    assert (canada[0].kind, canada[0].title) == ("faq", "Do you ship to Canada?")
    assert "Canada Post" in canada[0].body and canada[0].url is None
    assert [hit.kind for hit in refund] == ["refund"] and refund[0].score > 0
    assert [hit.kind for hit in typo][:1] == ["refund"]
    assert nothing == []


async def test_faq_edits_and_a_deleted_shop_leave_no_stale_answer(db: Database) -> None:
    domain = await make_shop(db)
    shop_id = await shop_id_of(db, domain)  # a shop whose catalog is not imported yet
    other = await _shop(db)
    await _knowledge(db, shop_id)
    await _knowledge(db, other)
    async with db.session() as session:
        await repo.replace_faq(
            session, shop_id=shop_id, entries=[("Do you gift wrap?", "Yes, for $5.")]
        )
        itchy = await search_knowledge(session, shop_id=shop_id, query="itchy wool")
        wrap = await search_knowledge(session, shop_id=shop_id, query="gift wrapping")
    assert itchy == [] and [hit.title for hit in wrap] == ["Do you gift wrap?"]
    await _store(db, shop_id, title="Merino Crew Sweater")
    async with db.session() as session:
        await repo.delete_shop(session, domain=domain)
    async with db.session() as session:
        assert await search_knowledge(session, shop_id=shop_id, query="refund gift") == []
        assert await search_products(session, shop_id=shop_id, query="merino") == []
        assert len(await search_knowledge(session, shop_id=other, query="itchy wool")) == 1


HOSTILE = [
    '"',
    '"merino',
    "merino*",
    "*",
    "-merino",
    "- - -",
    "NEAR(merino sweater)",
    "merino OR",
    "OR AND NOT",
    "title:merino",
    "shop_id:1",
    "{title}: merino",
    "merino & | ! ( ) :*",
    "'); DROP TABLE products; --",
    "merino\x00sweater",
    "\x00",
    "🧶🧶 merino 🐑",
    "m" * 10_000,
    "merino " * 2_000,
    "?!.,;:()[]{}<>@#$%^&*+=~`|\\/",
    "",
    "   ",
    "ünïcödé çhâüssürës 中文 العربية",
]


@pytest.mark.parametrize("query", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_queries_answer_results_or_nothing(db: Database, query: str) -> None:
    shop_id = await _shop(db)
    await _store(db, shop_id, title="Merino Crew Sweater")
    await _knowledge(db, shop_id)
    async with db.session() as session:
        found = await search_products(session, shop_id=shop_id, query=query)
        answers = await search_knowledge(session, shop_id=shop_id, query=query)
    assert all(p.title == "Merino Crew Sweater" for p in found)
    assert len(answers) <= 3
    if "merino" in query.lower():
        assert [p.title for p in found] == ["Merino Crew Sweater"]


async def test_a_french_catalog_is_stemmed_in_french(db: Database) -> None:
    shop_id = await _shop(db)
    await _store(db, shop_id, title="Chaussure de course", product_type="Running")
    await _store(db, shop_id, title="Chaussettes en laine", product_type="Knitwear")
    # The catalog's language arrives after its products: they are indexed again in it. Not
    # stemmed, each word would be taken for a misspelling and find both (socks and shoes).
    async with db.session() as session:
        catalog = await session.get(Catalog, shop_id)
        assert catalog is not None
        catalog.language = "fr"
    assert await _titles(db, shop_id, "chaussures") == ["Chaussure de course"]
    assert await _titles(db, shop_id, "chaussette") == ["Chaussettes en laine"]
