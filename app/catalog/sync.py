"""The catalog's import from Shopify: asked for on install and from the dashboard, run by one
worker at a time under a lease in the database, retried by the sweeper when it fails.

An import stages everything it reads (catalog_staged_rows) and only when it has read it all
does one transaction put it in place: each product stored unless a webhook stored a newer
one, the ones it did not read removed, the policies replaced. A shopper never sees half a
catalog, and a failed import leaves the previous one as it was.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from app import repo
from app.catalog.products import ProductShapeError, from_graphql
from app.catalog.source import AdminReader, ImportFailed, Row, ShopFacts
from app.models import aware, utcnow
from app.repo.rows import AnyShop
from app.shop_tokens import TokenRevoked, access_token
from app.shopify_admin import ShopifyAdminError

if TYPE_CHECKING:
    from app.state import AppState

log = logging.getLogger("app.catalog")
TOPICS = ("bulk_operations/finish",)
# Fewer products than this are read page by page; more through a bulk operation.
BULK_ABOVE = 1000
# Long enough for the longest wait between two renewals (throttled calls, a slow page).
LEASE = timedelta(seconds=300)
STAGE_BATCH = 2000  # lines of a result file staged per statement
STORE_BATCH = 1000  # products put in place per statement
POLL_FIRST, POLL_MOST = 1.0, 10.0  # seconds between looks at a running bulk operation
MAX_ATTEMPTS = 8  # failed imports retried by the sweeper before waiting for the merchant


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(60 * 2**attempts, 6 * 3600))


def merchant_text(exc: BaseException) -> str:
    """Why the import failed, in a sentence a merchant can act on."""
    if isinstance(exc, ImportFailed):
        return str(exc)
    if isinstance(exc, TokenRevoked | PermissionError):
        return "The app has no working access to your shop; open the app from your Shopify admin."
    if isinstance(exc, ShopifyAdminError):
        if exc.throttled:
            return "Shopify kept rate limiting the import; it will be tried again."
        if exc.status in (401, 403):
            return f"Shopify refused the app's access (HTTP {exc.status}); reopen the app."
        if exc.status == 0:
            return "Shopify could not be reached; the import will be tried again."
        return f"Shopify refused the import: {exc}"[:300]
    if isinstance(exc, httpx.HTTPError):
        return "The export could not be downloaded from Shopify; it will be tried again."
    return "The import failed unexpectedly; it will be tried again."


async def request_import(state: AppState, shop_id: int) -> bool:
    """Ask for an import (pending, due now). False when one is running already."""
    async with state.db.session() as session:
        return await repo.request_import(session, shop_id=shop_id, now=utcnow())


async def start_import(state: AppState, shop: AnyShop) -> None:
    """Ask for an import and start it in the background of this worker."""
    assert shop.id is not None
    await request_import(state, shop.id)
    state.sweeper.spawn(run_import(state, shop.domain))


class _Run:
    """One worker's run of one shop's import, under the lease it took."""

    def __init__(self, state: AppState, shop: AnyShop, lease: datetime) -> None:
        assert shop.id is not None
        self.state, self.shop, self.shop_id, self.lease = state, shop, shop.id, lease
        self.staged = 0

        async def token() -> str:
            async with state.db.session() as session:
                current = await repo.get_shop(session, domain=shop.domain)
            value = await access_token(state, current) if current else None
            if not value:
                raise PermissionError("no usable access token")
            return value

        self.reader = AdminReader(
            state.shopify, shop.domain, token, secure=not state.settings.development
        )

    async def renew(self, *, done: int | None = None, total: int | None = None) -> None:
        lease = utcnow() + LEASE
        async with self.state.db.session() as session:
            await repo.renew_import_lease(
                session, shop_id=self.shop_id, lease=self.lease, until=lease, done=done, total=total
            )
        self.lease = lease

    async def stage(self, import_id: int, rows: list[Row]) -> None:
        staged = self.staged + sum(1 for kind, _, _ in rows if kind == "product")
        lease = utcnow() + LEASE
        async with self.state.db.session() as session:
            await repo.renew_import_lease(
                session, shop_id=self.shop_id, lease=self.lease, until=lease, done=staged
            )
            await repo.stage(session, shop_id=self.shop_id, import_id=import_id, rows=rows)
        self.staged, self.lease = staged, lease

    async def run(self, bulk_above: int) -> None:
        facts = await self.reader.shop_facts()
        language = await self.reader.language()
        async with self.state.db.session() as session:
            catalog = await repo.catalog_of(session, shop_id=self.shop_id)
        assert catalog is not None
        if catalog.status == "running" and catalog.bulk_operation_id:
            # The worker that started this bulk operation died: resume it, not a second one.
            import_id, operation = catalog.import_id, catalog.bulk_operation_id
            method = "bulk"
            started = aware(catalog.started_at or utcnow())
            async with self.state.db.session() as session:
                await repo.clear_staged(session, shop_id=self.shop_id)
        else:
            method = "bulk" if facts.products >= bulk_above else "pages"
            started = utcnow()
            async with self.state.db.session() as session:
                import_id = await repo.begin_import(
                    session,
                    shop_id=self.shop_id,
                    lease=self.lease,
                    now=started,
                    method=method,
                    total=facts.products,
                )
            operation = None
            if method == "pages":
                async for rows in self.reader.paged_rows():
                    await self.stage(import_id, rows)
        if method == "bulk":
            await self.bulk(import_id, operation)
        await self.finish(import_id, started, facts, language)

    async def bulk(self, import_id: int, operation: str | None) -> None:
        if operation is None:
            operation = await self.reader.start_bulk()
            async with self.state.db.session() as session:
                await repo.set_bulk_operation(
                    session, shop_id=self.shop_id, lease=self.lease, operation_id=operation
                )
        wait = POLL_FIRST
        while True:
            status = await self.reader.bulk_status(operation)
            phase = str(status.get("status") or "")
            if phase == "COMPLETED":
                break
            if phase not in ("CREATED", "RUNNING"):
                code = status.get("errorCode") or phase.lower() or "unknown"
                raise ImportFailed(f"Shopify's export of the catalog ended: {code}.")
            await self.renew(done=int(status.get("rootObjectCount") or 0))
            await asyncio.sleep(wait)
            wait = min(wait * 1.5, POLL_MOST)
        url = status.get("url")
        if isinstance(url, str) and url:  # no url: the shop has no products
            async for rows in self.reader.bulk_rows(url, STAGE_BATCH):
                await self.stage(import_id, rows)
        await self.renew(done=self.staged, total=self.staged)

    async def finish(
        self, import_id: int, started: datetime, facts: ShopFacts, language: str | None
    ) -> None:
        storefront = facts.storefront_url or f"https://{self.shop.domain}"
        shop_id, kept, after = self.shop_id, 0, 0
        async with self.state.db.session() as session:
            await repo.finish_import(
                session,
                shop_id=shop_id,
                lease=self.lease,
                now=utcnow(),
                done=self.staged,
                currency=facts.currency,
                storefront_url=storefront,
                language=language,
            )
            while batch := await repo.staged_batch(
                session, shop_id=shop_id, import_id=import_id, after=after, limit=STORE_BATCH
            ):
                records = []
                for pid, node, variants in batch:
                    try:
                        records.append(
                            from_graphql(
                                node, variants, storefront_url=storefront, currency=facts.currency
                            )
                        )
                    except ProductShapeError as exc:
                        log.warning("product %s of %s skipped: %s", pid, self.shop.domain, exc)
                await repo.store_products(
                    session, shop_id=shop_id, records=records, import_id=import_id
                )
                kept, after = kept + len(records), batch[-1][0]
            removed = await repo.remove_unseen(
                session, shop_id=shop_id, import_id=import_id, started_at=started
            )
            await repo.replace_policies(session, shop_id=shop_id, entries=facts.policies)
        log.info("catalog of %s imported: %d products, %d removed", self.shop.domain, kept, removed)

    async def fail(self, exc: BaseException) -> None:
        async with self.state.db.session() as session:
            catalog = await repo.catalog_of(session, shop_id=self.shop_id)
            attempts = catalog.attempts if catalog else 0
            retry = utcnow() + _backoff(attempts) if attempts + 1 < MAX_ATTEMPTS else None
            await repo.fail_import(
                session,
                shop_id=self.shop_id,
                lease=self.lease,
                error=merchant_text(exc),
                retry_at=retry,
            )


async def run_import(state: AppState, shop_domain: str, *, bulk_above: int = BULK_ABOVE) -> str:
    """Run the shop's import if it is due and no worker holds it. Returns how it went:
    finished, failed, busy (not due, or another worker's) or gone (not installed)."""
    async with state.db.session() as session:
        shop = await repo.get_shop(session, domain=shop_domain)
    if shop is None or shop.id is None or not shop.installed:
        return "gone"
    lease = utcnow() + LEASE
    async with state.db.session() as session:
        taken = await repo.take_import_lease(session, shop_id=shop.id, now=utcnow(), until=lease)
    if not taken:
        return "busy"
    run = _Run(state, shop, lease)
    try:
        await run.run(bulk_above)
    except repo.LeaseLost:
        log.warning("the import of %s was taken over by another worker", shop_domain)
        return "busy"
    except Exception as exc:
        if not isinstance(exc, ImportFailed | ShopifyAdminError | httpx.HTTPError):
            log.exception("the import of %s failed", shop_domain)
        else:
            log.warning("the import of %s failed: %s", shop_domain, exc)
        await run.fail(exc)
        return "failed"
    finally:
        async with state.db.session() as session:
            again = await repo.release_import_lease(session, shop_id=shop.id, lease=run.lease)
        if again:
            # Asked for while this run held the lease, after it had read the shop: left
            # pending, it would wait for the sweeper's next round.
            state.sweeper.spawn(run_import(state, shop_domain, bulk_above=bulk_above))
    return "finished"


async def bulk_finished(
    state: AppState, event_id: int, shop_domain: str, payload: dict[str, Any]
) -> bool:
    """A bulk_operations/finish delivery: its shop is an unsigned header, so it only wakes
    the import of that shop whose stored bulk operation it names; Shopify's own answer to
    the poll, not the body, says how the operation ended."""
    async with state.db.session() as session:
        if not await repo.claim_webhook(session, event_id=event_id):
            return False
        shop = await repo.get_shop(session, domain=shop_domain)
        catalog = await repo.catalog_of(session, shop_id=shop.id) if shop and shop.id else None
    named = payload.get("admin_graphql_api_id")
    if catalog is None or catalog.status != "running" or not catalog.bulk_operation_id:
        return True
    if named != catalog.bulk_operation_id:
        log.warning("bulk_operations/finish for %s names another operation: ignored", shop_domain)
        return True
    state.sweeper.spawn(run_import(state, shop_domain))
    return True


__all__ = [
    "BULK_ABOVE",
    "TOPICS",
    "bulk_finished",
    "merchant_text",
    "request_import",
    "run_import",
    "start_import",
]
