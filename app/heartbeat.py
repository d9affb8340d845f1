"""This worker's heartbeat, by which the workers tell when a reply has no one left to write it.

Each worker process has a random id and a row in `workers` that it touches every
`dead_after / 5` seconds; the replies it generates record that id. A reply whose worker has
not beaten for `dead_after` seconds (or has no row) has no one writing it: every worker's beat
ends such replies as interrupted, so a shopper following one sees it end within dead_after
and a beat, and a new turn or a retry in its conversation takes over at once instead of
waiting for that (app/routes/proxy.py).

Silence means death only where the database could hear it: after an outage every heartbeat
is old, and the first worker back would end everyone's replies. So a worker judges the others
only once its own beats have all gone through for `dead_after` seconds (after it starts, too).
"""

from __future__ import annotations

import logging
import os
import time
import uuid

from app import repo
from app.db import Database

log = logging.getLogger("app.heartbeat")


class Heartbeat:
    def __init__(self, *, db: Database, dead_after: float = 10.0) -> None:
        self.db = db
        self.dead_after = dead_after
        self.interval = dead_after / 5
        self.worker_id = uuid.uuid4().hex
        self._beaten_at: float | None = None  # monotonic time of the last recorded beat
        self._hearing_since: float | None = None  # since when every beat went through
        self._failing = False

    @property
    def stamp(self) -> str | None:
        """The worker id to record on a reply begun now, or None while this worker's row may
        be missing or stale in the others' eyes (its beats failing): they would end the reply
        at once as orphaned, where None leaves it to the stale-reply fallback
        (app/replies.py)."""
        beaten = self._beaten_at
        if beaten is None or time.monotonic() - beaten > self.dead_after / 2:
            return None
        return self.worker_id

    @property
    def judging(self) -> bool:
        """Whether this worker has heard the database long enough to take another worker's
        silence for its death."""
        since = self._hearing_since
        return since is not None and time.monotonic() - since >= self.dead_after

    async def beat(self) -> None:
        """Record this worker's heartbeat, then end the replies of workers found dead."""
        started = time.monotonic()
        try:
            async with self.db.session() as session:
                await repo.beat(session, worker_id=self.worker_id)
        except Exception as exc:
            self._hearing_since = None
            if not self._failing:  # once an outage, not every beat of it
                log.warning("worker %s cannot record its heartbeat: %r", self.worker_id, exc)
            self._failing = True
            return
        if self._failing:
            log.warning("worker %s records its heartbeat again", self.worker_id)
        self._failing = False
        last, self._beaten_at = self._beaten_at, started
        if last is None:
            log.info("worker %s (pid %d) beats", self.worker_id, os.getpid())
        if self._hearing_since is None or last is None or started - last > self.dead_after / 2:
            self._hearing_since = started  # (beats that far apart: this worker was stuck)
        if not self.judging:
            return
        async with self.db.session() as session:
            count = await repo.end_orphaned_replies(
                session, dead_after=self.dead_after, this_worker=self.worker_id
            )
        if count:
            log.warning("ended %d replies of dead workers as interrupted", count)

    async def take_over(self, *, conversation_id: int) -> bool:
        """End the reply streaming in a conversation if its worker is known to be dead, so that
        the shopper's new turn or retry can go ahead; whether this call ended it."""
        if not self.judging:
            return False
        async with self.db.session() as session:
            count = await repo.end_orphaned_replies(
                session,
                dead_after=self.dead_after,
                this_worker=self.worker_id,
                conversation_id=conversation_id,
            )
        if count:
            log.warning("conversation %d: ended a dead worker's reply to go on", conversation_id)
        return bool(count)

    async def stop(self) -> None:
        """A worker stopping cleanly, its replies saved, leaves nothing for the others to end.
        (Failing, its row goes stale and another worker drops it.)"""
        try:
            async with self.db.session() as session:
                await repo.remove_worker(session, worker_id=self.worker_id)
        except Exception:
            log.exception("could not remove worker %s's heartbeat", self.worker_id)
