"""What the running app holds: settings, database, Shopify wrapper, AI provider, live replies."""

from __future__ import annotations

from dataclasses import dataclass

from app.ai import Provider
from app.config import Settings
from app.crypto import TokenCipher
from app.db import Database
from app.ratelimit import RateLimiter
from app.replies import Replies
from app.shopify import Shopify
from app.sweeper import Sweeper


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
