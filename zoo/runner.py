"""One training run: build the components, train and test for each epoch, checkpoint, save, predict.

Everything is built and checked before the run directory is created, so a bad setting leaves
nothing behind; a resumed run continues in its own directory from its newest valid checkpoint.
"""

from __future__ import annotations

import json
import platform
import random
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from . import __version__, checkpoint, distributed
from .build import build_dataset, build_loss, build_model, build_optimizer, build_reporter, build_scheduler
from .config import ResolvedRun
from .contracts import EpochEnd, Prediction, RunEnd, RunStart, Step
from .data import Batches
from .distributed import World
from .errors import ZooError
from .metrics import JsonlReporter, StepLog
from .plugins import Catalog
from .rundir import CONFIG, CURVES, METRICS, STEPS, WEIGHTS, create_run_dir, read_config, save_weights, write_atomic, write_json
from .plots import write_curves
from .train import NonFiniteLoss, predict, test, train

EVAL_BATCH_SIZE = 1000
#: Settings that do not change what is trained: a resume may differ in these.
WATCH_ONLY = ("out", "reporters", "log_every", "checkpoint_every", "keep_checkpoints", "predict_index")


class Interrupted(ZooError):
    exit_code = 130


@dataclass
class RunResult:
    run_dir: Path
    epochs: list[EpochEnd]
    prediction: Prediction
    model: torch.nn.Module  # trained, in eval mode, on its device


def select_device(name: str, index: int | None = None) -> torch.device:
    """auto picks cuda, then mps, then cpu; asking for one that is not there is an error. `index`
    picks a GPU (a rank's local rank)."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if cuda else "mps" if mps else "cpu"
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ZooError(f"--device {name} was asked for, but this machine's torch has no {name} device; use --device cpu or auto.")
    if name == "cuda" and index is not None:
        if index >= torch.cuda.device_count():
            raise ZooError(f"Local rank {index} needs GPU {index}, but this machine has {torch.cuda.device_count()}; start at most that many processes per machine.")
        return torch.device("cuda", index)
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic or torch.are_deterministic_algorithms_enabled():  # the call imports torch._inductor: 1.5 s
        torch.use_deterministic_algorithms(deterministic)


class Reporters:
    """Sends each event to every reporter; a reporter that fails names its plugin."""

    def __init__(self, items: list[tuple[str, Any]]) -> None:
        self.items = items

    def emit(self, method: str, *args: Any) -> None:
        for name, reporter in self.items:
            handler = getattr(reporter, method, None)
            if handler is None:
                continue
            try:
                handler(*args)
            except ZooError:
                raise
            except Exception as error:
                raise ZooError(f"Reporter {name!r} failed in {method}: {type(error).__name__}: {error}.") from error

    def close(self) -> None:
        for _, reporter in self.items:
            close = getattr(reporter, "close", None)
            if close is not None:
                close()


@contextmanager
def stop_on_ctrl_c(enabled: bool = True) -> Iterator[threading.Event]:
    """Ctrl-C sets a flag that the loop checks between steps, so it stops at a clean step;
    a second Ctrl-C stops at once (KeyboardInterrupt), e.g. during a long test pass.
    Not in a job of several ranks: there torchrun stops every rank together."""
    requested = threading.Event()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handle(*_: Any) -> None:
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)


def run(resolved: ResolvedRun, catalog: Catalog, runs_root: Path = Path("runs"), resume_dir: Path | None = None) -> RunResult:
    """Train as configured; in a torchrun job, as one rank of it (see zoo.distributed)."""
    world = distributed.current()
    device = select_device(resolved.config.device, distributed.device_index(world))
    try:
        with distributed.joined(world, device):
            return _run(resolved, catalog, runs_root, resume_dir, world, device)
    except RuntimeError as error:
        if world.distributed and distributed.lost_peer(error):
            raise distributed.PeerLost(error) from None
        raise


def _run(resolved: ResolvedRun, catalog: Catalog, runs_root: Path, resume_dir: Path | None, world: World, device: torch.device) -> RunResult:
    config = resolved.config
    seed_everything(config.seed, config.deterministic)
    with distributed.main_first(world):  # one download, not one per rank
        data = build_dataset(resolved.dataset)
    if config.predict_index >= len(data.test):
        raise ZooError(f"--predict-index {config.predict_index} is past the end of the test split ({len(data.test)} samples).")
    distributed.check_shards(config.batch_size, world.size, len(data.train))
    model = build_model(resolved.model, data.input_shape, len(data.classes)).to(device)
    trained = distributed.wrap(model, world, device)
    loss_fn = build_loss(resolved.loss)
    optimizer = build_optimizer(resolved.optimizer, model.parameters())
    reporters = [(part.resolved.name, build_reporter(part)) for part in resolved.reporters] if world.main else []
    generator = torch.Generator().manual_seed(config.seed)
    shard = (world.rank, world.size)
    train_batches = Batches(data.train, config.batch_size, device, shuffle=config.shuffle, generator=generator, augment=True, shard=shard)
    test_batches = Batches(data.test, max(EVAL_BATCH_SIZE, config.batch_size), device, shard=shard)
    scheduler = build_scheduler(resolved.scheduler, optimizer, len(train_batches), config.epochs)

    epochs: list[EpochEnd] = []
    first_epoch, first_batch, global_step = 1, 0, 0
    train_loss_sum = torch.zeros((), device=device)
    epoch_start_state = generator.get_state()
    resume_state: torch.Tensor | None = None
    begun = None  # the directory this job began, when torchrun restarted it before its first checkpoint
    if resume_dir is None and world.restart:  # torchrun restarted this job: continue the run it began
        earlier, resumable = _earlier_attempt(runs_root, config.out, world, config_hash(resolved))
        if resumable:
            resume_dir = earlier
        else:
            begun = earlier
    if resume_dir is not None:
        run_dir = resume_dir
        # every rank loads the checkpoint that rank 0 chose
        found = distributed.broadcast(world, checkpoint.newest_or_error(run_dir) if world.main else None)
        record, rng, extra = checkpoint.load(found, model, optimizer, scheduler)
        if record.get("config_hash") != config_hash(resolved):
            raise ZooError(f"Checkpoint {found} was written by a run with another configuration; it cannot be resumed with this one.")
        try:
            epoch_start_state = checkpoint.restore_rng(rng, record["rng"], generator)
        except (TypeError, ValueError, RuntimeError) as error:
            raise ZooError(f"Checkpoint {found} cannot be used: its random states do not load ({error}).") from None
        resume_state = rng["generator"]
        epochs = [EpochEnd(**e) for e in record["epochs"]]
        first_epoch, first_batch, global_step = record["epoch"], record["batch"], record["global_step"]
        train_loss_sum = extra["train_loss_sum"].to(device)
        if first_batch >= len(train_batches) and len(epochs) >= first_epoch:
            first_epoch, first_batch, resume_state = first_epoch + 1, 0, None
        if world.main:
            _rewrite_metrics(run_dir / METRICS, epochs)
            _truncate_steps(run_dir / STEPS, global_step)
    else:
        run_dir = Path()
        if world.main:
            run_dir = begun or create_run_dir(config.out, config.model, config.dataset, runs_root)
            if begun is not None:  # start it afresh
                _rewrite_metrics(run_dir / METRICS, [])
                _truncate_steps(run_dir / STEPS, 0)
            write_json(run_dir / CONFIG, _config_record(resolved, catalog, device, data.classes, data.input_shape, world))
        run_dir = distributed.broadcast(world, run_dir)

    run_files = [("metrics.jsonl", JsonlReporter(run_dir / METRICS)), ("steps.jsonl", StepLog(run_dir / STEPS))] if world.main else []
    events = Reporters([*reporters, *run_files])
    bf16 = config.precision == "bf16"

    def epoch_loss_sum() -> float:
        """The epoch's training loss so far, summed over steps (each step's loss averaged over the ranks)."""
        return distributed.global_mean(world, [train_loss_sum.item()], 1, device)[0]

    def save_checkpoint(epoch: int, batch: int, loss_sum: float | None = None) -> Path:
        """Every rank calls it (epoch_loss_sum is a collective, unless given); rank 0 writes."""
        loss_sum = torch.tensor(epoch_loss_sum() if loss_sum is None else loss_sum)
        if not world.main:
            return run_dir
        return checkpoint.save(
            run_dir, model=model, optimizer=optimizer, scheduler=scheduler,
            rng=checkpoint.capture_rng(generator, epoch_start_state),
            extra_tensors={"train_loss_sum": loss_sum},
            state={"epoch": epoch, "batch": batch, "global_step": global_step, "config_hash": config_hash(resolved),
                   "epochs": [asdict(e) for e in epochs], "versions": {"zoo": __version__, "torch": torch.__version__}},
            keep=config.keep_checkpoints,
        )

    try:
        with stop_on_ctrl_c(enabled=not world.distributed) as stop:
            resumed = f"{found.name} (epoch {first_epoch}, step {first_batch})" if resume_dir is not None else None
            events.emit("on_run_start", RunStart(run_dir, resolved.to_json(), str(device), data.classes, len(data.train), len(data.test),
                                                 resumed, world.size, world.restart))
            started = time.perf_counter()
            for epoch in range(first_epoch, config.epochs + 1):
                if resume_state is None:
                    epoch_start_state = generator.get_state()
                    train_loss_sum = torch.zeros((), device=device)
                else:
                    generator.set_state(epoch_start_state)
                if first_batch == 0:
                    events.emit("on_epoch_start", epoch)
                epoch_started = time.perf_counter()

                def step_end(batch: int, loss: torch.Tensor, size: int, epoch: int = epoch) -> None:
                    nonlocal global_step, train_loss_sum
                    global_step += 1
                    train_loss_sum += loss * train_batches.share(batch, size) if world.distributed else loss
                    events.emit("on_batch_end", epoch, batch, len(train_batches))
                    if batch % config.log_every == 0:
                        value = distributed.global_mean(world, [loss.item()], size, device)[0]
                        seen = (batch + 1) * train_batches.batch_size_at(batch)  # as the Quickstart counts
                        events.emit("on_step", Step(epoch, batch, value, seen, train_batches.num_samples, global_step))
                    if config.checkpoint_every and global_step % config.checkpoint_every == 0:
                        save_checkpoint(epoch, batch + 1)
                    if stop.is_set():
                        where = save_checkpoint(epoch, batch + 1)
                        raise Interrupted(
                            f"Interrupted (Ctrl-C) after step {batch + 1} of epoch {epoch}. A checkpoint is in {where}; "
                            f"continue with `zoo run --resume {run_dir}`."
                        )

                try:
                    train(train_batches, trained, loss_fn, optimizer, scheduler, step_end, bf16, first_batch, resume_state)
                except NonFiniteLoss as error:
                    raise _non_finite(error, epoch, global_step, run_dir, resolved) from None
                except RuntimeError as error:
                    if world.distributed and distributed.lost_peer(error):
                        raise  # PeerLost, in run()
                    raise ZooError(f"Training failed at epoch {epoch} ({config.model} on {config.dataset}): "
                                   f"{type(error).__name__}: {' '.join(str(error).split())}") from error
                resume_state, first_batch = None, 0
                test_loss, accuracy = test(test_batches, model, loss_fn, bf16)
                test_loss, accuracy = distributed.global_mean(world, [test_loss, accuracy], test_batches.local_samples, device)
                loss_sum = epoch_loss_sum()
                mean_train_loss = loss_sum / max(len(train_batches), 1)
                epochs.append(EpochEnd(epoch, mean_train_loss, test_loss, accuracy, time.perf_counter() - epoch_started))
                events.emit("on_epoch_end", epochs[-1])
                where = save_checkpoint(epoch, len(train_batches), loss_sum)
                if stop.is_set():
                    raise Interrupted(f"Interrupted (Ctrl-C) after epoch {epoch}. A checkpoint is in {where}; continue with `zoo run --resume {run_dir}`.")
            if world.main:
                save_weights(model, run_dir / WEIGHTS)
                Reporters(run_files).close()  # complete metrics.jsonl and steps.jsonl before drawing them
                write_curves(run_dir, run_dir / CURVES)
            events.emit("on_run_end", RunEnd(run_dir, run_dir / WEIGHTS, epochs, time.perf_counter() - started))
            image, label = data.test[config.predict_index]
            prediction = predict(model, image, data.classes, int(label), config.predict_index)
            events.emit("on_prediction", prediction)
    finally:
        events.close()
    return RunResult(run_dir, epochs, prediction, model)


def _earlier_attempt(runs_root: Path, out: Path | None, world: World, wanted: str) -> tuple[Path | None, bool]:
    """The run directory that this job began before torchrun restarted it (if its settings are these),
    and whether it has a checkpoint to resume from; rank 0 looks, every rank gets the answer."""
    found = None
    if world.main:
        run_dir = distributed.job_run_dir(runs_root, out, world.job)
        try:
            ours = run_dir is not None and read_config(run_dir).get("config_hash") == wanted
        except ZooError:
            ours = False
        if ours:
            found = (run_dir, checkpoint.newest(run_dir)[0] is not None)
    return distributed.broadcast(world, found) or (None, False)


def _non_finite(error: NonFiniteLoss, epoch: int, global_step: int, run_dir: Path, resolved: ResolvedRun) -> NonFiniteLoss:
    found, _ = checkpoint.newest(run_dir)
    lr = resolved.optimizer.params.model_dump().get("lr")
    error.args = (
        f"Training stopped: the loss became {error.value} at step {error.batch + 1} of epoch {epoch} (step {global_step + 1} of the run), "
        f"before that step changed any weight. The usual cause is a learning rate too high for this model"
        + (f" (optimizer.lr={lr})" if lr is not None else "")
        + "; also check the data for NaN values and the loss for log(0). "
        + (f"The last good checkpoint is {found}." if found else "No checkpoint had been written yet."),
    )
    return error


def _truncate_steps(path: Path, global_step: int) -> None:
    """After a resume, steps.jsonl keeps the steps up to the checkpoint; the rest are logged again."""
    from .plots import read_jsonl

    kept = [record for record in read_jsonl(path) if record.get("global_step", 0) <= global_step]
    write_atomic(path, lambda temporary: Path(temporary).write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8"))


def _rewrite_metrics(path: Path, epochs: list[EpochEnd]) -> None:
    """After a resume, metrics.jsonl holds exactly the epochs the checkpoint knows."""
    lines = "".join(json.dumps(JsonlReporter.record(epoch)) + "\n" for epoch in epochs)
    write_atomic(path, lambda temporary: Path(temporary).write_text(lines, encoding="utf-8"))


def config_hash(resolved: ResolvedRun) -> str:
    """What makes two runs the same training: every setting but those that only watch or store it."""
    import hashlib

    record = resolved.to_json()
    for key in WATCH_ONLY:
        record.pop(key, None)
    record["components"].pop("reporters", None)
    for part in record["components"].values():
        part["plugin"].pop("version", None)  # an upgraded plugin may still resume its runs
    for key in ("data_dir", "verify", "download", "mirror"):  # where the data is, not what it is
        record["components"]["dataset"]["params"].pop(key, None)
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _config_record(resolved: ResolvedRun, catalog: Catalog, device: torch.device, classes: list[str], input_shape: tuple[int, ...], world: World) -> dict[str, Any]:
    return {
        **resolved.to_json(),
        "config_hash": config_hash(resolved),
        "resolved_device": str(device),
        "launch": {"processes": world.size, "job": world.job},
        "classes": list(classes),
        "input_shape": list(input_shape),
        "versions": {
            "zoo": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "plugins": {p.name: f"{p.distribution} {p.version}" for p in catalog.plugins if p.status == "loaded"},
        },
    }
