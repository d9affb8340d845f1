"""The shopper's presence: page loads, heartbeats and open live streams keep a conversation
active and show the shopper online. Noted here and written in batches, one UPDATE per shop
every few seconds, and none for a conversation whose last one is recent: a heartbeat from
5,000 open pages costs a signature check and a set insertion, not 5,000 writes."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import timedelta

from app import repo
from app.db import Database
from app.models import utcnow

log = logging.getLogger("app.conversations.presence")

FLUSH_EVERY = 5.0
# A conversation seen this recently is not written again: well within ONLINE_WITHIN, and far
# within the abandonment's half hour.
RECENT = timedelta(seconds=20)
BATCH = 200


class Presence:
    def __init__(self, db: Database, *, interval: float = FLUSH_EVERY) -> None:
        self.db = db
        self.interval = interval
        self._seen: defaultdict[int, set[str]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.writes = 0

    def seen(self, shop_id: int, session_id: str) -> None:
        self._seen[shop_id].add(session_id)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:
                log.exception("writing the shoppers' presence failed; trying again")

    async def flush(self) -> None:
        if not self._seen:
            return
        seen, self._seen = self._seen, defaultdict(set)
        now = utcnow()
        try:
            # (Through SQLAlchemy: an IN list. Each batch commits on its own, so no row stays
            # locked longer than its one statement.)
            async with self.db.session() as session:
                for shop_id, sessions in seen.items():
                    ids = sorted(sessions)
                    for start in range(0, len(ids), BATCH):
                        self.writes += await repo.touch_sessions(
                            session,
                            shop_id=shop_id,
                            session_ids=ids[start : start + BATCH],
                            now=now,
                            recent=RECENT,
                        )
                        await session.commit()
        except Exception:
            for shop_id, sessions in seen.items():  # kept for the next try
                self._seen[shop_id] |= sessions
            raise
