"""Reading one field of a product as Shopify sends it: each checked for its type and bounded
in length, ProductShapeError when it cannot be what it claims (app/catalog/products.py)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from html.parser import HTMLParser

from app.validation import is_product_handle

MAX_TITLE = 255
MAX_DESCRIPTION = 5000
MAX_TAGS = 250
MAX_VARIANTS = 2048  # Shopify's own limit per product
_GID = re.compile(r"^gid://shopify/(Product|ProductVariant)/([0-9]{1,19})$")
# Money as Shopify writes it: a plain decimal, within what the column holds.
_MONEY = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,6})?$")


class ProductShapeError(Exception):
    """A body or node that is not a product of the shape it claims to be."""


class _Text(HTMLParser):
    """The text of a product's description HTML: blocks on their own lines, no markup."""

    BLOCKS = frozenset({"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "tr", "table"})
    SKIPPED = frozenset({"script", "style", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIPPED:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def plain_text(markup: str, limit: int = MAX_DESCRIPTION) -> str:
    parser = _Text()
    parser.feed(markup)
    parser.close()
    text = html.unescape("".join(parser.parts))
    lines = (re.sub(r"[ \t\r\f\v\u00a0]+", " ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)[:limit]


def text(value: object, limit: int, *, required: str | None = None) -> str:
    if value is None and required is None:
        return ""
    if not isinstance(value, str):
        if required is None:
            return ""
        raise ProductShapeError(f"A product's {required} is text.")
    # Most text is printable throughout: checked once, rather than character by character.
    printable = value.isprintable()
    text = value if printable else "".join(c for c in value if c.isprintable() or c in "\n\t")
    text = text.strip()
    if required is not None and not text:
        raise ProductShapeError(f"A product has a {required}.")
    return text[:limit]


def shopify_id(value: object, kind: str) -> int:
    """Shopify's numeric id, from a number, its digits, or a GraphQL gid."""
    if isinstance(value, bool):
        raise ProductShapeError(f"A {kind} id is a number.")
    if isinstance(value, int) and 0 < value < 2**63:
        return value
    if isinstance(value, str):
        if value.isascii() and value.isdigit() and 0 < len(value) <= 19 and int(value) < 2**63:
            return int(value)
        match = _GID.fullmatch(value)
        if match and int(match.group(2)) < 2**63:
            return int(match.group(2))
    raise ProductShapeError(f"A {kind} id is a Shopify id.")


def money(value: object) -> Decimal | None:
    if isinstance(value, dict):  # MoneyV2: {"amount": "...", "currencyCode": "..."}
        value = value.get("amount")
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ProductShapeError("A price is a decimal number.")
    text = str(value).strip()
    if not _MONEY.fullmatch(text):
        raise ProductShapeError("A price is a decimal number.")
    try:
        return Decimal(text).quantize(Decimal("0.01"))
    except InvalidOperation as exc:  # pragma: no cover - the pattern keeps it in range
        raise ProductShapeError("A price is a decimal number.") from exc


def moment(value: object) -> datetime:
    if isinstance(value, str) and len(value) <= 40:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if moment.tzinfo is not None:
                return moment.astimezone(UTC)
    raise ProductShapeError("A product's updated_at is an ISO 8601 time with its offset.")


def handle(value: object) -> str:
    if isinstance(value, str) and is_product_handle(value):
        return value
    raise ProductShapeError("A product's handle is a Shopify handle.")


def web_url(value: object) -> str | None:
    if isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) < 2048:
        return value if value.isprintable() and " " not in value else None
    return None


def status(value: object) -> str:
    status = value.lower() if isinstance(value, str) else ""
    if status not in ("active", "draft", "archived"):
        raise ProductShapeError("A product's status is active, draft or archived.")
    return status


def tags(value: object) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        return ()
    tags = (text(item, 255) for item in items[:MAX_TAGS])
    return tuple(tag for tag in tags if tag)


def options(value: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(value, list):
        return ()
    options = []
    for option in value[:3]:
        if not isinstance(option, dict):
            continue
        name = text(option.get("name"), 255)
        values = option.get("values") or option.get("optionValues") or []
        if isinstance(values, list):
            texts = tuple(
                t
                for t in (
                    text(v.get("name") if isinstance(v, dict) else v, 255) for v in values[:250]
                )
                if t
            )
            if name:
                options.append((name, texts))
    return tuple(options)


def product_url(storefront_url: str, handle: str) -> str:
    return f"{storefront_url.rstrip('/')}/products/{handle}"
