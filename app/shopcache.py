"""A short-lived cache of installed shops and their FAQ, for the storefront's hot path.

Every storefront request needs its shop; reading it for each one cost a tenth of a turn (see
bench/). Entries live for two seconds, and the process that changes a shop drops its entry at
once; another worker sees an uninstall or new settings within those two seconds. Shops that are
not installed are never cached, so an install or reinstall takes effect immediately.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

TTL = 2.0
_entries: dict[tuple[Hashable, str, str], tuple[float, Any]] = {}


async def cached(
    database: Hashable, kind: str, key: str, load: Callable[[], Awaitable[Any]]
) -> Any:
    entry = _entries.get((database, kind, key))
    now = time.monotonic()
    if entry is not None and entry[0] > now:
        return entry[1]
    value = await load()
    if value is not None:
        if len(_entries) > 10_000:
            _entries.clear()
        _entries[(database, kind, key)] = (now + TTL, value)
    return value


def forget(domain: str | None = None) -> None:
    """Drop what is cached of a shop (of every shop when None), after changing it."""
    if domain is None:
        _entries.clear()
        return
    for key in [k for k in _entries if k[2] == domain]:
        _entries.pop(key, None)
