"""The merchant's settings the storefront reads: app-owned metafields (greeting, accent
colour, the app's URL, the direct-streams mode), which the theme block reads in Liquid."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from app.repo.rows import AnyShop
from app.shop_tokens import TokenRevoked, access_token
from app.shopify_admin import ShopifyAdminError, admin_graphql

if TYPE_CHECKING:
    from app.state import AppState

log = logging.getLogger("app.merchants")


STOREFRONT_SETTINGS_MUTATION = """
mutation SetChatSettings($metafields: [MetafieldsSetInput!]!) {
  metafieldsSet(metafields: $metafields) { userErrors { field message } }
}
"""
CLEAR_SETTINGS_MUTATION = """
mutation ClearChatSettings($metafields: [MetafieldIdentifierInput!]!) {
  metafieldsDelete(metafields: $metafields) { userErrors { field message } }
}
"""


def _metafield_changes(
    state: AppState, shop: AnyShop, owner: str
) -> tuple[tuple[str, str, list[dict[str, str]]], ...]:
    """(mutation, its name, its metafields): the set values set, the cleared ones deleted."""
    values = (
        ("greeting", "single_line_text_field", shop.greeting),
        ("accent_color", "color", shop.accent_color),
        # Where the widget streams from when the proxy will not do (/direct/...), and
        # whether it may: the theme cannot know the app's host otherwise.
        ("app_url", "url", state.settings.shopify_app_url),
        (
            "direct_streams",
            "single_line_text_field",
            state.settings.direct_streams_of(shop.direct_streams),
        ),
    )
    return (
        (
            STOREFRONT_SETTINGS_MUTATION,
            "metafieldsSet",
            [
                {"ownerId": owner, "namespace": "chat", "key": key, "type": kind, "value": v}
                for key, kind, v in values
                if v
            ],
        ),
        (
            CLEAR_SETTINGS_MUTATION,
            "metafieldsDelete",
            [{"ownerId": owner, "namespace": "chat", "key": key} for key, _, v in values if not v],
        ),
    )


async def publish_storefront_settings(state: AppState, shop: AnyShop) -> bool:
    """Greeting, colour, the app's URL and the direct-streams mode go to app-owned
    metafields, which the theme block reads in Liquid; a cleared one is deleted there, so
    that the storefront falls back to its default."""
    try:
        token = await access_token(state, shop)
        if token is None:
            return False
        installation = await admin_graphql(
            state.shopify,
            shop=shop.domain,
            access_token=token,
            query="{ currentAppInstallation { id } }",
        )
        owner = installation["currentAppInstallation"]["id"]
        changes = _metafield_changes(state, shop, owner)
        for mutation, name, metafields in changes:
            if not metafields:
                continue
            result = await admin_graphql(
                state.shopify,
                shop=shop.domain,
                access_token=token,
                query=mutation,
                variables={"metafields": metafields},
            )
            errors = (result.get(name) or {}).get("userErrors") or []
            if errors:
                raise ShopifyAdminError(str(errors))
        return True
    except (ShopifyAdminError, TokenRevoked, KeyError, TypeError) as exc:
        log.warning("could not publish storefront settings of %s: %s", shop.domain, exc)
        return False
