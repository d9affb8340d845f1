"""OpenAI-compatible and Anthropic providers against a fake upstream on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from app.ai import ChatTurn, ProviderError, ReplyRequest
from app.ai.anthropic import AnthropicProvider
from app.ai.openai import OpenAIProvider
from app.db import Database
from tests.factories import AdminClient, ProxyClient, make_shop, messages_of, new_id
from tests.fake_upstream import FakeUpstream
from tests.servers import LiveServer, free_port, serve

PROVIDERS = ["openai", "anthropic"]


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[FakeUpstream, LiveServer]]:
    fake = FakeUpstream()
    live = serve(fake.app, timeout_graceful_shutdown=1)
    yield fake, live
    live.stop()


@pytest.fixture
def fake(upstream: tuple[FakeUpstream, LiveServer]) -> Iterator[FakeUpstream]:
    fake, _ = upstream
    fake.scenario, fake.requests[:] = "ok", []
    yield fake
    fake.scenario = "ok"


def _provider_server(
    start_server: Callable[..., LiveServer], upstream_url: str, provider: str, **overrides: object
) -> LiveServer:
    base = upstream_url + ("/v1" if provider == "openai" else "")
    settings: dict[str, object] = {
        "ai_provider": provider,
        "ai_base_url": base,
        "ai_api_key": "sk-test-key",
        "ai_model": "test-model",
        "ai_timeout": 1.0,
        **overrides,
    }
    return start_server(**settings)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_reply_streams_token_by_token(
    provider: str, fake: FakeUpstream, upstream, start_server, db: Database
) -> None:
    server = _provider_server(start_server, upstream[1].url, provider)
    shop = await make_shop(db, system_prompt="You sell hats. Be brief.")
    async with ProxyClient(server.url, shop) as client:
        session_id = new_id()
        turn = await client.send(session_id, "Do you have red hats?")
    assert turn.status_code == 200
    assert [e.data["text"] for e in turn.events if e.event == "delta"] == fake.tokens
    assert turn.last.event == "done" and turn.last.data["finish_reason"] == "stop"
    saved = await messages_of(db, shop, session_id)
    assert saved[-1].content == "Hello from the model." and saved[-1].status == "complete"

    sent = fake.requests[-1]
    assert sent["body"]["stream"] is True
    assert sent["body"]["model"] == "test-model"
    if provider == "openai":
        assert sent["headers"]["authorization"] == "Bearer sk-test-key"
        assert sent["body"]["messages"][0] == {
            "role": "system",
            "content": "You sell hats. Be brief.",
        }
        assert sent["body"]["messages"][-1] == {"role": "user", "content": "Do you have red hats?"}
    else:
        assert sent["headers"]["x-api-key"] == "sk-test-key"
        assert sent["headers"]["anthropic-version"] == "2023-06-01"
        assert sent["body"]["system"] == "You sell hats. Be brief."
        assert sent["body"]["messages"] == [{"role": "user", "content": "Do you have red hats?"}]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_model_gets_the_newest_conversation_that_fits_the_budget(
    provider: str, fake: FakeUpstream, upstream, start_server, db: Database
) -> None:
    server = _provider_server(start_server, upstream[1].url, provider, ai_context_chars=120)
    shop = await make_shop(db)
    async with ProxyClient(server.url, shop) as client:
        session_id = new_id()
        for i in range(4):
            assert (
                await client.send(session_id, f"question number {i} " + "x" * 20)
            ).status_code == 200
    sent = fake.requests[-1]["body"]["messages"]
    contents = [m["content"] for m in sent if m["role"] != "system"]
    assert contents[-1].startswith("question number 3")
    assert not any(c.startswith("question number 0") for c in contents), "oldest dropped"
    assert sum(len(c) for c in contents) <= 120
    assert "Hello from the model." in contents, "earlier replies are part of the context"


FAILURES = [
    ("http500", "upstream_error"),
    ("http429", "upstream_rate_limited"),
    ("slow", "upstream_timeout"),
    ("stall", "upstream_timeout"),
    ("cut", "upstream_stream_cut"),
    ("no_done", "upstream_stream_cut"),
    ("garbage", "upstream_bad_response"),
]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("scenario,code", FAILURES)
async def test_upstream_failure_becomes_an_error_event(
    provider: str,
    scenario: str,
    code: str,
    fake: FakeUpstream,
    upstream,
    start_server,
    db: Database,
) -> None:
    server = _provider_server(start_server, upstream[1].url, provider)
    shop = await make_shop(db)
    fake.scenario = scenario
    async with ProxyClient(server.url, shop) as client:
        session_id = new_id()
        turn = await client.send(session_id, "hello?")
        assert turn.status_code == 200
        assert turn.last.event == "error"
        assert turn.last.data["code"] == code
        assert turn.last.data["message"]
        saved = await messages_of(db, shop, session_id)
        assert saved[0].role == "user" and saved[0].content == "hello?"
        assert saved[1].status == "error" and saved[1].error_code == code
        assert saved[1].content == turn.text, "the partial reply is saved as far as it got"
        if scenario in ("stall", "cut", "no_done"):
            assert saved[1].content == "Hello from"

        fake.scenario = "ok"
        after = await client.send(session_id, "hello again")
        assert after.last.event == "done", "the service keeps serving"


async def test_anthropic_error_event(
    fake: FakeUpstream, upstream, start_server, db: Database
) -> None:
    server = _provider_server(start_server, upstream[1].url, "anthropic")
    shop = await make_shop(db)
    fake.scenario = "error_event"
    async with ProxyClient(server.url, shop) as client:
        turn = await client.send(new_id(), "hello?")
    assert turn.last.event == "error"
    assert turn.last.data["code"] == "upstream_overloaded"
    assert turn.text == "Hello from the model."


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_connection_refused(provider: str, start_server, db: Database) -> None:
    server = _provider_server(start_server, f"http://127.0.0.1:{free_port()}", provider)
    shop = await make_shop(db)
    async with ProxyClient(server.url, shop) as client:
        session_id = new_id()
        turn = await client.send(session_id, "hello?")
    assert turn.last.data["code"] == "upstream_unavailable"
    saved = await messages_of(db, shop, session_id)
    assert [(m.role, m.status) for m in saved] == [("user", "complete"), ("assistant", "error")]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_retry_after_a_failure_regenerates_the_same_turn(
    provider: str, fake: FakeUpstream, upstream, start_server, db: Database
) -> None:
    server = _provider_server(start_server, upstream[1].url, provider)
    shop = await make_shop(db)
    fake.scenario = "http500"
    async with ProxyClient(server.url, shop) as client:
        session_id, client_message_id = new_id(), new_id()
        failed = await client.send(session_id, "hello?", client_message_id)
        assert failed.last.event == "error"
        fake.scenario = "ok"
        retried = await client.send(session_id, "hello?", client_message_id)
    assert retried.last.event == "done"
    assert retried.text == "Hello from the model."
    assert retried.first("start").data == failed.first("start").data
    saved = await messages_of(db, shop, session_id)
    assert [(m.role, m.status, m.content) for m in saved] == [
        ("user", "complete", "hello?"),
        ("assistant", "complete", "Hello from the model."),
    ]
    assert len(fake.requests) == 2
    assert [m["content"] for m in fake.requests[-1]["body"]["messages"] if m["role"] == "user"] == [
        "hello?"
    ], "the failed reply is not sent as context"


async def test_a_silent_model_gets_keep_alives_to_the_shopper(
    fake: FakeUpstream, upstream, start_server, db: Database
) -> None:
    """While the model says nothing, the open stream carries comments, so no proxy closes it."""
    fake.scenario = "stall"  # five seconds of silence after the second token
    server = _provider_server(start_server, upstream[1].url, "openai", ai_timeout=10.0)
    server.app.state.chat.replies.keep_alive = 0.5
    shop = await make_shop(db)
    async with ProxyClient(server.url, shop) as client:
        session_id = new_id()
        lines: list[str] = []
        async with client.open_turn(session_id, "hello?") as response:
            async for line in response.aiter_lines():
                lines.append(line)
    pings = [i for i, line in enumerate(lines) if line == ": keep-alive"]
    deltas = [i for i, line in enumerate(lines) if line == "event: delta"]
    assert len(pings) >= 4, lines  # about one every half second of the five
    assert deltas[1] < pings[0] and pings[-1] < deltas[2], "pings only while the model is silent"
    saved = await messages_of(db, shop, session_id)
    assert saved[-1].status == "complete" and saved[-1].content == "".join(fake.tokens)


async def test_the_merchant_chooses_among_the_operators_models(
    fake: FakeUpstream, upstream, start_server, db: Database
) -> None:
    server = _provider_server(
        start_server, upstream[1].url, "openai", ai_model_choices=("test-model-large",)
    )
    shop = await make_shop(db)
    async with AdminClient(server.url, shop) as merchant:
        offered = (await merchant.get("/api/admin/settings")).json()["ai_models"]
        assert offered == ["test-model", "test-model-large"]
        refused = await merchant.put("/api/admin/settings", {"ai_model": "gpt-5-unlisted"})
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "invalid_ai_model"
        chosen = await merchant.put("/api/admin/settings", {"ai_model": "test-model-large"})
        assert chosen.status_code == 200
    async with ProxyClient(server.url, shop) as client:
        assert (await client.send(new_id(), "hello")).last.event == "done"
    assert fake.requests[-1]["body"]["model"] == "test-model-large"
    # The operator takes the model off the list: the shop falls back to the default.
    narrowed = _provider_server(start_server, upstream[1].url, "openai")
    async with ProxyClient(narrowed.url, shop) as client:
        assert (await client.send(new_id(), "hello again")).last.event == "done"
    assert fake.requests[-1]["body"]["model"] == "test-model"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_read_timeout_counts_only_the_wait_for_the_model(
    provider: str, fake: FakeUpstream, upstream
) -> None:
    """A reader slower than AI_TIMEOUT between pieces is not the model being silent: the
    watchdog counts only the time the stream waits for the model (app/ai/http.py)."""
    kind = OpenAIProvider if provider == "openai" else AnthropicProvider
    base = upstream[1].url + ("/v1" if provider == "openai" else "")
    model = kind(base_url=base, api_key="sk-test-key", model="m", timeout=0.3, max_tokens=50)
    request = ReplyRequest(system_prompt="", messages=[ChatTurn("user", "hello?")])
    try:
        pieces = []
        async for item in model.stream(request):
            if isinstance(item, str):
                pieces.append(item)
                await asyncio.sleep(0.5)  # longer than the timeout, between reads
        assert "".join(pieces) == "".join(fake.tokens)

        fake.scenario = "stall"  # silent for 5 s after two tokens: the watchdog ends it
        started = asyncio.get_running_loop().time()
        with pytest.raises(ProviderError) as refused:
            async for _ in model.stream(request):
                pass
        assert refused.value.code == "upstream_timeout"
        assert asyncio.get_running_loop().time() - started < 2.5
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    finally:
        await model.aclose()
