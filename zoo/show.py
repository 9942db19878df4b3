"""`zoo show NAME`: what a component or preset takes, read from its pydantic model (types,
defaults, limits, the docstring under each field), who provides it, and the presets built on it with
their measured results, so that nobody has to read a plugin's code to configure it; for a recipe, its
settings and what it measured."""

from __future__ import annotations

import ast
import inspect
import re
import shlex
import textwrap
from collections.abc import Iterable
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .errors import ZooError, unknown_name
from .identity import location_fields
from .listing import quoted_results
from .plugins import Catalog, shipped_registry
from .precision import local_machines
from .presets import display
from .tables import measured, recipe_settings
from .registry import KINDS, Component

LIMITS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "multiple_of": "multiple of", "min_length": "min length", "max_length": "max length"}


def describe(catalog: Catalog, name: str, registry_files: Iterable[str | Path] = ()) -> list[dict[str, Any]]:
    """Every kind's component, preset or recipe called `name` (usually one). `registry_files`: those given
    with --registry, which running a recipe of theirs needs again."""
    from .config import resolve_part

    found, problems = [], []
    for kind in KINDS:
        if catalog.registry.has(kind, name):
            component = catalog.registry.get(kind, name) if ":" in name or name in catalog.registry.components[kind] else None
            components = [component] if component else [catalog.registry.get(kind, f"{o.plugin}:{name}") for o in catalog.registry.conflicts[(kind, name)]]
            found += [_entry(catalog, c, None, {}) for c in components]
        elif (preset := catalog.presets.find(kind, name)) is not None:
            try:
                component = resolve_part(catalog, kind, kind, name, {}).resolved.component  # mlp-0, a missing component: as `zoo run` says
            except ZooError as error:
                problems.append(error)  # said only if nothing else of that name can be shown
                continue
            entry = _entry(catalog, component, display(preset[0]), dict(preset[1].params), preset[1].help)
            source = catalog.presets.presets[kind][preset[0]].source
            found.append({**entry, "name": name, "preset_source": None if source == str(shipped_registry()) else source})
    if name in catalog.presets.recipes:
        found.append(_recipe_entry(catalog, name, registry_files))
    if not found and problems:
        raise problems[0]
    if not found:
        from .store import find

        stored = find(name, catalog)
        if stored is not None:
            raise ZooError(f"{name!r} is a trained model ({stored.where()}), not a component, preset or recipe: `zoo models` lists it "
                           f"with its score, `zoo eval {name}` evaluates it, and its card.json holds every setting it trained with.")
        known = [n for kind in KINDS for n in catalog.registry.names(kind) + [display(p) for p in catalog.presets.names(kind)]]
        raise unknown_name("name", name, known + list(catalog.presets.recipes))  # a component, preset or recipe
    return found


def _recipe_entry(catalog: Catalog, name: str, registry_files: Iterable[str | Path]) -> dict[str, Any]:
    """A recipe's settings, the file it comes from, and its results (its model preset's, under <dataset>/<recipe>)."""
    from .settings import RunConfig

    named = catalog.presets.recipes[name]
    settings = named.value.model_dump(exclude={"help"}, exclude_none=True)
    model = catalog.presets.find("model", settings.get("model", RunConfig().model))
    every = quoted_results(model[1].results, local_machines(), catalog.presets.fingerprints())["all_results"] if model else {}
    return {"kind": "recipe", "name": name, "help": named.value.help, "source": named.source, "settings": settings,
            "run": _run_command(name, named.source, registry_files), "problem": _why_it_cannot_run(catalog, name),
            "results": {key: results for key, results in every.items() if key.rpartition("/")[2] == name}}


def _run_command(name: str, source: str, registry_files: Iterable[str | Path]) -> str:
    """How to run a recipe, as a shell line: a registry file given with --registry is needed again (one from
    ZOO_REGISTRY or a plugin is loaded anyway, and twice would be an error)."""
    given = {Path(file).resolve() for file in registry_files}
    registry = f" --registry {shlex.quote(source)}" if Path(source).resolve() in given else ""
    return f"zoo run --recipe {shlex.quote(name)}{registry}"


def _why_it_cannot_run(catalog: Catalog, name: str) -> str | None:
    """What stops the recipe from running here (an unknown component, a setting its plugin does not take), else None."""
    from .config import resolve_run
    from .errors import ZooError

    try:
        resolve_run(catalog, recipe=name)
    except ZooError as error:
        return str(error)
    return None


def _entry(catalog: Catalog, component: Component, preset: str | None, params: dict[str, Any], help: str = "") -> dict[str, Any]:
    owner = component.owner
    built_on = []
    here, fingerprints = local_machines(), catalog.presets.fingerprints()
    for preset_name in catalog.presets.names(component.kind):
        named = catalog.presets.presets[component.kind][preset_name]
        if named.value.component == component.name:
            results = quoted_results(named.value.results, here, fingerprints)["all_results"]
            built_on.append({"name": display(preset_name), "params": named.value.params, "help": named.value.help, "results": results})
    return {"kind": component.kind, "name": preset or component.name, "component": component.name, "preset": preset,
            "help": help or component.help, "plugin": owner.plugin, "distribution": owner.distribution, "version": owner.version,
            "settings": settings(component.params, params), "presets": built_on}


def settings(model: type[BaseModel], preset_params: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per field: name, type, default (the preset's value where it sets one), limits, doc."""
    docs = _attribute_docs(model)
    location = location_fields(model)
    rows = []
    for name, info in model.model_fields.items():
        default: Any = "(required)" if info.is_required() else info.get_default(call_default_factory=True)
        limits = [f"{LIMITS[key]} {getattr(m, key)}" for m in info.metadata for key in LIMITS
                  if getattr(m, key, None) is not None and not (key == "min_length" and getattr(m, key) == 0)]  # 0: no limit to show
        rows.append({"name": name, "type": _type_name(info.annotation), "default": preset_params.get(name, default),
                     "limits": limits, "help": info.description or docs.get(name, ""),
                     "data_location": location.get(name)})
    return rows


def _type_name(annotation: Any) -> str:
    """int, float | None, list[int > 0]: readable, with the limits of Annotated items."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        limits = [f"{LIMITS[key]} {getattr(m, key)}" for info in args[1:] for m in getattr(info, "metadata", [info])
                  for key in LIMITS if getattr(m, key, None) is not None]
        return " ".join([_type_name(args[0]), *limits])
    if origin in (Union, UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(_type_name(a) for a in args)}]"
    if annotation is type(None):
        return "None"
    return annotation.__name__ if isinstance(annotation, type) else re.sub(r"\b(typing|pathlib)\.", "", str(annotation))


def _attribute_docs(model: type[BaseModel]) -> dict[str, str]:
    """The string literal under each field (the house style for documenting settings)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(model)))
    except (OSError, TypeError, SyntaxError):
        return {}
    docs, body = {}, tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for field, after in zip(body, body[1:]):
        if (isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[field.target.id] = " ".join(after.value.value.split())
    return docs


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return display(value) if isinstance(value, str) else str(value)


def format_description(entries: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    for e in entries:
        if e["kind"] == "recipe":
            lines += _recipe_lines(e)
            continue
        what = e["kind"] if not e["preset"] else f"preset of {e['kind']} {e['component']}" if e["preset"] == e["name"] else \
            f"preset {e['preset']} of {e['kind']} {e['component']}"
        lines += [f"{e['name']} ({what}): {e['help']}".rstrip(": "), f"  from plugin {e['plugin']} ({e['distribution']} {e['version']})"
                  + (f"; the preset from {e['preset_source']}" if e.get("preset_source") else "")]
        lines.append("  settings (--set {}.NAME=VALUE):".format(e["kind"] if e["kind"] != "reporter" else e["component"]) if e["settings"] else "  no settings")
        width = max((len(s["name"]) for s in e["settings"]), default=0)
        for s in e["settings"]:
            extra = ", ".join(s["limits"] + ([f"data location ({s['data_location']})"] if s["data_location"] else []))
            lines.append(f"    {s['name']:<{width}}  {s['type']} = {_value(s['default'])}" + (f"  ({extra})" if extra else ""))
            if s["help"]:
                lines.append(f"    {'':<{width}}  {s['help']}")
        for p in e["presets"]:
            lines.append(f"  preset {p['name']}: {' '.join(f'{k}={_value(v)}' for k, v in p['params'].items())}  {p['help']}".rstrip())
            lines += [f"    measured {line}" for line in measured(p["results"])]
        lines.append("")
    return "\n".join(lines).rstrip()


def _recipe_lines(e: dict[str, Any]) -> list[str]:
    lines = [f"{e['name']} (recipe): {e['help']}".rstrip(": "), f"  from {e['source']}"]
    if e["problem"]:
        lines.append(f"  cannot run here: {e['problem']}")
    else:
        lines.append(f"  run it: {e['run']}  (a flag or --set changes one setting, e.g. --seed 1; every setting: add --dry-run)")
    lines.append("  settings it sets (the rest are zoo's defaults):")
    lines += [f"    {k} = {_value(v)}" + (f"  (--set {k}=...)" if "." in k else "") for k, v in recipe_settings(e["settings"]).items()]
    lines += [f"  measured {line}" for line in measured(e["results"])] or ["  no results recorded for it"]
    return lines + [""]
