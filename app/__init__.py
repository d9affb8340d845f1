"""Storefront chat for Shopify merchants."""
