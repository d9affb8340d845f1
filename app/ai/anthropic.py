"""Anthropic Messages API streaming."""

from __future__ import annotations

import json
from typing import Any

from app.ai.base import ChatTurn, ProviderError, ReplyRequest
from app.ai.http import HTTPProvider, ToolCalls, json_object

ANTHROPIC_VERSION = "2023-06-01"
_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}


def _blocks(turn: ChatTurn) -> tuple[str, str | list[dict[str, Any]]]:
    """A turn as the Messages API has it: a tool's result is the user's, in a block."""
    if turn.tool_result is not None:
        result = turn.tool_result
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": result.call_id,
            "content": result.content,
        }
        if result.is_error:
            block["is_error"] = True
        return "user", [block]
    if turn.tool_calls:
        blocks: list[dict[str, Any]] = (
            [{"type": "text", "text": turn.content}] if turn.content else []
        )
        for call in turn.tool_calls:
            try:
                arguments = json.loads(call.arguments or "{}")
            except ValueError:
                arguments = None
            blocks.append(
                {
                    "type": "tool_use",
                    "id": call.id,
                    "name": call.name,
                    # What the model wrote, when it was an object (else it was told so).
                    "input": arguments if isinstance(arguments, dict) else {},
                }
            )
        return "assistant", blocks
    return turn.role, turn.content


def _as_list(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def alternate(messages: list[ChatTurn]) -> list[dict[str, Any]]:
    """The Messages API wants user first and roles alternating: merge runs, drop a lead reply."""
    merged: list[dict[str, Any]] = []
    for message in messages:
        role, content = _blocks(message)
        if not merged and role != "user":
            continue
        if merged and merged[-1]["role"] == role:
            last = merged[-1]["content"]
            if isinstance(last, str) and isinstance(content, str):
                merged[-1]["content"] = last + "\n\n" + content
            else:
                merged[-1]["content"] = _as_list(last) + _as_list(content)
        else:
            merged.append({"role": role, "content": content})
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
        if request.tools:
            payload["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
        return self.base_url + "/v1/messages", headers, payload

    def read(
        self, event: str, data: str, finish: str | None, calls: ToolCalls
    ) -> tuple[str | None, str | None, bool]:
        body = json_object(data)
        kind = body.get("type", event)
        position = body.get("index")
        index = position if isinstance(position, int) else 0
        if kind == "content_block_start":
            block = body.get("content_block") or {}
            if isinstance(block, dict) and block.get("type") == "tool_use":
                calls.add(index, id=str(block.get("id") or ""), name=str(block.get("name") or ""))
        elif kind == "content_block_delta":
            delta = body.get("delta") or {}
            if delta.get("type") == "text_delta":
                return delta.get("text"), finish, False
            if delta.get("type") == "input_json_delta":
                calls.add(index, arguments=str(delta.get("partial_json") or ""))
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
