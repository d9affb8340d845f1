"""How the offline assistant reads a shopper's words for the catalog."""

from __future__ import annotations

import pytest

from app.ai.offline_words import (
    describe_price,
    mentioned_options,
    price_bounds,
    product_words,
    refers_to_page,
)


@pytest.mark.parametrize(
    ("question", "bounds"),
    [
        ("What's your cheapest product under $30?", (None, 30.0, "price_asc")),
        ("sweaters below 100 dollars", (None, 100.0, "relevance")),
        ("a jacket over €150", (150.0, None, "relevance")),
        ("scarves between 20 and 40", (20.0, 40.0, "relevance")),
        ("your most expensive coat", (None, None, "price_desc")),
        ("un pull à moins de 50 €", (None, 50.0, "relevance")),
        ("Socken unter 12,50", (None, 12.5, "relevance")),
        ("do you have wool socks", (None, None, "relevance")),
    ],
)
def test_price_bounds_and_order(question: str, bounds: tuple[object, ...]) -> None:
    assert price_bounds(question) == bounds


@pytest.mark.parametrize(
    ("question", "words"),
    [
        ("What's your cheapest sweater under $100?", "sweater"),
        ("Do you have any red wool scarves?", "red wool scarves"),
        ("show me products under 30", ""),
        ("I'm looking for a merino beanie", "i'm merino beanie"),
    ],
)
def test_the_words_worth_searching(question: str, words: str) -> None:
    assert product_words(question) == words


def test_options_named_in_a_question() -> None:
    options = {"Size": ["S", "M", "L", "XL"], "Color": ["Navy", "Oatmeal"]}
    assert mentioned_options("Do you have this in medium?", options) == {"Size": "M"}
    assert mentioned_options("is the navy one in XL", options) == {"Size": "XL", "Color": "Navy"}
    assert mentioned_options("what about extra large", options) == {"Size": "XL"}
    assert mentioned_options("is it warm?", options) == {}


def test_a_question_about_the_page() -> None:
    assert refers_to_page("Is this in stock?") and refers_to_page("does it come in blue")
    assert not refers_to_page("what socks do you have")


def test_prices_are_written_in_the_shops_currency() -> None:
    assert describe_price("89.00", "USD") == "$89.00"
    assert describe_price("5", "EUR") == "€5.00"
    assert describe_price("12.5", "CHF") == "12.50 CHF"
    assert describe_price(None, "USD") == "price on request"


@pytest.mark.parametrize(
    "said", ["Thanks, bye", "thank you so much!", "Merci", "ok, danke", "Cheers"]
)
def test_thanks_and_goodbyes_are_answered_as_such(said: str) -> None:
    from app.ai.base import ChatTurn, ReplyRequest
    from app.ai.offline import YOU_ARE_WELCOME, _next_step

    request = ReplyRequest(system_prompt="", messages=[ChatTurn("user", said)])
    assert _next_step(request, said, []) == YOU_ARE_WELCOME


def test_a_question_with_thanks_in_it_is_still_a_question() -> None:
    from app.ai.offline import _is_thanks

    assert not _is_thanks("thanks, and do you ship to Canada?")
