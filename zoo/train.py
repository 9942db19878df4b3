"""The training loop, as the PyTorch Quickstart writes it (train(), test()), with plugins where it
had objects and one TrainState that a checkpoint saves and a resume restores.

    for epoch in epochs:             # fit()
        train(...)                   # forward, loss, backward, optimizer step, per batch
        test(...)                    # average loss and accuracy on the test split
        checkpoint, then report      # Trainer.end_epoch()
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
        test_loss, accuracy = test(t.test_batches, t.model, t.loss_fn, t.bf16, t.config.batch_size)
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


def test(batches: Batches, model: nn.Module, loss_fn: LossFn, bf16: bool = False, batch_size: int = 1) -> tuple[float, float]:
    """Average loss and accuracy (a fraction) over a split, as the Quickstart's test() has them: the loss of each batch
    of `batch_size` test samples (the run's; the last one smaller), averaged over those batches. The model sees larger
    batches (batches.batch_size) and each is cut into the Quickstart's; on several ranks each adds its pieces' share of
    them, so that the mean over ranks weighted by their samples (zoo.collectives.global_mean) is the same average (exact
    for a loss that is a mean over samples, as cross-entropy is; one rank is always exact)."""
    model.eval()
    test_loss = loss_sum(batches.device)
    correct, size, total = torch.zeros((), dtype=torch.int64, device=batches.device), 0, batches.num_samples
    with torch.inference_mode():
        for first, X, y in batches.positioned():
            if len(X) == 0:  # this rank's part of a batch smaller than the number of ranks
                continue
            with torch.autocast(batches.device.type, dtype=torch.bfloat16, enabled=bf16):
                pred = model(X)
                add_quickstart_losses(test_loss, loss_fn, pred, y, first, batch_size, total)
            correct += (pred.argmax(1) == y).sum()
            size += len(X)
    if not size:
        return 0.0, 0.0  # (a rank may have no test samples)
    total_loss, right = test_loss.item(), int(correct.item())
    return total_loss / -(-total // batch_size) * (total / size), right / size


def test_batch_size(batch_size: int, about: int = 1000) -> int:
    """The test's batches: about 1000 samples for speed, a whole number of the run's batches, so that each of the
    Quickstart's batches is cut from one of them and its loss computed as the Quickstart computes it."""
    return batch_size * max(1, about // batch_size)


def loss_sum(device: torch.device) -> torch.Tensor:
    """A zero to sum losses into on `device`: float64, as Python's sum would be (MPS has none: float32 there)."""
    return torch.zeros((), dtype=torch.float64 if device.type != "mps" else torch.float32, device=device)


def add_quickstart_losses(into: torch.Tensor, loss_fn: LossFn, logits: torch.Tensor, y: torch.Tensor, first: int, batch_size: int,
                          total: int) -> None:
    """Add to `into`, one by one as the Quickstart does, the losses of its batches in one test batch (starting at sample
    `first` of `total`), each times its share of its batch: over the split, the sum of the Quickstart's batch losses."""
    for start, stop, share in quickstart_batches(first, len(logits), batch_size, total):
        into += loss_fn(logits[start:stop], y[start:stop]).to(into.dtype) * share


def quickstart_batches(first: int, length: int, batch_size: int, total: int) -> Iterator[tuple[int, int, float]]:
    """The pieces of a batch of `length` samples, starting at sample `first` of a split of `total`, that fall into one
    batch each of the Quickstart's (`batch_size`), with the share of that batch each piece is (1.0 when whole)."""
    start = 0
    while start < length:
        index = first + start
        quickstart = index // batch_size
        stop = min((quickstart + 1) * batch_size - first, length)
        yield start, stop, (stop - start) / min(batch_size, total - quickstart * batch_size)
        start = stop


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
