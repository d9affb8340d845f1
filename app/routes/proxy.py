"""The storefront API behind Shopify's app proxy: /apps/chat/... arrives here as /proxy/..."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import repo, turns
from app.conversations import handover, notices
from app.conversations.stream import message_json
from app.errors import Unauthorized
from app.models import aware
from app.repo.common import Executor
from app.repo.rows import ConversationRow, MessageRow
from app.routes import streams
from app.schemas.fields import read, read_query
from app.schemas.storefront import (
    HistoryQuery,
    SessionBody,
    SessionQuery,
    SessionStatus,
    Stopped,
    Ticket,
)
from app.shopify import ProxyIdentity, ProxyVerificationError
from app.state import AppState, state_of
from app.validation import read_json_object

NO_STORE = {"Cache-Control": "no-store"}


def _verify(request: Request) -> ProxyIdentity:
    try:
        return state_of(request).shopify.verify_app_proxy(
            path=request.scope["path"],
            query_string=request.scope["query_string"].decode("utf-8", "replace"),
        )
    except ProxyVerificationError as exc:
        raise Unauthorized(exc.code, exc.message) from exc


async def _caller(request: Request) -> turns.Caller:
    identity = _verify(request)
    async with state_of(request).db.connection() as connection:
        return await turns.installed_caller(connection, identity)


async def _session_in_body(request: Request) -> str:
    return read(SessionBody, await read_json_object(request)).session_id


async def post_message(request: Request) -> Response:
    return await streams.send_message(request, streams.Access(_verify(request)))


async def resume_reply(request: Request) -> Response:
    return await streams.resume_reply(request, streams.Access(_verify(request)))


async def issue_ticket(request: Request) -> Response:
    """A ticket for streaming from the app's own host (/direct/...), for this shop, this
    customer as the signed query names them, and this one session."""
    state = state_of(request)
    identity = _verify(request)
    async with state.db.connection() as connection:
        await turns.installed_caller(connection, identity)  # none for a shop not installed
    session_id = await _session_in_body(request)
    issued = state.tickets.issue(identity, session_id)
    ticket = Ticket(
        ticket=issued.ticket,
        expires_in=state.tickets.lifetime,
        expires_at=issued.expires_at.isoformat().replace("+00:00", "Z"),
        direct_url=f"{state.settings.shopify_app_url}/direct",
    )
    return JSONResponse(ticket.model_dump(), headers=NO_STORE)


async def _stop(state: AppState, reply: MessageRow) -> None:
    live = state.replies.live.get(reply.public_id)
    if live is not None:
        live.stop()
        try:
            await asyncio.wait_for(live.finished.wait(), 10)
        except TimeoutError:
            pass
    elif reply.status == "streaming":
        async with state.db.session() as session:
            await repo.mark_stopped(session, message_id=reply.id)


async def stop_reply(request: Request) -> Response:
    state = state_of(request)
    caller = await _caller(request)
    session_id = await _session_in_body(request)
    _conversation, reply = await streams.reply_of(request, caller, session_id)
    await _stop(state, reply)
    async with state.db.session() as session:
        saved = await repo.get_message_by_id(session, message_id=reply.id)
    assert saved is not None
    stopped = Stopped(
        assistant_message_id=saved.public_id, status=saved.status, content=saved.content
    )
    return JSONResponse(stopped.model_dump(), headers=NO_STORE)


def _status(session_id: str, status: str, handler: str = "assistant") -> Response:
    answer = SessionStatus.model_validate(
        {"session_id": session_id, "status": status, "handler": handler}
    )
    return JSONResponse(answer.model_dump(), headers=NO_STORE)


async def end_session(request: Request) -> Response:
    state = state_of(request)
    caller = await _caller(request)
    session_id = await _session_in_body(request)
    conversation = await streams.shoppers_conversation(state, caller, session_id)
    if conversation is None:
        return _status(session_id, "unknown")
    await handover.stop_replies(state, conversation.id, wait=False)
    async with state.db.session() as session:
        await repo.end_conversation(session, conversation_id=conversation.id)
        await repo.add_event(session, conversation_id=conversation.id, kind="ended")
    await notices.changed(state.bus, conversation, "ended")
    return _status(session_id, "ended")


async def session_status(request: Request) -> Response:
    state = state_of(request)
    caller = await _caller(request)
    session_id = read_query(request, SessionQuery).session_id
    conversation = await streams.shoppers_conversation(state, caller, session_id)
    if conversation is None:
        return _status(session_id, "unknown")
    state.presence.seen(caller.shop_id, session_id)  # a page load is the shopper's activity
    return _status(session_id, conversation.status, conversation.handler)


async def _customers_current(
    connection: Executor, caller: turns.Caller, own: ConversationRow | None
) -> ConversationRow | None:
    """The conversation a logged-in customer's device carries on (docs/live.md): the
    session's own, if it is active and at least as recent as any other of theirs; else their
    latest active one, from whichever device. A product's own conversation stays its own."""
    if own is not None and own.product_handle is not None:
        return own
    assert caller.customer_id is not None
    latest = await repo.customers_conversation(
        connection, shop_id=caller.shop_id, customer_id=caller.customer_id
    )
    if own is None or latest is None:
        return latest or own
    if own.status == "active" and aware(own.last_activity_at) >= aware(latest.last_activity_at):
        return own
    return latest


async def history(request: Request) -> Response:
    state = state_of(request)
    identity = _verify(request)
    query = read_query(request, HistoryQuery)
    session_id = query.session_id
    messages: list[MessageRow] = []
    more = False
    # Reads need no transaction: one connection, no BEGIN or COMMIT round trips.
    async with state.db.connection() as connection:
        caller = await turns.installed_caller(connection, identity)
        conversation = turns.visible(
            await repo.session_conversation(
                connection, shop_id=caller.shop_id, session_id=session_id
            ),
            caller,
        )
        if query.customer and caller.customer_id is not None:
            conversation = await _customers_current(connection, caller, conversation)
        if conversation is not None:
            session_id = conversation.session_id
            state.presence.seen(caller.shop_id, session_id)  # a page load: activity
            messages, more = await repo.history_page(
                connection, conversation_id=conversation.id, limit=query.limit, before=query.before
            )
    return JSONResponse(
        {
            "session_id": session_id,
            "status": conversation.status if conversation is not None else "unknown",
            "handler": conversation.handler if conversation is not None else "assistant",
            "messages": [message_json(m) for m in messages],
            "next_before": messages[0].public_id if more and messages else None,
        },
        headers=NO_STORE,
    )


routes = [
    Route("/proxy/messages", post_message, methods=["POST"]),
    Route("/proxy/messages/{message_id}/stream", resume_reply, methods=["GET"]),
    Route("/proxy/messages/{message_id}/stop", stop_reply, methods=["POST"]),
    Route("/proxy/sessions/end", end_session, methods=["POST"]),
    Route("/proxy/sessions/ticket", issue_ticket, methods=["POST"]),
    Route("/proxy/sessions/status", session_status, methods=["GET"]),
    Route("/proxy/history", history, methods=["GET"]),
]
