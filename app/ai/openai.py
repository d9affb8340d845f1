"""OpenAI-compatible Chat Completions streaming (OpenAI, Ollama, vLLM, LM Studio, ...)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from app.ai.base import Finished, ProviderError, ReplyRequest
from app.ai.http import bad_payload, cut_short, make_client, sse_events, upstream_stream


class OpenAIProvider:
    name = "openai"

    def __init__(
        self, *, base_url: str, api_key: str, model: str, timeout: float, max_tokens: int
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key
        self.model = model
        self.max_tokens = max_tokens
        self.client = make_client(timeout)

    def _payload(self, request: ReplyRequest) -> dict[str, object]:
        messages = [{"role": "system", "content": request.system_prompt}]
        messages += [{"role": m.role, "content": m.content} for m in request.messages]
        return {
            "model": request.model or self.model,
            "messages": messages,
            "stream": True,
            "max_tokens": self.max_tokens,
        }

    async def stream(self, request: ReplyRequest) -> AsyncIterator[str | Finished]:
        headers = {"Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        finish: str | None = None
        async with upstream_stream(
            self.client, self.url, headers=headers, json=self._payload(request)
        ) as response:
            async for _event, data in sse_events(response):
                if data.strip() == "[DONE]":
                    yield Finished(finish or "stop")
                    return
                try:
                    chunk = json.loads(data)
                except ValueError as exc:
                    raise bad_payload() from exc
                if not isinstance(chunk, dict):
                    raise bad_payload()
                if "error" in chunk:
                    error = chunk["error"]
                    message = error.get("message") if isinstance(error, dict) else str(error)
                    raise ProviderError("upstream_error", f"The AI service failed: {message}")
                for choice in chunk.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        yield text
                    finish = choice.get("finish_reason") or finish
        raise cut_short()

    async def aclose(self) -> None:
        await self.client.aclose()
