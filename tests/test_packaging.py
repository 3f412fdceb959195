"""A non-editable install only ships directories that are packages."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_code_directory_is_a_package() -> None:
    missing = [str(d.relative_to(ROOT)) for top in ("recorder", "generator")
               for d in [ROOT / top, *(ROOT / top).rglob("*")]
               if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))
               and not (d / "__init__.py").exists()]
    assert missing == []
