"""Learning-rate schedules `constant`, `step`, `cosine` and `one-cycle`.

Every schedule is stepped once per training step (not per epoch), so all four are written in
steps; the epoch-based settings below are converted with the run's steps per epoch.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

import zoo
from zoo.registry import NoParams


def build_constant(params: NoParams, optimizer, steps_per_epoch: int, epochs: int):
    """The optimizer's learning rate throughout (the Quickstart's)."""
    from torch.optim.lr_scheduler import ConstantLR

    return ConstantLR(optimizer, factor=1.0, total_iters=0)


class StepParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    every_epochs: PositiveInt = 10
    gamma: float = Field(0.1, gt=0, le=1)


def build_step(params: StepParams, optimizer, steps_per_epoch: int, epochs: int):
    """Multiply the learning rate by gamma every `every_epochs` epochs."""
    from torch.optim.lr_scheduler import StepLR

    return StepLR(optimizer, step_size=params.every_epochs * steps_per_epoch, gamma=params.gamma)


class CosineParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    min_lr: float = Field(0.0, ge=0)


def build_cosine(params: CosineParams, optimizer, steps_per_epoch: int, epochs: int):
    """Cosine decay from the optimizer's learning rate to min_lr over the whole run."""
    from torch.optim.lr_scheduler import CosineAnnealingLR

    return CosineAnnealingLR(optimizer, T_max=max(steps_per_epoch * epochs, 1), eta_min=params.min_lr)


class OneCycleParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    max_lr: float = Field(0.1, gt=0, allow_inf_nan=False)
    warmup: float = Field(0.25, gt=0, lt=1)
    """Fraction of the run spent rising to max_lr."""
    div_factor: float = Field(25.0, ge=1)
    final_div_factor: float = Field(1e4, ge=1)
    cycle_momentum: bool = False


def build_one_cycle(params: OneCycleParams, optimizer, steps_per_epoch: int, epochs: int):
    """Smith's one-cycle policy: warm up to max_lr, then anneal far below the start."""
    from torch.optim.lr_scheduler import OneCycleLR

    total = max(steps_per_epoch * epochs, 2)
    # A warm-up of exactly one step is a phase of no length, which torch divides by: start the anneal at once instead.
    warmup = params.warmup if params.warmup * total != 1 else params.warmup * (1 - 1e-6)
    return OneCycleLR(
        optimizer,
        max_lr=params.max_lr,
        total_steps=total,
        pct_start=warmup,
        div_factor=params.div_factor,
        final_div_factor=params.final_div_factor,
        cycle_momentum=params.cycle_momentum,
    )


@zoo.hookimpl
def register_schedulers(register):
    register("constant", build_constant)
    register("step", build_step, params=StepParams)
    register("cosine", build_cosine, params=CosineParams)
    register("one-cycle", build_one_cycle, params=OneCycleParams)
