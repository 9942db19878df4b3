"""What exists: one table of components per kind, each name owned by exactly one plugin.

Building lives elsewhere (zoo.build); this module only records and finds.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from .errors import ZooError, unknown_name
from .names import matches, natural_key, natural_sorted  # noqa: F401  (re-exported: zoo.registry.natural_sorted)

KINDS = ("dataset", "model", "loss", "optimizer", "scheduler", "reporter")


class NoParams(BaseModel):
    """Params of a component that takes none."""

    model_config = ConfigDict(extra="forbid")


#: The distribution of a plugin given to zoo.catalog(extra_plugins=...) (a notebook's, a test's): no package.
IN_PROCESS = "(in-process)"


@dataclass(frozen=True)
class Owner:
    """The plugin a name came from: entry-point name, distribution and its version."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        if self.distribution == IN_PROCESS:
            return f"plugin {self.plugin!r} (in-process)"
        return f"plugin {self.plugin!r} ({self.distribution} {self.version})"

    @property
    def builtin(self) -> bool:
        """zoo's own plugins: their names and presets belong to zoo."""
        return re.sub(r"[-_.]+", "-", self.distribution).lower() == "zoo"


@dataclass(frozen=True)
class Component:
    kind: str
    name: str
    factory: Callable[..., Any]
    params: type[BaseModel]
    help: str
    owner: Owner


class NameTaken(ZooError):
    """A third-party plugin tried to register a name that belongs to zoo; zoo keeps its own."""


@dataclass
class Registry:
    """Components by kind and name. zoo's own names cannot be taken by another plugin (refused,
    the built-in keeps working); a name two third-party plugins claim is usable by neither bare
    name, but by each qualified name (`extras:adamw`), so installing a plugin never breaks a name
    that worked."""

    components: dict[str, dict[str, Component]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    conflicts: dict[tuple[str, str], list[Owner]] = field(default_factory=dict)
    qualified: dict[str, dict[str, Component]] = field(default_factory=lambda: {kind: {} for kind in KINDS})

    def add(self, component: Component) -> None:
        """Record `component`; raises NameTaken if zoo owns its name."""
        if component.kind not in KINDS:
            raise ZooError(f"Unknown component kind {component.kind!r}; kinds are {', '.join(KINDS)}.")
        _check_definition(component)
        table = self.components[component.kind]
        key = (component.kind, component.name)
        first = table.get(component.name)
        if first is not None and first.owner.builtin and not component.owner.builtin:
            raise NameTaken(
                f"{component.owner} registers the {component.kind} {component.name!r}, a name of zoo's own ({first.owner}); "
                f"zoo keeps its own and refuses this one. Rename it in that plugin (e.g. {component.owner.plugin}-{component.name})."
            )
        self.qualified[component.kind][f"{component.owner.plugin}:{component.name}"] = component
        if key in self.conflicts:
            self.conflicts[key].append(component.owner)
        elif first is not None:
            table.pop(component.name)
            self.conflicts[key] = [first.owner, component.owner]
        else:
            table[component.name] = component

    def remove(self, component: Component) -> None:
        """Take a refused component out again (e.g. its name is one of zoo's presets)."""
        self.components[component.kind].pop(component.name, None)
        self.qualified[component.kind].pop(f"{component.owner.plugin}:{component.name}", None)

    def conflict_error(self, kind: str, name: str) -> ZooError:
        owners = self.conflicts[(kind, name)]
        listed = " and ".join(str(owner) for owner in owners)
        choices = " or ".join(f"{owner.plugin}:{name}" for owner in owners)
        return ZooError(
            f"The {kind} name {name!r} is registered by both {listed}, so the bare name is ambiguous. "
            f"Choose one by its qualified name: {choices} (e.g. --{kind} {owners[0].plugin}:{name})."
        )

    def get(self, kind: str, name: str) -> Component:
        """A component by name, or by qualified name `plugin:name`."""
        if ":" in name:
            try:
                return self.qualified[kind][name]
            except KeyError:
                raise unknown_name(kind, name, self.qualified[kind]) from None
        if (kind, name) in self.conflicts:
            raise self.conflict_error(kind, name)
        try:
            return self.components[kind][name]
        except KeyError:
            raise unknown_name(kind, name, self.components[kind]) from None

    def has(self, kind: str, name: str) -> bool:
        """Whether `name` is a component's name (bare, ambiguous, or qualified)."""
        return name in self.components[kind] or (kind, name) in self.conflicts or name in self.qualified[kind]

    def names(self, kind: str) -> list[str]:
        return natural_sorted(self.components[kind])

    def __iter__(self) -> Iterator[Component]:
        for kind in KINDS:
            for name in self.names(kind):
                yield self.components[kind][name]


def _check_definition(component: Component) -> None:
    """Catch a malformed register() call at registration, naming the plugin."""
    where = f"{component.owner} registering {component.kind} {component.name!r}"
    if not isinstance(component.name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", component.name):
        raise ZooError(f"{where}: names are letters, digits and - _ . + (got {component.name!r}).")
    if not callable(component.factory):
        raise ZooError(f"{where}: the factory must be callable (got {component.factory!r}).")
    if not (isinstance(component.params, type) and issubclass(component.params, BaseModel)):
        raise ZooError(f"{where}: params must be a pydantic model class (got {component.params!r}).")
    if not component.owner.builtin:  # zoo's own are checked by its tests; this keeps `zoo list` fast
        _check_defaults(where, component.params)


@functools.cache
def forbidding_extras(params: type[BaseModel]) -> type[BaseModel] | None:
    """`params` with extra="forbid", to find the keys pydantic would ignore (aliases and all, as pydantic itself
    reads them); None where the class cannot be subclassed (an __init_subclass__ that wants arguments)."""
    try:
        return type(params.__name__, (params,), {"__module__": params.__module__, "model_config": ConfigDict(extra="forbid")})
    except Exception:
        return None


def _check_defaults(where: str, params: type[BaseModel]) -> None:
    """pydantic does not validate defaults: a default its own field refuses (`width: int = Field(-3, gt=0)`)
    would reach the factory. Each default is checked against its field's type and constraints alone: model
    validators (one of a or b) and required fields are the user's to satisfy; a None default is a common
    "not set" and is left alone."""
    wrong = []
    for name, field in params.model_fields.items():
        if field.is_required():
            continue
        try:
            default = field.get_default(call_default_factory=True)
            if default is None:
                continue
            annotation = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
            TypeAdapter(annotation).validate_python(default)
        except ValidationError as error:
            wrong.append(f"{name}: {error.errors()[0]['msg']} (default {default!r})")
        except Exception:  # an annotation or a factory that cannot be checked alone: not the plugin's error
            continue
    if wrong:
        raise ZooError(f"{where}: the params class {params.__name__} has defaults its own fields refuse: {'; '.join(wrong)}. Fix the defaults in the plugin.")
