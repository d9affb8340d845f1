"""Assembles the ASGI app: routes, middleware, error handlers and the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app.ai import make_provider
from app.config import Settings, load_settings
from app.db import Database
from app.demo import DEMO_SHOP, ensure_demo_shop
from app.errors import exception_handlers
from app.replies import Replies
from app.routes import proxy
from app.shopify import Shopify
from app.state import AppState


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    logging.basicConfig(level=settings.log_level.upper())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = Database(settings.database_url)
        provider = make_provider(settings)
        replies = Replies(
            db=db,
            provider=provider,
            flush_interval=settings.stream_flush_interval,
            stale_after=settings.stale_stream_after,
            grace=settings.shutdown_grace,
        )
        app.state.chat = AppState(
            settings=settings,
            db=db,
            provider=provider,
            replies=replies,
            shopify=Shopify(
                api_key=settings.shopify_api_key, api_secret=settings.shopify_api_secret
            ),
        )
        if settings.development:
            try:
                await ensure_demo_shop(db)
            except Exception:
                logging.getLogger("app").exception("could not register the demo shop")
        await replies.start()
        try:
            yield
        finally:
            await replies.close()
            await provider.aclose()
            await db.dispose()

    routes: list[BaseRoute] = [Route("/healthz", healthz, methods=["GET"]), *proxy.routes]
    emulator = None
    if settings.development:
        from app.routes.storefront import storefront_routes
        from app.storefront import AppProxyEmulator

        emulator = AppProxyEmulator(shop=DEMO_SHOP, secret=settings.shopify_api_secret)
        routes += storefront_routes(emulator)
    application = Starlette(
        debug=False,
        routes=routes,
        exception_handlers=exception_handlers,
        lifespan=lifespan,
    )
    if emulator is not None:
        emulator.target = application
    return application


def __getattr__(name: str) -> Starlette:
    # `app.main:app` is built on first use, so importing the module never reads the environment.
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)
