"""The merchant's JSON API under /api/admin/, authenticated by App Bridge session tokens."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app import repo
from app.conversations.handover import DEFAULT_NAME
from app.errors import BadRequest, NotFound
from app.merchants import authenticate
from app.models import Conversation, Message, aware, iso, utcnow
from app.repo.rows import ConversationRow, MessageRow
from app.repo.team import ONLINE_WITHIN
from app.schemas.fields import read_query
from app.schemas.merchant import ConversationsQuery, ExportQuery, Filters, TranscriptQuery
from app.state import state_of
from app.validation import uuid4_field

NO_STORE = {"Cache-Control": "no-store"}


def _where(filters: Filters) -> repo.ConversationFilter:
    return repo.ConversationFilter(
        q=filters.q,
        status=filters.status,
        date_from=filters.date_from,
        date_to=filters.date_to,
        customer_id=filters.customer_id,
    )


def _conversation_json(conversation: Conversation | ConversationRow) -> dict[str, Any]:
    return {
        "id": conversation.public_id,
        "status": conversation.status,
        "customer_id": conversation.customer_id,
        # The product a product's own conversation is about (None: the shop-wide chat).
        "product_handle": conversation.product_handle,
        "created_at": iso(conversation.created_at),
        "last_activity_at": iso(conversation.last_activity_at),
    }


def online(conversation: Conversation | ConversationRow, now: datetime) -> bool:
    """The shopper had the widget open lately (a heartbeat, a page load, an open stream)."""
    seen = conversation.seen_at
    return seen is not None and aware(seen) >= now - ONLINE_WITHIN


def live_conversation_json(
    conversation: Conversation | ConversationRow,
    names: dict[str, str],
    *,
    unread: bool | None = None,
) -> dict[str, Any]:
    """A conversation with who answers it (docs/live.md): the transcript's and the inbox's;
    `names` has the assignee's display name, if they set one."""
    assignee = conversation.assignee
    shown = {
        **_conversation_json(conversation),
        "handler": conversation.handler,
        "assignee": {"sub": assignee, "name": names.get(assignee, DEFAULT_NAME)}
        if assignee
        else None,
        "waiting_since": iso(conversation.waiting_since),
        "contact_email": conversation.contact_email,
        "online": online(conversation, utcnow()),
    }
    return shown if unread is None else {**shown, "unread": unread}


def _message_json(message: Message | MessageRow) -> dict[str, Any]:
    return {
        "id": message.public_id,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "created_at": iso(message.created_at),
        # What the assistant looked up and showed: its tool uses and product cards.
        "tools": json.loads(message.tools) if message.tools else [],
        "products": json.loads(message.products) if message.products else [],
        "author": message.author,
    }


async def list_conversations(request: Request) -> Response:
    merchant = await authenticate(request)
    query = read_query(request, ConversationsQuery)
    where, limit, cursor = _where(query), query.limit, query.cursor
    after = repo.decode_cursor(cursor) if cursor else None
    if cursor and after is None:
        raise BadRequest("invalid_cursor", "cursor is not one this API gave out.")
    async with state_of(request).db.session() as session:
        rows, more = await repo.list_conversations(
            session, shop_id=merchant.shop_id, where=where, limit=limit, after=after
        )
    return JSONResponse(
        {
            "conversations": [
                {
                    **_conversation_json(r.conversation),
                    "message_count": r.message_count,
                    "preview": r.preview,
                }
                for r in rows
            ],
            "next_cursor": repo.encode_cursor(rows[-1].conversation) if more and rows else None,
        },
        headers=NO_STORE,
    )


def _conversation_id(request: Request) -> str:
    public_id = uuid4_field(request.path_params["conversation_id"], "conversation_id")
    assert public_id is not None
    return public_id


async def get_conversation(request: Request) -> Response:
    merchant = await authenticate(request)
    public_id = _conversation_id(request)
    query = read_query(request, TranscriptQuery)
    limit, after = query.limit, query.after
    async with state_of(request).db.session() as session:
        conversation = await repo.conversation_by_id(
            session, shop_id=merchant.shop_id, public_id=public_id
        )
        if conversation is None or conversation.id is None:
            raise NotFound("conversation_not_found", "No such conversation in this shop.")
        messages, more = await repo.transcript(
            session, conversation_id=conversation.id, limit=limit, after=after
        )
        assignee = conversation.assignee
        names = await repo.staff_names(
            session, shop_id=merchant.shop_id, subs={assignee} if assignee else set()
        )
    return JSONResponse(
        {
            "conversation": live_conversation_json(conversation, names),
            "messages": [_message_json(m) for m in messages],
            "next_after": messages[-1].public_id if more and messages else None,
        },
        headers=NO_STORE,
    )


async def delete_conversation(request: Request) -> Response:
    merchant = await authenticate(request)
    public_id = _conversation_id(request)
    async with state_of(request).db.session() as session:
        deleted = await repo.delete_conversation(
            session, shop_id=merchant.shop_id, public_id=public_id
        )
    if not deleted:
        raise NotFound("conversation_not_found", "No such conversation in this shop.")
    return Response(status_code=204)


async def stats(request: Request) -> Response:
    merchant = await authenticate(request)
    async with state_of(request).db.session() as session:
        figures = await repo.shop_stats(session, shop_id=merchant.shop_id, now=utcnow())
    return JSONResponse(figures, headers=NO_STORE)


def _cell(value: str | None) -> str:
    # Shoppers write these texts; a leading = + - @ would run as a formula in a spreadsheet.
    text = value or ""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


async def _csv_lines(
    request: Request, shop_id: int, where: repo.ConversationFilter
) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "conversation_id",
            "session_id",
            "customer_id",
            "conversation_status",
            "started_at",
            "message_id",
            "role",
            "message_status",
            "sent_at",
            "content",
        ]
    )
    async with state_of(request).db.session() as session:
        async for conversation, message in repo.export_rows(session, shop_id=shop_id, where=where):
            writer.writerow(
                [
                    conversation.public_id,
                    conversation.session_id,
                    conversation.customer_id or "",
                    conversation.status,
                    iso(conversation.created_at),
                    message.public_id,
                    message.role,
                    message.status,
                    iso(message.created_at),
                    _cell(message.content),
                ]
            )
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


async def _jsonl_lines(
    request: Request, shop_id: int, where: repo.ConversationFilter
) -> AsyncIterator[str]:
    current: dict[str, Any] | None = None
    async with state_of(request).db.session() as session:
        async for conversation, message in repo.export_rows(session, shop_id=shop_id, where=where):
            if current is None or current["id"] != conversation.public_id:
                if current is not None:
                    yield json.dumps(current, ensure_ascii=False) + "\n"
                current = {
                    **_conversation_json(conversation),
                    "session_id": conversation.session_id,
                    "messages": [],
                }
            current["messages"].append(_message_json(message))
    if current is not None:
        yield json.dumps(current, ensure_ascii=False) + "\n"


async def export(request: Request) -> Response:
    merchant = await authenticate(request)
    query = read_query(request, ExportQuery)
    where, kind = _where(query), query.format
    stamp = utcnow().strftime("%Y%m%d-%H%M%S")
    name = f"conversations-{merchant.shop.domain.split('.')[0]}-{stamp}.{kind}"
    lines = (_csv_lines if kind == "csv" else _jsonl_lines)(request, merchant.shop_id, where)
    media = "text/csv; charset=utf-8" if kind == "csv" else "application/x-ndjson"
    return StreamingResponse(
        lines,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}"', **NO_STORE},
    )


async def data_requests(request: Request) -> Response:
    merchant = await authenticate(request)
    async with state_of(request).db.session() as session:
        rows = await repo.list_data_requests(session, shop_id=merchant.shop_id)
    return JSONResponse(
        {
            "data_requests": [
                {
                    "customer_id": r.customer_id,
                    "customer_email": r.customer_email,
                    "request_id": r.request_id,
                    "created_at": iso(r.created_at),
                }
                for r in rows
            ]
        },
        headers=NO_STORE,
    )


routes = [
    Route("/api/admin/conversations", list_conversations, methods=["GET"]),
    Route("/api/admin/conversations/{conversation_id}", get_conversation, methods=["GET"]),
    Route("/api/admin/conversations/{conversation_id}", delete_conversation, methods=["DELETE"]),
    Route("/api/admin/stats", stats, methods=["GET"]),
    Route("/api/admin/export", export, methods=["GET"]),
    Route("/api/admin/data-requests", data_requests, methods=["GET"]),
]
