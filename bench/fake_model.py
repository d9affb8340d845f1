"""A fake OpenAI-compatible model for the streaming benchmark: 200 tokens, 20 ms apart.

Written on bare asyncio protocols and uvloop rather than a web framework: on a shared
2-core machine, every cycle the fake model spends is taken from the worker being measured,
so it should cost as little as a real model's network edge would cost us (nothing).

    python -m bench.fake_model PORT
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import uvloop

TOKENS = int(os.environ.get("BENCH_TOKENS", "200"))
INTERVAL = float(os.environ.get("BENCH_INTERVAL", "0.02"))


def _chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(delta: dict[str, str], finish: str | None = None) -> bytes:
    payload = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return _chunk(f"data: {json.dumps(payload)}\n\n".encode())


FRAMES = [_event({"content": f" t{index}"}) for index in range(TOKENS)]
CLOSING = _event({}, "stop") + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    b"transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n"
)
HEALTH = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n"
HEALTH += b'{"status":"ok"}'


class Model(asyncio.Protocol):
    """HTTP/1.1 with keep-alive: one request at a time per connection, as clients send them."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""
        self.busy = False

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while not self.busy:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1").lower()
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip() == "content-length":
                    length = int(value)
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            self.buffer = self.buffer[end:]
            if head.startswith("get /healthz"):
                self.transport.write(HEALTH)
                continue
            self.busy = True
            asyncio.get_running_loop().create_task(self.stream())

    async def stream(self) -> None:
        write = self.transport.write
        write(STREAM_HEAD)
        for frame in FRAMES:
            await asyncio.sleep(INTERVAL)
            if self.transport.is_closing():
                return
            write(frame)
        write(CLOSING)
        self.busy = False
        if self.buffer:
            self.data_received(b"")


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Model, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
