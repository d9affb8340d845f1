"""Faults: a worker killed mid-reply, and the upstream failing under load."""

from __future__ import annotations

import asyncio
import signal
import time
from unittest.mock import ANY

from app.db import Database
from app.models import Message, Worker, aware
from tests.factories import (
    ProxyClient,
    Turn,
    iter_events,
    make_shop,
    messages_of,
    new_id,
    read_turn,
)
from tests.servers import free_port
from tests.workers import start_worker, stop_worker

LONG_QUESTION = "Tell me everything please"
WORKER_DEAD_AFTER = 10.0  # the default


async def _reply(db: Database, shop: str, session_id: str) -> Message:
    return [m for m in await messages_of(db, shop, session_id) if m.role == "assistant"][-1]


async def _heartbeat(db: Database, worker_id: str | None) -> float:
    """When the worker last beat, as a Unix time."""
    assert worker_id is not None, "the reply records the worker that generates it"
    async with db.session() as session:
        worker = await session.get(Worker, worker_id)
    assert worker is not None
    return aware(worker.heartbeat_at).timestamp()


async def test_replies_of_a_killed_worker_end_within_15_s_and_the_shopper_goes_on_at_once(
    database_url: str, db: Database
) -> None:
    """Default timings: the stale-reply fallback (60 s) plays no part."""
    shop = await make_shop(db)
    loop = asyncio.get_running_loop()
    survivor, survivor_url = start_worker(database_url)
    survivor_up = loop.time()
    doomed, doomed_url = start_worker(database_url, AI_OFFLINE_WORD_DELAY="0.3")
    try:
        watched, writing = new_id(), new_id()  # one shopper waits, the other writes again
        async with ProxyClient(doomed_url, shop) as client:
            async with (
                client.open_turn(watched, LONG_QUESTION) as one,
                client.open_turn(writing, LONG_QUESTION) as two,
            ):
                for response in (one, two):
                    assert response.status_code == 200, await response.aread()
                    events = iter_events(response)
                    await anext(events)
                    await anext(events)
                # A worker judges others only after hearing the database for WORKER_DEAD_AFTER
                # itself (app/heartbeat.py): up 3 s before the kill, the survivor is by the time
                # the doomed worker's last beat (at most 2 s before the kill) is 10 s old.
                await asyncio.sleep(max(0.0, survivor_up + 3 - loop.time()))
                doomed.send_signal(signal.SIGKILL)  # no shutdown, no final write
                killed_at = loop.time()
                doomed.wait(timeout=10)
        for session_id in (watched, writing):
            assert (await _reply(db, shop, session_id)).status == "streaming", "left streaming"
        dead_reply = await _reply(db, shop, writing)
        known_dead_at = await _heartbeat(db, dead_reply.worker_id) + WORKER_DEAD_AFTER

        async def ended() -> float:
            while (await _reply(db, shop, watched)).status == "streaming":
                assert loop.time() - killed_at < 60, "still streaming after a minute"
                await asyncio.sleep(0.1)
            return loop.time() - killed_at

        async def accepted(client: ProxyClient) -> tuple[Turn, float, int]:
            """The shopper sends a new message until it is taken (every 0.2 s)."""
            refused = 0
            while True:
                async with client.open_turn(writing, "are you still there?") as response:
                    answered_at = time.time()  # the status line: accepted or refused
                    turn = await read_turn(response)
                if turn.status_code == 200:
                    return turn, answered_at, refused
                assert turn.status_code == 409, turn.body
                assert turn.body == {"error": {"code": "turn_in_progress", "message": ANY}}
                assert loop.time() - killed_at < 60, "refused for a minute"
                refused += 1
                await asyncio.sleep(0.2)

        async with ProxyClient(survivor_url, shop) as client:
            ended_after, (again, accepted_at, refused) = await asyncio.gather(
                ended(), accepted(client)
            )
        print(
            f"reply of the killed worker ended {ended_after:.1f} s after the kill; the next "
            f"message accepted {accepted_at - known_dead_at:+.2f} s after its heartbeat was "
            f"{WORKER_DEAD_AFTER:.0f} s old ({refused} refused before)"
        )
        assert ended_after < 15, f"the reply ended {ended_after:.1f} s after the worker died"
        assert refused > 0, "while the worker may be alive, its conversation is busy"
        assert accepted_at > known_dead_at - 0.5, "no turn takes over from a worker not known dead"
        # At once: before the survivor's own next beat (every 2 s) could have ended the reply
        # (without the take-over, +2.4 s was measured). 1.0 s was too tight on a loaded machine.
        assert accepted_at - known_dead_at < 1.8, "accepted at once once the worker is known dead"
        assert again.last.event == "done", "the conversation goes on with the other worker"
        taken_over = [m for m in await messages_of(db, shop, writing) if m.id == dead_reply.id][0]
        assert (taken_over.status, taken_over.error_code) == ("error", "interrupted")
        users = [m.content for m in await messages_of(db, shop, writing) if m.role == "user"]
        assert users == [LONG_QUESTION, "are you still there?"], "no refused turn was kept"

        reply = await _reply(db, shop, watched)
        assert reply.status == "error" and reply.error_code == "interrupted"
        async with ProxyClient(survivor_url, shop) as client:
            resumed = await client.resume(watched, reply.public_id)
            assert resumed.last.event == "error"
            assert resumed.last.data["code"] == "interrupted"
            after = await client.send(watched, "are you still there?")
            assert after.last.event == "done"
    finally:
        for process in (doomed, survivor):
            stop_worker(process)


async def test_a_worker_that_stops_cleanly_leaves_no_heartbeat(
    database_url: str, db: Database
) -> None:
    worker, url = start_worker(database_url)
    try:
        shop = await make_shop(db)
        async with ProxyClient(url, shop) as client:
            session_id = new_id()
            assert (await client.send(session_id, "hello")).last.event == "done"
        worker_id = (await _reply(db, shop, session_id)).worker_id
        assert worker_id is not None
        await _heartbeat(db, worker_id)
    finally:
        stop_worker(worker)
    async with db.session() as session:
        assert await session.get(Worker, worker_id) is None


async def test_upstream_failing_under_load_loses_no_message(start_server, db: Database) -> None:
    """Twenty shoppers at once against a model server that refuses connections."""
    server = start_server(
        ai_provider="openai",
        ai_base_url=f"http://127.0.0.1:{free_port()}/v1",
        ai_api_key="k",
        ai_model="m",
    )
    shop = await make_shop(db)
    sessions = [new_id() for _ in range(20)]
    async with ProxyClient(server.url, shop) as client:
        turns = await asyncio.gather(
            *(client.send(s, f"question {i}") for i, s in enumerate(sessions))
        )
    assert all(t.last.event == "error" for t in turns)
    for index, session_id in enumerate(sessions):
        saved = await messages_of(db, shop, session_id)
        assert [(m.role, m.status) for m in saved] == [("user", "complete"), ("assistant", "error")]
        assert saved[0].content == f"question {index}"
