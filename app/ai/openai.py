"""OpenAI-compatible Chat Completions streaming (OpenAI, Ollama, vLLM, LM Studio, ...), with
tools: `tools` in the request, `tool_calls` streamed in deltas, `tool` messages back."""

from __future__ import annotations

from typing import Any

from app.ai.base import ChatTurn, ProviderError, ReplyRequest
from app.ai.http import HTTPProvider, ToolCalls, json_object


def _message(turn: ChatTurn) -> dict[str, Any]:
    if turn.tool_result is not None:
        return {
            "role": "tool",
            "tool_call_id": turn.tool_result.call_id,
            "content": turn.tool_result.content,
        }
    if turn.tool_calls:
        return {
            "role": "assistant",
            "content": turn.content or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in turn.tool_calls
            ],
        }
    return {"role": turn.role, "content": turn.content}


class OpenAIProvider(HTTPProvider):
    name = "openai"

    def prepare(self, request: ReplyRequest) -> tuple[str, dict[str, str], dict[str, Any]]:
        headers = {"Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        messages = [{"role": "system", "content": request.system_prompt}]
        messages += [_message(m) for m in request.messages]
        payload: dict[str, Any] = {
            "model": request.model or self.model,
            "messages": messages,
            "stream": True,
            "max_tokens": self.max_tokens,
        }
        if request.tools:
            payload["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.parameters,
                    },
                }
                for tool in request.tools
            ]
        return self.base_url + "/chat/completions", headers, payload

    def read(
        self, event: str, data: str, finish: str | None, calls: ToolCalls
    ) -> tuple[str | None, str | None, bool]:
        if data.strip() == "[DONE]":
            return None, finish, True
        body = json_object(data)
        if "error" in body:
            error = body["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise ProviderError("upstream_error", f"The AI service failed: {message}")
        texts = []
        for choice in body.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                texts.append(text)
            for piece in delta.get("tool_calls") or []:
                if not isinstance(piece, dict):
                    continue
                function = piece.get("function") or {}
                index = piece.get("index")
                calls.add(
                    index if isinstance(index, int) else 0,
                    id=str(piece.get("id") or ""),
                    name=str(function.get("name") or ""),
                    arguments=str(function.get("arguments") or ""),
                )
            finish = choice.get("finish_reason") or finish
        return "".join(texts), finish, False
