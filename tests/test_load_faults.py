"""Faults under load: a model server that is slow, fails or breaks off, and shoppers who leave.

Two app servers share one database and the shoppers' turns alternate between them, so every
reply, resume and follow-up has to work from what the database holds, not from one process's
memory. The model is a chaos server on loopback speaking OpenAI's streaming wire format; what it
does with a question is written in the question itself (`[scenario] ...`), so the test knows
what every turn must end as however the requests interleave.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import col
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.db import Database
from app.models import Conversation, Message, Shop
from app.replies import ERROR_MESSAGES
from tests.factories import Event, ProxyClient, Turn, iter_events, make_shop, new_id
from tests.servers import LiveServer, serve

T = TypeVar("T")

# The service's AI_TIMEOUT in these tests: long enough that two servers, the model and the
# shoppers sharing two busy cores do not look like a silent model (at 1 s they once did).
AI_TIMEOUT = 2.0
HOLD = AI_TIMEOUT + 1.5  # how long a "slow" or "stalling" model stays silent
BREAK_AFTER = 3  # content tokens a "cut" or "stall" answer sends before it breaks off
TURN_LIMIT = 20.0  # no turn, resume or follow-up may take longer: a hang fails the test

# What each scenario ends as for the shopper: None is a complete reply (`done`).
EXPECTED_CODE: dict[str, str | None] = {
    "ok": None,
    "slow": "upstream_timeout",  # first token after longer than AI_TIMEOUT
    "http500": "upstream_error",
    "http429": "upstream_rate_limited",
    "cut": "upstream_stream_cut",  # connection dropped after BREAK_AFTER tokens
    "stall": "upstream_timeout",  # silent after BREAK_AFTER tokens
}
WORDS = "we ship worldwide within three days; returns are free for thirty days — café crème ✓"
WORDS_LIST = WORDS.split()


def scenario_of(question: str) -> str:
    found = re.match(r"\[(\w+)\]", question)
    assert found is not None, f"unscripted question {question!r}"
    return found.group(1)


def reply_tokens(question: str, length: int) -> list[str]:
    """The model's whole answer to a question: unique to it, so no reply can pass for another."""
    seed = zlib.crc32(question.encode())
    tag = question.rsplit(" ", 1)[-1]
    words = [f" {WORDS_LIST[(seed + i * 7) % len(WORDS_LIST)]}" for i in range(length)]
    return ["Re", ":", f" {tag}", *words, "."]


def reply_text(question: str, length: int) -> str:
    return "".join(reply_tokens(question, length))


def partial_text(question: str, length: int) -> str:
    """What a model that breaks off has sent: the first BREAK_AFTER tokens."""
    return "".join(reply_tokens(question, length)[:BREAK_AFTER])


@dataclass
class ModelCall:
    scenario: str  # as asked; a second call for the same question is always answered "ok"
    question: str
    context: list[tuple[str, str]]  # (role, content) before the question, system prompt left out


class ChaosModel:
    """An OpenAI-compatible Chat Completions server that misbehaves as each question asks."""

    def __init__(self, *, token_delay: float, length: int) -> None:
        self.token_delay = token_delay
        self.length = length
        self.calls: list[ModelCall] = []
        self.asked: Counter[str] = Counter()
        self.app = Starlette(
            routes=[Route("/v1/chat/completions", self.completions, methods=["POST"])]
        )

    async def completions(self, request: Request) -> Response:
        body = await request.json()
        assert body["stream"] is True
        turns = [(m["role"], m["content"]) for m in body["messages"] if m["role"] != "system"]
        question = turns[-1][1]
        self.calls.append(ModelCall(scenario_of(question), question, turns[:-1]))
        self.asked[question] += 1
        # Misbehave on the first call only: a retry of a failed turn gets its answer.
        scenario = scenario_of(question) if self.asked[question] == 1 else "ok"
        if scenario == "http500":
            return JSONResponse({"error": {"message": "internal failure"}}, status_code=500)
        if scenario == "http429":
            return JSONResponse(
                {"error": {"message": "slow down"}}, status_code=429, headers={"Retry-After": "1"}
            )
        return StreamingResponse(
            self._answer(question, scenario, body.get("model")), media_type="text/event-stream"
        )

    async def _answer(self, question: str, scenario: str, model: Any) -> AsyncIterator[bytes]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload = {
                "id": "chatcmpl-chaos",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(payload)}\n\n".encode()

        yield chunk({"role": "assistant", "content": ""})
        if scenario == "slow":
            await asyncio.sleep(HOLD)
        for index, token in enumerate(reply_tokens(question, self.length)):
            if index == BREAK_AFTER and scenario == "cut":
                # uvicorn closes the connection mid-body (and logs the exception: expected).
                raise ConnectionAbortedError("the chaos model drops the connection")
            if index == BREAK_AFTER and scenario == "stall":
                await asyncio.sleep(HOLD)
            await asyncio.sleep(self.token_delay)
            yield chunk({"content": token})
        yield chunk({}, "stop")
        yield b"data: [DONE]\n\n"


@pytest.fixture
def chaos() -> Iterator[Callable[..., tuple[ChaosModel, LiveServer]]]:
    started: list[LiveServer] = []

    def start(*, token_delay: float, length: int) -> tuple[ChaosModel, LiveServer]:
        model = ChaosModel(token_delay=token_delay, length=length)
        live = serve(model.app, timeout_graceful_shutdown=1)
        started.append(live)
        return model, live

    yield start
    for live in started:
        live.stop()


def _app_servers(
    start_server: Callable[..., LiveServer], model_url: str, count: int = 2
) -> list[LiveServer]:
    return [
        start_server(
            ai_provider="openai",
            ai_base_url=f"{model_url}/v1",
            ai_api_key="sk-chaos",
            ai_model="chaos-1",
            ai_timeout=AI_TIMEOUT,
        )
        for _ in range(count)
    ]


class Storefront(ProxyClient):
    """Signed storefront requests for one shop, from clients that give idle connections up
    before the server does.

    uvicorn closes a connection idle for 5 s, and httpx keeps one for 5 s: a request sent on it
    just as the server closes it fails with ReadError before any answer. Under load (and on a
    busy machine) that race is a matter of time; it is the client's to avoid, not the service's.
    """

    def __init__(self, base_url: str, shop: str) -> None:
        super().__init__(base_url, shop)
        self.http = httpx.AsyncClient(
            base_url=base_url, timeout=30, limits=httpx.Limits(keepalive_expiry=1.0)
        )


def storefronts(servers: list[LiveServer], shops: list[str]) -> list[list[ProxyClient]]:
    """For each shop, one client per server."""
    return [[Storefront(live.url, shop) for live in servers] for shop in shops]


async def bounded(awaitable: Awaitable[T], what: str, limit: float = TURN_LIMIT) -> T:
    try:
        return await asyncio.wait_for(awaitable, limit)
    except TimeoutError:
        raise AssertionError(f"{what}: no answer within {limit} s (a hang)") from None


def check_ending(turn: Turn, expected_text: str, code: str | None, what: str) -> None:
    """One turn as the shopper saw it: a start, the text, then `done` or the right `error`."""
    assert turn.status_code == 200, f"{what}: HTTP {turn.status_code} {turn.body}"
    assert turn.events and turn.events[0].event == "start", f"{what}: {turn.events[:1]}"
    ending = turn.last
    if code is None:
        assert ending.event == "done", f"{what}: ended with {ending}"
        assert ending.data["status"] == "complete" and ending.data["finish_reason"] == "stop"
    else:
        assert ending.event == "error", f"{what}: ended with {ending}"
        assert ending.data["code"] == code, f"{what}: {ending.data}"
        assert ending.data["message"] == ERROR_MESSAGES[code]
    assert ending.data["assistant_message_id"] == turn.first("start").data["assistant_message_id"]
    assert [e.event for e in turn.events[1:-1]] == ["delta"] * (len(turn.events) - 2), what
    assert turn.text == expected_text, f"{what}: {turn.text!r} != {expected_text!r}"


async def saved_by_session(db: Database, shops: list[str]) -> dict[str, list[Message]]:
    """Every message of these shops, in the order written, by chat session."""
    async with db.session() as session:
        result = await session.execute(
            sa.select(col(Conversation.session_id), Message)
            .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
            .join(Shop, col(Shop.id) == col(Conversation.shop_id))
            .where(col(Shop.domain).in_(shops))
            .order_by(col(Message.id))
        )
        grouped: dict[str, list[Message]] = defaultdict(list)
        for session_id, message in result:
            grouped[session_id].append(message)
        return dict(grouped)


async def settle(servers: list[LiveServer], limit: float = 15.0) -> None:
    """The servers idle again: no live reply, no reply task, no open connection, no checked-out
    database connection, no request to the model still open."""

    def leftovers(live: LiveServer) -> dict[str, int]:
        chat = live.app.state.chat
        pool = chat.db.engine.pool
        model_pool = getattr(getattr(chat.provider.client, "_transport", None), "_pool", None)
        return {
            "live replies": len(chat.replies.live),
            "reply tasks": len(chat.replies._tasks),
            "client connections": len(live.server.server_state.connections),
            "request tasks": len(live.server.server_state.tasks),
            # In use: checked out of the pool, less those idle in app/pgfast.py's FastPool.
            "db connections": (pool.checkedout() if hasattr(pool, "checkedout") else 0)
            - (chat.db.fast.idle if chat.db.fast else 0),
            "model requests": len(getattr(model_pool, "_requests", ())),
        }

    deadline = time.monotonic() + limit
    while True:
        left = {live.url: leftovers(live) for live in servers}
        if not any(any(counts.values()) for counts in left.values()):
            return
        assert time.monotonic() < deadline, f"servers still busy after {limit} s: {left}"
        await asyncio.sleep(0.1)


@dataclass
class Shopper:
    number: int
    client_index: int  # which shop's clients it uses
    session_id: str = field(default_factory=new_id)
    questions: list[str] = field(default_factory=list)

    def question(self, scenario: str) -> str:
        text = f"[{scenario}] shopper {self.number} asks question {len(self.questions)} {new_id()}"
        self.questions.append(text)
        return text


# ---- the upstream model slow, failing, or cut mid-stream, under load ----------------------


async def one_more_turn_each(
    clients: list[list[ProxyClient]],
    shoppers: list[Shopper],
    length: int,
    *,
    server_of: Callable[[Shopper], int],
) -> None:
    """One more turn for every shopper, on the server `server_of` picks, read to the end."""

    async def last_turn(shopper: Shopper) -> None:
        client = clients[shopper.client_index][server_of(shopper)]
        question = shopper.question("ok")
        turn = await bounded(client.send(shopper.session_id, question, new_id()), question)
        check_ending(turn, reply_text(question, length), None, question)

    await asyncio.gather(*(last_turn(s) for s in shoppers))


async def close_all(clients: list[list[ProxyClient]]) -> None:
    for pair in clients:
        for client in pair:
            await client.http.aclose()


async def nothing_lost(
    db: Database, servers: list[LiveServer], shops: list[str], shoppers: list[Shopper]
) -> None:
    """Every message each shopper sent is saved, once and in order; no reply is left
    streaming, the last turn is complete, and the servers go idle."""
    saved = await saved_by_session(db, shops)
    for shopper in shoppers:
        messages = saved[shopper.session_id]
        assert [m.content for m in messages if m.role == "user"] == shopper.questions
        assert not [m for m in messages if m.status == "streaming"]
        assert messages[-1].status == "complete"
    await settle(servers)


async def test_model_slow_failing_or_cut_under_load_on_two_servers(
    chaos, start_server, db: Database
) -> None:
    """40 shoppers x 7 turns on two servers, a model answering ok, late, 500, 429, cut or
    stalled; shoppers retry some failed turns on the other server and double-send some turns to
    both servers at once (same client_message_id). Each turn ends as its scenario says, and the
    database holds every message once and every reply as it ended."""
    length = 12
    model, model_server = chaos(token_delay=0.02, length=length)
    servers = _app_servers(start_server, model_server.url)
    shops = [await make_shop(db) for _ in range(4)]
    rng = random.Random(20240611)
    scenarios = list(EXPECTED_CODE)
    weights = [4, 1, 1, 1, 1, 1]  # ok about half the time
    shoppers = [Shopper(number, number % len(shops)) for number in range(40)]
    turns_each = 7

    def mode(scenario: str) -> str:
        roll = rng.random()
        if scenario != "ok" and roll < 0.4:
            return "retry"  # the shopper sends the failed turn again, on the other server
        if roll > 0.85:
            return "double"  # sent to both servers at once, as a flaky network's retry would
        return "once"

    plans = {
        s.number: [(sc, mode(sc)) for sc in rng.choices(scenarios, weights, k=turns_each)]
        for s in shoppers
    }
    clients = storefronts(servers, shops)
    seen: Counter[str] = Counter()
    regenerated: set[str] = set()  # failed turns whose retry got the model's whole answer

    def as_scripted(question: str) -> tuple[str, str | None]:
        scenario = scenario_of(question)
        if scenario in ("cut", "stall"):
            return partial_text(question, length), EXPECTED_CODE[scenario]
        if scenario == "ok":
            return reply_text(question, length), None
        return "", EXPECTED_CODE[scenario]

    async def converse(shopper: Shopper) -> None:
        for index, (scenario, how) in enumerate(plans[shopper.number]):
            await asyncio.sleep(random.random() * 0.05)
            # Turn by turn the shopper moves between the servers.
            here = clients[shopper.client_index][(shopper.number + index) % 2]
            there = clients[shopper.client_index][(shopper.number + index + 1) % 2]
            question = shopper.question(scenario)
            message_id = new_id()
            expected, code = as_scripted(question)
            if how == "double":
                both = await bounded(
                    asyncio.gather(
                        here.send(shopper.session_id, question, message_id),
                        there.send(shopper.session_id, question, message_id),
                    ),
                    question,
                )
                assert both[0].status_code == both[1].status_code == 200, question
                assert both[0].events[0].data == both[1].events[0].data, "the same turn"
                for turn in both:
                    if turn.last.event == "done" and code is not None:
                        # The failure was over before the other copy came: that one retried.
                        check_ending(turn, reply_text(question, length), None, question)
                        regenerated.add(question)
                    else:
                        check_ending(turn, expected, code, question)
                seen[f"{scenario} sent twice"] += 1
                continue
            turn = await bounded(here.send(shopper.session_id, question, message_id), question)
            check_ending(turn, expected, code, question)
            seen[scenario] += 1
            if how == "retry":
                again = await bounded(
                    there.send(shopper.session_id, question, message_id), question
                )
                check_ending(again, reply_text(question, length), None, f"retry of {question}")
                assert again.events[0].data == turn.events[0].data, "the same turn, regenerated"
                regenerated.add(question)
                seen[f"{scenario} retried"] += 1

    def outcome(question: str) -> str:
        return "ok" if question in regenerated else scenario_of(question)

    began = time.monotonic()
    try:
        await asyncio.gather(*(converse(s) for s in shoppers))
        load_seconds = time.monotonic() - began
        saved = await saved_by_session(db, shops)
        assert sorted(saved) == sorted(s.session_id for s in shoppers), "one chat per session"
        for shopper in shoppers:
            messages = saved[shopper.session_id]
            users = [m for m in messages if m.role == "user"]
            replies = [m for m in messages if m.role == "assistant"]
            assert [m.content for m in users] == shopper.questions, "every message, once"
            assert [m.role for m in messages] == ["user", "assistant"] * turns_each
            for question, reply, user in zip(shopper.questions, replies, users, strict=True):
                assert reply.reply_to_id == user.id
                assert reply.status != "streaming", question
                if outcome(question) == "ok":
                    assert (reply.status, reply.finish_reason) == ("complete", "stop"), question
                    assert reply.content == reply_text(question, length)
                else:
                    expected, code = as_scripted(question)
                    assert (reply.status, reply.error_code) == ("error", code), question
                    assert reply.content == expected, question

        # The model was asked once per turn (twice for a regenerated one), and each time saw
        # the conversation as the database holds it, whichever server took the turns before.
        assert model.asked == Counter(
            {q: 2 if q in regenerated else 1 for s in shoppers for q in s.questions}
        )
        for call in model.calls:
            number, asked = re.findall(r"shopper (\d+) asks question (\d+)", call.question)[0]
            earlier = next(s for s in shoppers if s.number == int(number)).questions[: int(asked)]
            context: list[tuple[str, str]] = []
            for question in earlier:
                context.append(("user", question))
                if outcome(question) == "ok":  # failed replies are not shown to the model
                    context.append(("assistant", reply_text(question, length)))
            assert call.context == context, call.question

        # Every conversation goes on, on the server that did not take its last turn.
        await one_more_turn_each(
            clients, shoppers, length, server_of=lambda s: (s.number + turns_each) % 2
        )
    finally:
        await close_all(clients)
    await nothing_lost(db, servers, shops, shoppers)
    print(
        f"\n{len(shoppers) * turns_each} turns in {load_seconds:.1f} s on two servers: "
        f"{dict(sorted(seen.items()))}; {len(regenerated)} regenerated; "
        f"then {len(shoppers)} follow-ups"
    )
    assert all(seen[scenario] for scenario in EXPECTED_CODE), "every scenario happened"
    assert any(key.endswith("retried") for key in seen)
    assert any(key.endswith("sent twice") for key in seen)


# ---- clients disconnecting mid-stream, under load -----------------------------------------


async def _turn_and_leave(
    client: ProxyClient, session_id: str, question: str, leave_after: int | None
) -> tuple[int, list[Event]]:
    """Send a message and read the reply; leave after the headers (-1), after that many
    deltas, or never (None). Returns the status and the events read."""
    events: list[Event] = []
    async with client.open_turn(session_id, question, new_id()) as response:
        if leave_after == -1:
            return response.status_code, events
        deltas = 0
        async for event in iter_events(response):
            events.append(event)
            deltas += event.event == "delta"
            if leave_after is not None and deltas >= leave_after:
                break  # the connection closes with this block: the shopper is gone
    return response.status_code, events


async def test_shoppers_leaving_mid_reply_under_load_lose_nothing(
    chaos, start_server, db: Database
) -> None:
    """48 shoppers x 3 turns on two servers with a slow model; most leave at a random point of
    the reply (right after the headers, or after some deltas); every reply is still finished and
    saved, and the other server replays it whole."""
    length = 24
    model, model_server = chaos(token_delay=0.04, length=length)  # about a second a reply
    servers = _app_servers(start_server, model_server.url)
    shops = [await make_shop(db) for _ in range(4)]
    rng = random.Random(4242)
    shoppers = [Shopper(number, number % len(shops)) for number in range(48)]
    turns_each = 3
    tokens = length + 3  # as reply_tokens makes them

    def leaving_point() -> int | None:
        roll = rng.random()
        if roll < 0.25:
            return None  # stays to the end
        if roll < 0.4:
            return -1  # gone right after the headers
        return rng.randrange(0, tokens - 2)  # gone after the start event and that many deltas

    plans = {s.number: [leaving_point() for _ in range(turns_each)] for s in shoppers}
    clients = storefronts(servers, shops)
    left: Counter[str] = Counter()

    async def converse(shopper: Shopper) -> None:
        for index, leave_after in enumerate(plans[shopper.number]):
            await asyncio.sleep(random.random() * 0.1)
            side = (shopper.number + index) % 2
            here = clients[shopper.client_index][side]
            there = clients[shopper.client_index][1 - side]
            question = shopper.question("ok")
            full = reply_text(question, length)
            status, events = await bounded(
                _turn_and_leave(here, shopper.session_id, question, leave_after), question
            )
            assert status == 200, f"{question}: HTTP {status}"
            received = "".join(e.data["text"] for e in events if e.event == "delta")
            if events and events[-1].event in ("done", "error"):
                left["read to the end"] += 1
                check_ending(Turn(status, events), full, None, question)
                continue
            assert full.startswith(received), question
            if not events:
                # Gone before the start event: the reply is found as a reloaded page finds it.
                left["after the headers"] += 1
                page = (await there.history(shopper.session_id)).json()["messages"]
                assert [m["role"] for m in page[-2:]] == ["user", "assistant"], question
                assert page[-2]["content"] == question
                reply_id = page[-1]["id"]
            else:
                left["mid-reply"] += 1
                reply_id = events[0].data["assistant_message_id"]
                if received:
                    # Back on the other server at once, from where the shopper left.
                    rest = await bounded(
                        there.resume(shopper.session_id, reply_id, events[-1].id), question
                    )
                    check_ending(rest, full[len(received) :], None, f"resume of {question}")
            # The reply went on without the shopper; the other server replays it whole.
            resumed = await bounded(there.resume(shopper.session_id, reply_id), question)
            check_ending(resumed, full, None, f"replay of {question}")

    try:
        began = time.monotonic()
        await asyncio.gather(*(converse(s) for s in shoppers))
        load_seconds = time.monotonic() - began

        saved = await saved_by_session(db, shops)
        for shopper in shoppers:
            messages = saved[shopper.session_id]
            assert [m.content for m in messages if m.role == "user"] == shopper.questions
            assert [m.role for m in messages] == ["user", "assistant"] * turns_each
            for question, reply in zip(shopper.questions, messages[1::2], strict=True):
                assert (reply.status, reply.finish_reason) == ("complete", "stop"), question
                assert reply.content == reply_text(question, length), question
        assert len(model.calls) == len(shoppers) * turns_each, "every reply generated once"

        # The servers keep serving.
        await one_more_turn_each(clients, shoppers, length, server_of=lambda s: s.number % 2)
    finally:
        await close_all(clients)
    await nothing_lost(db, servers, shops, shoppers)
    print(
        f"\n{sum(left.values())} turns in {load_seconds:.1f} s on two servers: {dict(left)}; "
        f"then {len(shoppers)} more"
    )
    assert (
        left["after the headers"]
        and left["mid-reply"] > len(shoppers) // 2
        and left["read to the end"]
    )
