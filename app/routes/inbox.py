"""The team's side of live conversations under /api/admin (docs/live.md): the inbox and its
live stream, taking a conversation, replying, handing it back, ending it, and the name a team
member shows shoppers. The team member is the session token's `sub`."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import repo
from app.conversations import notices
from app.conversations.handover import Team
from app.conversations.stream import message_json
from app.errors import NotFound, Unauthorized
from app.merchants import Merchant, authenticate
from app.models import aware, iso, utcnow
from app.repo.rows import ConversationRow
from app.repo.team import ONLINE_WITHIN
from app.routes.admin import NO_STORE, live_conversation_json, online
from app.schemas.fields import read
from app.schemas.merchant import StaffBody, TeamMessageBody
from app.state import state_of
from app.streaming import SSE_HEADERS, EventStream, sse
from app.validation import read_json_object, uuid4_field

KEEP_ALIVE = 20.0
SEEN_EVERY = 20.0


def _sub(merchant: Merchant) -> str:
    sub = merchant.token.claims.get("sub")
    if not isinstance(sub, str | int) or not str(sub) or len(str(sub)) > 64:
        raise Unauthorized("invalid_sub", "The session token names no staff member (sub).")
    return str(sub)


async def _team(request: Request) -> tuple[Merchant, Team]:
    merchant = await authenticate(request)
    return merchant, Team(state_of(request), merchant.shop_id, _sub(merchant))


async def _conversation(request: Request, merchant: Merchant) -> ConversationRow:
    public_id = uuid4_field(request.path_params["conversation_id"], "conversation_id")
    assert public_id is not None
    async with state_of(request).db.connection() as connection:
        found = await repo.shop_conversation(
            connection, shop_id=merchant.shop_id, public_id=public_id
        )
    if found is None:
        raise NotFound("conversation_not_found", "No such conversation in this shop.")
    return found


async def _answer(team: Team, conversation: ConversationRow, status: int = 200) -> Response:
    names = await team.names({conversation.assignee} if conversation.assignee else set())
    return JSONResponse(
        live_conversation_json(conversation, names, unread=False), status, headers=NO_STORE
    )


async def me(request: Request) -> Response:
    merchant, team = await _team(request)
    async with state_of(request).db.connection() as connection:
        name = await repo.staff_name(connection, shop_id=merchant.shop_id, sub=team.sub)
    return JSONResponse({"sub": team.sub, "display_name": name}, headers=NO_STORE)


async def set_me(request: Request) -> Response:
    merchant, team = await _team(request)
    body = read(StaffBody, await read_json_object(request))
    async with state_of(request).db.session() as session:
        await repo.set_staff_name(
            session, shop_id=merchant.shop_id, sub=team.sub, name=body.display_name
        )
    return JSONResponse({"sub": team.sub, "display_name": body.display_name}, headers=NO_STORE)


async def inbox(request: Request) -> Response:
    merchant, team = await _team(request)
    state = state_of(request)
    now = utcnow()
    async with state.db.session() as session:
        rows = await repo.inbox(session, shop_id=merchant.shop_id)
        team_online = await repo.team_online(session, shop_id=merchant.shop_id, now=now)
    subs = {c.assignee for queue in rows.queues.values() for c in queue if c.assignee}
    names = await team.names(subs)

    def item(conversation: ConversationRow) -> dict[str, Any]:
        last = rows.last.get(conversation.id)
        from_shopper, wrote_at = rows.last_from_shopper.get(conversation.id, (0, None))
        unread = from_shopper > (conversation.read_message_id or 0)
        waiting = conversation.waiting_since if conversation.handler == "waiting" else None
        return {
            **live_conversation_json(conversation, names, unread=unread),
            # Online: a heartbeat, a page load or an open stream, or a message just written.
            "online": online(conversation, now)
            or (wrote_at is not None and aware(wrote_at) >= now - ONLINE_WITHIN),
            "waiting_seconds": int((now - aware(waiting)).total_seconds()) if waiting else None,
            "first_question": conversation.first_question,
            "last_message": {"role": last[0], "content": last[1][:200], "created_at": iso(last[2])}
            if last
            else None,
        }

    return JSONResponse(
        {
            "counts": rows.counts,
            **{name: [item(c) for c in queue] for name, queue in rows.queues.items()},
            "team_online": team_online,
        },
        headers=NO_STORE,
    )


async def inbox_events(request: Request) -> Response:
    merchant, team = await _team(request)
    state = state_of(request)
    shop_id = merchant.shop_id

    async def events() -> AsyncGenerator[bytes, None]:
        deadline = time.monotonic() + state.settings.live_stream_seconds
        async with state.bus.subscribe(notices.inbox_channel(shop_id)) as subscription:
            await team.seen()
            next_seen = time.monotonic() + SEEN_EVERY
            yield b"retry: 1000\n\n" + sse("ready", {})
            while (left := deadline - time.monotonic()) > 0:
                try:
                    notice = await subscription.next(
                        min(left, KEEP_ALIVE, next_seen - time.monotonic())
                    )
                except StopAsyncIteration:  # the bus closed: the worker is stopping
                    return
                if notice is None:
                    if time.monotonic() >= next_seen:
                        next_seen = time.monotonic() + SEEN_EVERY
                        await team.seen()
                    yield b": keep-alive\n\n"
                    continue
                said = notices.decode(notice.payload) if notice.payload else {}
                data = {
                    "conversation_id": str(said.get("conversation_id", "")),
                    "kind": str(said.get("kind", "resync")),
                }
                yield sse("inbox", data)

    return EventStream(events(), headers=SSE_HEADERS)


async def take(request: Request) -> Response:
    merchant, team = await _team(request)
    conversation = await team.take(await _conversation(request, merchant))
    return await _answer(team, conversation)


async def post_message(request: Request) -> Response:
    merchant, team = await _team(request)
    body = read(TeamMessageBody, await read_json_object(request))
    message = await team.reply(await _conversation(request, merchant), body.message)
    return JSONResponse({"message": message_json(message)}, 201, headers=NO_STORE)


async def hand_back(request: Request) -> Response:
    merchant, team = await _team(request)
    conversation = await team.hand_back(await _conversation(request, merchant))
    return await _answer(team, conversation)


async def end(request: Request) -> Response:
    merchant, team = await _team(request)
    conversation = await team.end(await _conversation(request, merchant))
    return await _answer(team, conversation)


async def mark_read(request: Request) -> Response:
    merchant, team = await _team(request)
    conversation = await _conversation(request, merchant)
    async with state_of(request).db.session() as session:
        await repo.mark_read(session, conversation_id=conversation.id)
    return await _answer(team, conversation)


async def typing(request: Request) -> Response:
    merchant, team = await _team(request)
    await team.typing(await _conversation(request, merchant))
    return Response(status_code=204)


routes = [
    Route("/api/admin/me", me, methods=["GET"]),
    Route("/api/admin/me", set_me, methods=["PUT"]),
    Route("/api/admin/inbox", inbox, methods=["GET"]),
    Route("/api/admin/inbox/events", inbox_events, methods=["GET"]),
    Route("/api/admin/conversations/{conversation_id}/take", take, methods=["POST"]),
    Route("/api/admin/conversations/{conversation_id}/messages", post_message, methods=["POST"]),
    Route("/api/admin/conversations/{conversation_id}/hand-back", hand_back, methods=["POST"]),
    Route("/api/admin/conversations/{conversation_id}/end", end, methods=["POST"]),
    Route("/api/admin/conversations/{conversation_id}/read", mark_read, methods=["POST"]),
    Route("/api/admin/conversations/{conversation_id}/typing", typing, methods=["POST"]),
]
