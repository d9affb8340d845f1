"""AI providers behind one interface, chosen by AI_PROVIDER."""

from __future__ import annotations

from app.ai.base import (
    ChatTurn,
    FaqItem,
    Finished,
    Provider,
    ProviderError,
    ReplyRequest,
    ToolCall,
    ToolResult,
    ToolSpec,
    fit_context,
)
from app.config import Settings

__all__ = [
    "ChatTurn",
    "FaqItem",
    "Finished",
    "Provider",
    "ProviderError",
    "ReplyRequest",
    "ToolCall",
    "ToolResult",
    "ToolSpec",
    "fit_context",
    "make_provider",
]


def make_provider(settings: Settings) -> Provider:
    if settings.ai_provider in ("openai", "anthropic"):
        from app.ai.anthropic import AnthropicProvider
        from app.ai.openai import OpenAIProvider

        kind = OpenAIProvider if settings.ai_provider == "openai" else AnthropicProvider
        return kind(
            base_url=settings.ai_base_url,
            api_key=settings.ai_api_key,
            model=settings.ai_model,
            timeout=settings.ai_timeout,
            max_tokens=settings.ai_max_tokens,
        )
    from app.ai.offline import OfflineProvider

    return OfflineProvider(word_delay=settings.offline_word_delay)
