"""Replies outlive requests: resume, stop, disconnects, batched flushes, dead workers."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from app import repo
from app.db import Database
from app.models import Message, utcnow
from app.replies import LiveReply
from tests.factories import (
    Event,
    ProxyClient,
    Turn,
    iter_events,
    make_shop,
    messages_of,
    new_id,
    set_heartbeat,
    streaming_turn,
)
from tests.servers import LiveServer

LONG_QUESTION = "Tell me everything please"


async def _wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


def _streamed(events: list[Event]) -> str:
    """The text a stream's delta events carried."""
    return Turn(200, events).text


async def _reply(db: Database, shop: str, session_id: str) -> Message:
    return [m for m in await messages_of(db, shop, session_id) if m.role == "assistant"][-1]


async def test_resume_after_disconnect_continues_from_last_event_id(
    start_server, db: Database
) -> None:
    slow = start_server(offline_word_delay=0.05)
    shop = await make_shop(db)
    async with ProxyClient(slow.url, shop) as client:
        session_id = new_id()
        seen = []
        async with client.open_turn(session_id, LONG_QUESTION) as response:
            async for event in iter_events(response):
                seen.append(event)
                if sum(e.event == "delta" for e in seen) == 3:
                    break
        start = seen[0].data
        last_id = seen[-1].id
        received = _streamed(seen)

        resumed = await client.resume(session_id, start["assistant_message_id"], last_id)

        assert resumed.status_code == 200
        assert resumed.first("start").data == start
        assert resumed.last.event == "done"
        saved = await _reply(db, shop, session_id)
        assert saved.status == "complete"
        assert received + resumed.text == saved.content, "no piece lost, none repeated"


async def test_resume_of_a_finished_reply_replays_it(client: ProxyClient) -> None:
    session_id = new_id()
    turn = await client.send(session_id, "hello")
    reply_id = turn.first("start").data["assistant_message_id"]
    replay = await client.resume(session_id, reply_id)
    assert replay.text == turn.text
    assert replay.last.event == "done"
    rest = await client.resume(session_id, reply_id, f"{reply_id}:3")
    assert rest.text == turn.text[3:]
    foreign = await client.resume(session_id, reply_id, f"{new_id()}:3")
    assert foreign.text == turn.text, "an id of another message starts from the beginning"


@pytest.mark.parametrize(
    "value",
    ["{rid}:²", "{rid}:１", "{rid}:" + "9" * 5000, "{rid}:-1", "{rid}", "garbage", "x:3"],
)
async def test_a_last_event_id_this_service_never_sent_is_400(
    client: ProxyClient, value: str
) -> None:
    session_id = new_id()
    turn = await client.send(session_id, "hello")
    reply_id = turn.first("start").data["assistant_message_id"]
    value = value.replace("{rid}", reply_id)
    url = f"/proxy/messages/{reply_id}/stream"
    try:
        raw = value.encode("latin-1")  # as a browser sends '²': the one byte 0xb2
    except UnicodeEncodeError:
        raw = value.encode()
    as_header = await client.get(url, {"session_id": session_id}, headers={"Last-Event-ID": raw})
    as_query = await client.get(url, {"session_id": session_id, "last_event_id": value})
    for response in (as_header, as_query):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_last_event_id"


async def test_resume_on_another_worker_follows_the_database(start_server, db: Database) -> None:
    first = start_server(offline_word_delay=0.05)
    second = start_server()
    shop = await make_shop(db)
    session_id = new_id()
    async with ProxyClient(first.url, shop) as one, ProxyClient(second.url, shop) as two:
        async with one.open_turn(session_id, LONG_QUESTION) as response:
            events = iter_events(response)
            start = (await anext(events)).data
            await anext(events)
            resumed = await two.resume(session_id, start["assistant_message_id"])
            original = [e async for e in events]
    assert original[-1].event == "done"
    saved = await _reply(db, shop, session_id)
    assert resumed.last.event == "done"
    assert resumed.text == saved.content
    assert len([e for e in resumed.events if e.event == "delta"]) > 1, "it streamed, in pieces"


async def test_stop_saves_the_partial_reply_as_stopped(start_server, db: Database) -> None:
    slow = start_server(offline_word_delay=0.05)
    shop = await make_shop(db)
    async with ProxyClient(slow.url, shop) as client:
        session_id = new_id()
        async with client.open_turn(session_id, LONG_QUESTION) as response:
            events = iter_events(response)
            start = (await anext(events)).data
            first = await anext(events)
            stop = await client.post(
                f"/proxy/messages/{start['assistant_message_id']}/stop", {"session_id": session_id}
            )
            rest = [e async for e in events]
        assert stop.status_code == 200
        assert _streamed([first, *rest]) == stop.json()["content"], "it carried all that was saved"
        assert stop.json()["status"] == "stopped"
        assert rest[-1].event == "done"
        assert rest[-1].data["finish_reason"] == "stopped"
        saved = await _reply(db, shop, session_id)
        assert saved.status == "stopped"
        assert saved.content == stop.json()["content"]
        assert 0 < len(saved.content) < 60, "partial"
        assert (await client.send(session_id, "ok, next")).status_code == 200, "no 409 after stop"
        again = await client.post(
            f"/proxy/messages/{start['assistant_message_id']}/stop", {"session_id": session_id}
        )
        assert again.json()["status"] == "stopped", "stopping twice is harmless"


async def test_two_streams_of_one_reply_on_its_worker_both_carry_all_of_it(
    start_server, db: Database
) -> None:
    """The turn's own stream and a resume (a second tab, a reload) held at once: the reply's
    task writes to both, each from where it began, with the offsets as event ids."""
    slow = start_server(offline_word_delay=0.05)
    shop = await make_shop(db)
    async with ProxyClient(slow.url, shop) as client:
        session_id = new_id()
        async with client.open_turn(session_id, LONG_QUESTION) as response:
            events = iter_events(response)
            start = (await anext(events)).data
            first = await anext(events)
            assert first.event == "delta"
            reply = start["assistant_message_id"]
            resumed_task = asyncio.create_task(client.resume(session_id, reply, first.id))
            rest = [e async for e in events]
        resumed = await resumed_task
    saved = await _reply(db, shop, session_id)
    assert saved.status == "complete"
    own = [first, *rest]
    assert _streamed(own) == saved.content
    assert first.data["text"] + resumed.text == saved.content
    for stream in (own, resumed.events):
        deltas = [e for e in stream if e.event == "delta"]
        assert len(deltas) > 1, "in pieces, as they came"
        ends = [int(e.id.rsplit(":", 1)[1]) for e in deltas]
        assert ends == sorted(ends) and ends[-1] == len(saved.content)
        assert stream[-1].event == "done"


async def test_stop_from_another_worker(start_server, db: Database) -> None:
    first = start_server(offline_word_delay=0.05)
    second = start_server()
    shop = await make_shop(db)
    session_id = new_id()
    async with ProxyClient(first.url, shop) as one, ProxyClient(second.url, shop) as two:
        async with one.open_turn(session_id, LONG_QUESTION) as response:
            events = iter_events(response)
            start = (await anext(events)).data
            await anext(events)
            stop = await two.post(
                f"/proxy/messages/{start['assistant_message_id']}/stop", {"session_id": session_id}
            )
            rest = [e async for e in events]
    assert stop.json()["status"] == "stopped"
    assert rest[-1].data["finish_reason"] == "stopped"
    saved = await _reply(db, shop, session_id)
    assert saved.status == "stopped"
    assert 0 < len(saved.content) < 60


async def test_shopper_who_disconnects_loses_nothing(start_server, db: Database) -> None:
    slow = start_server(offline_word_delay=0.03)
    shop = await make_shop(
        db,
        faq=[
            (
                "What are your hours?",
                "We are open from nine to five, Monday to Friday, and ten to four on Saturdays.",
            )
        ],
    )
    async with ProxyClient(slow.url, shop) as client:
        session_id = new_id()
        async with client.open_turn(session_id, "what are your opening hours?") as response:
            events = iter_events(response)
            await anext(events)
            await anext(events)
        # The connection is closed; the reply goes on and is saved whole.

        async def finished() -> bool:
            return (await _reply(db, shop, session_id)).status != "streaming"

        await _wait_for(finished)
        saved = await _reply(db, shop, session_id)
        assert saved.status == "complete"
        assert saved.content == (
            "We are open from nine to five, Monday to Friday, and ten to four on Saturdays."
        )


async def test_a_shopper_who_leaves_stops_being_followed(start_server, db: Database) -> None:
    """The reply goes on, but nothing keeps relaying it to a closed connection."""
    slow = start_server(offline_word_delay=0.05)
    replies = slow.app.state.chat.replies
    shop = await make_shop(db)
    async with ProxyClient(slow.url, shop) as client:
        session_id = new_id()
        async with client.open_turn(session_id, LONG_QUESTION) as response:
            events = iter_events(response)
            start = await anext(events)
            await anext(events)
            live = replies.live[start.data["assistant_message_id"]]
            assert len(live.sinks) == 1, "the reply's task writes to the open stream"
        await asyncio.sleep(0.3)  # a few words later
        assert live.status == "streaming" and live.sinks == [], "not to the closed one"
        assert live._waiters == []

        async def finished() -> bool:
            return (await _reply(db, shop, session_id)).status == "complete"

        await _wait_for(finished)


async def test_streaming_text_reaches_the_database_in_batches(start_server, db: Database) -> None:
    slow = start_server(offline_word_delay=0.05, stream_flush_interval=0.2)
    shop = await make_shop(db)
    async with ProxyClient(slow.url, shop) as client:
        session_id = new_id()
        snapshots: list[str] = []
        async with client.open_turn(session_id, LONG_QUESTION) as response:
            deltas = 0
            async for event in iter_events(response):
                if event.event == "delta":
                    deltas += 1
                    snapshots.append((await _reply(db, shop, session_id)).content)
        final = await _reply(db, shop, session_id)
    partial = [s for s in snapshots if s and s != final.content]
    assert partial, "text is saved while the reply still streams"
    assert all(final.content.startswith(s) for s in snapshots)
    assert len(set(snapshots)) < deltas, "written in batches, not once per token"


async def test_replies_of_a_dead_worker_end_as_errors(start_server, db: Database) -> None:
    shop = await make_shop(db)
    session_id = new_id()
    async with db.session() as session:
        installed = await repo.get_shop(session, domain=shop)
        assert installed is not None and installed.id is not None
        turn = await repo.open_turn(
            session,
            shop_id=installed.id,
            session_id=session_id,
            customer_id=None,
            content="hello?",
            client_message_id=None,
        )
    assert turn.reply is not None
    reply_id = turn.reply.id
    async with db.session() as session:
        await session.execute(
            sa.update(Message)
            .where(Message.id == reply_id)  # type: ignore[arg-type]
            .values(content="half an ans", updated_at=utcnow() - timedelta(seconds=120))
        )

    start_server(stale_stream_after=2)  # a new worker sweeps on start and then periodically

    async def reaped() -> bool:
        return (await _reply(db, shop, session_id)).status == "error"

    await _wait_for(reaped)
    saved = await _reply(db, shop, session_id)
    assert saved.error_code == "interrupted"
    assert saved.content == "half an ans"


async def test_worker_shutdown_leaves_nothing_streaming(start_server, db: Database) -> None:
    slow = start_server(offline_word_delay=2.0, shutdown_grace=0.2)
    shop = await make_shop(db)
    session_id = new_id()
    async with ProxyClient(slow.url, shop) as client:
        async with client.open_turn(session_id, LONG_QUESTION) as response:
            events = iter_events(response)
            await anext(events)
    await asyncio.to_thread(slow.stop)
    saved = await _reply(db, shop, session_id)
    assert saved.status == "error"
    assert saved.error_code == "interrupted"


async def test_ending_a_chat_while_it_streams_stops_the_reply_and_stays_ended(
    start_server, db: Database
) -> None:
    slow = start_server(offline_word_delay=0.05)
    shop = await make_shop(db)
    async with ProxyClient(slow.url, shop) as client:
        session_id = new_id()
        async with client.open_turn(session_id, LONG_QUESTION) as response:
            events = iter_events(response)
            await anext(events)
            await anext(events)
            ended = await client.post("/proxy/sessions/end", {"session_id": session_id})
            rest = [e async for e in events]
        assert ended.json()["status"] == "ended"
        assert rest[-1].event == "done" and rest[-1].data["finish_reason"] == "stopped"
        await asyncio.sleep(0.3)
        status = await client.get("/proxy/sessions/status", {"session_id": session_id})
        assert status.json()["status"] == "ended", "the finishing reply does not reopen it"
    assert (await _reply(db, shop, session_id)).status == "stopped"


async def test_each_piece_of_the_model_is_its_own_event_even_when_they_arrive_together(
    start_server, db: Database
) -> None:
    # No delay: the offline model hands over every word at once; the shopper still sees
    # them as the model sent them, one delta each, with ids that count the characters.
    instant = start_server(offline_word_delay=0)
    shop = await make_shop(db)
    async with ProxyClient(instant.url, shop) as client:
        session_id = new_id()
        turn = await client.send(session_id, "hello")
        deltas = [e for e in turn.events if e.event == "delta"]
        saved = await _reply(db, shop, session_id)
        words = saved.content.split()
        assert len(words) > 3
        assert [d.data["text"].strip() for d in deltas] == words
        reply_id = turn.first("start").data["assistant_message_id"]
        ends = [int(d.id.rsplit(":", 1)[1]) for d in deltas]
        assert ends == list(itertools.accumulate(len(d.data["text"]) for d in deltas))
        assert ends[-1] == len(saved.content)
        assert all(d.id.startswith(f"{reply_id}:") for d in deltas)


async def test_follow_relays_pieces_in_batches_and_resumes_mid_piece() -> None:
    live = LiveReply(message_id=1, public_id="r", conversation_id=1)
    for piece in ("Hello", " there", " shopper"):
        live.append(piece)

    async def collect(offset: int) -> list[list[str] | None]:
        got: list[list[str] | None] = []
        async for batch in live.follow(offset):
            got.append(batch)
            if batch and batch[-1] == " again":
                live.close("complete", "stop", None)
        return got

    # What is there already comes as one piece, from the offset on; later pieces as they
    # were sent, all those that came while the follower was away in one batch.
    follower = asyncio.create_task(collect(3))
    await asyncio.sleep(0)
    live.append(" and")
    live.append(" once")
    await asyncio.sleep(0)
    live.append(" again")
    assert await follower == [["lo there shopper"], [" and", " once"], [" again"]]
    # An offset beyond what exists (a Last-Event-ID of an earlier attempt) skips to it.
    beyond = LiveReply(message_id=2, public_id="s", conversation_id=1)
    beyond.append("ab")
    task = asyncio.create_task(_first_batch(beyond, offset=4))
    await asyncio.sleep(0)
    beyond.append("cd")
    beyond.append("efg")
    beyond.append("h")
    assert await task == ["efg", "h"]


async def _first_batch(live: LiveReply, *, offset: int) -> list[str] | None:
    async for batch in live.follow(offset):
        return batch
    return None


async def _judging(*servers: LiveServer) -> None:
    """Until each server has heard the database for its dead_after (after its start)."""

    async def ready() -> bool:
        return all(s.app.state.chat.replies.heartbeat.judging for s in servers)

    await _wait_for(ready, timeout=15)


async def test_racing_turns_take_over_from_a_dead_worker_and_one_wins(
    start_server, db: Database
) -> None:
    """Two workers get a new turn each in a conversation whose reply's worker is dead (its
    heartbeat stale, or gone): both may see it dead at once; one ends it, one turn goes on."""
    one, two = start_server(worker_dead_after=1.0), start_server(worker_dead_after=1.0)
    shop = await make_shop(db)
    stale, alive = uuid.uuid4().hex, one.app.state.chat.replies.heartbeat.worker_id
    await set_heartbeat(db, stale, age=30)
    await _judging(one, two)
    cases = {
        await streaming_turn(db, shop, worker_id=stale): "dead",
        await streaming_turn(db, shop, worker_id=uuid.uuid4().hex): "dead",  # no row at all
        await streaming_turn(db, shop, worker_id=uuid.uuid4().hex): "dead",
        await streaming_turn(db, shop, worker_id=alive): "alive",
    }
    async with ProxyClient(one.url, shop) as first, ProxyClient(two.url, shop) as second:
        for session_id, worker in cases.items():
            turns = await asyncio.gather(
                first.send(session_id, "anyone there?"), second.send(session_id, "anyone there?")
            )
            codes = sorted(t.status_code for t in turns)
            saved = await messages_of(db, shop, session_id)
            old_reply = saved[1]
            if worker == "alive":
                assert codes == [409, 409], "a worker that beats keeps its reply"
                assert old_reply.status == "streaming"
                continue
            assert codes == [200, 409], "one turn takes over, the other is refused"
            assert next(t for t in turns if t.status_code == 200).last.event == "done"
            assert (old_reply.status, old_reply.error_code) == ("error", "interrupted")
            assert [m.content for m in saved if m.role == "user"] == ["hello?", "anyone there?"]
            assert saved[-1].role == "assistant" and saved[-1].status == "complete"
    async with db.session() as session:
        await repo.remove_worker(session, worker_id=stale)


async def test_retries_of_a_dead_workers_reply_regenerate_it_once_at_once(
    start_server, db: Database
) -> None:
    """The widget retries a reply stuck on a dead worker, twice at once (two tabs, two
    workers): it is ended and generated again by one of them, and both follow it."""
    one, two = start_server(worker_dead_after=1.0), start_server(worker_dead_after=1.0)
    shop = await make_shop(db)
    await _judging(one, two)
    for _ in range(3):
        client_message_id = new_id()
        session_id = await streaming_turn(
            db, shop, worker_id=uuid.uuid4().hex, client_message_id=client_message_id
        )
        async with ProxyClient(one.url, shop) as first, ProxyClient(two.url, shop) as second:
            retries = await asyncio.gather(
                first.send(session_id, "hello?", client_message_id),
                second.send(session_id, "hello?", client_message_id),
            )
        saved = await messages_of(db, shop, session_id)
        assert [(m.role, m.status) for m in saved] == [
            ("user", "complete"),
            ("assistant", "complete"),
        ]
        workers = {s.app.state.chat.replies.heartbeat.worker_id for s in (one, two)}
        assert saved[1].worker_id in workers, "generated again by a living worker"
        for retry in retries:
            assert retry.status_code == 200
            assert retry.last.event == "done"
            assert retry.text == saved[1].content, "each shows the whole new reply, once"


async def test_a_follower_of_a_reply_restarted_under_it_says_so_instead_of_splicing_texts(
    server, db: Database
) -> None:
    """Followed from the database (its worker elsewhere), a reply is ended and restarted by a
    retry in another tab: what was sent is not its text any more, and no tail of the new text
    may be sent after it."""
    shop = await make_shop(db)
    before, after = uuid.uuid4().hex, uuid.uuid4().hex
    await set_heartbeat(db, before, age=0)
    session_id = await streaming_turn(db, shop, worker_id=before)
    reply = await _reply(db, shop, session_id)
    assert reply.id is not None
    async with db.session() as session:
        await repo.save_progress(session, progress=[(reply.id, "Hello there", before)])
    async with ProxyClient(server.url, shop) as client:
        url = client.url(f"/proxy/messages/{reply.public_id}/stream", {"session_id": session_id})
        async with client.http.stream("GET", url) as response:
            events = iter_events(response)
            assert (await anext(events)).event == "start"
            assert (await anext(events)).data["text"] == "Hello there"
            async with db.session() as session:
                await session.execute(
                    sa.update(Message)
                    .where(Message.id == reply.id)  # type: ignore[arg-type]
                    .values(status="error", error_code="interrupted")
                )
                await repo.restart_failed_reply(session, message_id=reply.id, worker_id=after)
            async with db.session() as session:
                text = "Hi! Something else entirely, and longer"
                await repo.save_progress(session, progress=[(reply.id, text, after)])
            rest = [e async for e in events]
    assert [e.event for e in rest] == ["error"], rest
    assert rest[0].data["code"] == "interrupted"
    async with db.session() as session:
        for worker_id in (before, after):
            await repo.remove_worker(session, worker_id=worker_id)


async def test_a_follower_waits_for_the_saved_text_to_reach_the_shoppers_offset(
    server, db: Database
) -> None:
    """The shopper had more of the reply, live from its worker, than that worker had saved
    when the connection broke: another worker waits for the text to catch up, then goes on."""
    shop = await make_shop(db)
    worker_id = uuid.uuid4().hex
    await set_heartbeat(db, worker_id, age=0)
    session_id = await streaming_turn(db, shop, worker_id=worker_id)
    reply = await _reply(db, shop, session_id)
    assert reply.id is not None
    async with db.session() as session:
        await repo.save_progress(session, progress=[(reply.id, "Hello there", worker_id)])
    async with ProxyClient(server.url, shop) as client:
        url = client.url(f"/proxy/messages/{reply.public_id}/stream", {"session_id": session_id})
        headers = {"Last-Event-ID": f"{reply.public_id}:15"}  # "Hello there, sh"
        async with client.http.stream("GET", url, headers=headers) as response:
            events = iter_events(response)
            assert (await anext(events)).event == "start"
            await asyncio.sleep(0.6)  # a few polls of the lagging text
            async with db.session() as session:
                await repo.save_progress(
                    session, progress=[(reply.id, "Hello there, shopper!", worker_id)]
                )
                await repo.finish_reply(
                    session,
                    message_id=reply.id,
                    worker_id=worker_id,
                    content="Hello there, shopper!",
                    status="complete",
                    finish_reason="stop",
                    error_code=None,
                )
            rest = [e async for e in events]
    assert [(e.event, e.data.get("text")) for e in rest] == [("delta", "opper!"), ("done", None)]
    async with db.session() as session:
        await repo.remove_worker(session, worker_id=worker_id)


async def test_a_reply_sink_writes_one_at_a_time_and_a_broken_one_lets_the_reply_go_on() -> None:
    """What arrives while a write waits for a slow shopper goes out with the next write of
    that one; a response that cannot take more is left, and the reply's task goes on."""
    from app.streaming import Output, ReplySink

    live = LiveReply(message_id=1, public_id="r", conversation_id=1)
    written: list[bytes] = []
    slow = asyncio.Event()

    async def send(message):  # type: ignore[no-untyped-def]
        written.append(message["body"])
        if len(written) == 1:
            await slow.wait()

    output = Output()
    output.bind(send)
    sink = ReplySink(live, output, "r", 0)
    live.append("Hello")
    first = asyncio.create_task(sink.push())
    await asyncio.sleep(0)
    assert sink.busy and written == [b'id: r:5\nevent: delta\ndata: {"text":"Hello"}\n\n']
    live.append(", wor")
    live.append("ld")
    await sink.push()  # returns at once: the first write is still under way
    assert len(written) == 1
    slow.set()
    await first
    assert written[1] == b'id: r:12\nevent: delta\ndata: {"text":", world"}\n\n'
    assert not sink.busy and sink.offset == 12

    async def broken(_message):  # type: ignore[no-untyped-def]
        raise OSError("connection reset")

    output.bind(broken)
    live.append("!")
    await sink.push()  # no exception for the reply's task
    assert sink.gone and not sink.busy
    live.append("?")
    await sink.push()
    assert len(written) == 2


@given(st.text())
def test_a_delta_event_is_what_the_general_encoder_writes(text: str) -> None:
    from app.streaming import delta, sse

    assert delta(text, "r:7") == sse("delta", {"text": text}, "r:7")
