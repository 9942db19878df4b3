"""Optimizer `sgd`: torch.optim.SGD, as in the Quickstart (lr=1e-3)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

import zoo


class SGDParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    lr: float = Field(1e-3, gt=0, allow_inf_nan=False)
    momentum: float = Field(0.0, ge=0, allow_inf_nan=False)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0, allow_inf_nan=False)
    #: torch's fused kernel: one pass over every parameter per step instead of several (with momentum, the
    #: optimizer went from about 13% to 4% of a batch-256 MLP step on CPU). Plain SGD computes the same bits
    #: either way; with momentum the rounding differs, so it is off unless a recipe asks (docs/performance.md).
    fused: bool = zoo.added_setting(False)

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self):
        if self.nesterov and self.momentum <= 0:
            raise ValueError("nesterov=true needs momentum > 0")
        return self


def build_sgd(params: SGDParams, model_parameters):
    """Stochastic gradient descent, optionally with (Nesterov) momentum and weight decay."""
    import torch

    # Off means torch's own choice (None), not False: an explicit False would also turn off its default
    # foreach kernel on CUDA, and checkpoints written before the setting existed recorded None.
    return torch.optim.SGD(model_parameters, **params.model_dump(exclude={"fused"}), fused=True if params.fused else None)


@zoo.hookimpl
def register_optimizers(register):
    register("sgd", build_sgd, params=SGDParams)
