"""The streaming endpoints, whoever vouched for the shopper: Shopify's app proxy (/proxy/...)
or a ticket it issued (/direct/...). Sending a message with its reply stream, and resuming a
reply, are the same code on both paths; only the authentication in front differs."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import Response

from app import repo, turns
from app.conversations import handover, notices
from app.errors import Conflict, NotFound, Unauthorized
from app.replies import Replies
from app.repo.rows import ConversationRow, MessageRow
from app.schemas.fields import read, read_query
from app.schemas.storefront import MessageBody, ResumeQuery, SessionBody, SessionQuery
from app.shopify import ProxyIdentity
from app.state import AppState, state_of
from app.streaming import SSE_HEADERS, EventStream, Output, reply_events, sse
from app.validation import read_json_object, uuid4_field


@dataclass(frozen=True)
class Access:
    """Who asks, as verified: the shop and logged-in customer, and how they came."""

    identity: ProxyIdentity
    # A ticket's one session; None behind the proxy, whose signature covers any session.
    session_id: str | None = None
    # Direct requests come from the shopper's browser, not through Shopify's proxy: their
    # address is one X-Forwarded-For entry nearer (app/ratelimit.py).
    direct: bool = False

    def allow(self, session_id: str) -> None:
        # A 401 like an expired ticket's: the widget's answer to both is to fetch a new ticket.
        if self.session_id is not None and session_id != self.session_id:
            raise Unauthorized(
                "ticket_not_for_session",
                "The chat ticket is for another chat session; fetch one for this session.",
            )


async def shoppers_conversation(
    state: AppState, caller: turns.Caller, session_id: str
) -> ConversationRow | None:
    async with state.db.connection() as connection:
        found = await repo.session_conversation(
            connection, shop_id=caller.shop_id, session_id=session_id
        )
    return turns.visible(found, caller)


def _event_stream(
    replies: Replies, state: AppState, reply: MessageRow, offset: int, start: dict[str, str]
) -> EventStream:
    output = Output()
    events = reply_events(
        replies=replies,
        db=state.db,
        message_id=reply.id,
        public_id=reply.public_id,
        offset=offset,
        start=start,
        output=output,
    )
    return EventStream(events, headers=SSE_HEADERS, output=output)


def _start_payload(
    conversation: ConversationRow, user: MessageRow | None, reply: MessageRow
) -> dict[str, str]:
    return {
        "conversation_id": conversation.public_id,
        "user_message_id": user.public_id if user else "",
        "assistant_message_id": reply.public_id,
    }


async def _retry_turn(
    state: AppState,
    caller: turns.Caller,
    conversation: ConversationRow,
    user: MessageRow,
    reply: MessageRow | None,
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


async def send_message(request: Request, access: Access) -> Response:
    state = state_of(request)
    identity = access.identity
    body = await read_json_object(request)
    # A ticket for another session is refused before the rest of the body is looked at.
    access.allow(read(SessionBody, body).session_id)
    turn = read(MessageBody, body)
    session_id, text, client_message_id = turn.session_id, turn.message, turn.client_message_id
    page = turn.context
    try:
        async with state.db.connection() as session:
            caller = await turns.installed_caller(session, identity)
            await state.limiter.check_turn(
                session,
                request=request,
                shop=identity.shop,
                session_id=session_id,
                client_message_id=client_message_id,
                direct=access.direct,
            )
            opened = await turns.open_turn(
                state, session, caller, session_id, text, client_message_id, page
            )
    except IntegrityError:
        # (Its rate limits were counted already: a turn that takes over is not counted twice.)
        opened = await turns.after_a_lost_race(
            state, caller, session_id, text, client_message_id, page
        )
    conversation, user, reply = opened.conversation, opened.user, opened.reply
    if conversation.handler != "assistant" and (
        (opened.earlier is not None and opened.earlier[1] is None) or user is not None
    ):
        # A person answers: the message is saved for the team, and no model is called.
        if opened.earlier is None:
            _announce_message(state, conversation)
        shown = opened.earlier[0] if opened.earlier is not None else user
        assert shown is not None
        return await _queued(state, conversation, shown)
    if opened.earlier is not None:
        return await _retry_turn(state, caller, conversation, *opened.earlier)
    assert reply is not None and opened.model_request is not None
    _announce_message(state, conversation)
    turns.begin_reply(state, caller, reply, opened.model_request, reply.worker_id, conversation)
    return _event_stream(state.replies, state, reply, 0, _start_payload(conversation, user, reply))


def _announce_message(state: AppState, conversation: ConversationRow) -> None:
    notices.changed_later(state.bus, conversation, "message")


async def _queued(state: AppState, conversation: ConversationRow, user: MessageRow) -> Response:
    online = await handover.team_online(state, conversation.shop_id)

    async def events() -> AsyncGenerator[bytes, None]:
        start = {
            "conversation_id": conversation.public_id,
            "user_message_id": user.public_id,
            "assistant_message_id": "",
        }
        yield sse("start", start)
        yield sse("queued", {"handler": conversation.handler, "team_online": online})

    return EventStream(events(), headers=SSE_HEADERS)


async def reply_of(
    request: Request, caller: turns.Caller, session_id: str
) -> tuple[ConversationRow, MessageRow]:
    state = state_of(request)
    public_id = uuid4_field(request.path_params["message_id"], "message_id")
    assert public_id is not None
    conversation = await shoppers_conversation(state, caller, session_id)
    reply = None
    if conversation is not None:
        async with state.db.session() as session:
            reply = await repo.get_message(
                session, conversation_id=conversation.id, public_id=public_id
            )
    if conversation is None or reply is None or reply.role != "assistant":
        raise NotFound("reply_not_found", "No such reply in this chat session.")
    return conversation, reply


async def resume_reply(request: Request, access: Access) -> Response:
    state = state_of(request)
    async with state.db.connection() as connection:
        caller = await turns.installed_caller(connection, access.identity)
    # A ticket for another session is refused before the rest of the query is looked at.
    access.allow(read_query(request, SessionQuery).session_id)
    header = request.headers.get("last-event-id")  # before last_event_id= in the query
    query = read_query(request, ResumeQuery, **({"last_event_id": header} if header else {}))
    session_id, last_event = query.session_id, query.last_event_id
    conversation, reply = await reply_of(request, caller, session_id)
    # An event id of another message (an earlier reply's) starts from the beginning.
    offset = last_event[1] if last_event and last_event[0] == reply.public_id else 0
    user = None
    if reply.reply_to_id is not None:
        async with state.db.session() as session:
            user = await repo.get_message_by_id(session, message_id=reply.reply_to_id)
    return _event_stream(
        state.replies, state, reply, offset, _start_payload(conversation, user, reply)
    )
