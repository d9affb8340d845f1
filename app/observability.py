"""Request ids, structured JSON logs and the security headers every response carries."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
access_log = logging.getLogger("app.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
# Never written to a log, whatever a message or an extra field holds.
_SECRET_KEYS = ("authorization", "token", "secret", "signature", "hmac", "password", "cookie")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id.get(),
        }
        for key, value in getattr(record, "fields", {}).items():
            entry[key] = "[redacted]" if any(s in key.lower() for s in _SECRET_KEYS) else value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, *, json_logs: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if json_logs
        else logging.Formatter("%(levelname)s %(name)s [%(request_id)s] %(message)s")
    )
    handler.addFilter(_add_request_id)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.Formatter.converter = time.gmtime
    # Our access log replaces uvicorn's, which would write whole query strings.
    logging.getLogger("uvicorn.access").disabled = True


def _add_request_id(record: logging.LogRecord) -> bool:
    record.request_id = request_id.get()
    return True


# Data, never a page: nothing may run or frame what these paths answer.
DATA_PATHS = ("/proxy/", "/direct/", "/api/", "/webhooks", "/healthz", "/readyz")


def _security_headers(*, data: bool, production: bool) -> list[tuple[bytes, bytes]]:
    """The headers every response carries, encoded once: pages and data are the two sets."""
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }
    if production:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    if data:
        headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


# Where a response's body may go once its headers are out: the server's own send, which
# app/main.App puts in the scope (app/streaming.py's EventStream writes to it).
BODY_SEND = "app.body_send"


class RequestContext:
    """Gives each request an id (kept from X-Request-Id when sane), logs it, adds headers."""

    def __init__(self, app: ASGIApp, *, production: bool) -> None:
        self.app = app
        self.production = production
        self._headers = {
            data: _security_headers(data=data, production=production) for data in (True, False)
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _SAFE_ID.fullmatch(incoming) else os.urandom(16).hex()
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        extra = self._headers[scope["path"].startswith(DATA_PATHS)]

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.append((b"x-request-id", rid.encode()))
                headers += [h for h in extra if h[0] not in present]
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                self._log(scope, status, started)
            request_id.reset(token)

    @staticmethod
    def _log(scope: Scope, status: int, started: float) -> None:
        fields = {
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        access_log.info(
            "%s %s %s", scope["method"], scope["path"], status, extra={"fields": fields}
        )
