"""The merchant's statistics are counted by the database: right figures, few rows brought back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Result
from sqlalchemy.ext.asyncio import AsyncSession

from app import repo
from app.db import Database
from app.models import new_public_id
from app.repo.chat import messages
from app.repo.stats import QUESTION_GROUPS, conversations
from tests.factories import make_shop, shop_id_of

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)  # a Saturday


async def _conversations(
    db: Database, shop_id: int, started: list[tuple[datetime, str | None]], status: str = "ended"
) -> None:
    """One conversation a (start, first question) pair: the question (none: the shopper never
    asked), an answer, and a second question that is never a first."""
    ids = [new_public_id() for _ in started]
    async with db.session() as session:
        await session.execute(
            sa.insert(conversations),
            [
                {
                    "public_id": public_id,
                    "shop_id": shop_id,
                    "session_id": new_public_id(),
                    "status": status,
                    "created_at": when,
                    "last_activity_at": when,
                    # As the turns that wrote the messages below keep them (app/repo/chat.py).
                    "message_count": 1 if question is None else 3,
                    "first_question": question,
                }
                for public_id, (when, question) in zip(ids, started, strict=True)
            ],
        )
        rows = await session.execute(
            sa.select(conversations.c.public_id, conversations.c.id).where(
                conversations.c.public_id.in_(ids)
            )
        )
        internal = {public_id: ident for public_id, ident in rows.all()}
        said = []
        for public_id, (when, question) in zip(ids, started, strict=True):
            turns = [("assistant", "Hello! How can I help?")]
            if question is not None:
                turns = [("user", question), ("assistant", "An answer."), ("user", "Thanks!")]
            for offset, (role, content) in enumerate(turns):
                said.append(
                    {
                        "public_id": new_public_id(),
                        "conversation_id": internal[public_id],
                        "role": role,
                        "content": content,
                        "status": "complete",
                        "created_at": when + timedelta(seconds=offset),
                        "updated_at": when + timedelta(seconds=offset),
                    }
                )
        await session.execute(sa.insert(messages), said)


class CountingSession:
    """A session that counts the rows the database sends back."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.bind.dialect  # as a connection has, for repo.is_postgres
        self.rows = 0

    async def execute(self, *args: Any, **kwargs: Any) -> Result[Any]:
        frozen = (await self.session.execute(*args, **kwargs)).freeze()
        self.rows += len(frozen.data)
        return frozen()


async def _stats(db: Database, shop_id: int) -> tuple[dict[str, Any], int]:
    async with db.session() as session:
        counting = CountingSession(session)
        figures = await repo.shop_stats(cast(AsyncSession, counting), shop_id=shop_id, now=NOW)
    return figures, counting.rows


async def test_stats_of_many_conversations_bring_back_few_rows(db: Database) -> None:
    shop_id = await shop_id_of(db, await make_shop(db))
    count = QUESTION_GROUPS + 500
    await _conversations(
        db,
        shop_id,
        [
            (NOW - timedelta(minutes=i), f"A question nobody else asks, number {i}")
            for i in range(count)
        ],
    )
    figures, rows = await _stats(db, shop_id)
    assert figures["conversations_total"] == count
    assert figures["messages_total"] == 3 * count
    assert len(figures["top_questions"]) == 10
    # Every conversation's first question and its start time came back to Python: 3,000 rows.
    assert rows <= QUESTION_GROUPS + 50, rows


async def test_top_questions_count_the_same_question_however_it_is_written(
    db: Database,
) -> None:
    shop_id = await shop_id_of(db, await make_shop(db))
    asked = [
        "  Do you ship to Canada?",
        "do you ship to canada",
        "DO YOU SHIP TO CANADA;",  # a mark the database keeps: merged afterwards
        "Do  you ship to Canada ?!",  # inner spacing too
        "What sizes?",
        "what sizes",
        "Is it wool?",
        "is it wool",
        "Gift wrap?",
        "???",  # nothing left of it: not a question
        None,  # a conversation where the shopper asked nothing
    ]
    await _conversations(
        db, shop_id, [(NOW - timedelta(hours=len(asked) - i), q) for i, q in enumerate(asked)]
    )
    figures, _ = await _stats(db, shop_id)
    assert figures["top_questions"] == [
        {"question": "Do you ship to Canada?", "count": 4},
        # Of as many, the one asked first comes first, shown as it was first written.
        {"question": "What sizes?", "count": 2},
        {"question": "Is it wool?", "count": 2},
        {"question": "Gift wrap?", "count": 1},
    ]
    assert figures["messages_total"] == 3 * 10 + 1, "the second questions are not first ones"


async def test_counts_and_days_are_the_shops_in_utc(db: Database) -> None:
    shop_id = await shop_id_of(db, await make_shop(db))
    other = await shop_id_of(db, await make_shop(db))
    midnight = NOW.replace(hour=0)
    await _conversations(
        db,
        shop_id,
        [
            (midnight, "today, the first second"),
            (NOW, "today, now"),
            (midnight - timedelta(microseconds=1), "yesterday, the last moment"),
            (midnight - timedelta(days=5), "Monday"),  # this week began on Monday the 16th
            (midnight - timedelta(days=6), "Sunday, last week"),
            (midnight - timedelta(days=29), "the first of the 30 days"),
            (midnight - timedelta(days=30), "before the 30 days"),
        ],
    )
    await _conversations(db, shop_id, [(NOW, "left"), (NOW, "left too")], status="abandoned")
    await _conversations(db, other, [(NOW, "another shop's") for _ in range(5)])
    figures, _ = await _stats(db, shop_id)
    assert figures["conversations_total"] == 9
    assert figures["conversations_today"] == 4
    assert figures["conversations_this_week"] == 6
    assert figures["messages_total"] == 27
    assert figures["average_messages_per_conversation"] == 3.0
    assert figures["abandonment_rate"] == round(2 / 9, 3)
    per_day = figures["per_day"]
    assert len(per_day) == 30
    assert per_day[0] == {"date": "2026-10-23", "conversations": 1}
    assert per_day[-7:] == [
        {"date": "2026-11-15", "conversations": 1},
        {"date": "2026-11-16", "conversations": 1},
        {"date": "2026-11-17", "conversations": 0},
        {"date": "2026-11-18", "conversations": 0},
        {"date": "2026-11-19", "conversations": 0},
        {"date": "2026-11-20", "conversations": 1},
        {"date": "2026-11-21", "conversations": 4},
    ]
    assert sum(day["conversations"] for day in per_day) == 8


async def test_a_shop_without_conversations_has_zeros(db: Database) -> None:
    figures, _ = await _stats(db, await shop_id_of(db, await make_shop(db)))
    assert figures["conversations_total"] == 0 and figures["messages_total"] == 0
    assert figures["average_messages_per_conversation"] == 0
    assert figures["abandonment_rate"] == 0 and figures["top_questions"] == []
    assert [day["conversations"] for day in figures["per_day"]] == [0] * 30


async def test_top_questions_are_those_of_the_charts_days(db: Database) -> None:
    """What shoppers ask now, not what they asked a year ago: the top questions count the
    conversations of the 30 days the chart shows; the totals still count every one."""
    shop_id = await shop_id_of(db, await make_shop(db))
    midnight = NOW.replace(hour=0)
    await _conversations(
        db,
        shop_id,
        [(midnight - timedelta(days=200, minutes=i), "Do you ship to Mars?") for i in range(5)]
        + [(midnight - timedelta(days=30), "Do you ship to Mars?")]  # the day before the 30
        + [(midnight - timedelta(days=29), "Is it wool?"), (NOW, "is it wool")]
        + [(NOW, "Do you ship to Mars?")],
    )
    figures, _ = await _stats(db, shop_id)
    assert figures["conversations_total"] == 9
    assert figures["top_questions"] == [
        {"question": "Is it wool?", "count": 2},
        {"question": "Do you ship to Mars?", "count": 1},
    ]
