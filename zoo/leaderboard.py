"""`zoo leaderboard`: train a grid (models × datasets × recipes × seeds) with zoo.api.run and keep
a results table in a folder.

Each finished cell is one JSON file in FOLDER/cells/, written atomically, so a stopped leaderboard
run again trains only the cells it lacks (an interrupted cell resumes from its checkpoint). A cell
that fails is recorded as failed and the rest go on. The table is written as Markdown and CSV, and
drawn as accuracy against parameters and against training time.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import re
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import Interrupted, ZooError, option, resume_it, spoken
from .presets import PLACEHOLDER
from .rundir import CONFIG, WEIGHTS, network_name, read_small_file, write_atomic, write_json

if TYPE_CHECKING:
    from .plugins import Catalog

CELLS = "cells"
RUNS = "runs"
COLUMNS = ("model", "dataset", "recipe", "epochs", "seeds", "failed", "accuracy", "spread", "parameters", "seconds", "device", "machine", "precision", "zoo", "torch",
           "changed")  # changed: a shared --set changed the network the preset names (the Markdown table's mlp-8*)


@dataclass(frozen=True)
class Cell:
    model: str
    dataset: str
    recipe: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.model}--{self.dataset}--{self.recipe}--seed{self.seed}"

    def __str__(self) -> str:
        return f"{self.model} on {self.dataset} ({self.recipe}, seed {self.seed})"


@dataclass(frozen=True)
class Board:
    """zoo.api.leaderboard's answer: every cell's row, the table, the files written, the results recorded."""

    rows: list[dict[str, Any]]
    lines: list[dict[str, Any]]
    written: list[Path]
    recorded: list[str]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [row for row in self.rows if row["status"] != "ok"]


def expand_models(catalog: Catalog, patterns: Iterable[str]) -> list[str]:
    """Model names matching the patterns: components and concrete presets (mlp-* is mlp-256, mlp-512,
    mlp-1024 and mlp, never the mlp-{width} placeholder); a name without wildcards may be any that resolves."""
    known = catalog.registry.names("model") + [p for p in catalog.presets.names("model") if not PLACEHOLDER.search(p)]
    chosen: list[str] = []
    for pattern in (p.strip() for text in patterns for p in text.split(",") if p.strip()):
        if any(c in pattern for c in "*?["):
            matches = [name for name in known if fnmatch.fnmatchcase(name, pattern)]
            if not matches:
                raise ZooError(f"{option('--models', pattern)} matches no model; `zoo list models` shows them all.")
        else:
            catalog.resolve("model", pattern)  # an unknown name: one paragraph with the closest names
            matches = [pattern]
        chosen += [m for m in matches if m not in chosen]
    if not chosen:
        raise ZooError(f"{option('--models')} names no model; give names or patterns, e.g. {option('--models', 'mlp-*')}.")
    return chosen


def grid(models: list[str], datasets: list[str], recipes: list[str], seeds: int) -> list[Cell]:
    """Every cell; an empty grid (`--datasets ''`, `--seeds 0`) is an error, not an empty table."""
    empty = [name for name, given in (("models", models), ("datasets", datasets), ("recipes", recipes)) if not given]
    if empty or seeds < 1:
        raise ZooError(f"The leaderboard's grid is empty: it needs at least one of each of models, datasets and recipes, and one seed "
                       f"({', '.join(empty) + ': none given' if empty else option('--seeds', seeds)}).")
    return [Cell(m, d, r, s) for r in recipes for d in datasets for m in models for s in range(seeds)]


def check_settings(cells: list[Cell], settings: dict[str, Any], resolve: Callable[..., Any]) -> None:
    """Settings shared by every cell (--set, --epochs, --device) that a cell's model, dataset and recipe
    accept alone but not with them fail the command before anything trains, rather than every cell.
    A cell that fails without them too is left to fail on its own, recorded as failed."""
    for model, dataset, recipe in dict.fromkeys((cell.model, cell.dataset, cell.recipe) for cell in cells):
        try:
            resolve(recipe=recipe, model=model, dataset=dataset, **settings)
        except ZooError as error:
            try:
                resolve(recipe=recipe, model=model, dataset=dataset)
            except ZooError:
                continue
            raise ZooError(f"{str(error).rstrip('.')}. (The leaderboard's settings, given to every cell: {model} on {dataset} with "
                           f"recipe {recipe} cannot take them; nothing was trained.)") from None


def run_cell(cell: Cell, folder: Path, catalog: Catalog, settings: dict[str, Any], train: Callable[..., Any]) -> dict[str, Any]:
    """Train one cell with `train` (zoo.api.run), resuming its interrupted run if there is one, and return its row."""
    import torch

    from . import __version__
    from .checkpoint import newest

    run_dir = folder / RUNS / cell.key
    resume = run_dir if run_dir.is_dir() and not (run_dir / WEIGHTS).exists() and newest(run_dir)[0] is not None else None
    if resume is None:
        run_dir = _fresh(run_dir)
    result = train(recipe=cell.recipe, model=cell.model, dataset=cell.dataset, seed=cell.seed, catalog=catalog, resume=resume,
                     out=None if resume else run_dir, drop_reporters=["console", "progress"], **settings)
    device = next(iter(result.model.parameters()), torch.empty(0)).device
    return {
        "status": "ok", **cell.__dict__, "run_dir": str(result.run_dir), "accuracy": result.epochs[-1].test_accuracy,
        "epochs": len(result.epochs), "seconds": sum(e.seconds for e in result.epochs),
        "parameters": sum(p.numel() for p in result.model.parameters()), "device": device.type, "machine": _machine(device),
        **_recorded(result.run_dir), "zoo": __version__, "torch": torch.__version__, "measured": date.today().isoformat(),
    }


def _fresh(run_dir: Path) -> Path:
    """run_dir, or run_dir-2, -3...: a run directory of an earlier, unusable attempt is kept, not reused."""
    candidate, attempt = run_dir, 1
    while candidate.exists():
        attempt += 1
        candidate = run_dir.with_name(f"{run_dir.name}-{attempt}")
    return candidate


def _machine(device: Any) -> str:
    if device.type == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    from .precision import local_machines

    return local_machines(gpu_names=[])[0].name


def _recorded(run_dir: Path) -> dict[str, str]:
    """From the run's config.json: the precision it trained in (an "auto" resolved by the run itself is recorded as
    run), and the network's name (mlp, where a shared --set changed what the preset mlp-512 fixes)."""
    try:
        config = _config_of(run_dir)
        return {"precision": str(config.get("precision", "")), "network": network_name(config["components"]["model"])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {"precision": ""}


def _config_of(run_dir: Path) -> Any:
    """A cell's config.json as it is (not validated: the leaderboard reads only a few keys, each guarded)."""
    return json.loads(read_small_file(run_dir / CONFIG, 2**24))


def run_grid(cells: list[Cell], folder: Path, catalog: Catalog, settings: dict[str, Any], train: Callable[..., Any],
             progress: Callable[[int, int, Cell, dict[str, Any] | None], None] = lambda i, n, c, r: None,
             resolve: Callable[..., Any] | None = None) -> list[dict[str, Any]]:
    """Every cell: those already done are read back, the others trained; a failure is recorded, not raised.
    The caller holds `folder` (zoo.runlock.hold(folder, leaderboard=True)) until its table is written.
    `resolve` (zoo.api.resolve) keeps the cells done before cells recorded their recipe's fingerprint (_trains_the_same)."""
    rows = []
    (folder / CELLS).mkdir(parents=True, exist_ok=True)
    fingerprints = catalog.presets.fingerprints()
    for index, cell in enumerate(cells):
        path = folder / CELLS / f"{cell.key}.json"
        done = _read_cell(path)
        if done is not None and done.get("status") == "ok" and done.get("settings") == _what(settings) \
                and (done.get("recipe_fingerprint") == fingerprints.get(cell.recipe)  # a recipe changed since trains the cell again
                     or "recipe_fingerprint" not in done and _trains_the_same(done, cell, settings, resolve)):
            if "recipe_fingerprint" not in done:  # kept from before fingerprints: checked once, recorded for next time
                done["recipe_fingerprint"] = fingerprints.get(cell.recipe)
                write_json(path, done)
            rows.append(done)
            progress(index, len(cells), cell, None)
            continue
        try:
            row = run_cell(cell, folder, catalog, settings, train)
        except Interrupted as stop:  # Ctrl-C, SIGTERM: the person (or the queue) stops the whole grid, which continues as it began
            raise Interrupted(_continue_the_grid(str(stop), stop.run_dir), stop.exit_code, stop.run_dir) from None
        except KeyboardInterrupt:
            raise
        except Exception as error:  # a failing cell must not stop the others
            row = {"status": "failed", **cell.__dict__, "error": " ".join(str(error).split()) or type(error).__name__}
        row["recipe_fingerprint"] = fingerprints.get(cell.recipe)
        write_json(path, {**row, "settings": _what(settings)})
        rows.append(row)
        progress(index, len(cells), cell, row)
    return rows


def _continue_the_grid(message: str, run_dir: Path | None) -> str:
    """A stopped cell's 'continue with `zoo run --resume RUN`' as the grid is continued: the same command again."""
    again = spoken("continue by running the same leaderboard again (`zoo leaderboard` with the same --out): it resumes this cell "
                   "from its checkpoint and keeps the finished ones",
                   "continue by calling zoo.api.leaderboard again with the same out=: it resumes this cell from its checkpoint and "
                   "keeps the finished ones")
    if run_dir is not None and f"continue with {resume_it(run_dir)}" in message:
        return message.replace(f"continue with {resume_it(run_dir)}", again)
    return re.sub(r"continue with `zoo run --resume [^`]*`", again, message)


def failures(board: Board, folder: Path) -> str:
    """How many cells failed, where their errors are and the first of them."""
    first = board.failed[0]
    again = spoken("run the command again", "call zoo.api.leaderboard again")
    return (f"{len(board.failed)} of {len(board.rows)} cells failed (recorded in {folder}/cells/; {again} to retry them); "
            f"the first: {first['model']} on {first['dataset']}: {first['error']}")


def _trains_the_same(done: dict[str, Any], cell: Cell, settings: dict[str, Any], resolve: Callable[..., Any] | None) -> bool:
    """Whether a cell recorded without its recipe's fingerprint would train today what its run did (the same config_hash)."""
    from .identity import config_hash

    if resolve is None:
        return False
    try:
        trained = _config_of(Path(done["run_dir"]))["config_hash"]
        return bool(trained == config_hash(resolve(recipe=cell.recipe, model=cell.model, dataset=cell.dataset, seed=cell.seed, **settings)[1]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ZooError):
        return False


def _what(settings: dict[str, Any]) -> dict[str, Any]:
    """The overrides that change what a cell trains (--epochs, --set, --device): a cell done with others is trained again."""
    from .config import set_list

    what = {"epochs": settings.get("epochs"), "sets": set_list(settings.get("sets") or ()), "device": settings.get("device")}
    return {**what, "params": settings["params"]} if settings.get("params") else what  # cells recorded before params= stay valid


def _read_cell(path: Path) -> dict[str, Any] | None:
    try:
        row = json.loads(read_small_file(path, 2**20))
    except (OSError, ValueError, ZooError):
        return None
    return row if isinstance(row, dict) else None


def table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per model × dataset × recipe: accuracy mean and spread (sample standard deviation) over seeds."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["dataset"], row["recipe"]), []).append(row)
    lines = []
    for (model, dataset, recipe), group in groups.items():
        ok = [r for r in group if r["status"] == "ok"]
        accuracies = [r["accuracy"] for r in ok]
        first = ok[0] if ok else {}
        lines.append({
            "model": model, "dataset": dataset, "recipe": recipe, "seeds": len(ok), "failed": len(group) - len(ok),
            "accuracy": statistics.fmean(accuracies) if ok else None, "spread": statistics.stdev(accuracies) if len(ok) > 1 else 0.0 if ok else None,
            "accuracies": accuracies, "parameters": first.get("parameters"), "seconds": statistics.fmean(r["seconds"] for r in ok) if ok else None,
            **{key: first.get(key, "") for key in ("device", "machine", "precision", "zoo", "torch", "run_dir", "recipe_fingerprint", "epochs")},
            "changed": any(r.get("network", model) != model for r in ok),
        })
    return sorted(lines, key=lambda line: (line["dataset"], line["recipe"], -(line["accuracy"] or -1)))


def markdown(lines: list[dict[str, Any]]) -> str:
    head = "| model | dataset | recipe | epochs | seeds | accuracy | ± | parameters | seconds | device | zoo | torch |"
    out = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for line in lines:
        if line["accuracy"] is None:
            out.append(f"| {line['model']} | {line['dataset']} | {line['recipe']} | | 0 | failed ({line['failed']}) | | | | | | |")
            continue
        failed = f" ({line['failed']} failed)" if line["failed"] else ""
        out.append(f"| {line['model']}{'*' if line.get('changed') else ''} | {line['dataset']} | {line['recipe']} | {line.get('epochs', '')} | "
                   f"{line['seeds']}{failed} | {line['accuracy']:.2%} | "
                   f"{line['spread']:.2%} | {line['parameters']:,} | {line['seconds']:.1f} | {line['device']} ({line['machine']}) | "
                   f"{line['zoo']} | {line['torch']} |")
    if any(line.get("changed") for line in lines):
        out += ["", "A model marked * was trained with settings (the leaderboard's `--set`) that change the network its preset names; such a result is never recorded as the preset's."]
    return "\n".join(out) + "\n"


def csv_text(lines: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(lines)
    return buffer.getvalue()


def write_outputs(folder: Path, lines: list[dict[str, Any]]) -> list[Path]:
    """leaderboard.md, leaderboard.csv and the two pictures, each written atomically."""
    written = []
    for name, text in (("leaderboard.md", markdown(lines)), ("leaderboard.csv", csv_text(lines))):
        write_atomic(folder / name, lambda temporary, text=text: Path(temporary).write_text(text, encoding="utf-8"))
        written.append(folder / name)
    drawn = [line for line in lines if line["accuracy"] is not None]
    for key, label, name in (("parameters", "parameters", "accuracy-vs-parameters.png"), ("seconds", "training time (s)", "accuracy-vs-time.png")):
        written.append(_draw(drawn, key, label, folder / name))
    return written


def _draw(lines: list[dict[str, Any]], key: str, label: str, path: Path) -> Path:
    from .plots import figure

    drawing = figure((7, 5))
    axes = drawing.subplots()
    for line in lines:
        axes.errorbar(line[key], line["accuracy"] * 100, yerr=line["spread"] * 100, fmt="o", capsize=3)
        axes.annotate(f"{line['model']} ({line['dataset']}, {line['recipe']})", (line[key], line["accuracy"] * 100),
                      textcoords="offset points", xytext=(5, 4), fontsize=8)
    axes.set(xlabel=label, ylabel="test accuracy (%)", title=f"Accuracy against {label}")
    if key == "parameters" and lines:
        axes.set_xscale("log")
    axes.grid(alpha=0.3)
    drawing.tight_layout()
    write_atomic(path, lambda temporary: drawing.savefig(temporary, format="png"))
    return path


def record(lines: list[dict[str, Any]], catalog: Catalog, resolve: Callable[..., Any], registry: Path | None = None) -> list[str]:
    """Write each measured preset's result into registry.toml (bench/results.py's format, this
    machine's entry replaced, other machines' kept). Only a checkout has a registry.toml to edit.
    `resolve` is zoo.api.resolve: a line is recorded only if its runs trained what it names (_trained_as_named)."""
    from .plugins import shipped_registry

    target = registry or shipped_registry().resolve()
    helper = shipped_registry().resolve().parent / "bench" / "results.py"
    if not helper.is_file():
        raise ZooError(f"--record edits the project's registry.toml and needs bench/results.py beside it ({helper}); run it in a zoo checkout.")
    results = _load_module(helper)
    text, recorded = target.read_text(encoding="utf-8"), []
    for line in lines:
        if line["accuracy"] is None or line["model"] not in catalog.presets.presets["model"] or not _trained_as_named(catalog, line, resolve):
            continue
        entry = {"accuracy": line["accuracy"], "accuracies": line["accuracies"] if len(line["accuracies"]) > 1 else None,
                 "seconds": line["seconds"], "precision": line["precision"] if line["precision"] in ("fp32", "bf16") else None,
                 "machine": line["machine"], "device": line["device"], "recipe": line["recipe_fingerprint"] or None, "measured": date.today().isoformat()}
        text = results.record(text, "models", line["model"], {f"{line['dataset']}/{line['recipe']}": {k: v for k, v in entry.items() if v is not None}})
        recorded.append(f"{line['model']} {line['dataset']}/{line['recipe']}")
    if recorded:
        write_atomic(target, lambda temporary: Path(temporary).write_text(text, encoding="utf-8"))
    return recorded


def _trained_as_named(catalog: Catalog, line: dict[str, Any], resolve: Callable[..., Any]) -> bool:
    """Whether the line's runs trained what its preset, dataset and recipe name today, up to the seed and device, on
    data checked against the dataset's published checksums: a shared --epochs or --set (or a preset or recipe changed
    since), or other data, trained something else, whose result is not theirs. A run that cannot be read is not recorded."""
    from .config import resolved_from_record
    from .identity import changes_from_recipe

    try:
        config = _config_of(Path(line["run_dir"]))
        files = config.get("data_files")
        if not files or not all(isinstance(file, dict) and file.get("verified") is True for file in files.values()):
            return False  # --no-verify, or data without a published checksum: not the dataset the result would be filed under
        run = resolved_from_record(catalog, config, reporters_optional=True)
        named = resolve(model=line["model"], dataset=line["dataset"], recipe=line["recipe"])[1]
        return not changes_from_recipe(named, run)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ZooError):
        return False


def _load_module(path: Path) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("zoo_bench_results", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


__all__ = ["Cell", "expand_models", "grid", "record", "run_grid", "table", "write_outputs"]
