"""One training run: build the components, open the run directory (new or resumed), fit, save,
predict. The loop itself is zoo.train; this module holds what it needs (the Trainer) and the
decisions around it: when to checkpoint, log, stop and report.

Everything is built and checked before the run directory is created, so a bad setting leaves
nothing behind; a resumed run continues in its own directory from its newest valid checkpoint.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from . import __version__, checkpoint, gcpause
from .build import build_dataset, build_loss, build_mixup, build_model, build_optimizer, build_reporter, build_scheduler, check_stratify
from .collectives import device_index, gather, global_mean, joined, lost_peer, main_first, wrap
from .config import ResolvedRun
from .contract import check_one_batch, training_failure
from .contracts import DatasetSplits, EpochEnd, Prediction, RunEnd, RunStart, Step
from .data import Batches
from .device import deterministic_mode, own_random_state, seed_everything, select_device
from .errors import ZooError, option, resume_it, spoken
from .events import Events
from .finetune import start_from
from .graphs import choose_step
from .identity import config_hash
from .plugins import Catalog
from .precision import Precision, resolve_precision
from .samples import data_notes
from .rundir import CURVES, DIVERGED, METRICS, STEPS, WEIGHTS, discard_if_nothing_kept, has_checkpoint_folder, save_weights, write_failure, write_json
from .state import RankState, TrainState, rng_files
from .rewind import Healthy, rewind
from .stops import CheckpointEvery, Health, Interrupted, NonFiniteLoss, StopRequest, ctrl_c
from .train import fit, predict, step, test_batch_size
from .world import World, check_shards, current



@dataclass
class RunResult:
    run_dir: Path
    epochs: list[EpochEnd]
    prediction: Prediction
    model: torch.nn.Module  # trained, in eval mode, on its device
    catalog: Catalog | None = None  # what trained it (zoo.run sets it): zoo.predict(result) finds a notebook's plugins in it

    def __repr__(self) -> str:
        """One line for a notebook's echo, not every epoch's record and every layer."""
        last = f", last test accuracy {self.epochs[-1].test_accuracy:.2%}" if self.epochs else ""
        parameters = sum(p.numel() for p in self.model.parameters())
        return (f"RunResult(run_dir={str(self.run_dir)!r}, epochs=<{len(self.epochs)}{last}>, prediction=<{self.prediction.predicted!r}>, "
                f"model=<{type(self.model).__name__}, {parameters:,} parameters>)")


@dataclass
class Trainer:
    """A built run: its components, its batches, where it writes and who watches."""

    resolved: ResolvedRun
    world: World
    device: torch.device
    data: DatasetSplits
    model: torch.nn.Module
    trained: torch.nn.Module  # the model, or DistributedDataParallel around it
    loss_fn: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    train_batches: Batches
    test_batches: Batches
    events: Events
    precision: Precision
    run_dir: Path = field(default=Path())
    stepper: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor] = field(init=False)  # zoo.train.step, or its CUDA graph
    health: Health = field(init=False)  # every loss finite so far? (on the device)
    healthy: Healthy | None = None  # the last point known healthy, to rewind to
    optimizer_as: Callable[[], AbstractContextManager[Any]] = nullcontext  # around optimizer.step (zoo.graphs)

    def __post_init__(self) -> None:
        self.stepper = partial(step, self)
        self.health = Health(self.device)

    @property
    def config(self) -> Any:
        return self.resolved.config

    @property
    def bf16(self) -> bool:
        return self.precision.name == "bf16"

    def after_step(self, state: TrainState, loss: torch.Tensor, size: int, stop: StopRequest) -> None:
        """Report the step, log its loss every log_every steps, checkpoint when due, stop on Ctrl-C;
        only these read from the device (sync), so the steps between them never wait for the host."""
        batch, steps = state.batch - 1, len(self.train_batches)
        self.events.emit("on_batch_end", state.epoch, batch, steps)
        logging = batch % self.config.log_every == 0
        saving = CheckpointEvery(self.config.checkpoint_every).due(state.global_step, state.batch, steps)
        if not (logging or saving or stop.is_set()):
            return
        value = self.read_checked(state, loss, size)
        self.mark_healthy(state)
        if logging:
            seen = (batch + 1) * self.train_batches.batch_size_at(batch)  # as the Quickstart counts
            self.events.emit("on_step", Step(state.epoch, batch, value, seen, self.train_batches.num_samples, state.global_step))
        if saving:
            with stop.saving_checkpoint(self.run_dir):
                self.checkpoint(state)
        if stop.is_set():
            with stop.saving_checkpoint(self.run_dir):
                where = self.checkpoint(state)
            raise stop.interrupted(f"after step {state.batch} of epoch {state.epoch}. A checkpoint is in {where}; "
                                   f"continue with {resume_it(self.run_dir)}.", self.run_dir)

    def mark_healthy(self, state: TrainState) -> None:
        self.healthy = Healthy.take(self, state, kept=self.healthy)

    def read_checked(self, state: TrainState, loss: torch.Tensor | None = None, size: int = 1) -> float:
        """The loss of the last step (averaged over the ranks) and whether every step since the last
        sync had a finite loss, in one read; if one did not, rewind (zoo.rewind) and stop there."""
        finite = self.health.finite.float()
        read = torch.stack([finite, loss.detach().float().reshape(())]) if loss is not None else finite.reshape(1)
        values = global_mean(self.world, read.tolist(), size, self.device)
        if values[0] < 1:
            rewind(self, state, state.global_step)
        return values[-1]

    def end_epoch(self, state: TrainState, test_loss: float, accuracy: float, seconds: float, stop: StopRequest) -> None:
        """The epoch's result over every rank; its checkpoint first, so no reporter can cost it."""
        test_loss, accuracy = global_mean(self.world, [test_loss, accuracy], self.test_batches.local_samples, self.device)
        mean_train_loss = self.epoch_loss_sum(state) / max(len(self.train_batches), 1)
        end = EpochEnd(state.epoch, mean_train_loss, test_loss, accuracy, seconds)
        state.epoch_done(end)
        with stop.saving_checkpoint(self.run_dir):
            where = self.checkpoint(state)
        self.events.emit("on_epoch_end", end)
        if stop.is_set():
            raise stop.interrupted(f"after epoch {state.epoch}. A checkpoint is in {where}; continue with {resume_it(self.run_dir)}.", self.run_dir)

    def epoch_loss_sum(self, state: TrainState) -> float:
        """The epoch's training loss so far, summed over steps (each step's loss averaged over the ranks)."""
        return global_mean(self.world, [state.loss_sum.item()], 1, self.device)[0]

    def checkpoint(self, state: TrainState) -> Path:
        """Every rank calls it (it gathers every rank's random states); rank 0 writes."""
        ranks = gather(self.world, RankState.capture(self.device, state.loss_sum))
        if not self.world.main:
            return self.run_dir
        record, tensors = state.state_dict()
        tensors["train_loss_sum"] = torch.tensor(sum(r.loss_sum for r in ranks) / len(ranks), dtype=torch.float32)  # any number of ranks resumes this
        rng_tensors, rng_plain = rng_files(ranks, self.train_batches.augment_state(state.batch))
        rng_tensors["order"] = self.train_batches.order.get_state()
        return checkpoint.save(
            self.run_dir, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler, keep=self.config.keep_checkpoints,
            record={**record, "config_hash": config_hash(self.resolved), "rng": {"ranks": rng_plain},
                    "versions": {"zoo": __version__, "torch": torch.__version__}},
            tensors={**{f"state.{k}": v for k, v in tensors.items()}, **{f"rng.{k}": v for k, v in rng_tensors.items()}},
        )


def run(resolved: ResolvedRun, catalog: Catalog, runs_root: Path = Path("runs"), resume_dir: Path | None = None, launched: Path | None = None) -> RunResult:
    """Train as configured; in a torchrun job, as one rank of it. `launched`: the run directory that
    `zoo run --nproc` prepared for this job (new, resumed, or restarted by torchrun)."""
    from .opening import open_run

    world = current()
    device = select_device(resolved.config.device, device_index(world))
    events, failed = Events(), None
    new_run, out_existed = None, resolved.config.out is not None and resolved.config.out.exists()
    try:
        with joined(world, device), own_random_state(), deterministic_mode(resolved.config.deterministic, device), ExitStack() as resources:
            trainer = build(resolved, world, device, events, resuming=resume_dir is not None)
            gcpause.resume()  # torch and the run's objects are made: collect from here on, without them
            state, resumed = open_run(trainer, catalog, runs_root, resume_dir, launched, resources)
            new_run = trainer.run_dir if _is_new_run(world, resumed, resume_dir, launched) else None
            return _fit_and_finish(trainer, state, resumed)
    except BaseException as error:
        failed = error
        raise
    finally:
        events.close(failed is not None)
        gcpause.run_over()
        if isinstance(failed, Exception) and new_run is not None and discard_if_nothing_kept(new_run, keep_folder=out_existed):
            _say_discarded(failed, new_run, emptied=out_existed)


def _say_discarded(error: Exception, run_dir: Path, emptied: bool) -> None:
    """The failure's message says that its run directory is gone (or, a folder of the user's, emptied), and why: in a
    ZooError's one paragraph, or as a note under another exception's traceback."""
    note = (f"({run_dir} was {'emptied' if emptied else 'removed'}: the run stopped before its first checkpoint, "
            f"so there was nothing to resume.)")
    if isinstance(error, ZooError) and error.args:
        error.args = (f"{str(error.args[0]).rstrip()} {note}", *error.args[1:])
    else:
        error.add_note(note)


def _is_new_run(world: World, resumed: str | None, resume_dir: Path | None, launched: Path | None) -> bool:
    """This process made the run directory just now: rank 0 of a fresh start, not a resume, a --nproc job or a restart."""
    return world.main and resumed is None and resume_dir is None and launched is None and not world.restart


def build(resolved: ResolvedRun, world: World, device: torch.device, events: Events, resuming: bool = False) -> Trainer:
    """Every component, built and checked before anything is written; reporters join `events` as
    they are built, so a later failure still closes them. `resuming`: the checkpoint brings the
    weights, so --init's source is not read again."""
    config = resolved.config
    seed_everything(config.seed)
    with main_first(world):  # one download, not one per rank
        data = build_dataset(resolved.dataset)
    if config.predict_index >= len(data.test):
        raise ZooError(f"{option('--predict-index', config.predict_index)} is past the end of the test split ({len(data.test)} samples).")
    check_shards(config.batch_size, world.size, len(data.train))
    for note in data_notes(config.dataset, data, config.shuffle) if world.main else []:
        print(f"Note: {note}", file=sys.stderr)
    model = build_model(resolved.model, data.input_shape, len(data.classes)).to(device)
    start_from(model, config, resuming, report=world.main, classes=data.classes, input_shape=data.input_shape)  # --init: trained weights (zoo.finetune)
    trained = wrap(model, world, device)
    loss_fn = build_loss(resolved.loss)
    optimizer = build_optimizer(resolved.optimizer, model.parameters())
    if world.main:
        for part in resolved.reporters:
            events.add(part.resolved.name, build_reporter(part), owner=part.resolved.component.owner)
    shard = (world.rank, world.size)
    order, augment = torch.Generator().manual_seed(config.seed), torch.Generator().manual_seed(config.seed + 1)
    train_batches = Batches(data.train, config.batch_size, device, shuffle=config.shuffle, order=order, augment=augment, shard=shard,
                            mix=build_mixup(config.mixup, resolved.dataset, data, config.shuffle), stratify=check_stratify(config, resolved.dataset, data),
                            classes=len(data.classes))
    test_batches = Batches(data.test, test_batch_size(config.batch_size), device, shard=shard, classes=len(data.classes))
    scheduler = build_scheduler(resolved.scheduler, optimizer, len(train_batches), config.epochs)
    precision = resolve_precision(config.precision, device)
    trainer = Trainer(resolved, world, device, data, model, trained, loss_fn, optimizer, scheduler, train_batches, test_batches, events, precision)
    check_one_batch(trainer)  # the plugin contract, before anything is written (zoo.contract)
    return trainer


def _fit_and_finish(t: Trainer, state: TrainState, resumed: str | None) -> RunResult:
    """Train every epoch left, save the weights, report, predict one test image, draw the curves."""
    from .metrics import JsonlReporter, StepLog

    if t.world.main:
        run_files = [JsonlReporter(t.run_dir / METRICS), StepLog(t.run_dir / STEPS)]
        t.events.add("metrics.jsonl", run_files[0])
        t.events.add("steps.jsonl", run_files[1])
    with ctrl_c(enabled=not t.world.distributed) as stop:
        t.events.emit("on_run_start", RunStart(t.run_dir, t.resolved.to_json(), str(t.device), t.data.classes, len(t.data.train),
                                               len(t.data.test), resumed, t.world.size, t.world.restart, t.precision.name, t.precision.reason))
        started = time.perf_counter()
        t.stepper = choose_step(t, t.stepper)  # after a resume has loaded the optimizer's state
        _fit(t, state, stop)
        if t.world.main:
            _save_weights(t)
        t.events.emit("on_run_end", RunEnd(t.run_dir, t.run_dir / WEIGHTS, state.epochs, time.perf_counter() - started))
        image, label = t.data.test[t.config.predict_index]
        prediction = predict(t.model, image, t.data.classes, int(label), t.config.predict_index)
        t.events.emit("on_prediction", prediction)
    if t.world.main:  # after the result is out: matplotlib is the slowest import of a run
        for reporter in run_files:
            reporter.close()  # complete metrics.jsonl and steps.jsonl before drawing them
        try:
            from .plots import write_curves

            write_curves(t.run_dir, t.run_dir / CURVES)
        except KeyboardInterrupt as stop:  # the run is done: say so, rather than "the run stopped"
            code = stop.exit_code if isinstance(stop, Interrupted) else 130  # 143: SIGTERM, 129: SIGHUP (zoo.cli's handler)
            how = {143: "SIGTERM", 129: "SIGHUP"}.get(code, "Ctrl-C")
            raise Interrupted(f"Interrupted ({how}) while drawing {CURVES}; the run itself is complete: {t.run_dir} holds its weights "
                              f"and metrics ({spoken('`zoo runs --compare` or `zoo eval`', 'zoo.compare or zoo.evaluate')} use them).", code) from None
        except OSError as error:  # a full disk, say: the curves are a picture of what metrics.jsonl holds, not the result
            print(f"! {CURVES} was not drawn ({error.strerror or error}); the run itself is complete: {t.run_dir} holds its weights "
                  f"and metrics.", file=sys.stderr)
    return RunResult(t.run_dir, state.epochs, prediction, t.model)


def _save_weights(t: Trainer) -> None:
    try:
        save_weights(t.model, t.run_dir / WEIGHTS)
    except Exception as error:
        reason = write_failure(error)
        if reason is None:
            raise
        raise ZooError(f"Cannot write {t.run_dir / WEIGHTS}: {reason}. Training is done and its last checkpoint is kept: free some "
                       f"space (or fix the folder) and run {resume_it(t.run_dir)}, which writes the weights.") from None


def _fit(t: Trainer, state: TrainState, stop: StopRequest) -> None:
    """fit(), with its failures in words: a non-finite loss names the step and the last good checkpoint;
    a log file that cannot be written names it and how to continue."""
    try:
        fit(t, state, stop)
    except NonFiniteLoss as error:
        error = _non_finite(error, state, t)
        if t.world.main and error.unconfirmed_from is None:  # `zoo runs` lists it as diverged
            try:
                write_json(t.run_dir / DIVERGED, {"epoch": state.epoch, "step": state.batch + 1, "loss": str(error.value), "message": str(error)})
            except OSError:
                pass  # the error itself says it all; the listing then says "unfinished"
        raise error from None
    except BrokenPipeError:
        raise  # the output's reader left (not the run's files): zoo.cli stops quietly
    except OSError as error:
        where = error.filename or t.run_dir
        then = (f"its newest checkpoint is kept: free some space (or fix the folder) and continue with {resume_it(t.run_dir)}."
                if has_checkpoint_folder(t.run_dir) else "it had no checkpoint yet: free some space (or fix the folder) and start it again.")
        raise ZooError(f"Cannot write {where}: {error.strerror or error}. The run stopped at epoch {state.epoch}, step {state.batch}; {then}") from None
    except RuntimeError as error:
        if lost_peer(error):
            raise  # PeerLost, in collectives.joined
        raise training_failure(error, t.resolved, state.epoch, state.batch)
    except ZooError:
        raise
    except Exception as error:  # from plugin code: one paragraph naming the plugin (zoo.contract)
        raise training_failure(error, t.resolved, state.epoch, state.batch)


def _non_finite(error: NonFiniteLoss, state: TrainState, t: Trainer) -> NonFiniteLoss:
    found, _ = checkpoint.newest(t.run_dir)
    lr = t.resolved.optimizer.params.model_dump().get("lr")
    if error.unconfirmed_from is not None:
        error.args = (
            f"Training stopped: a loss that was not a finite number was seen between steps {error.unconfirmed_from + 1} and "
            f"{state.global_step} of the run, but those steps, taken again, all had finite losses (a nondeterministic kernel?). "
            f"The run stopped at epoch {state.epoch}, step {state.batch}, with finite weights. "
            + (f"The last good checkpoint is {found}." if found else "No checkpoint had been written yet."),
        )
        return error
    error.args = (
        f"Training stopped: the loss became {error.value} at step {error.batch + 1} of epoch {state.epoch} (step {state.global_step + 1} "
        f"of the run), before that step changed any weight. The usual cause is a learning rate too high for this model"
        + (f" (optimizer.lr={lr})" if lr is not None else "")
        + "; also check the data for NaN values and the loss for log(0). "
        + (f"The last good checkpoint is {found}." if found else "No checkpoint had been written yet."),
    )
    return error
