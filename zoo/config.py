"""Run configuration: defaults < recipe < command line, each component's params validated
by the pydantic model its plugin registered."""

from __future__ import annotations

import json
import shlex
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import ZooError, closest, describe_validation_error, set_it, spoken
from .identity import changes_from_recipe, location_params
from .plugins import FILE_VERSION, Catalog, Resolved
from .registry import IN_PROCESS, Component, forbidding_extras
from .settings import RunConfig

SECTIONS = ("dataset", "model", "loss", "optimizer", "scheduler")


@dataclass(frozen=True)
class Part:
    """One resolved component of a run: the name asked for, what it resolved to, its params."""

    section: str
    resolved: Resolved
    params: BaseModel
    changes_preset: bool = False
    """A --set changed what the preset fixes (mlp-1024 with hidden=[64, 64]): the network is its component's, not the preset's."""

    def to_json(self) -> dict[str, Any]:
        owner = self.resolved.component.owner
        return {
            "name": self.resolved.name,
            "component": self.resolved.component.name,
            "preset": self.resolved.preset,
            "plugin": {"name": owner.plugin, "distribution": owner.distribution, "version": owner.version},
            "params": self.params.model_dump(mode="json"),
            **({"changes_preset": True} if self.changes_preset else {}),
        }


@dataclass(frozen=True)
class ResolvedRun:
    config: RunConfig
    dataset: Part
    model: Part
    loss: Part
    optimizer: Part
    scheduler: Part
    reporters: list[Part]
    changed: dict[str, Any] | None = None  # how the run differs from its recipe (zoo.identity.changes_from_recipe); None: unknown

    def to_json(self) -> dict[str, Any]:
        settings = self.config.model_dump(mode="json", exclude={"params"})
        return {
            **settings,
            "changed_from_recipe": self.changed,
            "components": {
                **{section: getattr(self, section).to_json() for section in SECTIONS},
                "reporters": [part.to_json() for part in self.reporters],
            },
        }


def _given(assignment: str) -> str:
    return spoken(f"--set {assignment!r}", f"sets: {assignment!r}")


def parse_set(assignment: str) -> tuple[str | None, str, Any]:
    """'model.hidden=[1024,256]' -> ('model', 'hidden', [1024, 256]); values are TOML, else plain text."""
    key, sep, text = assignment.partition("=")
    if not sep or not key.strip():
        raise ZooError(f"{_given(assignment)}: expected SECTION.KEY=VALUE, e.g. {set_it('model.hidden=[1024,256]')}.")
    section, dot, name = key.strip().rpartition(".")
    try:
        parsed = tomllib.loads(f"v = {text.strip()}")
        if len(parsed) > 1:  # `1\n[x]`: TOML would read a table after the value, and the setting would silently lose it
            raise ZooError(f"{_given(assignment[:80])}: one value per setting; this one holds more after a line break.")
        value = parsed["v"]
    except tomllib.TOMLDecodeError as error:
        shown = text.strip()
        if shown.startswith("[") or (shown.startswith("{") and shown.endswith("}")):  # meant as a list or table ({run}.jsonl is text)
            raise ZooError(f"{_given(assignment)}: {shown} is not a valid TOML list or table ({str(error).split(' (at ')[0].lower()}); "
                           f"check its brackets, and put text inside it in quotes, e.g. [\"a\", \"b\"] or {{ name = \"a\" }}.") from None
        value = shown  # text, as TOML would not read it (a string setting takes it as it is)
    return (section if dot else None), name, value


def resolve_run(
    catalog: Catalog,
    *,
    recipe: str | None = None,
    overrides: dict[str, Any] | None = None,
    sets: list[str] = (),  # type: ignore[assignment]
    add_reporters: list[str] = (),  # type: ignore[assignment]
    drop_reporters: list[str] = (),  # type: ignore[assignment]
    data_dir: Any = None,
    verify: bool | None = None,
) -> ResolvedRun:
    """Merge defaults, the recipe and the command line, then validate everything.
    add_reporters/drop_reporters adjust the chosen reporters (the CLI's terminal and --quiet rules);
    data_dir/verify set the dataset's data-location params (--data-dir, --no-verify)."""
    config = _run_config(catalog, recipe, overrides or {}, sets)
    reporters = [r for r in dict.fromkeys([*config.reporters, *add_reporters]) if r not in drop_reporters]
    config = config.model_copy(update={"reporters": reporters})
    if config.stratify and not config.shuffle:
        raise ZooError(f"stratify = true (recipe {config.recipe!r} or {spoken('--stratify', 'stratify=True')}) arranges each epoch's shuffled "
                       f"batches by class, so it needs shuffle = true: "
                       + spoken("leave out --no-shuffle (or add --shuffle), or add --no-stratify.", "leave out shuffle=False, or add stratify=False."))
    from_sets = {parse_set(assignment)[0] for assignment in sets}
    left_out = set(catalog.registry.names("reporter")) - set(config.reporters) - from_sets  # a recipe's reporter this run leaves out (--quiet)
    unknown = set(config.params) - set(SECTIONS) - set(config.reporters) - left_out
    if unknown:
        named = catalog.presets.recipes[config.recipe]
        given = set(((overrides or {}).get("params") or {}).keys())
        where = ("--set names" if unknown & from_sets else "params= names" if unknown & given
                 else f"Recipe {config.recipe!r} (in {named.source}) has params for")
        hints = [hint for section in sorted(unknown) if (hint := closest(section, [*SECTIONS, *config.reporters]))]
        reporters = f"the chosen reporters ({', '.join(config.reporters)})" if config.reporters else "no reporter, none being chosen"
        raise ZooError(
            f"{where} unknown section(s) {', '.join(sorted(unknown))}" + (f" (did you mean {', '.join(hints)}?)" if hints else "")
            + f"; the sections are {', '.join(SECTIONS)} and {reporters}."
        )
    dataset = catalog.resolve("dataset", config.dataset)
    location = location_params(dataset.component.params, config.dataset, dataset.component.owner, data_dir, verify)
    return ResolvedRun(
        config=config,
        dataset=resolve_part(catalog, "dataset", "dataset", config.dataset, {**config.params.get("dataset", {}), **location}),
        **{section: resolve_part(catalog, section, section, getattr(config, section), config.params.get(section, {}))
           for section in SECTIONS[1:]},
        reporters=[resolve_part(catalog, name, "reporter", name, config.params.get(name, {})) for name in dict.fromkeys(config.reporters)],
    )


def with_changes(catalog: Catalog, run: ResolvedRun) -> ResolvedRun:
    """The run with what it changes from its recipe (config.json records it; `zoo runs` marks it). The recipe is
    resolved with the run's components where the run swaps one, so that a preset's own params are not listed as
    changes, and without reporters (they never count); if it still does not resolve here, the changes are unknown."""
    try:
        recipe = resolve_run(catalog, recipe=run.config.recipe, overrides={"reporters": []})
        swapped = {section: getattr(run.config, section) for section in SECTIONS if getattr(run.config, section) != getattr(recipe.config, section)}
        if swapped:
            recipe = resolve_run(catalog, recipe=run.config.recipe, overrides={"reporters": [], **swapped})
    except ZooError:  # a component the recipe names is missing here: nothing to compare with
        return replace(run, changed=None)
    return replace(run, changed={**swapped, **changes_from_recipe(recipe, run)})


def set_list(sets: Iterable[str] | str | dict[str, Any]) -> list[str]:
    """sets= as the API takes it: a list of "SECTION.KEY=VALUE" (as --set), one such string, or a dict
    {"optimizer.lr": 0.1} (its values written as TOML, which --set reads)."""
    if isinstance(sets, dict):  # text as --set takes it; other values written as TOML (numbers, true, lists)
        nested = next((key for key, value in sets.items() if isinstance(value, dict)), None)
        if nested is not None:
            raise ZooError(f"sets={{{nested!r}: {{...}}}}: settings by section are params= (params={{{nested!r}: {{...}}}}); sets= takes "
                           f"'SECTION.KEY' keys, e.g. sets={{'optimizer.lr': 0.1}}.")
        return _checked_sets([f"{key}={_as_toml(key, value)}" for key, value in sets.items()])
    if isinstance(sets, str):
        return _checked_sets([sets])
    try:
        return _checked_sets(list(sets))
    except TypeError:
        raise ZooError(f"sets={sets!r:.80}: give a list of 'SECTION.KEY=VALUE' strings (as --set), one such string, "
                       f"or a dict such as {{'optimizer.lr': 0.1}}.") from None


def _as_toml(key: Any, value: Any) -> str:
    """One value of a sets= dict as --set would read it: text as it is, a path as its text, anything else as JSON
    (which TOML reads the same for numbers, booleans and lists); a NumPy number as the number it holds."""
    if isinstance(value, (str, Path)):
        return str(value)
    if value is None:
        raise ZooError(f"sets={{{key!r}: None}}: None is no setting's value; leave the key out for its default.")
    value = value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        raise ZooError(f"sets={{{key!r}: {value!r:.60}}}: a setting's value must be text, a number, true/false or a list of "
                       f"them (as --set {key}=VALUE would write it).") from None


def _checked_sets(sets: list[Any]) -> list[str]:
    for assignment in sets:
        if not isinstance(assignment, str):
            raise ZooError(f"sets: {assignment!r:.60} is not a 'SECTION.KEY=VALUE' string (as --set takes it, e.g. 'optimizer.lr=0.1'); "
                           f"in a dict such as {{'optimizer.lr': 0.1}} a value may be a number, a path or a list.")
    return sets


def params_by_section(given: Any) -> dict[str, dict[str, Any]]:
    """params= of the Python API: component settings by section, as config.json records them."""
    if given is None:
        return {}
    if not (isinstance(given, dict) and all(isinstance(section, str) and isinstance(values, dict) for section, values in given.items())):
        raise ZooError(f"params={given!r:.80}: give component settings by section, e.g. params={{'optimizer': {{'lr': 0.1}}}} "
                       f"(or sets=['optimizer.lr=0.1'], as --set).")
    return given


def _run_config(catalog: Catalog, recipe: str | None, overrides: dict[str, Any], sets: list[str]) -> RunConfig:
    """The run settings: defaults < recipe < --set < options; a component swapped on the command
    line drops the recipe's params for it."""
    recipe_name = recipe or RunConfig.model_fields["recipe"].default
    chosen = catalog.presets.recipe(recipe_name)
    from_recipe = chosen.model_dump(exclude={"help", "params"}, exclude_none=True)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    given = params_by_section(overrides.pop("params", None))  # zoo.run(params={"optimizer": {"lr": 0.1}}): over --set
    for key, value in overrides.items():  # zoo.run(lr=0.1): a component's setting given as a run's
        if key not in RunConfig.model_fields and (found := settings_named(catalog, key)):
            written = json.dumps(value) if value is not None else "VALUE"  # TOML as --set reads it: true, "text", [1, 2]
            raise ZooError(f"{key}={value!r} is a setting of the {found[0][0]} ({found[0][1]}), not of the run: give it as "
                           f"sets=[{json.dumps(f'{found[0][0]}.{key}={written}')}] (on the command line: --set {shlex.quote(f'{found[0][0]}.{key}={written}')}).")
    params: dict[str, dict[str, Any]] = {}
    for section, values in chosen.params.items():
        if not (section in overrides and overrides[section] != from_recipe.get(section)):
            params[section] = dict(values)
    top_level: dict[str, Any] = {}
    written: dict[str, str] = {}  # as typed, for a message
    from_sets: dict[tuple[str, str], Any] = {}
    for assignment in sets:
        section, key, value = parse_set(assignment)
        if section is None:
            top_level[key] = value
            written[key] = assignment.partition("=")[2].strip()
        else:
            params.setdefault(section, {})[key] = value
            from_sets[(section, key)] = value
    for section, values in given.items():
        _refuse_given_twice(section, values, from_sets)
        params.setdefault(section, {}).update(values)
    for key, value in top_level.items():
        if key not in RunConfig.model_fields or key == "params":
            components = {section: overrides.get(section) or from_recipe.get(section) or RunConfig.model_fields[section].default for section in SECTIONS}
            sectioned = [f"{section}.{key}" for section, name in components.items() if key in _fields_of(catalog, section, name)]
            if sectioned:
                raise ZooError(f"{_given(f'{key}={written[key]}')}: {key!r} is not a run setting but a setting of a component: "
                               f"give its section, {' or '.join(set_it(f'{s}={written[key]}') for s in sectioned)}.")
            hint = closest(key, [k for k in RunConfig.model_fields if k != "params"])
            needs_section = "" if hint else f" A component's setting needs its section, e.g. {set_it(f'model.{key}=...')} or {set_it(f'optimizer.{key}=...')};"
            raise ZooError(
                f"{_given(f'{key}={written[key]}')}: {key!r} is not a run setting" + (f"; did you mean {hint}?" if hint else ".") + needs_section
                + f" Run settings are {', '.join(k for k in RunConfig.model_fields if k != 'params')}."
            )
    try:
        return RunConfig.model_validate({**from_recipe, **top_level, **overrides, "recipe": recipe_name, "params": params})
    except ValidationError as error:
        raise ZooError(f"Invalid run settings: {describe_validation_error('', error, RunConfig.model_fields, 'a run', by_caller=True)}.") from None


def _refuse_given_twice(section: str, values: dict[str, Any], from_sets: dict[tuple[str, str], Any]) -> None:
    """zoo.run(params={"optimizer": {"lr": 0.1}}, sets=["optimizer.lr=0.2"]): which one was meant is not for zoo to guess."""
    same = lambda value: json.loads(json.dumps(value, default=str))  # noqa: E731  (64,) and [64], a Path and its text
    for key, value in values.items():
        if (section, key) in from_sets and same(from_sets[(section, key)]) != same(value):
            raise ZooError(f"{section}.{key} is given twice, as {value!r} in params= and as {from_sets[(section, key)]!r} in sets=; "
                           f"give it once.")


def settings_named(catalog: Catalog, key: str) -> list[tuple[str, str]]:
    """(section, component) of every loaded component with a setting called `key` (lr: optimizer, sgd), the
    run's usual choice first, for a hint where a component's setting was given as a run's (--lr, lr=)."""
    found = [(kind, component.name) for kind in SECTIONS for component in catalog.registry if component.kind == kind and key in component.params.model_fields]
    defaults = {RunConfig.model_fields[section].default for section in SECTIONS}
    return sorted(found, key=lambda found: found[1] not in defaults)


def _fields_of(catalog: Catalog, kind: str, name: str) -> dict[str, Any]:
    """The settings a component (or preset) takes; none when the name is unknown (that error comes later)."""
    try:
        return dict(catalog.resolve(kind, name).component.params.model_fields)
    except ZooError:
        return {}


def resolve_part(catalog: Catalog, section: str, kind: str, name: str, params: dict[str, Any]) -> Part:
    """A component by name (or preset), its params validated by its plugin's model."""
    resolved = catalog.resolve(kind, name)
    model = resolved.component.params
    values = {**resolved.params, **params}
    try:
        validated = model.model_validate(values)
        if model.model_config.get("extra") in (None, "ignore") and (strict := forbidding_extras(model)) is not None:
            strict.model_validate(values)  # a class that ignores unknown keys would drop a typo in silence
    except ValidationError as error:
        raise ZooError(
            f"Invalid {kind} settings for {name!r} ({resolved.component.owner}): "
            f"{describe_validation_error(section, error, model.model_fields, settable=True, by_caller=True)}.{_from_preset(catalog, kind, resolved, params, error)}"
        ) from None
    return Part(section, resolved, validated, changes_preset=resolved.preset is not None and _changes_preset(model, resolved.params, validated))


def _from_preset(catalog: Catalog, kind: str, resolved: Resolved, given: dict[str, Any], error: ValidationError) -> str:
    """Where a failing value was written, when a preset's file holds it rather than the command line."""
    keys = {str(problem["loc"][0]) for problem in error.errors() if problem.get("loc")}
    if resolved.preset is None or not keys & (set(resolved.params) - set(given)):
        return ""
    return f" The value comes from preset {resolved.preset!r} in {catalog.presets.presets[kind][resolved.preset].source}."


def _changes_preset(model: type[BaseModel], preset: dict[str, Any], validated: BaseModel) -> bool:
    """Whether the settings given change one the preset itself fixes (mlp-1024's hidden), so that its name no longer says what
    the network is; a setting the preset leaves open (dropout) does not."""
    given = validated.model_dump()
    try:
        own = model.model_validate({**given, **preset}).model_dump()  # the preset's values put back over what was given
    except ValidationError:
        return False
    return any(own.get(key) != given.get(key) for key in preset)


def recorded_component(catalog: Catalog, section: str, kind: str, record: Any) -> Component:
    """The component config.json names, from the plugin that trained the run; one no longer loaded is an error saying
    where it came from and what would load it again."""
    try:
        name, plugin = record["component"], record.get("plugin") or {}
    except (KeyError, TypeError, AttributeError):
        raise ZooError(f"config.json has no valid {section} entry.") from None
    if (kind, name) in catalog.registry.conflicts and isinstance(plugin, dict) and plugin.get("name"):
        name = f"{plugin['name']}:{name}"  # two plugins have the name now: take the one that trained this run
    if not catalog.registry.has(kind, name) and isinstance(plugin, dict):
        raise missing_component(catalog, kind, name, plugin)
    return catalog.registry.get(kind, name)


def part_from_record(catalog: Catalog, section: str, kind: str, record: Any, **params: Any) -> Part:
    """A component as config.json recorded it (component name and full params)."""
    component = recorded_component(catalog, section, kind, record)
    try:
        values = {**record.get("params", {}), **params}
    except (TypeError, AttributeError):
        raise ZooError(f"config.json has no valid {section} entry.") from None
    try:
        validated = component.params.model_validate(values)
    except ValidationError as error:
        raise ZooError(f"config.json's {section} settings no longer validate: {describe_validation_error(section, error)}.") from None
    return Part(section, Resolved(record.get("name", component.name), component, {}, record.get("preset")), validated,
                changes_preset=record.get("changes_preset") is True)


def resolved_from_record(catalog: Catalog, record: dict[str, Any], reporters_optional: bool = False) -> ResolvedRun:
    """The run a config.json describes, rebuilt against the plugins loaded now. reporters_optional: a
    recorded reporter whose plugin is gone is left out (a resume that chooses its own reporters)."""
    try:
        settings = {k: record[k] for k in RunConfig.model_fields if k in record and k != "params"}
        config = RunConfig.model_validate(settings)
        components = record["components"]
        return ResolvedRun(
            config=config,
            **{section: part_from_record(catalog, section, section, components.get(section)) for section in SECTIONS},
            reporters=_recorded_reporters(catalog, components.get("reporters", []), reporters_optional),
            changed=changed if isinstance(changed := record.get("changed_from_recipe"), dict) else None,
        )
    except ValidationError as error:
        raise ZooError(f"config.json does not validate: {describe_validation_error('', error)}.") from None
    except (KeyError, TypeError, AttributeError):
        raise ZooError("config.json is not a zoo run configuration.") from None


def _recorded_reporters(catalog: Catalog, records: list[Any], optional: bool) -> list[Part]:
    parts = []
    for record in records:
        try:
            parts.append(part_from_record(catalog, record.get("name", ""), "reporter", record))
        except ZooError:
            if not optional:
                raise
    return parts


def missing_component(catalog: Catalog, kind: str, name: str, plugin: dict[str, Any]) -> ZooError:
    """A run's component that no loaded plugin provides now, with where config.json says it came from."""
    distribution, version = plugin.get("distribution", "?"), plugin.get("version", "?")
    if distribution == IN_PROCESS:
        return ZooError(f"The {kind} {name!r} of these weights came from plugin {plugin.get('name')!r}, which the code that trained them "
                        f"loaded in-process (zoo.catalog(extra_plugins=...)) and which is not in this catalog: pass the same catalog, "
                        f"catalog=zoo.catalog(extra_plugins=[...]) with that plugin.")
    origin = f"The {kind} {name!r} of these weights came from {distribution} {version} (plugin {plugin.get('name')!r})"
    found = [p for p in catalog.plugins if p.name == plugin.get("name") or p.distribution == distribution]
    status = found[0].status if found else None
    if status == "disabled":
        return ZooError(f"{origin}, which is disabled by ZOO_DISABLE_PLUGINS; take it out of that list to use this run.")
    if status == "not-selected":
        return ZooError(f"{origin}, which ZOO_LOAD_PLUGINS does not select; add {found[0].name} to that list (or unset it).")
    if status == "failed":
        return ZooError(f"{origin}, which is installed but failed to load: {found[0].errors[0]} (`zoo plugins` shows why).")
    if version == FILE_VERSION and not found:
        return ZooError(f"{origin}, a plugin file that is not loaded now; add it to ZOO_PLUGIN_FILES ({distribution}) or install it as a package.")
    if version == FILE_VERSION:
        return ZooError(f"{origin}; the file loaded now ({found[0].distribution}) no longer provides it.")
    if found:
        return ZooError(f"{origin}; the installed {found[0].distribution} {found[0].version} no longer provides it. "
                        f"Install the version that trained it: `zoo install '{distribution}=={version}'`.")
    return ZooError(f"{origin}, which is not installed: `zoo install '{distribution}=={version}'` where it is published, or "
                    f"`zoo install PATH` for a copy of your own (zoo records the version, not where it was installed from).")
