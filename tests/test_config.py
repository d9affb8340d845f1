"""Settings: production refuses missing or placeholder secrets and says which."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.config import ConfigError, load_settings

GOOD = {
    "SHOPIFY_API_KEY": "a1b2c3d4e5",
    "SHOPIFY_API_SECRET": "shpss_0123456789abcdef0123",
    "TOKEN_ENCRYPTION_KEY": "q3Xv8m2X4c0yq4cQxGmK0n5W3hS6uQ1e9Zr7tYbNfVw=",
    "SHOPIFY_APP_URL": "https://chat.example.com",
}


def test_production_is_the_default_and_accepts_real_secrets() -> None:
    settings = load_settings(GOOD)
    assert settings.app_env == "production"
    assert settings.ai_provider == "offline"
    assert settings.database_url.startswith("sqlite+aiosqlite:///")


@pytest.mark.parametrize(
    "env,named",
    [
        ({"SHOPIFY_API_KEY": "a1b2c3d4e5"}, "SHOPIFY_API_SECRET"),
        ({**GOOD, "SHOPIFY_API_SECRET": "changeme"}, "SHOPIFY_API_SECRET"),
        ({**GOOD, "SHOPIFY_API_SECRET": "short"}, "SHOPIFY_API_SECRET"),
        ({"SHOPIFY_API_SECRET": GOOD["SHOPIFY_API_SECRET"]}, "SHOPIFY_API_KEY"),
        ({**GOOD, "AI_PROVIDER": "anthropic"}, "AI_API_KEY"),
        ({**GOOD, "TOKEN_ENCRYPTION_KEY": ""}, "TOKEN_ENCRYPTION_KEY"),
        ({**GOOD, "TOKEN_ENCRYPTION_KEY": "not-a-key"}, "TOKEN_ENCRYPTION_KEY"),
        ({**GOOD, "SHOPIFY_ADMIN_BASE_URL": "http://127.0.0.1:9"}, "SHOPIFY_ADMIN_BASE_URL"),
        ({**GOOD, "SHOPIFY_APP_URL": "http://chat.example.com"}, "SHOPIFY_APP_URL"),
        ({**GOOD, "SHOPIFY_APP_URL": "https://localhost:8000"}, "SHOPIFY_APP_URL"),
        ({**GOOD, "SHOPIFY_APP_URL": "https://127.0.0.1"}, "SHOPIFY_APP_URL"),
        ({k: v for k, v in GOOD.items() if k != "SHOPIFY_APP_URL"}, "SHOPIFY_APP_URL"),
        (
            {**GOOD, "TOKEN_ENCRYPTION_KEY": GOOD["TOKEN_ENCRYPTION_KEY"] + ",not-a-key"},
            "TOKEN_ENCRYPTION_KEY",
        ),
    ],
)
def test_production_refuses_missing_or_placeholder_secrets(env: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(env)


def test_several_encryption_keys_newest_first_are_accepted() -> None:
    from cryptography.fernet import Fernet

    from app.crypto import TokenCipher

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings = load_settings({**GOOD, "TOKEN_ENCRYPTION_KEY": f"{new}, {old}"})
    written_before = TokenCipher(old).encrypt("shpat_1")
    cipher = TokenCipher.from_settings(settings)
    assert cipher.decrypt(written_before) == "shpat_1"
    assert TokenCipher(new).decrypt(cipher.encrypt("shpat_2")) == "shpat_2", "newest writes"
    assert TokenCipher(new).decrypt(cipher.reencrypt(written_before)) == "shpat_1"


def test_development_runs_without_secrets() -> None:
    settings = load_settings({"APP_ENV": "development"})
    assert settings.development
    assert settings.shopify_api_secret
    assert settings.dev_catalog_import == "pages"
    bulk = load_settings({"APP_ENV": "development", "DEV_CATALOG_IMPORT": "Bulk"})
    assert bulk.dev_catalog_import == "bulk"


@pytest.mark.parametrize(
    "env,named",
    [
        ({"APP_ENV": "staging"}, "APP_ENV"),
        ({"APP_ENV": "development", "AI_PROVIDER": "gpt"}, "AI_PROVIDER"),
        ({"APP_ENV": "development", "AI_TIMEOUT": "soon"}, "AI_TIMEOUT"),
        ({"APP_ENV": "development", "DEV_CATALOG_IMPORT": "seed"}, "DEV_CATALOG_IMPORT"),
    ],
)
def test_bad_values_are_named(env: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(env)


def test_api_key_selects_openai_and_urls_are_normalised() -> None:
    settings = load_settings(
        {**GOOD, "AI_API_KEY": "sk-1", "DATABASE_URL": "postgres://u:p@db:5432/chat"}
    )
    assert settings.ai_provider == "openai"
    assert settings.ai_base_url == "https://api.openai.com/v1"
    assert settings.database_url == "postgresql+asyncpg://u:p@db:5432/chat"


def test_the_asgi_app_refuses_to_start_with_a_placeholder_secret() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import app.main; app.main.app"],
        env={"SHOPIFY_API_KEY": "k1234", "SHOPIFY_API_SECRET": "secret", "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SHOPIFY_API_SECRET" in result.stderr


class _Recording(dict[str, str]):
    """An environment that remembers every name asked of it."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: object = None):  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return super().__contains__(key)


def test_every_setting_read_from_the_environment_is_documented() -> None:
    env = _Recording({"APP_ENV": "development"})
    load_settings(env)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert len(env.asked) > 20, "the settings were read through this environment"
    undocumented = sorted(name for name in env.asked if f"`{name}`" not in readme)
    assert not undocumented, f"not in the README's configuration table: {undocumented}"
