"""Request ids, JSON logs without secrets, security headers, closed CORS, health and readiness."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.observability import JsonFormatter
from tests.factories import (
    TEST_API_KEY,
    TEST_API_SECRET,
    ProxyClient,
    make_shop,
    new_id,
    session_token,
)
from tests.servers import LiveServer, free_port

ROOT = Path(__file__).resolve().parent.parent


async def test_every_response_has_a_request_id_and_security_headers(server: LiveServer, db) -> None:
    shop = await make_shop(db)
    async with ProxyClient(server.url, shop) as client:
        proxied = await client.get("/proxy/sessions/status", {"session_id": new_id()})
        given = await client.http.get("/healthz", headers={"X-Request-Id": "trace-12345678"})
        bogus = await client.http.get("/healthz", headers={"X-Request-Id": "<script>"})
    assert len(proxied.headers["x-request-id"]) == 32
    assert given.headers["x-request-id"] == "trace-12345678"
    assert bogus.headers["x-request-id"] != "<script>"
    for response in (proxied, given):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"] == (
            "default-src 'none'; frame-ancestors 'none'"
        )
        assert response.headers["referrer-policy"]


async def test_cors_is_closed_on_the_proxy(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        preflight = await client.options(
            "/proxy/messages",
            headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
        )
        simple = await client.get("/proxy/history", headers={"Origin": "https://evil.example.com"})
    for response in (preflight, simple):
        assert "access-control-allow-origin" not in response.headers
    assert preflight.status_code == 405


async def test_dashboard_may_only_be_framed_by_the_shop_admin(server: LiveServer, db) -> None:
    shop = await make_shop(db)
    async with httpx.AsyncClient(base_url=server.url) as client:
        page = await client.get("/", params={"id_token": session_token(shop), "shop": shop})
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert f"frame-ancestors https://{shop} https://admin.shopify.com" in policy


async def test_health_and_readiness(server: LiveServer, start_server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    broken = start_server(database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x")
    async with httpx.AsyncClient(base_url=broken.url) as client:
        assert (await client.get("/healthz")).status_code == 200, "alive, though not ready"
        not_ready = await client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["checks"]["database"] == "unreachable"


def test_json_formatter_redacts_secret_fields() -> None:
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "hello %s", ("shop",), None)
    record.fields = {"authorization": "Bearer abc", "shop": "x.myshopify.com", "hmac": "f00"}
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "hello shop"
    assert entry["authorization"] == "[redacted]" and entry["hmac"] == "[redacted]"
    assert entry["shop"] == "x.myshopify.com"


def test_production_logs_are_json_lines_without_secrets(tmp_path: Path) -> None:
    port = free_port()
    database = tmp_path / "chat.sqlite3"
    env = {
        **os.environ,
        "APP_ENV": "production",
        "SHOPIFY_API_KEY": TEST_API_KEY,
        "SHOPIFY_API_SECRET": TEST_API_SECRET,
        "DATABASE_URL": f"sqlite:///{database}",
        "TOKEN_ENCRYPTION_KEY": "q3Xv8m2X4c0yq4cQxGmK0n5W3hS6uQ1e9Zr7tYbNfVw=",
        "SHOPIFY_APP_URL": "https://chat.example.com",
        "LOG_LEVEL": "info",
    }
    subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    subprocess.run(
        [sys.executable, "-m", "app", "shops", "add", "logs.myshopify.com"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port), "--no-access-log"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        token = session_token("logs.myshopify.com")
        query = ProxyClient(base, "logs.myshopify.com").url(
            "/proxy/sessions/status", {"session_id": new_id()}
        )
        signature = query.split("signature=")[1]
        answer = httpx.get(base + query, timeout=10)
        httpx.get(
            f"{base}/api/admin/stats", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=30)
    lines = [json.loads(line) for line in errors.splitlines() if line.startswith("{")]
    access = [e for e in lines if e["logger"] == "app.access"]
    assert any(e["path"] == "/proxy/sessions/status" and e["status"] == 200 for e in access)
    assert answer.headers["x-request-id"] in {e["request_id"] for e in access}
    assert signature not in errors and token not in errors, "no secret reaches the log"
