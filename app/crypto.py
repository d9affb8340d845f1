"""Access and refresh tokens encrypted at rest (Fernet), keyed from the environment.

TOKEN_ENCRYPTION_KEY may hold several keys, newest first, separated by commas: tokens are
encrypted with the first and read with any, so a key can be rotated without a migration
(add the new key in front, let `reencrypt` or the next refresh rewrite the tokens, then
drop the old one).
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.config import ConfigError, Settings


def split_keys(value: str) -> list[str]:
    return [key.strip() for key in value.split(",") if key.strip()]


class TokenCipher:
    def __init__(self, keys: str | list[str]) -> None:
        keys = split_keys(keys) if isinstance(keys, str) else keys
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenCipher:
        if settings.token_encryption_key:
            return cls(settings.token_encryption_key)
        if not settings.development:
            raise ConfigError("TOKEN_ENCRYPTION_KEY is required in production")
        # Development only: a stable key derived from the (development) app secret.
        digest = hashlib.sha256(b"token-key:" + settings.shopify_api_secret.encode()).digest()
        return cls(base64.urlsafe_b64encode(digest).decode())

    def encrypt(self, value: str | None) -> str | None:
        return None if value is None else self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, value: str | None) -> str | None:
        """The token, or None when there is none or no key we hold can read it (a key
        dropped too early: the shop then recovers by token exchange, see app/merchants.py)."""
        if value is None:
            return None
        try:
            return self._fernet.decrypt(value.encode()).decode()
        except InvalidToken:
            return None

    def reencrypt(self, value: str | None) -> str | None:
        """The same token under the newest key (None if no key reads it)."""
        if value is None:
            return None
        try:
            return self._fernet.rotate(value.encode()).decode()
        except InvalidToken:
            return None
