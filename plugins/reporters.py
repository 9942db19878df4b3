"""Reporters `console` (the Quickstart's printout, line for line) and `jsonl` (one JSON object per epoch)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ConfigDict

import zoo
from zoo.contracts import EpochEnd, Prediction, Reporter, RunEnd, RunStart, Step
from zoo.metrics import JsonlReporter
from zoo.registry import NoParams



class ConsoleReporter(Reporter):
    """Prints exactly what the PyTorch Quickstart prints."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout, flush=True)

    def on_run_start(self, event: RunStart) -> None:
        self._print(f"Using {event.device} device")
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
    model_config = ConfigDict(extra="forbid")

    path: Path | None = None
    """Append to this file; without it, print to standard output."""


def build_console(params: NoParams) -> ConsoleReporter:
    """The Quickstart's printout: loss every 100 steps, test accuracy and loss per epoch, a prediction."""
    return ConsoleReporter()


def build_jsonl(params: JsonlParams) -> JsonlReporter:
    """One JSON object per epoch, to standard output or to `path`."""
    return JsonlReporter(params.path)


@zoo.hookimpl
def register_reporters(register):
    register("console", build_console)
    register("jsonl", build_jsonl, params=JsonlParams)
