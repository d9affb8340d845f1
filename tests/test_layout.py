"""The layers the README's layout section describes hold in the code: no import runs back up,
and no module in app/ is over 400 lines (docs/imports.png draws the same imports)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app"
# The data layer and the outside world's wire formats, and the leaves (README, layer 3).
DATA = ("app.repo", "app.models", "app.db", "app.pgfast", "app.ai", "app.shopify",
        "app.shopify_admin", "app.config", "app.validation", "app.errors",
        "app.search_terms", "app.limits", "app.schemas", "app.live")  # fmt: skip
# What assembles and routes (layer 1): nothing below imports it.
TOP = ("app.main", "app.routes")
# The services between them (layer 2).
SERVICES = ("app.turns", "app.merchants", "app.catalog", "app.privacy",
            "app.storefront_settings", "app.shop_tokens", "app.replies", "app.streaming",
            "app.assistant", "app.search", "app.conversations")  # fmt: skip


def _module(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


def _imports(path: Path) -> set[str]:
    """Every app module this one imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("app.")}


MODULES = sorted(p for p in APP.rglob("*.py") if "dev" not in p.relative_to(APP).parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(APP)))
def test_no_import_runs_back_up(path: Path) -> None:
    module = _module(path)
    imported = _imports(path)
    if _within(module, DATA):
        above = {name for name in imported if _within(name, TOP + SERVICES)}
        assert not above, f"{module}, in the data layer, imports {sorted(above)}"
    if not _within(module, TOP):
        routes = {name for name in imported if _within(name, TOP)}
        assert not routes, f"{module} imports {sorted(routes)}, which are above it"
    # Production code never needs the development-only modules (app/dev: the local
    # storefront, python-liquid), bar the demo shop's name (the development login's shop).
    development = {
        name
        for name in imported
        if _within(name, ("app.dev",)) and not _within(name, ("app.dev.demo",))
    }
    if module not in ("app.main", "app.__main__"):  # which mount them in development only
        assert not development, f"{module} imports {sorted(development)}"


def test_no_module_in_app_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(APP)): lines
        for path in APP.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > 400
    }
    assert not long, long


def test_the_layers_name_modules_that_exist() -> None:
    # A module renamed or moved without the lists above would make them check nothing.
    modules = {_module(path) for path in MODULES}
    for package in DATA + TOP + SERVICES:
        assert any(_within(module, (package,)) for module in modules), package
