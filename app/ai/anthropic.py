"""Anthropic Messages API streaming."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from app.ai.base import ChatTurn, Finished, ProviderError, ReplyRequest
from app.ai.http import bad_payload, cut_short, make_client, sse_events, upstream_stream

ANTHROPIC_VERSION = "2023-06-01"
_STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


def alternate(messages: list[ChatTurn]) -> list[dict[str, str]]:
    """The Messages API wants user first and roles alternating: merge runs, drop a lead reply."""
    merged: list[dict[str, str]] = []
    for message in messages:
        if not merged and message.role != "user":
            continue
        if merged and merged[-1]["role"] == message.role:
            merged[-1]["content"] += "\n\n" + message.content
        else:
            merged.append({"role": message.role, "content": message.content})
    return merged


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self, *, base_url: str, api_key: str, model: str, timeout: float, max_tokens: int
    ) -> None:
        self.url = base_url.rstrip("/") + "/v1/messages"
        self.api_key = api_key
        self.model = model
        self.max_tokens = max_tokens
        self.client = make_client(timeout)

    async def stream(self, request: ReplyRequest) -> AsyncIterator[str | Finished]:
        headers = {
            "x-api-key": self.api_key,
            "anthropic-version": ANTHROPIC_VERSION,
            "accept": "text/event-stream",
        }
        payload = {
            "model": request.model or self.model,
            "max_tokens": self.max_tokens,
            "system": request.system_prompt,
            "messages": alternate(list(request.messages)),
            "stream": True,
        }
        finish = "stop"
        async with upstream_stream(
            self.client, self.url, headers=headers, json=payload
        ) as response:
            async for event, data in sse_events(response):
                try:
                    body = json.loads(data)
                except ValueError as exc:
                    raise bad_payload() from exc
                if not isinstance(body, dict):
                    raise bad_payload()
                kind = body.get("type", event)
                if kind == "content_block_delta":
                    delta = body.get("delta") or {}
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        yield delta["text"]
                elif kind == "message_delta":
                    reason = str((body.get("delta") or {}).get("stop_reason") or "")
                    finish = _STOP_REASONS.get(reason, reason or finish)
                elif kind == "message_stop":
                    yield Finished(finish)
                    return
                elif kind == "error":
                    error = body.get("error") or {}
                    code = (
                        "upstream_overloaded"
                        if error.get("type") == "overloaded_error"
                        else ("upstream_error")
                    )
                    raise ProviderError(
                        code, f"The AI service failed: {error.get('message', 'unknown error')}"
                    )
        raise cut_short()

    async def aclose(self) -> None:
        await self.client.aclose()
