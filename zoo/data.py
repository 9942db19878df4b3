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


#: A batch-level random transform: augment(images (N, C, H, W), generator) -> images. One that also
#: has draw()/apply() (a Drawn augmentation) gets its random numbers for a whole epoch at once, and
#: may change the labels too (mixes_labels, apply_labels: MixUp).
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class Drawn:
    """An augmentation in two halves: draw(n, generator) takes a batch's random numbers on the host
    (tensors whose last dimension is the sample), apply(images, numbers) uses them on the images'
    device. Batches draws a whole epoch's numbers in one go, in the order batch by batch would, and
    moves them to the device in one copy: the same numbers as drawing per batch, and no step that
    waits for a host-to-device copy."""

    parts = 1  # how many tensors draw() returns
    mixes_labels = False  # True: apply_labels turns the labels into class probabilities (N, classes)

    def draw(self, n: int, generator: torch.Generator) -> list[torch.Tensor]:
        raise NotImplementedError

    def apply(self, images: torch.Tensor, numbers: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def apply_labels(self, labels: torch.Tensor, numbers: list[torch.Tensor]) -> torch.Tensor:
        return labels

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(images, [n.to(images.device) for n in self.draw(len(images), generator)])


class RandomHflip(Drawn):
    """Mirror a random half of the images left to right."""

    def draw(self, n: int, generator: torch.Generator) -> list[torch.Tensor]:
        return [torch.rand(n, generator=generator)]

    def apply(self, images: torch.Tensor, numbers: list[torch.Tensor]) -> torch.Tensor:
        flip = numbers[0] < 0.5
        return torch.where(flip[:, None, None, None], images.flip(-1), images)


class RandomShift(Drawn):
    """Move each image by up to `pixels` in x and y (independently per image), filling with zeros."""

    def __init__(self, pixels: int) -> None:
        self.pixels = pixels

    def draw(self, n: int, generator: torch.Generator) -> list[torch.Tensor]:
        return [torch.randint(0, 2 * self.pixels + 1, (2, n), generator=generator)]

    def apply(self, images: torch.Tensor, numbers: list[torch.Tensor]) -> torch.Tensor:
        n, c, h, w = images.shape
        pixels, device = self.pixels, images.device
        padded = torch.nn.functional.pad(images, (pixels, pixels, pixels, pixels))
        dy, dx = numbers[0]
        rows = (dy[:, None] + torch.arange(h, device=device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=device))[:, None, None, :]
        return padded[torch.arange(n, device=device)[:, None, None, None], torch.arange(c, device=device)[None, :, None, None], rows, cols]


class MixUp(Drawn):
    """mixup (Zhang et al., 2018): each image becomes lam * itself + (1 - lam) * the batch's previous
    image, and its label the same mix of the two one-hot labels; lam ~ Beta(alpha, alpha), one per batch
    as in the paper (a lam per image trained worse here: docs/performance.md). Training then needs a loss
    that takes class probabilities as targets (torch's CrossEntropyLoss does). The partner is the previous
    image of the whole batch when batches are reshuffled every epoch (shuffled=True: the pairs change with
    the order), else an image drawn at random from the batch; the ranks of a distributed run draw the same
    numbers, so they mix the same pairs. A batch of one image has no partner and is left as it is."""

    mixes_labels = True

    def __init__(self, alpha: float, classes: int, shuffled: bool = True) -> None:
        self.alpha, self.classes, self.shuffled = alpha, classes, shuffled
        self.parts = 1 if shuffled else 2

    def draw(self, n: int, generator: torch.Generator) -> list[torch.Tensor]:
        import numpy as np

        seed = int(torch.randint(0, 2**62, (1,), generator=generator))  # torch has no Beta that takes a generator
        lam = torch.full((n,), float(np.random.default_rng(seed).beta(self.alpha, self.alpha)))
        return [lam] if self.shuffled else [lam, torch.randperm(n, generator=generator)]

    def _partners(self, batch: torch.Tensor, numbers: list[torch.Tensor]) -> torch.Tensor:
        return batch.roll(1, 0) if self.shuffled else batch[numbers[1]]

    def apply(self, images: torch.Tensor, numbers: list[torch.Tensor]) -> torch.Tensor:
        lam = numbers[0].view(-1, *[1] * (images.dim() - 1)).to(images.dtype)
        return torch.lerp(self._partners(images, numbers), images, lam)  # lam * images + (1 - lam) * partners, in one pass

    def apply_labels(self, labels: torch.Tensor, numbers: list[torch.Tensor]) -> torch.Tensor:
        lam = numbers[0][:, None]
        one_hot = labels if labels.dim() == 2 else torch.nn.functional.one_hot(labels.long(), self.classes)
        one_hot = one_hot.to(torch.promote_types(one_hot.dtype, torch.float32))  # integer or half probabilities too
        return torch.lerp(self._partners(one_hot, numbers), one_hot, lam.to(one_hot.dtype))


class Compose(Drawn):
    """Several Drawn augmentations, one after the other."""

    def __init__(self, augments: list[Drawn]) -> None:
        self.augments = augments
        self.parts = sum(augment.parts for augment in augments)
        self.mixes_labels = any(augment.mixes_labels for augment in augments)

    def draw(self, n: int, generator: torch.Generator) -> list[torch.Tensor]:
        return [numbers for augment in self.augments for numbers in augment.draw(n, generator)]

    def apply(self, images: torch.Tensor, numbers: list[torch.Tensor]) -> torch.Tensor:
        for augment, own in self._each(numbers):
            images = augment.apply(images, own)
        return images

    def apply_labels(self, labels: torch.Tensor, numbers: list[torch.Tensor]) -> torch.Tensor:
        for augment, own in self._each(numbers):
            labels = augment.apply_labels(labels, own)
        return labels

    def _each(self, numbers: list[torch.Tensor]) -> Iterator[tuple[Drawn, list[torch.Tensor]]]:
        """Each augmentation with its own part of the drawn numbers."""
        taken = 0
        for augment in self.augments:
            yield augment, numbers[taken : taken + augment.parts]
            taken += augment.parts


random_hflip = RandomHflip()


def random_shift(pixels: int) -> RandomShift:
    return RandomShift(pixels)


def compose(*augments: Augment) -> Augment | None:
    if not augments:
        return None
    if all(isinstance(augment, Drawn) for augment in augments):
        return Compose(list(augments))  # type: ignore[arg-type]

    def apply(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for augment in augments:
            images = augment(images, generator)
        return images

    return apply


class EpochDraws:
    """A Drawn augmentation's random numbers for batches first, first+1, ... of an epoch, on the
    device, and the generator's state before any batch's draws (what a checkpoint or a rewind needs
    to draw them again): kept every KEEP_STATE_EVERY batches, the rest drawn again from there."""

    KEEP_STATE_EVERY = 32  # a generator state is 5 KB: one per batch would be 300 MB an epoch at batch size 1

    def __init__(self, augment: Drawn, generator: torch.Generator, sizes: list[int], first: int, device: torch.device) -> None:
        self.augment, self.sizes, self.first = augment, sizes, first
        self.states: dict[int, torch.Tensor] = {}
        drawn = []
        for offset, size in enumerate(sizes):
            if offset % self.KEEP_STATE_EVERY == 0:
                self.states[offset] = generator.get_state()
            drawn.append(augment.draw(size, generator))
        self.states[len(sizes)] = generator.get_state()
        self.offsets = [0]
        for size in sizes:
            self.offsets.append(self.offsets[-1] + size)
        pinned = device.type == "cuda"
        self.numbers = [_to_device(torch.cat([batch[i] for batch in drawn], dim=-1), device, pinned) for i in range(augment.parts)] if drawn else []

    def apply(self, images: torch.Tensor, labels: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch `index`'s images, and its labels (class probabilities where the augmentation mixes them)."""
        start, stop = self.offsets[index - self.first], self.offsets[index - self.first + 1]
        numbers = [numbers[..., start:stop] for numbers in self.numbers]
        return self.augment.apply(images, numbers), self.augment.apply_labels(labels, numbers)

    def covers(self, index: int) -> bool:
        return 0 <= index - self.first <= len(self.sizes)

    def state_before(self, index: int) -> torch.Tensor:
        offset = index - self.first
        if offset in self.states:
            return self.states[offset]
        kept = offset - offset % self.KEEP_STATE_EVERY
        generator = torch.Generator()
        generator.set_state(self.states[kept])
        for size in self.sizes[kept:offset]:
            self.augment.draw(size, generator)
        return generator.get_state()


def _to_device(numbers: torch.Tensor, device: torch.device, pinned: bool) -> torch.Tensor:
    """One host-to-device copy that the host does not wait for (from pinned memory)."""
    return numbers.pin_memory().to(device, non_blocking=True) if pinned else numbers.to(device)


def _rows(tensor: torch.Tensor, order: torch.Tensor | None, start: int, stop: int) -> torch.Tensor:
    """Rows start:stop of an epoch: a view in the data's own order, else gathered by index_select
    (a third of the time of indexing with a tensor, on the CPU)."""
    return tensor[start:stop] if order is None else tensor.index_select(0, order[start:stop])


def _to_float(images: torch.Tensor) -> torch.Tensor:
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    return images.float()


def border_mean(images: torch.Tensor) -> float:
    """The mean of the outermost pixels of images (N, C, H, W) in [0, 1]: a picture's background."""
    return float(torch.cat([images[..., 0, :].flatten(), images[..., -1, :].flatten(), images[..., :, 0].flatten(),
                            images[..., :, -1].flatten()]).mean())


def background(split: Dataset, normalization: tuple[float, float] | None = None, samples: int = 256) -> str | None:
    """"light" or "dark": the background of the training images (their first `samples`), which zoo predict gives a picture
    of a garment photographed on white before it reaches a model trained on FashionMNIST's black. None: not images."""
    try:
        if isinstance(split, TensorSplit):
            images = _to_float(split.images[:samples])
        else:
            with torch.random.fork_rng(devices=[]):  # an item's random transform must not move the run's random numbers
                images = torch.stack([split[index][0] for index in range(min(samples // 16, len(split)))])
        mean, std = normalization or (0.0, 1.0)  # pixels as a picture has them: standardised ones put back in [0, 1]
        return "light" if border_mean(images * std + mean) > 0.5 else "dark"
    except (TypeError, ValueError, IndexError, RuntimeError):  # not image tensors (the contract check has said so already)
        return None


def why_not_mixable(split: Dataset) -> str | None:
    """Why MixUp cannot follow this training split's augmentation (None: it can): it needs whole batches
    in memory, and an augmentation that draws its numbers as a Drawn does."""
    if not isinstance(split, TensorSplit):
        return "is not held in memory (a zoo.data.TensorSplit)"
    if not (split.augment is None or isinstance(split.augment, Drawn)):
        return "has an augmentation that is a plain function, not a zoo.data.Drawn"
    return None


def stratified_order(labels: torch.Tensor, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """A shuffled order in which every batch holds each class in proportion to the split (a 256-batch of FashionMNIST:
    24 to 27 of each class, where a plain shuffle gives 14 to 38): less noise in each step's gradient. Each class's
    images, shuffled, are spread evenly over the epoch by jittered ranks, and each batch is then shuffled within
    itself, so that neighbours (mixup's partners) are of one class as often as chance has it. Measured on the tuned
    recipe: +0.11 points over 10 seeds (docs/performance.md, ninth round)."""
    labels = labels.cpu()
    count = len(labels)
    shuffled = torch.randperm(count, generator=generator)
    jitter = torch.rand(count, generator=generator, dtype=torch.float64)
    keys = torch.empty(count, dtype=torch.float64)
    for label in labels.unique():
        members = shuffled[labels[shuffled] == label]
        keys[members] = (torch.arange(len(members), dtype=torch.float64) + jitter[members]) / len(members)
    order = torch.argsort(keys)
    within = torch.rand(count, generator=generator, dtype=torch.float64)
    return order[torch.argsort(torch.arange(count, dtype=torch.float64).div_(batch_size).floor_() + within)]


class Batches:
    """(X, y) batches of one split on one device, in order or reshuffled each epoch by `order`;
    a TensorSplit's augmentation applies when `augment` is a generator (training, not testing),
    followed by `mix` (the run's MixUp, which needs the split's augmentation, if any, to be Drawn).

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
        mix: Drawn | None = None,
        stratify: bool = False,
        classes: int | None = None,
    ) -> None:
        self.split = split
        self.classes = classes  # a loaded batch's class numbers are checked against it on the host, before a GPU's loss asserts
        self.batch_size = batch_size
        self.device = device
        self.shuffle = shuffle
        if stratify and not (shuffle and isinstance(split, TensorSplit)):
            raise ValueError("stratified batches need shuffle and a training split held in memory (a TensorSplit)")
        self.stratify = stratify
        self.order = order if order is not None else torch.Generator().manual_seed(0)
        self.num_samples = len(split)  # type: ignore[arg-type]
        self.rank, self.ranks = shard
        self.tensors = split.to(device) if isinstance(split, TensorSplit) else None
        self.transform = split.augment if augment is not None and isinstance(split, TensorSplit) else None
        if mix is not None:
            why = "it is a test split (no augment generator)" if augment is None else why_not_mixable(split)
            if why:
                raise ValueError(f"mixing needs a split held in memory (a TensorSplit) whose augmentation, if any, is Drawn: {why}")
            self.transform = compose(*filter(None, [self.transform, mix]))
        self.augment = augment
        self.draws: EpochDraws | None = None

    def __len__(self) -> int:
        return -(-self.num_samples // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.iterate()

    def iterate(self, first: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The epoch's batches (this rank's part of each) from batch `first` on. The order is drawn
        from the `order` generator as it is now (so a resume sets it to the epoch's start first);
        augmentation draws from its own generator, as batch by batch would, when this is called."""
        self.draws = None
        if self.tensors is None:
            return self._loaded(first)
        order = self._order().to(self.device) if self.shuffle else None
        if isinstance(self.transform, Drawn):  # the epoch's random numbers, now, in one copy to the device
            sizes = [self.batch_size_at(batch) for batch in range(first, len(self))]
            self.draws = EpochDraws(self.transform, self.augment, sizes, first, self.device)  # type: ignore[arg-type]
        return self._sliced(first, order, self.draws)

    def _order(self) -> torch.Tensor:
        if self.stratify:
            return stratified_order(self.split.labels, self.batch_size, self.order)  # type: ignore[attr-defined]
        return torch.randperm(self.num_samples, generator=self.order)

    def _loaded(self, first: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        loader = DataLoader(self.split, batch_size=self.batch_size, shuffle=self.shuffle, generator=self.order)
        for index, (X, y) in enumerate(loader):
            if index >= first:
                part = self._part(len(X))
                labels = torch.as_tensor(y)
                if self.classes is not None and labels.ndim == 1 and len(labels) and not labels.is_floating_point():
                    outside = labels[(labels < 0) | (labels >= self.classes)]
                    if len(outside):  # cross-entropy's own words on a CPU, which zoo.contract reads as the dataset's fault
                        raise IndexError(f"Target {int(outside[0])} is out of bounds (the dataset has {self.classes} classes)")
                yield X[part].to(self.device), labels[part].to(self.device)

    def _sliced(self, first: int, order: torch.Tensor | None, draws: EpochDraws | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        images, labels = self.tensors  # type: ignore[misc]
        for batch, start in enumerate(range(first * self.batch_size, self.num_samples, self.batch_size), start=first):
            stop = min(start + self.batch_size, self.num_samples)
            part = self._part(stop - start)
            if self.transform is None:  # only this rank's part
                X, y = _rows(images, order, start + part.start, start + part.stop), _rows(labels, order, start + part.start, start + part.stop)
            else:  # the whole batch, so every rank draws the same numbers
                X, y = _rows(images, order, start, stop), _rows(labels, order, start, stop)
                X, y = draws.apply(X, y, batch) if draws is not None else (self.transform(X, self.augment), y)  # type: ignore[misc,arg-type]
                X, y = X[part], y[part]
            yield X, y

    def positioned(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """The batches in order (a test split), each with the split's index of this rank's first sample of it."""
        for batch, (X, y) in enumerate(self.iterate()):
            yield batch * self.batch_size + self._part(self.batch_size_at(batch)).start, X, y

    def augment_state(self, batch: int) -> torch.Tensor | None:
        """The augmentation generator as it was before batch `batch` drew its numbers (a checkpoint
        after `batch` steps saves it; a resume or a rewind draws from it again)."""
        if self.augment is None:
            return None
        if self.draws is not None and self.draws.covers(batch):
            return self.draws.state_before(batch)
        return self.augment.get_state()

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
