"""The shapes plugins produce and consume. Plain dataclasses, so importing them costs no torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class DatasetSplits:
    """What a dataset factory returns: two `torch.utils.data.Dataset`s of (image tensor, int label).

    A split that is a `zoo.data.TensorSplit` (all images in one tensor) takes the fast path:
    batches are slices, no per-sample Python. Any other Dataset goes through a DataLoader.
    """

    train: Any
    test: Any
    classes: list[str]
    input_shape: tuple[int, ...]


@dataclass
class RunStart:
    run_dir: Path
    config: dict[str, Any]
    device: str
    classes: list[str]
    train_size: int
    test_size: int
    resumed_from: str | None = None
    processes: int = 1  # data-parallel processes training together (torchrun)
    restart: int = 0  # how often torchrun has restarted them after a failure
    precision: str = "fp32"  # what the run computes in: "fp32" or "bf16" (config["precision"] may say "auto")
    precision_reason: str = ""  # why, in one sentence


@dataclass
class Step:
    """A logged training step: `seen` samples of `total` so far in this epoch."""

    epoch: int
    step: int
    loss: float
    seen: int
    total: int
    global_step: int = 0


@dataclass
class EpochEnd:
    epoch: int
    train_loss: float
    test_loss: float
    test_accuracy: float  # a fraction, 0..1
    seconds: float


@dataclass
class RunEnd:
    run_dir: Path
    weights: Path
    epochs: list[EpochEnd] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Prediction:
    index: int
    predicted: str
    actual: str | None
    probabilities: dict[str, float]

    def lines(self, bar_width: int = 30) -> list[str]:
        """`Predicted: "Ankle boot", Actual: "Ankle boot"`, then each class's softmax probability."""
        head = f'Predicted: "{self.predicted}"'
        if self.actual is not None:
            head += f', Actual: "{self.actual}"'
        width = max(len(name) for name in self.probabilities)
        lines = [head]
        for name, probability in self.probabilities.items():
            bar = "#" * round(probability * bar_width)
            lines.append(f"  {name:<{width}}  {probability:7.2%}  {bar}")
        return lines


class Reporter:
    """Receives run events, in this order: run_start, then per epoch epoch_start, batch_end (every
    step), step (every `log_every` steps, with the loss) and epoch_end; then run_end (training done, weights saved); then prediction.
    Subclass it and override what you need; every method does nothing by default."""

    def on_run_start(self, event: RunStart) -> None: ...

    def on_epoch_start(self, epoch: int) -> None: ...

    def on_step(self, event: Step) -> None: ...

    def on_batch_end(self, epoch: int, batch: int, batches: int) -> None:
        """After every training step (cheap: no loss value, so no device sync); for progress bars."""

    def on_epoch_end(self, event: EpochEnd) -> None: ...

    def on_run_end(self, event: RunEnd) -> None: ...

    def on_prediction(self, event: Prediction) -> None: ...

    def close(self) -> None:
        """Release files; called once, even when the run fails."""
