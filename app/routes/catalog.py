"""The merchant's view of their catalog under /api/admin/catalog: what is imported, how the
import goes, and a button to import it again."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import repo
from app.catalog import sync as catalog_sync
from app.merchants import authenticate
from app.models import iso
from app.routes.admin import NO_STORE
from app.schemas.merchant import Catalog
from app.state import state_of


async def _catalog_json(request: Request, shop_id: int) -> dict[str, Any]:
    async with state_of(request).db.session() as session:
        catalog = await repo.catalog_of(session, shop_id=shop_id)
        visible = await repo.count_visible(session, shop_id=shop_id)
    answer = Catalog.model_validate(
        {
            "products": visible,
            "status": catalog.status if catalog else "none",
            "method": catalog.method if catalog else None,
            "products_done": catalog.products_done if catalog else 0,
            "products_total": catalog.products_total if catalog else None,
            "started_at": iso(catalog.started_at) if catalog else None,
            "last_synced_at": iso(catalog.finished_at) if catalog else None,
            "error": catalog.error if catalog else None,
        }
    )
    return answer.model_dump()


async def get_catalog(request: Request) -> Response:
    merchant = await authenticate(request)
    return JSONResponse(await _catalog_json(request, merchant.shop_id), headers=NO_STORE)


async def sync_catalog(request: Request) -> Response:
    """Start an import in the background; one already running is left to finish."""
    merchant = await authenticate(request)
    await catalog_sync.start_import(state_of(request), merchant.shop)
    return JSONResponse(
        await _catalog_json(request, merchant.shop_id), status_code=202, headers=NO_STORE
    )


routes = [
    Route("/api/admin/catalog", get_catalog, methods=["GET"]),
    Route("/api/admin/catalog/sync", sync_catalog, methods=["POST"]),
]
