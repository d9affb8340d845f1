"""The offline assistant: never touches the network, and behaves like a model that uses the
shop's tools. Offered tools, it first looks the question up in the policies and FAQ (and the
product on the page), then in the catalog, and answers from what the tools returned; offered
none, it answers from the FAQ it was given."""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from app.ai.base import ChatTurn, FaqItem, Finished, ReplyRequest, ToolCall
from app.ai.offline_words import (
    asks_for_person,
    describe_price,
    mentioned_options,
    price_bounds,
    product_words,
    refers_to_page,
)

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    "a an and are as at be can could do does for from have how i if in is it me my of on or "
    "our please so that the there this to we what when where which who why will with would "
    "you your yours any about get".split()
)
_GREETINGS = frozenset({"hi", "hello", "hey", "hallo", "bonjour", "hola", "morning", "evening"})
# Thanks and goodbyes, in the four locales: answered as such, never searched for.
_THANKS = frozenset(
    "thanks thank thx ty cheers bye goodbye ok okay great perfect merci danke gracias adios "
    "adiós tschüss tschuss ciao au revoir".split()
)
YOU_ARE_WELCOME = "You're welcome! Is there anything else I can help you with?"
FALLBACK = (
    "Thanks for your message! I could not find an answer to that in this store's help "
    "topics. You can reach the store directly through its contact page."
)
HANDED_OVER = "I've asked a person from our team to join. They'll answer you right here."
HANDED_OVER_NOBODY = (
    "I've asked a person from our team to answer you. Nobody is online right now: leave your "
    "email address and they'll reply as soon as they can."
)
NOTHING_FOUND = "I couldn't find a product matching that in this store."


@functools.lru_cache(maxsize=4096)
def _terms(text: str) -> frozenset[str]:
    # Cached: a shop's FAQ texts are the same for every question (a tenth of a turn; bench/).
    terms = set()
    for word in _WORD.findall(text.lower()):
        if word in _STOPWORDS:
            continue
        # A crude stem, enough to match "returns" with "return" and "shipping" with "ship".
        for suffix in ("ing", "es", "s"):
            if len(word) > len(suffix) + 2 and word.endswith(suffix):
                word = word[: -len(suffix)]
                break
        terms.add(word)
    return frozenset(terms)


def best_answer(question: str, faq: Sequence[FaqItem]) -> FaqItem | None:
    asked = _terms(question)
    if not asked:
        return None
    best: tuple[float, FaqItem] | None = None
    for item in faq:
        topic = _terms(item.question)
        overlap = len(asked & topic) + 0.25 * len(asked & (_terms(item.answer) - topic))
        if overlap <= 0:
            continue
        score = overlap / (len(topic) ** 0.5 or 1)
        if best is None or score > best[0]:
            best = (score, item)
    return best[1] if best and best[0] >= 0.4 else None


def _is_greeting(question: str) -> bool:
    words = set(_WORD.findall(question.lower()))
    return bool(words) and words <= _GREETINGS | {"there", "team"}


def _is_thanks(question: str) -> bool:
    words = set(re.findall(r"[^\W\d_]+", question.lower()))
    return bool(words & _THANKS) and words <= _THANKS | {"you", "a", "lot", "so", "much", "very"}


def compose_reply(question: str, faq: Sequence[FaqItem]) -> str:
    item = best_answer(question, faq)
    if item is not None:
        return item.answer
    reply = "Hello! How can I help you today?" if _is_greeting(question) else FALLBACK
    if faq:
        topics = "\n".join(f"- {entry.question}" for entry in list(faq)[:5])
        reply += f"\n\nI can help with questions like:\n\n{topics}"
    return reply


def _results(tail: Sequence[ChatTurn]) -> dict[str, Any]:
    """What the tools returned this turn, by tool name (the last of each)."""
    found: dict[str, Any] = {}
    for turn in tail:
        if turn.tool_result is not None and not turn.tool_result.is_error:
            try:
                found[turn.tool_result.name] = json.loads(turn.tool_result.content)
            except ValueError:
                continue
    return found


def _product_answer(question: str, product: dict[str, Any]) -> str:
    """About the product on the page: the variant asked for, or what there is."""
    title = product["title"]
    wanted = mentioned_options(question, product.get("options") or {})
    variants = product.get("variants") or []
    if wanted:
        shown = ", ".join(wanted.values())
        matching = [
            v
            for v in variants
            if all(v["options"].get(k, "").lower() == w.lower() for k, w in wanted.items())
        ]
        if not matching:
            return f"The {title} doesn't come in {shown}."
        # In stock if any of them is ("in M": in any colour).
        match = next((v for v in matching if v["available"]), matching[0])
        price = describe_price(match["price"], product.get("currency"))
        if match["available"]:
            return f"Yes! The {title} in {shown} is in stock, at {price}."
        others = list(  # in the shop's own order of its options
            dict.fromkeys(
                value
                for v in variants
                if v["available"]
                for name, value in v["options"].items()
                if name in wanted
            )
        )
        if not others:
            others = [v["title"] for v in variants if v["available"]]
        rest = f" It is available in {', '.join(others)}." if others else ""
        return f"Sorry, the {title} in {shown} is sold out.{rest}"
    price = describe_price(product.get("price_min"), product.get("currency"))
    if not product.get("available"):
        return f"The {title} ({price}) is sold out at the moment."
    options = "; ".join(
        f"{name}: {', '.join(values)}" for name, values in (product.get("options") or {}).items()
    )
    return f"The {title} is {price}." + (f" It comes in {options}." if options else "")


def _products_answer(products: list[dict[str, Any]]) -> str:
    lines = []
    for product in products[:6]:
        price = describe_price(product.get("price_min"), product.get("currency"))
        stock = "" if product.get("available") else " (sold out)"
        lines.append(f"- {product['title']}: {price}{stock}")
    return "Here is what I found:\n\n" + "\n".join(lines)


def _next_step(
    request: ReplyRequest, question: str, tail: Sequence[ChatTurn]
) -> list[ToolCall] | str:
    """The tools to call next, or the answer."""
    offered = {tool.name for tool in request.tools}
    results = _results(tail)
    called = {call.name for turn in tail for call in turn.tool_calls}
    page = request.page_product
    if _is_thanks(question):
        return YOU_ARE_WELCOME
    if "hand_over_to_person" in offered and asks_for_person(question):
        if "hand_over_to_person" not in called:
            return [ToolCall("offline-0", "hand_over_to_person", "{}")]
        handed = results.get("hand_over_to_person")
        if handed is not None:
            return HANDED_OVER if handed.get("team_online") else HANDED_OVER_NOBODY
    if not offered or _is_greeting(question):
        return compose_reply(question, request.faq)
    if page is not None and "get_product" in offered and "get_product" not in called:
        # "Is this in medium?", or "and in small?" on the page of a product sold in sizes.
        wanted = mentioned_options(question, {n: list(v) for n, v in page.options})
        if wanted or refers_to_page(question):
            lookup = {"handle": page.handle, "options": wanted}
            return [ToolCall("offline-1", "get_product", json.dumps(lookup))]
    if "get_product" in results:
        return _product_answer(question, results["get_product"]["product"])
    knowledge = [
        FaqItem(question=hit["title"], answer=hit["text"])
        for hit in (results.get("search_policies") or {}).get("results", [])
    ]
    item = best_answer(question, [*request.faq, *knowledge])
    if item is not None:
        return item.answer
    if "search_policies" in offered and "search_policies" not in called:
        return [ToolCall("offline-2", "search_policies", json.dumps({"query": question[:200]}))]
    if "search_products" in offered and "search_products" not in called:
        low, high, sort = price_bounds(question)
        arguments: dict[str, Any] = {"query": product_words(question), "sort": sort}
        if low is not None:
            arguments["min_price"] = low
        if high is not None:
            arguments["max_price"] = high
        if arguments["query"] or low is not None or high is not None or sort != "relevance":
            return [ToolCall("offline-3", "search_products", json.dumps(arguments))]
    products = (results.get("search_products") or {}).get("products")
    if products:
        return _products_answer(products)
    if "search_products" in called:
        return NOTHING_FOUND
    return compose_reply(question, request.faq)


class OfflineProvider:
    name = "offline"

    def __init__(self, *, word_delay: float = 0.03) -> None:
        self.word_delay = word_delay

    async def stream(self, request: ReplyRequest) -> AsyncIterator[str | Finished | ToolCall]:
        messages = list(request.messages)
        last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
        question = messages[last_user].content if last_user >= 0 else ""
        step = _next_step(request, question, messages[last_user + 1 :])
        if not isinstance(step, str):
            for call in step:
                yield call
            yield Finished("tool_calls")
            return
        for piece in re.findall(r"\s*\S+", step):
            # Word by word, like a model; each word is relayed as its own event either way.
            if self.word_delay:
                await asyncio.sleep(self.word_delay)
            yield piece
        yield Finished("stop")

    async def aclose(self) -> None:
        return None
