"""The training loop, as the PyTorch Quickstart writes it, with plugins where it had objects."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .contracts import Prediction
from .data import Batches


def train(
    batches: Batches,
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    log_every: int,
    log: Callable[[int, float, int, int], None],
    bf16: bool = False,
) -> float:
    """One epoch; calls log(step, loss, seen, size) every `log_every` steps; returns the mean loss.
    With bf16, the forward pass runs under autocast (bfloat16 matmuls, float32 weights)."""
    size = batches.num_samples
    model.train()
    total = torch.zeros((), device=batches.device)
    for batch, (X, y) in enumerate(batches):
        with torch.autocast(batches.device.type, dtype=torch.bfloat16, enabled=bf16):
            pred = model(X)
            loss = loss_fn(pred, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        total += loss.detach()
        if batch % log_every == 0:
            log(batch, loss.item(), (batch + 1) * len(X), size)
    return total.item() / max(len(batches), 1)


def test(batches: Batches, model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], bf16: bool = False) -> tuple[float, float]:
    """Average loss per sample and accuracy (a fraction) over a split."""
    size = batches.num_samples
    model.eval()
    test_loss, correct = 0.0, 0
    with torch.inference_mode():
        for X, y in batches:
            with torch.autocast(batches.device.type, dtype=torch.bfloat16, enabled=bf16):
                pred = model(X)
                test_loss += loss_fn(pred, y).item() * len(X)
            correct += int((pred.argmax(1) == y).sum().item())
    return test_loss / size, correct / size


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
