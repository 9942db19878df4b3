"""The results section of registry.toml: what `make bench` measured, one entry per kind of machine.

A new measurement replaces the one of the same preset, "<dataset>/<recipe>", machine and precision, and
keeps every other machine's: results measured elsewhere stay true there, unless they were measured with
another version of the recipe (another `recipe` fingerprint).
"""

from __future__ import annotations

import tomllib
from typing import Any

RESULTS_MARKER = "# Results measured by `make bench`"
HEADER = f"{RESULTS_MARKER} (bench/bench.py rewrites this section, keeping other machines' results)."
#: The fields that say which kind of machine and precision a result belongs to.
IDENTITY = ("machine", "device", "native_bf16", "precision")
#: Field order in the file: the figures first, then where they come from.
ORDER = ("accuracy", "accuracies", "seconds", "wall", "reference_epochs", "precision", "machine", "device", "cores", "threads", "native_bf16", "recipe", "measured")


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(round(value, 4))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _identity(result: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(result.get(key) for key in IDENTITY)


def merge(existing: list[dict[str, Any]], new: dict[str, Any]) -> list[dict[str, Any]]:
    """`new` in place of the results of its machine and precision, and of those of another version of its
    recipe (they no longer describe it); the others kept, in their order."""
    stale = {r.get("recipe") for r in existing} - {new.get("recipe"), None, ""} if new.get("recipe") else set()
    kept = [r for r in existing if _identity(r) != _identity(new) and r.get("recipe") not in stale]
    return [*kept, new]


def section(results: dict[str, dict[str, dict[str, list[dict[str, Any]]]]]) -> str:
    """results[section][preset][key] -> list of results, as the text after RESULTS_MARKER."""
    lines = [HEADER]
    for table, presets in results.items():
        for preset, keyed in presets.items():
            lines.append(f"[{table}.{preset}.results]")
            for key, entries in keyed.items():
                lines.append(f"{toml_value(key)} = [")
                for entry in entries:
                    fields = sorted(entry.items(), key=lambda kv: ORDER.index(kv[0]) if kv[0] in ORDER else len(ORDER))
                    lines.append("    { " + ", ".join(f"{k} = {toml_value(v)}" for k, v in fields if v is not None) + " },")
                lines.append("]")
    return "\n".join(lines) + "\n"


def record(text: str, table: str, preset: str, new: dict[str, dict[str, Any]]) -> str:
    """registry.toml's text with `new` (key -> result) merged into [table.preset.results]."""
    head, marker, tail = text.partition(RESULTS_MARKER)
    old = tomllib.loads(tail.split("\n", 1)[1] if marker and "\n" in tail else "")
    results: dict[str, Any] = {  # one table per key in files from before machines: a list of one
        t: {p: {key: [r] if isinstance(r, dict) else r for key, r in body.get("results", {}).items()} for p, body in presets.items()}
        for t, presets in old.items()
    }
    keyed = results.setdefault(table, {}).setdefault(preset, {})
    for key, result in new.items():
        keyed[key] = merge(keyed.get(key, []), result)
    return head.rstrip() + "\n\n" + section(results)
