"""The Python API that the CLI is a thin shell over: zoo.run, zoo.predict, zoo.catalog."""

from __future__ import annotations

import operator
import sys
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .config import Part, ResolvedRun, params_by_section, parse_set, resolve_part, resolve_run, resolved_from_record, set_list, with_changes
from .errors import ZooError, ZooWarning, describe_validation_error, option, resume_it, spoken
from .identity import location_fields, location_params
from .plugins import Catalog, load_catalog
from .rundir import CONFIG, DIVERGED, WEIGHTS, has_checkpoint_folder, read_config
from .settings import RunConfig
from .terminal import printable

if TYPE_CHECKING:
    from .contracts import Prediction
    from .inference import Evaluation
    from .runner import RunResult
    from .runs import Comparison, RunSummary
    from .leaderboard import Board
    from .preflight import Checked
    from .store import Listed, Loaded, Stored

#: Settings that choose who watches a run, not what it trains.
REPORTER_SETTINGS = ("reporters", "add_reporters", "drop_reporters")
#: The data-location flags (--data-dir, --no-verify): where the data is, not what it is.
LOCATION_SETTINGS = ("data_dir", "verify")


def catalog(registry_files: Iterable[str | Path] = (), *, extra_plugins: Iterable[Any] = ()) -> Catalog:
    """Load the plugins and registry files (ZOO_* environment variables apply), with `extra_plugins` from this
    process (a module, a class or object with @zoo.hookimpl methods, or a (name, plugin) pair): pass the catalog on
    as zoo.run(catalog=...), to try a plugin from a notebook or a test before it is a package."""
    named = [_named_plugin(plugin) for plugin in extra_plugins]
    names = [name for name, _ in named]
    for name in names:
        if names.count(name) > 1 or name.startswith("builtin-"):
            raise ZooError(f"extra_plugins: two plugins are called {name!r}, or it is a built-in plugin's name; name each one with "
                           f"a (name, plugin) pair.")
    return load_catalog(registry_files=registry_files, extra_plugins=named)


def check_imports() -> None:
    """A Ctrl-C while torch was being imported (in a notebook, say) leaves its extension loaded without torch itself: every
    later call would fail with an unrelated-looking error (module functions cannot set METH_CLASS, no attribute 'fx'),
    or blame a plugin. Say what happened instead."""
    if "torch._C" in sys.modules and "torch" not in sys.modules:
        raise ZooError("An import of torch in this Python process was interrupted or failed (a Ctrl-C while it loaded, say), which "
                       "leaves it half-loaded: nothing that uses it can work in this process again. Restart Python (in Jupyter: "
                       "Kernel, Restart) and run this again.")


def _catalog_given(catalog: Any) -> Catalog | None:
    """catalog= as the API takes it: what zoo.catalog() returned, or None for the plugins installed."""
    check_imports()
    if catalog is not None and not isinstance(catalog, Catalog):
        raise ZooError(f"catalog={catalog!r:.60}: pass what zoo.catalog() returns (or leave it out for the installed plugins).")
    return catalog


def _named_plugin(item: Any) -> tuple[str, object]:
    """(name, plugin) for one of zoo.catalog's extra_plugins: a pair as it is; a class made into its object; a module or
    object named after itself. Anything without a @zoo.hookimpl is a mistake (a module's name given as text, say)."""
    name, plugin = item if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) else (None, item)
    plugin = plugin() if isinstance(plugin, type) else plugin
    if not any(hasattr(getattr(plugin, attribute, None), "zoo_impl") for attribute in dir(plugin)):
        raise ZooError(f"extra_plugins: {item!r:.80} is not a plugin: give a module, a class or an object with @zoo.hookimpl "
                       f"functions, or a (name, plugin) pair (import a module by its name first).")
    return name or str(getattr(plugin, "__name__", None) or type(plugin).__name__).split(".")[-1], plugin


def _catalog_of(run: Any) -> Catalog | None:
    """The catalog that trained what zoo.run returned: its notebook plugins build the model again."""
    found = getattr(run, "catalog", None)
    return found if isinstance(found, Catalog) else None


def _untensored(index: Any) -> Any:
    """A torch tensor given to zoo.predict: a number (0-d), or pixels as the numpy array it holds; an image tensor as
    torchvision makes it (channels first, floats in [0, 1]) as the uint8 picture it shows."""
    if not (type(index).__module__.startswith("torch") and hasattr(index, "numpy")):
        return index
    tensor = index.detach().cpu()
    if tensor.ndim == 0:  # a number, as Python holds it (a float or a bool is then refused as an index)
        return tensor.item()
    if tensor.ndim == 3 and tensor.shape[0] in (1, 3) and tensor.shape[2] not in (1, 3, 4):
        tensor = tensor.permute(1, 2, 0)
    if tensor.is_floating_point() and tensor.numel() and 0 <= float(tensor.min()) and float(tensor.max()) <= 1:
        tensor = (tensor * 255).round().byte()
    return (tensor.float() if str(tensor.dtype) == "torch.bfloat16" else tensor).numpy()  # numpy has no bfloat16


def run_path(run: Any) -> Path:
    """A run as the API takes it: its directory, a stored model's name, what zoo.run returned (its run_dir), or one
    that zoo.list_runs listed (its path)."""
    from .runs import RunSummary

    if isinstance(getattr(run, "run_dir", None), (str, Path)):
        return Path(run.run_dir)
    if isinstance(run, RunSummary):
        return run.path
    if not isinstance(run, (str, Path)):
        raise ZooError(f"A run is given by its directory, a stored model's name, what zoo.run returned or what zoo.list_runs listed; "
                       f"not {type(run).__name__}.")
    return Path(run)


def resolve(
    *,
    recipe: str | None = None,
    sets: Iterable[str] | str | dict[str, Any] = (),
    registry_files: Iterable[str | Path] = (),
    catalog: Catalog | None = None,
    **settings: Any,
) -> tuple[Catalog, ResolvedRun]:
    """Validate a run's settings without running it. data_dir=/verify= set where the dataset's files are."""
    if recipe is not None and not isinstance(recipe, str):
        raise ZooError(f"recipe={recipe!r:.60}: a recipe's name, e.g. recipe='tuned' (`zoo list recipes`).")
    catalog = _catalog_given(catalog) or load_catalog(registry_files=registry_files)
    sets = set_list(sets)
    if settings.get("init") is not None and not isinstance(settings["init"], str):  # a Path, what zoo.run returned, a listed run
        settings["init"] = str(run_path(settings["init"]))
    add, drop = settings.pop("add_reporters", ()), settings.pop("drop_reporters", ())
    location = {key: settings.pop(key, None) for key in LOCATION_SETTINGS}
    from .finetune import pinned

    try:
        run = resolve_run(catalog, recipe=recipe, overrides=settings, sets=list(sets), add_reporters=list(add), drop_reporters=list(drop), **location)
    except ZooError as error:
        raise _blamed(catalog, recipe, error) from None
    return catalog, pinned(catalog, with_changes(catalog, run))


def _blamed(catalog: Catalog, recipe: str | None, error: ZooError) -> ZooError:
    """The error, saying so when it comes from the recipe itself (the recipe alone fails the same way)."""
    if recipe is None or recipe not in catalog.presets.recipes:
        return error
    try:
        resolve_run(catalog, recipe=recipe)
    except ZooError as alone:
        if str(alone) == str(error) and "Recipe " not in str(error) and " The value comes from preset " not in str(error):
            source = catalog.presets.recipes[recipe].source
            return ZooError(f"{str(error).rstrip('.')}. This comes from recipe {recipe!r} in {source}, not from the settings given with it.")
    return error


def run(
    *,
    recipe: str | None = None,
    sets: Iterable[str] | str | dict[str, Any] = (),
    registry_files: Iterable[str | Path] = (),
    catalog: Catalog | None = None,
    runs_root: str | Path = "runs",
    resume: str | Path | None = None,
    quiet: bool = False,
    threads: int | None = None,
    **settings: Any,
) -> RunResult:
    """Train as `zoo run` does, e.g. zoo.run(model="mlp-512", dataset="fashion-mnist", epochs=1).
    quiet=True leaves out the Quickstart log and the progress bar (as --quiet); reporters=[] runs with no reporter at all.
    threads=N: torch's CPU threads for this run (as --threads), as they were afterwards.

    resume=RUN_DIR continues that run from its newest valid checkpoint (with its own settings);
    resume="auto" continues the newest run under runs_root whose settings equal these.

    Component settings: sets=["optimizer.lr=0.1"] (as --set), sets={"optimizer.lr": 0.1}, or params={"optimizer": {"lr": 0.1}};
    catalog=zoo.catalog(extra_plugins=[...]) trains a notebook's plugins. Run settings (keywords, as `zoo run`'s flags):
    {settings}."""
    from .runner import run as run_training

    check_threads(threads)
    if "nproc" in settings or "max_restarts" in settings:  # --nproc and --max-restarts are another function's, not run settings
        raise ZooError("zoo.run trains in this process; zoo.run_processes(nproc, max_restarts=..., **settings) trains in several, "
                       "as `zoo run --nproc N` does.")
    if quiet:
        settings["drop_reporters"] = [*settings.get("drop_reporters", ()), "console", "progress"]
    catalog, resolved, resume_dir = plan(recipe=recipe, sets=sets, registry_files=registry_files, catalog=catalog,
                                         runs_root=runs_root, resume=resume, **settings)
    with cpu_threads(threads):
        result = run_training(resolved, catalog, Path(runs_root), resume_dir=resume_dir)
    result.run_dir = result.run_dir.absolute()  # still right after the caller (a notebook) changes its working folder
    result.catalog = catalog
    return result


run.__doc__ = (run.__doc__ or "").replace("{settings}", ", ".join(f"{name}=" for name in RunConfig.model_fields if name not in ("params", "recipe", "init_sha256")))


def check(*, recipe: str | None = None, resume: str | Path | None = None, threads: int | None = None, quiet: bool = False,
          **settings: Any) -> Checked:
    """zoo.run's checks without the run (`zoo run --check`): the settings, the data read, every component built and one
    batch through the model and the loss, then nothing written. Takes what zoo.run takes (quiet= changes nothing here);
    print() the answer for a summary."""
    from .preflight import check as check_run

    check_threads(threads)
    _, resolved, resume_dir = plan(recipe=recipe, resume=resume, **settings)
    with cpu_threads(threads):
        return check_run(resolved, resuming=resume_dir is not None)


def check_threads(threads: Any) -> None:
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ZooError(f"threads must be a whole number of at least 1 (got {printable(repr(threads))}).")


@contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU threads for one run, then as they were. Fewer than the cores can be much faster on a machine where
    other work holds some of them: threads that wait for a busy core stall every step. (Checked by the caller first.)"""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_processes(nproc: int, *, recipe: str | None = None, resume: str | Path | None = None, max_restarts: int = 0,
                  runs_root: str | Path = "runs", quiet: bool = False, threads: int | None = None, **settings: Any) -> Path:
    """zoo.run in `nproc` processes training one model together (data-parallel; see docs/scaling.md); returns the run
    directory. Everything that can fail in every process is checked here, once, before any starts. threads=N: each
    process's CPU threads (default: its share of the cores)."""
    check_threads(threads)
    if quiet:
        settings["drop_reporters"] = [*settings.get("drop_reporters", ()), "console", "progress"]
    from .launcher import launch

    _, resolved, resume_dir = plan(recipe=recipe, resume=resume, runs_root=runs_root, **settings)
    check_processes(resolved, nproc)
    return launch(nproc, resolved, resume_dir=resume_dir, max_restarts=max_restarts, runs_root=Path(runs_root), threads=threads)


def check_processes(resolved: ResolvedRun, nproc: int) -> None:
    """What would fail in every one of `nproc` processes: a batch that does not split, devices that are not there."""
    from .device import check_devices
    from .world import check_shards

    check_shards(resolved.config.batch_size, nproc)
    check_devices(resolved.config.device, nproc)


def run_launched(run_dir: str | Path) -> RunResult:
    """One worker of `zoo run --nproc`: train what the parent resolved into RUN_DIR/launch.json."""
    from .launcher import plan_of
    from .runner import run as run_training

    catalog = load_catalog()
    resolved = resolved_from_record(catalog, plan_of(Path(run_dir))["config"])
    return run_training(resolved, catalog, launched=Path(run_dir))


def plan(
    *,
    recipe: str | None = None,
    sets: Iterable[str] | str | dict[str, Any] = (),
    registry_files: Iterable[str | Path] = (),
    catalog: Catalog | None = None,
    runs_root: str | Path = "runs",
    resume: str | Path | None = None,
    **settings: Any,
) -> tuple[Catalog, ResolvedRun, Path | None]:
    """What zoo.run would train, and the run directory it would resume (None: a new one), with every
    check that can be made before training: bad settings, an --out in use, a run that cannot resume."""
    from .rundir import check_new_run_dir
    from .world import current

    catalog = _catalog_given(catalog) or load_catalog(registry_files=registry_files)
    sets = set_list(sets)
    if resume is not None and str(resume) != "auto":
        resume = run_path(resume)
        return catalog, resumed_run(catalog, resume, sets, settings, recipe), resume
    _, resolved = resolve(recipe=recipe, sets=sets, catalog=catalog, **settings)
    if resume is not None:
        found = find_resumable(catalog, resolved, Path(runs_root))
    else:  # a plain start: only a note, so only a glance (no checkpoint is verified, torch is not imported)
        found = None if current().restart else find_resumable(catalog, resolved, Path(runs_root), verify=False)
    if found is None or resume is None:
        if current().main and resume is not None:  # one command that starts a job and restarts it (a preemptible queue): start
            print(printable(f"{option('--resume', 'auto')}: no unfinished run under {Path(runs_root)}/ has these settings; starting a new one."
                            + _other_unfinished(resolved, Path(runs_root))), file=sys.stderr)
        elif current().main and found is not None:  # the same command again after a Ctrl-C starts over: say that it need not
            print(printable(f"Note: {found} is an unfinished run with these settings; this starts a new one (add {option('--resume', 'auto')} to continue "
                            "that one)."), file=sys.stderr)
        if not current().restart:  # a restarted torchrun job finds the directory it began (zoo.opening)
            check_new_run_dir(resolved.config.out)
        return catalog, resolved, None
    recorded = resolved_from_record(catalog, read_config(found), reporters_optional=True)  # this command's reporters watch it
    watched = replace(recorded, reporters=resolved.reporters, config=recorded.config.model_copy(update={"reporters": resolved.config.reporters}))
    return catalog, _with_location(watched, settings, []), found


def find_resumable(catalog: Catalog, resolved: ResolvedRun, runs_root: Path, verify: bool = True) -> Path | None:
    """--resume auto: the newest unfinished run under runs_root with these settings and a checkpoint (None: none);
    verify=False only looks for a checkpoint folder, without reading its files (for a note)."""
    from .identity import config_hash

    wanted = config_hash(resolved)
    for run_dir, record in _unfinished(runs_root):
        if record.get("config_hash") == wanted and _has_checkpoint(run_dir, verify):
            return run_dir
    return None


def _other_unfinished(resolved: ResolvedRun, runs_root: Path) -> str:
    """A note naming the newest unfinished run of the same model, dataset, recipe and seed whose settings differ (a
    recipe changed since it started, say), which --resume auto passed over; '' when there is none."""
    def same_names(record: dict[str, Any]) -> bool:
        components = record.get("components") if isinstance(record.get("components"), dict) else {}
        return all(isinstance(part := components.get(section), dict) and part.get("name") == getattr(resolved, section).resolved.name
                   for section in ("model", "dataset"))

    for run_dir, record in _unfinished(runs_root):
        if (record.get("recipe"), record.get("seed")) == (resolved.config.recipe, resolved.config.seed) and same_names(record) \
                and has_checkpoint_folder(run_dir):
            return (f" ({run_dir} is an unfinished run of recipe {resolved.config.recipe!r} with other settings, perhaps from before the "
                    f"recipe changed: {resume_it(run_dir)} continues it as it was.)")
    return ""


def _unfinished(runs_root: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The unfinished runs under runs_root (no weights, not diverged) with a readable config.json, newest first."""
    candidates = [d for d in runs_root.glob("*") if not (d / WEIGHTS).exists() and not (d / DIVERGED).exists() and (d / CONFIG).is_file()]
    for run_dir in sorted(candidates, key=lambda d: (d / CONFIG).stat().st_mtime, reverse=True):
        try:
            yield run_dir, read_config(run_dir)
        except ZooError:
            continue


def _has_checkpoint(run_dir: Path, verify: bool) -> bool:
    """A usable checkpoint (its files checked: imports torch), or (verify=False) at least one written."""
    if not verify:
        return has_checkpoint_folder(run_dir)
    from . import checkpoint

    return checkpoint.newest(run_dir)[0] is not None


def resumed_run(catalog: Catalog, run_dir: Path, sets: list[str], settings: dict[str, Any], recipe: str | None = None) -> ResolvedRun:
    """The run `run_dir` records, as it was started (its reporters with their settings, no registry
    file needed), with what a resume may change: the reporters and where the data is. Settings equal
    to the recorded ones may be repeated (e.g. the original command with --resume added)."""
    from .checkpoint import newest_or_error

    recorded = resolved_from_record(catalog, read_config(run_dir), reporters_optional=bool(settings.get("reporters")))
    if (run_dir / WEIGHTS).exists():
        raise ZooError(f"{run_dir} already finished (it has {WEIGHTS}); there is nothing to resume. To train it further, start a "
                       f"new run from its weights: " + spoken(f"`zoo run --init {run_dir}` with the settings you want (e.g. --epochs).",
                                                 f"zoo.run(init={str(run_dir)!r}, ...) with the settings you want (e.g. epochs=)."))
    newest_or_error(run_dir, report=False)  # checked here; the resume itself says what it skipped
    location_keys = set(location_fields(recorded.dataset.params))
    changed = [key for key, value in settings.items()
               if value is not None and key not in (*REPORTER_SETTINGS, *LOCATION_SETTINGS, "params") and _differs(recorded, key, value)]
    given = params_by_section(settings.get("params"))
    changed += [f"{section}.{key}={value!r}" for section, values in given.items() for key, value in values.items()
                if _set_differs(recorded, section, key, value)]
    for assignment in sets:
        section, key, value = parse_set(assignment)
        if not (section == "dataset" and key in location_keys) and _set_differs(recorded, section, key, value):
            changed.append(assignment)
    if recipe is not None and recipe != recorded.config.recipe:
        changed.append(f"{option('--recipe', recipe)} (it was started from {recorded.config.recipe})")
    if changed:
        raise ZooError(
            f"{option('--resume')} continues {run_dir} with the settings it was started with; these cannot change now: "
            f"{', '.join(sorted(changed))}. Only reporters and where the data is ({spoken('--data-dir, --no-verify', 'data_dir=, verify=')}) may differ; "
            f"for other settings start a new run."
        )
    return _with_reporters(catalog, _with_location(recorded, settings, sets), settings)


def _differs(recorded: ResolvedRun, key: str, value: Any) -> bool:
    try:
        validated = recorded.config.model_validate({**recorded.config.model_dump(), key: value})
    except ValidationError:
        return True
    return getattr(validated, key, None) != getattr(recorded.config, key, None)


def _set_differs(recorded: ResolvedRun, section: str | None, key: str, value: Any) -> bool:
    if section is None:
        return _differs(recorded, key, value)
    part = getattr(recorded, section, None) if section in ("dataset", "model", "loss", "optimizer", "scheduler") else None
    if not isinstance(part, Part):
        return True
    try:
        validated = type(part.params).model_validate({**part.params.model_dump(), key: value})
    except ValidationError:
        return True
    return validated != part.params


def _with_location(resolved: ResolvedRun, settings: dict[str, Any], sets: list[str]) -> ResolvedRun:
    """The run with its dataset's data-location params replaced (the data may have moved)."""
    dataset = resolved.dataset
    names = location_fields(dataset.params)
    values = location_params(type(dataset.params), resolved.config.dataset, dataset.resolved.component.owner,
                             settings.get("data_dir"), settings.get("verify"))
    values.update({key: value for section, key, value in map(parse_set, sets) if section == "dataset" and key in names})
    if not values:
        return resolved
    try:
        params = dataset.params.model_validate({**dataset.params.model_dump(), **values})
    except ValidationError as error:
        raise ZooError(f"Invalid dataset settings: {describe_validation_error('dataset', error, by_caller=True)}.") from None
    return replace(resolved, dataset=replace(dataset, params=params))


def _with_reporters(catalog: Catalog, resolved: ResolvedRun, settings: dict[str, Any]) -> ResolvedRun:
    """The recorded reporters (with their recorded settings), or those chosen now; plus/minus the CLI's."""
    parts = {part.resolved.name: part for part in resolved.reporters}
    names = list(settings.get("reporters") or parts)
    names = [n for n in dict.fromkeys([*names, *settings.get("add_reporters", ())]) if n not in settings.get("drop_reporters", ())]
    chosen = [parts.get(name) or resolve_part(catalog, name, "reporter", name, {}) for name in names]
    return replace(resolved, reporters=chosen, config=resolved.config.model_copy(update={"reporters": names}))


def predict(
    run_dir: str | Path,
    index: Any = 0,
    *,
    data_dir: str | Path | None = None,
    verify: bool = True,
    registry_files: Iterable[str | Path] = (),
    catalog: Catalog | None = None,
) -> Prediction:
    """The saved model's (a run directory or a stored name) prediction for test sample `index`, or for a
    picture (a file's path, a PIL image, a uint8 numpy array), with every class's probability:
    zoo.predict("my-model", "shoe.png"), zoo.predict("my-model", PIL.Image.open(...))."""
    from .inference import is_picture, predict_files, predict_index

    catalog = _catalog_given(catalog) or _catalog_of(run_dir) or load_catalog(registry_files=registry_files)
    index = _untensored(index)
    if is_picture(index):
        return predict_files(catalog, run_path(run_dir), [index])[0][0]
    if isinstance(index, (str, Path)):
        if str(index).isdigit() and not Path(index).exists():
            raise ZooError(f"zoo.predict: {str(index)!r} is no picture file; for test sample {index}, give the number: zoo.predict(run, {index}).")
        return predict_files(catalog, run_path(run_dir), [Path(index)])[0][0]
    try:
        number = operator.index(index) if not isinstance(index, bool) else None  # numpy and torch integers too
    except TypeError:
        number = None
    if number is None:
        raise ZooError(f"zoo.predict: index is a test sample's number, a picture file's path, a PIL image or a numpy array of "
                       f"pixels; not {type(index).__name__}.")
    return predict_index(catalog, run_path(run_dir), number, Path(data_dir) if data_dir is not None else None, verify)


def evaluate(
    run_dir: str | Path,
    *,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    verify: bool = True,
    precision: str | None = None,
    registry_files: Iterable[str | Path] = (),
    catalog: Catalog | None = None,
) -> Evaluation:
    """`zoo eval` without the printing: accuracy, average loss and confusion matrix of a saved model (a run
    directory or a stored name) on its test split, in the run's own precision unless `precision` says otherwise."""
    from .inference import evaluate as evaluate_run

    if precision not in (None, "fp32", "bf16"):
        raise ZooError(f"zoo.evaluate: precision is 'fp32', 'bf16' or None (the run's own), not {precision!r}.")
    catalog = _catalog_given(catalog) or _catalog_of(run_dir) or load_catalog(registry_files=registry_files)
    return evaluate_run(catalog, run_path(run_dir), dataset, Path(data_dir) if data_dir is not None else None, verify, precision)


def save(run_dir: str | Path, name: str, *, store: str | Path | None = None, shipped: bool = False, catalog: Catalog | None = None) -> Stored:
    """Store a finished run's weights and card as a trained model called `name` (zoo save RUN NAME):
    in the user's store, in `store`, or (shipped=True, a checkout) among the models zoo ships."""
    from .store import save as save_model
    from .store import shipped_root, store_root

    root = shipped_root() if shipped else Path(store) if store is not None else store_root()
    return save_model(run_path(run_dir), name, root, _catalog_given(catalog) or _catalog_of(run_dir) or load_catalog())


def models(*, store: str | Path | None = None, catalog: Catalog | None = None) -> list[Listed]:
    """Every trained model (the user's store, zoo's shipped ones, the plugins'), with its card; no torch."""
    from .store import listing

    return listing(_catalog_given(catalog) or load_catalog(), Path(store) if store is not None else None)


def load(name_or_run: str | Path, *, store: str | Path | None = None, catalog: Catalog | None = None) -> Loaded:
    """A trained model by name (or a finished run directory), checked and in eval mode:
    zoo.load("mlp-512-fashion-mnist").model(images).argmax(1) are indices into .classes. store= as zoo.models's."""
    from .inference import load_run
    from .store import CHOSEN_STORE, Loaded, open_source

    catalog = _catalog_given(catalog) or _catalog_of(name_or_run) or load_catalog()
    name_or_run = run_path(name_or_run)
    token = CHOSEN_STORE.set(Path(store)) if store is not None else None
    try:
        source = open_source(name_or_run, catalog)
        config, model = load_run(catalog, name_or_run)
    finally:
        if token is not None:
            CHOSEN_STORE.reset(token)
    return Loaded(model, list(config["classes"]), config, source.label, source.sha256, source.card)


def list_runs(root: str | Path = "runs") -> list[RunSummary]:
    """The run directories under `root`, oldest first, as `zoo runs` lists them (a damaged one says why in
    .problem). No torch."""
    from .runs import list_runs as listing

    return listing(_runs_root(root))


def compare(a: Any, b: Any, *, root: str | Path = "runs") -> Comparison:
    """`zoo runs --compare A B`: the settings that differ (.differences) and both runs' metrics per epoch
    (.curves). A and B are run directories, names under `root`, or what zoo.run returned."""
    from .runs import compare as comparison
    from .runs import locate

    folder = _runs_root(root)
    first, second = (locate(run_path(run), folder) for run in (a, b))
    return comparison(first, second)


def _runs_root(root: Any) -> Path:
    """The folder of run directories; one given other than the default must exist (a typo is not an empty folder) and
    must not be a run itself."""
    if not isinstance(root, (str, Path)):
        raise ZooError(f"root is the folder that holds the run directories (a str or Path), not {type(root).__name__}.")
    folder = Path(root)
    if folder != Path("runs") and not folder.exists():
        raise ZooError(f"root={str(root)!r} does not exist; give the folder that holds the run directories (zoo.run writes them under runs/).")
    if (folder / CONFIG).is_file():
        raise ZooError(f"root={str(root)!r} is a run directory, not a folder of runs: give its parent, {str(folder.parent)!r}.")
    return folder


def leaderboard(models: str | Iterable[str], datasets: str | Iterable[str] = ("fashion-mnist",), recipes: str | Iterable[str] = ("quickstart",),
                seeds: int = 1, *, out: str | Path = "leaderboard", record: bool = False, progress: Any = None,
                registry_files: Iterable[str | Path] = (), catalog: Catalog | None = None, threads: int | None = None,
                quiet: bool = True, **settings: Any) -> Board:
    """Train the grid models × datasets × recipes × seeds into `out` (cells already there are kept),
    write its table (Markdown, CSV, two pictures) and, with record=True, the presets' results into
    registry.toml. models, datasets, recipes: names, or one name (models may hold wildcards: "mlp-*").
    settings: epochs=, sets=, data_dir=, verify=, device=... as for zoo.run; catalog= as zoo.run's (a notebook's
    plugins); threads= as zoo.run's (it does not change which cells count as done). Cells train without their log
    (quiet=True is the only choice); a failed cell is recorded, not raised: Board.failed lists them, and a
    ZooWarning says how many failed."""
    from . import leaderboard as board

    check_threads(threads)
    if quiet is not True:
        raise ZooError("quiet=False: a leaderboard's cells always train without their log; progress=FUNCTION(index, total, cell, row) "
                       "is called after each cell.")
    models, datasets, recipes = (_names(value, keyword) for value, keyword in ((models, "models"), (datasets, "datasets"), (recipes, "recipes")))
    if isinstance(seeds, bool) or not isinstance(seeds, int):
        raise ZooError(f"seeds is how many seeds each cell trains (0, 1, ... N-1), a whole number; not {printable(repr(seeds)):.60}.")
    if record and settings.get("verify") is False:
        raise ZooError(f"{option('--record')} files each result as the preset's on the real dataset, so it needs the data checked against "
                       f"its published checksums: leave out {spoken('--no-verify', 'verify=False')} (nothing was trained).")
    if record and (settings.get("epochs") is not None or settings.get("sets") or settings.get("params")):
        raise ZooError(f"{option('--record')} files each result as its preset's with its recipe, so the grid must train them as they are: "
                       f"leave out {spoken('--epochs and --set', 'epochs=, sets= and params=')} (nothing was trained).")
    catalog = _catalog_given(catalog) or load_catalog(registry_files=registry_files)
    cells = board.grid(board.expand_models(catalog, models), datasets, recipes, seeds)
    for dataset in dict.fromkeys(datasets):
        catalog.resolve("dataset", dataset)
    for recipe in dict.fromkeys(recipes):
        catalog.presets.recipe(recipe)
    board.check_settings(cells, settings, partial(resolve, catalog=catalog))
    if settings.get("device"):  # a --device this machine lacks would fail every cell the same way
        from .device import check_devices

        check_devices(settings["device"], 1)
    from .runlock import hold

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    with hold(folder, leaderboard=True), cpu_threads(threads):  # two leaderboards in one folder would train each cell twice
        rows = board.run_grid(cells, folder, catalog, settings, run, progress or (lambda index, total, cell, row: None), partial(resolve, catalog=catalog))
        lines = board.table(rows)
        written = board.write_outputs(folder, lines)
    recorded = board.record(lines, catalog, partial(resolve, catalog=catalog)) if record else []
    result = board.Board(rows, lines, written, recorded)
    if result.failed:
        warnings.warn(board.failures(result, folder), ZooWarning, stacklevel=2)
    return result


def _names(value: Any, keyword: str) -> list[str]:
    """A leaderboard's models, datasets or recipes: one name ("mlp-*", or comma-separated as the CLI takes them) or several."""
    names = [value] if isinstance(value, str) else list(value) if isinstance(value, Iterable) else None
    if names is None or not all(isinstance(name, str) for name in names):
        raise ZooError(f"{keyword}: a name or a list of names, e.g. {keyword}=[{_EXAMPLES[keyword]!r}]; not {printable(repr(value)):.60}.")
    return [name.strip() for text in names for name in text.split(",") if name.strip()]


_EXAMPLES = {"models": "mlp-512", "datasets": "fashion-mnist", "recipes": "quickstart"}
