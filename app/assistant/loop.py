"""The tool loop: the provider streams text or asks for tools; the tools run against the
shop's catalog; their results go back to the model, at most `max_rounds` times a turn. What
reaches the reply is the text, the cards (from tool results only) and a note of each tool
used; a tool call is never shown to the shopper as text."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from app.ai import ChatTurn, Finished, Provider, ReplyRequest, ToolCall
from app.assistant.tools import Toolbox

ROUND_LIMIT_REPLY = (
    "I'm sorry, I couldn't find a good answer to that. Could you tell me a little more about "
    "what you're looking for?"
)


@dataclass(frozen=True)
class Products:
    """The reply's product cards, as they now stand (each event replaces the last)."""

    cards: list[dict[str, object]]


@dataclass(frozen=True)
class ToolUse:
    """A tool the assistant used, for the merchant's transcript."""

    name: str
    arguments: str
    ok: bool
    matched: bool


async def respond(
    provider: Provider, request: ReplyRequest, toolbox: Toolbox | None, *, max_rounds: int
) -> AsyncIterator[str | Finished | Products | ToolUse]:
    messages = list(request.messages)
    for round_number in range(max_rounds + 1):
        # The last round offers no tools: the model answers with what it has.
        offered = request.tools if toolbox is not None and round_number < max_rounds else ()
        asked = replace(request, messages=messages, tools=offered)
        calls: list[ToolCall] = []
        said: list[str] = []
        finished: Finished | None = None
        async for item in provider.stream(asked):
            if type(item) is str:  # text, the most of them by far
                if item:
                    said.append(item)
                    yield item
            elif isinstance(item, ToolCall):
                calls.append(item)
            elif isinstance(item, Finished):
                finished = item
        if not calls:
            if finished is not None:
                yield finished
            return
        if not offered or toolbox is None:
            # Tools it was not offered: it will not stop asking. End the turn politely.
            yield ("\n\n" if said else "") + ROUND_LIMIT_REPLY
            yield Finished("tool_limit")
            return
        results = []
        cards: list[dict[str, object]] | None = None
        for call in calls:
            outcome = await toolbox.run(call)
            results.append(outcome.result)
            yield ToolUse(
                call.name[:100], call.arguments[:1000], not outcome.result.is_error, outcome.matched
            )
            if outcome.cards:
                cards = (cards or []) + [c for c in outcome.cards if c not in (cards or [])]
        if cards is not None:
            yield Products(cards[:6])
        messages = [
            *messages,
            ChatTurn("assistant", "".join(said), tool_calls=tuple(calls)),
            *(ChatTurn("tool", r.content, tool_result=r) for r in results),
        ]
