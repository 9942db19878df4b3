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
    normalization: tuple[float, float] | None = None
    """(mean, std) the images were standardised with, if they were: a run records it, and a
    prediction from an image file (pixels in [0, 1]) applies it as the training did."""
    files: dict[str, dict[str, Any]] | None = None
    """The files the splits were read from, by name, each with what is known of it (its path, whether it was
    checked against a published checksum, and that checksum): config.json records it as "data_files", so a result
    says which copy of the data it came from."""


@dataclass
class RunStart:
    """The run is built and its directory exists; training starts (or resumes)."""

    run_dir: Path  # the run directory: write your files here, never in the current directory
    config: dict[str, Any]  # every setting, resolved, as config.json holds it
    device: str  # e.g. "cpu", "cuda:0"
    classes: list[str]  # class names; index = label
    train_size: int  # samples in the training split
    test_size: int  # samples in the test split
    resumed_from: str | None = None  # the checkpoint a resumed run continues from, else None
    processes: int = 1  # data-parallel processes training together (torchrun)
    restart: int = 0  # how often torchrun has restarted them after a failure
    precision: str = "fp32"  # what the run computes in: "fp32" or "bf16" (config["precision"] may say "auto")
    precision_reason: str = ""  # why, in one sentence


@dataclass
class Step:
    """A logged training step: `seen` samples of `total` so far in this epoch."""

    epoch: int  # 1-based
    step: int  # 0-based step within the epoch
    loss: float  # this step's training loss (averaged over the processes)
    seen: int  # samples of this epoch seen so far, as the Quickstart counts them
    total: int  # samples in the training split
    global_step: int = 0  # steps done in the whole run, this one included


@dataclass
class EpochEnd:
    """An epoch is trained, tested and checkpointed."""

    epoch: int  # 1-based
    train_loss: float  # mean training loss of the epoch's steps
    test_loss: float  # mean of the test batches' losses (batches of the run's size), as the Quickstart's test() has it
    test_accuracy: float  # a fraction, 0..1
    seconds: float  # wall time of the epoch (training and testing), before an interruption included


@dataclass
class RunEnd:
    """Training is done and the weights are saved."""

    run_dir: Path  # the run directory
    weights: Path  # the saved weights (model.safetensors)
    epochs: list[EpochEnd] = field(default_factory=list)  # every epoch's EpochEnd
    seconds: float = 0.0  # wall time of training


@dataclass
class Prediction:
    """The trained model's answer for one test sample (or picture)."""

    index: int  # the test sample's index
    predicted: str  # the most probable class
    actual: str | None  # the true class, where known
    probabilities: dict[str, float]  # every class's softmax probability, in class order

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
