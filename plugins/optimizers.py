"""Optimizers `sgd` (torch.optim.SGD, as in the Quickstart: lr=1e-3) and `adamw` (torch.optim.AdamW)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

import zoo


class SGDParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    lr: float = Field(1e-3, gt=0, allow_inf_nan=False)
    momentum: float = Field(0.0, ge=0, allow_inf_nan=False)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self):
        if self.nesterov and self.momentum <= 0:
            raise ValueError("nesterov=true needs momentum > 0")
        return self


def build_sgd(params: SGDParams, model_parameters):
    """Stochastic gradient descent, optionally with (Nesterov) momentum and weight decay."""
    import torch

    return torch.optim.SGD(model_parameters, **params.model_dump())


class AdamWParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    lr: float = Field(1e-3, gt=0, allow_inf_nan=False)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0, allow_inf_nan=False)
    weight_decay: float = Field(0.0, ge=0, allow_inf_nan=False)
    """Decoupled weight decay (AdamW's); 0 makes it Adam."""


def build_adamw(params: AdamWParams, model_parameters):
    """Adam with decoupled weight decay (Loshchilov & Hutter); with weight_decay=0 it is plain Adam."""
    import torch

    return torch.optim.AdamW(model_parameters, lr=params.lr, betas=(params.beta1, params.beta2), eps=params.eps,
                             weight_decay=params.weight_decay)


@zoo.hookimpl
def register_optimizers(register):
    register("sgd", build_sgd, params=SGDParams)
    register("adamw", build_adamw, params=AdamWParams)
