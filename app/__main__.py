"""Command line: `migrate`, `shops add SHOP [--access-token T]`, and `dev` (development only)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

from app import repo
from app.config import ConfigError, Settings, load_settings
from app.crypto import TokenCipher
from app.db import Database
from app.shopify import is_shop_domain

ROOT = Path(__file__).resolve().parent.parent


def migrate(database_url: str) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


async def add_shop(
    settings: Settings, domain: str, access_token: str | None, faq_file: str | None
) -> None:
    db = Database(settings.database_url)
    encrypted = TokenCipher.from_settings(settings).encrypt(access_token)
    try:
        async with db.session() as session:
            shop = await repo.install_shop(session, domain=domain, access_token=encrypted)
            if faq_file:
                entries = json.loads(await asyncio.to_thread(Path(faq_file).read_text))
                assert shop.id is not None
                await repo.replace_faq(
                    session,
                    shop_id=shop.id,
                    entries=[(e["question"], e["answer"]) for e in entries],
                )
    finally:
        await db.dispose()


async def reencrypt_tokens(settings: Settings) -> tuple[int, int]:
    """Every shop's tokens under the newest key; returns (rewritten, unreadable)."""
    db = Database(settings.database_url)
    cipher = TokenCipher.from_settings(settings)
    rewritten = unreadable = 0
    try:
        async with db.session() as session:
            for shop in await repo.shops_with_tokens(session):
                access, refresh = (
                    cipher.reencrypt(shop.access_token),
                    cipher.reencrypt(shop.refresh_token),
                )
                if access is None or (shop.refresh_token is not None and refresh is None):
                    unreadable += 1
                    continue
                shop.access_token, shop.refresh_token = access, refresh
                rewritten += 1
    finally:
        await db.dispose()
    return rewritten, unreadable


def _loopback_sockets(port: int) -> list[socket.socket]:
    """Listening sockets on 127.0.0.1 and, where the machine has it, ::1: `localhost` may
    mean either (Shopify CLI's tunnel and proxy, like Node, often try ::1 first)."""
    sockets = []
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            if family == socket.AF_INET:
                raise
            continue
        sockets.append(sock)
    return sockets


def dev(settings: Settings, port: int) -> int:
    """The development server: `make dev`, and `shopify app dev` (shopify.web.toml), which
    passes the app's real credentials, its tunnel as APP_URL/HOST, and PORT."""
    import uvicorn

    from app.dev.demo import DEMO_SHOP
    from app.server import BoundedHttpProtocol

    migrate(settings.database_url)  # the app registers the demo shop when it starts
    base = f"http://localhost:{port}"
    print(f"\n  Storefront chat is running ({settings.ai_provider} AI, {settings.database_url})")
    print(f"  Local storefront: {base}/storefront")
    print(f"  Dashboard:        {base}/  (development login stands in for the Shopify admin)")
    if settings.shopify_app_url != "http://localhost:8000":
        print(f"  App URL:          {settings.shopify_app_url}  (inside the Shopify admin)")
    print(f"  Demo shop:        {DEMO_SHOP}")
    print(f"  App proxy API:    {base}/proxy/...")
    print(f"  Health:           {base}/healthz\n", flush=True)
    # The same server limits as the Procfile's.
    config = uvicorn.Config("app.main:app", log_level="info", http=BoundedHttpProtocol)
    uvicorn.Server(config).run(sockets=_loopback_sockets(port))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply database migrations")
    dev_command = commands.add_parser("dev", help="run the development server (demo shop)")
    dev_command.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    tokens = commands.add_parser("tokens", help="shop tokens at rest")
    tokens.add_subparsers(dest="tokens_command", required=True).add_parser(
        "reencrypt", help="rewrite every shop's tokens under the newest TOKEN_ENCRYPTION_KEY"
    )
    shops = commands.add_parser("shops", help="manage installed shops")
    shop_commands = shops.add_subparsers(dest="shops_command", required=True)
    add = shop_commands.add_parser("add", help="register an installed shop")
    add.add_argument("shop", help="the shop's myshopify domain, e.g. my-shop.myshopify.com")
    add.add_argument("--access-token", default=None)
    add.add_argument("--faq", default=None, help="a JSON file of [{question, answer}] entries")
    args = parser.parse_args(argv)
    if args.command == "dev":
        # `dev` is development by its name (Shopify CLI sets APP_ENV too, older ones did not);
        # an explicit production setting is a mistake worth saying so about.
        if os.environ.setdefault("APP_ENV", "development") != "development":
            print("error: `dev` runs only with APP_ENV=development", file=sys.stderr)
            return 2
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "dev":
        return dev(settings, args.port)
    if args.command == "migrate":
        migrate(settings.database_url)
        print("migrations applied")
        return 0
    if args.command == "tokens":
        rewritten, unreadable = asyncio.run(reencrypt_tokens(settings))
        print(f"{rewritten} shops' tokens rewritten under the newest key")
        if unreadable:
            print(
                f"{unreadable} shops' tokens no key can read: they recover by token exchange "
                "when their merchant next opens the app",
                file=sys.stderr,
            )
        return 0
    domain = args.shop.strip().lower()
    if not is_shop_domain(domain):
        print(
            f"error: {args.shop!r} is not a myshopify domain (like my-shop.myshopify.com)",
            file=sys.stderr,
        )
        return 2
    asyncio.run(add_shop(settings, domain, args.access_token, args.faq))
    print(f"{domain} registered")
    return 0


if __name__ == "__main__":
    sys.exit(main())
