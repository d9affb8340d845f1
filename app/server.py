"""uvicorn's HTTP protocol with the bounds it lacks: how large a request's head may be and how
long its head and its body may take to arrive (`uvicorn --http app.server:BoundedHttpProtocol`).

httptools gathers a header of any size before uvicorn sees it (a 100 MiB one took 9.5 s and
held the event loop), and uvicorn gives a client that sends a byte every few seconds all the
time it wants. Only receiving is bounded: a reply may stream for as long as it runs.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from collections.abc import Callable
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

log = logging.getLogger("app.server")


class _Phase(enum.Enum):
    HEAD = "head"  # the request line and headers are arriving
    BODY = "body"  # the headers are in, the body is arriving
    IDLE = "idle"  # a whole request is in; the next has not begun (the keep-alive timeout rules)
    UPGRADED = "upgraded"  # another protocol has the connection


class _Refused(Exception):
    """Raised in a parser callback to stop parsing; uvicorn then calls send_400_response."""


class BoundedHttpProtocol(HttpToolsProtocol):
    # Request line and headers together; browsers and Shopify's proxy send a few KiB.
    max_head_bytes = 32 * 1024
    max_target_bytes = 8 * 1024
    # From the connection opening, from the first byte of a later request on a kept-alive
    # connection, or from the end of the previous response if the next request began while
    # it went out.
    head_timeout = 10.0
    # From the end of the headers to the end of the body; bodies we accept are 64 KiB at most.
    body_timeout = 30.0

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._phase = _Phase.HEAD
        self._head_bytes = 0
        self._heads = 0  # requests begun on this connection
        self._timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str, str] | None = None

    # ---- the connection ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        while True:
            if self._phase is _Phase.IDLE:
                self._start_head()
            if self._phase is not _Phase.HEAD:
                break
            room = self.max_head_bytes - self._head_bytes
            if len(data) <= room:
                self._head_bytes += len(data)
                break
            # Feed the parser no more of a head than the bound: httptools would first gather
            # all of it, in time that grows with the square of its size.
            heads = self._heads
            super().data_received(data[:room])
            if self._phase is _Phase.UPGRADED or self.transport.is_closing():
                return
            if self._phase is _Phase.HEAD and self._heads == heads:
                self._refuse(
                    431,
                    "headers_too_large",
                    f"The request line and headers are over {self.max_head_bytes} bytes.",
                )
                return
            data = data[room:]  # the head is in (or a later one began): the rest, the same way
        super().data_received(data)
        if self._phase is _Phase.BODY and self._timer is None and not self.transport.is_closing():
            # Armed only here, after the parser has had all it was given: a request without a
            # body is complete by now and needs no timer.
            self._arm(self.body_timeout, self._body_timed_out)

    # ---- parser callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._phase is not _Phase.HEAD:
            # A request that began in the same read as the end of the one before it: its
            # bytes in that read are not counted, so its head may run over the bound by one
            # read (256 KiB at most), which costs the parser little.
            self._start_head()
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.max_target_bytes:
            self._refusal = (
                414,
                "uri_too_long",
                f"The request target is over {self.max_target_bytes} bytes.",
            )
            raise _Refused

    def on_headers_complete(self) -> None:
        self._cancel_timer()
        self._phase = _Phase.BODY
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._cancel_timer()
        self._phase = _Phase.IDLE
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._phase is _Phase.HEAD and not self.transport.is_closing():
            # The next request began while this response went out: its clock starts now.
            self._arm(self.head_timeout, self._head_timed_out)

    def handle_websocket_upgrade(self) -> None:
        self._cancel_timer()
        self._phase = _Phase.UPGRADED
        super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to a parser error, which is also how a callback stops the parser.
        if self._refusal is not None:
            self._refuse(*self._refusal)
        else:
            super().send_400_response(msg)

    # ---- timers -----------------------------------------------------------------------

    def _start_head(self) -> None:
        self._phase = _Phase.HEAD
        self._head_bytes = 0
        self._heads += 1
        self._arm(self.head_timeout, self._head_timed_out)

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(delay, callback)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing() or self._phase is not _Phase.HEAD:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # on_response_complete gives the next head its time
        if self._head_bytes == 0:
            self.transport.close()  # nothing asked: nothing to answer
            return
        self._refuse(
            408,
            "header_timeout",
            f"The request's headers did not arrive within {self.head_timeout:g} seconds.",
        )

    def _body_timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing() or self._phase is not _Phase.BODY:
            return
        if self.flow.read_paused:
            # We stopped reading (the app has not taken what came, or a pipelined request
            # waits its turn): the client is not the one who is slow.
            self._arm(self.body_timeout, self._body_timed_out)
            return
        if self.cycle is not None and self.cycle.response_complete:
            self.transport.close()  # answered without its body (a 401, say): nothing to add
            return
        self._refuse(
            408,
            "body_timeout",
            f"The request body did not arrive within {self.body_timeout:g} seconds.",
        )

    # ---- answering --------------------------------------------------------------------

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer in the API's error shape and close; the app, if it is reading this request,
        sees the client gone."""
        self._cancel_timer()
        if self.transport.is_closing():
            return
        log.warning("refused a request: %s (%s)", code, status)
        cycle = self.cycle
        responding = cycle is not None and cycle.response_started and not cycle.response_complete
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        if responding:
            self.transport.close()  # a response is half out: no room for another
            return
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content += [name, b": ", value, b"\r\n"]
        content += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(content))
        self.transport.close()
