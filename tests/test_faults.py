"""Faults: a worker killed mid-reply, and the upstream failing under load."""

from __future__ import annotations

import asyncio
import signal

from app.db import Database
from tests.factories import (
    ProxyClient,
    iter_events,
    make_shop,
    messages_of,
    new_id,
)
from tests.servers import free_port
from tests.workers import start_worker, stop_worker


async def test_replies_of_a_killed_worker_end_as_errors_on_another(
    database_url: str, db: Database
) -> None:
    shop = await make_shop(db)
    doomed, doomed_url = start_worker(database_url, AI_OFFLINE_WORD_DELAY="0.3")
    survivor, survivor_url = start_worker(database_url, STALE_STREAM_AFTER="3")
    try:
        session_id = new_id()
        async with ProxyClient(doomed_url, shop) as client:
            async with client.open_turn(session_id, "Tell me everything please") as response:
                assert response.status_code == 200, await response.aread()
                events = iter_events(response)
                await anext(events)
                await anext(events)
                doomed.send_signal(signal.SIGKILL)  # no shutdown, no final write
                doomed.wait(timeout=10)
        reply = [m for m in await messages_of(db, shop, session_id) if m.role == "assistant"][0]
        assert reply.status == "streaming", "the dead worker left it streaming"

        deadline = asyncio.get_running_loop().time() + 60
        while True:
            reply = [m for m in await messages_of(db, shop, session_id) if m.role == "assistant"][0]
            if reply.status != "streaming":
                break
            assert asyncio.get_running_loop().time() < deadline, "still streaming after a minute"
            await asyncio.sleep(0.2)
        assert reply.status == "error" and reply.error_code == "interrupted"
        user = [m for m in await messages_of(db, shop, session_id) if m.role == "user"]
        assert [m.content for m in user] == ["Tell me everything please"]
        async with ProxyClient(survivor_url, shop) as client:
            resumed = await client.resume(session_id, reply.public_id)
            assert resumed.last.event == "error"
            assert resumed.last.data["code"] == "interrupted"
            again = await client.send(session_id, "are you still there?")
            assert again.last.event == "done", "the conversation goes on with the other worker"
    finally:
        for process in (doomed, survivor):
            stop_worker(process)


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
