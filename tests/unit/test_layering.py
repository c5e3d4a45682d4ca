"""DESIGN.md's layering rule, enforced: the sans-IO layers import no I/O, store or config."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "carteiro"
PURE = ["imap/protocol", "message", "auth/sasl", "net/proxy_protocol.py", "auth/totp.py"]
FORBIDDEN = (
    "asyncio",
    "socket",
    "ssl",
    "sqlite3",
    "carteiro.store",
    "carteiro.config",
    "carteiro.net",
)


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("layer", PURE)
def test_pure_layers_do_not_import_io(layer: str) -> None:
    root = PACKAGE / layer
    files = [root] if root.is_file() else sorted(root.rglob("*.py"))
    assert files
    for path in files:
        bad = {m for m in imports(path) for f in FORBIDDEN if m == f or m.startswith(f + ".")}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"


def test_no_sql_outside_the_store() -> None:
    for path in PACKAGE.rglob("*.py"):
        if "store" in path.relative_to(PACKAGE).parts:
            continue
        assert "sqlite3" not in imports(path), path
