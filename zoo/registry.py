"""What exists: one table of components per kind, each name owned by exactly one plugin.

Building lives elsewhere (zoo.build); this module only records and finds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from .errors import ZooError, unknown_name
from .names import matches, natural_key, natural_sorted  # noqa: F401  (re-exported: zoo.registry.natural_sorted)

KINDS = ("dataset", "model", "loss", "optimizer", "scheduler", "reporter")


class NoParams(BaseModel):
    """Params of a component that takes none."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Owner:
    """The plugin a name came from: entry-point name, distribution and its version."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} ({self.distribution} {self.version})"


@dataclass(frozen=True)
class Component:
    kind: str
    name: str
    factory: Callable[..., Any]
    params: type[BaseModel]
    help: str
    owner: Owner


@dataclass
class Registry:
    """Components by kind and name. A name claimed twice is kept out and reported,
    so that neither plugin silently wins."""

    components: dict[str, dict[str, Component]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    conflicts: dict[tuple[str, str], list[Owner]] = field(default_factory=dict)

    def add(self, component: Component) -> None:
        if component.kind not in KINDS:
            raise ZooError(f"Unknown component kind {component.kind!r}; kinds are {', '.join(KINDS)}.")
        _check_definition(component)
        table = self.components[component.kind]
        key = (component.kind, component.name)
        if key in self.conflicts:
            self.conflicts[key].append(component.owner)
            raise self.conflict_error(component.kind, component.name)
        if component.name in table:
            first = table.pop(component.name)
            self.conflicts[key] = [first.owner, component.owner]
            raise self.conflict_error(component.kind, component.name)
        table[component.name] = component

    def conflict_error(self, kind: str, name: str) -> ZooError:
        owners = self.conflicts[(kind, name)]
        listed = " and ".join(str(owner) for owner in owners)
        return ZooError(
            f"The {kind} name {name!r} is registered by both {listed}; zoo will use neither. "
            f"Uninstall one of them, or skip one with ZOO_DISABLE_PLUGINS={owners[-1].plugin}."
        )

    def get(self, kind: str, name: str) -> Component:
        if (kind, name) in self.conflicts:
            raise self.conflict_error(kind, name)
        try:
            return self.components[kind][name]
        except KeyError:
            raise unknown_name(kind, name, self.components[kind]) from None

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
