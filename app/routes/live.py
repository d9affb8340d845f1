"""The shopper's side of live conversations, behind the app proxy (docs/live.md): the
session's live stream, asking for a person, leaving an email address, the heartbeat."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import repo, turns
from app.conversations import handover, notices
from app.conversations.stream import Cursor, SessionStream
from app.errors import Conflict
from app.repo.rows import ConversationRow
from app.routes.proxy import NO_STORE, _caller, _session_in_body
from app.schemas.fields import read, read_query
from app.schemas.storefront import (
    ContactBody,
    ContactSaved,
    HandedOver,
    LiveQuery,
    Presence,
)
from app.state import AppState, state_of
from app.streaming import SSE_HEADERS, EventStream
from app.validation import read_json_object


async def _opened(state: AppState, caller: turns.Caller, session_id: str) -> ConversationRow:
    """The session's conversation, begun if it has none (asking for a person, or leaving an
    address, before writing anything is a conversation too)."""
    async with state.db.session() as session:
        conversation, _ = await repo.open_conversation(
            session, shop_id=caller.shop_id, session_id=session_id, customer_id=caller.customer_id
        )
    turns.check_open(conversation, caller)
    return conversation


async def live_events(request: Request) -> Response:
    state = state_of(request)
    caller = await _caller(request)
    header = request.headers.get("last-event-id")  # before last_event_id= in the query
    query = read_query(request, LiveQuery, **({"last_event_id": header} if header else {}))
    stream = SessionStream(state, caller, query.session_id)
    return EventStream(stream.events(Cursor.parse(query.last_event_id)), headers=SSE_HEADERS)


async def hand_over(request: Request) -> Response:
    state = state_of(request)
    caller = await _caller(request)
    session_id = await _session_in_body(request)
    conversation = await _opened(state, caller, session_id)
    conversation, online = await handover.hand_over(state, conversation.id)
    answer = HandedOver(
        session_id=session_id,
        status=conversation.status,
        handler=conversation.handler,
        team_online=online,
    )
    return JSONResponse(answer.model_dump(), headers=NO_STORE)


async def contact(request: Request) -> Response:
    state = state_of(request)
    caller = await _caller(request)
    body = read(ContactBody, await read_json_object(request))
    conversation = await _opened(state, caller, body.session_id)
    if conversation.status == "ended":
        raise Conflict("session_ended", "This chat session has ended; start a new one.")
    async with state.db.session() as session:
        saved = await repo.save_contact(session, conversation_id=conversation.id, email=body.email)
        if saved:
            await repo.add_event(session, conversation_id=conversation.id, kind="contact_saved")
    if saved:
        await notices.changed(state.bus, conversation, "contact_saved")
    answer = ContactSaved(session_id=body.session_id, contact_email=True)
    return JSONResponse(answer.model_dump(), headers=NO_STORE)


async def heartbeat(request: Request) -> Response:
    """Noted, written with the others in a few seconds' time (app/conversations/presence.py):
    no database work here beyond the shop's cached lookup."""
    state = state_of(request)
    caller = await _caller(request)
    session_id = await _session_in_body(request)
    state.presence.seen(caller.shop_id, session_id)
    return JSONResponse(Presence(session_id=session_id, ok=True).model_dump(), headers=NO_STORE)


routes = [
    Route("/proxy/sessions/events", live_events, methods=["GET"]),
    Route("/proxy/sessions/handover", hand_over, methods=["POST"]),
    Route("/proxy/sessions/contact", contact, methods=["POST"]),
    Route("/proxy/sessions/heartbeat", heartbeat, methods=["POST"]),
]
