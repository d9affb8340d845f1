"""The server's limits (app/server.py): a head too large or too slow and a body too slow are
refused within a bounded time, while /healthz answers on other connections and replies stream
for as long as they run."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from app.__main__ import migrate
from app.db import Database
from app.server import BoundedHttpProtocol
from tests.conftest import make_settings
from tests.factories import ProxyClient, make_shop, new_id
from tests.servers import LiveServer, start_app_server
from tests.workers import procfile_command, start_worker, stop_worker

PROMPT = 1.0  # how long /healthz may take while an attack runs (it stalled for seconds)


class QuickBounds(BoundedHttpProtocol):
    """The production limits with shorter clocks, so that a test waits seconds, not a minute."""

    head_timeout = 1.0
    body_timeout = 1.5


@pytest.fixture(scope="module")
def bounded(database_url: str) -> Iterator[LiveServer]:
    live = start_app_server(make_settings(database_url, offline_word_delay=0.1), http=QuickBounds)
    yield live
    live.stop()


async def _connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def _answer_then_close(
    reader: asyncio.StreamReader, *, within: float
) -> tuple[int | None, dict[str, Any] | None]:
    """The status and JSON body the server sends before it closes the connection; None, None
    when it closes (or resets) it without a word. Fails when it is still open after `within`."""
    data = b""
    try:
        async with asyncio.timeout(within):
            while chunk := await reader.read(65536):
                data += chunk
    except TimeoutError:
        pytest.fail(f"the connection is still open after {within} s")
    except ConnectionResetError:
        pass
    if not data:
        return None, None
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    return int(head.split()[1]), json.loads(body)


def _content_length(head: bytes) -> int:
    lines = head.lower().split(b"\r\n")
    return next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length"))


@asynccontextmanager
async def _watching_healthz(url: str) -> AsyncIterator[list[float]]:
    """/healthz asked on a new connection every 0.1 s meanwhile: how long each answer took
    (PROMPT and more: not in time)."""
    took: list[float] = []

    async def probe() -> None:
        while True:
            started = time.monotonic()
            try:
                async with asyncio.timeout(PROMPT):
                    reader, writer = await _connect(url)
                    writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    answer = await reader.read()
                    writer.close()
                assert answer.startswith(b"HTTP/1.1 200 "), answer[:100]
                took.append(time.monotonic() - started)
            except TimeoutError:
                took.append(PROMPT)
            await asyncio.sleep(0.1)

    task = asyncio.create_task(probe())
    try:
        yield took
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
    assert len(took) >= 2, "/healthz was asked while the attack ran"
    assert max(took) < PROMPT, f"/healthz took {max(took):.2f} s while the attack ran"


async def _trickle(writer: asyncio.StreamWriter, every: float) -> None:
    """One byte every `every` seconds, until the server hangs up."""
    with suppress(ConnectionError):
        while True:
            await asyncio.sleep(every)
            writer.write(b"a")
            await writer.drain()


async def _flood_header(url: str, mib: int) -> tuple[float, int | None]:
    """A request whose one header is `mib` MiB, sent as fast as the server takes it: how long
    until the server hung up, and what it answered."""
    reader, writer = await _connect(url)
    started = time.monotonic()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ")

    async def flood() -> None:
        chunk = b"a" * (1 << 20)
        with suppress(ConnectionError):
            for _ in range(mib):
                writer.write(chunk)
                await writer.drain()

    flooding = asyncio.create_task(flood())
    try:
        status, body = await _answer_then_close(reader, within=10)
    finally:
        flooding.cancel()
        writer.close()
    if status is not None:
        assert body is not None and body["error"]["code"] == "headers_too_large"
    return time.monotonic() - started, status


async def test_headers_sent_a_byte_at_a_time_are_cut_off(bounded: LiveServer) -> None:
    reader, writer = await _connect(bounded.url)
    started = time.monotonic()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
    async with _watching_healthz(bounded.url):
        trickling = asyncio.create_task(_trickle(writer, 0.3))
        try:
            status, body = await _answer_then_close(reader, within=QuickBounds.head_timeout + 3)
        finally:
            trickling.cancel()
            writer.close()
    assert time.monotonic() - started < QuickBounds.head_timeout + 1
    assert status == 408 and body is not None
    assert body["error"]["code"] == "header_timeout" and body["error"]["message"]


async def test_a_connection_that_sends_nothing_is_closed(bounded: LiveServer) -> None:
    reader, writer = await _connect(bounded.url)
    started = time.monotonic()
    assert await _answer_then_close(reader, within=QuickBounds.head_timeout + 3) == (None, None)
    assert time.monotonic() - started < QuickBounds.head_timeout + 1
    writer.close()


async def test_a_100_mib_header_is_refused_at_once(bounded: LiveServer) -> None:
    async with _watching_healthz(bounded.url):
        took, status = await _flood_header(bounded.url, 100)
        await asyncio.sleep(0.3)  # /healthz is asked after the attack too
    assert took < 3, f"the server took {took:.1f} s to hang up"
    # The answer is written before the close, but a close with unread bytes is a reset, which
    # can overtake it.
    assert status in (431, None)


async def test_a_head_just_over_the_bound_is_answered_431(bounded: LiveServer) -> None:
    # Sent in one piece, as a browser sends too many cookies: all of it is read before the
    # close, so the answer arrives (a flood is reset instead).
    reader, writer = await _connect(bounded.url)
    filler = "x" * BoundedHttpProtocol.max_head_bytes
    writer.write(f"GET /healthz HTTP/1.1\r\nHost: t\r\nCookie: {filler}\r\n\r\n".encode())
    status, body = await _answer_then_close(reader, within=3)
    writer.close()
    assert status == 431 and body is not None and body["error"]["code"] == "headers_too_large"


async def test_requests_in_one_read_are_each_held_to_the_bound(bounded: LiveServer) -> None:
    # A small request, then one whose head is just under the bound, pipelined in one write:
    # together they are over it, and both are answered.
    reader, writer = await _connect(bounded.url)
    filler = "x" * (BoundedHttpProtocol.max_head_bytes - 60)
    writer.write(
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
        + f"GET /healthz HTTP/1.1\r\nHost: t\r\nCookie: {filler}\r\n\r\n".encode()
    )
    for _ in range(2):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        assert head.startswith(b"HTTP/1.1 200 "), head
        await reader.readexactly(_content_length(head))
    writer.close()


async def test_a_long_request_target_is_414(bounded: LiveServer) -> None:
    reader, writer = await _connect(bounded.url)
    target = "/healthz?" + "x" * (BoundedHttpProtocol.max_target_bytes + 1)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    status, body = await _answer_then_close(reader, within=3)
    writer.close()
    assert status == 414 and body is not None and body["error"]["code"] == "uri_too_long"


async def test_a_body_sent_a_byte_at_a_time_is_refused(bounded: LiveServer, db: Database) -> None:
    storefront = ProxyClient(bounded.url, await make_shop(db))
    target = storefront.url("/proxy/messages")
    await storefront.http.aclose()
    reader, writer = await _connect(bounded.url)
    started = time.monotonic()
    writer.write(
        f"POST {target} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n{".encode()
    )
    async with _watching_healthz(bounded.url):
        trickling = asyncio.create_task(_trickle(writer, 0.3))
        try:
            status, body = await _answer_then_close(reader, within=QuickBounds.body_timeout + 3)
        finally:
            trickling.cancel()
            writer.close()
    assert time.monotonic() - started < QuickBounds.body_timeout + 1
    assert status == 408 and body is not None and body["error"]["code"] == "body_timeout"


async def test_a_body_that_trickles_after_its_answer_is_cut_off_quietly(
    bounded: LiveServer,
) -> None:
    # Answered before its body was read (no signature: 401); the rest of the body never comes.
    reader, writer = await _connect(bounded.url)
    started = time.monotonic()
    writer.write(b"POST /proxy/messages HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n{")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    assert head.startswith(b"HTTP/1.1 401 ")
    await reader.readexactly(_content_length(head))
    trickling = asyncio.create_task(_trickle(writer, 0.3))
    try:
        assert await _answer_then_close(reader, within=QuickBounds.body_timeout + 3) == (
            None,
            None,
        ), "nothing more is written after the answer"
    finally:
        trickling.cancel()
        writer.close()
    assert time.monotonic() - started < QuickBounds.body_timeout + 1


async def test_replies_stream_longer_than_the_bounds(bounded: LiveServer, db: Database) -> None:
    answer = " ".join(f"word{i}" for i in range(25))  # 2.5 s at 0.1 s a word
    shop = await make_shop(db, faq=[("How long is a long answer?", answer)])
    async with ProxyClient(bounded.url, shop) as storefront:
        started = time.monotonic()
        turn = await storefront.send(new_id(), "how long is a long answer?")
    assert time.monotonic() - started > QuickBounds.body_timeout + QuickBounds.head_timeout
    assert turn.last.event == "done" and turn.text == answer


async def test_an_idle_kept_alive_connection_is_left_to_the_keep_alive_timeout(
    bounded: LiveServer,
) -> None:
    # A load balancer keeps connections idle for a minute and expects them to stay open; only
    # a request that has begun is on the clock.
    reader, writer = await _connect(bounded.url)
    for _ in range(2):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        assert head.startswith(b"HTTP/1.1 200 ")
        await reader.readexactly(_content_length(head))
        await asyncio.sleep(QuickBounds.head_timeout + 0.5)
    writer.close()


@pytest.mark.parametrize(
    "command",
    [procfile_command, lambda port: [sys.executable, "-m", "app", "dev", "--port", str(port)]],
    ids=["Procfile", "python -m app dev"],
)
async def test_the_commands_that_serve_the_app_set_the_limits(
    command: Callable[[int], list[str]], tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.sqlite3'}"
    await asyncio.to_thread(migrate, url)
    worker, worker_url = await asyncio.to_thread(start_worker, url, command=command)
    try:
        took, status = await _flood_header(worker_url, 100)
        assert took < 3 and status in (431, None)
        if command is procfile_command:
            # The production clock, as it is: a header a byte every two seconds.
            reader, writer = await _connect(worker_url)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
            trickling = asyncio.create_task(_trickle(writer, 2))
            try:
                status, _ = await _answer_then_close(
                    reader, within=BoundedHttpProtocol.head_timeout + 3
                )
            finally:
                trickling.cancel()
                writer.close()
            assert status == 408
    finally:
        stop_worker(worker)
