"""Model `mlp`: the Quickstart's Flatten + Linear-ReLU stack, at any widths.

The names mlp-<W> (mlp-256, mlp-512, ...) are presets in registry.toml: two hidden layers of W.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field

import zoo
from zoo.errors import ZooError

if TYPE_CHECKING:
    from torch import nn

#: Training holds about this many float32 copies of the weights: the weights, their gradients,
#: the optimizer's state (momentum, or Adam's two moments) and a checkpoint being written.
COPIES_IN_TRAINING = 4


def memory_bytes() -> int:
    """This machine's physical memory (the bound for a model zoo can train here)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30


class MLPParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: `--set model.hidden=[true]` is an error, not width 1

    hidden: Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=0)] = [512, 512]
    """Widths of the hidden layers, input side first; [] is a linear classifier."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Probability of zeroing each hidden activation in training (nn.Dropout after each ReLU)."""


def parameter_count(in_features: int, hidden: list[int], num_classes: int) -> int:
    widths = [in_features, *hidden, num_classes]
    return sum(a * b + b for a, b in zip(widths, widths[1:]))


def build_mlp(params: MLPParams, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Flatten + Linear-ReLU layers; mlp-512 is the Quickstart's 784→512→512→10."""
    in_features = math.prod(input_shape)
    count = parameter_count(in_features, params.hidden, num_classes)
    needed, available = count * 4 * COPIES_IN_TRAINING, memory_bytes()
    if needed > available:
        raise ZooError(
            f"Model mlp with hidden={params.hidden} would have {count:,} parameters: training it needs about "
            f"{needed / 2**30:.1f} GiB (weights, gradients, optimizer state), more than this machine's "
            f"{available / 2**30:.1f} GiB. Choose smaller widths."
        )
    from torch import nn

    class NeuralNetwork(nn.Module):
        """The Quickstart's class, with the widths as a parameter (same attribute names)."""

        def __init__(self) -> None:
            super().__init__()
            self.flatten = nn.Flatten()
            layers: list[nn.Module] = []
            widths = [in_features, *params.hidden]
            for a, b in zip(widths, widths[1:]):
                layers += [nn.Linear(a, b), nn.ReLU()]
                if params.dropout > 0:
                    layers.append(nn.Dropout(params.dropout))
            layers.append(nn.Linear(widths[-1], num_classes))
            self.linear_relu_stack = nn.Sequential(*layers)

        def forward(self, x):
            return self.linear_relu_stack(self.flatten(x))

    return NeuralNetwork()


@zoo.hookimpl
def register_models(register):
    register("mlp", build_mlp, params=MLPParams, help="Flatten + Linear-ReLU layers of the given hidden widths")
