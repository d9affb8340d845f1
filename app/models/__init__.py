"""Tables: shops, their FAQ entries, conversations and messages, the running workers; the
catalog's in app/models/catalog.py."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.common import BigId, aware, iso, new_public_id, utcnow

CONVERSATION_STATUSES = ("active", "ended", "abandoned")
MESSAGE_STATUSES = ("complete", "streaming", "stopped", "error")


class Shop(SQLModel, table=True):
    __tablename__ = "shops"

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    domain: str = Field(sa_column=sa.Column(sa.String(255), nullable=False, unique=True))
    # Tokens are stored encrypted (app/crypto.py), never in clear.
    access_token: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    refresh_token: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    access_token_expires_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True)
    )
    refresh_token_expires_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True)
    )
    scopes: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    installed: bool = Field(default=True, sa_column=sa.Column(sa.Boolean, nullable=False))
    system_prompt: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    greeting: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    accent_color: str | None = Field(default=None, sa_column=sa.Column(sa.String(16)))
    ai_provider: str | None = Field(default=None, sa_column=sa.Column(sa.String(16)))
    ai_model: str | None = Field(default=None, sa_column=sa.Column(sa.String(100)))
    retention_days: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    # How the widget streams (auto, always, never); None: the operator's DIRECT_STREAMS.
    direct_streams: str | None = Field(default=None, sa_column=sa.Column(sa.String(8)))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False)
    )
    uninstalled_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True)
    )
    # While set and in the future, one worker is refreshing this shop's token; others wait.
    token_refresh_until: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True)
    )


class FaqEntry(SQLModel, table=True):
    __tablename__ = "faq_entries"

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    shop_id: int = Field(
        sa_column=sa.Column(
            BigId, sa.ForeignKey("shops.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    question: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    answer: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    position: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"
    __table_args__ = (
        sa.UniqueConstraint("shop_id", "session_id", name="uq_conversations_shop_session"),
        sa.Index("ix_conversations_shop_activity", "shop_id", "last_activity_at"),
        sa.Index("ix_conversations_status_activity", "status", "last_activity_at"),
        sa.Index("ix_conversations_shop_customer", "shop_id", "customer_id"),
        # The statistics read status and message count from the index alone (migration 0009).
        sa.Index(
            "ix_conversations_shop_created",
            "shop_id",
            "created_at",
            postgresql_include=["status", "message_count"],
        ),
        # The inbox: a shop's conversations with a person or waiting for one (few).
        sa.Index(
            "ix_conversations_shop_handed_over",
            "shop_id",
            "waiting_since",
            sqlite_where=sa.text("handler <> 'assistant'"),
            postgresql_where=sa.text("handler <> 'assistant'"),
        ),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    public_id: str = Field(
        default_factory=new_public_id,
        sa_column=sa.Column(sa.String(36), nullable=False, unique=True),
    )
    shop_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("shops.id", ondelete="CASCADE"), nullable=False)
    )
    session_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False))
    customer_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    status: str = Field(default="active", sa_column=sa.Column(sa.String(16), nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False)
    )
    last_activity_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False)
    )
    ended_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True)
    )
    # Kept by each turn, for the merchant's statistics (which would otherwise read every
    # message of the shop): how many messages it has, and the shopper's first one.
    message_count: int = Field(
        default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0")
    )
    first_question: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    # A conversation about one product (the "Ask about this product" block's separate
    # conversations): its handle, told to the model on every turn.
    product_handle: str | None = Field(default=None, sa_column=sa.Column(sa.String(255)))
    # Who answers (docs/live.md): the assistant, nobody yet (waiting for a person since
    # waiting_since), or the team member `assignee` (a session token's `sub`).
    handler: str = Field(
        default="assistant",
        sa_column=sa.Column(sa.String(16), nullable=False, server_default="assistant"),
    )
    assignee: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    waiting_since: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True)
    )
    # An address the shopper left for a reply when nobody was online.
    contact_email: str | None = Field(default=None, sa_column=sa.Column(sa.String(320)))
    # The shopper's last sign of life (a page load, a heartbeat, an open stream): "online".
    seen_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True)
    )
    # The last message the team has read: later shopper messages are unread.
    read_message_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        # History pages walk one conversation by id, newest first.
        sa.Index("ix_messages_conversation_id_id", "conversation_id", "id"),
        # Safe retry: one turn per client_message_id in a conversation.
        sa.Index(
            "uq_messages_client_message_id",
            "conversation_id",
            "client_message_id",
            unique=True,
        ),
        # At most one reply streaming per conversation: the database settles racing turns.
        sa.Index(
            "uq_messages_one_streaming",
            "conversation_id",
            unique=True,
            sqlite_where=sa.text("status = 'streaming'"),
            postgresql_where=sa.text("status = 'streaming'"),
        ),
        sa.Index("ix_messages_reply_to_id", "reply_to_id"),
        # The dashboard's substring search (ILIKE '%word%'); PostgreSQL only (migration 0004).
        sa.Index(
            "ix_messages_content_trgm",
            "content",
            postgresql_using="gin",
            postgresql_ops={"content": "gin_trgm_ops"},
            info={"postgresql_only": True},
        ),
        # The reaper finds replies whose worker died.
        sa.Index(
            "ix_messages_streaming_updated",
            "updated_at",
            sqlite_where=sa.text("status = 'streaming'"),
            postgresql_where=sa.text("status = 'streaming'"),
        ),
        # The merchant's unanswered questions: the few replies that found nothing.
        sa.Index(
            "ix_messages_unanswered",
            "conversation_id",
            "id",
            sqlite_where=sa.text("unanswered"),
            postgresql_where=sa.text("unanswered"),
        ),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    public_id: str = Field(
        default_factory=new_public_id,
        sa_column=sa.Column(sa.String(36), nullable=False, unique=True),
    )
    conversation_id: int = Field(
        sa_column=sa.Column(
            BigId, sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
        )
    )
    role: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    content: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False))
    status: str = Field(default="complete", sa_column=sa.Column(sa.String(16), nullable=False))
    client_message_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(36)))
    reply_to_id: int | None = Field(
        default=None,
        sa_column=sa.Column(BigId, sa.ForeignKey("messages.id", ondelete="CASCADE")),
    )
    finish_reason: str | None = Field(default=None, sa_column=sa.Column(sa.String(32)))
    error_code: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False)
    )
    # The worker generating a streaming reply (Worker.id). No foreign key: a worker's row goes
    # when it stops or is found dead, and its replies must keep saying whose they were.
    worker_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(32)))
    # A reply's product cards (JSON list, app/assistant/cards.py) and the tools it used (JSON
    # list of {"name", "arguments", "result"}), saved as soon as they are known so that a
    # resume, a retry and the merchant's transcript see what the shopper saw.
    products: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    tools: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    # A reply whose searches found nothing (or that ran out of tool rounds): the merchant's
    # "unanswered questions". NULL for the rest, so the partial index stays small.
    unanswered: bool | None = Field(default=None, sa_column=sa.Column(sa.Boolean))
    # A team member's message (role "team"): their display name as it was when they wrote.
    author: str | None = Field(default=None, sa_column=sa.Column(sa.String(80)))


class Worker(SQLModel, table=True):
    """A running worker process, by a random id per start: its heartbeat tells the others
    whether the replies it generates still have someone writing them."""

    __tablename__ = "workers"

    id: str = Field(sa_column=sa.Column(sa.String(32), primary_key=True))
    started_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False)
    )
    heartbeat_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False)
    )


class WebhookEvent(SQLModel, table=True):
    """Each webhook once: its id and its body deduplicate (neither header is signed, so a
    signed body re-sent with a new id is still the same delivery). Applying one claims it in
    the same transaction (processed_at), so it is applied once however many workers try;
    one that failed waits until next_attempt_at."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        sa.Index("uq_webhook_events_topic_digest", "topic", "body_digest", unique=True),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    webhook_id: str = Field(sa_column=sa.Column(sa.String(100), nullable=False, unique=True))
    topic: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    shop_domain: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    payload: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    received_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False)
    )
    processed_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True, index=True)
    )
    attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))
    body_digest: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    next_attempt_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True)
    )


class ConversationEvent(SQLModel, table=True):
    """What happened to a conversation besides its messages (docs/live.md): handed over, a
    team member joining or leaving, handed back, ended, abandoned, a contact address left.
    Its id orders it on the conversation's live stream, with the messages'."""

    __tablename__ = "conversation_events"
    __table_args__ = (sa.Index("ix_conversation_events_conversation_id", "conversation_id", "id"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    conversation_id: int = Field(
        sa_column=sa.Column(
            BigId, sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
        )
    )
    kind: str = Field(sa_column=sa.Column(sa.String(24), nullable=False))
    name: str | None = Field(default=None, sa_column=sa.Column(sa.String(80)))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False)
    )


class StaffMember(SQLModel, table=True):
    """A team member of a shop, by their session token's `sub`: the name shoppers see, and
    when their inbox was last open (the team is "online")."""

    __tablename__ = "staff_members"

    shop_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    )
    sub: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    display_name: str | None = Field(default=None, sa_column=sa.Column(sa.String(80)))
    seen_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True)
    )


class OAuthNonce(SQLModel, table=True):
    """An OAuth state nonce that has been used: a callback is accepted once per nonce."""

    __tablename__ = "oauth_nonces"

    nonce: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    used_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False)
    )


class DataRequest(SQLModel, table=True):
    """A customer's request for their data (customers/data_request), for the merchant to export."""

    __tablename__ = "data_requests"

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    shop_id: int = Field(
        sa_column=sa.Column(
            BigId, sa.ForeignKey("shops.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    customer_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    customer_email: str | None = Field(default=None, sa_column=sa.Column(sa.String(320)))
    request_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False)
    )


class RateLimitCounter(SQLModel, table=True):
    """Requests per bucket (a session, an IP, a shop) per window, shared by every worker."""

    __tablename__ = "rate_limit_counters"

    bucket: str = Field(sa_column=sa.Column(sa.String(200), primary_key=True))
    window_start: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True))
    count: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))


# The catalog's tables, in the same metadata.
from app.models.catalog import (  # noqa: E402
    Catalog,
    CatalogStagedRow,
    CatalogTerm,
    KnowledgeEntry,
    Product,
    ShopPolicy,
)

__all__ = [
    "BigId",
    "Catalog",
    "CatalogStagedRow",
    "CatalogTerm",
    "KnowledgeEntry",
    "Product",
    "ShopPolicy",
    "aware",
    "iso",
    "new_public_id",
    "utcnow",
]
