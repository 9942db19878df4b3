"""zoo-convnets: model `small-cnn` (two convolution blocks) and optimizer `adamw`.

Each hook receives `register`; each component is a factory plus a pydantic model of its settings.
torch is imported inside the factories, so `zoo list` stays fast.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

import zoo


class SmallCNNParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: tuple[int, int] = (16, 32)
    """Output channels of the two convolution blocks."""
    hidden: int = Field(128, gt=0)
    """Width of the fully connected layer before the classifier."""
    dropout: float = Field(0.25, ge=0, lt=1)


def build_small_cnn(params: SmallCNNParams, input_shape, num_classes):
    """Two blocks of 3×3 convolution, ReLU and 2×2 max-pooling, then two linear layers."""
    from torch import nn

    channels, height, width = input_shape
    first, second = params.channels
    return nn.Sequential(
        nn.Conv2d(channels, first, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(first, second, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(second * (height // 4) * (width // 4), params.hidden),
        nn.ReLU(),
        nn.Dropout(params.dropout),
        nn.Linear(params.hidden, num_classes),
    )


class AdamWParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lr: float = Field(1e-3, gt=0, allow_inf_nan=False)
    weight_decay: float = Field(0.01, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)


def build_adamw(params: AdamWParams, model_parameters):
    """Adam with decoupled weight decay (torch.optim.AdamW)."""
    import torch

    return torch.optim.AdamW(model_parameters, lr=params.lr, weight_decay=params.weight_decay, betas=params.betas)


@zoo.hookimpl
def register_models(register):
    register("small-cnn", build_small_cnn, params=SmallCNNParams)


@zoo.hookimpl
def register_optimizers(register):
    register("adamw", build_adamw, params=AdamWParams)


@zoo.hookimpl
def register_presets(register):
    register(Path(__file__).with_name("registry.toml"))
