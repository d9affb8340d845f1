"""7. A catalog import of 100,000 products by bulk operation: the result file (JSONL, with
each product's variants on lines of their own) served on loopback by the fake admin, read as
a stream into PostgreSQL and put in place in one transaction. Time, and peak memory against
the file's size: the import holds a batch at a time, never the file."""

from __future__ import annotations

import asyncio
import resource
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy.pool import NullPool

SHOP = "bench-catalog.myshopify.com"


def _write_file(path: Path, products: int) -> None:
    """Written a product at a time: the benchmark's own memory stays out of the figure."""
    from tests.catalog_data import graphql_product
    from tests.fake_catalog import jsonl_lines

    with path.open("w") as out:
        for number in range(products):
            product = graphql_product(
                8_000_000_000_000 + number,
                title=f"Merino Sweater {number}",
                updated_at="2026-11-20T15:00:00Z",
            )
            out.writelines(line + "\n" for line in jsonl_lines([product]))


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    """Linux: writing 5 to clear_refs resets VmHWM, so the peak is the import's own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


async def _import(database_url: str, admin_url: str, fake: Any) -> dict[str, Any]:
    from app import repo
    from app.catalog import sync
    from app.db import Database
    from app.models import utcnow
    from app.shopify import Shopify
    from app.state import AppState
    from app.sweeper import Sweeper
    from tests.conftest import make_settings
    from tests.factories import TEST_API_KEY, TEST_API_SECRET, server_cipher

    db = Database(database_url, poolclass=NullPool)
    state = cast(
        AppState,
        SimpleNamespace(
            settings=make_settings(database_url, shopify_admin_base_url=admin_url),
            db=db,
            shopify=Shopify(
                api_key=TEST_API_KEY, api_secret=TEST_API_SECRET, admin_base_url=admin_url
            ),
            tokens=server_cipher(),
            sweeper=Sweeper(db=db, abandon_after_minutes=30, interval=60),
        ),
    )
    grant = fake._grant(SHOP)
    try:
        async with db.session() as session:
            shop = await repo.store_tokens(
                session,
                domain=SHOP,
                access_token=server_cipher().encrypt(grant["access_token"]) or "",
                refresh_token=None,
                access_token_expires_at=utcnow() + timedelta(days=1),
                refresh_token_expires_at=None,
                scopes="read_products",
            )
            shop_id = shop.id
        assert shop_id is not None
        await sync.request_import(state, shop_id)
        _reset_peak()
        before = _rss_kib("VmRSS")
        started = time.perf_counter()
        outcome = await sync.run_import(state, SHOP)
        seconds = time.perf_counter() - started
        peak = _rss_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        async with db.session() as session:
            shown = await repo.count_visible(session, shop_id=shop_id)
            catalog = await repo.catalog_of(session, shop_id=shop_id)
        assert outcome == "finished" and catalog is not None, (outcome, catalog)
        return {"seconds": seconds, "visible": shown, "rss_before": before, "peak": peak}
    finally:
        await state.shopify.aclose()
        await db.dispose()


def run(database_url: str, *, products: int = 100_000) -> dict[str, object]:
    from tests.fake_shopify import FakeShopify
    from tests.servers import serve

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "result.jsonl"
        _write_file(path, products)
        size_mib = path.stat().st_size / 2**20
        fake = FakeShopify()
        live = serve(fake.app, timeout_graceful_shutdown=1)
        try:
            fake.catalogs.base_url = live.url + "/"
            fake.catalogs.bulk_polls = 0
            fake.catalogs.result_path = path
            fake.catalogs.shop(SHOP).count = products
            figures = asyncio.run(_import(database_url, live.url, fake))
        finally:
            live.stop()
    assert figures["visible"] == products, figures
    growth_mib = (figures["peak"] - figures["rss_before"]) / 1024
    seconds = figures["seconds"]
    return {
        "products": products,
        "jsonl_mib": round(size_mib, 1),
        "seconds": round(seconds, 1),
        "products_per_s": round(products / seconds),
        "rss_before_mib": round(figures["rss_before"] / 1024, 1),
        "peak_rss_mib": round(figures["peak"] / 1024, 1),
        "rss_growth_mib": round(growth_mib, 1),
        # Flat: what the import holds is a batch, the same at any size of file.
        "target": "under 60 s, peak RSS growth under 64 MiB",
        "met": seconds < 60 and growth_mib < 64,
    }
