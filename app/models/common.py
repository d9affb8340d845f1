"""What every table module shares: the id type and how times and public ids are made."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for messages.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_public_id() -> str:
    return str(uuid.uuid4())


def aware(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; everything we store is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iso(value: datetime | None) -> str | None:
    """A stored time as the APIs write it: UTC, with Z."""
    return aware(value).isoformat().replace("+00:00", "Z") if value else None
