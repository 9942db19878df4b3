"""The training loop, as the PyTorch Quickstart writes it (train(), test()), with plugins where it
had objects and one TrainState that a checkpoint saves and a resume restores.

    for epoch in epochs:             # fit()
        train(...)                   # forward, loss, backward, optimizer step, per batch
        test(...)                    # average loss and accuracy on the test split
        checkpoint, then report      # Trainer.end_epoch()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from .contracts import Prediction
from .data import Batches
from .state import TrainState

if TYPE_CHECKING:
    from .runner import Trainer
    from .stops import StopRequest

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Check = Callable[[torch.Tensor, int], None]


def fit(t: Trainer, state: TrainState, stop: StopRequest) -> None:
    """Every epoch from where `state` is (epoch 1, or a resumed checkpoint) to the last."""
    for epoch in range(state.epoch, t.config.epochs + 1):
        if state.epoch < epoch or state.batch == 0:  # a new epoch
            state.start_epoch(epoch, t.train_batches.order.get_state(), t.device)
            t.events.emit("on_epoch_start", epoch)
        else:  # resumed in the middle of this epoch: draw its order again
            t.train_batches.order.set_state(state.order_rng)
            state.take_up_epoch()
        train(t, state, stop)
        test_loss, accuracy = test(t.test_batches, t.model, t.loss_fn, t.bf16)
        t.end_epoch(state, test_loss, accuracy, state.epoch_seconds, stop)


def train(t: Trainer, state: TrainState, stop: StopRequest) -> None:
    """One epoch of training steps, from state.batch on (the Quickstart's train()). No step waits
    for the host: the loss is read every log_every steps (Trainer.after_step) and at the end."""
    t.trained.train()
    batches = t.train_batches.iterate(state.batch)
    t.mark_healthy(state)  # where a non-finite loss rewinds to (zoo.rewind)
    for X, y in batches:
        loss = t.stepper(X, y, state.batch)  # step(), or its CUDA graph (zoo.graphs)
        record_step(t, state, loss, len(X))
        t.after_step(state, loss, len(X), stop)
    t.read_checked(state)  # were this epoch's steps all finite? (else rewind)


def step(t: Trainer, X: torch.Tensor, y: torch.Tensor, batch: int, check: Check | None = None) -> torch.Tensor:
    """Forward, loss, backward, optimizer and scheduler step; returns the batch's (detached) loss.
    Its finiteness is noted on the device (t.health); `check` stops here instead (zoo.rewind)."""
    with torch.autocast(t.device.type, dtype=torch.bfloat16, enabled=t.bf16):
        pred = t.trained(X)
        loss = t.loss_fn(pred, y)
    if check is not None:
        check(loss, batch)
    t.health.record(loss)
    if t.world.distributed:  # DDP averages the ranks' gradients: weigh each by its share of the batch
        (loss * t.train_batches.share(batch, len(X))).backward()
    else:
        loss.backward()
    with t.optimizer_as():  # as a captured step holds it (zoo.graphs), so every path computes the same
        t.optimizer.step()
    t.optimizer.zero_grad()
    t.scheduler.step()
    return loss.detach()


def record_step(t: Trainer, state: TrainState, loss: torch.Tensor, size: int) -> None:
    """Count the step and add its loss to the epoch's running sum (on the device)."""
    state.step_done(loss * t.train_batches.share(state.batch, size) if t.world.distributed else loss)


def test(batches: Batches, model: nn.Module, loss_fn: LossFn, bf16: bool = False) -> tuple[float, float]:
    """Average loss per sample and accuracy (a fraction) over a split (this rank's part of it),
    summed on the device and read once."""
    model.eval()
    exact = batches.device.type != "mps"  # float64 sums, as Python's would be (MPS has no float64)
    test_loss = torch.zeros((), dtype=torch.float64 if exact else torch.float32, device=batches.device)
    correct, size = torch.zeros((), dtype=torch.int64, device=batches.device), 0
    with torch.inference_mode():
        for X, y in batches:
            if len(X) == 0:  # this rank's part of a batch smaller than the number of ranks
                continue
            with torch.autocast(batches.device.type, dtype=torch.bfloat16, enabled=bf16):
                pred = model(X)
                test_loss += loss_fn(pred, y).to(test_loss.dtype) * len(X)
            correct += (pred.argmax(1) == y).sum()
            size += len(X)
    if not size:
        return 0.0, 0.0  # (a rank may have no test samples)
    total, right = test_loss.item(), int(correct.item())
    return total / size, right / size


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
