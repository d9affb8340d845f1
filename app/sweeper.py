"""The background sweeper: abandoned conversations, retention, and webhooks left unapplied."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from app import privacy, repo
from app.db import Database
from app.models import utcnow

log = logging.getLogger("app.sweeper")


class Sweeper:
    def __init__(self, *, db: Database, abandon_after_minutes: float, interval: float) -> None:
        self.db = db
        self.abandon_after = timedelta(minutes=abandon_after_minutes)
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("sweep failed; trying again next time")
            await asyncio.sleep(self.interval)

    async def sweep(self) -> dict[str, int]:
        """One pass; every statement is idempotent, so several workers may sweep at once."""
        now = utcnow()
        async with self.db.session() as session:
            abandoned = await repo.mark_abandoned(session, inactive_since=now - self.abandon_after)
            expired = await repo.delete_expired(session, now=now)
            await repo.forget_old_counters(session, before=int(now.timestamp()) - 3600)
        async with self.db.session() as session:
            pending = await repo.pending_webhooks(session, older_than=now - timedelta(seconds=30))
        retried = 0
        for event in pending:
            retried += await privacy.process(self.db, event)
        if abandoned or expired or retried:
            log.info(
                "swept: %d abandoned, %d expired, %d webhooks applied", abandoned, expired, retried
            )
        return {"abandoned": abandoned, "expired": expired, "webhooks": retried}
