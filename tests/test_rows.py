"""The row types of app/repo/rows.py are their tables' rows: the same columns, in order."""

from __future__ import annotations

import typing

import pytest
import sqlalchemy as sa

from app.models import Conversation, FaqEntry, Message, Shop
from app.repo.rows import ConversationRow, FaqRow, MessageRow, ShopRow


@pytest.mark.parametrize(
    ("row", "model"),
    [(ShopRow, Shop), (FaqRow, FaqEntry), (ConversationRow, Conversation), (MessageRow, Message)],
)
def test_a_row_type_has_its_tables_columns_in_order(row: type, model: type) -> None:
    table = sa.inspect(model).local_table
    assert row._fields == tuple(column.name for column in table.columns)
    hints = typing.get_type_hints(row)
    for column in table.columns:
        optional = type(None) in typing.get_args(hints[column.name])
        assert optional == column.nullable, f"{column.name}: nullable {column.nullable}"
