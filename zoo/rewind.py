"""A non-finite loss, seen at a sync point rather than at its step: no step waits for the host to
check its loss (zoo.stops.Health watches on the device), so the loop finds out later, at the next
log point, checkpoint or epoch end. Then it puts the training back to the last point known healthy
and takes the steps from there again, each one checked, and stops before the first bad step
changes anything: the weights and optimizer state end exactly as if every step had been checked.

The healthy point is kept in memory (one copy of the weights, the optimizer and scheduler states,
the random states and the place in the epoch), renewed at every sync point that found the steps
healthy: a rewind takes at most `log_every` steps again.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import torch

from .collectives import global_mean
from .state import RankState
from .stops import NonFiniteLoss, check_finite
from .train import record_step, step

if TYPE_CHECKING:
    from .runner import Trainer
    from .state import TrainState


@dataclass
class Healthy:
    """The training after step `batch` of the epoch in progress, every step's loss finite so far."""

    batch: int
    global_step: int
    loss_sum: torch.Tensor
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    random: RankState
    augment: torch.Tensor | None

    @classmethod
    def take(cls, t: Trainer, state: TrainState, kept: Healthy | None = None) -> Healthy:
        """Copies on the device, no host sync, written into `kept`'s tensors where they fit (no new
        memory at each log point): cheap enough for every log point."""
        return cls(
            state.batch,
            state.global_step,
            _refresh(kept and kept.loss_sum, state.loss_sum),
            _refresh(kept and kept.model, dict(t.model.state_dict())),
            _refresh(kept and kept.optimizer, t.optimizer.state_dict()),
            _refresh(kept and kept.scheduler, t.scheduler.state_dict()),
            RankState.capture(t.device),
            t.train_batches.augment_state(state.batch),
        )

    def restore(self, t: Trainer, state: TrainState) -> None:
        t.optimizer.zero_grad(set_to_none=True)  # (a captured step leaves its gradients in place)
        t.model.load_state_dict(self.model)
        t.optimizer.load_state_dict(copy.deepcopy(self.optimizer))
        t.scheduler.load_state_dict(copy.deepcopy(self.scheduler))
        self.random.restore(t.device)
        state.batch, state.global_step, state.loss_sum = self.batch, self.global_step, self.loss_sum.clone()
        if state.order_rng is not None:
            t.train_batches.order.set_state(state.order_rng)
        if self.augment is not None and t.train_batches.augment is not None:
            t.train_batches.augment.set_state(self.augment)


def rewind(t: Trainer, state: TrainState, seen_at: int) -> NoReturn:
    """Some step up to global step `seen_at` had a non-finite loss: from the last healthy point,
    the same steps again, each checked before its backward, raising NonFiniteLoss at the first bad
    one (its weights untouched)."""
    assert t.healthy is not None, "a healthy point is taken when an epoch's training starts"
    t.healthy.restore(t, state)
    t.health.reset()
    for X, y in t.train_batches.iterate(state.batch):
        if state.global_step >= seen_at:
            break
        loss = step(t, X, y, state.batch, check=lambda loss, batch: _check_everywhere(t, loss, batch))
        record_step(t, state, loss, len(X))
    # Not seen again (a nondeterministic kernel?): stop here, where every step taken again was finite.
    raise NonFiniteLoss(state.batch, float("nan"), unconfirmed_from=t.healthy.global_step)


def _check_everywhere(t: Trainer, loss: torch.Tensor, batch: int) -> None:
    """check_finite, agreed by every rank (so all stop at the same step, none waits in a collective)."""
    if not t.world.distributed:
        return check_finite(loss, batch)
    value = loss.detach().float().item()
    if global_mean(t.world, [float(math.isfinite(value))], 1.0, t.device)[0] < 1:
        raise NonFiniteLoss(batch, value if not math.isfinite(value) else float("nan"))
    return None


def _refresh(kept: Any, fresh: Any) -> Any:
    """A copy of `fresh` (a state dict, or any nesting of dicts, lists and tensors), written into
    the tensors of `kept`, an earlier copy, where they have the same shape, type and device."""
    if isinstance(fresh, torch.Tensor):
        same = isinstance(kept, torch.Tensor) and (kept.shape, kept.dtype, kept.device) == (fresh.shape, fresh.dtype, fresh.device)
        return kept.copy_(fresh) if same else fresh.detach().clone()
    if isinstance(fresh, dict):
        kept = kept if isinstance(kept, dict) else {}
        return {key: _refresh(kept.get(key), value) for key, value in fresh.items()}
    if isinstance(fresh, list):
        kept = kept if isinstance(kept, list) and len(kept) == len(fresh) else [None] * len(fresh)
        return [_refresh(old, value) for old, value in zip(kept, fresh)]
    return copy.deepcopy(fresh)
