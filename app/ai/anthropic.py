"""Anthropic Messages API streaming."""

from __future__ import annotations

from typing import Any

from app.ai.base import ChatTurn, ProviderError, ReplyRequest
from app.ai.http import HTTPProvider, json_object

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


class AnthropicProvider(HTTPProvider):
    name = "anthropic"
    default_finish = "stop"

    def prepare(self, request: ReplyRequest) -> tuple[str, dict[str, str], dict[str, Any]]:
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
        return self.base_url + "/v1/messages", headers, payload

    def read(
        self, event: str, data: str, finish: str | None
    ) -> tuple[str | None, str | None, bool]:
        body = json_object(data)
        kind = body.get("type", event)
        if kind == "content_block_delta":
            delta = body.get("delta") or {}
            if delta.get("type") == "text_delta":
                return delta.get("text"), finish, False
        elif kind == "message_delta":
            reason = str((body.get("delta") or {}).get("stop_reason") or "")
            return None, _STOP_REASONS.get(reason, reason or finish), False
        elif kind == "message_stop":
            return None, finish, True
        elif kind == "error":
            error = body.get("error") or {}
            overloaded = error.get("type") == "overloaded_error"
            raise ProviderError(
                "upstream_overloaded" if overloaded else "upstream_error",
                f"The AI service failed: {error.get('message', 'unknown error')}",
            )
        return None, finish, False
