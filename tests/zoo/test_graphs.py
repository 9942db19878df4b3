"""zoo.graphs: which runs capture their step as a CUDA graph, and the one line when one cannot.
(The capture itself needs a GPU: bench/gpu.py checks it there, weights against the eager path.)"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from helpers import tiny_sets

from zoo.graphs import CapturedStep, choose_step, not_capturable


class Custom(torch.optim.Optimizer):
    def __init__(self, params: Any) -> None:
        super().__init__(params, {"lr": 0.1})

    def step(self, closure: Any = None) -> None:
        return None


def part(name: str) -> SimpleNamespace:
    return SimpleNamespace(resolved=SimpleNamespace(name=name, component=SimpleNamespace(owner="builtin-x 1.0")))


def trainer(device: str = "cuda", graphs: str = "auto", optimizer: str = "sgd", scheduler: str = "constant", ranks: int = 1) -> Any:
    params = [torch.nn.Parameter(torch.zeros(2))]
    opt = {"sgd": lambda: torch.optim.SGD(params, lr=0.1, momentum=0.9), "adamw": lambda: torch.optim.AdamW(params, lr=0.1),
           "custom": lambda: Custom(params)}[optimizer]()
    sched = {"constant": lambda: torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0),
             "one-cycle": lambda: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=10, cycle_momentum=False),
             "one-cycle-momentum": lambda: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=10, cycle_momentum=True)}[scheduler]()
    return SimpleNamespace(device=torch.device(device), config=SimpleNamespace(cuda_graphs=graphs, batch_size=64), optimizer_as=None,
                           world=SimpleNamespace(distributed=ranks > 1, main=True), optimizer=opt, scheduler=sched,
                           resolved=SimpleNamespace(optimizer=part(optimizer), scheduler=part(scheduler), model=part("mlp-8"), loss=part("cross-entropy")))


def eager(X: torch.Tensor, y: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.zeros(())


def test_the_cpu_and_cuda_graphs_off_take_the_eager_step(capsys: pytest.CaptureFixture[str]) -> None:
    assert choose_step(trainer("cpu"), eager) is eager
    assert choose_step(trainer(graphs="off"), eager) is eager
    assert capsys.readouterr().err == ""  # nothing to say: capture was not wanted


def test_capturable_runs_get_the_captured_step() -> None:
    for settings in ({}, {"scheduler": "one-cycle"}, {"optimizer": "adamw"}, {"optimizer": "adamw", "scheduler": "one-cycle"}):
        assert not_capturable(trainer(**settings)) is None, settings
    assert isinstance(choose_step(trainer(), eager), CapturedStep)  # (a changing lr would make its tensor on the GPU here)


def settings_of(optimizer: torch.optim.Optimizer) -> dict:
    return {key: value for key, value in optimizer.param_groups[0].items() if key != "params"}


@pytest.mark.parametrize(("optimizer", "scheduler", "inside"), [
    ("sgd", "one-cycle", {"fused": True, "foreach": False}),  # a changing lr: the kernel that reads it from a tensor
    ("sgd", "constant", {}),  # a constant lr: exactly the eager kernels, the number baked in
    ("adamw", "constant", {"capturable": True}),  # Adam captures only as capturable, with any schedule
    ("adamw", "one-cycle", {"capturable": True}),
])
def test_every_optimizer_step_runs_as_captured_and_the_optimizer_keeps_its_own_settings(optimizer: str, scheduler: str, inside: dict) -> None:
    """Warm-up, last-batch and retaken steps compute what the graph computes; checkpoints (and a
    resume on another device) see the optimizer as it was built."""
    t = trainer("cpu", optimizer=optimizer, scheduler=scheduler)  # (CPU tensors stand in for the GPU's)
    before = settings_of(t.optimizer)
    captured = CapturedStep(t, eager)
    assert t.optimizer_as == captured.optimizer_as_captured
    with captured.optimizer_as_captured():
        during = settings_of(t.optimizer)
        assert {key: during[key] for key in inside} == inside
        if scheduler == "one-cycle":
            assert isinstance(during["lr"], torch.Tensor) and float(during["lr"]) == pytest.approx(before["lr"])
        else:
            assert during["lr"] == before["lr"]
    assert settings_of(t.optimizer) == before


@pytest.mark.parametrize(("settings", "named"), [
    ({"ranks": 2}, "several processes"),
    ({"scheduler": "one-cycle-momentum"}, "the scheduler 'one-cycle-momentum' changes the momentum"),
    ({"optimizer": "custom", "scheduler": "one-cycle"}, "the optimizer 'custom' (Custom) reads its learning rate as a Python number"),
])
def test_a_run_that_cannot_be_captured_says_which_component_and_why_in_one_line(
    settings: dict, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    t = trainer(**settings)
    assert named in (not_capturable(t) or "")
    assert choose_step(t, eager) is eager
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("CUDA graphs off: ") and named in err and "cuda_graphs='off' skips the attempt" in err


def test_a_custom_optimizer_with_a_constant_lr_is_captured() -> None:
    assert not_capturable(trainer(optimizer="custom")) is None


def test_cuda_graphs_off_is_part_of_the_identity_and_auto_keeps_old_hashes(tiny_data: Any, tmp_path: Any) -> None:
    import json

    import zoo
    from zoo.identity import config_hash, identity

    settings = {"dataset": "mnist", "model": "mlp-8", "sets": tiny_sets(tiny_data)}
    auto = zoo.resolve(**settings)[1]
    off = zoo.resolve(**settings, cuda_graphs="off")[1]
    assert config_hash(auto) != config_hash(off) and "cuda_graphs" not in identity(auto)
    result = zoo.run(**settings, cuda_graphs="off", epochs=1, reporters=[], out=tmp_path / "run")  # on the CPU: the eager step
    assert json.loads((result.run_dir / "config.json").read_text())["cuda_graphs"] == "off"
