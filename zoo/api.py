"""The Python API that the CLI is a thin shell over: zoo.run, zoo.predict, zoo.catalog."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ResolvedRun, resolve_run
from .plugins import Catalog, load_catalog

if TYPE_CHECKING:
    from .contracts import Prediction
    from .runner import RunResult


def catalog(registry_files: Iterable[str | Path] = ()) -> Catalog:
    """Load the plugins and registry files (ZOO_* environment variables apply)."""
    return load_catalog(registry_files=registry_files)


def resolve(
    *,
    recipe: str | None = None,
    sets: Iterable[str] = (),
    registry_files: Iterable[str | Path] = (),
    catalog: Catalog | None = None,
    **settings: Any,
) -> tuple[Catalog, ResolvedRun]:
    """Validate a run's settings without running it."""
    catalog = catalog or load_catalog(registry_files=registry_files)
    return catalog, resolve_run(catalog, recipe=recipe, overrides=settings, sets=list(sets))


def run(
    *,
    recipe: str | None = None,
    sets: Iterable[str] = (),
    registry_files: Iterable[str | Path] = (),
    catalog: Catalog | None = None,
    runs_root: str | Path = "runs",
    **settings: Any,
) -> RunResult:
    """Train as `zoo run` does, e.g. zoo.run(model="mlp-512", dataset="fashion-mnist", epochs=1)."""
    from .runner import run as run_training

    catalog, resolved = resolve(recipe=recipe, sets=sets, registry_files=registry_files, catalog=catalog, **settings)
    return run_training(resolved, catalog, Path(runs_root))


def predict(
    run_dir: str | Path,
    index: int = 0,
    *,
    data_dir: str | Path | None = None,
    registry_files: Iterable[str | Path] = (),
    catalog: Catalog | None = None,
) -> Prediction:
    """The saved model's prediction for test sample `index`, with every class's probability."""
    from .inference import predict_index

    catalog = catalog or load_catalog(registry_files=registry_files)
    return predict_index(catalog, Path(run_dir), index, Path(data_dir) if data_dir is not None else None)
