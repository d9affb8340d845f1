"""The merchant's settings: GET and PUT /api/admin/settings (what the assistant says and
how, the widget's look and streaming, the FAQ, retention), published to the storefront."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import repo, shopcache
from app.config import DEFAULT_SYSTEM_PROMPT
from app.merchants import authenticate
from app.repo.rows import AnyShop
from app.routes.admin import NO_STORE
from app.schemas.fields import read
from app.schemas.settings import SavedSettings, Settings, SettingsBody
from app.state import state_of
from app.storefront_settings import publish_storefront_settings
from app.validation import read_json_object

DEFAULT_GREETING = "Hi! How can I help you today?"
DEFAULT_ACCENT = "#1f5f8b"


async def _settings_json(request: Request, shop: AnyShop, **saved: bool) -> dict[str, Any]:
    assert shop.id is not None
    operator = state_of(request).settings
    async with state_of(request).db.session() as session:
        faq = await repo.list_faq(session, shop_id=shop.id)
    answer = (SavedSettings if saved else Settings).model_validate(
        {
            "greeting": shop.greeting,
            "accent_color": shop.accent_color,
            "system_prompt": shop.system_prompt,
            "ai_provider": shop.ai_provider or "default",
            "ai_model": shop.ai_model,
            "retention_days": shop.retention_days,
            "direct_streams": shop.direct_streams,
            "faq": [{"question": f.question, "answer": f.answer} for f in faq],
            "defaults": {
                "greeting": DEFAULT_GREETING,
                "accent_color": DEFAULT_ACCENT,
                "system_prompt": DEFAULT_SYSTEM_PROMPT,
                "ai_provider": operator.ai_provider,
                "ai_model": operator.ai_model,
                "direct_streams": operator.direct_streams,
            },
            "ai_models": list(operator.ai_models),
            **saved,
        }
    )
    return answer.model_dump()


async def get_settings(request: Request) -> Response:
    merchant = await authenticate(request)
    return JSONResponse(await _settings_json(request, merchant.shop), headers=NO_STORE)


async def put_settings(request: Request) -> Response:
    merchant = await authenticate(request)
    state = state_of(request)
    body = await read_json_object(request)
    changed = read(SettingsBody, body, models=state.settings.ai_models)
    values = changed.changes()
    faq = (
        [(e.question, e.answer) for e in changed.faq] if "faq" in changed.model_fields_set else None
    )
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
        await _settings_json(request, shop, storefront_synced=synced), headers=NO_STORE
    )


routes = [
    Route("/api/admin/settings", get_settings, methods=["GET"]),
    Route("/api/admin/settings", put_settings, methods=["PUT"]),
]
