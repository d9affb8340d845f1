"""The background sweeper: abandoned conversations, retention, and webhooks left unapplied."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from app import repo
from app.db import Database
from app.models import utcnow

log = logging.getLogger("app.sweeper")


class Sweeper:
    def __init__(
        self,
        *,
        db: Database,
        abandon_after_minutes: float,
        interval: float,
        apply_webhook: Callable[[int], Awaitable[bool]] | None = None,
    ) -> None:
        self.db = db
        # How a stored webhook is applied (app/privacy.py, given the running app's state).
        self.apply_webhook = apply_webhook
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
            await repo.forget_old_nonces(session, before=now - timedelta(days=1))
            # A replayed body is recognised for as long as its digest is kept.
            await repo.forget_old_webhooks(session, before=now - timedelta(days=90))
        async with self.db.session() as session:
            pending = await repo.pending_webhooks(
                session, older_than=now - timedelta(seconds=30), now=now
            )
        retried = 0
        apply = self.apply_webhook
        if apply is not None:
            for event_id in pending:
                retried += await apply(event_id)
        if abandoned or expired or retried:
            log.info(
                "swept: %d abandoned, %d expired, %d webhooks applied", abandoned, expired, retried
            )
        return {"abandoned": abandoned, "expired": expired, "webhooks": retried}
