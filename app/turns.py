"""A shopper's turn: who is asking (the verified shop and customer), opening the turn or finding
the earlier one of a retry, what the model is told, and starting or restarting the reply.
The storefront routes (app/routes/proxy.py) read the request and shape the answer."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Hashable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import repo, shopcache
from app.ai import ChatTurn, FaqItem, ReplyRequest, fit_context
from app.assistant import prompt
from app.assistant import tools as assistant_tools
from app.assistant.tools import Toolbox
from app.config import DEFAULT_SYSTEM_PROMPT
from app.conversations import handover, notices
from app.errors import Conflict, Forbidden
from app.repo.common import Executor
from app.repo.rows import ConversationRow, MessageRow, ShopRow
from app.shopify import ProxyIdentity
from app.state import AppState
from app.validation import PageContext

NO_PAGE = PageContext()


@dataclass(frozen=True)
class Caller:
    """The verified shop (as plain values, safe after a rollback) and logged-in customer."""

    shop_id: int
    domain: str
    system_prompt: str | None
    ai_provider: str | None
    ai_model: str | None
    customer_id: str | None


def database_of(session: Executor) -> Hashable:
    """Which database a cache entry came from (the tests run several side by side): its
    engine, hashed by identity. Its URL hashes by rendering itself, which cost a streaming
    worker more than the cached read saved (bench/)."""
    bind = session.bind if isinstance(session, AsyncSession) else session.engine
    return getattr(bind, "sync_engine", None)


async def installed_caller(session: Executor, identity: ProxyIdentity) -> Caller:
    async def load() -> ShopRow | None:
        shop = await repo.get_shop(session, domain=identity.shop)
        return shop if shop is not None and shop.installed else None

    shop = await shopcache.cached(database_of(session), "shop", identity.shop, load)
    if shop is None:
        raise Forbidden("shop_not_installed", f"{identity.shop} has not installed this app.")
    return Caller(
        shop_id=shop.id,
        domain=shop.domain,
        system_prompt=shop.system_prompt,
        ai_provider=shop.ai_provider,
        ai_model=shop.ai_model,
        customer_id=identity.customer_id,
    )


def visible(conversation: ConversationRow | None, caller: Caller) -> ConversationRow | None:
    """A conversation a logged-in customer started is theirs alone."""
    if conversation is None:
        return None
    if conversation.customer_id is not None and conversation.customer_id != caller.customer_id:
        return None
    return conversation


def check_open(conversation: ConversationRow, caller: Caller) -> None:
    if visible(conversation, caller) is None:
        raise Forbidden(
            "session_not_yours",
            "This chat session belongs to another customer; start a new session.",
        )
    if conversation.status == "ended":
        raise Conflict("session_ended", "This chat session has ended; start a new one.")


async def reply_request(
    state: AppState,
    session: Executor,
    caller: Caller,
    reply: MessageRow,
    first: MessageRow | None = None,
    page_product: str | None = None,
) -> ReplyRequest:
    """What the model is given: the shop's prompt and FAQ, the conversation so far, the tools
    over its catalog, and the product on the shopper's page (a handle, looked up in this
    shop's catalog: nothing else the client sends about it is trusted)."""
    if first is not None:
        context = [first]  # a new conversation has nothing else to read
    else:
        context = await repo.recent_context(
            session, conversation_id=reply.conversation_id, before_id=reply.id
        )
    faq = await shopcache.cached(
        database_of(session),
        "faq",
        caller.domain,
        lambda: repo.list_faq(session, shop_id=caller.shop_id),
    )
    turns = [ChatTurn(role=m.role, content=m.content) for m in context]
    has_products, has_policies = await shopcache.cached(
        database_of(session),
        "catalog",
        caller.domain,
        lambda: repo.catalog_presence(session, shop_id=caller.shop_id),
    )
    # Only the tools that can find something: a shop without a catalog pays for no search.
    tools = []
    if has_products:
        tools += [assistant_tools.SEARCH_PRODUCTS, assistant_tools.GET_PRODUCT]
    if has_policies or faq:
        tools.append(assistant_tools.SEARCH_POLICIES)
    searches = bool(tools)
    # Any conversation can go to a person (docs/live.md).
    tools.append(assistant_tools.HAND_OVER)
    page = None
    if page_product is not None and has_products:
        page = await repo.visible_product(session, shop_id=caller.shop_id, handle=page_product)
    return ReplyRequest(
        system_prompt=prompt.system_prompt(
            caller.system_prompt or DEFAULT_SYSTEM_PROMPT, tools=searches, page_product=page
        ),
        messages=fit_context(turns, state.settings.ai_context_chars),
        faq=[FaqItem(question=f.question, answer=f.answer) for f in faq],
        # A model the operator has since taken off AI_MODELS falls back to the default.
        model=caller.ai_model if caller.ai_model in state.settings.ai_models else None,
        tools=tools,
        page_product=page,
    )


def begin_reply(
    state: AppState,
    caller: Caller,
    reply: MessageRow,
    request: ReplyRequest,
    worker_id: str | None,
    conversation: ConversationRow | None = None,
) -> None:
    """Generate the reply here, as `worker_id`: what its row records (or None). With the
    conversation, its shop's inboxes hear when the reply has ended (docs/live.md)."""
    # A merchant may keep their assistant offline (FAQ only) whatever the app's AI service is.
    provider = state.offline if caller.ai_provider == "offline" else None
    live = state.replies.begin(
        message_id=reply.id,
        public_id=reply.public_id,
        conversation_id=reply.conversation_id,
        worker_id=worker_id,
        request=request,
        provider=provider,
        toolbox=Toolbox(
            state.db,
            caller.shop_id,
            [t.name for t in request.tools],
            hand_over=functools.partial(_assistant_hands_over, state, reply.conversation_id),
        )
        if request.tools
        else None,
        tool_rounds=state.settings.ai_tool_rounds,
    )
    if conversation is not None:
        notices.soon(_announce_when_done(state, live.finished, conversation))


async def _announce_when_done(
    state: AppState, finished: asyncio.Event, conversation: ConversationRow
) -> None:
    await finished.wait()
    notices.inbox_changed_later(
        state.bus, shop_id=conversation.shop_id, conversation=conversation.public_id, kind="reply"
    )


async def _assistant_hands_over(state: AppState, conversation_id: int) -> bool:
    """The model's hand_over_to_person tool: whether anyone of the team is online."""
    _conversation, online = await handover.hand_over(state, conversation_id)
    return online


async def restart_reply(state: AppState, caller: Caller, reply: MessageRow) -> None:
    """Regenerate a failed reply here, if no other retry restarted it first."""
    worker_id = state.replies.heartbeat.stamp
    for attempt in (1, 2):
        try:
            async with state.db.session() as session:
                restarted = await repo.restart_failed_reply(
                    session, message_id=reply.id, worker_id=worker_id
                )
            break
        except IntegrityError:
            # Another reply streams in the conversation (a second tab's turn): the retry
            # waits for it, as a new turn would, unless that reply's worker is dead.
            if attempt == 2 or not await state.replies.heartbeat.take_over(
                conversation_id=reply.conversation_id
            ):
                raise Conflict(
                    "turn_in_progress",
                    "The assistant is still answering another message; retry when it is done.",
                ) from None
    if restarted:
        async with state.db.session() as session:
            # A product's own conversation is still about it (a page's context is not kept).
            product = await repo.conversation_product(
                session, conversation_id=reply.conversation_id
            )
            model_request = await reply_request(state, session, caller, reply, page_product=product)
        begin_reply(state, caller, reply, model_request, worker_id)


@dataclass
class Opened:
    """A turn this request saved, or the earlier turn of its client_message_id (a retry)."""

    conversation: ConversationRow
    user: MessageRow | None = None
    reply: MessageRow | None = None
    model_request: ReplyRequest | None = None
    earlier: tuple[MessageRow, MessageRow | None] | None = None


async def open_turn(
    state: AppState,
    session: Executor,
    caller: Caller,
    session_id: str,
    text: str,
    client_message_id: str | None,
    page: PageContext = NO_PAGE,
) -> Opened:
    # The conversation (on a first message), the shopper's message and the empty reply are
    # saved together, before the model is called: one statement on PostgreSQL.
    turn = await repo.open_turn(
        session,
        shop_id=caller.shop_id,
        session_id=session_id,
        customer_id=caller.customer_id,
        content=text,
        client_message_id=client_message_id,
        worker_id=state.replies.heartbeat.stamp,
        product_handle=page.product if page.product_conversation else None,
    )
    conversation = turn.conversation
    check_open(conversation, caller)
    if turn.user is not None and turn.reply is None:
        return Opened(conversation, turn.user)  # a person answers: the assistant is quiet
    if turn.user is None or turn.reply is None:
        # This client_message_id already has its turn: the shopper's retry.
        earlier = await repo.find_turn(
            session, conversation_id=conversation.id, client_message_id=client_message_id or ""
        )
        if earlier is None:
            raise Conflict("turn_in_progress", "This message is still being processed.")
        return Opened(conversation, earlier=earlier)
    model_request = await reply_request(
        state,
        session,
        caller,
        turn.reply,
        first=turn.user if turn.created else None,
        # The page's product, or the product the conversation is about.
        page_product=page.product or conversation.product_handle,
    )
    return Opened(conversation, turn.user, turn.reply, model_request)


async def after_a_lost_race(
    state: AppState,
    caller: Caller,
    session_id: str,
    text: str,
    client_message_id: str | None,
    page: PageContext = NO_PAGE,
) -> Opened:
    """The turn was refused by a unique index: a racing request with the same
    client_message_id won (this is its retry), or another reply streams in the conversation.
    That one's worker may be known to be dead: then this turn ends it and goes ahead."""
    async with state.db.session() as session:
        conversation, _ = await repo.open_conversation(
            session, shop_id=caller.shop_id, session_id=session_id, customer_id=caller.customer_id
        )
        if client_message_id:
            earlier = await repo.find_turn(
                session, conversation_id=conversation.id, client_message_id=client_message_id
            )
            if earlier is not None:
                return Opened(conversation, earlier=earlier)
    if await state.replies.heartbeat.take_over(conversation_id=conversation.id):
        try:
            async with state.db.connection() as session:
                return await open_turn(
                    state, session, caller, session_id, text, client_message_id, page
                )
        except IntegrityError:
            pass  # another turn went ahead first: the unique index lets one through
    raise Conflict(
        "turn_in_progress",
        "The assistant is still answering the previous message; wait or stop it first.",
    )
