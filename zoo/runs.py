"""The runs browser: what each run directory holds, and how two runs differ.

A damaged run directory never hides the others: its summary says what is wrong with it, and the
listing goes on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from .errors import ZooError, describe_validation_error
from .rundir import CONFIG, DIVERGED, METRICS, WEIGHTS, network_name, read_config, read_small_file

#: metrics.jsonl holds one short line per epoch; a file this large is not one.
METRICS_LIMIT = 64 * 2**20


class EpochRecord(BaseModel):
    """One line of metrics.jsonl, as zoo.metrics.JsonlReporter writes it."""

    model_config = ConfigDict(extra="allow")

    epoch: PositiveInt
    test_accuracy: float = Field(ge=0, le=1)
    test_loss: float
    train_loss: float | None = None
    seconds: float = Field(0.0, ge=0)


@dataclass
class RunSummary:
    path: Path
    model: str
    dataset: str
    recipe: str
    seed: int | None
    epochs_done: int
    epochs_planned: int
    best_accuracy: float | None
    train_seconds: float
    created: datetime
    finished: bool
    problem: str | None = None
    """Why the run directory is damaged (None when it is not); the other fields hold what could be read."""
    diverged: bool = False
    """The loss became NaN or infinite and the run stopped (diverged.json)."""
    changed_from_recipe: dict[str, Any] | None = None
    """{setting: value} where the run trains otherwise than its recipe ({}: nowhere); None: unknown (a run from
    before zoo recorded it, or its recipe could not be resolved when it started)."""


def read_metrics(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The valid epochs of a metrics.jsonl, and what is wrong with the file (None if nothing).
    A last line without its newline is a write cut short by a crash, not damage; it is left out."""
    try:
        text = read_small_file(path, METRICS_LIMIT).decode("utf-8")
    except FileNotFoundError:
        return [], None
    except UnicodeDecodeError as error:
        return [], f"{path} is not UTF-8 text (byte {error.start})"
    except OSError as error:
        return [], f"{path} cannot be read: {error.strerror or error}"
    except ZooError as error:
        return [], str(error).rstrip(".")
    lines = text.split("\n")
    if lines and not text.endswith("\n"):
        lines.pop()  # empty, or cut short
    epochs: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            return epochs, f"{path} line {number} is not JSON"
        if not isinstance(value, dict):
            return epochs, f"{path} line {number} is {_json_kind(value)}, not an object with an epoch's metrics"
        try:
            epochs.append(EpochRecord.model_validate(value).model_dump())
        except ValidationError as error:
            return epochs, f"{path} line {number}: {describe_validation_error('', error)}"
    return epochs, None


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return {list: "an array", str: "a string"}.get(type(value), "a number")


def summarize(run_dir: Path) -> RunSummary:
    """What the run directory holds; a damaged file fills `problem` instead of raising."""
    config: dict[str, Any] = {}
    problem = None
    try:
        config = read_config(run_dir)
    except ZooError as error:
        problem = str(error).rstrip(".")
    epochs, metrics_problem = read_metrics(run_dir / METRICS)
    problem = problem or metrics_problem
    return RunSummary(
        path=run_dir,
        model=str(_trained_model(config)),
        dataset=str(config.get("dataset", "?")),
        recipe=str(config.get("recipe", "?")),
        seed=seed if isinstance(seed := config.get("seed"), int) and not isinstance(seed, bool) else None,
        epochs_done=len(epochs),
        epochs_planned=int(config.get("epochs", 0)),
        best_accuracy=max((e["test_accuracy"] for e in epochs), default=None),
        train_seconds=sum(e["seconds"] for e in epochs),
        created=_created(run_dir, config),
        finished=(run_dir / WEIGHTS).is_file(),
        diverged=(run_dir / DIVERGED).is_file(),
        problem=problem,
        changed_from_recipe=changed if isinstance(changed := config.get("changed_from_recipe"), dict) else None,
    )


def _trained_model(config: dict[str, Any]) -> str:
    components = config.get("components")
    return network_name(components.get("model")) if isinstance(components, dict) else str(config.get("model", "?"))


def locate(run: Path, root: Path) -> Path:
    """A run as `zoo runs` lists it: its directory, or its name under `root` (where a run is, if only one is)."""
    listed = root / run
    if not (run / CONFIG).is_file() and not run.is_absolute() and (listed / CONFIG).is_file():
        return listed
    return run


def comparison_json(a: Path, b: Path, comparison: Comparison) -> dict[str, Any]:
    """`zoo runs --compare --json`: strict JSON (a diverged run's NaN loss is null), missing values as null with why."""
    def value(v: Any) -> Any:
        return None if isinstance(v, float) and v != v else v

    def setting(name: str, left: Any, right: Any) -> dict[str, Any]:
        missing = {side: str(v) for side, v in (("a", left), ("b", right)) if isinstance(v, Missing)}
        return {"setting": name, "a": None if "a" in missing else value(left), "b": None if "b" in missing else value(right), "missing": missing}

    curves = [{"epoch": epoch, "a": {k: value(v) for k, v in (left or {}).items()} or None, "b": {k: value(v) for k, v in (right or {}).items()} or None}
              for epoch, left, right in comparison.curves]
    return {"a": str(a), "b": str(b), "differences": [setting(*d) for d in comparison.differences], "curves": curves, "problems": comparison.problems}


def _created(run_dir: Path, config: dict[str, Any]) -> datetime:
    """When the run started: config.json's `started`; for runs from before zoo recorded it (or a damaged value),
    when config.json was written, else the folder's time. A copied run keeps its `started`, not the copy's time."""
    started = config.get("started")
    if isinstance(started, str):
        try:
            when = datetime.fromisoformat(started)
            return when.astimezone().replace(tzinfo=None) if when.tzinfo else when
        except (ValueError, OverflowError):
            pass
    for path in (run_dir / CONFIG, run_dir):
        try:
            return datetime.fromtimestamp(path.lstat().st_mtime)
        except OSError:
            continue
    return datetime.fromtimestamp(0)


def list_runs(root: Path) -> list[RunSummary]:
    """Every run directory under `root` (a folder with a config.json), oldest first, damaged ones included."""
    if root.exists() and not root.is_dir():
        raise ZooError(f"{root} is not a directory; give the folder that holds the run directories (zoo run writes them under runs/).")
    candidates = [path.parent for path in root.glob(f"*/{CONFIG}") if path.parent.is_dir()]
    return sorted((summarize(run_dir) for run_dir in candidates), key=lambda s: (s.created, s.path.name))


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flatten(inner, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


IGNORED = ("out", "versions.", "config_hash", "reporters", "components.reporters", "changed_from_recipe", "started", "resumed",
           "components.model.changes_preset")  # it follows from model.hidden (or whichever setting), which is shown


RECORDED_LATER = ("machine.", "data_files.")


def _same_published_file(key: str, a: dict[str, Any], b: dict[str, Any]) -> bool:
    """A data file's path differs, but both runs read the real file (the same published checksum): e.g. the system
    copy, then the cache's uncompressed copy of it. Not a difference in what was trained on."""
    if not (key.startswith("data_files.") and key.endswith(".path")):
        return False
    file = key.removesuffix(".path")
    return any(a.get(f"{file}.{sum_}") is not None and a.get(f"{file}.{sum_}") == b.get(f"{file}.{sum_}") for sum_ in ("sha256", "archive_md5"))


class Missing(str):
    """Why a run has no value for a setting the other run has, as `--compare` shows it."""


NOT_RECORDED = Missing("(not recorded)")  # a component setting one run's zoo did not have yet (e.g. optimizer.fused, added later)


@dataclass
class Comparison:
    differences: list[tuple[str, Any, Any]]
    """(setting, value in A, value in B) for each setting that differs."""
    curves: list[tuple[int, dict[str, Any] | None, dict[str, Any] | None]]
    """(epoch, A's metrics, B's metrics), None where a run has no such epoch."""
    problems: list[str]
    """What is damaged in either run's metrics.jsonl; the curves then hold the epochs before it."""


def compare(a: Path, b: Path) -> Comparison:
    """The settings that differ, and both runs' per-epoch metrics side by side. A damaged config.json
    is an error (there is nothing to compare); damaged metrics show the epochs that can be read."""
    from .settings import RunConfig

    defaults = _flatten(RunConfig().model_dump(mode="json"))  # a run setting added later had its default before
    flat_a, flat_b = ({**defaults, **_flatten(read_config(run))} for run in (a, b))
    keys = [key for key in sorted(set(flat_a) | set(flat_b)) if flat_a.get(key, NOT_RECORDED) != flat_b.get(key, NOT_RECORDED) and not key.startswith(IGNORED)
            and not (key.startswith(RECORDED_LATER) and not (key in flat_a and key in flat_b))  # a run from before zoo recorded them
            and not _same_published_file(key, flat_a, flat_b)]
    named = sorted((name, key) for key in keys if (name := _setting_name(key, keys)))
    differences = [(name, _value_in(flat_a, flat_b, key), _value_in(flat_b, flat_a, key)) for name, key in named]
    (metrics_a, problem_a), (metrics_b, problem_b) = read_metrics(a / METRICS), read_metrics(b / METRICS)
    epochs_a = {e["epoch"]: e for e in metrics_a}
    epochs_b = {e["epoch"]: e for e in metrics_b}
    curves = [(epoch, epochs_a.get(epoch), epochs_b.get(epoch)) for epoch in sorted(set(epochs_a) | set(epochs_b))]
    return Comparison(differences, curves, [p for p in (problem_a, problem_b) if p])


def _value_in(flat: dict[str, Any], other: dict[str, Any], key: str) -> Any:
    """One run's value of a setting; where it has none, whether its component has no such setting (another
    component than the other run's) or its zoo did not record it yet."""
    if key in flat:
        return flat[key]
    section = key.split(".")[1] if key.startswith("components.") else None
    if section and flat.get(f"components.{section}.component") != other.get(f"components.{section}.component"):
        return Missing(f"(none: its {section} is {flat.get(f'components.{section}.component', '?')})")
    return NOT_RECORDED


def _setting_name(key: str, differing: list[str]) -> str | None:
    """A config.json key as --set and `zoo runs` name it: components.loss.params.label_smoothing is
    loss.label_smoothing. What a component resolved to (its name, component, preset) is None where the run
    setting of the same name (model, loss, ...) differs too, else "model (component)": the same name in both
    runs built different components (a preset redefined in a registry file)."""
    parts = key.split(".")
    if parts[0] != "components" or len(parts) < 3:
        return key
    section, field = parts[1], parts[2]
    if field == "params":
        return ".".join([section, *parts[3:]])
    if field in ("name", "component", "preset"):
        return None if section in differing or field == "name" else f"{section} ({field})"
    return ".".join([section, *parts[2:]])


def as_json(summary: RunSummary) -> dict[str, Any]:
    return {**summary.__dict__, "path": str(summary.path), "created": summary.created.isoformat(timespec="seconds")}


def dumps(summaries: list[RunSummary]) -> str:
    return json.dumps([as_json(s) for s in summaries], indent=2)
