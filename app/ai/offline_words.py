"""How the offline assistant reads a shopper's words: price bounds and order ("cheapest
sweater under $100"), the words worth searching the catalog for, the options a question names
("in medium", "the red one"), and whether it is about the product on the page."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_NUMBER = (
    r"(?:[$€£]\s*)?([0-9]{1,9}(?:[.,][0-9]{1,2})?)(?:\s*(?:[$€£]|dollars?|euros?|eur|usd|gbp))?"
)
_UNDER = re.compile(
    r"\b(?:under|below|less than|cheaper than|up to|max(?:imum)?|at most|no more than|"
    r"moins de|unter|bis|menos de|hasta)\s+" + _NUMBER,
    re.IGNORECASE,
)
_OVER = re.compile(
    r"\b(?:over|above|more than|at least|min(?:imum)?|from|plus de|über|ab|más de|desde)\s+"
    + _NUMBER,
    re.IGNORECASE,
)
_BETWEEN = re.compile(
    r"\b(?:between|entre|zwischen)\s+" + _NUMBER + r"\s+(?:and|et|und|y|-)\s+" + _NUMBER,
    re.IGNORECASE,
)
_CHEAP = re.compile(
    r"\b(?:cheapest|least expensive|lowest price|moins cher|billigste\w*|günstigste\w*|"
    r"más barat\w*)\b",
    re.IGNORECASE,
)
_DEAR = re.compile(
    r"\b(?:most expensive|priciest|highest price|plus cher|teuerste\w*|más car\w*)\b",
    re.IGNORECASE,
)
# Words that say what kind of answer is wanted, not what to look for.
_NOT_SEARCHED = frozenset(
    """a an and any anything are as at be can could do does for from get got have how i if in
    is it me my of on or our please show so some something that the there these this those to
    we what whats what's when where which who why will with would you your yours find looking
    look want need buy sell selling sold product products item items thing things stuff one
    ones available stock price prices cost costs much many cheap cheapest least expensive
    lowest highest most priciest under below less than over above more up max maximum
    minimum min at no between dollars dollar euro euros usd eur gbp also just really like
    recommend suggest best good nice shop store do you have got carry offer""".split()
)
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
_SIZES = {
    "xs": ("xs", "extra small", "x-small", "xsmall"),
    "s": ("s", "small"),
    "m": ("m", "medium", "med"),
    "l": ("l", "large"),
    "xl": ("xl", "extra large", "x-large", "xlarge"),
    "xxl": ("xxl", "2xl", "xx-large"),
}
_PAGE = re.compile(
    r"\b(?:this|it|these|that one|this one|ce|cet|cette|dieses|diese|dieser|este|esta)\b",
    re.IGNORECASE,
)
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "AUD": "A$", "JPY": "¥"}


def _amount(text: str) -> float | None:
    try:
        return float(Decimal(text.replace(",", ".")))
    except InvalidOperation:
        return None


def price_bounds(question: str) -> tuple[float | None, float | None, str]:
    """(lowest, highest, order) the question asks for."""
    low = high = None
    if between := _BETWEEN.search(question):
        low, high = _amount(between.group(1)), _amount(between.group(2))
    else:
        if under := _UNDER.search(question):
            high = _amount(under.group(1))
        if over := _OVER.search(question):
            low = _amount(over.group(1))
    order = "relevance"
    if _CHEAP.search(question):
        order = "price_asc"
    elif _DEAR.search(question):
        order = "price_desc"
    return low, high, order


def product_words(question: str) -> str:
    """The words of the question worth searching the catalog for."""
    text = _BETWEEN.sub(" ", _OVER.sub(" ", _UNDER.sub(" ", question)))
    text = _DEAR.sub(" ", _CHEAP.sub(" ", text))
    words = [w for w in _WORD.findall(text.lower()) if w not in _NOT_SEARCHED and not w.isdigit()]
    return " ".join(words)[:200]


def mentioned_options(question: str, options: dict[str, list[str]]) -> dict[str, str]:
    """The option values the question names, by option: {"Size": "M"} for "in medium"."""
    asked = " " + " ".join(_WORD.findall(question.lower())) + " "
    wanted = {}
    for name, values in options.items():
        # The longest phrase heard wins: "extra large" is XL, not L.
        best = (0, "")
        for value in values:
            for word in _SIZES.get(value.lower(), (value.lower(),)):
                if (len(word) > 1 or name.lower() == "size") and f" {word} " in asked:
                    best = max(best, (len(word), value))
        if best[0]:
            wanted[name] = best[1]
    return wanted


def refers_to_page(question: str) -> bool:
    return bool(_PAGE.search(question))


def describe_price(amount: object, currency: object) -> str:
    if amount is None:
        return "price on request"
    code = str(currency or "")
    text = f"{Decimal(str(amount)):.2f}"
    symbol = _SYMBOLS.get(code)
    return f"{symbol}{text}" if symbol else f"{text} {code}".strip()


# A shopper asking for a person, in the widget's four languages (English, French, German,
# Spanish). Clear phrases only: "agent" alone, or "a human", but not "human hair".
_PERSON = re.compile(
    r"\b(?:"
    r"(?:a |an |real |actual )?human(?: being| agent| person)?(?=\s*[?!.]*$)|"
    r"(?:speak|talk|chat)(?:ing)? (?:to|with) (?:a |an |some ?one|somebody|a real|your )"
    r"(?:person|human|agent|one|body|team|staff|support|representative)?|"
    r"(?:live|human|real|support|customer service) (?:agent|person|chat|support)|"
    r"customer (?:service|support)|representative|operator|"
    r"^(?:an? )?(?:agent|person)(?:,? please)?(?=\s*[?!.]*$)|"
    r"(?:un |une )?(?:humain|conseill(?:er|ère)|vraie personne|être humain)|"
    r"parler (?:à|avec) (?:quelqu'un|quelqu’un|une personne|un humain|un conseiller)|"
    r"service client|"
    r"(?:einen |einem |mit einem )?(?:menschen|mensch|mitarbeiter(?:in)?|berater(?:in)?)|"
    r"(?:mit )?jemandem sprechen|echte person|kundenservice|kundendienst|"
    r"(?:un )?(?:humano|agente|asesor(?:a)?|persona real)|"
    r"hablar con (?:alguien|una persona|un humano|un agente)|atención al cliente"
    r")\b",
    re.IGNORECASE,
)


def asks_for_person(question: str) -> bool:
    """Whether the shopper asks to talk to a person (the offline assistant hands over)."""
    return bool(_PERSON.search(question.strip()))
