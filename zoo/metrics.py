"""metrics.jsonl: one JSON object per epoch. The run always writes one; the `jsonl` reporter
plugin reuses this class to print the same lines."""

from __future__ import annotations

import json
from dataclasses import asdict
import sys
from pathlib import Path
from typing import IO

from .contracts import EpochEnd, Reporter, Step


class StepLog(Reporter):
    """steps.jsonl: every logged training step (epoch, step, global_step, loss, seen, total), for curves."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def on_step(self, event: Step) -> None:
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")
        self._file.write(json.dumps(asdict(event)) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None


class JsonlReporter(Reporter):
    """One JSON object per epoch: epoch, train_loss, test_loss, test_accuracy, seconds."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def on_epoch_end(self, event: EpochEnd) -> None:
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8") if self.path else sys.stdout
        self._file.write(json.dumps(self.record(event)) + "\n")
        self._file.flush()

    @staticmethod
    def record(event: EpochEnd) -> dict[str, float | int]:
        return {
            "epoch": event.epoch,
            "train_loss": event.train_loss,
            "test_loss": event.test_loss,
            "test_accuracy": event.test_accuracy,
            "seconds": round(event.seconds, 4),
        }

    def close(self) -> None:
        if self._file is not None and self._file is not sys.stdout:
            self._file.close()
        self._file = None
