"""The background sweeper: abandoned conversations, retention, webhooks left unapplied, and
catalog imports that are due (asked for, to retry, or left by a worker that died)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

from app import repo
from app.db import Database
from app.models import utcnow

log = logging.getLogger("app.sweeper")
# Imports started per sweep, and running at once in one worker: each holds a connection and
# reads from Shopify for minutes; the other workers take the rest.
IMPORTS_PER_SWEEP = 2
IMPORTS_AT_ONCE = 4


class Sweeper:
    def __init__(
        self,
        *,
        db: Database,
        abandon_after_minutes: float,
        interval: float,
        apply_webhook: Callable[[int], Awaitable[bool]] | None = None,
        run_import: Callable[[str], Coroutine[Any, Any, object]] | None = None,
        announce: Callable[[list[tuple[int, int, str, str]]], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        # How abandoned conversations are told to their live streams (app/conversations).
        self.announce = announce
        # How a stored webhook is applied (app/privacy.py, given the running app's state).
        self.apply_webhook = apply_webhook
        # How a shop's catalog import is run (app/catalog/sync.py), given its domain.
        self.run_import = run_import
        # Work started in the background of this worker (imports): kept referenced until it
        # ends, cancelled on shutdown (an import's lease then runs out and another worker
        # takes it up).
        self.background: set[asyncio.Task[object]] = set()
        self.abandon_after = timedelta(minutes=abandon_after_minutes)
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        tasks = [*self.background, *([self._task] if self._task is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def spawn(self, work: Coroutine[Any, Any, object]) -> asyncio.Task[object]:
        task = asyncio.create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    async def drain(self) -> None:
        """Wait for the background work started so far (tests, and a graceful stop)."""
        while self.background:
            await asyncio.gather(*self.background, return_exceptions=True)

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
            left = await repo.mark_abandoned(session, inactive_since=now - self.abandon_after)
            abandoned = len(left)
            expired = await repo.delete_expired(session, now=now)
            await repo.forget_old_counters(session, before=int(now.timestamp()) - 3600)
            await repo.forget_old_nonces(session, before=now - timedelta(days=1))
            # A replayed body is recognised for as long as its digest is kept.
            await repo.forget_old_webhooks(session, before=now - timedelta(days=90))
        if left and self.announce is not None:
            await self.announce(left)
        async with self.db.session() as session:
            pending = await repo.pending_webhooks(
                session, older_than=now - timedelta(seconds=30), now=now
            )
        retried = 0
        apply = self.apply_webhook
        if apply is not None:
            for event_id in pending:
                retried += await apply(event_id)
        imports = await self._start_imports()
        if abandoned or expired or retried or imports:
            log.info(
                "swept: %d abandoned, %d expired, %d webhooks applied, %d imports started",
                abandoned,
                expired,
                retried,
                imports,
            )
        return {"abandoned": abandoned, "expired": expired, "webhooks": retried, "imports": imports}

    async def _start_imports(self) -> int:
        run = self.run_import
        room = min(IMPORTS_PER_SWEEP, IMPORTS_AT_ONCE - len(self.background))
        if run is None or room <= 0:
            return 0
        async with self.db.session() as session:
            due = await repo.due_imports(session, now=utcnow(), limit=room)
        for domain in due:
            self.spawn(run(domain))
        return len(due)
