"""Loss `cross-entropy`: the Quickstart's nn.CrossEntropyLoss."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

import zoo


class CrossEntropyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    label_smoothing: float = Field(0.0, ge=0.0, le=1.0)


def build_cross_entropy(params: CrossEntropyParams):
    """nn.CrossEntropyLoss: softmax + negative log-likelihood of the true class."""
    from torch import nn

    return nn.CrossEntropyLoss(label_smoothing=params.label_smoothing)


@zoo.hookimpl
def register_losses(register):
    register("cross-entropy", build_cross_entropy, params=CrossEntropyParams)
