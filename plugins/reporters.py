"""Reporters `console` (the Quickstart's printout, line for line) and `jsonl` (one JSON object per epoch)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ConfigDict, Field

import zoo
from zoo.contracts import EpochEnd, Prediction, Reporter, RunEnd, RunStart, Step
from zoo.metrics import JsonlReporter
from zoo.errors import ZooError
from zoo.registry import NoParams



class ConsoleReporter(Reporter):
    """Prints exactly what the PyTorch Quickstart prints."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout, flush=True)

    def on_run_start(self, event: RunStart) -> None:
        together = f" ({event.processes} processes)" if event.processes > 1 else ""
        self._print(f"Using {event.device} device{together}")
        if event.config.get("precision") == "auto":  # chosen for this machine: say what and why, once
            self._print(f"Precision {event.precision_reason}")
        if event.restart:
            how = "resuming from its newest checkpoint" if event.resumed_from else "it had no checkpoint yet, so it starts again"
            self._print(f"A process of this job failed and torchrun restarted them all (restart {event.restart}): {how}.")
        if event.resumed_from:
            self._print(f"Resuming from checkpoint {event.resumed_from}")

    def on_epoch_start(self, epoch: int) -> None:
        self._print(f"Epoch {epoch}\n-------------------------------")

    def on_step(self, event: Step) -> None:
        self._print(f"loss: {event.loss:>7f}  [{event.seen:>5d}/{event.total:>5d}]")

    def on_epoch_end(self, event: EpochEnd) -> None:
        self._print(f"Test Error: \n Accuracy: {(100 * event.test_accuracy):>0.1f}%, Avg loss: {event.test_loss:>8f} \n")

    def on_run_end(self, event: RunEnd) -> None:
        self._print("Done!")
        self._print(f"Saved PyTorch Model State to {event.weights}")

    def on_prediction(self, event: Prediction) -> None:
        self._print("\n".join(event.lines()))


class JsonlParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    path: Path | None = Field(None, strict=False)  # a path arrives as text
    """Append to this file; without it, print to standard output."""


REFRESH = 0.1  # seconds between two updates of the progress bar (rich redraws it ten times a second)


class ProgressReporter(Reporter):
    """A rich progress bar per epoch (steps, steps/s, current loss, time left) and a summary line per
    epoch. Whatever else prints meanwhile (the console reporter's log) scrolls above the bar."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream
        self.progress = None
        self.task = None
        self.loss: float | None = None  # none logged yet: the bar shows "-"
        self.epochs = 0
        self.shown = 0.0  # when the bar was last updated (time.monotonic)

    def on_run_start(self, event: RunStart) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.epochs = int(event.config.get("epochs", 0))
        # soft_wrap: the log printed meanwhile passes through this console; a long line stays one line
        console = Console(file=self.stream, soft_wrap=True) if self.stream else Console(soft_wrap=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} steps/s"), TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(),
            console=console, transient=True,
        )
        self.progress.start()

    def on_epoch_start(self, epoch: int) -> None:
        if self.progress is None:
            return
        if self.task is None:
            self.task = self.progress.add_task(f"epoch {epoch}/{self.epochs}", total=None, rate="-", loss="-")
        else:
            self.progress.reset(self.task, description=f"epoch {epoch}/{self.epochs}", total=None, rate="-", loss="-")

    def on_batch_end(self, epoch: int, batch: int, batches: int) -> None:
        if self.progress is None:
            return
        if self.task is None:  # a resumed run starts mid-epoch
            self.task = self.progress.add_task(f"epoch {epoch}/{self.epochs}", total=batches, completed=batch, rate="-", loss="-")
        now = time.monotonic()
        if batch + 1 < batches and now - self.shown < REFRESH:  # a step on a GPU takes less than an update
            return
        self.shown = now
        task = self.progress.tasks[0]  # the only one
        rate = f"{task.speed:.0f}" if task.speed else "-"
        self.progress.update(self.task, total=batches, completed=batch + 1, rate=rate, loss="-" if self.loss is None else f"{self.loss:.4f}")

    def on_step(self, event: Step) -> None:
        self.loss = event.loss

    def on_epoch_end(self, event: EpochEnd) -> None:
        if self.progress is not None:
            self.progress.console.print(
                f"epoch {event.epoch}/{self.epochs}: train loss {event.train_loss:.4f} · test loss {event.test_loss:.4f} "
                f"· accuracy {event.test_accuracy:.1%} · {event.seconds:.1f} s",
                highlight=False,
            )

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.progress = None


def build_progress(params: NoParams) -> ProgressReporter:
    """A rich progress bar and a summary line per epoch (added on a terminal unless --quiet or CI)."""
    return ProgressReporter()


class TensorBoardParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    log_dir: Path | None = Field(None, strict=False)
    """Where to write the event files; default: <run dir>/tensorboard."""


class TensorBoardReporter(Reporter):
    """Scalars for TensorBoard: training loss per logged step, test loss and accuracy per epoch."""

    def __init__(self, params: TensorBoardParams) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer_class = SummaryWriter
        self.params = params
        self.writer = None

    def on_run_start(self, event: RunStart) -> None:
        self.writer = self.writer_class(log_dir=str(self.params.log_dir or event.run_dir / "tensorboard"))

    def on_step(self, event: Step) -> None:
        if self.writer is not None:
            self.writer.add_scalar("train/loss", event.loss, event.global_step)

    def on_epoch_end(self, event: EpochEnd) -> None:
        if self.writer is not None:
            self.writer.add_scalar("test/loss", event.test_loss, event.epoch)
            self.writer.add_scalar("test/accuracy", event.test_accuracy, event.epoch)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.writer = None


def build_tensorboard(params: TensorBoardParams) -> TensorBoardReporter:
    """TensorBoard event files (needs the extra: pip install 'zoo[tensorboard]')."""
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
    except ImportError:
        raise ZooError(
            "The tensorboard reporter needs the TensorBoard package, which is not installed. "
            "Install zoo's extra with `pip install 'zoo[tensorboard]'` (or `zoo install tensorboard`), then run again."
        ) from None
    return TensorBoardReporter(params)


def build_console(params: NoParams) -> ConsoleReporter:
    """The Quickstart's printout: loss every 100 steps, test accuracy and loss per epoch, a prediction."""
    return ConsoleReporter()


class JsonlFile(JsonlReporter):
    """The `jsonl` reporter: never into the run's own files (a folder that --out creates has no config.json yet)."""

    def on_run_start(self, event: RunStart) -> None:
        from zoo.rundir import OWN_FILES

        if self.path is not None and self.path.resolve() in {(event.run_dir / name).resolve() for name in OWN_FILES}:
            raise ZooError(f"jsonl.path {self.path} is this run's own {self.path.name}, which zoo writes itself; choose another path.")
        if self.path is not None and not self.path.absolute().parent.is_dir():  # said now, not after the first epoch
            raise ZooError(f"jsonl.path {self.path}: the folder {self.path.absolute().parent} does not exist; make it first, or give another path.")


def build_jsonl(params: JsonlParams) -> JsonlReporter:
    """One JSON object per epoch, to standard output or to `path` (appended to)."""
    from zoo.rundir import check_output_file

    if params.path is not None:
        check_output_file(params.path, "jsonl.path", folder_made_later=True)  # it may be the run's own --out, made when it starts
    return JsonlFile(params.path)


@zoo.hookimpl
def register_reporters(register):
    register("console", build_console)
    register("jsonl", build_jsonl, params=JsonlParams)
    register("progress", build_progress)
    register("tensorboard", build_tensorboard, params=TensorBoardParams)
