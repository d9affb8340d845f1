"""The storefront API behind Shopify's app proxy: /apps/chat/... arrives here as /proxy/..."""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import repo, turns
from app.errors import Conflict, NotFound, Unauthorized
from app.models import Conversation, Message, aware
from app.replies import Replies
from app.shopify import ProxyIdentity, ProxyVerificationError
from app.state import AppState
from app.streaming import SSE_HEADERS, EventStream, reply_events
from app.validation import (
    int_param,
    last_event_param,
    message_text,
    read_json_object,
    session_id_param,
    uuid4_field,
)

NO_STORE = {"Cache-Control": "no-store"}


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.chat
    return state


def _verify(request: Request) -> ProxyIdentity:
    try:
        return _state(request).shopify.verify_app_proxy(
            path=request.scope["path"],
            query_string=request.scope["query_string"].decode("utf-8", "replace"),
        )
    except ProxyVerificationError as exc:
        raise Unauthorized(exc.code, exc.message) from exc


async def _caller(request: Request) -> turns.Caller:
    identity = _verify(request)
    async with _state(request).db.fast_autocommit() as connection:
        return await turns.installed_caller(connection, identity)


async def _session_in_body(request: Request) -> str:
    body = await read_json_object(request)
    session_id = uuid4_field(body.get("session_id"), "session_id")
    assert session_id is not None
    return session_id


async def _find_conversation(
    state: AppState, caller: turns.Caller, session_id: str
) -> Conversation | None:
    async with state.db.fast_autocommit() as connection:
        found = await repo.get_conversation(
            connection, shop_id=caller.shop_id, session_id=session_id
        )
    return turns.visible(found, caller)


def _event_stream(
    replies: Replies, state: AppState, reply: Message, offset: int, start: dict[str, str]
) -> EventStream:
    assert reply.id is not None
    events = reply_events(
        replies=replies,
        db=state.db,
        message_id=reply.id,
        public_id=reply.public_id,
        offset=offset,
        start=start,
    )
    return EventStream(events, headers=SSE_HEADERS)


def _start_payload(
    conversation: Conversation, user: Message | None, reply: Message
) -> dict[str, str]:
    return {
        "conversation_id": conversation.public_id,
        "user_message_id": user.public_id if user else "",
        "assistant_message_id": reply.public_id,
    }


async def _retry_turn(
    state: AppState,
    caller: turns.Caller,
    conversation: Conversation,
    user: Message,
    reply: Message | None,
) -> Response:
    """A repeated client_message_id: show the same turn again, regenerating it if it failed
    or if the worker generating it is known to be dead."""
    if reply is None:
        raise Conflict("turn_in_progress", "This message is still being processed.")
    if reply.status in ("error", "streaming") and reply.public_id not in state.replies.live:
        if reply.status == "streaming":
            await state.replies.heartbeat.take_over(conversation_id=reply.conversation_id)
        # Whoever ended it, one retry restarts it (the restart is conditional on the error);
        # a reply still streaming is left to its worker and followed.
        await turns.restart_reply(state, caller, reply)
    return _event_stream(state.replies, state, reply, 0, _start_payload(conversation, user, reply))


async def post_message(request: Request) -> Response:
    state = _state(request)
    identity = _verify(request)
    body = await read_json_object(request)
    session_id = uuid4_field(body.get("session_id"), "session_id")
    text = message_text(body.get("message"))
    client_message_id = uuid4_field(
        body.get("client_message_id"), "client_message_id", required=False
    )
    assert session_id is not None
    try:
        async with state.db.fast_writes() as session:
            caller = await turns.installed_caller(session, identity)
            await state.limiter.check_turn(
                session, request=request, shop=identity.shop, session_id=session_id
            )
            opened = await turns.open_turn(
                state, session, caller, session_id, text, client_message_id
            )
    except IntegrityError:
        # (Its rate limits were counted already: a turn that takes over is not counted twice.)
        opened = await turns.after_a_lost_race(state, caller, session_id, text, client_message_id)
    conversation, user, reply = opened.conversation, opened.user, opened.reply
    if opened.earlier is not None:
        return await _retry_turn(state, caller, conversation, *opened.earlier)
    assert reply is not None and opened.model_request is not None
    turns.begin_reply(state, caller, reply, opened.model_request, reply.worker_id)
    return _event_stream(state.replies, state, reply, 0, _start_payload(conversation, user, reply))


async def _reply_of(
    request: Request, caller: turns.Caller, session_id: str
) -> tuple[Conversation, Message]:
    state = _state(request)
    public_id = uuid4_field(request.path_params["message_id"], "message_id")
    assert public_id is not None
    conversation = await _find_conversation(state, caller, session_id)
    reply = None
    if conversation is not None and conversation.id is not None:
        async with state.db.session() as session:
            reply = await repo.get_message(
                session, conversation_id=conversation.id, public_id=public_id
            )
    if conversation is None or reply is None or reply.role != "assistant":
        raise NotFound("reply_not_found", "No such reply in this chat session.")
    return conversation, reply


async def resume_reply(request: Request) -> Response:
    state = _state(request)
    caller = await _caller(request)
    session_id = session_id_param(request)
    last_event = last_event_param(request)
    conversation, reply = await _reply_of(request, caller, session_id)
    # An event id of another message (an earlier reply's) starts from the beginning.
    offset = last_event[1] if last_event and last_event[0] == reply.public_id else 0
    user = None
    if reply.reply_to_id is not None:
        async with state.db.session() as session:
            user = await repo.get_message_by_id(session, message_id=reply.reply_to_id)
    return _event_stream(
        state.replies, state, reply, offset, _start_payload(conversation, user, reply)
    )


async def _stop(state: AppState, reply: Message) -> None:
    live = state.replies.live.get(reply.public_id)
    if live is not None:
        live.stop()
        try:
            await asyncio.wait_for(live.finished.wait(), 10)
        except TimeoutError:
            pass
    elif reply.status == "streaming":
        async with state.db.session() as session:
            await repo.mark_stopped(session, message_id=reply.id or 0)


async def stop_reply(request: Request) -> Response:
    state = _state(request)
    caller = await _caller(request)
    session_id = await _session_in_body(request)
    _conversation, reply = await _reply_of(request, caller, session_id)
    await _stop(state, reply)
    async with state.db.session() as session:
        saved = await repo.get_message_by_id(session, message_id=reply.id or 0)
    assert saved is not None
    return JSONResponse(
        {"assistant_message_id": saved.public_id, "status": saved.status, "content": saved.content},
        headers=NO_STORE,
    )


async def end_session(request: Request) -> Response:
    state = _state(request)
    caller = await _caller(request)
    session_id = await _session_in_body(request)
    conversation = await _find_conversation(state, caller, session_id)
    if conversation is None or conversation.id is None:
        return JSONResponse({"session_id": session_id, "status": "unknown"}, headers=NO_STORE)
    for live in list(state.replies.live.values()):
        if live.conversation_id == conversation.id:
            live.stop()
    async with state.db.session() as session:
        await repo.stop_conversation_replies(session, conversation_id=conversation.id)
        await repo.end_conversation(session, conversation_id=conversation.id)
    return JSONResponse({"session_id": session_id, "status": "ended"}, headers=NO_STORE)


async def session_status(request: Request) -> Response:
    state = _state(request)
    caller = await _caller(request)
    session_id = session_id_param(request)
    conversation = await _find_conversation(state, caller, session_id)
    status = conversation.status if conversation else "unknown"
    return JSONResponse({"session_id": session_id, "status": status}, headers=NO_STORE)


def _message_json(message: Message) -> dict[str, str | None]:
    return {
        "id": message.public_id,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "created_at": aware(message.created_at).isoformat().replace("+00:00", "Z"),
        # The shopper's own id of the message (None for replies): after a reload the widget
        # retries a failed last turn with it, so the retry is the same turn, not a new one.
        "client_message_id": message.client_message_id,
    }


async def history(request: Request) -> Response:
    state = _state(request)
    identity = _verify(request)
    session_id = session_id_param(request)
    limit = int_param(request, "limit", default=50, low=1, high=100)
    before = uuid4_field(request.query_params.get("before"), "before", required=False)
    messages: list[Message] = []
    more = False
    # Reads need no transaction: one connection, no BEGIN or COMMIT round trips.
    async with state.db.fast_autocommit() as connection:
        caller = await turns.installed_caller(connection, identity)
        conversation = turns.visible(
            await repo.get_conversation(connection, shop_id=caller.shop_id, session_id=session_id),
            caller,
        )
        if conversation is not None and conversation.id is not None:
            messages, more = await repo.history_page(
                connection, conversation_id=conversation.id, limit=limit, before=before
            )
    return JSONResponse(
        {
            "session_id": session_id,
            "status": conversation.status if conversation is not None else "unknown",
            "messages": [_message_json(m) for m in messages],
            "next_before": messages[0].public_id if more and messages else None,
        },
        headers=NO_STORE,
    )


routes = [
    Route("/proxy/messages", post_message, methods=["POST"]),
    Route("/proxy/messages/{message_id}/stream", resume_reply, methods=["GET"]),
    Route("/proxy/messages/{message_id}/stop", stop_reply, methods=["POST"]),
    Route("/proxy/sessions/end", end_session, methods=["POST"]),
    Route("/proxy/sessions/status", session_status, methods=["GET"]),
    Route("/proxy/history", history, methods=["GET"]),
]
