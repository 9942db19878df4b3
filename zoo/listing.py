"""What `zoo list` and `zoo plugins` show, as plain data (the CLI only formats it)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .errors import ZooError, closest
from .plugins import Catalog
from .precision import Machine, local_machines
from .presets import SECTIONS, Result, display, select_results
from .registry import KINDS, matches, natural_key

def list_entries(catalog: Catalog, kind: str | None = None, pattern: str | None = None) -> dict[str, Any]:
    """Components, presets and recipes, filtered by kind and a wildcard pattern.

    Schema: {"components": [{kind, name, help, plugin, distribution, version, status}],
    "presets": [{kind, name, component, params, help, results, all_results, source}],
    "recipes": [{name, help, settings, source}], "failed_plugins": [{name, distribution, version, errors}],
    "conflicting_plugins": [{name, distribution, version, errors}], "warnings": [text]}

    A preset's `results` holds, per "<dataset>/<recipe>", the one result to quote here: the newest
    measured on this kind of machine, else the newest; `all_results` holds every one (of the recipe
    as it is now: results recorded with another version of it are left out). Each carries
    "this_machine": whether it was measured on this kind of machine (CPU model and native bf16, or GPU).
    """
    here = local_machines()
    fingerprints = catalog.presets.fingerprints()
    components: list[dict[str, Any]] = []
    presets: list[dict[str, Any]] = []
    for k in KINDS:
        if kind not in (None, k):
            continue
        components += _component_entries(catalog, k)
        for name in catalog.presets.names(k):
            named = catalog.presets.presets[k][name]
            presets.append({"kind": k, "name": display(name), "component": named.value.component, "params": named.value.params,
                            "help": named.value.help, **quoted_results(named.value.results, here, fingerprints), "source": named.source})
    components = [c for c in components if matches(c["name"], pattern)]
    components.sort(key=lambda c: (KINDS.index(c["kind"]), natural_key(c["name"])))
    presets = [p for p in presets if matches(p["name"], pattern)]
    recipes = []
    if kind in (None, "recipe"):
        for name, named in sorted(catalog.presets.recipes.items()):
            if matches(name, pattern):
                settings = named.value.model_dump(exclude={"help"}, exclude_none=True)
                recipes.append({"name": name, "help": named.value.help, "settings": settings, "source": named.source})
    failed = [
        {"name": p.name, "distribution": p.distribution, "version": p.version, "errors": p.errors}
        for p in catalog.failed_plugins()
    ]
    conflicting = [
        {"name": p.name, "distribution": p.distribution, "version": p.version, "errors": p.errors}
        for p in catalog.plugins if p.status == "conflicting"
    ]
    return {"components": components, "presets": presets, "recipes": recipes, "failed_plugins": failed,
            "conflicting_plugins": conflicting,
            "warnings": list(catalog.warnings) + [f"plugin {p.name} ({p.source}): {w}" for p in catalog.plugins
                                                  if p.status == "loaded" for w in p.warnings]}


def _component_entries(catalog: Catalog, kind: str) -> list[dict[str, Any]]:
    """The components of one kind, and the names two plugins claim (usable by neither)."""
    broken = {p.name for p in catalog.failed_plugins()}
    entries = [
        {"kind": kind, "name": c.name, "help": c.help, "plugin": c.owner.plugin, "distribution": c.owner.distribution,
         "version": c.owner.version, "status": "plugin-has-errors" if c.owner.plugin in broken else "ok"}
        for c in catalog.registry.components[kind].values()
    ]
    for (conflict_kind, name), owners in catalog.registry.conflicts.items():
        if conflict_kind == kind:
            entries.append({"kind": kind, "name": name, "help": "registered by " + " and ".join(str(o) for o in owners)
                            + "; use " + " or ".join(f"{o.plugin}:{name}" for o in owners),
                            "plugin": ", ".join(o.plugin for o in owners), "distribution": ", ".join(o.distribution for o in owners),
                            "version": ", ".join(o.version for o in owners), "status": "conflict"})
    return entries


def quoted_results(results: dict[str, list[Result]], here: list[Machine], fingerprints: dict[str, str]) -> dict[str, Any]:
    """{"results": the one result per key to quote here, "all_results": every one}, only of the recipe as it is now
    ("<dataset>/<recipe>" keys: a changed recipe's old figures are left out). Of the newest, the one in the
    precision `auto` gives here (bf16 where this CPU has it natively)."""
    precision_here = "bf16" if any(m.bf16 for m in here) else "fp32"
    quoted: dict[str, Any] = {}
    every: dict[str, list[dict[str, Any]]] = {}
    for key, measured in results.items():
        measured = [r for r in measured if r.of_recipe(fingerprints.get(key.rpartition("/")[2]))]
        if not measured:
            continue
        chosen, matched = select_results(measured, here)
        mine = {id(r) for r in chosen} if matched else set()
        every[key] = [{**r.model_dump(), "where": r.where(), "this_machine": id(r) in mine} for r in measured]
        newest = max(chosen, key=lambda r: (r.measured, r.precision == precision_here))
        quoted[key] = every[key][next(i for i, r in enumerate(measured) if r is newest)]
    return {"results": quoted, "all_results": every}


def placeholder_for(catalog: Catalog, kind: str | None, name: str) -> str | None:
    """The placeholder preset a concrete name is an instance of, as `zoo list` shows it: mlp-128 -> mlp-<width>.
    An instance whose settings do not validate (mlp-0) is that error, as `zoo run --model mlp-0` would say it."""
    from .config import resolve_part

    if any(c in name for c in "*?["):
        return None
    for each in [kind] if kind else KINDS:
        found = catalog.presets.find(each, name) if each in catalog.presets.presets else None
        if found is not None and found[0] != name:
            resolve_part(catalog, each, each, name, {})
            return display(found[0])
    return None


def nothing_matches(catalog: Catalog, kind: str | None, pattern: str) -> ZooError:
    """`zoo list foo` matched nothing: an error (exit 1, as grep's) with the nearest name or kind, not an empty list."""
    everything = list_entries(catalog, kind)
    names = [entry["name"] for part in ("components", "presets", "recipes") for entry in everything[part]]
    kinds = [] if kind else [*SECTIONS, "recipes"]
    hint = closest(pattern, names + kinds)
    suggestion = f" Did you mean `zoo list {hint}`?" if hint in kinds else f" Did you mean {hint}?" if hint else ""
    scope = f"No {kind}" if kind else "Nothing (no component, preset or recipe)"
    failed = [f"{p.name} ({p.source}): {p.errors[0]}" for p in catalog.failed_plugins()]
    error = ZooError(f"{scope} matches {pattern!r}.{suggestion} `zoo list` shows everything"
                     + ("." if kind else f"; the kinds are {', '.join([*SECTIONS, 'recipes'])}.")
                     + (f" Plugins that failed to load may have provided it: {'; '.join(failed)} (see `zoo plugins`)." if failed else ""))
    error.exit_code = 1
    return error


def plugin_entries(catalog: Catalog) -> list[dict[str, Any]]:
    """Schema: [{name, distribution, version, builtin, status, hooks, components, errors, warnings}]."""
    return [asdict(info) for info in catalog.plugins]


def normalize_kind(word: str) -> str | None:
    """'models', 'model' -> 'model'; 'recipes' -> 'recipe'; anything else -> None."""
    word = word.lower()
    if word in KINDS or word == "recipe":
        return word
    if word in SECTIONS:
        return SECTIONS[word]
    if word == "recipes":
        return "recipe"
    return None
