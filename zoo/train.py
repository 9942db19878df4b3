"""The training loop, as the PyTorch Quickstart writes it, with plugins where it had objects."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .contracts import Prediction
from .data import Batches
from .errors import ZooError


class NonFiniteLoss(ZooError):
    """The loss became NaN or infinite; raised before that step touched the weights."""

    exit_code = 3

    def __init__(self, batch: int, value: float) -> None:
        super().__init__(f"the loss became {value} at step {batch}")
        self.batch = batch
        self.value = value


def train(
    batches: Batches,
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    step_end: Callable[[int, torch.Tensor, int], None],
    bf16: bool = False,
    start: int = 0,
    generator_state: torch.Tensor | None = None,
) -> None:
    """One epoch, from batch `start` (after a resume); step_end(batch, loss, len(X)) runs after each step.
    With bf16, the forward pass runs under autocast (bfloat16 matmuls, float32 weights)."""
    model.train()
    for batch, (X, y) in enumerate(batches.iterate(start, generator_state), start=start):
        with torch.autocast(batches.device.type, dtype=torch.bfloat16, enabled=bf16):
            pred = model(X)
            loss = loss_fn(pred, y)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(batch, loss.item())
        if batches.ranks > 1:  # DDP averages the ranks' gradients: weigh each by its share of the batch
            (loss * batches.share(batch, len(X))).backward()
        else:
            loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        step_end(batch, loss.detach(), len(X))


def test(batches: Batches, model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], bf16: bool = False) -> tuple[float, float]:
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
