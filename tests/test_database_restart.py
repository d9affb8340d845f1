"""Faults: PostgreSQL restarted while twenty shoppers chat on two workers.

While the database is down every request fails fast with 503 `database_unavailable` and a
Retry-After; the workers are never restarted and recover by themselves; every message a shopper
had accepted is saved exactly once, and no reply is left `streaming`.

Each test runs its own throwaway PostgreSQL cluster: the suite's shared server on :5432 is
never stopped. PostgreSQL-only by nature (SQLite has no server to restart), so the tests do not
take the parametrised `database_url` fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import random
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from app.__main__ import migrate
from app.db import Database
from tests.factories import Event, ProxyClient, iter_events, make_shop, new_id
from tests.servers import free_port
from tests.workers import start_worker, stop_worker

SHOPPERS = 20  # chatting from the start
ARRIVALS = 4  # more who open the chat while the database is down
WARM_UP = 2.5  # seconds of load before the database goes down
DOWN_FOR = 3.0  # seconds the database stays down
RECOVER_WITHIN = 15.0  # seconds after the restart by which every shopper is served again
STAY_UP = 2.0  # seconds of load after the recovery, all of which must succeed
# A refused request is answered at once: the median within half a second, none after 3 s (the
# timeouts it must not wait for are the pool's 30 s and asyncpg's 60 s to connect). Not tighter:
# the suite shares two cores, and the outage makes every worker log a burst of tracebacks.
FAIL_FAST = 3.0
FAIL_FAST_MEDIAN = 0.5
STALE_AFTER = 10  # the workers' STALE_STREAM_AFTER
HANG = 30.0  # a request still open after this long hangs
TERMINAL = ("done", "error")

FAQ = [
    ("What are your shipping times?", "Orders ship within two business days."),
    ("How do returns work?", "Return any unworn item within 30 days for a full refund."),
    ("Do you ship abroad?", "We ship to the EU, the UK, Canada and the United States."),
    ("Can I change my order?", "Write to us within an hour of ordering and we will change it."),
]


# ---- a private PostgreSQL cluster ------------------------------------------------------------


def postgres_bindir() -> Path:
    """Where initdb and pg_ctl live: `pg_config --bindir`, else Debian's versioned directories."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found:
            candidates.append(Path(found))
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(
        versions,
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    pytest.fail(
        "initdb and pg_ctl were not found (neither `pg_config --bindir` nor "
        "/usr/lib/postgresql/*/bin): the database restart test needs the PostgreSQL server "
        "binaries (Debian: apt-get install postgresql)."
    )


class PrivateCluster:
    """A PostgreSQL cluster in a temporary directory, on a free loopback port, trust auth.

    initdb refuses to run as root: as root, every command runs as the `postgres` user.
    """

    def __init__(self) -> None:
        self.bindir = postgres_bindir()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail("running as root, and there is no `postgres` user to run initdb as")
            if shutil.which("runuser") is None:
                pytest.fail("running as root, and `runuser` is missing to run initdb as postgres")
        # /tmp itself, not $TMPDIR: the postgres user must be able to reach the directory.
        self.root = Path(tempfile.mkdtemp(prefix="chat-pg-", dir="/tmp"))
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args: str, timeout: float = 60) -> None:
        command = [str(self.bindir / program), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(
            command,
            cwd=self.root,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "-t", "30", "start")  # fmt: skip

    def stop(self, mode: str = "fast", *, wait: bool = True) -> None:
        waiting = "-w" if wait else "-W"
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, waiting, "-t", "30", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        """Stop the server (killing it if pg_ctl cannot) and delete every file of the cluster."""
        try:
            if self.running():
                pid = int((self.data / "postmaster.pid").read_text().split()[0])
                try:
                    self.stop("immediate")
                except (RuntimeError, subprocess.TimeoutExpired):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    async def create_database(self, name: str) -> None:
        connection = await asyncpg.connect(
            host="127.0.0.1", port=self.port, user="postgres", database="postgres", timeout=10
        )
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()


@pytest.fixture
def private_postgres() -> Iterator[PrivateCluster]:
    """A migrated `chat` database on a cluster of this test alone; removed however it ends."""
    cluster = PrivateCluster()
    try:
        cluster.init()
        cluster.start()
        asyncio.run(cluster.create_database("chat"))
        migrate(cluster.url("chat"))
        yield cluster
    finally:
        cluster.destroy()


# ---- shoppers under load ---------------------------------------------------------------------


@dataclass
class Call:
    """One HTTP request of a shopper: a new turn (POST) or following a reply (GET .../stream)."""

    kind: str
    worker: int
    started: float
    answered: float = 0.0  # the status line (and, when not 200, the whole body) arrived
    ended: float = 0.0
    status: int | None = None
    body: Any = None
    retry_after: str | None = None
    events: list[Event] = field(default_factory=list)
    broken: str | None = None  # the connection failed or the request hung

    @property
    def latency(self) -> float:
        return self.answered - self.started

    @property
    def terminal(self) -> Event | None:
        if self.events and self.events[-1].event in TERMINAL:
            return self.events[-1]
        return None


@dataclass
class Message:
    """One message a shopper sends, retried with the same client_message_id until accepted."""

    shopper: int
    session_id: str
    client_message_id: str
    text: str
    follow_elsewhere: bool
    calls: list[Call] = field(default_factory=list)
    accepted: Call | None = None  # the POST answered 200 with its `start` event
    outcome: Call | None = None  # the stream that delivered the reply's last event

    @property
    def start(self) -> dict[str, Any]:
        assert self.accepted is not None and self.accepted.events
        return self.accepted.events[0].data


async def _call(
    kind: str, worker: int, calls: list[Call], opened: Any, *, keep_reading: bool = True
) -> Call:
    """Make one request; read the whole event stream (or only `start`), or the error body."""
    call = Call(kind=kind, worker=worker, started=time.monotonic())
    calls.append(call)
    try:
        async with asyncio.timeout(HANG), opened as response:
            call.status = response.status_code
            call.retry_after = response.headers.get("retry-after")
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                call.answered = time.monotonic()
                async for event in iter_events(response):
                    call.events.append(event)
                    if not keep_reading and event.event == "start":
                        break  # a shopper who reloads the page: the reply goes on without them
            else:
                await response.aread()
                call.answered = time.monotonic()
                try:
                    call.body = response.json()
                except ValueError:
                    call.body = response.text
    except TimeoutError:
        call.broken = f"no end after {HANG:.0f} s"
    except httpx.HTTPError as exc:
        call.broken = f"{type(exc).__name__}: {exc}"
    call.ended = time.monotonic()
    call.answered = call.answered or call.ended
    return call


async def _follow(message: Message, clients: list[ProxyClient], first_worker: int) -> None:
    """Follow an accepted reply to its end through the resume endpoint of the other worker,
    which reads it from the database (the shopper reloaded the page): retried, as the widget
    does, until a stream ends with `done` or `error`."""
    reply_id = message.start["assistant_message_id"]
    for attempt in range(200):
        worker = (first_worker + 1 + attempt) % len(clients)
        client = clients[worker]
        url = client.url(f"/proxy/messages/{reply_id}/stream", {"session_id": message.session_id})
        call = await _call("resume", worker, message.calls, client.http.stream("GET", url))
        if call.terminal is not None:
            message.outcome = call
            return
        await asyncio.sleep(0.2)


async def _shopper(
    index: int, clients: list[ProxyClient], stop: asyncio.Event, messages: list[Message]
) -> None:
    session_id = new_id()
    pause = random.Random(index)
    sent = 0
    while not stop.is_set():
        message = Message(
            shopper=index,
            session_id=session_id,
            client_message_id=new_id(),
            text=f"Shopper {index}, message {sent}: anything new in the store today?",
            # Half the shoppers reload the page mid-reply and land on the other worker.
            follow_elsewhere=index % 2 == 1,
        )
        messages.append(message)
        sent += 1
        while not stop.is_set():
            worker = (index + len(message.calls)) % len(clients)
            client = clients[worker]
            opened = client.open_turn(session_id, message.text, message.client_message_id)
            call = await _call(
                "turn", worker, message.calls, opened, keep_reading=not message.follow_elsewhere
            )
            if call.status == 200 and call.events and call.events[0].event == "start":
                message.accepted = call
                if message.follow_elsewhere:
                    await _follow(message, clients, worker)
                elif call.terminal is not None:
                    message.outcome = call
                break
            if call.broken is None and call.status is not None and call.status < 500:
                return  # refused for good (a 4xx): reported by the test, no point retrying
            await asyncio.sleep(0.2)  # the widget's retry button, pressed at once
        await asyncio.sleep(pause.uniform(0.1, 1.0))  # reading the answer, typing the next


async def _watch_readiness(
    clients: list[ProxyClient], stop: asyncio.Event, seen: list[tuple[float, int, int, float]]
) -> None:
    while not stop.is_set():
        for worker, client in enumerate(clients):
            started = time.monotonic()
            try:
                response = await client.http.get("/readyz", timeout=HANG)
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            seen.append((started, worker, status, time.monotonic() - started))
        await asyncio.sleep(0.25)


def _summary(calls: list[Call]) -> str:
    counts = Counter((c.kind, c.status if c.broken is None else "broken") for c in calls)
    return ", ".join(
        f"{kind} {status}: {n}" for (kind, status), n in sorted(counts.items(), key=str)
    )


# ---- the test --------------------------------------------------------------------------------


async def test_database_restart_under_load_fails_fast_and_recovers(
    private_postgres: PrivateCluster, tmp_path: Path
) -> None:
    cluster = private_postgres
    url = cluster.url("chat")
    db = Database(url, poolclass=NullPool)  # the test's own view: no pooled connection to lose
    shop = await make_shop(db, faq=FAQ)
    logs = [tmp_path / "worker-0.log", tmp_path / "worker-1.log"]
    env = {
        "AI_OFFLINE_WORD_DELAY": "0.02",  # a reply streams for about a second
        "STALE_STREAM_AFTER": str(STALE_AFTER),
    }
    started = await asyncio.gather(
        *(asyncio.to_thread(start_worker, url, log=log, **env) for log in logs),
        return_exceptions=True,
    )
    processes = [s[0] for s in started if not isinstance(s, BaseException)]
    try:
        for outcome in started:
            if isinstance(outcome, BaseException):
                raise outcome
        urls = [s[1] for s in started if not isinstance(s, BaseException)]
        clients = [ProxyClient(u, shop) for u in urls]
        try:
            await _exercise(cluster, db, clients, logs)
        finally:
            for client in clients:
                await client.http.aclose()
    finally:
        for process in processes:
            stop_worker(process)
        await db.dispose()


async def test_a_database_shutting_down_is_a_503_not_a_500(
    private_postgres: PrivateCluster,
) -> None:
    """Between running and gone (and again while starting up), PostgreSQL refuses connections
    with `cannot_connect_now` (SQLSTATE 57P03): a 503 like a refused connection, never a 500.

    The load test meets that window only by chance (a fast shutdown lasts a fraction of a
    second); a session left open holds a smart shutdown in it for as long as needed.
    """
    cluster = private_postgres
    url = cluster.url("chat")
    db = Database(url, poolclass=NullPool)
    shop = await make_shop(db)
    await db.dispose()
    holder = await asyncpg.connect(
        host="127.0.0.1", port=cluster.port, user="postgres", database="postgres", timeout=10
    )
    process = None
    try:
        await asyncio.to_thread(cluster.stop, "smart", wait=False)
        deadline = time.monotonic() + 10
        while True:  # until the server turns new connections away
            try:
                probe = await asyncpg.connect(
                    host="127.0.0.1", port=cluster.port, user="postgres", timeout=5
                )
            except asyncpg.CannotConnectNowError:
                break
            await probe.close()
            assert time.monotonic() < deadline, "the server never began to shut down"
            await asyncio.sleep(0.05)
        # A fresh worker: its pool is empty, so every request needs a new connection.
        process, worker_url = await asyncio.to_thread(start_worker, url)
        async with ProxyClient(worker_url, shop) as client:
            started = time.monotonic()
            turn = await client.send(new_id(), "Do you ship abroad?")
            assert time.monotonic() - started < FAIL_FAST
            assert turn.status_code == 503, turn
            assert turn.body["error"]["code"] == "database_unavailable", turn.body
            history = await client.history(new_id())
            assert history.status_code == 503, history.text
            assert history.json()["error"]["code"] == "database_unavailable"
            assert history.headers["retry-after"].isdigit()
            assert (await client.http.get("/readyz")).status_code == 503

        await holder.close()  # the shutdown completes
        deadline = time.monotonic() + 30
        while cluster.running():
            assert time.monotonic() < deadline, "the server did not finish shutting down"
            await asyncio.sleep(0.05)
        await asyncio.to_thread(cluster.start)
        async with ProxyClient(worker_url, shop) as client:
            turn = await client.send(new_id(), "Do you ship abroad?")
        assert turn.status_code == 200 and turn.last.event == "done", turn
    finally:
        if not holder.is_closed():
            await holder.close()
        if process is not None:
            stop_worker(process)


def _worker_logs(logs: list[Path], lines: int = 40) -> str:
    parts = []
    for log in logs:
        text = log.read_text(errors="replace").splitlines() if log.exists() else []
        parts.append(f"--- {log.name} (last {lines} lines) ---\n" + "\n".join(text[-lines:]))
    return "\n".join(parts)


async def _exercise(
    cluster: PrivateCluster, db: Database, clients: list[ProxyClient], logs: list[Path]
) -> None:
    stop = asyncio.Event()
    everyone = SHOPPERS + ARRIVALS
    messages: list[Message] = []
    readiness: list[tuple[float, int, int, float]] = []
    shoppers = [asyncio.create_task(_shopper(i, clients, stop, messages)) for i in range(SHOPPERS)]
    watcher = asyncio.create_task(_watch_readiness(clients, stop, readiness))
    try:
        await asyncio.sleep(WARM_UP)
        going_down = time.monotonic()
        await asyncio.to_thread(cluster.stop, "fast")
        down = time.monotonic()
        shoppers += [
            asyncio.create_task(_shopper(SHOPPERS + i, clients, stop, messages))
            for i in range(ARRIVALS)
        ]
        await asyncio.sleep(DOWN_FOR)
        coming_up = time.monotonic()
        await asyncio.to_thread(cluster.start)
        up = time.monotonic()

        def served_again(shopper: int) -> float | None:
            """When the shopper's first message sent after the restart got its whole reply."""
            for message in messages:
                if message.shopper == shopper and message.outcome is not None:
                    first = message.calls[0]
                    if first.started >= up and message.outcome.terminal is not None:
                        return message.outcome.ended
            return None

        while time.monotonic() < up + RECOVER_WITHIN:
            if all(served_again(i) is not None for i in range(everyone)):
                break
            await asyncio.sleep(0.1)
        recovered = time.monotonic()
        await asyncio.sleep(STAY_UP)
    finally:
        stop.set()  # each shopper ends the message it is sending
        tasks = [*shoppers, watcher]
        _, busy = await asyncio.wait(tasks, timeout=HANG * 2)
        for task in busy:
            task.cancel()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, Exception):
                raise outcome
        assert not busy, f"{len(busy)} shoppers still busy a minute after the load stopped"

    calls = [c for m in messages for c in m.calls]
    timeline = (
        f"stop took {down - going_down:.2f} s, down for {coming_up - down:.2f} s, start took "
        f"{up - coming_up:.2f} s (up {up - going_down:.2f} s after the stop began); "
        f"{len(messages)} messages, {_summary(calls)}"
    )
    context = f"{timeline}\n{_worker_logs(logs)}"

    # No request hung or broke off: every stream ended with an event, every error had a body;
    # a reply followed from the database (on the worker not generating it) waits the outage out.
    broken = [
        (c.kind, c.worker, c.status, round(c.started - going_down, 2), c.broken)
        for c in calls
        if c.broken
    ]
    assert not broken, f"requests broke off or hung (seconds after the stop): {broken}\n{context}"

    # While the database is down: a clear, fast 503 and nothing else.
    refused = [c for c in calls if c.status != 200]
    unexpected = [(c.kind, c.status, c.body) for c in refused if c.status != 503]
    assert not unexpected, f"only 503 may answer a database outage: {unexpected}\n{context}"
    for call in refused:
        error = call.body.get("error") if isinstance(call.body, dict) else None
        assert isinstance(error, dict) and set(call.body) == {"error"}, call.body
        assert set(error) == {"code", "message"} and error["code"] == "database_unavailable"
        assert isinstance(error["message"], str) and error["message"], call.body
        assert call.retry_after and call.retry_after.isdigit(), call.retry_after
    slow = [
        (c.kind, c.worker, f"{c.started - going_down:+.2f}", round(c.latency, 2))
        for c in refused
        if c.latency > FAIL_FAST
    ]
    assert not slow, (
        f"refusals must be fast, these took longer than {FAIL_FAST} s (kind, worker, started "
        f"relative to the stop, seconds): {slow}\n{timeline}"
    )
    median = statistics.median(c.latency for c in refused)
    assert median < FAIL_FAST_MEDIAN, f"refusals took {median:.2f} s (median)\n{timeline}"
    while_down = [c for c in refused if down <= c.started and c.answered <= coming_up]
    assert any(c.kind == "turn" for c in while_down), f"no turn refused while down\n{context}"
    before = [c for c in refused if c.answered < going_down]
    assert not before, f"refusals before the database went down\n{context}"

    # /readyz says so too, and fast.
    ready_down = [(w, s, t) for (at, w, s, t) in readiness if down <= at and at + t <= coming_up]
    assert ready_down and all(s == 503 and t <= FAIL_FAST for _, s, t in ready_down), ready_down

    # The workers recover by themselves: every shopper is served again soon after the restart,
    # and from then on every request succeeds.
    late = [i for i in range(everyone) if served_again(i) is None]
    assert not late, (
        f"shoppers {late} not served again within {RECOVER_WITHIN} s of the restart\n{context}"
    )
    recovery = max(served_again(i) or 0.0 for i in range(everyone)) - up
    after = [c for c in calls if c.started >= recovered]
    assert after and all(c.status == 200 and c.broken is None for c in after), (
        f"requests failed after the recovery: {_summary(after)}\n{context}"
    )
    assert all(s == 200 for (at, _w, s, _t) in readiness if at >= recovered), readiness

    # Every accepted turn ended with a clear last event; replies cut by the outage included.
    accepted = [m for m in messages if m.accepted is not None]
    unended = [m.client_message_id for m in accepted if m.outcome is None]
    assert not unended, f"accepted turns whose reply never ended: {unended}\n{context}"
    for message in accepted:
        assert message.outcome is not None
        last = message.outcome.terminal
        assert last is not None
        if last.event == "error":
            assert last.data["code"] and last.data["message"], last.data
    through_outage = [
        m
        for m in accepted
        if m.accepted is not None
        and m.outcome is not None
        and m.accepted.answered < going_down
        and m.outcome.ended > down
    ]
    assert through_outage, "no reply was streaming when the database went down"

    # The database: every accepted message saved exactly once, no reply left streaming.
    deadline = time.monotonic() + STALE_AFTER * 3
    while True:
        async with db.transaction() as connection:
            streaming = (
                await connection.execute(
                    sa.text("SELECT count(*) FROM messages WHERE status = 'streaming'")
                )
            ).scalar_one()
        if streaming == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert streaming == 0, f"{streaming} replies are still `streaming`\n{context}"
    async with db.transaction() as connection:
        rows = (
            await connection.execute(
                sa.text(
                    "SELECT m.public_id, m.role, m.content, m.status, m.error_code,"
                    " m.client_message_id, c.session_id"
                    " FROM messages m JOIN conversations c ON c.id = m.conversation_id"
                )
            )
        ).all()
    users = [r for r in rows if r.role == "user"]
    replies = {r.public_id: r for r in rows if r.role == "assistant"}
    saved = Counter(r.client_message_id for r in users)
    sent = {m.client_message_id: m for m in messages}
    assert all(n == 1 for n in saved.values()), [k for k, n in saved.items() if n > 1]
    assert set(saved) <= set(sent), "a user message nobody sent is in the database"
    by_id = {r.client_message_id: r for r in users}
    lost = [m.client_message_id for m in accepted if m.client_message_id not in by_id]
    assert not lost, f"accepted messages missing from the database: {lost}\n{context}"
    for message in accepted:
        user = by_id[message.client_message_id]
        assert (user.content, user.session_id) == (message.text, message.session_id)
        assert user.public_id == message.start["user_message_id"]
        reply = replies[message.start["assistant_message_id"]]
        assert message.outcome is not None
        last = message.outcome.terminal
        assert last is not None
        streamed = "".join(e.data["text"] for e in message.outcome.events if e.event == "delta")
        if last.event == "done":
            assert (reply.status, reply.content) == (last.data["status"], streamed), (
                f"the shopper saw {last.data} but the database holds {reply.status}"
            )
        else:
            assert (reply.status, reply.error_code) == ("error", last.data["code"])
    for reply in replies.values():
        assert reply.status in ("complete", "stopped", "error"), reply
        assert reply.status != "error" or reply.error_code, reply

    endings = Counter(
        m.outcome.terminal.event for m in through_outage if m.outcome and m.outcome.terminal
    )
    slowest = max((c.latency for c in refused), default=0.0)
    slowest_four = [
        (f"{c.started - going_down:+.2f}", round(c.latency, 2))
        for c in sorted(refused, key=lambda c: -c.latency)[:4]
    ]
    mean = sum(c.latency for c in refused) / max(len(refused), 1)
    saved_anyway = len([k for k in saved if sent[k].accepted is None])
    after_up = [c for c in refused if c.answered >= up]
    first_served = [
        min((c.answered for c in calls if c.worker == w and c.started >= up and c.status == 200),
            default=float("nan")) - up
        for w in range(len(clients))
    ]  # fmt: skip
    last_refusal = max((c.answered for c in after_up), default=up) - up
    print(
        f"\n{timeline}\n"
        f"slowest refusals (started relative to the stop, seconds): {slowest_four}\n"
        f"refused: {len(refused)}, {len(while_down)} while down; latency max {slowest:.3f} s, "
        f"mean {mean:.3f} s; {len(after_up)} after the restart, the last {last_refusal:.2f} s "
        f"after it; first 200 per worker {', '.join(f'{t:.2f}' for t in first_served)} s "
        f"after the restart; every shopper served again {recovery:.2f} s after it; "
        f"{len(accepted)} accepted turns, {len(through_outage)} streaming through the outage "
        f"({dict(endings)}); {saved_anyway} saved but never accepted"
    )
