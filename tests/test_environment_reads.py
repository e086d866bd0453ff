"""Settings are read in ``settings.py``: nothing else looks into the environment, except
the stack building its children's environments and ``eomatch-stack db-setup`` (which is
documented to take the administrator's ``PG*`` variables)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "eomatch"

ALLOWED = {
    "settings.py": "the settings and their environment helpers",
    "stack/api.py": "the APIs' child environment",
    "stack/backup.py": "pg_dump's and pg_restore's child environment",
    "stack/supervision.py": "the supervisor's child environment",
    "cli/stack.py": "db-setup's documented PG* variables",
}


def _environment_reads(path: Path) -> list[int]:
    """Lines that name ``os.environ``, ``os.getenv`` or ``os.environb``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            if any(a.name in ("environ", "getenv", "environb") for a in node.names):
                lines.append(node.lineno)
    return lines


def test_only_settings_and_child_environments_read_the_environment() -> None:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        lines = _environment_reads(path)
        if lines and rel not in ALLOWED:
            found[rel] = lines
    assert not found, f"read the environment in settings.py and pass the value down: {found}"
