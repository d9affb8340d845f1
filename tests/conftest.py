"""Fixtures: a migrated database per backend, real servers on loopback, signed clients."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from playwright.sync_api import Browser, sync_playwright

from app.__main__ import migrate
from app.config import Settings
from app.db import Database
from tests.factories import TEST_API_KEY, TEST_API_SECRET, ProxyClient
from tests.fake_shopify import FakeShopify
from tests.servers import LiveServer, serve, start_app_server

POSTGRES_ADMIN_DSN = os.environ.get(
    "TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _postgres_url(dsn: str, database: str) -> str:
    base = dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'chat.sqlite3'}"
        migrate(url)
        yield url
        return
    name = f"chat_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        try:
            connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            pytest.fail(
                f"PostgreSQL is not reachable at {POSTGRES_ADMIN_DSN} ({exc}); the PostgreSQL "
                "half of the suite must run. Start it with: scripts/ensure-postgres"
            )
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = _postgres_url(POSTGRES_ADMIN_DSN, name)
    migrate(url)
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def make_settings(database_url: str, **overrides: object) -> Settings:
    base = Settings(
        app_env="development",
        shopify_api_key=TEST_API_KEY,
        shopify_api_secret=TEST_API_SECRET,
        database_url=database_url,
        offline_word_delay=0.005,
        stream_flush_interval=0.05,
        log_level="warning",
        # No test may reach the real Shopify: admin calls go to a closed loopback port unless
        # a test points them at its fake admin.
        shopify_admin_base_url="http://127.0.0.1:9",
        # Every test shopper shares 127.0.0.1; the rate-limit tests set their own limits.
        rate_limit_ip=1_000_000,
        rate_limit_session=1_000,
        rate_limit_shop=1_000_000,
        # Live streams end soon, so a fuzzed or forgotten one does not hold a test up, and the
        # widget's reconnection runs in every browser test that holds one.
        live_stream_seconds=3.0,
    )
    return base.with_overrides(**overrides)


@pytest.fixture(scope="session")
def server(database_url: str) -> Iterator[LiveServer]:
    live = start_app_server(make_settings(database_url))
    yield live
    live.stop()


@pytest.fixture
def start_server(database_url: str) -> Iterator[Callable[..., LiveServer]]:
    """Start extra servers (other settings, or a second worker on the same database)."""
    started: list[LiveServer] = []

    def start(**overrides: object) -> LiveServer:
        url = str(overrides.pop("database_url", database_url))
        live = start_app_server(make_settings(url, **overrides))
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()


@pytest.fixture(scope="session")
def admin() -> Iterator[tuple[FakeShopify, LiveServer]]:
    """A fake Shopify admin on loopback (OAuth, token exchange and refresh, GraphQL)."""
    fake = FakeShopify()
    live = serve(fake.app, timeout_graceful_shutdown=1)
    fake.catalogs.base_url = live.url + "/"
    yield fake, live
    live.stop()


@pytest.fixture
def fake(admin: tuple[FakeShopify, LiveServer]) -> Iterator[FakeShopify]:
    fake, _ = admin
    fake.refuse, fake.expires_in = False, 86400
    fake.requests.clear()
    fake.catalogs.reset()
    yield fake


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    from sqlalchemy.pool import NullPool

    database = Database(database_url, poolclass=NullPool)
    yield database
    await database.dispose()


@pytest.fixture
async def client(server: LiveServer, db: Database) -> AsyncIterator[ProxyClient]:
    async with ProxyClient.for_new_shop(server.url, db) as proxy:
        yield proxy


BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright; never a downloaded browser build.

    Per test: Playwright's sync API keeps an event loop running in this thread while it is
    open, which would break the asyncio tests that run after it.
    """
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=BROWSER_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def artifacts_dir() -> Path:
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
