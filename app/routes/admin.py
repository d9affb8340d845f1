"""The merchant's JSON API under /api/admin/, authenticated by App Bridge session tokens."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app import repo, shopcache
from app.config import DEFAULT_SYSTEM_PROMPT
from app.errors import BadRequest, NotFound
from app.merchants import authenticate, publish_storefront_settings, state_of
from app.models import Conversation, Message, Shop, aware, utcnow
from app.validation import (
    clean_text,
    customer_id_param,
    date_param,
    int_param,
    read_json_object,
    uuid4_field,
)

STATUSES = ("active", "ended", "abandoned")
COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
DEFAULT_GREETING = "Hi! How can I help you today?"
DEFAULT_ACCENT = "#1f5f8b"
NO_STORE = {"Cache-Control": "no-store"}


def _iso(value: Any) -> str | None:
    return aware(value).isoformat().replace("+00:00", "Z") if value else None


def _filter(request: Request) -> repo.ConversationFilter:
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequest("invalid_status", f"status must be one of {', '.join(STATUSES)}.")
    q = clean_text(request.query_params.get("q") or "") or None
    if q is not None and len(q) > 200:
        raise BadRequest("invalid_q", "q is longer than 200 characters.")
    return repo.ConversationFilter(
        q=q,
        status=status,
        date_from=date_param(request, "from"),
        date_to=date_param(request, "to"),
        customer_id=customer_id_param(request),
    )


def _conversation_json(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.public_id,
        "status": conversation.status,
        "customer_id": conversation.customer_id,
        "created_at": _iso(conversation.created_at),
        "last_activity_at": _iso(conversation.last_activity_at),
    }


def _message_json(message: Message) -> dict[str, Any]:
    return {
        "id": message.public_id,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "created_at": _iso(message.created_at),
    }


async def list_conversations(request: Request) -> Response:
    merchant = await authenticate(request)
    where = _filter(request)
    limit = int_param(request, "limit", default=25, low=1, high=100)
    cursor = request.query_params.get("cursor")
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
    limit = int_param(request, "limit", default=200, low=1, high=500)
    after = uuid4_field(request.query_params.get("after"), "after", required=False)
    async with state_of(request).db.session() as session:
        conversation = await repo.find_conversation(
            session, shop_id=merchant.shop_id, public_id=public_id
        )
        if conversation is None or conversation.id is None:
            raise NotFound("conversation_not_found", "No such conversation in this shop.")
        messages, more = await repo.transcript(
            session, conversation_id=conversation.id, limit=limit, after=after
        )
    return JSONResponse(
        {
            "conversation": _conversation_json(conversation),
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


async def _settings_json(request: Request, shop: Shop) -> dict[str, Any]:
    assert shop.id is not None
    async with state_of(request).db.session() as session:
        faq = await repo.list_faq(session, shop_id=shop.id)
    return {
        "greeting": shop.greeting,
        "accent_color": shop.accent_color,
        "system_prompt": shop.system_prompt,
        "ai_provider": shop.ai_provider or "default",
        "ai_model": shop.ai_model,
        "retention_days": shop.retention_days,
        "faq": [{"question": f.question, "answer": f.answer} for f in faq],
        "defaults": {
            "greeting": DEFAULT_GREETING,
            "accent_color": DEFAULT_ACCENT,
            "system_prompt": DEFAULT_SYSTEM_PROMPT,
            "ai_provider": state_of(request).settings.ai_provider,
            "ai_model": state_of(request).settings.ai_model,
        },
        # What ai_model may be (besides null, the default): the operator's list.
        "ai_models": list(state_of(request).settings.ai_models),
    }


async def get_settings(request: Request) -> Response:
    merchant = await authenticate(request)
    return JSONResponse(await _settings_json(request, merchant.shop), headers=NO_STORE)


def _text(body: dict[str, Any], name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"invalid_{name}", f"{name} must be a string or null.")
    value = clean_text(value)
    if len(value) > limit:
        raise BadRequest(f"invalid_{name}", f"{name} is longer than {limit} characters.")
    return value or None


def _settings_values(
    body: dict[str, Any], models: tuple[str, ...]
) -> tuple[dict[str, object], list[tuple[str, str]] | None]:
    values: dict[str, object] = {}
    for name, limit in (("greeting", 200), ("system_prompt", 4000), ("ai_model", 100)):
        if name in body:
            values[name] = _text(body, name, limit)
    if values.get("ai_model") is not None and values["ai_model"] not in models:
        # The model runs on the operator's key: only one the operator listed (AI_MODELS).
        raise BadRequest(
            "invalid_ai_model",
            f"ai_model must be null (the default) or one of {', '.join(models)}.",
        )
    if "accent_color" in body:
        color = _text(body, "accent_color", 7)
        if color is not None and not COLOR.fullmatch(color):
            raise BadRequest("invalid_accent_color", "accent_color must look like #1f5f8b.")
        values["accent_color"] = color.lower() if color else None
    if "ai_provider" in body:
        provider = body["ai_provider"]
        if provider not in ("default", "offline"):
            raise BadRequest("invalid_ai_provider", "ai_provider must be 'default' or 'offline'.")
        values["ai_provider"] = None if provider == "default" else provider
    if "retention_days" in body:
        days = body["retention_days"]
        if isinstance(days, float) and days.is_integer():
            days = int(days)  # JSON has one number type: 30.0 is 30
        valid = days is None or (
            isinstance(days, int) and not isinstance(days, bool) and 1 <= days <= 3650
        )
        if not valid:
            raise BadRequest(
                "invalid_retention_days",
                "retention_days must be null (keep) or a whole number from 1 to 3650.",
            )
        values["retention_days"] = days
    faq = None
    if "faq" in body:
        entries = body["faq"]
        if not isinstance(entries, list) or len(entries) > 100:
            raise BadRequest("invalid_faq", "faq must be a list of at most 100 entries.")
        faq = []
        for index, entry in enumerate(entries):
            question = entry.get("question") if isinstance(entry, dict) else None
            answer = entry.get("answer") if isinstance(entry, dict) else None
            if isinstance(question, str) and isinstance(answer, str):
                question, answer = clean_text(question), clean_text(answer)
            if not (
                isinstance(question, str)
                and isinstance(answer, str)
                and question
                and answer
                and len(question) <= 300
                and len(answer) <= 2000
            ):
                raise BadRequest(
                    "invalid_faq",
                    f"faq entry {index + 1} needs a question (up to 300 characters) and an "
                    "answer (up to 2000).",
                )
            faq.append((question, answer))
    return values, faq


async def put_settings(request: Request) -> Response:
    merchant = await authenticate(request)
    body = await read_json_object(request)
    values, faq = _settings_values(body, state_of(request).settings.ai_models)
    state = state_of(request)
    async with state.db.session() as session:
        if values:
            await repo.update_settings(session, shop_id=merchant.shop_id, values=values)
        if faq is not None:
            await repo.replace_faq(session, shop_id=merchant.shop_id, entries=faq)
        shop = await repo.get_shop(session, domain=merchant.shop.domain)
    shopcache.forget(merchant.shop.domain)
    assert shop is not None
    synced = await publish_storefront_settings(state, shop)
    return JSONResponse(
        {**await _settings_json(request, shop), "storefront_synced": synced}, headers=NO_STORE
    )


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
                    _iso(conversation.created_at),
                    message.public_id,
                    message.role,
                    message.status,
                    _iso(message.created_at),
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
    where = _filter(request)
    kind = request.query_params.get("format") or "csv"
    if kind not in ("csv", "jsonl"):
        raise BadRequest("invalid_format", "format must be csv or jsonl.")
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
                    "created_at": _iso(r.created_at),
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
    Route("/api/admin/settings", get_settings, methods=["GET"]),
    Route("/api/admin/settings", put_settings, methods=["PUT"]),
    Route("/api/admin/export", export, methods=["GET"]),
    Route("/api/admin/data-requests", data_requests, methods=["GET"]),
]
