"""How zoo sorts and matches names: natural order (mlp-256 < mlp-1024) and shell-style wildcards."""

from __future__ import annotations

import fnmatch
import re
from typing import Any


def natural_key(name: str) -> list[Any]:
    """mlp-256 < mlp-512 < mlp-1024, as timm sorts."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def natural_sorted(names: Any) -> list[str]:
    return sorted(names, key=natural_key)


def matches(name: str, pattern: str | None) -> bool:
    """Shell-style wildcards ('mlp-*'); a pattern without any matches as a substring."""
    if not pattern:
        return True
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return pattern in name
