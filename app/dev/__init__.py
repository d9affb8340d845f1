"""Development only: the demo shop's catalog, its images and the local storefront's cart."""
