"""Rows as the storefront's reads hand them back: typed as what they are.

A Core read gives back rows, not model instances (building an ORM instance per row cost
35 µs, more than the database's answer; bench/). These named tuples are those rows, with the
columns of their tables in the tables' order, so a row of `SELECT <table>.*` becomes one
with `_make`; tests/test_rows.py keeps the fields and the tables' columns the same.
Read-only, as a row is: a change goes through an UPDATE.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple, TypeAlias, TypeVar

from app.models import Shop

__all__ = ["AnyShop", "ConversationRow", "FaqRow", "MessageRow", "ShopRow", "many", "one"]


class ShopRow(NamedTuple):
    id: int
    domain: str
    access_token: str | None
    refresh_token: str | None
    access_token_expires_at: datetime | None
    refresh_token_expires_at: datetime | None
    scopes: str | None
    installed: bool
    system_prompt: str | None
    greeting: str | None
    accent_color: str | None
    ai_provider: str | None
    ai_model: str | None
    retention_days: int | None
    direct_streams: str | None
    created_at: datetime
    uninstalled_at: datetime | None
    token_refresh_until: datetime | None


# A shop as the merchant side has it: read as a row, or the model instance it just wrote.
AnyShop: TypeAlias = Shop | ShopRow


class FaqRow(NamedTuple):
    id: int
    shop_id: int
    question: str
    answer: str
    position: int


class ConversationRow(NamedTuple):
    id: int
    public_id: str
    shop_id: int
    session_id: str
    customer_id: str | None
    status: str
    created_at: datetime
    last_activity_at: datetime
    ended_at: datetime | None
    message_count: int
    first_question: str | None
    product_handle: str | None
    handler: str = "assistant"
    assignee: str | None = None
    waiting_since: datetime | None = None
    contact_email: str | None = None
    seen_at: datetime | None = None
    read_message_id: int | None = None


class MessageRow(NamedTuple):
    id: int
    public_id: str
    conversation_id: int
    role: str
    content: str
    status: str
    client_message_id: str | None
    reply_to_id: int | None
    finish_reason: str | None
    error_code: str | None
    created_at: datetime
    updated_at: datetime
    worker_id: str | None
    products: str | None = None
    tools: str | None = None
    unanswered: bool | None = None
    author: str | None = None


Row = TypeVar("Row", ShopRow, FaqRow, ConversationRow, MessageRow)


def one(kind: type[Row], row: Iterable[Any] | None) -> Row | None:
    """A row of `SELECT <table>.*` (or None) as its type."""
    return None if row is None else kind._make(row)


def many(kind: type[Row], rows: Iterable[Iterable[Any]]) -> list[Row]:
    return [kind._make(row) for row in rows]
