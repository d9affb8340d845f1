"""What every AI provider offers: a reply streamed as text pieces, or a ProviderError."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ChatTurn:
    role: str  # "user" or "assistant"
    content: str


@dataclass(frozen=True)
class FaqItem:
    question: str
    answer: str


@dataclass(frozen=True)
class ReplyRequest:
    system_prompt: str
    messages: Sequence[ChatTurn]
    faq: Sequence[FaqItem] = field(default_factory=tuple)
    model: str | None = None


@dataclass(frozen=True)
class Finished:
    """Yielded last by a provider that knows why the reply ended."""

    reason: str


class ProviderError(Exception):
    """The model failed; `code` is what the shopper's widget and the merchant see."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Provider(Protocol):
    name: str

    def stream(self, request: ReplyRequest) -> AsyncIterator[str | Finished]: ...

    async def aclose(self) -> None: ...


def fit_context(messages: Sequence[ChatTurn], budget_chars: int) -> list[ChatTurn]:
    """Keep the newest messages that fit the budget; the newest one always goes in."""
    kept: list[ChatTurn] = []
    used = 0
    for message in reversed(messages):
        if kept and used + len(message.content) > budget_chars:
            break
        kept.append(message)
        used += len(message.content)
    kept.reverse()
    return kept
