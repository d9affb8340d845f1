"""The merchant's statistics, counted in the database: a shop's conversations, their messages,
conversations per day and the questions asked most."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from app.models import Conversation, Message, aware

conversations: sa.Table = Conversation.__table__  # type: ignore[attr-defined]
messages: sa.Table = Message.__table__  # type: ignore[attr-defined]

TOP_QUESTIONS = 10
# Distinct first questions brought back to be merged in Python (see _top_questions).
QUESTION_GROUPS = 1000


class utc_day(FunctionElement[date]):
    """The UTC calendar day of a stored time, on either database."""

    type = sa.Date()
    name = "utc_day"
    inherit_cache = True


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"(timezone('UTC', {compiler.process(element.clauses, **kw)}))::date"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite stores the time as UTC text, 'YYYY-MM-DD HH:MM:SS.ffffff'.
    return f"date({compiler.process(element.clauses, **kw)})"


def question_key(text: str) -> str:
    """What makes two questions the same: case, punctuation and spacing do not count."""
    key = re.sub(r"[^\w\s]", "", text.lower()).strip()
    return re.sub(r"\s+", " ", key)


async def _top_questions(
    session: AsyncSession, *, shop_id: int, since: datetime
) -> list[dict[str, object]]:
    """The shop's most asked first questions, of the conversations started since `since`.

    Each conversation keeps its first question (written by its first turn), so this reads
    the shop's conversations, not their messages; and only those of the days the dashboard
    shows, so that what shoppers ask now is not buried under years of history (and the cost
    follows the shop's recent traffic, not its age). The database groups them by their text and
    brings back the QUESTION_GROUPS largest groups; question_key merges those that differ only
    in case, punctuation or spacing. (Computing that key in the database cost PostgreSQL more
    than the rest of the query.) Exact while a shop has fewer distinct first questions than
    that; past it, a way of writing a question rarer than every group brought back is not
    counted.
    """
    question = conversations.c.first_question
    earliest = sa.func.min(conversations.c.id)
    groups = await session.execute(
        sa.select(question, sa.func.count(), earliest)
        .where(
            conversations.c.shop_id == shop_id,
            conversations.c.created_at >= since,
            question.is_not(None),
        )
        .group_by(question)
        .order_by(sa.func.count().desc(), earliest)
        .limit(QUESTION_GROUPS)
    )
    counts: dict[str, int] = {}
    firsts: dict[str, int] = {}
    shown: dict[int, str] = {}
    for text, count, first_id in groups.all():
        key = question_key(str(text))
        if key:
            counts[key] = counts.get(key, 0) + int(count)
            firsts[key] = min(firsts.get(key, first_id), first_id)
            shown[first_id] = str(text).strip()
    # The most asked first; of as many, the one asked first (as the dashboard always showed),
    # written as it was then.
    top = sorted(counts, key=lambda key: (-counts[key], firsts[key]))[:TOP_QUESTIONS]
    return [{"question": shown[firsts[key]], "count": counts[key]} for key in top]


async def unanswered_questions(
    session: AsyncSession, *, shop_id: int, limit: int = TOP_QUESTIONS
) -> list[dict[str, object]]:
    """What shoppers asked that the catalog, policies and FAQ had no answer to, the most
    recently asked first, each with how often: what the merchant could add."""
    reply, asked = messages.alias("reply"), messages.alias("asked")
    last = sa.func.max(reply.c.created_at)
    groups = await session.execute(
        sa.select(asked.c.content, sa.func.count(), last)
        .select_from(reply)
        .join(conversations, conversations.c.id == reply.c.conversation_id)
        .join(asked, asked.c.id == reply.c.reply_to_id)
        .where(reply.c.unanswered.is_(True), conversations.c.shop_id == shop_id)
        .group_by(asked.c.content)
        .order_by(last.desc())
        .limit(QUESTION_GROUPS)
    )
    counts: dict[str, int] = {}
    latest: dict[str, datetime] = {}
    shown: dict[str, str] = {}
    for text, count, when in groups.all():
        key = question_key(str(text))
        if key:
            counts[key] = counts.get(key, 0) + int(count)
            when = aware(when)
            if key not in latest or when > latest[key]:
                latest[key], shown[key] = when, str(text).strip()
    newest = sorted(counts, key=lambda key: latest[key], reverse=True)[:limit]
    return [
        {
            "question": shown[key],
            "count": counts[key],
            "last_asked_at": latest[key].isoformat().replace("+00:00", "Z"),
        }
        for key in newest
    ]


async def shop_stats(
    session: AsyncSession, *, shop_id: int, now: datetime, days: int = 30
) -> dict[str, object]:
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week = today - timedelta(days=today.weekday())
    since = today - timedelta(days=days - 1)
    # One pass over the shop's conversations, grouped by the day each started: the totals,
    # today's, this week's and the chart's days are sums of those groups (a shop has a few
    # thousand days at most), read from the index on (shop, start) without the table's rows.
    day = utc_day(conversations.c.created_at)
    per_day = await session.execute(
        sa.select(
            day,
            sa.func.count(),
            sa.func.count().filter(conversations.c.status == "abandoned"),
            sa.func.coalesce(sa.func.sum(conversations.c.message_count), 0),
        )
        .where(conversations.c.shop_id == shop_id)
        .group_by(day)
    )
    started: dict[date, int] = {}
    total = abandoned = messages_total = 0
    for when, count, left, said in per_day.all():
        started[when] = int(count)
        total += int(count)
        abandoned += int(left)
        messages_total += int(said)
    on_today = started.get(today.date(), 0)
    this_week = sum(n for when, n in started.items() if when >= week.date())
    return {
        "conversations_today": on_today,
        "conversations_this_week": this_week,
        "conversations_total": total,
        "messages_total": messages_total,
        "average_messages_per_conversation": round(messages_total / total, 1) if total else 0,
        "abandonment_rate": round(abandoned / total, 3) if total else 0,
        "top_questions": await _top_questions(session, shop_id=shop_id, since=since),
        "unanswered_questions": await unanswered_questions(session, shop_id=shop_id),
        "per_day": [
            {
                "date": (since + timedelta(days=i)).date().isoformat(),
                "conversations": started.get((since + timedelta(days=i)).date(), 0),
            }
            for i in range(days)
        ],
    }


__all__ = ["shop_stats", "unanswered_questions"]
