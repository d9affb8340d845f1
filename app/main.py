"""Assembles the ASGI app: routes, middleware, error handlers and the lifespan."""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

from app import deliveries
from app.ai import make_provider
from app.ai.offline import OfflineProvider
from app.catalog import sync as catalog_sync
from app.config import Settings, load_settings
from app.conversations import notices
from app.conversations.presence import Presence
from app.crypto import TokenCipher
from app.db import Database
from app.dev.demo import DEMO_SHOP, demo_admin_urls, ensure_demo_shop, start_demo_import
from app.errors import exception_handlers
from app.live.backends import make_bus
from app.observability import BODY_SEND, RequestContext, configure_logging
from app.openapi import openapi
from app.ratelimit import Limits, RateLimiter
from app.replies import Replies
from app.routes import admin, auth, catalog, direct, inbox, live, proxy, shop_settings, webhooks
from app.routes.dashboard import dashboard_routes
from app.shopify import Shopify
from app.state import AppState
from app.sweeper import Sweeper
from app.tickets import Tickets

if TYPE_CHECKING:
    from app.dev.storefront import AppProxyEmulator


async def healthz(_request: Request) -> Response:
    """Alive: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready: the database answers too. Redis is reported but not required: while it is
    away, the database counts the rate limits. The bus is reported beside the checks: while
    it reconnects, its subscribers are told to read the database again once it is back."""
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
        return JSONResponse(
            {"status": "unavailable", "checks": checks, "bus": state.bus.status()},
            status_code=503,
        )
    return JSONResponse({"status": "ready", "checks": checks, "bus": state.bus.status()})


def build_state(app: Starlette, settings: Settings, tokens: TokenCipher) -> AppState:
    """Everything the running app holds, built at its start (app/state.py)."""
    db = Database(settings.database_url)
    provider = make_provider(settings)
    shopify = Shopify(
        api_key=settings.shopify_api_key,
        api_secret=settings.shopify_api_secret,
        scopes=settings.scopes,
        app_url=settings.shopify_app_url,
        api_version=settings.shopify_api_version,
        admin_base_url=settings.shopify_admin_base_url,
        # Development: the demo shop's admin is the fake mounted on this app, reached
        # in-process; production has no such shop and no such route.
        admin_urls=demo_admin_urls(settings),
        local_app=app if settings.development else None,
    )
    limits = Limits(
        per_session=settings.rate_limit_session,
        per_ip=settings.rate_limit_ip,
        per_shop=settings.rate_limit_shop,
        proxy_hops=settings.proxy_hops,
        direct_hops=settings.direct_hops,
    )
    state = AppState(
        settings=settings,
        db=db,
        provider=provider,
        replies=Replies(
            db=db,
            provider=provider,
            flush_interval=settings.stream_flush_interval,
            stale_after=settings.stale_stream_after,
            dead_after=settings.worker_dead_after,
            grace=settings.shutdown_grace,
        ),
        shopify=shopify,
        offline=OfflineProvider(word_delay=settings.offline_word_delay),
        sweeper=Sweeper(
            db=db,
            abandon_after_minutes=settings.abandon_after_minutes,
            interval=settings.sweep_interval,
        ),
        tokens=tokens,
        limiter=RateLimiter(limits, redis_url=settings.redis_url),
        tickets=Tickets(settings.shopify_api_secret, lifetime=settings.direct_ticket_lifetime),
        bus=make_bus(settings, db),
        presence=Presence(db),
    )
    state.sweeper.apply_webhook = functools.partial(deliveries.process, state)
    state.sweeper.run_import = functools.partial(catalog_sync.run_import, state)
    state.sweeper.announce = functools.partial(notices.abandoned, state.bus)
    return state


def lifespan_of(
    settings: Settings, tokens: TokenCipher
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = app.state.chat = build_state(app, settings, tokens)
        if settings.development:
            try:
                await ensure_demo_shop(state.db, tokens)
            except Exception:
                logging.getLogger("app").exception("could not register the demo shop")
        await state.bus.start()
        await state.replies.start()
        if settings.development:
            # The demo catalog arrives through the real import, from the fake admin; before
            # the sweeper starts, which would otherwise find the same import due and race it.
            await start_demo_import(state)
        state.sweeper.start()
        state.presence.start()
        # What startup built lives as long as the worker: out of the collector's sight, so a
        # full collection walks only what requests made (with a thousand open live streams
        # one took ~200 ms and held every stream's next event; bench/ 12).
        if not settings.development:  # (the tests start many apps in one process)
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            await state.sweeper.close()
            await state.presence.close()
            await state.replies.close()
            await state.bus.close()
            await state.provider.aclose()
            await state.shopify.aclose()
            await state.limiter.aclose()
            await state.db.dispose()

    return lifespan


def _development_routes(settings: Settings) -> tuple[list[BaseRoute], AppProxyEmulator]:
    """The local storefront, its emulated app proxy, and the demo shop's fake admin."""
    from app.dev.demo import DEMO_ACCESS_TOKEN
    from app.dev.fake_admin import DEV_ADMIN_PATH, demo_admin
    from app.dev.storefront import AppProxyEmulator
    from app.dev.storefront_routes import storefront_routes

    emulator = AppProxyEmulator(
        shop=DEMO_SHOP,
        secret=settings.shopify_api_secret,
        buffering=settings.dev_proxy_buffering,
        cut_after=settings.dev_proxy_cut_after,
    )
    # The demo shop's Admin API; its catalog links to the local storefront at this URL.
    fake_admin = demo_admin(
        shop=DEMO_SHOP, token=DEMO_ACCESS_TOKEN, app_url=settings.shopify_app_url
    )
    return [*storefront_routes(emulator), Mount(DEV_ADMIN_PATH, app=fake_admin)], emulator


class App(Starlette):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A long response writes its body straight to the server once its headers are out:
        # the middleware between here and the route (Starlette's own outermost) only look at
        # http.response.start, and a thousand streams sending a token each through six
        # wrappers cost a tenth of the worker (bench/). app/streaming.py's EventStream does.
        scope[BODY_SEND] = send
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    configure_logging(settings.log_level, json_logs=settings.log_format == "json")
    tokens = TokenCipher.from_settings(settings)  # fails at start, not at the first install
    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *proxy.routes,
        *live.routes,
        *direct.routes,
        *webhooks.routes,
        *auth.routes,
        *admin.routes,
        *inbox.routes,
        *shop_settings.routes,
        *catalog.routes,
        *dashboard_routes(settings.development),
    ]
    emulator = None
    if settings.development:
        more, emulator = _development_routes(settings)
        routes += more
    application = App(
        debug=False,
        routes=routes,
        exception_handlers=exception_handlers,
        middleware=[
            Middleware(RequestContext, production=not settings.development),
            Middleware(direct.DirectCors),
        ],
        lifespan=lifespan_of(settings, tokens),
    )
    if emulator is not None:
        emulator.target = application
        application.state.proxy_emulator = emulator  # its switches, for tests to turn
    return application


def __getattr__(name: str) -> Starlette:
    # `app.main:app` is built on first use, so importing the module never reads the environment.
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)
