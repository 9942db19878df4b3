"""How to build a component: call its plugin's factory, and turn any failure or wrong return
type into an error that names the plugin responsible."""

from __future__ import annotations

from typing import Any

from .config import Part
from .contracts import DatasetSplits
from .errors import ZooError, option, raised_in, spoken, strict_plugins


#: How zoo calls each kind's factory (docs/plugins.md), for a factory whose parameters do not fit.
SIGNATURES = {"dataset": "factory(params)", "model": "factory(params, input_shape, num_classes)", "loss": "factory(params)",
              "optimizer": "factory(params, model_parameters)", "scheduler": "factory(params, optimizer, steps_per_epoch, epochs)",
              "reporter": "factory(params)"}


def call_factory(part: Part, *args: Any) -> Any:
    component = part.resolved.component
    try:
        return component.factory(part.params, *args)
    except ZooError:
        raise
    except MemoryError:
        raise ZooError(f"Building {component.kind} {part.resolved.name!r} ({component.owner}) ran out of memory.") from None
    except Exception as error:
        if isinstance(error, TypeError) and error.__traceback__ is not None and error.__traceback__.tb_next is None:
            raise ZooError(  # raised by the call itself, not inside the factory: its parameters are not the contract's
                f"The {component.kind} factory {component.name!r} of {component.owner} cannot be called as "
                f"{SIGNATURES[component.kind]}: {error}. See docs/plugins.md."
            ) from None
        if strict_plugins():
            raise
        raise ZooError(
            f"The {component.kind} {part.resolved.name!r} from {component.owner} failed to build: "
            f"{type(error).__name__}: {error}{raised_in(error, component.factory)}. "
            f"This is a problem in that plugin or in its settings."
        ) from error


def _check(part: Part, value: Any, expected: type | tuple[type, ...], contract: str) -> Any:
    if not isinstance(value, expected):
        component = part.resolved.component
        raise ZooError(
            f"The {component.kind} factory {component.name!r} of {component.owner} returned "
            f"{type(value).__name__}, but must return {contract} (see docs/plugins.md)."
        )
    return value


def build_dataset(part: Part) -> DatasetSplits:
    splits = _check(part, call_factory(part), DatasetSplits, "zoo.DatasetSplits")
    shape = splits.input_shape
    if not (isinstance(shape, (tuple, list)) and shape and all(isinstance(d, int) and d > 0 for d in shape)):
        raise ZooError(f"Dataset {part.resolved.name!r} ({part.resolved.component.owner}) gives input_shape {shape!r}; it must be "
                       f"the shape of one image as a tuple of positive ints, e.g. (1, 28, 28).")
    if not splits.classes or len(splits.test) == 0 or len(splits.train) == 0:
        raise ZooError(f"Dataset {part.resolved.name!r} ({part.resolved.component.owner}) is empty or has no classes.")
    if splits.files is not None and not _json_object(splits.files):
        raise ZooError(f"Dataset {part.resolved.name!r} ({part.resolved.component.owner}) gives files={splits.files!r:.200}; config.json records it, "
                       f"so it must be a dict of JSON values (text, numbers, true/false, lists, dicts), e.g. {{\"train.csv\": {{\"path\": \"/data/train.csv\"}}}}.")
    return splits


def _json_object(value: Any) -> bool:
    import json

    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return isinstance(value, dict)


def build_model(part: Part, input_shape: tuple[int, ...], num_classes: int) -> Any:
    from torch import nn

    model = _check(part, call_factory(part, tuple(input_shape), num_classes), nn.Module, "a torch.nn.Module")
    if not any(p.requires_grad for p in model.parameters()):  # else the optimizer fails with "an empty parameter list"
        raise ZooError(f"The model {part.resolved.name!r} ({part.resolved.component.owner}) has no trainable parameters, so there is "
                       f"nothing to train: register its layers as attributes (self.linear = nn.Linear(...)) or in an nn.ModuleList.")
    return model


def build_loss(part: Part) -> Any:
    loss = call_factory(part)
    if not callable(loss) or isinstance(loss, type):
        component = part.resolved.component
        made = "a class, not an instance of it" if isinstance(loss, type) else type(loss).__name__
        raise ZooError(
            f"The loss factory {component.name!r} of {component.owner} returned {made}, but must return a callable "
            f"loss(logits, targets) -> 0-dimensional tensor, e.g. torch.nn.CrossEntropyLoss() (see docs/plugins.md). "
            f"Check that the factory ends with `return`."
        )
    return loss


def build_optimizer(part: Part, parameters: Any) -> Any:
    import torch

    return _check(part, call_factory(part, parameters), torch.optim.Optimizer, "a torch.optim.Optimizer")


def build_scheduler(part: Part, optimizer: Any, steps_per_epoch: int, epochs: int) -> Any:
    from torch.optim.lr_scheduler import LRScheduler

    return _check(part, call_factory(part, optimizer, steps_per_epoch, epochs), LRScheduler, "a torch.optim.lr_scheduler.LRScheduler")


REPORTER_METHODS = ("on_run_start", "on_epoch_start", "on_batch_end", "on_step", "on_epoch_end", "on_run_end", "on_prediction", "close")


def build_reporter(part: Part) -> Any:
    reporter = call_factory(part)
    if reporter is None or isinstance(reporter, type) or not any(callable(getattr(reporter, m, None)) for m in REPORTER_METHODS):
        component = part.resolved.component
        raise ZooError(
            f"The reporter factory {component.name!r} of {component.owner} returned "
            f"{'a class, not an instance of it' if isinstance(reporter, type) else type(reporter).__name__}, but must return an "
            f"object with zoo.Reporter's methods (subclass zoo.Reporter; see docs/plugins.md)."
        )
    return reporter


def check_stratify(config: Any, dataset: Part, splits: DatasetSplits) -> bool:
    """config.stratify, where it can be done: from labels held in memory (that it needs shuffle is checked with the settings)."""
    from .data import TensorSplit

    if not config.stratify:
        return False
    if not isinstance(splits.train, TensorSplit):
        raise ZooError(f"stratify = true needs the training split's labels in memory, but dataset {dataset.resolved.name!r} "
                       f"({dataset.resolved.component.owner}) gives a {type(splits.train).__name__}, not a zoo.data.TensorSplit; "
                       f"leave it off ({spoken('--no-stratify', 'stratify=False')}) for this dataset.")
    return True


def build_mixup(alpha: float, dataset: Part, splits: DatasetSplits, shuffled: bool) -> Any:
    """The run's MixUp (zoo.data), or None when alpha is 0; an error where the training split cannot be mixed."""
    from .data import MixUp, why_not_mixable

    if not alpha:
        return None
    how = why_not_mixable(splits.train)
    if how:
        raise ZooError(
            f"mixup = {alpha} needs whole batches of the training split to mix, but the training split of dataset "
            f"{dataset.resolved.name!r} ({dataset.resolved.component.owner}) {how}. Leave mixup at 0 ({option('--mixup', 0)}) for this dataset."
        )
    return MixUp(alpha, len(splits.classes), shuffled)
