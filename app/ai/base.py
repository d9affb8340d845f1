"""What every AI provider offers: a reply streamed as text pieces, or a ProviderError."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: its name, what it does, and its arguments' JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """A call the model asked for; `arguments` is the JSON text it wrote (it may be invalid)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ToolResult:
    call_id: str
    name: str
    content: str  # JSON text for the model
    is_error: bool = False


@dataclass(frozen=True)
class ChatTurn:
    role: str  # "user", "assistant", or "tool" (a tool's result)
    content: str
    # An assistant turn that called tools, and a tool turn's result (app/assistant/loop.py).
    tool_calls: tuple[ToolCall, ...] = ()
    tool_result: ToolResult | None = None


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
    tools: Sequence[ToolSpec] = field(default_factory=tuple)
    # What the shopper is looking at, for the offline assistant (the model reads it in the
    # system prompt): the product page's product, as the catalog has it.
    page_product: Any = None


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

    def stream(self, request: ReplyRequest) -> AsyncIterator[str | Finished | ToolCall]: ...

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
