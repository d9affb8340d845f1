"""The streaming endpoints on the app's own host (/direct/...), for when Shopify's app proxy
buffers or cuts a stream: the shopper is who a ticket from the proxy says (app/tickets.py),
and any origin may call them, without credentials (the ticket is the credential)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import BadRequest
from app.routes import streams
from app.state import state_of

PREFIX = "/direct/"
TICKET_HEADER = "x-chat-ticket"
# Only the headers and methods these routes read; no cookies are ever sent or wanted.
_CORS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-expose-headers", b"Retry-After"),
]
_PREFLIGHT = [
    *_CORS,
    (b"access-control-allow-methods", b"GET, POST"),
    (b"access-control-allow-headers", b"Content-Type, X-Chat-Ticket, Last-Event-ID"),
    (b"access-control-max-age", b"86400"),
]


def _access(request: Request, *, url_allowed: bool) -> streams.Access:
    raw = request.headers.get(TICKET_HEADER)
    in_url = request.query_params.getlist("ticket")
    if in_url and not url_allowed:
        # A URL is logged and kept (servers, proxies, the browser's history); where a header
        # can carry the ticket, it must.
        raise BadRequest("ticket_in_url", "Send the chat ticket in the X-Chat-Ticket header.")
    if len(in_url) > 1:
        raise BadRequest("ticket_in_url", "The chat ticket is given more than once.")
    if raw is None and in_url:
        raw = in_url[0]  # EventSource, which cannot send a header
    ticket = state_of(request).tickets.read(raw)
    return streams.Access(ticket.identity, session_id=ticket.session_id, direct=True)


async def post_message(request: Request) -> Response:
    return await streams.send_message(request, _access(request, url_allowed=False))


async def resume_reply(request: Request) -> Response:
    return await streams.resume_reply(request, _access(request, url_allowed=True))


class DirectCors:
    """CORS on /direct/... only: every other route is same-origin (the app proxy, the
    dashboard inside the admin) and says nothing about it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": _PREFLIGHT})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *_CORS]}
            await send(message)

        await self.app(scope, receive, send_with_cors)


routes = [
    Route("/direct/messages", post_message, methods=["POST"]),
    Route("/direct/messages/{message_id}/stream", resume_reply, methods=["GET"]),
]
