"""The dataset's side of the plugin contract, checked before the first batch goes through the model: image tensors of
the declared input_shape and whole-number labels within the classes. A dataset that breaks it would otherwise be
reported as the model's fault (a dtype or shape error in its first layer), the loss's (a float or out-of-range target)
or torch's (default_collate's traceback for a PIL image)."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

from .contracts import DatasetSplits
from .data import TensorSplit
from .errors import ZooError, spoken

CHECK_BATCH = 2  # samples of the first batch checked (zoo.contract), and the items of a split not held in memory looked at here


def check_samples(dataset: str, splits: DatasetSplits) -> None:
    """Both splits against input_shape and the classes; `dataset` names the plugin's component in the messages. The
    random state is put back: an item's random transform must not move the run's numbers."""
    with torch.random.fork_rng(devices=[]):
        _check_splits(dataset, splits)


def _check_splits(dataset: str, splits: DatasetSplits) -> None:
    classes = len(splits.classes)
    for name, split in (("training", splits.train), ("test", splits.test)):
        if isinstance(split, TensorSplit):
            _check_images(dataset, name, split.images[:1], tuple(split.images.shape[1:]), splits.input_shape, held=True)
            _check_labels(dataset, name, split.labels, classes)
            continue
        labels = []
        for item in (split[index] for index in range(min(CHECK_BATCH, len(split)))):
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise ZooError(f"The {dataset}: its {name} split gives items of type {type(item).__name__}; each item must be a pair "
                               f"(image tensor, label), as torchvision's datasets give with transform=ToTensor().")
            image, label = item
            _check_images(dataset, name, image, tuple(getattr(image, "shape", ())), splits.input_shape, held=False)
            labels.append(_label_values(dataset, name, label, classes))
        if labels:
            _check_labels(dataset, name, torch.cat(labels), classes)


def _check_images(dataset: str, split: str, images: Any, shape: tuple[int, ...], declared: tuple[int, ...], held: bool) -> None:
    if not isinstance(images, torch.Tensor):
        raise ZooError(f"The {dataset}: its {split} split gives images of type {type(images).__name__}, not torch tensors: convert them "
                       f"(torchvision's transforms.ToTensor() does a PIL image or an (H, W, C) uint8 array), or hold the split in a "
                       f"zoo.data.TensorSplit.")
    if shape != tuple(declared):
        raise ZooError(f"The {dataset}: its {split} split gives images of shape {shape}, but the dataset declares input_shape "
                       f"{tuple(declared)}{' (channels, height, width)' if len(declared) == 3 else ''}, which the model is built for; make the two agree.")
    if not held and images.dtype in (torch.uint8, torch.bool):  # pixels as read, without ToTensor (other integers may be a model's ids)
        raise ZooError(f"The {dataset}: its {split} split gives images of dtype {str(images.dtype).removeprefix('torch.')}; they must be "
                       f"float tensors in [0, 1] (torchvision's ToTensor() scales uint8 pixels), or the split held in a zoo.data.TensorSplit, "
                       f"which scales uint8 itself.")


def _label_values(dataset: str, split: str, labels: Any, classes: int) -> torch.Tensor:
    """Labels as whole numbers (a tensor of them; none for class probabilities, which are soft labels), or an error
    saying what they are instead."""
    if isinstance(labels, (np.ndarray, np.generic)):  # a numpy number or array, as a dataset's __getitem__ may give it
        labels = torch.as_tensor(labels)
    if isinstance(labels, torch.Tensor) and labels.is_floating_point() and labels.ndim >= 1 and labels.shape[-1] == classes:
        return torch.empty(0, dtype=torch.long)  # soft labels (class probabilities, as distillation gives): no numbers to check
    if isinstance(labels, torch.Tensor):
        whole = not labels.is_floating_point() and not labels.is_complex() and labels.dtype != torch.bool
    else:
        whole = isinstance(labels, numbers.Integral) and not isinstance(labels, bool)  # an int, a numpy integer
    if not whole:
        kind = str(labels.dtype).removeprefix("torch.") if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ZooError(f"The {dataset}: its {split} split gives labels of type {kind}; labels are class numbers, whole numbers "
                       f"0..{classes - 1} (an int, or an int64 tensor).")
    return labels.reshape(-1).long() if isinstance(labels, torch.Tensor) else torch.tensor([int(labels)])


def _check_labels(dataset: str, split: str, labels: Any, classes: int) -> None:
    """Whole numbers in 0..classes-1 (every label of a split held in memory; the first ones of another)."""
    values = _label_values(dataset, split, labels, classes)
    if values.numel() and (int(values.min()) < 0 or int(values.max()) >= classes):
        low, high = int(values.min()), int(values.max())
        raise ZooError(f"The {dataset}: its {split} split has labels from {low} to {high}, but its {classes} classes are numbered "
                       f"0..{classes - 1} (the first class is label 0).")


def ordered_by_class(split: Any) -> bool:
    """Whether a split held in memory lists its classes one after another (as a folder per class is read): trained in that
    order without shuffling, each stretch of batches sees one class and the model ends up predicting the last one."""
    if not isinstance(split, TensorSplit) or len(split.labels) < 2:
        return False
    labels = split.labels.reshape(-1)
    if labels.is_floating_point():
        return False
    shares = torch.bincount(labels.long() - labels.min()).float() / len(labels)
    chance = float((shares**2).sum())  # how often two neighbours share a class in a shuffled order (0.1 for ten even classes)
    return float((labels[1:] == labels[:-1]).float().mean()) > chance + (1 - chance) / 2


def classes_without_samples(split: Any, classes: list[str]) -> list[str]:
    """The classes a split held in memory has no sample of (an empty folder, say): the model can never learn them."""
    if not isinstance(split, TensorSplit) or not len(split.labels) or split.labels.ndim != 1 or split.labels.is_floating_point():
        return []
    counts = torch.bincount(split.labels.reshape(-1).long(), minlength=len(classes))
    return [str(name) for name, count in zip(classes, counts.tolist()) if count == 0]


def data_notes(dataset: str, splits: DatasetSplits, shuffle: bool) -> list[str]:
    """What a run prints before training about data that will not train well: classes without a sample, and classes
    listed one after another without shuffling."""
    notes = []
    if empty := classes_without_samples(splits.train, list(splits.classes)):
        notes.append(f"the training split of {dataset} has no sample of class(es) {', '.join(empty[:5])}{' and more' if len(empty) > 5 else ''}; "
                     f"the model cannot learn them.")
    if not shuffle and ordered_by_class(splits.train):
        notes.append(f"the training split of {dataset} lists its classes one after another and shuffle is off (as in the Quickstart, whose "
                     f"data comes shuffled): each stretch of batches will see one class. Add {spoken('--shuffle', 'shuffle=True')} "
                     f"(zoo leaderboard: --set shuffle=true).")
    return notes
