"""The database layer: what its errors may say."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from app.db import Database
from app.models import Message, utcnow
from tests.factories import new_id


async def test_driver_errors_do_not_carry_the_shoppers_text(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """An error's text reaches the logs; the values of its statement must not."""
    secret = "my card number is 4111 1111 1111 1111"
    with pytest.raises(DBAPIError) as caught:
        async with db.session() as session:
            await session.execute(
                sa.insert(Message).values(
                    public_id=new_id(),
                    conversation_id=2**40,  # no such conversation: a foreign key violation
                    role="user",
                    content=secret,
                    status="complete",
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
    logging.getLogger("app.errors").warning("database error: %s", caught.value)
    assert "4111" not in str(caught.value)
    assert "4111" not in caplog.text
    assert "hidden due to hide_parameters" in str(caught.value)
