"""What the merchant's dashboard sends and gets back under /api/admin/: the filters of the
conversation list and the export, the settings, and the answers."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, Field, WithJsonSchema

from app.errors import BadRequest
from app.limits import (
    CONVERSATIONS_LIMIT,
    EARLIEST_DATE,
    EXPORT_FORMATS,
    LATEST_DATE,
    MAX_CURSOR_CHARS,
    MAX_CUSTOMER_ID_DIGITS,
    MAX_MESSAGE_CHARS,
    MAX_SEARCH_CHARS,
    MAX_STAFF_NAME_CHARS,
    STATUSES,
    TRANSCRIPT_LIMIT,
)
from app.schemas.fields import (
    DATE,
    UUID4,
    Shape,
    checked,
    given,
    page_size,
    page_size_schema,
    required,
    uuid4,
)
from app.schemas.storefront import Handler, Message, Time
from app.validation import clean_text, customer_id_value, date_value, message_text


def _status(raw: object) -> str | None:
    if not raw:
        return None
    if raw not in STATUSES:
        raise BadRequest("invalid_status", f"status must be one of {', '.join(STATUSES)}.")
    return str(raw)


def _search(raw: object) -> str | None:
    q = clean_text(raw if isinstance(raw, str) else "") or None
    if q is not None and len(q) > MAX_SEARCH_CHARS:
        raise BadRequest("invalid_q", f"q is longer than {MAX_SEARCH_CHARS} characters.")
    return q


def _format(raw: object) -> str:
    if not raw:
        return EXPORT_FORMATS[0]
    if raw not in EXPORT_FORMATS:
        raise BadRequest("invalid_format", f"format must be {' or '.join(EXPORT_FORMATS)}.")
    return str(raw)


Day = Annotated[date | None, WithJsonSchema(DATE)]


class Filters(Shape):
    """Which conversations a list or an export has (in the order they are checked)."""

    status: Annotated[
        str | None, checked(_status), WithJsonSchema({"type": "string", "enum": list(STATUSES)})
    ] = None
    q: Annotated[
        str | None,
        checked(_search),
        WithJsonSchema({"type": "string", "maxLength": MAX_SEARCH_CHARS}),
    ] = Field(None, description="Text in any message")
    date_from: Annotated[Day, checked(lambda raw: date_value(raw, "from"))] = Field(
        None, alias="from", description=f"The first day, from {EARLIEST_DATE}"
    )
    date_to: Annotated[Day, checked(lambda raw: date_value(raw, "to"))] = Field(
        None, alias="to", description=f"The last day, up to {LATEST_DATE}"
    )
    customer_id: Annotated[
        str | None,
        checked(customer_id_value),
        WithJsonSchema({"type": "string", "pattern": f"^[0-9]{{1,{MAX_CUSTOMER_ID_DIGITS}}}$"}),
    ] = None


class ConversationsQuery(Filters):
    limit: Annotated[int, page_size(CONVERSATIONS_LIMIT), page_size_schema(CONVERSATIONS_LIMIT)] = (
        given()
    )
    # Decoded by the route (repo.decode_cursor): a cursor is the API's own token.
    cursor: Annotated[
        str | None, WithJsonSchema({"type": "string", "maxLength": MAX_CURSOR_CHARS})
    ] = Field(None, description="next_cursor of the page before; any other value is 400")


class TranscriptQuery(Shape):
    limit: Annotated[int, page_size(TRANSCRIPT_LIMIT), page_size_schema(TRANSCRIPT_LIMIT)] = given()
    after: Annotated[str | None, uuid4("after"), WithJsonSchema(UUID4)] = Field(
        None, description="The next_after of the page before"
    )


class ExportQuery(Filters):
    format: Annotated[
        str, checked(_format), WithJsonSchema({"type": "string", "enum": list(EXPORT_FORMATS)})
    ] = EXPORT_FORMATS[0]


# ---- the answers --------------------------------------------------------------------------


class Conversation(BaseModel):
    id: str
    status: str
    customer_id: str | None
    product_handle: str | None = Field(
        None, description="The product a product's own conversation is about"
    )
    created_at: Time
    last_activity_at: Time | None = None
    handler: Handler = "assistant"
    assignee: Assignee | None = None
    waiting_since: Time | None = None
    contact_email: str | None = Field(None, description="Left by the shopper for a reply")
    online: bool = False
    unread: bool = False


class Assignee(BaseModel):
    sub: str
    name: str


class ListedConversation(Conversation):
    message_count: int
    preview: str | None


class ConversationPage(BaseModel):
    conversations: list[ListedConversation]
    next_cursor: str | None


class Transcript(BaseModel):
    conversation: Conversation
    messages: list[Message]
    next_after: str | None


class AskedQuestion(BaseModel):
    question: str
    count: int


class UnansweredQuestion(AskedQuestion):
    last_asked_at: Time


class DayCount(BaseModel):
    date: Annotated[str, WithJsonSchema({"type": "string", "format": "date"})]
    conversations: int


class Stats(BaseModel):
    conversations_today: int
    conversations_this_week: int
    conversations_total: int
    messages_total: int
    average_messages_per_conversation: float
    abandonment_rate: float
    top_questions: list[AskedQuestion]
    unanswered_questions: list[UnansweredQuestion] = Field(
        description=(
            "Questions the catalog, policies and FAQ had no answer to, the most recently "
            "asked first"
        )
    )
    per_day: list[DayCount]


class Catalog(BaseModel):
    products: int = Field(description="Products shoppers can see")
    status: Literal["none", "pending", "running", "finished", "failed"] = Field(
        description="The latest import's; none: never imported"
    )
    method: Literal["bulk", "pages"] | None
    products_done: int = Field(description="Read so far by the import")
    products_total: int | None
    started_at: Time | None
    last_synced_at: Time | None = Field(description="When an import last finished")
    error: str | None = Field(description="Why the import failed")


class DataRequest(BaseModel):
    customer_id: str
    customer_email: str | None
    request_id: str | None
    created_at: Time


class DataRequests(BaseModel):
    data_requests: list[DataRequest]


# ---- live conversations (docs/live.md) ----------------------------------------------------


def staff_name(value: object) -> str:
    if not isinstance(value, str):
        raise BadRequest("invalid_display_name", "display_name must be a string.")
    text = " ".join(clean_text(value).split())
    if not text or len(text) > MAX_STAFF_NAME_CHARS:
        raise BadRequest(
            "invalid_display_name", f"display_name is 1 to {MAX_STAFF_NAME_CHARS} characters."
        )
    return text


class StaffBody(Shape):
    model_config = required("display_name")

    display_name: Annotated[
        str,
        checked(staff_name),
        WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_STAFF_NAME_CHARS}),
    ] = given()


class Staff(BaseModel):
    sub: str
    display_name: str | None


class TeamMessageBody(Shape):
    model_config = required("message")

    message: Annotated[
        str,
        checked(message_text),
        WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_MESSAGE_CHARS}),
    ] = given()


class TeamMessage(BaseModel):
    message: Message


class LastMessage(BaseModel):
    role: str
    content: str
    created_at: Time


class InboxItem(Conversation):
    waiting_seconds: int | None
    first_question: str | None
    last_message: LastMessage | None


class QueueCounts(BaseModel):
    waiting: int
    team: int
    assistant: int


class Inbox(BaseModel):
    counts: QueueCounts
    waiting: list[InboxItem]
    team: list[InboxItem]
    assistant: list[InboxItem]
    team_online: int


class InboxReady(BaseModel):
    pass


class InboxChanged(BaseModel):
    conversation_id: str
    kind: str


INBOX_EVENTS: dict[str, type[BaseModel]] = {"ready": InboxReady, "inbox": InboxChanged}
