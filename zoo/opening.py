"""Opening a run: a new run directory, or a resumed one with the TrainState its newest checkpoint
holds (also when torchrun restarts a job, or `zoo run --nproc` prepared the directory)."""

from __future__ import annotations

import json
import os
import platform
import shutil
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from . import __version__, checkpoint
from .collectives import broadcast
from .contracts import EpochEnd
from .data import background
from .errors import ZooError, option
from .identity import config_hash
from .metrics import JsonlReporter
from .plugins import FILE_VERSION, file_digest
from .rundir import CONFIG, METRICS, STEPS, create_run_dir, job_run_dir, network_name, write_atomic, write_json
from .state import TrainState, restore_rank

if TYPE_CHECKING:
    from .plugins import Catalog
    from .runner import Trainer


def open_run(t: Trainer, catalog: Catalog, runs_root: Path, resume_dir: Path | None, launched: Path | None,
             resources: ExitStack) -> tuple[TrainState, str | None]:
    """Set t.run_dir and own it (rank 0 holds its lock in `resources`); return the state to start
    from and, for a resume, which checkpoint it is.

    resume_dir: continue that run. launched: the directory `zoo run --nproc` prepared: resume it if
    it has a checkpoint (a restart, or --resume), else start in it. A torchrun restart without it
    finds the directory its job began."""
    world, config = t.world, t.config
    if launched is None and resume_dir is None and world.restart:
        launched = broadcast(world, job_run_dir(runs_root, config.out, world.job, config_hash(t.resolved)) if world.main else None)
    if launched is not None and resume_dir is None:
        has_checkpoint = broadcast(world, checkpoint.newest(launched)[0] is not None if world.main else None)
        resume_dir = launched if has_checkpoint else None
    if resume_dir is not None:
        t.run_dir = resume_dir
        if world.main:
            _own(resume_dir, resources)
        return _resume(t)
    run_dir = Path()
    if world.main:
        run_dir = launched or _new_run_dir(t, catalog, runs_root, resources)
        if launched is not None:  # a restart before the first checkpoint begins again
            _own(run_dir, resources)
            _rewrite_logs(run_dir, [], 0)
            write_json(run_dir / CONFIG, config_record(t, catalog))
    t.run_dir = broadcast(world, run_dir)
    return TrainState(loss_sum=torch.zeros((), device=t.device)), None


def _new_run_dir(t: Trainer, catalog: Catalog, runs_root: Path, resources: ExitStack) -> Path:
    """A new run directory with its config.json, or none at all: a disk that cannot take config.json
    leaves nothing behind (an --out folder that existed stays, empty)."""
    out = t.config.out
    existed = out is not None and out.exists()
    run_dir = create_run_dir(out, network_name(t.resolved.model.to_json()), t.config.dataset, runs_root)  # as zoo runs names it
    try:
        _own(run_dir, resources)
        write_json(run_dir / CONFIG, config_record(t, catalog))
    except BaseException as error:  # a full disk, or Ctrl-C just now: the folder goes too, else it blocks the same --out
        resources.close()
        if existed:
            for leftover in run_dir.iterdir():
                leftover.unlink(missing_ok=True)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
        if not isinstance(error, OSError):
            raise
        raise ZooError(f"Cannot write {run_dir / CONFIG}: {error.strerror or error}. Nothing was trained and nothing is left behind; "
                       f"free some space (or choose another {option('--out')}) and run again.") from None
    return run_dir


def _own(run_dir: Path, resources: ExitStack) -> None:
    """One process trains in a run directory at a time; what a killed one left half-written goes."""
    from .runlock import hold

    resources.enter_context(hold(run_dir))
    for leftover in run_dir.glob(".*.tmp"):  # write_atomic's temporary files
        leftover.unlink(missing_ok=True)


def _resume(t: Trainer) -> tuple[TrainState, str | None]:
    """Load the newest checkpoint (rank 0 chooses it) into every rank: weights, optimizer, scheduler,
    the state, this rank's random states and the shared generators."""
    world, run_dir = t.world, t.run_dir
    if world.main:
        checkpoint.recover(run_dir)
    found = broadcast(world, checkpoint.newest_or_error(run_dir) if world.main else None)
    record, tensors = checkpoint.load(found, t.model, t.optimizer, t.scheduler)
    if record.get("config_hash") != config_hash(t.resolved):
        raise ZooError(f"Checkpoint {found} was written by a run with another configuration; it cannot be resumed with this one.")
    try:
        state = TrainState.from_state_dict(record, {k.removeprefix("state."): v for k, v in tensors.items() if k.startswith("state.")},
                                           steps_per_epoch=len(t.train_batches), epochs=t.config.epochs, device=t.device)
        rng = {k.removeprefix("rng."): v for k, v in tensors.items() if k.startswith("rng.")}
        ranks = record["rng"].get("ranks") if isinstance(record.get("rng"), dict) else None
        restore_rank(state, rng, ranks, world.size, world.rank, t.device)
        _set_generator(t.train_batches.order, rng.get("order"))
        if t.train_batches.augment is not None:
            _set_generator(t.train_batches.augment, rng.get("augment"))
    except ZooError as error:
        raise ZooError(f"Checkpoint {found} cannot be used: {error}.") from None
    _keep_precision(t)
    resumed = f"{found.name.removeprefix('.replaced-')} (epoch {state.epoch}, step {state.batch})"
    if state.tested:  # its epoch-end checkpoint: the next epoch starts afresh
        state.epoch, state.batch = state.epoch + 1, 0
    if world.main:
        _rewrite_logs(run_dir, state.epochs, state.global_step)
        _note_resume(t, resumed)
    return state, resumed


def _note_resume(t: Trainer, resumed: str) -> None:
    """config.json's machine and versions are those the run started with; a resume, perhaps elsewhere (another CPU,
    GPU or thread count, whose numbers differ in their last digits), adds when, where and with what it continued.
    A config.json that cannot take the note costs only the note."""
    path = t.run_dir / CONFIG
    note = {"at": datetime.now().astimezone().isoformat(timespec="milliseconds"), "from": resumed, "machine": _machine(t),
            "versions": {"zoo": __version__, "zoo_source": _source_revision(), "torch": torch.__version__}}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        earlier = record.get("resumed")
        record["resumed"] = [*(earlier if isinstance(earlier, list) else []), note]
        write_json(path, record)
    except (OSError, ValueError, AttributeError):  # unreadable, not JSON, not an object
        pass


def _keep_precision(t: Trainer) -> None:
    """A resumed run computes in the precision it started in, even on another kind of machine: "auto"
    is decided once, when the run starts, and config.json records it."""
    from .precision import Precision
    from .rundir import read_config

    recorded = read_config(t.run_dir).get("resolved_precision") if t.world.main else None
    recorded = broadcast(t.world, recorded)
    if isinstance(recorded, dict) and recorded.get("precision") in ("fp32", "bf16") and recorded["precision"] != t.precision.name:
        t.precision = Precision(recorded["precision"], f"{recorded['precision']}: as the run started (config.json)")


def _set_generator(generator: torch.Generator, saved: torch.Tensor | None) -> None:
    try:
        if saved is None:
            raise ValueError("missing")
        generator.set_state(saved)
    except (ValueError, RuntimeError, TypeError) as error:
        raise ZooError(f"its shuffle or augmentation state does not load ({error})") from None


def _rewrite_logs(run_dir: Path, epochs: list[EpochEnd], global_step: int) -> None:
    """metrics.jsonl holds exactly the epochs the checkpoint knows; steps.jsonl the steps up to it
    (the rest are logged again). A damaged line of steps.jsonl is dropped: a log never stops a resume."""
    lines = "".join(json.dumps(JsonlReporter.record(epoch)) + "\n" for epoch in epochs)
    write_atomic(run_dir / METRICS, lambda temporary: Path(temporary).write_text(lines, encoding="utf-8"))
    kept = [line for line in _lines(run_dir / STEPS) if _step_of(line) is not None and _step_of(line) <= global_step]  # type: ignore[operator]
    write_atomic(run_dir / STEPS, lambda temporary: Path(temporary).write_text("".join(kept), encoding="utf-8"))


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True) if path.is_file() else []
    except OSError:
        return []


def _step_of(line: str) -> int | None:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    step = record.get("global_step") if isinstance(record, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def config_record(t: Trainer, catalog: Catalog) -> dict[str, Any]:
    """config.json: the resolved run, its identity, and what it ran on and with."""
    return {
        **t.resolved.to_json(),
        "config_hash": config_hash(t.resolved),
        "started": datetime.now().astimezone().isoformat(timespec="milliseconds"),
        "resolved_device": str(t.device),
        "resolved_precision": {"precision": t.precision.name, "reason": t.precision.reason},
        "launch": {"processes": t.world.size, "job": t.world.job},
        "classes": [str(name) for name in t.data.classes],  # a dataset's int class names too: config.json holds text
        "input_shape": list(t.data.input_shape),
        "input_normalization": list(t.data.normalization) if t.data.normalization else None,
        "input_background": background(t.data.train, t.data.normalization) if len(t.data.input_shape) == 3 else None,
        "data_files": t.data.files,
        "versions": {
            "zoo": __version__,
            "zoo_source": _source_revision(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            **{name: _installed_version(name) for name in ("torchvision", "numpy", "pydantic")},
            "plugins": {p.name: f"{p.distribution} {p.version}" + (f" sha256:{p.digest or file_digest(Path(p.distribution))}" if p.version == FILE_VERSION else "")
                        for p in catalog.plugins if p.status == "loaded"},
        },
        "machine": _machine(t),
    }


def _machine(t: Trainer) -> dict[str, Any]:
    """Where the run trained: the CPU and its threads (another thread count sums in another order, so its
    numbers differ in the last digits), native bf16, the GPU, the OS; for reporting a result with it."""
    from .precision import read_cpu

    cpu = read_cpu()
    return {"cpu": cpu.name, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "native_bf16": bool(cpu.bf16_features),
            "gpu": torch.cuda.get_device_name(t.device) if t.device.type == "cuda" else None, "os": platform.platform()}


def _installed_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _source_revision() -> str | None:
    """The git commit zoo runs from, "+changes" when its tracked files differ from it ("+?" when that cannot be
    told); None for an installed zoo. Read-only: --no-optional-locks leaves the index (and a concurrent commit) alone."""
    import subprocess

    checkout = Path(__file__).parent.parent
    if not (checkout / ".git").exists():
        return None
    git = ["git", "--no-optional-locks", "-C", str(checkout)]
    try:
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    try:
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
        state = "+changes" if dirty.stdout.strip() else "" if dirty.returncode == 0 else "+?"
    except (OSError, subprocess.SubprocessError):
        state = "+?"
    return head.stdout.strip() + state
