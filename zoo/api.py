"""The Python API that the CLI is a thin shell over: zoo.run, zoo.predict, zoo.catalog."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .config import ResolvedRun, parse_set, resolve_run, resolved_from_record
from .errors import ZooError, describe_validation_error
from .plugins import Catalog, load_catalog
from .rundir import WEIGHTS, read_config

if TYPE_CHECKING:
    from .contracts import Prediction
    from .runner import RunResult


#: --set assignments a resume may change: where the data is, not what it is.
DATA_LOCATION_SETS = ("dataset.data_dir=", "dataset.verify=", "dataset.download=", "dataset.mirror=")


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
    add, drop = settings.pop("add_reporters", ()), settings.pop("drop_reporters", ())
    return catalog, resolve_run(catalog, recipe=recipe, overrides=settings, sets=list(sets), add_reporters=list(add), drop_reporters=list(drop))


def run(
    *,
    recipe: str | None = None,
    sets: Iterable[str] = (),
    registry_files: Iterable[str | Path] = (),
    catalog: Catalog | None = None,
    runs_root: str | Path = "runs",
    resume: str | Path | None = None,
    **settings: Any,
) -> RunResult:
    """Train as `zoo run` does, e.g. zoo.run(model="mlp-512", dataset="fashion-mnist", epochs=1).

    resume=RUN_DIR continues that run from its newest valid checkpoint (with its own settings);
    resume="auto" continues the newest run under runs_root whose settings equal these."""
    from .runner import run as run_training

    catalog, resolved, resume_dir = plan(recipe=recipe, sets=sets, registry_files=registry_files, catalog=catalog,
                                         runs_root=runs_root, resume=resume, **settings)
    return run_training(resolved, catalog, Path(runs_root), resume_dir=resume_dir)


def plan(
    *,
    recipe: str | None = None,
    sets: Iterable[str] = (),
    registry_files: Iterable[str | Path] = (),
    catalog: Catalog | None = None,
    runs_root: str | Path = "runs",
    resume: str | Path | None = None,
    **settings: Any,
) -> tuple[Catalog, ResolvedRun, Path | None]:
    """What zoo.run would train, and the run directory it would resume (None: a new one), with every
    check that can be made before training: bad settings, an --out in use, a run that cannot resume."""
    from .distributed import current
    from .rundir import check_new_run_dir

    catalog = catalog or load_catalog(registry_files=registry_files)
    if resume is not None and str(resume) != "auto":
        run_dir = Path(resume)
        resolved = resolved_from_record(catalog, read_config(run_dir))
        if (run_dir / WEIGHTS).exists():
            raise ZooError(f"{run_dir} already finished (it has {WEIGHTS}); there is nothing to resume.")
        from .checkpoint import newest_or_error

        newest_or_error(run_dir)
        changed = sorted(k for k, v in settings.items() if v is not None and k not in ("reporters", "add_reporters", "drop_reporters"))
        changed += [s for s in sets if not s.startswith(DATA_LOCATION_SETS)]
        if changed:
            raise ZooError(
                f"--resume continues {run_dir} with the settings it was started with; these cannot change now: "
                f"{', '.join(changed)}. Only reporters and where the data is (--data-dir, --no-verify) may differ; "
                f"for other settings start a new run."
            )
        location = [parse_set(s) for s in sets]
        if location:  # the data may have moved since the run started
            params = {**resolved.dataset.params.model_dump(), **{key: value for _, key, value in location}}
            try:
                resolved = replace(resolved, dataset=replace(resolved.dataset, params=resolved.dataset.params.model_validate(params)))
            except ValidationError as error:
                raise ZooError(f"Invalid dataset settings: {describe_validation_error('dataset', error)}.") from None
        # Reporters only watch, so a resume may choose others.
        chosen = settings.get("reporters") or resolved.config.reporters
        fresh = resolve_run(catalog, recipe=resolved.config.recipe, overrides={"reporters": chosen},
                            add_reporters=list(settings.get("add_reporters", ())), drop_reporters=list(settings.get("drop_reporters", ())))
        resolved = replace(resolved, reporters=fresh.reporters, config=resolved.config.model_copy(update={"reporters": fresh.config.reporters}))
        return catalog, resolved, run_dir
    _, resolved = resolve(recipe=recipe, sets=sets, catalog=catalog, **settings)
    if resume is None:
        if not current().restart:  # a restarted torchrun job finds the directory it began (zoo.runner)
            check_new_run_dir(resolved.config.out)
        return catalog, resolved, None
    from . import checkpoint
    from .runner import config_hash

    wanted = config_hash(resolved)
    for config_file in sorted(Path(runs_root).glob("*/config.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            record = read_config(config_file.parent)
        except ZooError:
            continue
        if (record.get("config_hash") == wanted and not (config_file.parent / WEIGHTS).exists()
                and checkpoint.newest(config_file.parent)[0] is not None):
            recorded = resolved_from_record(catalog, record)
            watched = replace(recorded, reporters=resolved.reporters, config=recorded.config.model_copy(update={"reporters": resolved.config.reporters}))
            return catalog, watched, config_file.parent
    raise ZooError(f"--resume auto: no unfinished run under {runs_root}/ has these settings; start it without --resume.")


def predict(
    run_dir: str | Path,
    index: int = 0,
    *,
    data_dir: str | Path | None = None,
    verify: bool = True,
    registry_files: Iterable[str | Path] = (),
    catalog: Catalog | None = None,
) -> Prediction:
    """The saved model's prediction for test sample `index`, with every class's probability."""
    from .inference import predict_index

    catalog = catalog or load_catalog(registry_files=registry_files)
    return predict_index(catalog, Path(run_dir), index, Path(data_dir) if data_dir is not None else None, verify)
