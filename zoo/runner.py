"""One training run: build the components, train and test for each epoch, save, predict one sample."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .build import build_dataset, build_loss, build_model, build_optimizer, build_reporter, build_scheduler
from .config import ResolvedRun
from .contracts import EpochEnd, Prediction, RunEnd, RunStart, Step
from .data import Batches
from .errors import ZooError
from .metrics import JsonlReporter
from .plugins import Catalog
from .rundir import CONFIG, METRICS, WEIGHTS, create_run_dir, save_weights, write_json
from .train import predict, test, train

EVAL_BATCH_SIZE = 1000


@dataclass
class RunResult:
    run_dir: Path
    epochs: list[EpochEnd]
    prediction: Prediction


def select_device(name: str) -> torch.device:
    """auto picks cuda, then mps, then cpu; asking for one that is not there is an error."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ZooError(f"--device {name} was asked for, but this machine's torch has no {name} device; use --device cpu or auto.")
    return torch.device(name)


class Reporters:
    """Sends each event to every reporter; a reporter that fails names its plugin."""

    def __init__(self, parts_and_reporters: list[tuple[str, Any]]) -> None:
        self.items = parts_and_reporters

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


def run(resolved: ResolvedRun, catalog: Catalog, runs_root: Path = Path("runs")) -> RunResult:
    """Everything is built and checked before the run directory is created, so a bad setting
    leaves nothing behind."""
    config = resolved.config
    device = select_device(config.device)
    torch.manual_seed(config.seed)
    data = build_dataset(resolved.dataset)
    if config.predict_index >= len(data.test):
        raise ZooError(f"--predict-index {config.predict_index} is past the end of the test split ({len(data.test)} samples).")
    model = build_model(resolved.model, data.input_shape, len(data.classes)).to(device)
    loss_fn = build_loss(resolved.loss)
    optimizer = build_optimizer(resolved.optimizer, model.parameters())
    reporters = [(part.resolved.name, build_reporter(part)) for part in resolved.reporters]

    run_dir = create_run_dir(config.out, config.model, config.dataset, runs_root)
    write_json(run_dir / CONFIG, _config_record(resolved, catalog, device, data.classes, data.input_shape))
    events = Reporters([*reporters, ("metrics.jsonl", JsonlReporter(run_dir / METRICS))])
    try:
        generator = torch.Generator().manual_seed(config.seed)
        train_batches = Batches(data.train, config.batch_size, device, shuffle=config.shuffle, generator=generator, augment=True)
        test_batches = Batches(data.test, max(EVAL_BATCH_SIZE, config.batch_size), device)
        scheduler = build_scheduler(resolved.scheduler, optimizer, len(train_batches), config.epochs)
        events.emit("on_run_start", RunStart(run_dir, resolved.to_json(), str(device), data.classes, len(data.train), len(data.test)))
        bf16 = config.precision == "bf16"
        epochs: list[EpochEnd] = []
        started = time.perf_counter()
        for epoch in range(1, config.epochs + 1):
            events.emit("on_epoch_start", epoch)
            epoch_started = time.perf_counter()

            def log(step: int, loss: float, seen: int, size: int, epoch: int = epoch) -> None:
                events.emit("on_step", Step(epoch, step, loss, seen, size))

            train_loss = train(train_batches, model, loss_fn, optimizer, scheduler, config.log_every, log, bf16)
            test_loss, accuracy = test(test_batches, model, loss_fn, bf16)
            epochs.append(EpochEnd(epoch, train_loss, test_loss, accuracy, time.perf_counter() - epoch_started))
            events.emit("on_epoch_end", epochs[-1])
        save_weights(model, run_dir / WEIGHTS)
        events.emit("on_run_end", RunEnd(run_dir, run_dir / WEIGHTS, epochs, time.perf_counter() - started))
        image, label = data.test[config.predict_index]
        prediction = predict(model, image, data.classes, int(label), config.predict_index)
        events.emit("on_prediction", prediction)
    finally:
        events.close()
    return RunResult(run_dir, epochs, prediction)


def _config_record(resolved: ResolvedRun, catalog: Catalog, device: torch.device, classes: list[str], input_shape: tuple[int, ...]) -> dict[str, Any]:
    return {
        **resolved.to_json(),
        "resolved_device": str(device),
        "classes": list(classes),
        "input_shape": list(input_shape),
        "versions": {
            "zoo": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "plugins": {p.name: f"{p.distribution} {p.version}" for p in catalog.plugins if p.status == "loaded"},
        },
    }
