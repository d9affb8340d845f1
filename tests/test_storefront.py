"""The theme app extension's files and the local storefront that renders them."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from app.config import Settings
from app.db import Database
from app.demo import DEMO_SHOP
from app.storefront import EXTENSION, block_schema, render_chat_embed
from tests.factories import messages_of, new_id
from tests.servers import LiveServer, start_app_server

ROOT = Path(__file__).resolve().parent.parent
ASSETS = EXTENSION / "assets"


def test_theme_check_passes() -> None:
    node = shutil.which("node")
    assert node, "Node.js is needed for Theme Check"
    result = subprocess.run(
        [node, "scripts/theme-check.mjs", "extensions/chat-widget"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"theme-check: \d+ files, 0 offenses", result.stdout)


def test_scripts_fit_shopifys_budget() -> None:
    size = sum(
        len(gzip.compress((ASSETS / n).read_bytes(), 9))
        for n in (path.name for path in ASSETS.glob("*.js"))
    )
    assert size < 10 * 1024, f"{size} bytes gzipped"


def _flatten(data: dict, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in data.items():
        path = f"{prefix}{key}"
        keys |= _flatten(value, path + ".") if isinstance(value, dict) else {path}
    return keys


@pytest.mark.parametrize("kind", ["", ".schema"])
def test_every_locale_has_every_key(kind: str) -> None:
    english = _flatten(json.loads((EXTENSION / f"locales/en.default{kind}.json").read_text()))
    for language in ("fr", "de", "es"):
        other = _flatten(json.loads((EXTENSION / f"locales/{language}{kind}.json").read_text()))
        assert other == english, language


def test_shopper_text_is_not_hard_coded_in_the_script() -> None:
    script = "".join(path.read_text() for path in sorted(ASSETS.glob("*.js")))
    english = json.loads((EXTENSION / "locales/en.default.json").read_text())["chat"]
    for text in english.values():
        if len(text) > 3 and "{{" not in text:
            assert f"'{text}'" not in script and f'"{text}"' not in script, text
    assert "/apps/chat" not in script, "the proxy path comes from Liquid"
    assert "Math.random(" not in script


def test_block_renders_merchant_settings_and_defaults() -> None:
    html = render_chat_embed(
        shop=DEMO_SHOP,
        settings={
            "accent_color": "#aa3300",
            "position": "left",
            "greeting": "Welcome </script><b>",
            "launcher_label": "",
        },
    )
    assert "--scw-accent: #aa3300" in html
    assert "scw--left" in html
    text = json.loads(re.search(r"data-scw-text>(.*?)</script>", html, re.S).group(1))
    assert text["greeting"] == "Welcome </script><b>"
    assert "Welcome </script>" not in html, "JSON in a script element cannot close it"
    assert text["launcher"] == "Chat with us", "an empty label falls back to the translation"
    schema = block_schema()
    assert schema["target"] == "body"
    assert {s["id"] for s in schema["settings"]} == {
        "accent_color",
        "position",
        "greeting",
        "launcher_label",
    }


def test_block_renders_in_german() -> None:
    html = render_chat_embed(shop=DEMO_SHOP, locale="de")
    text = json.loads(re.search(r"data-scw-text>(.*?)</script>", html, re.S).group(1))
    assert text["launcher"] == "Chatte mit uns"
    assert text["rateLimited"] == "Zu viele Nachrichten, versuche es in {s} s erneut"


async def test_storefront_page_and_assets(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        page = await client.get("/storefront")
        assert page.status_code == 200
        assert "<chat-widget" in page.text
        assert 'name="viewport"' in page.text
        script = await client.get("/storefront/assets/chat-widget.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]


async def test_emulated_proxy_signs_and_ignores_spoofed_identity(
    server: LiveServer, db: Database
) -> None:
    session_id = new_id()
    spoof = "shop=evil.myshopify.com&signature=00&logged_in_customer_id=7&timestamp=1"
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post(
            f"/apps/chat/messages?{spoof}",
            json={"session_id": session_id, "message": "How do I find my size?"},
        )
        assert response.status_code == 200
        assert "event: done" in response.text
        history = await client.get(f"/apps/chat/history?session_id={session_id}&{spoof}")
        assert len(history.json()["messages"]) == 2, "saved anonymously, under the demo shop"
        client.cookies.set("scw_dev_customer", "1001")
        await client.post(
            f"/apps/chat/messages?{spoof}", json={"session_id": session_id, "message": "thanks"}
        )
        client.cookies.delete("scw_dev_customer")
        hidden = await client.get(f"/apps/chat/history?session_id={session_id}")
        assert hidden.json()["messages"] == [], "once claimed by customer 1001, not anonymous"
    saved = await messages_of(db, DEMO_SHOP, session_id)
    assert saved[1].content.startswith("Our sizes run true to size.")


@pytest.mark.parametrize("customer", ["²", "1" * 65, "12 34"])
async def test_a_customer_that_is_no_shopify_id_is_anonymous(
    server: LiveServer, customer: str
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        switched = await client.post("/storefront/customer", data={"customer_id": customer})
        assert switched.status_code == 303
        assert "scw_dev_customer" not in client.cookies
        # A cookie of another kind is not signed in as the customer either.
        session_id = new_id()
        response = await client.post(
            "/apps/chat/messages",
            json={"session_id": session_id, "message": "hello"},
            headers={"Cookie": f"scw_dev_customer={customer}".encode("latin-1")},
        )
        assert response.status_code == 200
        history = await client.get(f"/apps/chat/history?session_id={session_id}")
        assert len(history.json()["messages"]) == 2, "saved anonymously"


async def test_storefront_is_absent_in_production(database_url: str) -> None:
    settings = Settings(
        app_env="production",
        shopify_api_key="key-1234567890",
        shopify_api_secret="s" * 32,
        database_url=database_url,
        token_encryption_key=Fernet.generate_key().decode(),
        log_level="warning",
    )
    live = start_app_server(settings)
    try:
        async with httpx.AsyncClient(base_url=live.url) as client:
            for path in (
                "/storefront",
                "/storefront/assets/chat-widget.js",
                f"/apps/chat/history?session_id={new_id()}",
            ):
                response = await client.get(path)
                assert response.status_code == 404, path
                assert response.json()["error"]["code"] == "not_found"
    finally:
        live.stop()
