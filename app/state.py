"""What the running app holds: settings, database, Shopify wrapper, AI provider, live replies,
the bus."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from app.ai import Provider
from app.config import Settings
from app.conversations.presence import Presence
from app.crypto import TokenCipher
from app.db import Database
from app.live.bus import Bus
from app.ratelimit import RateLimiter
from app.replies import Replies
from app.shopify import Shopify
from app.sweeper import Sweeper
from app.tickets import Tickets


@dataclass
class AppState:
    settings: Settings
    db: Database
    shopify: Shopify
    provider: Provider
    replies: Replies
    offline: Provider
    sweeper: Sweeper
    limiter: RateLimiter
    tokens: TokenCipher
    tickets: Tickets
    bus: Bus
    presence: Presence


def state_of(request: Request) -> AppState:
    """The running app's state, which app/main.py puts on the app."""
    state: AppState = request.app.state.chat
    return state
