"""registry.toml: named presets (a name that resolves to a component plus params) and recipes.

A preset name may hold one placeholder such as ``mlp-{width}``: it matches any digits there,
and a param whose value is exactly "{width}" becomes that integer.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from .errors import ZooError, describe_validation_error, spoken
from .precision import Machine
from .registry import natural_sorted
from .settings import RunConfig

#: registry.toml table name -> component kind.
SECTIONS = {
    "datasets": "dataset",
    "models": "model",
    "losses": "loss",
    "optimizers": "optimizer",
    "schedulers": "scheduler",
    "reporters": "reporter",
}
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
#: A registry file is a few kilobytes of presets and recipes; nothing in one nests deeper than this.
REGISTRY_LIMIT = 16 * 2**20
MAX_DEPTH = 32


class Result(BaseModel):
    """What the project's benchmark measured for a preset with one dataset and recipe, on one kind of
    machine: seconds only mean something next to the machine, hence `machine`, and the reference-epoch
    ratio (bench/reference.py) is what carries over to other machines."""

    model_config = ConfigDict(extra="forbid")

    accuracy: float = Field(ge=0, le=1)
    """Final test accuracy; the mean over `accuracies` when several seeds ran."""
    seconds: float = Field(ge=0)
    """Training time: the train and test passes of every epoch, without start-up."""
    measured: str = ""
    accuracies: list[Annotated[float, Field(ge=0, le=1)]] = []
    """One per seed, when several ran."""
    wall: float | None = Field(None, ge=0)
    """Whole-process seconds of `zoo run`, start-up included."""
    reference_epochs: float | None = Field(None, ge=0)
    """`wall` in reference epochs timed in the same turn (median over turns)."""
    precision: Literal["fp32", "bf16"] | None = None
    """What the run trained in (an "auto" recipe resolved on this machine)."""
    machine: str = ""
    """The CPU or GPU model that trained; empty in results older than this field."""
    device: Literal["cpu", "cuda", "mps"] = "cpu"
    cores: int | None = Field(None, gt=0)
    threads: int | None = Field(None, gt=0)
    """torch threads per process; fewer than `cores` keeps timings steady on a machine shared with other work."""
    native_bf16: bool | None = None
    """Whether the CPU computes bfloat16 natively (one CPU name can cover both kinds)."""
    recipe: str = ""
    """recipe_fingerprint() of the recipe that trained; a result of an earlier version of the recipe is not
    quoted for it. Empty in results older than this field."""

    def of_recipe(self, fingerprint: str | None) -> bool:
        """Measured with this version of its recipe (or it cannot tell: an older result, or an unknown recipe)."""
        return not self.recipe or fingerprint is None or self.recipe == fingerprint

    def kind(self) -> Machine:
        return Machine(self.machine, self.device, self.cores, self.native_bf16 if self.device == "cpu" else None)

    def where(self) -> str:
        """"AMD EPYC, 2 cores, 1 thread, a CPU without native bf16" or "NVIDIA H100 80GB HBM3"; "" when unknown."""
        if not self.machine:
            return ""
        parts = [self.machine]
        if self.cores:
            parts.append(f"{self.cores} cores")
        if self.threads:
            parts.append(f"{self.threads} thread{'s' * (self.threads > 1)}")
        if self.native_bf16 is not None and self.device == "cpu":
            parts.append("a CPU with native bf16" if self.native_bf16 else "a CPU without native bf16")  # what the machine has, not what the run used
        return ", ".join(parts)


def recipe_fingerprint(recipe: BaseModel) -> str:
    """What a recipe trains, hashed (its help left out): results record it, so that a changed recipe's old
    results are not quoted for it. It covers the recipe's own entry only: a changed preset (mlp-512's
    widths), a run default the recipe leaves unset, or zoo's code can change a result without changing it."""
    import hashlib
    import json

    settings = recipe.model_dump(mode="json", exclude={"help"}, exclude_none=True)
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def select_results(results: list[Result], here: list[Machine]) -> tuple[list[Result], bool]:
    """The results measured on a kind of machine in `here` (True), or, when there are none, all (False)."""
    mine = [r for r in results if any(r.kind().same_kind(m) for m in here)]
    return (mine, True) if mine else (list(results), False)


class Preset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    component: str
    params: dict[str, Any] = {}
    help: str = ""
    results: dict[str, list[Result]] = {}
    """Keyed "<dataset>/<recipe>", one entry per kind of machine, written by `make bench`."""

    @field_validator("results", mode="before")
    @classmethod
    def _one_result_is_a_list(cls, value: Any) -> Any:
        """Registry files from before per-machine results hold one table per key."""
        if isinstance(value, dict):
            return {key: [item] if isinstance(item, dict) else item for key, item in value.items()}
        return value


def _optional(field: Any) -> Any:
    """A RunConfig field's type, constraints kept, with None allowed (left out of the recipe)."""
    annotation = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    return Optional[annotation]


#: A training recipe: any run setting (see zoo.settings.RunConfig), plus params per section, plus help.
Recipe = create_model(
    "Recipe",
    __config__=ConfigDict(extra="forbid"),
    help=(str, ""),
    params=(dict[str, dict[str, Any]], {}),
    **{name: (_optional(field), None) for name, field in RunConfig.model_fields.items() if name not in ("recipe", "params", "out")},
)


@dataclass(frozen=True)
class Named:
    """A preset or recipe with the file it came from."""

    name: str
    value: Preset | Recipe
    source: str


@dataclass
class Presets:
    presets: dict[str, dict[str, Named]] = field(default_factory=lambda: {k: {} for k in SECTIONS.values()})
    recipes: dict[str, Named] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def load_file(self, path: str | Path) -> None:
        """Read one registry file; a bad file is an error naming the file and the line."""
        from .rundir import nesting_depth, read_small_file

        path = Path(path)
        try:
            data = tomllib.loads(read_small_file(path, REGISTRY_LIMIT).decode("utf-8-sig"))  # a byte-order mark, as some editors write, is no error
        except FileNotFoundError:
            raise ZooError(f"Registry file {path} does not exist.") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ZooError(f"Registry file {path} cannot be read: {getattr(error, 'strerror', None) or error}.") from None
        except tomllib.TOMLDecodeError as error:
            raise ZooError(f"Registry file {path} is not valid TOML: {error}.") from None
        except RecursionError:
            raise ZooError(f"Registry file {path} nests arrays or tables too deeply to read; no setting needs more than {MAX_DEPTH} levels.") from None
        if nesting_depth(data) > MAX_DEPTH:
            raise ZooError(f"Registry file {path} nests arrays or tables {nesting_depth(data)} levels deep; no setting needs more than {MAX_DEPTH}.")
        self.add_tables(data, str(path))
        self.files.append(str(path))

    def add_tables(self, data: dict[str, Any], source: str) -> None:
        unknown = set(data) - set(SECTIONS) - {"recipes"}
        if unknown:
            raise ZooError(
                f"Registry file {source}: unknown table(s) {', '.join(sorted(unknown))}; "
                f"the tables are {', '.join(SECTIONS)} and recipes."
            )
        for section, table in data.items():
            if not isinstance(table, dict):
                example = "[recipes.NAME]" if section == "recipes" else f'[{section}.NAME] with component = "..."'
                raise ZooError(
                    f"Registry file {source}: {section} must be a table of named entries, e.g. {example}, "
                    f"not {type(table).__name__} {table!r:.60}."
                )
        for section, kind in SECTIONS.items():
            for name, body in data.get(section, {}).items():
                self._add(self.presets[kind], f"{section}.{name}", name, Preset, body, source)
        for name, body in data.get("recipes", {}).items():
            self._add(self.recipes, f"recipes.{name}", name, Recipe, body, source)

    @staticmethod
    def _add(table: dict[str, Named], where: str, name: str, model: type[BaseModel], body: Any, source: str) -> None:
        if name in table:
            raise ZooError(
                f"[{where}] is defined in both {table[name].source} and {source}; "
                f"rename one of them (a preset is never silently replaced)."
            )
        if not name.strip() or name != name.strip() or not name.isprintable() or len(name) > 100:
            raise ZooError(f"Registry file {source}: [{where}] cannot be a name: names are 1 to 100 printable characters, not beginning "
                           f"or ending with a space, as they are typed after --model, --recipe and the like.")
        if len(PLACEHOLDER.findall(name)) > 1:
            raise ZooError(f"Registry file {source}: [{where}] may hold at most one placeholder.")
        _refuse_a_shadowed_pattern(table, where, name, source)
        try:
            value = model.model_validate(body)
        except ValidationError as error:
            what = "a recipe" if model is Recipe else "a preset"
            raise ZooError(f"Registry file {source}: {describe_validation_error(f'[{where}]', error, model.model_fields, what)}.") from None
        table[name] = Named(name, value, source)

    def find(self, kind: str, name: str) -> tuple[str, Preset] | None:
        """The preset `name` of this kind, exact names first, then placeholder patterns."""
        table = self.presets[kind]
        if name in table and not PLACEHOLDER.search(name):
            return name, table[name].value
        for pattern, named in table.items():
            match = _pattern(pattern).fullmatch(name)
            if match:
                value = match.group(1)
                preset = named.value
                assert isinstance(preset, Preset)
                return pattern, preset.model_copy(update={"params": _substitute(preset.params, value)})
        return None

    def names(self, kind: str) -> list[str]:
        return natural_sorted(self.presets[kind])

    def fingerprints(self) -> dict[str, str]:
        """{recipe name: recipe_fingerprint}."""
        return {name: recipe_fingerprint(named.value) for name, named in self.recipes.items()}

    def recipe(self, name: str) -> Recipe:
        from .errors import closest

        if name not in self.recipes:
            hint = closest(name, self.recipes)
            raise ZooError(f"Unknown recipe {name!r}." + (f" Did you mean {hint}?" if hint else "") + f" Known recipes: {', '.join(sorted(self.recipes))}"
                           ". A recipe in a file of your own needs that file: " + spoken("--registry FILE", "registry_files=[FILE]")
                           + " or ZOO_REGISTRY=FILE (`zoo list recipes` shows what is known).")
        recipe = self.recipes[name].value
        assert isinstance(recipe, Recipe)
        return recipe


def _refuse_a_shadowed_pattern(table: dict[str, Named], where: str, name: str, source: str) -> None:
    """A name that another file's pattern also makes (mlp-8 beside mlp-{width}) would replace that one instance unseen:
    refused as a duplicate name is. Within one file, a name beside its own pattern is that file's deliberate choice."""
    for other, named in table.items():
        if named.source == source:
            continue
        if PLACEHOLDER.search(other) and PLACEHOLDER.search(name) and _pattern(other).pattern == _pattern(name).pattern:
            clash = f"makes the same names as {display(other)} in {named.source}"  # wide-{n} and wide-{m}: whichever loaded first
        elif PLACEHOLDER.search(other) and _pattern(other).fullmatch(name):
            clash = f"would replace {name}, which {display(other)} in {named.source} already makes"
        elif PLACEHOLDER.search(name) and not PLACEHOLDER.search(other) and _pattern(name).fullmatch(other):
            clash = f"would also make {other}, which {named.source} defines"
        else:
            continue
        raise ZooError(f"Registry file {source}: [{where}] {clash}; rename one of them (a preset is never silently replaced).")


def display(name: str) -> str:
    """mlp-{width} as users read it: mlp-<width>."""
    return PLACEHOLDER.sub(lambda m: f"<{m.group(1)}>", name)


def _pattern(name: str) -> re.Pattern[str]:
    parts = PLACEHOLDER.split(name)
    if len(parts) == 1:
        return re.compile(re.escape(name))
    before, _, after = parts
    return re.compile(re.escape(before) + r"([0-9]+)" + re.escape(after))


def _substitute(value: Any, number: str) -> Any:
    if isinstance(value, str):
        if PLACEHOLDER.fullmatch(value):
            return int(number)
        return PLACEHOLDER.sub(number, value)
    if isinstance(value, list):
        return [_substitute(v, number) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, number) for k, v in value.items()}
    return value
