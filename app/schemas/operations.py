"""The API's operations, one row each: its path and method, who may call it, and the shapes
it reads and answers with. /openapi.json is generated from this table (app/openapi.py); a
test holds it to the app's routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from app.schemas import merchant, settings, storefront
from app.schemas.fields import EVENT_ID, Shape

# Every error status the API answers with. Any operation may answer with those of SERVER:
# 405 (another method), 408, 413, 414 and 431 from the server's own limits (app/server.py),
# before any route, and 503 when the database is out of reach.
ERROR_CODES = (
    "400", "401", "403", "404", "405", "408", "409", "413", "414", "429", "431", "503"
)  # fmt: skip
SERVER = ("405", "408", "413", "414", "431", "503")
PROXY, TICKET, ADMIN = "appProxy", "chatTicket", "sessionToken"
# Who may call it: a proxy's signature or a ticket that does not hold is 401; a shop that has
# not installed the app (or a session another customer's) 403; a session token that does
# not hold 401, an install that cannot be finished 403.
SECURITY_ERRORS = {PROXY: ("401", "403"), TICKET: ("401", "403"), ADMIN: ("401", "403")}
TURN_ERRORS = ("409", "429")  # the session ended, a turn in progress; a rate limit
LOOKUP_ERRORS = ("404",)  # the id in its path names nothing of this shop or session
TICKET_ERRORS = (
    "401: ticket_missing, ticket_expired, ticket_invalid, ticket_not_for_session (the ticket "
    "is another session's); the widget fetches a new ticket and sends again with the same "
    "client_message_id. 403: shop_not_installed. Any origin may call it, without credentials "
    "(CORS; OPTIONS is the preflight)."
)


@dataclass(frozen=True)
class Stream:
    """Server-sent events: a reply's (storefront.EVENTS) unless said otherwise."""

    events: tuple[tuple[str, type[BaseModel]], ...] = tuple(storefront.EVENTS.items())
    description: str = (
        "a delta's and a products' id is <assistant_message_id>:<offset>. start comes first "
        "and done or error last."
    )


LIVE = Stream(
    tuple(storefront.LIVE_EVENTS.items()),
    "every event but typing has an id, the cursor to resume from (Last-Event-ID); the "
    "stream ends with closed after LIVE_STREAM_SECONDS (reconnect at once) or when a newer "
    "stream of the session replaces it (docs/live.md).",
)
INBOX = Stream(
    tuple(merchant.INBOX_EVENTS.items()),
    "inbox: a conversation of the shop changed, read the inbox again; the stream ends after "
    "LIVE_STREAM_SECONDS (reconnect with a fresh session token).",
)


@dataclass(frozen=True)
class File:
    """A download, in one of these media types."""

    media_types: tuple[str, ...]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # its {parameters} are random UUIDs
    summary: str
    security: str
    body: type[Shape] | None = None
    query: type[Shape] | None = None
    answer: type[BaseModel] | Stream | File | None = None  # None: no content
    status: str = "200"
    answer_description: str = "OK"
    errors: tuple[str, ...] = ()  # those of this operation alone (see error_statuses)
    headers: tuple[dict[str, Any], ...] = ()
    description: str = ""


def error_statuses(operation: Operation) -> list[str]:
    """The error statuses an operation may answer with: the server's, its callers', 400 for
    what it reads, and its own."""
    reads = operation.body or operation.query or "{" in operation.path
    statuses = {*SERVER, *SECURITY_ERRORS[operation.security], *operation.errors}
    if reads or operation.security == TICKET:  # a ticket in the URL is 400 too
        statuses.add("400")
    assert statuses <= set(ERROR_CODES), statuses - set(ERROR_CODES)
    return sorted(statuses)


def last_event_id(description: str) -> dict[str, Any]:
    header = {"name": "Last-Event-ID", "in": "header", "required": False}
    return {**header, "schema": EVENT_ID, "description": description}


OPERATIONS = (
    Operation(
        "post",
        "/proxy/messages",
        "Send a message; the reply streams back",
        PROXY,
        body=storefront.MessageBody,
        answer=Stream(),
        errors=TURN_ERRORS,
    ),
    Operation(
        "get",
        "/proxy/history",
        "A page of the conversation, newest page first",
        PROXY,
        query=storefront.HistoryQuery,
        answer=storefront.History,
    ),
    Operation(
        "get",
        "/proxy/messages/{message_id}/stream",
        "Resume a reply (honours Last-Event-ID)",
        PROXY,
        query=storefront.ResumeQuery,
        answer=Stream(),
        headers=(
            last_event_id(
                "The id of the last event received; another reply's id starts from the beginning"
            ),
        ),
        errors=LOOKUP_ERRORS,
    ),
    Operation(
        "post",
        "/proxy/messages/{message_id}/stop",
        "Stop a reply; the partial text is kept",
        PROXY,
        body=storefront.SessionBody,
        answer=storefront.Stopped,
        errors=LOOKUP_ERRORS,
    ),
    Operation(
        "post",
        "/proxy/sessions/end",
        "End the conversation",
        PROXY,
        body=storefront.SessionBody,
        answer=storefront.SessionStatus,
    ),
    Operation(
        "get",
        "/proxy/sessions/status",
        "A session's status",
        PROXY,
        query=storefront.SessionQuery,
        answer=storefront.SessionStatus,
    ),
    Operation(
        "post",
        "/proxy/sessions/ticket",
        "A ticket for streaming directly from the app's host",
        PROXY,
        body=storefront.SessionBody,
        answer=storefront.Ticket,
    ),
    Operation(
        "post",
        "/direct/messages",
        "POST /proxy/messages, on the app's own host",
        TICKET,
        body=storefront.MessageBody,
        answer=Stream(),
        description=TICKET_ERRORS
        + " A ticket in the URL is 400 ticket_in_url: a header can carry it here.",
        errors=TURN_ERRORS,
    ),
    Operation(
        "get",
        "/direct/messages/{message_id}/stream",
        "Resume a reply on the app's own host (honours Last-Event-ID)",
        TICKET,
        query=storefront.DirectResumeQuery,
        answer=Stream(),
        headers=(last_event_id("The id of the last event received"),),
        description=TICKET_ERRORS,
        errors=LOOKUP_ERRORS,
    ),
    Operation(
        "get",
        "/api/admin/conversations",
        "Conversations, newest first",
        ADMIN,
        query=merchant.ConversationsQuery,
        answer=merchant.ConversationPage,
    ),
    Operation(
        "get",
        "/api/admin/conversations/{conversation_id}",
        "A page of a transcript, oldest first",
        ADMIN,
        query=merchant.TranscriptQuery,
        answer=merchant.Transcript,
        errors=LOOKUP_ERRORS,
    ),
    Operation(
        "delete",
        "/api/admin/conversations/{conversation_id}",
        "Delete a conversation for good",
        ADMIN,
        status="204",
        answer_description="Deleted",
        errors=LOOKUP_ERRORS,
    ),
    Operation("get", "/api/admin/stats", "Figures for the dashboard", ADMIN, answer=merchant.Stats),
    Operation("get", "/api/admin/settings", "The shop's settings", ADMIN, answer=settings.Settings),
    Operation(
        "put",
        "/api/admin/settings",
        "Change settings (only the fields given)",
        ADMIN,
        body=settings.SettingsBody,
        answer=settings.SavedSettings,
    ),
    Operation(
        "get",
        "/api/admin/export",
        "All or filtered conversations, streamed",
        ADMIN,
        query=merchant.ExportQuery,
        answer=File(("text/csv", "application/x-ndjson")),
        answer_description="A file",
    ),
    Operation(
        "get",
        "/api/admin/catalog",
        "The imported catalog: products shoppers can see, and the import's state",
        ADMIN,
        answer=merchant.Catalog,
    ),
    Operation(
        "post",
        "/api/admin/catalog/sync",
        "Import the catalog from Shopify again, in the background",
        ADMIN,
        answer=merchant.Catalog,
        status="202",
        answer_description="Asked for; one running already goes on",
    ),
    Operation(
        "get",
        "/api/admin/data-requests",
        "Customers' data requests",
        ADMIN,
        answer=merchant.DataRequests,
    ),
    # ---- live conversations (docs/live.md) ----
    Operation(
        "get",
        "/proxy/sessions/events",
        "The session's live stream: messages, replies, status, the team (docs/live.md)",
        PROXY,
        query=storefront.LiveQuery,
        answer=LIVE,
    ),
    Operation(
        "post",
        "/proxy/sessions/handover",
        "Ask for a person: the assistant goes quiet until the team hands it back",
        PROXY,
        body=storefront.SessionBody,
        answer=storefront.HandedOver,
        errors=("409",),
    ),
    Operation(
        "post",
        "/proxy/sessions/contact",
        "Leave an email address for the team's reply",
        PROXY,
        body=storefront.ContactBody,
        answer=storefront.ContactSaved,
        errors=("409",),
    ),
    Operation(
        "post",
        "/proxy/sessions/heartbeat",
        "The shopper is still on a page with the widget (every 30 s)",
        PROXY,
        body=storefront.SessionBody,
        answer=storefront.Presence,
    ),
    Operation(
        "get", "/api/admin/me", "The team member and their name", ADMIN, answer=merchant.Staff
    ),
    Operation(
        "put",
        "/api/admin/me",
        "Set the name shoppers see",
        ADMIN,
        body=merchant.StaffBody,
        answer=merchant.Staff,
    ),
    Operation(
        "get",
        "/api/admin/inbox",
        "Conversations by queue: waiting for a person, with the team, with the assistant",
        ADMIN,
        answer=merchant.Inbox,
    ),
    Operation(
        "get",
        "/api/admin/inbox/events",
        "The inbox's live stream: which conversation changed",
        ADMIN,
        answer=INBOX,
    ),
    Operation(
        "post",
        "/api/admin/conversations/{conversation_id}/take",
        "Take the conversation (a reply being generated stops)",
        ADMIN,
        answer=merchant.Conversation,
        errors=("404", "409"),
    ),
    Operation(
        "post",
        "/api/admin/conversations/{conversation_id}/messages",
        "Reply to the shopper (takes the conversation if nobody holds it)",
        ADMIN,
        body=merchant.TeamMessageBody,
        answer=merchant.TeamMessage,
        status="201",
        answer_description="Sent",
        errors=("404", "409"),
    ),
    Operation(
        "post",
        "/api/admin/conversations/{conversation_id}/hand-back",
        "Hand the conversation back to the assistant",
        ADMIN,
        answer=merchant.Conversation,
        errors=("404", "409"),
    ),
    Operation(
        "post",
        "/api/admin/conversations/{conversation_id}/end",
        "End the conversation: the shopper's next page starts a new one",
        ADMIN,
        answer=merchant.Conversation,
        errors=("404", "409"),
    ),
    Operation(
        "post",
        "/api/admin/conversations/{conversation_id}/read",
        "Mark the conversation read",
        ADMIN,
        answer=merchant.Conversation,
        errors=LOOKUP_ERRORS,
    ),
    Operation(
        "post",
        "/api/admin/conversations/{conversation_id}/typing",
        "Show the shopper that a team member is typing",
        ADMIN,
        status="204",
        answer_description="Shown",
        errors=LOOKUP_ERRORS,
    ),
)
