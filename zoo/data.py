"""Batches for the training loop: index slices of one tensor when a split is held in memory,
a DataLoader for any other `torch.utils.data.Dataset`."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset


class TensorSplit(Dataset):
    """A whole split in two tensors: images (N, C, H, W), uint8 (scaled to [0, 1] like ToTensor) or
    float, and int labels (N,). Indexing gives (image tensor, int label), as any Dataset."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augment: Augment | None = None) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return _to_float(self.images[index]), int(self.labels[index])

    def to(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """All images as float on `device` (done once per run), and the labels."""
        return _to_float(self.images.to(device)), self.labels.to(device)


#: A batch-level random transform: augment(images (N, C, H, W), generator) -> images.
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def random_hflip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the images left to right."""
    flip = torch.rand(len(images), generator=generator).to(images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def random_shift(pixels: int) -> Augment:
    """Move each image by up to `pixels` in x and y (independently per image), filling with zeros."""

    def shift(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, c, h, w = images.shape
        padded = torch.nn.functional.pad(images, (pixels, pixels, pixels, pixels))
        dy, dx = (torch.randint(0, 2 * pixels + 1, (2, n), generator=generator)).to(images.device)
        rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, None, :]
        return padded[torch.arange(n, device=images.device)[:, None, None, None], torch.arange(c, device=images.device)[None, :, None, None], rows, cols]

    return shift


def compose(*augments: Augment) -> Augment | None:
    if not augments:
        return None

    def apply(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for augment in augments:
            images = augment(images, generator)
        return images

    return apply


def _to_float(images: torch.Tensor) -> torch.Tensor:
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    return images.float()


class Batches:
    """(X, y) batches of one split on one device, in order or reshuffled each epoch by `order`;
    a TensorSplit's augmentation applies when `augment` is a generator (training, not testing).

    With shard=(rank, ranks), every batch is the same global batch on each rank, and rank r takes
    its r-th contiguous part: the ranks together see exactly what one process would, in the same
    order, and every rank draws the same random numbers (so they never drift apart)."""

    def __init__(
        self,
        split: Dataset,
        batch_size: int,
        device: torch.device,
        shuffle: bool = False,
        order: torch.Generator | None = None,
        augment: torch.Generator | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        self.split = split
        self.batch_size = batch_size
        self.device = device
        self.shuffle = shuffle
        self.order = order if order is not None else torch.Generator().manual_seed(0)
        self.num_samples = len(split)  # type: ignore[arg-type]
        self.rank, self.ranks = shard
        self.tensors = split.to(device) if isinstance(split, TensorSplit) else None
        self.transform = split.augment if augment is not None and isinstance(split, TensorSplit) else None
        self.augment = augment

    def __len__(self) -> int:
        return -(-self.num_samples // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.iterate()

    def iterate(self, first: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The epoch's batches (this rank's part of each) from batch `first` on. The order is drawn
        from the `order` generator as it is now (so a resume sets it to the epoch's start first);
        augmentation draws from its own generator, batch by batch."""
        if self.tensors is None:
            loader = DataLoader(self.split, batch_size=self.batch_size, shuffle=self.shuffle, generator=self.order)
            for index, (X, y) in enumerate(loader):
                if index >= first:
                    part = self._part(len(X))
                    yield X[part].to(self.device), torch.as_tensor(y)[part].to(self.device)
            return
        images, labels = self.tensors
        order = torch.randperm(self.num_samples, generator=self.order).to(self.device) if self.shuffle else None
        for start in range(first * self.batch_size, self.num_samples, self.batch_size):
            stop = min(start + self.batch_size, self.num_samples)
            part = self._part(stop - start)
            if self.transform is not None:  # the whole batch, so every rank draws the same numbers
                rows = slice(start, stop) if order is None else order[start:stop]
                yield self.transform(images[rows], self.augment)[part], labels[rows][part]
            elif order is None:
                yield images[start + part.start : start + part.stop], labels[start + part.start : start + part.stop]
            else:
                index = order[start + part.start : start + part.stop]
                yield images[index], labels[index]

    def batch_size_at(self, batch: int) -> int:
        """The size of global batch `batch` (all ranks together): batch_size, less for the last."""
        return min(self.batch_size, self.num_samples - batch * self.batch_size)

    def share(self, batch: int, size: int) -> float:
        """How much this rank's `size` samples of batch `batch` weigh against an equal split: DDP
        averages the ranks' gradients, so a mean loss times this gives the whole batch's gradient."""
        return size * self.ranks / self.batch_size_at(batch)

    @property
    def local_samples(self) -> int:
        """How many samples of each epoch this rank sees."""
        parts = (self._part(self.batch_size_at(batch)) for batch in range(len(self)))
        return sum(part.stop - part.start for part in parts)

    def _part(self, size: int) -> slice:
        """This rank's contiguous part of a batch of `size` samples."""
        return slice(size * self.rank // self.ranks, size * (self.rank + 1) // self.ranks)
