"""The shop's catalog: what it holds (products.py), how webhooks keep it current
(webhooks.py), how it is imported (sync.py) and searched (search.py)."""
