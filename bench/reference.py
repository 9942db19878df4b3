"""The reference epoch: the unit in which zoo states the cost of a recipe, whatever the machine.

One epoch of the Quickstart's steps (mlp-512, batch 64, SGD lr=1e-3, float32) written by hand over
in-memory tensors, then the test pass in batches of 1000. A recipe's whole-process wall time divided by
this, timed in the same turn on the same machine, is comparable across machines; seconds are not.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn


def load_split(root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One FashionMNIST split from torchvision's layout (see bench.torchvision_root), pixels in [0, 1]."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    raw = root / "FashionMNIST" / "raw"
    prefix = "train" if train else "t10k"
    images = read_image_file(str(raw / f"{prefix}-images-idx3-ubyte"))
    labels = read_label_file(str(raw / f"{prefix}-labels-idx1-ubyte"))
    return images.float().div(255).unsqueeze(1), labels


class ReferenceLoop:
    """The hand-written loop, its model and optimizer kept between epochs (as training would)."""

    def __init__(self, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor], seed: int = 0) -> None:
        import quickstart  # bench/ is on sys.path when bench.py runs

        (self.X, self.y), (self.X_test, self.y_test) = train, test
        torch.manual_seed(seed)
        self.model = quickstart.NeuralNetwork()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-3)
        self.loss_fn = nn.CrossEntropyLoss()

    def epoch(self) -> float:
        """Seconds for one train pass and one test pass."""
        started = time.perf_counter()
        self.model.train()
        for i in range(0, len(self.X), 64):
            loss = self.loss_fn(self.model(self.X[i : i + 64]), self.y[i : i + 64])
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad()
        self.model.eval()
        with torch.inference_mode():
            for i in range(0, len(self.X_test), 1000):
                self.loss_fn(self.model(self.X_test[i : i + 1000]), self.y_test[i : i + 1000]).item()
        return time.perf_counter() - started
