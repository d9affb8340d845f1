"""OpenAI-compatible Chat Completions streaming (OpenAI, Ollama, vLLM, LM Studio, ...)."""

from __future__ import annotations

from typing import Any

from app.ai.base import ProviderError, ReplyRequest
from app.ai.http import HTTPProvider, json_object


class OpenAIProvider(HTTPProvider):
    name = "openai"

    def prepare(self, request: ReplyRequest) -> tuple[str, dict[str, str], dict[str, Any]]:
        headers = {"Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        messages = [{"role": "system", "content": request.system_prompt}]
        messages += [{"role": m.role, "content": m.content} for m in request.messages]
        payload = {
            "model": request.model or self.model,
            "messages": messages,
            "stream": True,
            "max_tokens": self.max_tokens,
        }
        return self.base_url + "/chat/completions", headers, payload

    def read(
        self, event: str, data: str, finish: str | None
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
            text = (choice.get("delta") or {}).get("content")
            if text:
                texts.append(text)
            finish = choice.get("finish_reason") or finish
        return "".join(texts), finish, False
