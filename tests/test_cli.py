"""The command line: migrations and registering shops, as a developer runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from app.db import Database
from tests.factories import ProxyClient, new_id
from tests.servers import LiveServer

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "APP_ENV": "development", "DATABASE_URL": database_url}
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
