"""Worker heartbeats: a dead worker's replies end within seconds, and no live worker's do."""

from __future__ import annotations

import asyncio
import uuid

from app import repo
from app.db import Database
from app.heartbeat import Heartbeat
from app.models import Message
from tests.factories import make_shop, messages_of, set_heartbeat, streaming_turn

UNREACHABLE = "postgresql+asyncpg://postgres@127.0.0.1:9/none"  # refused at once


async def _reply(db: Database, shop: str, session_id: str) -> Message:
    return [m for m in await messages_of(db, shop, session_id) if m.role == "assistant"][-1]


async def test_a_silent_workers_replies_end_dead_after_its_last_beat(
    start_server, db: Database
) -> None:
    """Any worker ends them within a beat of the heartbeat turning dead_after old (2 s here),
    and a beating worker's are left alone."""
    server, other = start_server(worker_dead_after=2.0), start_server(worker_dead_after=2.0)
    shop = await make_shop(db)
    silent = uuid.uuid4().hex
    await set_heartbeat(db, silent, age=0)  # it beats now, then never again
    loop = asyncio.get_running_loop()
    last_beat = loop.time()
    dead = await streaming_turn(db, shop, worker_id=silent)
    alive = await streaming_turn(
        db, shop, worker_id=other.app.state.chat.replies.heartbeat.worker_id
    )
    while (await _reply(db, shop, dead)).status == "streaming":
        assert loop.time() - last_beat < 10, "not ended"
        await asyncio.sleep(0.05)
    took = loop.time() - last_beat
    beat = server.app.state.chat.replies.heartbeat.interval
    assert 2.0 - 0.2 < took < 2.0 + beat + 0.5, took
    assert (await _reply(db, shop, dead)).error_code == "interrupted"
    assert (await _reply(db, shop, alive)).status == "streaming", "its worker beats"


async def test_after_an_outage_a_worker_judges_no_one_before_it_has_heard_them_again(
    db: Database,
) -> None:
    """When the database comes back every heartbeat is old, the live workers' too: the first
    worker back must not end their replies, only those of workers still silent dead_after
    after it could hear them. A failing beat starts that wait again."""
    shop = await make_shop(db)
    quiet = uuid.uuid4().hex
    await set_heartbeat(db, quiet, age=5)  # silent through the outage
    session_id = await streaming_turn(db, shop, worker_id=quiet)
    conversation_id = (await _reply(db, shop, session_id)).conversation_id
    judge = Heartbeat(db=db, dead_after=1.0)

    await judge.beat()  # back
    assert (await _reply(db, shop, session_id)).status == "streaming", "not ended by its beat"
    assert not await judge.take_over(conversation_id=conversation_id), "nor taken over"
    assert not judge.judging
    assert judge.stamp == judge.worker_id, "its own replies may record it at once"

    for _ in range(6):  # beating for a second, every fifth of one
        await asyncio.sleep(0.2)
        await judge.beat()
    assert judge.judging
    reply = await _reply(db, shop, session_id)
    assert (reply.status, reply.error_code) == ("error", "interrupted"), "silent all along"

    judge.db = Database(UNREACHABLE)
    try:
        await judge.beat()  # fails: logged once, not raised
    finally:
        await judge.db.dispose()
        judge.db = db
    assert not judge.judging
    await judge.beat()
    assert not judge.judging, "it waits a whole dead_after again"
    async with db.session() as session:
        await repo.remove_worker(session, worker_id=judge.worker_id)
