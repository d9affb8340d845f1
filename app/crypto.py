"""Access and refresh tokens encrypted at rest (Fernet), keyed from the environment."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

from app.config import ConfigError, Settings


class TokenCipher:
    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

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
        if value is None:
            return None
        try:
            return self._fernet.decrypt(value.encode()).decode()
        except InvalidToken:
            return None
