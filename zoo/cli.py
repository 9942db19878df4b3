"""The `zoo` command: a thin shell over zoo.api. Errors the user can fix print one paragraph and
exit 2; Ctrl-C exits 130; neither shows a traceback."""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from . import __version__, api, gcpause, tables
from .errors import Interrupted, ZooError, ZooWarning, speaking_to_the_command_line
from .inference import MAX_PIXELS
from .listing import list_entries, normalize_kind, nothing_matches, placeholder_for, plugin_entries
from .stdout import outliving_its_reader, reader_left, to_null
from .terminal import printable

DEVICES = ["auto", "cpu", "cuda", "mps"]
MAX_GRID = 100  # images in one `zoo predict --grid`


def echo(message: Any = "", err: bool = False) -> None:
    """click.echo, printable."""
    click.echo(printable(message) if isinstance(message, str) else message, err=err)


class UserError(click.ClickException):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(printable(message))
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        try:
            if self.exit_code in (129, 130, 143):  # Ctrl-C (or SIGHUP, SIGTERM) is the user's choice, not an error
                echo(self.message, err=True)
            else:
                super().show(file)
        except OSError:  # the terminal is gone (SIGHUP) or nobody reads: the exit status still says it
            to_null(sys.stderr)  # and what stayed in its buffer must not fail again at exit


class ZooGroup(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        if "--traceback" in args[:end]:  # `zoo run ... --traceback` as well as `zoo --traceback run ...`
            args = ["--traceback", *(arg for arg in args[:end] if arg != "--traceback"), *args[end:]]
        args = _registry_after_the_command(args, self.commands)
        try:
            return super().parse_args(ctx, args)
        except BrokenPipeError:  # `zoo --help | head`: the help is printed while parsing, before invoke
            _stop_quietly_on_broken_pipe()

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with speaking_to_the_command_line():  # messages name flags (--resume), not zoo.run's keywords
                return super().invoke(ctx)
        except click.NoSuchOption as error:  # click suggests anything a little alike: --epoch got --epochs and --nproc
            error.possibilities = _closest_options(error.option_name, error.possibilities or [])
            raise
        except Interrupted as error:  # Ctrl-C, SIGTERM: where it stopped and how to continue
            raise UserError(_from_rank(str(error)), error.exit_code) from None
        except ZooError as error:
            if ctx.params.get("show_traceback"):  # zoo --traceback: the plugin's own error, in full
                from .contract import print_traceback

                print_traceback(error)
            raise UserError(_from_rank(str(error)), error.exit_code) from None
        except BrokenPipeError:
            _stop_quietly_on_broken_pipe()
        except OSError as error:  # a full disk, a missing or read-only folder for an output file, a path too long to read
            raise UserError(_from_rank(f"{_cannot(error.filename)}: {error.strerror or error}."), 2) from None
        except KeyboardInterrupt:
            raise UserError(_from_rank("Interrupted (Ctrl-C)" + ("; the run stopped." if ctx.invoked_subcommand == "run" else ".")), 130) from None
        finally:  # a command's --store (_choose_store) ends with it, even when a later option failed to parse
            if (store := sys.modules.get("zoo.store")) is not None:
                store.CHOSEN_STORE.set(None)


def _registry_after_the_command(args: list[str], commands: Any) -> list[str]:
    """`zoo --registry FILE show NAME` as `zoo show NAME --registry FILE`: the commands that read a registry take it."""
    lead = args[:1] if args[:1] == ["--traceback"] else []
    rest, moved = args[len(lead):], []
    while rest and rest[0] not in commands:
        if rest[0] == "--registry" and len(rest) > 1:
            moved, rest = [*moved, *rest[:2]], rest[2:]
        elif rest[0].startswith("--registry="):
            moved, rest = [*moved, rest[0]], rest[1:]
        else:
            return args  # something else before the command: click says what
    return [*lead, rest[0], *moved, *rest[1:]] if moved and rest else args


def _closest_options(typed: str, possibilities: list[str]) -> list[str]:
    """The options much like the one typed (a typo, a missing s), else only the likest."""
    import difflib

    score = {option: difflib.SequenceMatcher(None, typed, option).ratio() for option in possibilities}
    close = [option for option in possibilities if score[option] >= 0.8]
    return close or sorted(possibilities, key=score.__getitem__, reverse=True)[:1]


def _cannot(filename: Any) -> str:
    """"Cannot write FILE", the file as the user named it where it was the hidden temporary one zoo writes first
    (.NAME.RANDOM.tmp beside it); "Cannot use PATH" for any other path (one read, or too long to open)."""
    if not filename:
        return "Cannot write a file"
    path = Path(str(filename))
    found = re.fullmatch(r"\.(.+)\.[a-z0-9_]{8}(?:\.tmp|\.onnx|\.pt2)", path.name)
    return f"Cannot write {path.with_name(found.group(1))}" if found else f"Cannot use {path}"


def _stop_on_termination() -> None:
    """SIGTERM (a queue) and SIGHUP (a closed terminal) stop any command as Ctrl-C does, so that what it was writing
    is removed on the way out, with exit status 143 or 129 (a run's training handles them itself: zoo.stops). None of
    the three is raised inside a C extension's initialisation, which would abort the process instead (zoo.interrupts)."""
    import signal

    from .interrupts import raise_when_safe

    def stop(number: int, frame: Any) -> None:
        if number == signal.SIGINT:
            raise_when_safe(KeyboardInterrupt(), number, frame)
        else:
            raise_when_safe(Interrupted(f"Interrupted ({signal.Signals(number).name}).", 128 + number), number, frame)

    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(number) not in (signal.SIG_IGN, None):  # `nohup zoo ...` keeps ignoring SIGHUP
            signal.signal(number, stop)


def _stop_quietly_on_broken_pipe() -> NoReturn:
    """`zoo ... | head` stopped reading: stop quietly, with the status a shell gives SIGPIPE, as Unix tools do."""
    for stream in (sys.stdout, sys.stderr):  # nothing left to flush at exit (`2>&1 | head`: stderr is the same pipe)
        to_null(stream)
    raise SystemExit(141) from None


class RunCommand(click.Command):
    """`zoo run`, whose usual slips get their fix named: a component's setting given as a flag (--lr 0.1), and --set
    values the shell split (--set optimizer.lr 0.1, an unquoted [1024, 256])."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = list(args)  # the parser consumes `args`
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as error:
            spelt = error.option_name.replace("_", "-")
            if any(spelt in option.opts for option in self.params if isinstance(option, click.Option)):
                error.possibilities, error.message = None, f"No such option: {error.option_name}. Did you mean {spelt}?"
                raise
            key = error.option_name.lstrip("-").replace("-", "_")
            key = {"learning_rate": "lr", "width": "hidden", "widths": "hidden"}.get(key, key)
            from .config import settings_named

            found = settings_named(api.catalog(), key)
            chosen = {given[i - 1].lstrip("-"): name for i, name in enumerate(given) if i and given[i - 1] in ("--optimizer", "--model", "--loss", "--dataset", "--scheduler")}
            found = sorted(found, key=lambda f: chosen.get(f[0]) != f[1])  # the component this command chose, if it has the setting
            if found:
                error.possibilities = None
                error.message = (f"No such option: {error.option_name}. {key!r} is a setting of the {found[0][0]} ({found[0][1]}): "
                                 f"give it with --set {found[0][0]}.{key}=VALUE (`zoo show {found[0][1]}` lists its settings).")
            raise
        except click.UsageError as error:
            extra = error.message.partition("(")[2].rstrip(")").split(" ")[0] if "unexpected extra argument" in error.message else ""
            at = len(given) - 1 - given[::-1].index(extra) if extra in given else -1  # the stray word: the last of its spelling
            if at >= 2 and given[at - 2] == "--set":  # --set KEY VALUE, or a split value
                error.message += (". --set takes one word, SECTION.KEY=VALUE, with no space around '=' (--set optimizer.lr=0.1); "
                                  "quote a value that has spaces: --set 'model.hidden=[1024, 256]'")
            elif at == 0:  # `zoo run tuned`, `zoo run mlp-512`: a name with no option before it
                error.message += (f". zoo run takes names as options: --recipe {extra} for a recipe, --model {extra} for a model or "
                                  "preset (`zoo list` shows which it is)")
            raise


def _from_rank(message: str) -> str:
    """In a job of several processes, which one speaks (they may all meet the same problem)."""
    from .world import current

    world = current()
    return f"[rank {world.rank}] {message}" if world.distributed else message


registry_option = click.option(
    "--registry",
    "registry_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Another registry file of presets and recipes (repeatable; also ZOO_REGISTRY).",
)


store_option = click.option("--store", type=click.Path(path_type=Path), help="The model store folder (default: ZOO_MODELS, else $XDG_DATA_HOME/zoo/models, else ~/.local/share/zoo/models).")


def _choose_store(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    """--store of a command that reads trained models by name: zoo.store looks there while the command runs
    (ZooGroup.invoke forgets it afterwards)."""
    if value is not None:
        from .store import CHOSEN_STORE

        CHOSEN_STORE.set(value)


reading_store_option = click.option("--store", type=click.Path(path_type=Path, exists=True, file_okay=False), expose_value=False, callback=_choose_store,
                                    help="Where to find trained models by name (default: as `zoo models`: ZOO_MODELS, else the XDG data folder).")


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="zoo", message="%(prog)s %(version)s")
@click.option("--traceback", "show_traceback", is_flag=True, help="On an error that comes from a plugin, also print its full traceback.")
def cli(show_traceback: bool) -> None:
    """A plugin-based model zoo for PyTorch: the Quickstart's training loop, with every piece swappable.

    \b
    zoo run --model mlp-512 --dataset fashion-mnist   train as the PyTorch Quickstart does
    zoo list                                          every component, preset and recipe (zoo list models)
    zoo show NAME                                     one of them: its settings, and its measured results
    zoo plugins                                       the plugins that provide them
    zoo predict RUN_DIR --index 0                     what a trained model says about one test image
    zoo predict RUN_DIR shoe.png                      ... or about your own picture
    zoo eval RUN_DIR                                  accuracy per class and the confusion matrix
    zoo runs                                          every run so far; --compare A B
    zoo save RUN_DIR NAME; zoo models                 trained models by name (predict/eval/--init NAME)
    zoo leaderboard --models 'mlp-*'                  train a grid of models and keep its table
    zoo export NAME --format onnx --out m.onnx        a trained model out of zoo, checked
    zoo install PACKAGE; zoo uninstall PACKAGE        add or remove a plugin package in zoo's environment
    """


@cli.command(cls=RunCommand)
@click.option("--recipe", help="A recipe from the registry (default: quickstart).")
@click.option("--model", help="Model name or preset, e.g. mlp-512.")
@click.option("--dataset", help="Dataset name, e.g. fashion-mnist.")
@click.option("--loss", help="Loss name, e.g. cross-entropy.")
@click.option("--optimizer", help="Optimizer name, e.g. sgd.")
@click.option("--scheduler", help="Learning-rate schedule: constant, step, cosine, one-cycle.")
@click.option("--reporter", "reporters", multiple=True, help="Reporter (repeatable); replaces the recipe's list.")
@click.option("--epochs", type=int)
@click.option("--batch-size", type=int)
@click.option("--seed", type=int)
@click.option("--shuffle/--no-shuffle", default=None, help="Reshuffle the training data each epoch.")
@click.option("--stratify/--no-stratify", default=None, help="With --shuffle: every batch holds each class in proportion (the tuned recipe does).")
@click.option("--device", type=click.Choice(DEVICES), help="Where to train (default auto: CUDA or MPS where there is such a GPU, else the CPU).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), help="bf16: bfloat16 autocast; auto: bf16 where this CPU or GPU computes it natively, else fp32.")
@click.option("--mixup", type=click.FloatRange(min=0, max=100), metavar="ALPHA", help="Mix each training image and its label with another's, weight ~ Beta(ALPHA, ALPHA); 0: off (default; the tuned recipe: 0.4).")
@click.option("--log-every", type=int, help="Print the loss every N steps (default 100).")
@click.option("--predict-index", type=int, help="Test sample to predict at the end (default 0).")
@click.option("--out", type=click.Path(path_type=Path), help="Run directory (default runs/<time>-<model>-<dataset>).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where to look for the data first (also ZOO_DATA_DIR).")
@click.option("--no-verify", is_flag=True, help="Use data files whose checksums differ from the real dataset's.")
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE", help="A component setting, e.g. --set optimizer.lr=0.01 or --set 'model.hidden=[1024,256]' (TOML values; repeatable).")
@click.option("--checkpoint-every", type=int, help="Also checkpoint every N steps (always at each epoch end).")
@click.option("--keep-checkpoints", type=int, help="How many checkpoints to keep (default 2).")
@click.option("--deterministic/--no-deterministic", default=None, help="torch.use_deterministic_algorithms (see docs/reliability.md).")
@click.option("--cuda-graphs", type=click.Choice(["auto", "off"]), help="auto (default): on a GPU, replay each training step as one CUDA graph where the components allow; off: eager steps.")
@click.option("--init", metavar="NAME_OR_RUN", help="Start from trained weights: a stored model (zoo models) or a finished run; every layer matching in name and shape is loaded.")
@click.option("--init-new-head", is_flag=True, default=None, help="With --init: the final layer may differ (another number of classes) and starts fresh.")
@click.option("--resume", metavar="RUN_DIR|auto", help="Continue a run from its newest valid checkpoint; auto: the newest unfinished run with these settings.")
@click.option("--quiet", "-q", is_flag=True, help="No Quickstart log and no progress bar: notes on what it starts from, errors and the run directory only.")
@click.option("--dry-run", is_flag=True, help="Print the resolved configuration as JSON and stop (the settings are checked, nothing is built).")
@click.option("--check", "check_only", is_flag=True, help="Every check a run makes before its first step (the data read, each component built, one batch through the model and loss), then stop; nothing is written.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads torch computes with (default: one per core). Fewer is faster where other work holds cores: --threads 1 on a busy 2-core machine.")
@click.option("--nproc", type=click.IntRange(min=1), help="Train data-parallel in N processes on this machine (torchrun; see docs/scaling.md).")
@click.option("--max-restarts", type=click.IntRange(min=0), default=0, show_default=True, help="With --nproc: restart every process this often after a failure, resuming from the last checkpoint.")
@click.option("--launched", type=click.Path(path_type=Path), hidden=True, help="(internal) A worker of `zoo run --nproc`: train what RUN_DIR/launch.json holds.")
@registry_option
def run(recipe: str | None, reporters: tuple[str, ...], data_dir: Path | None, no_verify: bool, resume: str | None, quiet: bool, dry_run: bool,
        check_only: bool, threads: int | None, nproc: int | None, max_restarts: int, launched: Path | None, registry_files: tuple[Path, ...],
        **settings: Any) -> None:
    """Train and test a model, printing the Quickstart's log; writes a run directory.

    On a terminal a progress bar runs below the log (not with --quiet, nor when CI is set).
    With --nproc N, N processes train one model together (global batch --batch-size)."""
    if launched is not None:
        _train_here(lambda: api.run_launched(launched), None, worker=True)
        return
    if max_restarts and nproc is None:
        raise ZooError("--max-restarts restarts the processes of a --nproc job; add --nproc N (or use torchrun's own --max-restarts).")
    settings.update(_chosen(reporters, quiet), data_dir=data_dir, verify=False if no_verify else None, registry_files=registry_files)
    if dry_run:
        _dry_run(recipe, resume, nproc, max_restarts, settings)
        return
    if check_only:
        _check(recipe, resume, threads, nproc, settings)
        return
    if nproc is not None:
        _train_processes(lambda: api.run_processes(nproc, recipe=recipe, resume=resume, max_restarts=max_restarts, threads=threads, **settings))
        return
    _train_here(lambda: api.run(recipe=recipe, resume=resume, threads=threads, **settings), settings.get("out"))


def _train_processes(train: Callable[[], Path]) -> None:
    """A --nproc job from this process, then where it saved."""
    run_dir = train()
    echo(f"Run saved in {run_dir}", err=True)
    if reader_left(sys.stdout):  # `zoo run --nproc 2 | head`: the workers printed; the job's status is this process's
        _stop_quietly_on_broken_pipe()


def _train_here(train: Callable[[], Any], out: Path | None, worker: bool = False) -> None:
    """This process's training, then where it saved; `zoo run | head` stops the printout (exit 141), not the training.
    A rank of a torchrun job exits 0 all the same: 141 would fail the job (and --max-restarts train it again), so the
    status is its launcher's. A worker of `--nproc` also leaves "Run saved in" to its parent."""
    from .world import current

    with outliving_its_reader() as output:
        result = train()
    if worker:
        return
    world = current()
    if world.main:
        echo(f"Run saved in {_as_typed(result.run_dir, out)}", err=True)
    if output.left and not world.distributed:
        _stop_quietly_on_broken_pipe()


def _as_typed(run_dir: Path, out: Path | None) -> Path:
    """The run directory as one would type it: relative to here (runs/...), unless --out gave an absolute path."""
    if out is not None and Path(out).is_absolute():
        return run_dir
    try:
        return run_dir.relative_to(Path.cwd())
    except ValueError:
        return run_dir


def _dry_run(recipe: str | None, resume: str | None, nproc: int | None, max_restarts: int, settings: dict[str, Any]) -> None:
    """The checks a start makes before it opens anything big (every setting, a resume that cannot continue, an --out in use,
    the --init source's pin), then the plan as JSON; the data and the --init weights' shapes are checked by the run itself."""
    _, resolved, resume_dir = api.plan(recipe=recipe, resume=resume, **settings)
    if nproc is not None:
        api.check_processes(resolved, nproc)
    launch = {"launch": {"processes": nproc, "max_restarts": max_restarts}} if nproc is not None else {}
    resumes = {"resumes": str(resume_dir)} if resume_dir is not None else {}
    echo(json.dumps({**resolved.to_json(), **launch, **resumes}, indent=2))


def _check(recipe: str | None, resume: str | None, threads: int | None, nproc: int | None, settings: dict[str, Any]) -> None:
    """--check: the run built and one batch checked, in this process (a --nproc job's processes shard the same data)."""
    checked = api.check(recipe=recipe, resume=resume, threads=threads, **settings)
    if nproc is not None:
        api.check_processes(checked.resolved, nproc)
    echo(str(checked) + (f" (built as one process; --nproc {nproc} shards the same data)" if nproc else ""))


def _chosen(reporters: tuple[str, ...], quiet: bool) -> dict[str, list[str]]:
    """The reporters: --reporter replaces the recipe's; --quiet drops the printed ones; a terminal adds the progress bar."""
    chosen: dict[str, list[str]] = {"reporters": list(reporters)} if reporters else {}
    if quiet:
        chosen["drop_reporters"] = ["console", "progress"]
    elif _interactive():
        chosen["add_reporters"] = ["progress"]
    return chosen


def _interactive() -> bool:
    """A person is watching: standard output is a terminal (not closed: `zoo ... >&-`) and this is not CI."""
    return sys.stdout is not None and sys.stdout.isatty() and not os.environ.get("CI")


def _any_entry(entries: dict[str, Any]) -> bool:
    return any(entries[part] for part in ("components", "presets", "recipes"))


@cli.command("list")
@click.argument("kind", required=False)
@click.argument("pattern", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (schema in docs/plugins.md).")
@registry_option
def list_command(kind: str | None, pattern: str | None, as_json: bool, registry_files: tuple[Path, ...]) -> None:
    """Every registered component, preset and recipe, with the plugin that provides it.

    KIND is one of datasets, models, losses, optimizers, schedulers, reporters, recipes; PATTERN may use
    wildcards: zoo list models 'mlp-*'.
    """
    normalized = normalize_kind(kind) if kind else None
    if kind and normalized is None:
        if pattern is not None:
            raise ZooError(f"Unknown kind {kind!r}; the kinds are datasets, models, losses, optimizers, schedulers, reporters, recipes.")
        kind, pattern = None, kind
    catalog = api.catalog(registry_files)
    entries = list_entries(catalog, normalized, pattern)
    if pattern and not _any_entry(entries) and (placeholder := placeholder_for(catalog, normalized, pattern)):
        entries = list_entries(catalog, normalized, placeholder)  # mlp-128: the mlp-<width> it is made from
    nothing = bool(pattern) and not _any_entry(entries)
    if as_json:
        echo(json.dumps(entries, indent=2))
    elif not nothing and _interactive():
        tables.print_rich_list(entries)
    elif not nothing:  # (nothing: the error below says it, with the nearest name)
        echo(tables.format_list(entries))
    if nothing:
        raise nothing_matches(catalog, normalized, str(pattern))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--check", "check", metavar="NAME", help="Test plugin NAME (entry point or distribution): build each component and train a few steps on tiny data.")
@click.option("--data-dir", type=click.Path(path_type=Path), help="With --check: the folder its datasets read (those that take --data-dir).")
def plugins(as_json: bool, check: str | None, data_dir: Path | None) -> None:
    """The installed plugins: distribution, version, hooks, status and any load error.
    Status: loaded, failed (something did not load), conflicting (a name refused or shared),
    disabled (ZOO_DISABLE_PLUGINS), not-selected (ZOO_LOAD_PLUGINS)."""
    if data_dir is not None and check is None:
        raise ZooError("--data-dir gives the folder that `zoo plugins --check NAME` lets a plugin's datasets read; add --check NAME.")
    if check is not None:
        from .testing import check_plugin

        report = check_plugin(check, data_dir=data_dir)
        echo(report.text())
        if not report.ok:
            raise ZooError(f"Plugin {check!r} does not keep zoo's plugin contract: {report.failures()} (above; see docs/plugins.md).")
        return
    catalog = api.catalog()
    entries = plugin_entries(catalog)
    if as_json:
        echo(json.dumps(entries, indent=2))
        return
    echo(tables.format_plugins(entries))
    for warning in catalog.warnings:
        echo(f"! {warning}", err=True)


@cli.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@registry_option
def show(name: str, as_json: bool, registry_files: tuple[Path, ...]) -> None:
    """A component's or preset's settings (types, defaults, limits), its plugin and version, the
    presets built on it and their measured results; a recipe's settings and results: zoo show sgd,
    zoo show mlp-512, zoo show tuned."""
    from .show import describe, format_description

    described = describe(api.catalog(registry_files), name, registry_files)
    echo(json.dumps(described, indent=2, default=str) if as_json else format_description(described))


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option("--index", "indices", type=int, multiple=True, help="Test sample(s) to predict: --index 0 5 17 (default 0, without IMAGES).")
@click.option("--grid", type=click.Path(path_type=Path), help="Also draw the images, labels and probabilities into this picture (PNG; .pdf, .svg... by extension).")
@click.option("--top", "top_k", type=click.IntRange(min=1), default=3, show_default=True, help="Classes to show for an image file.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=MAX_PIXELS, show_default=True,
              help="Refuse larger image files before decoding them (a few bytes can claim gigapixels).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where to look for the data first.")
@click.option("--no-verify", is_flag=True, help="Use data files whose checksums differ from the real dataset's.")
@reading_store_option
@registry_option
def predict(run_dir: Path, images: tuple[Path, ...], indices: tuple[int, ...], grid: Path | None, top_k: int, max_pixels: int, data_dir: Path | None, no_verify: bool, registry_files: tuple[Path, ...]) -> None:
    """What a finished run's model says about test samples (--index) or picture files (IMAGES: PNG,
    JPEG, GIF, WebP, BMP; of an animated one, the first frame): Predicted/Actual and each class's
    probability, or an image's top classes."""
    if grid is not None:
        from .plots import picture_path

        grid = picture_path(grid, "--grid")
    files, extra = [], list(indices)
    for image in images:  # `--index 0 5 17`: the numbers after the first arrive here
        if indices and image.name.isdigit() and not image.exists():
            extra.append(int(image.name))
        else:
            files.append(image)
    drawn = len(files) + (len(extra) or (0 if files else 1))  # no image and no --index: test image 0
    if grid is not None and drawn > MAX_GRID:
        raise ZooError(f"--grid draws at most {MAX_GRID} images (beyond that the tiles are too small to read, and the picture takes minutes and "
                       f"gigabytes); this asks for {drawn}. Draw them in several grids, or leave out --grid.")
    catalog = api.catalog(registry_files)
    shown, pictures = [], []
    if files:
        from .inference import predict_files

        predictions, tensors = predict_files(catalog, run_dir, files, max_pixels)
        for path, prediction in zip(files, predictions):
            ranked = sorted(prediction.probabilities.items(), key=lambda item: -item[1])[:top_k]
            echo(f"{path}: {prediction.predicted}")
            echo("\n".join(f"  {name:<{max(len(n) for n, _ in ranked)}}  {p:7.2%}" for name, p in ranked))
        shown += predictions
        pictures += tensors
    if extra or not files:
        from .inference import predict_indices

        predictions, tensors = predict_indices(catalog, run_dir, extra or [0], data_dir, verify=not no_verify)
        for prediction in predictions:
            echo("\n".join(prediction.lines()))
        shown += predictions
        pictures += tensors
    if grid is not None:
        from .plots import write_prediction_grid

        echo(f"Grid written to {write_prediction_grid(pictures, shown, grid)}", err=True)


@cli.command("eval")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--dataset", help="Evaluate on another dataset with the same classes (default: the run's).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where to look for the data first.")
@click.option("--no-verify", is_flag=True, help="Use data files whose checksums differ from the real dataset's.")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), help="Compute in this precision (default: the run's own, as its log).")
@click.option("--out", type=click.Path(path_type=Path), help="Where to draw the confusion matrix (default: RUN_DIR/confusion.png; for a stored name, confusion-NAME.png here).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@reading_store_option
@registry_option
def eval_command(run_dir: Path, dataset: str | None, data_dir: Path | None, no_verify: bool, precision: str | None, out: Path | None,
                 as_json: bool, registry_files: tuple[Path, ...]) -> None:
    """Re-evaluate a run's saved weights (or a stored model's): accuracy, average loss, per-class accuracy,
    confusion matrix (printed, and drawn to a PNG: see --out)."""
    from .inference import evaluate
    from .plots import picture_path, write_confusion

    from .store import which

    _, folder = which(run_dir)  # a run's folder gets its picture; a stored model's folder stays as saved
    drawn = picture_path(out, "--out") if out else (folder / "confusion.png" if folder.is_dir() else Path(f"confusion-{run_dir.name}.png"))
    if not drawn.parent.is_dir():
        raise ZooError(f"--out {drawn}: the folder {drawn.parent} does not exist.")
    result = evaluate(api.catalog(registry_files), run_dir, dataset, data_dir, verify=not no_verify, precision=precision)
    picture = write_confusion(result.confusion, result.classes, drawn)
    if as_json:
        echo(json.dumps({**result.__dict__, "per_class": result.per_class(), "confusion_png": str(picture)}, indent=2))
        return
    echo(f"Dataset {result.dataset}: accuracy {result.accuracy:.2%}, average loss {result.loss:.6f} ({result.precision})")
    width = max(len(c) for c in result.classes)
    echo(f"\n  {'class':<{width}}  accuracy  correct/total")
    for name, correct, total in result.per_class():
        echo(f"  {name:<{width}}  {correct / max(total, 1):8.2%}  {correct:>7}/{total}")
    cell = max(6, width)
    echo("\nConfusion matrix (rows: actual, columns: predicted)")
    echo(" " * (width + 2) + " ".join(f"{c:>{cell}}" for c in result.classes))
    for name, row in zip(result.classes, result.confusion):
        echo(f"  {name:<{width}}" + " ".join(f"{v:>{cell}}" for v in row))
    echo(f"\nDrawn to {picture}", err=True)


@cli.command()
@click.option("--root", type=click.Path(path_type=Path), default=Path("runs"), show_default=True, help="Where the run directories are.")
@click.option("--compare", nargs=2, type=click.Path(path_type=Path), metavar="RUN_A RUN_B",
              help="Show how two runs' settings and metrics differ (a run directory, or a name from the listing, found under --root).")
@click.option("--plot", type=click.Path(path_type=Path), help="With --compare: draw both runs' curves into this PNG.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def runs(root: Path, compare: tuple[Path, Path] | None, plot: Path | None, as_json: bool) -> None:
    """The run directories: model, dataset, recipe, seed, epochs, best accuracy, training time, when. A recipe
    marked * was changed by the run (its settings are listed below the table); another seed or device is no change."""
    from . import runs as browser

    if plot is not None and not compare:
        raise click.UsageError("--plot draws the curves of the two runs that --compare names; add --compare RUN_A RUN_B.")
    if not root.exists() and click.get_current_context().get_parameter_source("root") != click.core.ParameterSource.DEFAULT:
        raise ZooError(f"--root {root} does not exist; give the folder that holds the run directories (`zoo run` writes them under runs/).")
    if plot is not None:
        from .plots import picture_path

        plot = picture_path(plot, "--plot")
    if compare:
        compare = tuple(browser.locate(run, root) for run in compare)  # type: ignore[assignment]
        comparison = browser.compare(*compare)
        if as_json:
            echo(json.dumps(browser.comparison_json(*compare, comparison), indent=2, allow_nan=False))
        else:
            echo(tables.format_comparison(*(str(path) for path in compare), comparison))
        for problem in comparison.problems:
            echo(f"! damaged: {problem}; only the epochs before it are shown.", err=True)
        if plot is not None:
            from .plots import write_comparison

            echo(f"Curves drawn to {write_comparison(list(compare), plot)}", err=True)
        return
    summaries = browser.list_runs(root)
    if as_json:
        echo(browser.dumps(summaries))
        return
    if not summaries:
        echo(f"No runs under {root}/ yet: `zoo run` writes one.")
        return
    echo(tables.format_runs(summaries))




@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("name")
@store_option
@click.option("--shipped", is_flag=True, help="Store it among the models zoo ships (zoo/shipped/, in a checkout; see `make models`).")
def save(run_dir: Path, name: str, store: Path | None, shipped: bool) -> None:
    """Store a finished run's weights and card as a trained model called NAME: then `zoo predict NAME`,
    `zoo eval NAME`, `zoo run --init NAME` and zoo.load(NAME) use it."""
    saved = api.save(run_dir, name, store=store, shipped=shipped)
    echo(f"Saved {name} in {saved.folder}")


@cli.command()
@store_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output: every card.")
def models(store: Path | None, as_json: bool) -> None:
    """The trained models (your store, zoo's shipped ones, plugins'), with their scores."""
    rows = api.models(store=store)
    if as_json:
        echo(json.dumps([{"name": r.stored.name, "origin": r.stored.origin, "folder": str(r.stored.folder), "problem": r.problem,
                                "card": r.card.model_dump(mode="json", exclude={"config"}) if r.card else None,
                                "changed_from_recipe": r.card.config.get("changed_from_recipe") if r.card else None} for r in rows], indent=2))
        return
    echo(tables.format_models(rows))


@cli.command()
@click.option("--models", "patterns", multiple=True, required=True, help="Models: names or wildcards, comma-separated or repeated, e.g. 'mlp-*'.")
@click.option("--datasets", multiple=True, default=("fashion-mnist",), show_default=True, help="Datasets (comma-separated or repeated).")
@click.option("--recipe", "recipes", multiple=True, default=("quickstart",), show_default=True, help="Recipe(s) (repeatable).")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True, help="Seeds 0..N-1 per cell: accuracy is their mean and spread.")
@click.option("--epochs", type=click.IntRange(min=1), help="Override the recipes' epochs.")
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE", help="A component setting for every cell (repeatable).")
@click.option("--device", type=click.Choice(DEVICES), help="The device every cell trains on (default: each recipe's).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where to look for the data first.")
@click.option("--no-verify", is_flag=True, help="Use data files whose checksums differ from the real dataset's.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("leaderboard"), show_default=True, help="The folder of cells, runs and tables.")
@click.option("--record", is_flag=True, help="Record each preset's result in registry.toml for `zoo list` (a checkout).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads torch computes with, as zoo run --threads (default: one per core).")
@registry_option
def leaderboard(patterns: tuple[str, ...], datasets: tuple[str, ...], recipes: tuple[str, ...], seeds: int, epochs: int | None, sets: tuple[str, ...],
                device: str | None, data_dir: Path | None, no_verify: bool, out: Path, record: bool, threads: int | None,
                registry_files: tuple[Path, ...]) -> None:
    """Train models × datasets × recipes × seeds and keep a results table in --out (Markdown, CSV,
    accuracy against parameters and time). Cells already done are skipped, so a stopped leaderboard
    continues; a failing cell is recorded and the others go on (exit 1 at the end)."""
    def progress(index: int, total: int, cell: Any, row: dict[str, Any] | None) -> None:
        state = "already done" if row is None else f"{row['accuracy']:.2%} in {row['seconds']:.1f} s" if row["status"] == "ok" else f"FAILED: {row['error']}"
        echo(f"[{index + 1}/{total}] {cell}: {state}", err=True)

    from .leaderboard import failures

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZooWarning)  # its failed cells are this command's error, below
        board = api.leaderboard(patterns, datasets, recipes, seeds, out=out, record=record, progress=progress, registry_files=registry_files,
                                threads=threads, epochs=epochs, sets=sets, device=device, data_dir=data_dir, verify=False if no_verify else None)
    echo(tables_text(board.lines))
    echo(f"Written: {', '.join(str(p) for p in board.written)}", err=True)
    for recorded in board.recorded:
        echo(f"Recorded in registry.toml: {recorded}", err=True)
    for line in board.lines if record else []:
        if (named := f"{line['model']} {line['dataset']}/{line['recipe']}") not in board.recorded:
            echo(f"Not recorded: {named} (no result, not a preset, or not trained as its preset and recipe are now on data checked "
                 f"against the published checksums)", err=True)
    if board.failed:
        error = ZooError(failures(board, out))
        error.exit_code = 1
        raise error


def tables_text(lines: list[dict[str, Any]]) -> str:
    from .leaderboard import markdown

    return markdown(lines).rstrip()


@cli.command()
@click.argument("model", metavar="NAME_OR_RUN")
@click.option("--format", "format_", type=click.Choice(["onnx", "pt2"]), default="onnx", show_default=True, help="ONNX (checked with onnxruntime) or torch.export's .pt2.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The file to write (written only once the check passes).")
@click.option("--tolerance", type=click.FloatRange(min=0), default=1e-4, show_default=True, help="Largest difference from zoo's own outputs allowed on the test images.")
@click.option("--samples", type=click.IntRange(min=2), default=64, show_default=True, help="Test images to check on.")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where to look for the data first.")
@click.option("--no-verify", is_flag=True, help="Use data files whose checksums differ from the real dataset's.")
@reading_store_option
@registry_option
def export(model: str, format_: str, out: Path, tolerance: float, samples: int, data_dir: Path | None, no_verify: bool, registry_files: tuple[Path, ...]) -> None:
    """Write a trained model (a stored name or a finished run) as ONNX or .pt2, with a dynamic batch
    dimension and the class names in its metadata, after checking it against zoo's outputs (zoo[export])."""
    from .export import export as export_model

    done = export_model(api.catalog(registry_files), model, format_, out, tolerance=tolerance, samples=samples,  # type: ignore[arg-type]
                        data_dir=data_dir, verify=not no_verify)
    echo(f"Exported {model} to {done.path} ({done.format}, dynamic batch, {len(done.classes)} classes in its metadata"
         + ("; it replaced the file that was there)" if done.replaced else ")"))
    echo(f"Checked on {done.samples} test images: largest difference from zoo's outputs {done.max_difference:.3g} (tolerance {tolerance:g})")


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("packages", nargs=-1, required=True, type=click.UNPROCESSED)
def install(packages: tuple[str, ...]) -> None:
    """pip install PACKAGES (and any pip options) into zoo's own environment, then show the plugins (pip speaks only of
    errors and warnings unless given -v)."""
    from . import packages as pip_packages

    before = pip_packages.installed()
    chatty = any(arg in ("-v", "--verbose", "-q", "--quiet") or re.fullmatch(r"-[vq]+", arg) for arg in packages)
    echo(pip_packages.pip("install", *([] if chatty else ["--quiet"]), *packages))  # pip's errors and warnings, not 60 lines of "already satisfied"
    if (note := pip_packages.no_plugin_added(packages, before)) is not None:
        echo(note, err=True)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("packages", nargs=-1, required=True, type=click.UNPROCESSED)
def uninstall(packages: tuple[str, ...]) -> None:
    """pip uninstall PACKAGES (or -r FILE) from zoo's own environment, then show the plugins; never zoo or what it needs."""
    from . import packages as pip_packages

    pip_packages.check_uninstall(packages)
    echo(pip_packages.pip("uninstall", "--yes", *packages))


def main() -> None:
    gcpause.pause()  # start-up makes ~400,000 lasting objects (zoo.gcpause)
    worker = "RANK" in os.environ
    if not worker:  # a torchrun worker dies on the signal as torchrun expects; its launcher says it, once
        _stop_on_termination()
    try:
        cli(prog_name="zoo")
    except SystemExit as end:
        code = _interrupted_if_held_back(end.code)
        if "TORCHELASTIC_RUN_ID" in os.environ:  # a torchrun worker (not any process with RANK set: a cluster's pod)
            _leave_now(code)
        raise SystemExit(code) from None
    finally:
        gcpause.exiting()


def _interrupted_if_held_back(code: Any) -> Any:
    """A signal held back for an extension's initialisation (zoo.interrupts) whose command ended before it came again
    still stops it: the exit status and the line say so, as they would have a moment later."""
    import signal

    from .interrupts import held_back

    number = held_back()
    if number is None or code not in (0, None):
        return code
    echo(f"Interrupted ({'Ctrl-C' if number == signal.SIGINT else signal.Signals(number).name}).", err=True)
    return 128 + number


def _leave_now(code: Any) -> NoReturn:
    """A torchrun worker's end, once its command has finished and said so: without the interpreter's finalisation, where
    gloo's threads, torn down with the last tensors they hold, can abort a rank that trained to the end (SIGABRT,
    "terminate called without an active exception"), which would fail the job or spend one of its --max-restarts."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # the reader has gone, or the stream is closed: nothing more can reach it
            pass
    if isinstance(code, str):  # sys.exit("message"), as Python itself would say it
        os.write(2, f"{code}\n".encode(errors="replace"))
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
