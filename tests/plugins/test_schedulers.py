"""Each schedule, stepped once per training step as the runner does, gives the learning rates it promises."""

from __future__ import annotations

import pytest
import torch

from zoo.config import resolve_run
from zoo.plugins import load_catalog
from zoo.build import build_scheduler


def learning_rates(name: str, sets: list[str], steps_per_epoch: int = 10, epochs: int = 4, lr: float = 0.1) -> list[float]:
    run = resolve_run(load_catalog(env={}), overrides={"scheduler": name}, sets=sets)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = build_scheduler(run.scheduler, optimizer, steps_per_epoch, epochs)
    rates = []
    for _ in range(steps_per_epoch * epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_constant_keeps_the_optimizers_rate() -> None:
    assert set(learning_rates("constant", [])) == {0.1}


def test_step_counts_epochs_in_steps() -> None:
    rates = learning_rates("step", ["scheduler.every_epochs=2", "scheduler.gamma=0.5"])
    assert rates[0] == rates[19] == 0.1 and rates[20] == rates[39] == pytest.approx(0.05)


def test_cosine_decays_to_min_lr_over_the_run() -> None:
    rates = learning_rates("cosine", ["scheduler.min_lr=0.001"])
    assert rates[0] == 0.1 and rates[20] == pytest.approx((0.1 + 0.001) / 2, rel=1e-6)
    assert rates[-1] == pytest.approx(0.001, abs=1e-3) and all(a >= b for a, b in zip(rates, rates[1:]))


def test_one_cycle_peaks_at_max_lr_after_the_warmup() -> None:
    rates = learning_rates("one-cycle", ["scheduler.max_lr=0.5", "scheduler.warmup=0.25"])
    peak = max(range(len(rates)), key=rates.__getitem__)
    assert rates[peak] == pytest.approx(0.5) and peak == pytest.approx(10, abs=1)
    assert rates[0] == pytest.approx(0.5 / 25) and rates[-1] < rates[0]


def test_one_cycle_leaves_momentum_alone_unless_asked() -> None:
    run = resolve_run(load_catalog(env={}), overrides={"scheduler": "one-cycle"})
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    build_scheduler(run.scheduler, optimizer, 10, 1)
    assert optimizer.param_groups[0]["momentum"] == 0.0


@pytest.mark.parametrize(("steps_per_epoch", "epochs"), [(4, 1), (2, 2), (1, 4), (2, 1), (1, 1)])
def test_one_cycle_runs_however_short_the_run(steps_per_epoch: int, epochs: int) -> None:
    """A warm-up of exactly one step (4 steps at 25%) was a phase of no length that torch divided by."""
    rates = learning_rates("one-cycle", ["scheduler.max_lr=0.5", "scheduler.warmup=0.25"], steps_per_epoch, epochs)
    assert len(rates) == steps_per_epoch * epochs and max(rates) <= 0.5 + 1e-9 and rates[-1] <= rates[0] + 1e-9


def test_one_cycle_is_unchanged_where_it_worked() -> None:
    """The tuned recipe's 22 epochs of 235 steps: the same rates as torch's own OneCycleLR, step for step."""
    rates = learning_rates("one-cycle", ["scheduler.max_lr=0.15", "scheduler.warmup=0.25"], 235, 22)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    torch_own = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.15, total_steps=235 * 22, pct_start=0.25, cycle_momentum=False)
    expected = []
    for _ in range(235 * 22):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        torch_own.step()
    assert rates == expected
