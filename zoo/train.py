"""The training loop, as the PyTorch Quickstart writes it (train(), test()), with plugins where it
had objects and one TrainState that a checkpoint saves and a resume restores.

    for epoch in epochs:             # fit()
        train(...)                   # forward, loss, backward, optimizer step, per batch
        test(...)                    # average loss and accuracy on the test split
        checkpoint, then report      # Trainer.end_epoch()
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from .contracts import Prediction
from .data import Batches
from .state import TrainState
from .stops import check_finite

if TYPE_CHECKING:
    import threading

    from .runner import Trainer

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def fit(t: Trainer, state: TrainState, stop: threading.Event) -> None:
    """Every epoch from where `state` is (epoch 1, or a resumed checkpoint) to the last."""
    for epoch in range(state.epoch, t.config.epochs + 1):
        if state.epoch < epoch or state.batch == 0:  # a new epoch
            state.start_epoch(epoch, t.train_batches.order.get_state(), t.device)
            t.events.emit("on_epoch_start", epoch)
        else:  # resumed in the middle of this epoch: draw its order again
            t.train_batches.order.set_state(state.order_rng)
        started = time.perf_counter()
        train(t, state, stop)
        test_loss, accuracy = test(t.test_batches, t.model, t.loss_fn, t.bf16)
        t.end_epoch(state, test_loss, accuracy, time.perf_counter() - started, stop)


def train(t: Trainer, state: TrainState, stop: threading.Event) -> None:
    """One epoch of training steps, from state.batch on (the Quickstart's train())."""
    t.trained.train()
    for X, y in t.train_batches.iterate(state.batch):
        loss = step(t, X, y, state.batch)
        state.step_done(loss * t.train_batches.share(state.batch, len(X)) if t.world.distributed else loss)
        t.after_step(state, loss, len(X), stop)


def step(t: Trainer, X: torch.Tensor, y: torch.Tensor, batch: int) -> torch.Tensor:
    """Forward, loss, backward, optimizer and scheduler step; returns the batch's (detached) loss."""
    with torch.autocast(t.device.type, dtype=torch.bfloat16, enabled=t.bf16):
        pred = t.trained(X)
        loss = t.loss_fn(pred, y)
    check_finite(loss, batch)
    if t.world.distributed:  # DDP averages the ranks' gradients: weigh each by its share of the batch
        (loss * t.train_batches.share(batch, len(X))).backward()
    else:
        loss.backward()
    t.optimizer.step()
    t.optimizer.zero_grad()
    t.scheduler.step()
    return loss.detach()


def test(batches: Batches, model: nn.Module, loss_fn: LossFn, bf16: bool = False) -> tuple[float, float]:
    """Average loss per sample and accuracy (a fraction) over a split (this rank's part of it)."""
    model.eval()
    test_loss, correct, size = 0.0, 0, 0
    with torch.inference_mode():
        for X, y in batches:
            if len(X) == 0:  # this rank's part of a batch smaller than the number of ranks
                continue
            with torch.autocast(batches.device.type, dtype=torch.bfloat16, enabled=bf16):
                pred = model(X)
                test_loss += loss_fn(pred, y).item() * len(X)
            correct += int((pred.argmax(1) == y).sum().item())
            size += len(X)
    return (test_loss / size, correct / size) if size else (0.0, 0.0)  # (a rank may have no test samples)


def predict(model: nn.Module, image: torch.Tensor, classes: list[str], actual: int | None, index: int) -> Prediction:
    """The class of one image and every class's softmax probability."""
    model.eval()
    device = next(iter(model.parameters()), torch.empty(0)).device
    with torch.inference_mode():
        probabilities = model(image.unsqueeze(0).to(device)).softmax(1)[0].tolist()
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    return Prediction(
        index=index,
        predicted=classes[best],
        actual=classes[actual] if actual is not None else None,
        probabilities=dict(zip(classes, probabilities)),
    )
