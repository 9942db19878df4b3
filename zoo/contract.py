"""The plugin contract, checked at the door: before the first step, one batch goes through the
model and the loss (so a model with the wrong number of logits or a loss that is not one number is
one paragraph naming the plugin, not an IndexError or a silently wrong run); and an exception raised
by plugin code during training becomes a paragraph naming the plugin it came from."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any

import torch

from .errors import ZooError, in_package, option, plugin_package, raised_in, spoken, strict_plugins
from .samples import CHECK_BATCH, check_samples  # CHECK_BATCH: more than one sample, so a squeezed batch dimension shows

if TYPE_CHECKING:
    from .config import Part, ResolvedRun
    from .runner import Trainer



def _who(part: Part) -> str:
    component = part.resolved.component
    return f"{component.kind} {part.resolved.name!r} ({component.owner})"


def first_batch(t: Trainer) -> tuple[torch.Tensor, torch.Tensor]:
    """The first CHECK_BATCH training samples on the run's device, without touching the batch order."""
    size = min(CHECK_BATCH, len(t.data.train))
    if t.train_batches.tensors is not None:
        images, labels = t.train_batches.tensors
        return images[:size], labels[:size]
    from torch.utils.data import default_collate

    X, y = default_collate([t.data.train[i] for i in range(size)])
    return X.to(t.device), torch.as_tensor(y).to(t.device)


def check_one_batch(t: Trainer) -> None:
    """Forward one batch through the model and the loss as training will (same device, precision),
    in eval mode, without gradients and with the random state put back: it changes nothing. The dataset's items are
    checked first (zoo.samples), so that its mistakes are not the model's or the loss's."""
    check_samples(_who(t.resolved.dataset), t.data)
    X, y = first_batch(t)
    was_training = t.model.training
    devices = [t.device] if t.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            t.model.eval()
            with torch.autocast(t.device.type, dtype=torch.bfloat16, enabled=t.bf16):
                logits = _guarded(t.resolved.model, lambda: t.model(X), f"on a batch of shape {tuple(X.shape)}")
                check_logits(t.resolved, logits, len(X), len(t.data.classes), tuple(X.shape[1:]))
                loss = _guarded(t.resolved.loss, lambda: t.loss_fn(logits, y), f"on logits of shape {tuple(logits.shape)}")
                check_finite_logits(t.resolved, X, logits, loss)
                check_loss(t.resolved, loss)
                if getattr(t.train_batches.transform, "mixes_labels", False):  # mixed labels are class probabilities
                    soft = torch.nn.functional.one_hot(y.long(), len(t.data.classes)).float()
                    why = f"mixup = {t.config.mixup} trains with them; {option('--mixup', 0)} turns it off" if t.config.mixup else "the dataset's augmentation mixes labels"
                    loss = _guarded(t.resolved.loss, lambda: t.loss_fn(logits, soft), f"on class-probability targets of shape {tuple(soft.shape)} ({why})")
            check_loss(t.resolved, loss)
    finally:
        t.model.train(was_training)


def _guarded(part: Part, call: Any, where: str) -> Any:
    try:
        return call()
    except ZooError:
        raise
    except Exception as error:
        if strict_plugins():
            raise
        raise ZooError(
            f"The {_who(part)} failed {where}, checked before the first training step: {type(error).__name__}: "
            f"{' '.join(str(error).split())}{raised_in(error, part.resolved.component.factory)}. Fix the plugin ({_shows_where()}), "
            f"or choose another {part.resolved.component.kind}."
        ) from error


def check_logits(resolved: ResolvedRun, logits: Any, batch: int, classes: int, input_shape: tuple[int, ...]) -> None:
    """The model's output must be (batch, classes): one logit per class of this dataset."""
    if not isinstance(logits, torch.Tensor):
        raise ZooError(
            f"The {_who(resolved.model)} returned {type(logits).__name__} from forward; it must return a tensor of logits "
            f"of shape (batch, {classes}). Fix its forward."
        )
    if tuple(logits.shape) == (batch, classes):
        return
    shown = tuple(logits.shape)
    hint = (f"it has {shown[-1]} outputs per image but the dataset {resolved.config.dataset!r} has {classes} classes: build the "
            f"last layer with the factory's num_classes argument instead of a fixed number"
            if len(shown) == 2 and shown[0] == batch else
            "flatten the features and end with a layer of num_classes outputs")
    raise ZooError(
        f"The {_who(resolved.model)} maps a batch of {batch} images of shape {input_shape} to logits of shape {shown}, "
        f"but they must have shape ({batch}, {classes}), one logit per class; {hint}."
    )


def check_finite_logits(resolved: ResolvedRun, X: torch.Tensor, logits: torch.Tensor, loss: Any) -> None:
    """A loss that is not a number on the first batch, from logits that are not either: the data's fault or the
    model's, not the loss's. (Logits of -inf with a finite loss, a model masking classes, are fine.)"""
    if not isinstance(loss, torch.Tensor) or bool(torch.isfinite(loss).all()) or bool(torch.isfinite(logits).all()):
        return
    if not bool(torch.isfinite(X).all()):
        raise ZooError(f"The first batch of the {_who(resolved.dataset)} holds values that are not numbers (NaN or infinite), so the model's "
                       f"logits are not either; fix the data, or the dataset plugin that reads it.")
    raise ZooError(f"The {_who(resolved.model)} gives logits that are not finite numbers (NaN or infinite) for the first batch, before any "
                   f"training step, from finite images: check its initial weights and its forward (a division by zero, the log of 0).")


def check_loss(resolved: ResolvedRun, loss: Any) -> None:
    """The loss must be one finite number, a 0-dimensional tensor (the mean over the batch)."""
    who = _who(resolved.loss)
    if not isinstance(loss, torch.Tensor):
        raise ZooError(f"The {who} returned {type(loss).__name__}; it must return a 0-dimensional tensor (the mean loss "
                       f"over the batch), computed with torch so that it can be backpropagated.")
    if loss.dim() != 0:
        raise ZooError(f"The {who} returned a tensor of shape {tuple(loss.shape)}; it must return one number, a "
                       f"0-dimensional tensor: the mean over the batch (end with .mean(), or use reduction='mean').")
    if not bool(torch.isfinite(loss)):
        raise ZooError(f"The {who} is {loss.item()} on the first batch, before any training step. It must be finite for a "
                       f"freshly built model: check the loss for log(0) or a division by zero, and the data for NaN values.")


def plugin_parts(resolved: ResolvedRun) -> list[Part]:
    return [resolved.dataset, resolved.model, resolved.loss, resolved.optimizer, resolved.scheduler, *resolved.reporters]


def blamed(resolved: ResolvedRun, traceback: TracebackType | None) -> Part | None:
    """The run's component whose plugin code raised: the innermost traceback frame in a module of one."""
    packages = {}
    for part in plugin_parts(resolved):
        packages.setdefault(plugin_package(part.resolved.component.factory), part)
    found = None
    while traceback is not None:
        name = traceback.tb_frame.f_globals.get("__name__", "")
        found = next((part for package, part in packages.items() if in_package(name, package)), found)
        traceback = traceback.tb_next
    return found


def training_failure(error: BaseException, resolved: ResolvedRun, epoch: int, step: int) -> BaseException:
    """An exception raised during training, as one paragraph naming the plugin (the original
    itself under ZOO_STRICT_PLUGINS, for its traceback)."""
    if strict_plugins():
        return error
    part = blamed(resolved, error.__traceback__)
    where = f"at epoch {epoch}, step {step + 1}"
    what = f"{type(error).__name__}: {' '.join(str(error).split()).rstrip('.')}"
    if isinstance(error, IndexError) and str(error).startswith("Target ") and "out of bounds" in str(error):  # cross-entropy's word for it
        message = (f"Training failed {where}: the {_who(resolved.dataset)} gave a label outside its classes ({what}); labels are class "
                   f"numbers from 0 to the number of classes - 1. Fix the dataset's labels.")
    elif part is not None:
        message = (f"Training stopped {where}: the {_who(part)} raised {what}{raised_in(error, part.resolved.component.factory)}. This is a problem in that plugin or in its "
                   f"settings; {_shows_where()}.")
    else:
        parts = ", ".join(_who(p) for p in plugin_parts(resolved)[1:5])
        message = (f"Training failed {where} ({resolved.config.model} on {resolved.config.dataset}): {what}. It came from "
                   f"the training step of {parts}; {_shows_where()}.")
    failure = ZooError(message)
    failure.__cause__ = error
    return failure


def _shows_where() -> str:
    """Where a plugin's own traceback is: the CLI prints it on request, Python holds it as the error's __cause__."""
    return spoken("ZOO_STRICT_PLUGINS=1 or `zoo --traceback` shows the full traceback",
                  "the error's __cause__ holds the plugin's own traceback; ZOO_STRICT_PLUGINS=1 raises it unchanged")


def print_traceback(error: BaseException) -> None:
    """The full chain behind a ZooError (for `zoo --traceback`)."""
    import traceback

    cause = error.__cause__ or error.__context__
    if cause is not None:
        traceback.print_exception(cause, file=sys.stderr)
