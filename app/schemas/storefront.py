"""What the storefront sends and gets back, behind the app proxy (/proxy/...) and on the
app's own host (/direct/...): bodies, queries, answers, and the events of a reply's stream."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, Field, WithJsonSchema

from app.errors import BadRequest
from app.limits import (
    CONVERSATION_SCOPES,
    HANDLE_CHARS,
    HISTORY_LIMIT,
    MAX_EMAIL_CHARS,
    MAX_HANDLE_CHARS,
    MAX_MESSAGE_CHARS,
    STATUSES,
)
from app.schemas.fields import (
    EVENT_ID,
    ONCE,
    TIME,
    UUID4,
    QuerySessionId,
    SessionId,
    Shape,
    checked,
    given,
    page_size,
    page_size_schema,
    required,
    uuid4,
)
from app.validation import PageContext, last_event_value, message_text, once, page_context

Time = Annotated[str, WithJsonSchema(TIME)]
SessionState = Literal["active", "ended", "abandoned", "unknown"]
assert {*STATUSES, "unknown"} == set(get_args(SessionState))


# ---- what the storefront sends ------------------------------------------------------------

CONTEXT: dict[str, Any] = {
    "oneOf": [
        {
            "type": "object",
            "description": "What the shopper is looking at",
            "properties": {
                "product": {
                    "type": ["string", "null"],
                    "description": "The product page's handle",
                    "pattern": f"^{HANDLE_CHARS}{{0,{MAX_HANDLE_CHARS}}}$",
                },
                "conversation": {
                    "type": "string",
                    "enum": list(CONVERSATION_SCOPES),
                    "description": (
                        "product: this chat is the product's own conversation (needs product)"
                    ),
                },
            },
        },
        {"type": "null"},
    ]
}


class SessionBody(Shape):
    model_config = required("session_id")

    session_id: SessionId = given()


class MessageBody(Shape):
    """What POST /proxy/messages and POST /direct/messages take."""

    model_config = required("session_id", "message")

    session_id: SessionId = given()
    message: Annotated[
        str,
        checked(message_text),
        WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_MESSAGE_CHARS}),
    ] = given()
    # null is no id, as if the field were left out
    client_message_id: Annotated[
        str | None,
        uuid4("client_message_id"),
        WithJsonSchema({"oneOf": [UUID4, {"type": "null"}]}),
    ] = None
    context: Annotated[PageContext, checked(page_context), WithJsonSchema(CONTEXT)] = given()


class SessionQuery(Shape):
    model_config = required("session_id")

    session_id: QuerySessionId = given()


def customer_flag(value: object) -> bool:
    """`customer`: 1 asks for the logged-in customer's current conversation, 0 (or left out)
    for the session's own."""
    if value in (None, "", "0"):
        return False
    if value == "1":
        return True
    raise BadRequest("invalid_customer", "customer must be 1 or 0.")


class HistoryQuery(SessionQuery):
    limit: Annotated[int, page_size(HISTORY_LIMIT), page_size_schema(HISTORY_LIMIT)] = given()
    before: Annotated[str | None, uuid4("before"), WithJsonSchema(UUID4)] = None
    customer: Annotated[
        bool,
        checked(lambda value: customer_flag(once(value, "customer"))),
        WithJsonSchema(
            {
                "type": "string",
                "enum": ["0", "1"],
                "description": (
                    "1: the logged-in customer's current conversation, whichever device"
                    " started it (docs/live.md); the answer's session_id names its session"
                ),
            }
        ),
        ONCE,
    ] = False


class ResumeQuery(SessionQuery):
    # Last-Event-ID, in the query (the header wins: see the route)
    last_event_id: Annotated[
        tuple[str, int] | None, checked(last_event_value), WithJsonSchema(EVENT_ID)
    ] = Field(None, description="Last-Event-ID, in the query")


def live_cursor(value: object) -> str | None:
    """A live stream's cursor as it gave it out: `M.E` or `M.E.O`, ASCII digits (docs/live.md)."""
    if not value:
        return None
    parts = value.split(".") if isinstance(value, str) else []
    if len(parts) not in (2, 3) or not all(
        part.isascii() and part.isdigit() and len(part) <= 18 for part in parts
    ):
        raise BadRequest(
            "invalid_last_event_id",
            "Last-Event-ID must be an event id of this stream, as it sent it.",
        )
    return ".".join(str(int(part)) for part in parts)


class LiveQuery(SessionQuery):
    last_event_id: Annotated[
        str | None,
        checked(live_cursor),
        WithJsonSchema(
            {"type": "string", "pattern": r"^[0-9]{1,18}\.[0-9]{1,18}(\.[0-9]{1,18})?$"}
        ),
    ] = Field(None, description="Last-Event-ID, in the query (the header wins)")


def email_address(value: object) -> str:
    text = value.strip() if isinstance(value, str) else ""
    local, at, domain = text.rpartition("@")
    if (
        not at
        or not local
        or "." not in domain.strip(".")
        or len(text) > MAX_EMAIL_CHARS
        or any(c.isspace() or ord(c) < 32 or c in '<>,;"' for c in text)
    ):
        raise BadRequest(
            "invalid_email", "email must be an email address, such as you@example.com."
        )
    return text


class ContactBody(SessionBody):
    model_config = required("session_id", "email")

    email: Annotated[
        str,
        checked(email_address),
        WithJsonSchema({"type": "string", "format": "email", "maxLength": MAX_EMAIL_CHARS}),
    ] = given()


class DirectResumeQuery(ResumeQuery):
    # Read with the X-Chat-Ticket header, before the query (app/routes/direct.py).
    ticket: Annotated[str | None, WithJsonSchema({"type": "string"})] = Field(
        None,
        description="The ticket, for EventSource, which cannot send a header; "
        "the header wins when both are given",
    )


# ---- what it gets back --------------------------------------------------------------------


class Money(BaseModel):
    amount: str = Field(pattern=r"^[0-9]+\.[0-9]{2}$")
    currency_code: str


class ProductImage(BaseModel):
    url: str | None = None
    alt: str | None = None


class ProductCard(BaseModel):
    """A product a reply shows, from the shop's catalog (never from the model)"""

    id: int
    handle: str
    title: str
    url: str | None
    image: ProductImage | None = None
    price: Money | None
    compare_at_price: Money | None = None
    available: bool
    variant_id: int | None
    variant_title: str | None = None


class ToolUse(BaseModel):
    name: str
    arguments: str
    ok: bool
    matched: bool


class Message(BaseModel):
    id: str
    role: Literal["user", "assistant", "team"]
    content: str
    status: Literal["complete", "streaming", "stopped", "error"]
    created_at: Time
    client_message_id: str | None = Field(
        None, description="The shopper's message's own id, as sent with it; null for replies"
    )
    products: list[ProductCard] = []
    tools: list[ToolUse] = Field(
        [], description="The merchant's transcript only: the tools the assistant used"
    )
    author: str | None = Field(None, description="A team member's name, for role team")


Handler = Literal["assistant", "waiting", "team"]


class History(BaseModel):
    session_id: str = Field(
        description="The conversation's session: with customer=1, maybe not the one asked about"
    )
    status: SessionState
    handler: Handler
    messages: list[Message]
    next_before: str | None


class SessionStatus(BaseModel):
    session_id: str
    status: SessionState
    handler: Handler


class HandedOver(BaseModel):
    session_id: str
    status: SessionState
    handler: Handler
    team_online: bool


class ContactSaved(BaseModel):
    session_id: str
    contact_email: bool


class Presence(BaseModel):
    session_id: str
    ok: bool


class Stopped(BaseModel):
    assistant_message_id: str
    status: str
    content: str


class Ticket(BaseModel):
    ticket: str = Field(description="Send as the X-Chat-Ticket header")
    expires_in: int = Field(description="Seconds the ticket is valid (600)")
    expires_at: Time
    direct_url: Annotated[str, WithJsonSchema({"type": "string", "format": "uri"})] = Field(
        description="{SHOPIFY_APP_URL}/direct: where the direct endpoints are"
    )


# ---- a reply's stream: each event's name and its data ---------------------------------------


class StartEvent(BaseModel):
    conversation_id: str
    user_message_id: str = Field(description="Empty for a reply to no message")
    assistant_message_id: str


class DeltaEvent(BaseModel):
    """The next piece of the reply; the event's id is <assistant_message_id>:<offset>"""

    text: str


class ProductsEvent(BaseModel):
    """The reply's product cards as they now stand: each replaces the last (sent again on a
    resume)"""

    assistant_message_id: str
    products: list[ProductCard]


class DoneEvent(BaseModel):
    assistant_message_id: str
    finish_reason: str
    status: str


class ErrorEvent(BaseModel):
    code: str
    message: str
    assistant_message_id: str | None = None


class QueuedEvent(BaseModel):
    """A person answers this conversation: the shopper's message is saved for them and no
    reply is generated (the stream ends here)"""

    handler: Handler
    team_online: bool


EVENTS: dict[str, type[BaseModel]] = {
    "start": StartEvent,
    "delta": DeltaEvent,
    "products": ProductsEvent,
    "done": DoneEvent,
    "error": ErrorEvent,
    "queued": QueuedEvent,
}


# ---- a session's live stream (docs/live.md) --------------------------------------------------


class LiveState(BaseModel):
    session_id: str
    status: SessionState
    handler: Handler
    assignee: str | None
    team_online: bool
    contact_email: bool


class LiveReply(BaseModel):
    assistant_message_id: str
    user_message_id: str


class LiveDelta(BaseModel):
    assistant_message_id: str
    text: str


class LiveStatus(BaseModel):
    kind: Literal[
        "handed_over", "joined", "left", "handed_back", "ended", "abandoned", "contact_saved"
    ]
    name: str | None
    at: Time


class LiveTyping(BaseModel):
    name: str


class LiveClosed(BaseModel):
    reason: Literal["timeout", "replaced"]


LIVE_EVENTS: dict[str, type[BaseModel]] = {
    "state": LiveState,
    "message": Message,
    "reply": LiveReply,
    "delta": LiveDelta,
    "products": ProductsEvent,
    "status": LiveStatus,
    "typing": LiveTyping,
    "closed": LiveClosed,
}
