"""The command line: migrations and registering shops, as a developer runs them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.db import Database
from tests.factories import ProxyClient, new_id, session_token
from tests.fake_shopify import signed_oauth_query
from tests.servers import LiveServer, free_port

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, database_url: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "APP_ENV": "development", "DATABASE_URL": database_url, **extra}
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrate_creates_a_fresh_sqlite_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'new' / 'chat.sqlite3'}"
    first = _run("migrate", database_url=url)
    assert first.returncode == 0, first.stderr
    again = _run("migrate", database_url=url)
    assert again.returncode == 0, "migrating twice is harmless"
    added = _run("shops", "add", "cli-shop.myshopify.com", database_url=url)
    assert added.returncode == 0, added.stderr
    assert "cli-shop.myshopify.com registered" in added.stdout


async def test_tokens_reencrypt_moves_every_token_to_the_newest_key(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    from app import repo
    from app.crypto import TokenCipher

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.sqlite3'}"
    assert _run("migrate", database_url=url).returncode == 0
    for shop in ("one", "two"):
        added = _run(
            "shops",
            "add",
            f"{shop}.myshopify.com",
            "--access-token",
            f"shpat_{shop}",
            database_url=url,
            TOKEN_ENCRYPTION_KEY=old,
        )
        assert added.returncode == 0, added.stderr
    rotated = _run("tokens", "reencrypt", database_url=url, TOKEN_ENCRYPTION_KEY=f"{new},{old}")
    assert rotated.returncode == 0, rotated.stderr
    assert "2 shops' tokens rewritten" in rotated.stdout
    db = Database(url)
    try:
        async with db.session() as session:
            stored = await repo.get_shop(session, domain="two.myshopify.com")
    finally:
        await db.dispose()
    assert stored is not None
    assert TokenCipher(new).decrypt(stored.access_token) == "shpat_two"
    assert TokenCipher(old).decrypt(stored.access_token) is None


def test_shops_add_refuses_a_bad_domain(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.sqlite3'}"
    result = _run("shops", "add", "https://evil.example.com", database_url=url)
    assert result.returncode == 2
    assert "not a myshopify domain" in result.stderr


async def test_registered_shop_with_faq_can_chat(
    database_url: str, server: LiveServer, tmp_path: Path, db: Database
) -> None:
    domain = f"cli-{new_id()[:8]}.myshopify.com"
    faq = tmp_path / "faq.json"
    faq.write_text(json.dumps([{"question": "Do you sell socks?", "answer": "Yes, wool socks."}]))
    result = _run("shops", "add", domain, "--faq", str(faq), database_url=database_url)
    assert result.returncode == 0, result.stderr
    async with ProxyClient(server.url, domain) as client:
        turn = await client.send(new_id(), "any socks?")
    assert turn.text == "Yes, wool socks."


def test_dev_refuses_production(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "APP_ENV": "production",
        "SHOPIFY_API_KEY": "k" * 10,
        "SHOPIFY_API_SECRET": "s" * 32,
        "TOKEN_ENCRYPTION_KEY": "q3Xv8m2X4c0yq4cQxGmK0n5W3hS6uQ1e9Zr7tYbNfVw=",
        "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
    }
    result = subprocess.run(
        [sys.executable, "-m", "app", "dev"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "APP_ENV=development" in result.stderr


CLI_KEY = "cli-client-id-0123456789"
CLI_SECRET = "shpss_cli_secret_0123456789abcdef"
TUNNEL = "https://bright-otter.trycloudflare.com"


def _cli_environment(tmp_path: Path, port: int, *, with_app_env: bool) -> dict[str, str]:
    """What Shopify CLI's `app dev` hands the web process (packages/app/.../processes/web.ts):
    the app's real credentials, its tunnel as HOST and APP_URL, and PORT."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "SHOPIFY_API_KEY": CLI_KEY,
        "SHOPIFY_API_SECRET": CLI_SECRET,
        "HOST": TUNNEL,
        "APP_URL": TUNNEL,
        "SCOPES": "read_products",
        "NODE_ENV": "development",
        "BACKEND_PORT": str(port),
        "FRONTEND_PORT": str(port),
        "PORT": str(port),
        "SERVER_PORT": str(port),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.sqlite3'}",
        "AI_OFFLINE_WORD_DELAY": "0",
    }
    if with_app_env:
        env["APP_ENV"] = "development"
    return env


@pytest.mark.parametrize("with_app_env", [True, False], ids=["cli-sets-app-env", "older-cli"])
async def test_shopify_app_dev_starts_the_service_with_the_cli_environment(
    tmp_path: Path, with_app_env: bool
) -> None:
    import tomllib

    command = tomllib.loads((ROOT / "shopify.web.toml").read_text())["commands"]["dev"]
    port = free_port()
    # The CLI splits the command on spaces and runs it without a shell, in the app's folder.
    program, *arguments = command.split(" ")
    output = tmp_path / "dev.log"
    with output.open("wb") as log:  # a file, not a pipe nobody reads: it never fills up
        process = await asyncio.create_subprocess_exec(
            program,
            *arguments,
            cwd=ROOT,
            env=_cli_environment(tmp_path, port, with_app_env=with_app_env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://localhost:{port}", timeout=10) as client:
            for _ in range(300):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    if process.returncode is not None:
                        raise AssertionError(output.read_text()) from None
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the service did not start")
            shop = "cli-dev-store.myshopify.com"
            # OAuth with the CLI's credentials, back to the tunnel.
            started = await client.get(
                "/auth?" + signed_oauth_query({"shop": shop}, secret=CLI_SECRET)
            )
            assert started.status_code == 302, started.text
            consent = httpx.URL(started.headers["location"])
            assert consent.params["client_id"] == CLI_KEY
            assert consent.params["redirect_uri"] == f"{TUNNEL}/auth/callback"
            # The embedded dashboard, as the admin opens it: App Bridge on the page.
            token = session_token(shop, secret=CLI_SECRET, audience=CLI_KEY)
            page = await client.get(
                "/", params={"embedded": "1", "host": "YWRtaW4", "shop": shop, "id_token": token}
            )
            assert page.status_code == 200, page.text
            assert "https://cdn.shopify.com/shopifycloud/app-bridge.js" in page.text
            assert f'<meta name="shopify-api-key" content="{CLI_KEY}">' in page.text
            assert (
                "frame-ancestors https://cli-dev-store.myshopify.com"
                in page.headers["content-security-policy"]
            )
            # Inside the admin without a token yet: to Shopify's token page, not the dev login.
            bare = await client.get("/settings", params={"embedded": "1", "shop": shop})
            assert bare.status_code == 302
            assert bare.headers["location"].startswith(f"{TUNNEL}/auth/session-token?")
            # And `make dev`'s local login still works beside it.
            assert (await client.get("/dev/login")).status_code == 200
            assert (await client.get("/storefront")).status_code == 200
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 20)
