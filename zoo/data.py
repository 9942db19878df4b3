"""Batches for the training loop: index slices of one tensor when a split is held in memory,
a DataLoader for any other `torch.utils.data.Dataset`."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset


class TensorSplit(Dataset):
    """A whole split in two tensors: images (N, C, H, W), uint8 (scaled to [0, 1] like ToTensor) or
    float, and int labels (N,). Indexing gives (image tensor, int label), as any Dataset."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return _to_float(self.images[index]), int(self.labels[index])

    def to(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """All images as float on `device` (done once per run), and the labels."""
        return _to_float(self.images.to(device)), self.labels.to(device)


def _to_float(images: torch.Tensor) -> torch.Tensor:
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    return images.float()


class Batches:
    """(X, y) batches of one split on one device, in order or reshuffled each epoch by `generator`."""

    def __init__(
        self,
        split: Dataset,
        batch_size: int,
        device: torch.device,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        self.split = split
        self.batch_size = batch_size
        self.device = device
        self.shuffle = shuffle
        self.generator = generator
        self.num_samples = len(split)  # type: ignore[arg-type]
        self.tensors = split.to(device) if isinstance(split, TensorSplit) else None

    def __len__(self) -> int:
        return -(-self.num_samples // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.tensors is None:
            loader = DataLoader(self.split, batch_size=self.batch_size, shuffle=self.shuffle, generator=self.generator)
            for X, y in loader:
                yield X.to(self.device), torch.as_tensor(y).to(self.device)
            return
        images, labels = self.tensors
        if self.shuffle:
            order = torch.randperm(self.num_samples, generator=self.generator).to(self.device)
            for start in range(0, self.num_samples, self.batch_size):
                index = order[start : start + self.batch_size]
                yield images[index], labels[index]
        else:
            for start in range(0, self.num_samples, self.batch_size):
                yield images[start : start + self.batch_size], labels[start : start + self.batch_size]
