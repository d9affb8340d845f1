"""Who answers a conversation (docs/live.md): the shopper or the assistant hands it over to a
person; a team member takes it, replies, hands it back or ends it. Each change is saved with
its event, then announced on the bus (app/conversations/notices.py)."""

from __future__ import annotations

import asyncio
import logging

from app import repo
from app.conversations import notices
from app.errors import Conflict, NotFound
from app.models import utcnow
from app.repo.rows import ConversationRow, MessageRow
from app.state import AppState

log = logging.getLogger("app.conversations")

DEFAULT_NAME = "Team member"
# The most shoppers' streams told at once that the team came online (longest waiting first);
# the others hear it when their stream next connects (LIVE_STREAM_SECONDS at most).
TELL_MOST = 500


def _refuse(changed: repo.Changed, names: dict[str, str]) -> None:
    if changed.refusal == "missing":
        raise NotFound("conversation_not_found", "No such conversation in this shop.")
    if changed.refusal == "ended":
        raise Conflict("conversation_ended", "This conversation has ended.")
    if changed.refusal == "taken":
        assert changed.conversation is not None
        holder = names.get(changed.conversation.assignee or "", DEFAULT_NAME)
        raise Conflict("conversation_taken", f"{holder} has this conversation.")


async def _announce(state: AppState, conversation: ConversationRow, kind: str) -> None:
    await notices.changed(state.bus, conversation, kind)


async def team_online(state: AppState, shop_id: int) -> bool:
    async with state.db.connection() as connection:
        return await repo.team_online(connection, shop_id=shop_id, now=utcnow()) > 0


async def hand_over(state: AppState, conversation_id: int) -> tuple[ConversationRow, bool]:
    """Ask for a person: the conversation waits for one (unless a person has it already).
    Returns it as it now is, and whether anyone of the team is online."""
    async with state.db.session() as session:
        changed = await repo.hand_over(session, conversation_id=conversation_id)
        if changed.changed:
            await repo.add_event(session, conversation_id=conversation_id, kind="handed_over")
    _refuse(changed, {})
    conversation = changed.conversation
    assert conversation is not None
    if changed.changed:
        await _announce(state, conversation, "handed_over")
    return conversation, await team_online(state, conversation.shop_id)


async def stop_replies(state: AppState, conversation_id: int, *, wait: bool = True) -> None:
    """The reply being generated in the conversation stops, saved as `stopped` (here, or by
    its worker, which sees the stop in the database on its next flush); with `wait`, once
    this worker's copy has saved it (a person stepping in)."""
    waiting = []
    for live in list(state.replies.live.values()):
        if live.conversation_id == conversation_id:
            live.stop()
            waiting.append(live.finished)
    async with state.db.session() as session:
        await repo.stop_conversation_replies(session, conversation_id=conversation_id)
    if waiting and wait:
        await asyncio.wait_for(asyncio.gather(*(done.wait() for done in waiting)), 10)


class Team:
    """One team member of one shop, as their session token names them."""

    def __init__(self, state: AppState, shop_id: int, sub: str) -> None:
        self.state = state
        self.shop_id = shop_id
        self.sub = sub

    async def name(self) -> str:
        async with self.state.db.connection() as connection:
            return await repo.staff_name(connection, shop_id=self.shop_id, sub=self.sub) or (
                DEFAULT_NAME
            )

    async def names(self, subs: set[str]) -> dict[str, str]:
        if not subs:
            return {}
        # (An IN list: through SQLAlchemy, not the hot path's statements, app/pgfast.py.)
        async with self.state.db.session() as session:
            return await repo.staff_names(session, shop_id=self.shop_id, subs=subs)

    async def seen(self) -> None:
        """The team member has the inbox open. If nobody of the team was online before, the
        streams of the conversations waiting for a person or held by one say so at once.
        (Two opening it at the same moment may both tell them: the same state, twice.)"""
        now = utcnow()
        async with self.state.db.session() as session:
            was_online = await repo.team_online(session, shop_id=self.shop_id, now=now) > 0
            await repo.staff_seen(session, shop_id=self.shop_id, sub=self.sub, now=now)
            waiting = (
                []
                if was_online
                else await repo.handed_over_sessions(session, shop_id=self.shop_id, limit=TELL_MOST)
            )
        if waiting:  # once written: each stream reads the team as online
            await notices.team_online(self.state.bus, shop_id=self.shop_id, session_ids=waiting)

    async def _refused(self, changed: repo.Changed) -> None:
        holder = changed.conversation.assignee if changed.conversation else None
        _refuse(changed, await self.names({holder} if holder else set()))

    async def take(self, conversation: ConversationRow) -> ConversationRow:
        """Exactly one of two team members taking it at once gets it; the other is told who
        has it (a 409)."""
        name = await self.name()
        async with self.state.db.session() as session:
            changed = await repo.take(session, conversation_id=conversation.id, sub=self.sub)
            joined = (
                changed.changed
                and changed.conversation is not None
                and (conversation.assignee != self.sub or conversation.handler != "team")
            )
            if joined:
                await repo.add_event(
                    session, conversation_id=conversation.id, kind="joined", name=name
                )
        await self._refused(changed)
        taken = changed.conversation
        assert taken is not None
        if joined:
            await stop_replies(self.state, conversation.id)
            await _announce(self.state, taken, "joined")
        return taken

    async def reply(self, conversation: ConversationRow, text: str) -> MessageRow:
        """A reply takes the conversation if nobody holds it; the shopper sees it at once.
        Taken and written in one transaction: the conditional UPDATE holds the row, so
        nobody takes it in between, and a refused reply writes nothing."""
        name = await self.name()
        async with self.state.db.session() as session:
            changed = await repo.take(session, conversation_id=conversation.id, sub=self.sub)
            joined = changed.changed and (
                conversation.assignee != self.sub or conversation.handler != "team"
            )
            message = None
            if changed.changed:
                if joined:
                    await repo.add_event(
                        session, conversation_id=conversation.id, kind="joined", name=name
                    )
                message = await repo.add_team_message(
                    session, conversation_id=conversation.id, content=text, author=name
                )
        await self._refused(changed)
        assert changed.conversation is not None and message is not None
        if joined:
            await stop_replies(self.state, conversation.id)
        await _announce(self.state, changed.conversation, "message")
        return message

    async def hand_back(self, conversation: ConversationRow) -> ConversationRow:
        name = await self.name()
        async with self.state.db.session() as session:
            changed = await repo.hand_back(session, conversation_id=conversation.id, sub=self.sub)
            if changed.changed:
                if conversation.assignee is not None:
                    await repo.add_event(
                        session, conversation_id=conversation.id, kind="left", name=name
                    )
                await repo.add_event(session, conversation_id=conversation.id, kind="handed_back")
        await self._refused(changed)
        assert changed.conversation is not None
        if changed.changed:
            await _announce(self.state, changed.conversation, "handed_back")
        return changed.conversation

    async def end(self, conversation: ConversationRow) -> ConversationRow:
        """Ended by the team: the shopper's next page starts a new conversation."""
        name = await self.name()
        async with self.state.db.session() as session:
            changed = await repo.end_by_team(session, conversation_id=conversation.id, sub=self.sub)
            if changed.changed:
                await repo.add_event(
                    session, conversation_id=conversation.id, kind="ended", name=name
                )
        await self._refused(changed)
        assert changed.conversation is not None
        if changed.changed:
            await stop_replies(self.state, conversation.id)
            await _announce(self.state, changed.conversation, "ended")
        return changed.conversation

    async def typing(self, conversation: ConversationRow) -> None:
        await notices.typing(
            self.state.bus,
            shop_id=conversation.shop_id,
            session_id=conversation.session_id,
            name=await self.name(),
        )
