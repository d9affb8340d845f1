"""Factories: shops, signed app-proxy requests, and reading server-sent events."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import jwt
import sqlalchemy as sa
from sqlmodel import col

from app import repo
from app.config import Settings
from app.crypto import TokenCipher
from app.db import Database
from app.models import Conversation, Message, Worker, utcnow
from app.shopify import signed_proxy_query

TEST_API_KEY = "test-api-key"
TEST_API_SECRET = "test-secret-0123456789abcdef-0123456789"
UNSET: Any = object()


def new_id() -> str:
    return str(uuid.uuid4())


def new_customer_id() -> str:
    """A logged-in customer of the test's own: a customer's conversation follows them
    across devices (docs/live.md), so two tests must never share one in a shared shop."""
    return str(uuid.uuid4().int % 10**12)


def new_shop_domain() -> str:
    return f"shop-{uuid.uuid4().hex[:10]}.myshopify.com"


def server_cipher() -> TokenCipher:
    """The cipher of the test servers (development: keyed from the test secret)."""
    return TokenCipher.from_settings(
        Settings(app_env="development", shopify_api_secret=TEST_API_SECRET)
    )


def session_token(
    shop: str,
    *,
    lifetime: int = 60,
    secret: str = TEST_API_SECRET,
    audience: str = TEST_API_KEY,
    **claims: Any,
) -> str:
    """A session token as App Bridge issues it inside the Shopify admin."""
    now = int(time.time())
    payload = {
        "iss": f"https://{shop}/admin",
        "dest": f"https://{shop}",
        "aud": audience,
        "sub": "42",
        "exp": now + lifetime,
        "nbf": now - 1,
        "iat": now - 1,
        "jti": new_id(),
        "sid": new_id(),
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


async def make_shop(
    db: Database,
    *,
    domain: str | None = None,
    installed: bool = True,
    faq: list[tuple[str, str]] | None = None,
    system_prompt: str | None = None,
    access_token: str | None = "shpat_test_token",
) -> str:
    domain = domain or new_shop_domain()
    async with db.session() as session:
        shop = await repo.install_shop(
            session, domain=domain, access_token=server_cipher().encrypt(access_token)
        )
        shop.system_prompt = system_prompt
        if faq:
            assert shop.id is not None
            await repo.replace_faq(session, shop_id=shop.id, entries=faq)
    if not installed:
        async with db.session() as session:
            await repo.uninstall_shop(session, domain=domain)
    return domain


async def shop_id_of(db: Database, domain: str) -> int:
    async with db.transaction() as connection:
        shop = await repo.get_shop(connection, domain=domain)
    assert shop is not None and shop.id is not None
    return shop.id


@dataclass
class Event:
    event: str
    data: dict[str, Any]
    id: str | None = None


@dataclass
class Turn:
    status_code: int
    events: list[Event] = field(default_factory=list)
    body: Any = None

    @property
    def text(self) -> str:
        return "".join(e.data["text"] for e in self.events if e.event == "delta")

    def first(self, name: str) -> Event:
        return next(e for e in self.events if e.event == name)

    @property
    def last(self) -> Event:
        return self.events[-1]


async def iter_events(response: httpx.Response) -> AsyncIterator[Event]:
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                yield Event(
                    fields.get("event", "message"), json.loads(fields["data"]), fields.get("id")
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


class ProxyClient:
    """A storefront as Shopify's app proxy presents it: every request signed for one shop."""

    def __init__(
        self,
        base_url: str,
        shop: str,
        *,
        customer_id: str | None = None,
        secret: str = TEST_API_SECRET,
    ) -> None:
        self.shop = shop
        self.customer_id = customer_id
        self.secret = secret
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30)

    @classmethod
    @asynccontextmanager
    async def for_new_shop(
        cls, base_url: str, db: Database, **kwargs: Any
    ) -> AsyncIterator[ProxyClient]:
        shop = await make_shop(db)
        async with cls(base_url, shop, **kwargs) as client:
            yield client

    async def __aenter__(self) -> ProxyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    def as_shop(self, shop: str, customer_id: str | None = None) -> ProxyClient:
        other = ProxyClient(
            str(self.http.base_url), shop, customer_id=customer_id, secret=self.secret
        )
        return other

    def url(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        customer_id: Any = UNSET,
        timestamp: int | None = None,
    ) -> str:
        customer = self.customer_id if customer_id is UNSET else customer_id
        query = signed_proxy_query(
            shop=self.shop,
            secret=self.secret,
            customer_id=customer,
            extra=params,
            timestamp=timestamp,
        )
        return f"{path}?{query}"

    async def get(
        self, path: str, params: Mapping[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = kwargs.pop("headers", None)
        return await self.http.get(self.url(path, params, **kwargs), headers=headers)

    async def post(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        return await self.http.post(self.url(path, **kwargs), json=body)

    @asynccontextmanager
    async def open_turn(
        self,
        session_id: str,
        message: str,
        client_message_id: str | None = None,
        context: Any = None,
        **kwargs: Any,
    ) -> AsyncIterator[httpx.Response]:
        body: dict[str, Any] = {"session_id": session_id, "message": message}
        if client_message_id:
            body["client_message_id"] = client_message_id
        if context is not None:
            body["context"] = context
        async with self.http.stream(
            "POST", self.url("/proxy/messages", **kwargs), json=body
        ) as response:
            yield response

    async def send(
        self,
        session_id: str,
        message: str,
        client_message_id: str | None = None,
        context: Any = None,
        **kwargs: Any,
    ) -> Turn:
        async with self.open_turn(
            session_id, message, client_message_id, context, **kwargs
        ) as response:
            return await read_turn(response)

    async def resume(
        self, session_id: str, message_id: str, last_event_id: str | None = None
    ) -> Turn:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        url = self.url(f"/proxy/messages/{message_id}/stream", {"session_id": session_id})
        async with self.http.stream("GET", url, headers=headers) as response:
            return await read_turn(response)

    async def history(self, session_id: str, **params: str) -> httpx.Response:
        return await self.get("/proxy/history", {"session_id": session_id, **params})


async def read_turn(response: httpx.Response) -> Turn:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return Turn(response.status_code, [e async for e in iter_events(response)])
    await response.aread()
    return Turn(response.status_code, body=response.json())


async def messages_of(db: Database, shop: str, session_id: str) -> list[Message]:
    async with db.session() as session:
        result = await session.execute(
            sa.select(Message)
            .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
            .join(repo.Shop, col(repo.Shop.id) == col(Conversation.shop_id))
            .where(col(repo.Shop.domain) == shop, col(Conversation.session_id) == session_id)
            .order_by(col(Message.id))
        )
        return list(result.scalars())


async def add_messages(db: Database, shop: str, session_id: str, count: int) -> list[str]:
    """`count` more messages in the session's conversation, shopper and assistant in turn, as a
    long conversation would have them (written directly: hundreds of turns take minutes).
    Their public ids, oldest first."""
    async with db.session() as session:
        found = await session.execute(
            sa.select(col(Conversation.id))
            .join(repo.Shop, col(repo.Shop.id) == col(Conversation.shop_id))
            .where(col(repo.Shop.domain) == shop, col(Conversation.session_id) == session_id)
        )
        conversation_id = found.scalar_one()
        added = [
            Message(
                conversation_id=conversation_id,
                role="user" if i % 2 == 0 else "assistant",
                content=f"message {i + 1} of {count}",
            )
            for i in range(count)
        ]
        session.add_all(added)
        await session.flush()
        return [m.public_id for m in sorted(added, key=lambda m: m.id or 0)]


async def streaming_turn(
    db: Database, shop: str, *, worker_id: str | None, client_message_id: str | None = None
) -> str:
    """A new session whose first reply streams for `worker_id`, as that worker began it (and,
    if it is dead, left it); its session id."""
    session_id = new_id()
    async with db.session() as session:
        await repo.open_turn(
            session,
            shop_id=await shop_id_of(db, shop),
            session_id=session_id,
            customer_id=None,
            content="hello?",
            client_message_id=client_message_id,
            worker_id=worker_id,
        )
    return session_id


async def set_heartbeat(db: Database, worker_id: str, *, age: float) -> None:
    """A worker that last beat `age` seconds ago (and, unless it is a real one, never again)."""
    async with db.session() as session:
        await repo.beat(session, worker_id=worker_id)
        await session.execute(
            sa.update(Worker)
            .where(col(Worker.id) == worker_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=age))
        )


class AdminClient:
    """The embedded dashboard's calls for one shop: each with a fresh session token."""

    def __init__(self, base_url: str, shop: str) -> None:
        self.shop = shop
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30)

    async def __aenter__(self) -> AdminClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    def headers(self, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {session_token(self.shop, **claims)}"}

    async def get(self, path: str, **params: str) -> httpx.Response:
        return await self.http.get(path, params=params, headers=self.headers())

    async def put(self, path: str, body: Any) -> httpx.Response:
        return await self.http.put(path, json=body, headers=self.headers())

    async def delete(self, path: str) -> httpx.Response:
        return await self.http.delete(path, headers=self.headers())


class DirectClient:
    """The widget streaming from the app's own host: a ticket from the proxy, then /direct."""

    def __init__(self, proxy: ProxyClient) -> None:
        self.proxy = proxy
        self.http = proxy.http

    async def ticket(self, session_id: str) -> str:
        response = await self.proxy.post("/proxy/sessions/ticket", {"session_id": session_id})
        assert response.status_code == 200, response.text
        return str(response.json()["ticket"])

    async def send(
        self,
        session_id: str,
        message: str,
        client_message_id: str | None = None,
        *,
        ticket: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Turn:
        body: dict[str, Any] = {"session_id": session_id, "message": message}
        if client_message_id:
            body["client_message_id"] = client_message_id
        ticket = ticket if ticket is not None else await self.ticket(session_id)
        sent = {"X-Chat-Ticket": ticket, **(headers or {})}
        async with self.http.stream("POST", "/direct/messages", json=body, headers=sent) as r:
            return await read_turn(r)

    async def resume(
        self,
        session_id: str,
        message_id: str,
        last_event_id: str | None = None,
        *,
        ticket: str | None = None,
        in_url: bool = False,
    ) -> Turn:
        ticket = ticket if ticket is not None else await self.ticket(session_id)
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        params = {"session_id": session_id}
        if in_url:
            params["ticket"] = ticket
        else:
            headers["X-Chat-Ticket"] = ticket
        url = f"/direct/messages/{message_id}/stream"
        async with self.http.stream("GET", url, params=params, headers=headers) as response:
            return await read_turn(response)
