"""The theme app extension's files and the local storefront that renders them."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from app.config import Settings
from app.db import Database
from app.dev.demo import DEMO_SHOP
from app.dev.storefront import EXTENSION, block_schema, render_chat_embed
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
    """Shopify's budget for a theme app extension is per file (Theme Check's
    AssetSizeJavaScript: 10 KB compressed); all of ours together stay within 14 KB, which is
    what a page with the chat pays."""
    sizes = {path.name: len(gzip.compress(path.read_bytes(), 9)) for path in ASSETS.glob("*.js")}
    assert all(size < 10 * 1024 for size in sizes.values()), sizes
    assert sum(sizes.values()) < 14 * 1024, sizes


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


def _texts(html: str) -> dict[str, Any]:
    """The words the block hands the scripts, as JSON."""
    match = re.search(r"data-scw-text>(.*?)</script>", html, re.S)
    assert match, "the block has its texts"
    texts: dict[str, Any] = json.loads(match.group(1))
    return texts


def _launcher(html: str) -> str:
    """The launcher's label, in the panel's template."""
    match = re.search(r'class="scw__launcher".*?</span><span>([^<]*)</span>', html, re.S)
    assert match, "the block has a launcher"
    return match.group(1)


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
    text = _texts(html)
    assert text["greeting"] == "Welcome </script><b>"
    assert "Welcome </script>" not in html, "JSON in a script element cannot close it"
    assert _launcher(html) == "Chat with us", "an empty label falls back to the translation"
    schema = block_schema()
    assert schema["target"] == "body"
    assert {s["id"] for s in schema["settings"]} == {
        "accent_color",
        "position",
        "greeting",
        "launcher_label",
        "direct_streams",
    }


def test_block_renders_in_german() -> None:
    html = render_chat_embed(shop=DEMO_SHOP, locale="de")
    text = _texts(html)
    assert _launcher(html) == "Chatte mit uns"
    assert text["rateLimited"] == "Zu viele Nachrichten, versuche es in {s} s erneut"


@pytest.mark.parametrize(
    ("locale", "talk", "team_member", "joined"),
    [
        ("en", "Talk to a person", "{name} · Team", "{name} joined"),
        ("fr", "Parler à une personne", "{name} · Équipe", "{name} a rejoint la conversation"),
        ("de", "Mit einer Person sprechen", "{name} · Team", "{name} ist dazugekommen"),
        ("es", "Hablar con una persona", "{name} · Equipo", "{name} se ha unido"),
    ],
)
def test_the_live_conversations_words_are_the_shops_language(
    locale: str, talk: str, team_member: str, joined: str
) -> None:
    html = render_chat_embed(shop=DEMO_SHOP, locale=locale)
    assert f'data-action="handover">{talk}</button>' in html
    text = _texts(html)
    assert text["teamMember"] == team_member
    assert text["status"]["joined"] == joined
    assert "{n}" in text["unread"] and "{email}" in text["emailSaved"]
    assert "translation missing" not in html


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
                "/storefront/collections/all",
                "/storefront/products/merino-crew-sweater",
                "/storefront/images/merino-crew-sweater.svg",
                "/cart.js",
                f"/apps/chat/history?session_id={new_id()}",
            ):
                response = await client.get(path)
                assert response.status_code == 404, path
                assert response.json()["error"]["code"] == "not_found"
    finally:
        live.stop()


def test_production_runs_without_the_development_dependencies(tmp_path: Path) -> None:
    """python-liquid is in the `dev` extra: a production app, started and serving, never
    imports it (nor the local storefront that needs it)."""
    script = f"""
import sys
sys.modules["liquid"] = None  # as if it were not installed: importing it fails
import asyncio, httpx
from cryptography.fernet import Fernet
from app.__main__ import migrate
from app.config import Settings
from app.main import create_app
url = "sqlite+aiosqlite:///{tmp_path / "prod.sqlite3"}"
migrate(url)
app = create_app(Settings(app_env="production", shopify_api_key="key-1234567890",
    shopify_api_secret="s" * 32, database_url=url,
    token_encryption_key=Fernet.generate_key().decode(), log_level="warning"))
async def main():
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/storefront")).status_code == 404
asyncio.run(main())
assert not any(name == "app.dev.storefront" or name.startswith("liquid.") for name in sys.modules)
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_block_tells_the_widget_where_and_whether_to_stream_directly() -> None:
    def widget(settings: dict | None, published: dict) -> str:  # type: ignore[type-arg]
        html = render_chat_embed(shop="a.myshopify.com", settings=settings, app_settings=published)
        return re.search(r"<chat-widget[^>]*>", html, re.S).group(0)  # type: ignore[union-attr]

    app = {"app_url": "https://chat.example.com", "direct_streams": "always"}
    tag = widget(None, app)
    assert 'data-direct-url="https://chat.example.com/direct"' in tag
    assert 'data-direct-mode="always"' in tag
    assert 'data-direct-mode="never"' in widget({"direct_streams": "never"}, app), (
        "the theme editor's choice wins"
    )
    bare = widget(None, {})
    assert "data-direct-url" not in bare, "no host published yet: the widget keeps the proxy"
    assert 'data-direct-mode="auto"' in bare
