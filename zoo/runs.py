"""The runs browser: what each run directory holds, and how two runs differ."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import ZooError
from .plots import read_jsonl
from .rundir import CONFIG, METRICS, WEIGHTS, read_config


@dataclass
class RunSummary:
    path: Path
    model: str
    dataset: str
    recipe: str
    epochs_done: int
    epochs_planned: int
    best_accuracy: float | None
    train_seconds: float
    created: datetime
    finished: bool


def summarize(run_dir: Path) -> RunSummary:
    config = read_config(run_dir)
    epochs = read_jsonl(run_dir / METRICS)
    return RunSummary(
        path=run_dir,
        model=str(config.get("model")),
        dataset=str(config.get("dataset")),
        recipe=str(config.get("recipe")),
        epochs_done=len(epochs),
        epochs_planned=int(config.get("epochs", 0)),
        best_accuracy=max((e["test_accuracy"] for e in epochs), default=None),
        train_seconds=sum(e.get("seconds", 0.0) for e in epochs),
        created=datetime.fromtimestamp((run_dir / CONFIG).stat().st_mtime),
        finished=(run_dir / WEIGHTS).is_file(),
    )


def list_runs(root: Path) -> list[RunSummary]:
    """Every run directory under `root`, oldest first; folders that are not runs are left out."""
    summaries = []
    for config in root.glob(f"*/{CONFIG}"):
        try:
            summaries.append(summarize(config.parent))
        except ZooError:
            continue
    return sorted(summaries, key=lambda s: s.created)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flatten(inner, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


IGNORED = ("out", "versions.", "config_hash", "components.reporters")


def compare(a: Path, b: Path) -> tuple[list[tuple[str, Any, Any]], list[tuple[int, dict | None, dict | None]]]:
    """The settings that differ, and both runs' per-epoch metrics side by side."""
    flat_a, flat_b = _flatten(read_config(a)), _flatten(read_config(b))
    differences = [
        (key, flat_a.get(key), flat_b.get(key))
        for key in sorted(set(flat_a) | set(flat_b))
        if flat_a.get(key) != flat_b.get(key) and not key.startswith(IGNORED)
    ]
    epochs_a = {e["epoch"]: e for e in read_jsonl(a / METRICS)}
    epochs_b = {e["epoch"]: e for e in read_jsonl(b / METRICS)}
    curves = [(epoch, epochs_a.get(epoch), epochs_b.get(epoch)) for epoch in sorted(set(epochs_a) | set(epochs_b))]
    return differences, curves


def as_json(summary: RunSummary) -> dict[str, Any]:
    return {**summary.__dict__, "path": str(summary.path), "created": summary.created.isoformat(timespec="seconds")}


def dumps(summaries: list[RunSummary]) -> str:
    return json.dumps([as_json(s) for s in summaries], indent=2)
