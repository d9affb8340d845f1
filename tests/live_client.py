"""A shopper's live stream (GET /proxy/sessions/events) read in the background, and the team's
side of the admin API, for the live conversation tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from tests.factories import Event, ProxyClient, iter_events, session_token


class LiveStream:
    """Reads one session's live stream into `events` until closed or stopped."""

    def __init__(
        self, client: ProxyClient, session_id: str, last_event_id: str | None = None
    ) -> None:
        self.client = client
        self.session_id = session_id
        self.last_event_id = last_event_id
        self.events: list[Event] = []
        self.status: int | None = None
        self.ended = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveStream:
        self._task = asyncio.create_task(self._read())
        await self.wait_for(lambda e: e.event == "state")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _read(self) -> None:
        headers = {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}
        url = self.client.url("/proxy/sessions/events", {"session_id": self.session_id})
        try:
            async with self.client.http.stream("GET", url, headers=headers) as response:
                self.status = response.status_code
                if response.status_code != 200:
                    await response.aread()
                    return
                async for event in iter_events(response):
                    self.events.append(event)
                    self._changed.set()
        finally:
            self.ended.set()
            self._changed.set()

    @property
    def cursor(self) -> str | None:
        ids = [e.id for e in self.events if e.id]
        return ids[-1] if ids else None

    def of(self, name: str) -> list[Event]:
        return [e for e in self.events if e.event == name]

    async def wait_for(self, match: Callable[[Event], bool], timeout: float = 10.0) -> Event:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if match(event):
                    return event
            seen = len(self.events)
            if self.ended.is_set():
                raise AssertionError(f"the stream ended first: {[e.event for e in self.events]}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"not seen in {timeout}s: {self.events}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass


class TeamClient:
    """A team member in the dashboard: the admin API under their session token's `sub`."""

    def __init__(self, base_url: str, shop: str, sub: str = "42") -> None:
        self.shop = shop
        self.sub = sub
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30)

    async def __aenter__(self) -> TeamClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {session_token(self.shop, sub=self.sub)}"}

    async def post(self, path: str, body: Any = None) -> httpx.Response:
        return await self.http.post(path, json=body, headers=self.headers())

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(path, headers=self.headers())

    async def act(self, conversation: str, action: str, body: Any = None) -> httpx.Response:
        return await self.post(f"/api/admin/conversations/{conversation}/{action}", body)

    async def name(self, display_name: str) -> None:
        response = await self.http.put(
            "/api/admin/me", json={"display_name": display_name}, headers=self.headers()
        )
        assert response.status_code == 200, response.text

    @asynccontextmanager
    async def inbox_open(self) -> AsyncIterator[None]:
        """The dashboard's inbox open (its event stream: the team member is online) for the
        block; its first event, `ready`, comes once they are written as seen."""
        url = "/api/admin/inbox/events"
        async with self.http.stream("GET", url, headers=self.headers()) as response:
            assert response.status_code == 200
            first = await anext(iter_events(response))
            assert first.event == "ready", first
            yield
