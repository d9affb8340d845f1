"""Assembles the ASGI app: routes, middleware, error handlers and the lifespan."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app import privacy
from app.ai import make_provider
from app.ai.offline import OfflineProvider
from app.config import Settings, load_settings
from app.crypto import TokenCipher
from app.db import Database
from app.demo import DEMO_SHOP, ensure_demo_shop
from app.errors import exception_handlers
from app.observability import RequestContext, configure_logging
from app.openapi import openapi
from app.ratelimit import Limits, RateLimiter
from app.replies import Replies
from app.routes import admin, auth, proxy, webhooks
from app.routes.dashboard import dashboard_routes
from app.shopify import Shopify
from app.state import AppState
from app.sweeper import Sweeper


async def healthz(_request: Request) -> Response:
    """Alive: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready: the database answers too. Redis is reported but not required: while it is
    away, the database counts the rate limits."""
    state = request.app.state.chat
    checks = {"database": "ok"}
    redis = await state.limiter.redis_reachable()
    if redis is not None:
        checks["redis"] = "ok" if redis else "unreachable"
    try:
        async with state.db.session() as session:
            await session.execute(sa.text("SELECT 1"))
    except Exception:
        checks["database"] = "unreachable"
        return JSONResponse({"status": "unavailable", "checks": checks}, status_code=503)
    return JSONResponse({"status": "ready", "checks": checks})


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    configure_logging(settings.log_level, json_logs=settings.log_format == "json")
    tokens = TokenCipher.from_settings(settings)  # fails at start, not at the first install

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = Database(settings.database_url)
        provider = make_provider(settings)
        replies = Replies(
            db=db,
            provider=provider,
            flush_interval=settings.stream_flush_interval,
            stale_after=settings.stale_stream_after,
            dead_after=settings.worker_dead_after,
            grace=settings.shutdown_grace,
        )
        shopify = Shopify(
            api_key=settings.shopify_api_key,
            api_secret=settings.shopify_api_secret,
            scopes=settings.scopes,
            app_url=settings.shopify_app_url,
            api_version=settings.shopify_api_version,
            admin_base_url=settings.shopify_admin_base_url,
        )
        sweeper = Sweeper(
            db=db,
            abandon_after_minutes=settings.abandon_after_minutes,
            interval=settings.sweep_interval,
        )
        limiter = RateLimiter(
            Limits(
                per_session=settings.rate_limit_session,
                per_ip=settings.rate_limit_ip,
                per_shop=settings.rate_limit_shop,
                proxy_hops=settings.proxy_hops,
            ),
            redis_url=settings.redis_url,
        )
        state = app.state.chat = AppState(
            settings=settings,
            db=db,
            provider=provider,
            replies=replies,
            shopify=shopify,
            offline=OfflineProvider(word_delay=settings.offline_word_delay),
            sweeper=sweeper,
            tokens=tokens,
            limiter=limiter,
        )
        sweeper.apply_webhook = functools.partial(privacy.process, state)
        if settings.development:
            try:
                await ensure_demo_shop(db)
            except Exception:
                logging.getLogger("app").exception("could not register the demo shop")
        await replies.start()
        sweeper.start()
        try:
            yield
        finally:
            await sweeper.close()
            await replies.close()
            await provider.aclose()
            await shopify.aclose()
            await limiter.aclose()
            await db.dispose()

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *proxy.routes,
        *webhooks.routes,
        *auth.routes,
        *admin.routes,
        *dashboard_routes(settings.development),
    ]
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
        middleware=[Middleware(RequestContext, production=not settings.development)],
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
