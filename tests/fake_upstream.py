"""A fake model server on loopback speaking OpenAI's and Anthropic's real streaming formats."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

TOKENS = ["Hello", " from", " the", " model", "."]


class UpstreamCut(Exception):
    """Raised inside a response body: the server drops the connection mid-stream."""


class FakeUpstream:
    def __init__(self) -> None:
        self.scenario = "ok"
        self.tokens = list(TOKENS)
        self.delay = 0.01
        self.requests: list[dict[str, Any]] = []
        # Answers to come that call tools: each a list of (name, arguments JSON text), sent as
        # the real APIs stream them (the arguments a few characters per event).
        self.tool_steps: list[list[tuple[str, str]]] = []
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.openai, methods=["POST"]),
                Route("/v1/messages", self.anthropic, methods=["POST"]),
            ]
        )

    async def _record(self, request: Request) -> dict[str, Any]:
        body = await request.json()
        self.requests.append(
            {"headers": dict(request.headers), "body": body, "path": request.url.path}
        )
        return body

    def _failure(self) -> Response | None:
        if self.scenario == "http500":
            return JSONResponse({"error": {"message": "internal failure"}}, status_code=500)
        if self.scenario == "http429":
            return JSONResponse({"error": {"message": "slow down"}}, status_code=429)
        if self.scenario == "http401":
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        return None

    async def _body(
        self, frames: list[bytes], closing: list[bytes], prefix: int
    ) -> AsyncIterator[bytes]:
        trigger = prefix + 1  # after the second text token
        if self.scenario == "slow":
            await asyncio.sleep(5)
        for index, frame in enumerate(frames):
            await asyncio.sleep(self.delay)
            yield frame
            if index == trigger and self.scenario == "stall":
                await asyncio.sleep(5)
            if index == trigger and self.scenario == "cut":
                raise UpstreamCut("connection dropped")
            if index == trigger and self.scenario == "no_done":
                return
            if index == trigger - 1 and self.scenario == "garbage":
                yield b"data: {this is not json\n\n"
                return
        for frame in closing:
            yield frame

    async def openai(self, request: Request) -> Response:
        body = await self._record(request)
        failure = self._failure()
        if failure:
            return failure

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": body.get("model"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(payload)}\n\n".encode()

        frames = [chunk({"role": "assistant", "content": ""})]
        prefix = len(frames)
        if self.tool_steps:
            for index, (name, arguments) in enumerate(self.tool_steps.pop(0)):
                start = {"id": f"call_{index}", "type": "function"}
                function = {"name": name, "arguments": ""}
                frames.append(
                    chunk({"tool_calls": [{"index": index, **start, "function": function}]})
                )
                for piece in _pieces(arguments):
                    delta = {"index": index, "function": {"arguments": piece}}
                    frames.append(chunk({"tool_calls": [delta]}))
            closing = [chunk({}, "tool_calls"), b"data: [DONE]\n\n"]
            return StreamingResponse(
                self._body(frames, closing, prefix), media_type="text/event-stream"
            )
        frames += [chunk({"content": token}) for token in self.tokens]
        closing = [chunk({}, "stop"), b"data: [DONE]\n\n"]
        return StreamingResponse(
            self._body(frames, closing, prefix), media_type="text/event-stream"
        )

    async def anthropic(self, request: Request) -> Response:
        await self._record(request)
        failure = self._failure()
        if failure:
            return failure

        def event(name: str, payload: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()

        frames = [
            event(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_1",
                        "type": "message",
                        "role": "assistant",
                        "content": [],
                        "model": "claude-test",
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": 10, "output_tokens": 1},
                    },
                },
            ),
            event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            event("ping", {"type": "ping"}),
        ]
        prefix = len(frames)
        if self.tool_steps:
            return self._anthropic_tools(frames[:1], event)
        frames += [
            event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": token},
                },
            )
            for token in self.tokens
        ]
        closing = [
            event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 15},
                },
            ),
            event("message_stop", {"type": "message_stop"}),
        ]
        if self.scenario == "error_event":
            closing = [
                event(
                    "error",
                    {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                    },
                )
            ]
        return StreamingResponse(
            self._body(frames, closing, prefix), media_type="text/event-stream"
        )

    def _anthropic_tools(self, frames: list[bytes], event: Any) -> Response:
        for index, (name, arguments) in enumerate(self.tool_steps.pop(0)):
            block = {"type": "tool_use", "id": f"toolu_{index}", "name": name, "input": {}}
            frames.append(
                event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": block},
                )
            )
            for piece in _pieces(arguments):
                delta = {"type": "input_json_delta", "partial_json": piece}
                frames.append(
                    event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                    )
                )
            frames.append(
                event("content_block_stop", {"type": "content_block_stop", "index": index})
            )
        closing = [
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                    "usage": {"output_tokens": 20},
                },
            ),
            event("message_stop", {"type": "message_stop"}),
        ]
        return StreamingResponse(self._body(frames, closing, 0), media_type="text/event-stream")


def _pieces(text: str, size: int = 4) -> list[str]:
    """A tool call's arguments as models stream them: a few characters at a time."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
