"""Tickets for a direct connection: what the app proxy verified (shop, customer) and the one
chat session it was asked for, signed so that the shopper's browser can stream from the app's
own host without Shopify's proxy in between (see README, "Direct streams")."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from app.errors import Unauthorized
from app.shopify import ProxyIdentity, is_shop_domain
from app.validation import is_customer_id, is_uuid4

TICKET_LIFETIME = 600  # seconds
# What the ticket's key is derived with: never the raw secret, which signs other things
# (the development login, OAuth's state), so that nothing signed for them passes as a ticket.
KEY_CONTEXT = b"chat-direct-ticket-v1"
SALT = "chat-direct-ticket"
# A ticket is about 200 characters; anything much longer is not one, and is not decoded.
MAX_LENGTH = 1024


@dataclass(frozen=True)
class Ticket:
    identity: ProxyIdentity  # the shop and customer, as the signed proxy query gave them
    session_id: str


@dataclass(frozen=True)
class Issued:
    ticket: str
    expires_at: datetime


def ticket_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), KEY_CONTEXT, hashlib.sha256).digest()


def _invalid() -> Unauthorized:
    return Unauthorized("ticket_invalid", "The chat ticket is not valid; fetch a new one.")


class Tickets:
    """Issues and reads tickets. `clock` (seconds since the epoch) lets tests age them."""

    def __init__(
        self,
        secret: str,
        *,
        lifetime: int = TICKET_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lifetime = lifetime
        self.clock = clock

        class Signer(TimestampSigner):
            def get_timestamp(self) -> int:  # itsdangerous's clock, made ours
                return int(clock())

        self._serializer = URLSafeTimedSerializer(ticket_key(secret), salt=SALT, signer=Signer)

    def issue(self, identity: ProxyIdentity, session_id: str) -> Issued:
        payload = {"shop": identity.shop, "session": session_id, "customer": identity.customer_id}
        now = int(self.clock())
        return Issued(
            ticket=self._serializer.dumps(payload),
            expires_at=datetime.fromtimestamp(now + self.lifetime, UTC),
        )

    def read(self, raw: str | None) -> Ticket:
        if raw is None or raw == "":
            raise Unauthorized(
                "ticket_missing", "A chat ticket is required (header X-Chat-Ticket)."
            )
        if len(raw) > MAX_LENGTH or not raw.isascii():
            raise _invalid()
        try:
            payload: Any = self._serializer.loads(raw, max_age=self.lifetime)
        except SignatureExpired as exc:
            raise Unauthorized(
                "ticket_expired", "The chat ticket has expired; fetch a new one."
            ) from exc
        except BadData as exc:
            raise _invalid() from exc
        # Signed by us, so well-formed; checked all the same, as a key may leak or a later
        # version may write other fields.
        if not isinstance(payload, dict):
            raise _invalid()
        shop, session, customer = (payload.get(k) for k in ("shop", "session", "customer"))
        if not (isinstance(shop, str) and is_shop_domain(shop)):
            raise _invalid()
        if not (isinstance(session, str) and is_uuid4(session)):
            raise _invalid()
        if customer is not None and not (isinstance(customer, str) and is_customer_id(customer)):
            raise _invalid()
        return Ticket(ProxyIdentity(shop=shop, customer_id=customer), session)
