"""The published OpenAPI description is complete, and fuzzing it finds no 5xx nor stray error."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from sqlalchemy.pool import NullPool
from starlette.routing import Route

from app.config import Settings
from app.db import Database
from app.main import create_app
from app.openapi import DATE, DOCUMENT, document
from app.shopify import ProxyIdentity, sign_proxy_query
from app.tickets import Tickets
from app.validation import EARLIEST_DATE, LATEST_DATE, is_uuid4
from tests.conftest import make_settings
from tests.factories import TEST_API_SECRET, make_shop, new_id, session_token
from tests.servers import LiveServer

# A negative case is refused when it gets one of these: schemathesis' own list, and 413, this
# API's answer to a message or body over its limit.
CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [
                    "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428",
                    "429", "5xx",
                ]
            }
        }
    }
)  # fmt: skip
# As the test servers serve it (their models: the default, offline-faq).
SERVED = document(Settings().ai_models)
SCHEMA = schemathesis.openapi.from_dict(SERVED, config=CONFIG)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
FUZZ_SHOP: dict[str, str] = {}  # the shop of the database being fuzzed


@pytest.fixture(scope="module")
def fuzz_shop(database_url: str) -> Iterator[str]:
    async def create() -> str:
        db = Database(database_url, poolclass=NullPool)
        try:
            return await make_shop(db, faq=[("Do you ship?", "Yes.")])
        finally:
            await db.dispose()

    with ThreadPoolExecutor(1) as pool:
        FUZZ_SHOP["shop"] = pool.submit(asyncio.run, create()).result()
    yield FUZZ_SHOP["shop"]
    FUZZ_SHOP.clear()


@SCHEMA.auth(refresh_interval=None)
class SignedIn:
    """Each case signed as Shopify signs it: the app proxy's signature over whatever query was
    generated, or an App Bridge session token. Schemathesis leaves it off a case whose
    credentials it negates, and its ignored_auth check takes it off to see the 401."""

    def get(self, case: schemathesis.Case, context: Any) -> str:
        return FUZZ_SHOP["shop"]

    def set(self, case: schemathesis.Case, shop: str, context: Any) -> None:
        if case.path.startswith("/proxy/"):
            reserved = ("shop", "timestamp", "signature", "path_prefix", "logged_in_customer_id")
            query = {k: str(v) for k, v in (case.query or {}).items() if k not in reserved}
            query.update(
                shop=shop,
                path_prefix="/apps/chat",
                timestamp=str(int(time.time())),
                logged_in_customer_id="",
            )
            query["signature"] = sign_proxy_query(query, TEST_API_SECRET)
            case.query = query
        elif case.path.startswith("/direct/"):
            # A ticket for the session the case names (any other: its own random one).
            named = (case.body if isinstance(case.body, dict) else {}).get("session_id")
            named = named or (case.query or {}).get("session_id")
            session = named if isinstance(named, str) and is_uuid4(named) else new_id()
            ticket = Tickets(TEST_API_SECRET).issue(ProxyIdentity(shop, None), session).ticket
            case.headers = {**(case.headers or {}), "X-Chat-Ticket": ticket}
        else:
            case.headers = {
                **(case.headers or {}),
                "Authorization": f"Bearer {session_token(shop)}",
            }


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda o: f"{o.method.upper()} {o.path}")
def test_fuzzed_requests_get_no_5xx_and_only_documented_errors(
    operation: Any, mode: schemathesis.GenerationMode, server: LiveServer, fuzz_shop: str
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=30,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: schemathesis.Case) -> None:
        if mode is schemathesis.GenerationMode.POSITIVE and case.query and "cursor" in case.query:
            # A cursor is an opaque token the API hands out: a generated one is rightly refused,
            # which a valid case must not be. A negative case may be refused for it.
            del case.query["cursor"]
        # Every check runs, negative_data_rejection and ignored_auth too: the app proxy's extra
        # query parameters (passed on by design) are ones schemathesis itself lets pass.
        case.call_and_validate(base_url=server.url, timeout=30)

    fuzz()


def test_the_documented_dates_are_the_ones_the_api_reads() -> None:
    pattern = re.compile(DATE["pattern"])
    for day in (EARLIEST_DATE, LATEST_DATE):
        assert pattern.fullmatch(day.isoformat())
    for day in (EARLIEST_DATE - timedelta(days=1), LATEST_DATE + timedelta(days=1)):
        assert not pattern.fullmatch(day.isoformat())


def test_every_api_route_is_documented() -> None:
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:"))
    served = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route) and route.path.startswith(("/proxy/", "/direct/", "/api/"))
        for method in (route.methods or set()) - {"HEAD"}
    }
    documented = {(path, method) for path, item in DOCUMENT["paths"].items() for method in item}
    assert served == documented


async def test_description_is_published(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.1")
    assert new_id()
