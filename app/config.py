"""Settings: read from the environment once, refused when unsafe for production."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "secret",
        "placeholder",
        "dev-secret",
        "xxx",
        "test",
        "development-api-key",
        "development-secret-not-for-production",
    }
)
DEFAULT_SYSTEM_PROMPT = (
    "You are the friendly shopping assistant of this online store. Answer questions about "
    "products, orders, shipping and returns briefly and accurately. If you do not know "
    "something, say so and suggest contacting the store. Never invent prices, stock or "
    "policies."
)
AI_PROVIDERS = ("offline", "openai", "anthropic")
DEV_CATALOG_IMPORTS = ("pages", "bulk")
# How the widget streams: through the app proxy, switching to the app's own host when the
# proxy is seen to buffer (auto); always from the app's host; never.
DIRECT_STREAMS = ("auto", "always", "never")
DEVELOPMENT_API_KEY = "development-api-key"
DEVELOPMENT_API_SECRET = "development-secret-not-for-production"


class ConfigError(Exception):
    """The environment cannot run the service; the message says what to set."""


@dataclass(frozen=True)
class Settings:
    app_env: str = "production"
    shopify_api_key: str = ""
    shopify_api_secret: str = ""
    shopify_app_url: str = "http://localhost:8000"
    scopes: str = ""
    database_url: str = field(default_factory=lambda: default_database_url())
    ai_provider: str = "offline"
    ai_base_url: str = ""
    ai_api_key: str = ""
    ai_model: str = "offline-faq"
    # Further models a merchant may choose for their shop (they run on the operator's key).
    ai_model_choices: tuple[str, ...] = ()
    ai_timeout: float = 30.0
    ai_max_tokens: int = 1024
    ai_context_chars: int = 12_000
    # Rounds of tool calls (catalog and policy searches) the model may make in one turn.
    ai_tool_rounds: int = 3
    offline_word_delay: float = 0.03
    stream_flush_interval: float = 0.2
    stale_stream_after: float = 60.0
    worker_dead_after: float = 10.0
    shutdown_grace: float = 10.0
    token_encryption_key: str = ""
    shopify_admin_base_url: str = ""
    shopify_api_version: str = "2025-10"
    abandon_after_minutes: float = 30.0
    sweep_interval: float = 60.0
    # Live conversations (docs/live.md): how long a live stream lasts before the widget
    # reconnects, and how many one session may hold.
    live_stream_seconds: float = 240.0
    live_streams_per_session: int = 4
    rate_limit_session: int = 20
    rate_limit_ip: int = 60
    rate_limit_shop: int = 1200
    proxy_hops: int = 1
    # The same for /direct/..., which the shopper's browser reaches without Shopify's proxy:
    # None is one entry fewer than proxy_hops.
    direct_proxy_hops: int | None = None
    direct_streams: str = "auto"
    # Not read from the environment: the widget's contract says 600; tests shorten it.
    direct_ticket_lifetime: int = 600
    # The local storefront's emulated app proxy (development only): hold whole responses
    # as a buffering proxy would, and cut requests after this many seconds (0: never).
    dev_proxy_buffering: bool = False
    dev_proxy_cut_after: float = 0.0
    redis_url: str = ""
    log_level: str = "info"
    log_format: str = "json"
    # Development only: how the demo shop's catalog is imported at start (pages or bulk).
    dev_catalog_import: str = "pages"

    @property
    def development(self) -> bool:
        return self.app_env == "development"

    @property
    def ai_models(self) -> tuple[str, ...]:
        """The models a merchant may choose: the default first, then AI_MODELS."""
        listed = (self.ai_model, *self.ai_model_choices)
        return tuple(dict.fromkeys(m for m in listed if m))

    @property
    def direct_hops(self) -> int:
        if self.direct_proxy_hops is not None:
            return self.direct_proxy_hops
        return max(0, self.proxy_hops - 1)

    def direct_streams_of(self, shop_choice: str | None) -> str:
        """The mode a shop's widget runs in: the merchant's choice, else the operator's."""
        return shop_choice if shop_choice in DIRECT_STREAMS else self.direct_streams

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def default_database_url() -> str:
    path = Path("data") / "chat.sqlite3"
    return f"sqlite+aiosqlite:///{path}"


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower() or choices[0]
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")


def _app_url(env: Mapping[str, str]) -> str:
    """SHOPIFY_APP_URL; under `shopify app dev` the CLI names its tunnel APP_URL and HOST."""
    url = env.get("SHOPIFY_APP_URL") or env.get("APP_URL") or env.get("HOST") or ""
    if url and "://" not in url:
        url = "https://" + url  # HOST came without a scheme in older CLI versions
    return (url or "http://localhost:8000").rstrip("/")


def _normalise_database_url(url: str) -> str:
    # Hosting platforms hand out postgres:// URLs; we always talk asyncpg.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    app_env = env.get("APP_ENV", "production").strip() or "production"
    if app_env not in ("production", "development"):
        raise ConfigError(f"APP_ENV must be 'production' or 'development', got {app_env!r}")
    ai_api_key = env.get("AI_API_KEY", "")
    provider = env.get("AI_PROVIDER", "").strip().lower() or ("openai" if ai_api_key else "offline")
    if provider not in AI_PROVIDERS:
        raise ConfigError(f"AI_PROVIDER must be one of {', '.join(AI_PROVIDERS)}, got {provider!r}")
    default_base = {
        "openai": "https://api.openai.com/v1",
        "anthropic": "https://api.anthropic.com",
    }.get(provider, "")
    default_model = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-latest"}.get(
        provider, "offline-faq"
    )
    api_key = env.get("SHOPIFY_API_KEY", "")
    api_secret = env.get("SHOPIFY_API_SECRET", "")
    if app_env == "development":
        # Development signs its own proxy requests (the local storefront), so it needs a secret.
        api_key = api_key or DEVELOPMENT_API_KEY
        api_secret = api_secret or DEVELOPMENT_API_SECRET
    settings = Settings(
        app_env=app_env,
        shopify_api_key=api_key,
        shopify_api_secret=api_secret,
        shopify_app_url=_app_url(env),
        scopes=env.get("SCOPES", ""),
        database_url=_normalise_database_url(env.get("DATABASE_URL") or default_database_url()),
        ai_provider=provider,
        ai_base_url=(env.get("AI_BASE_URL") or default_base).rstrip("/"),
        ai_api_key=ai_api_key,
        ai_model=env.get("AI_MODEL") or default_model,
        ai_model_choices=tuple(
            dict.fromkeys(m.strip() for m in env.get("AI_MODELS", "").split(",") if m.strip())
        ),
        ai_timeout=_float(env, "AI_TIMEOUT", 30.0),
        ai_max_tokens=int(_float(env, "AI_MAX_TOKENS", 1024)),
        ai_context_chars=int(_float(env, "AI_CONTEXT_CHARS", 12_000)),
        ai_tool_rounds=max(0, min(10, int(_float(env, "AI_TOOL_ROUNDS", 3)))),
        offline_word_delay=_float(env, "AI_OFFLINE_WORD_DELAY", 0.03),
        stream_flush_interval=_float(env, "STREAM_FLUSH_INTERVAL", 0.2),
        stale_stream_after=_float(env, "STALE_STREAM_AFTER", 60.0),
        worker_dead_after=_float(env, "WORKER_DEAD_AFTER", 10.0),
        shutdown_grace=_float(env, "SHUTDOWN_GRACE", 10.0),
        token_encryption_key=env.get("TOKEN_ENCRYPTION_KEY", ""),
        shopify_admin_base_url=env.get("SHOPIFY_ADMIN_BASE_URL", "").rstrip("/"),
        shopify_api_version=env.get("SHOPIFY_API_VERSION", "2025-10"),
        abandon_after_minutes=_float(env, "ABANDON_AFTER_MINUTES", 30.0),
        sweep_interval=_float(env, "SWEEP_INTERVAL", 60.0),
        live_stream_seconds=max(1.0, _float(env, "LIVE_STREAM_SECONDS", 240.0)),
        live_streams_per_session=max(1, int(_float(env, "LIVE_STREAMS_PER_SESSION", 4))),
        rate_limit_session=int(_float(env, "RATE_LIMIT_SESSION", 20)),
        rate_limit_ip=int(_float(env, "RATE_LIMIT_IP", 60)),
        rate_limit_shop=int(_float(env, "RATE_LIMIT_SHOP", 1200)),
        proxy_hops=int(_float(env, "PROXY_HOPS", 1)),
        direct_proxy_hops=(
            int(_float(env, "DIRECT_PROXY_HOPS", 0)) if env.get("DIRECT_PROXY_HOPS") else None
        ),
        direct_streams=_choice(env, "DIRECT_STREAMS", DIRECT_STREAMS),
        dev_proxy_buffering=_flag(env, "DEV_PROXY_BUFFERING"),
        dev_proxy_cut_after=max(0.0, _float(env, "DEV_PROXY_CUT_AFTER", 0.0)),
        redis_url=env.get("REDIS_URL", ""),
        log_level=env.get("LOG_LEVEL", "info"),
        log_format=env.get("LOG_FORMAT") or ("text" if app_env == "development" else "json"),
        dev_catalog_import=env.get("DEV_CATALOG_IMPORT", "").strip().lower() or "pages",
    )
    if settings.dev_catalog_import not in DEV_CATALOG_IMPORTS:
        raise ConfigError(
            f"DEV_CATALOG_IMPORT must be one of {', '.join(DEV_CATALOG_IMPORTS)}, "
            f"got {settings.dev_catalog_import!r}"
        )
    if settings.worker_dead_after <= 0:
        raise ConfigError("WORKER_DEAD_AFTER must be a positive number of seconds")
    check_settings(settings)
    return settings


def check_settings(settings: Settings) -> None:
    """Refuse to run production with secrets that are missing or obviously placeholders."""
    if settings.development:
        return
    problems = []
    if settings.shopify_api_key.strip().lower() in PLACEHOLDER_SECRETS:
        problems.append("SHOPIFY_API_KEY is missing or a placeholder")
    secret = settings.shopify_api_secret.strip()
    if secret.lower() in PLACEHOLDER_SECRETS or len(secret) < 16:
        problems.append(
            "SHOPIFY_API_SECRET is missing, a placeholder or shorter than 16 characters"
        )
    if (
        settings.ai_provider != "offline"
        and not settings.ai_api_key
        and settings.ai_base_url
        in (
            "https://api.openai.com/v1",
            "https://api.anthropic.com",
        )
    ):
        problems.append(f"AI_API_KEY is required for AI_PROVIDER={settings.ai_provider}")
    keys = [key.strip() for key in settings.token_encryption_key.split(",") if key.strip()]
    if not keys or not all(_is_fernet_key(key) for key in keys):
        problems.append(
            "TOKEN_ENCRYPTION_KEY is missing or not a Fernet key, or a list of them newest "
            "first, separated by commas (make one with: python -c "
            "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
        )
    app_url = urlsplit(settings.shopify_app_url)
    if app_url.scheme != "https" or (app_url.hostname or "") in _LOCAL_HOSTS:
        problems.append(
            "SHOPIFY_APP_URL must be the service's public https URL (Shopify reaches it), "
            f"not {settings.shopify_app_url!r}"
        )
    if settings.shopify_admin_base_url:
        problems.append("SHOPIFY_ADMIN_BASE_URL is for tests and development only")
    if problems:
        raise ConfigError("refusing to start in production: " + "; ".join(problems))


_LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1", "0.0.0.0")


def _is_fernet_key(value: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(value.encode())) == 32
    except (ValueError, binascii.Error):
        return False
