"""The migrations build exactly the schema the models describe, and build it safely."""

from __future__ import annotations

import ast
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent
# Tables that grow with shoppers' traffic: an index built on them without CONCURRENTLY holds
# off every write (every turn) until it is done.
LARGE_TABLES = {"messages", "conversations"}


def _check(database_url: str) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    command.check(config)  # raises when the models want an operation the migrations lack


def test_the_migrated_database_matches_the_models(database_url: str) -> None:
    # alembic's env runs its own event loop: keep it off the test's.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(_check, database_url).result()


def _index_builds(tree: ast.Module) -> list[tuple[int, str, str]]:
    """(line, table, SQL or op) of every index a migration's upgrade() creates."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "attr", "")
        text = ast.unparse(node)
        if name == "create_index":
            table = next((a.value for a in node.args[1:2] if isinstance(a, ast.Constant)), "?")
            found.append((node.lineno, str(table), text))
        elif name == "execute" and "CREATE INDEX" in text.upper():
            words = text.split()
            table = words[words.index("ON") + 1] if "ON" in words else "?"
            found.append((node.lineno, table.strip("'\""), text))
    return found


def test_indexes_on_large_tables_are_built_without_locking_writes() -> None:
    """From migration 0006 on (earlier ones ran when the tables were empty)."""
    offenders = []
    for path in sorted((ROOT / "migrations" / "versions").glob("*.py")):
        if path.name < "0006":
            continue
        for line, table, text in _index_builds(ast.parse(path.read_text())):
            if table in LARGE_TABLES and "concurrently" not in text.lower():
                offenders.append(f"{path.name}:{line} {text}")
    assert not offenders, "build these with CONCURRENTLY in an autocommit block:\n" + "\n".join(
        offenders
    )


def test_the_index_check_sees_a_plain_index_build() -> None:
    """The check above reads migrations correctly: it would catch these."""
    plain = ast.parse(
        'op.create_index("ix_x", "messages", ["status"])\n'
        'op.execute("CREATE INDEX ix_y ON messages (role)")\n'
        'op.create_index("ix_z", "messages", ["role"], postgresql_concurrently=True)\n'
    )
    builds = _index_builds(plain)
    assert [table for _, table, _ in builds] == ["messages", "messages", "messages"]
    assert ["concurrently" in text.lower() for _, _, text in builds] == [False, False, True]
