"""The built-in optimizers build what their settings say, and `adamw` steps as torch's AdamW does."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from zoo.build import build_optimizer
from zoo.cli import cli
from zoo.config import resolve_run
from zoo.plugins import load_catalog


def optimizer(name: str, sets: list[str], parameters: list[torch.Tensor]) -> torch.optim.Optimizer:
    run = resolve_run(load_catalog(env={}), overrides={"optimizer": name}, sets=sets)
    return build_optimizer(run.optimizer, parameters)


def test_adamw_passes_every_setting_to_torch() -> None:
    built = optimizer("adamw", ["optimizer.lr=0.002", "optimizer.beta1=0.8", "optimizer.beta2=0.99", "optimizer.eps=1e-6",
                                "optimizer.weight_decay=0.05"], [torch.zeros(3, requires_grad=True)])
    group = built.param_groups[0]
    assert isinstance(built, torch.optim.AdamW)
    assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (0.002, (0.8, 0.99), 1e-6, 0.05)


def test_adamw_defaults_to_plain_adam() -> None:
    """weight_decay=0 by default: the same steps as torch.optim.Adam with lr 1e-3."""
    torch.manual_seed(0)
    start = torch.randn(5)
    ours, theirs = start.clone().requires_grad_(), start.clone().requires_grad_()
    steppers = [optimizer("adamw", [], [ours]), torch.optim.Adam([theirs], lr=1e-3)]
    for _ in range(3):
        for weights, stepper in zip((ours, theirs), steppers):
            (weights ** 2).sum().backward()
            stepper.step()
            stepper.zero_grad()
    assert torch.equal(ours, theirs) and not torch.equal(ours, start)


def test_adamw_decays_weights_apart_from_the_gradient() -> None:
    """Decoupled decay: with a zero gradient, each step multiplies the weights by 1 - lr * weight_decay."""
    weights = torch.ones(4, requires_grad=True)
    stepper = optimizer("adamw", ["optimizer.lr=0.1", "optimizer.weight_decay=0.5"], [weights])
    weights.grad = torch.zeros(4)
    stepper.step()
    assert torch.allclose(weights.detach(), torch.full((4,), 0.95))


@pytest.mark.parametrize("assignment", ["optimizer.lr=0", "optimizer.beta1=1.0", "optimizer.beta2=-0.1", "optimizer.eps=0",
                                        "optimizer.weight_decay=-1", "optimizer.momentum=0.9"])
def test_adamw_refuses_bad_settings(assignment: str) -> None:
    result = CliRunner().invoke(cli, ["run", "--optimizer", "adamw", "--set", assignment, "--dry-run"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and assignment.split("=")[0].split(".")[1] in result.output
