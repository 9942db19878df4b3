from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo.config import resolve_run
from zoo.errors import ZooError
from zoo.plugins import load_catalog
from zoo_plugins.models import MLPParams, build_mlp


def linear_shapes(model: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


def test_mlp_512_is_exactly_the_quickstart_network() -> None:
    run = resolve_run(load_catalog(env={}), overrides={"model": "mlp-512"})
    model = build_mlp(run.model.params, (1, 28, 28), 10)
    assert linear_shapes(model) == [(784, 512), (512, 512), (512, 10)]
    assert [type(m).__name__ for m in model.linear_relu_stack] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert sum(p.numel() for p in model.parameters()) == 669_706  # the Quickstart's count


@pytest.mark.parametrize("width", [1, 64, 256, 1024, 3000])
def test_mlp_width_names_mean_two_hidden_layers(width: int) -> None:
    run = resolve_run(load_catalog(env={}), overrides={"model": f"mlp-{width}"})
    model = build_mlp(run.model.params, (1, 28, 28), 10)
    assert linear_shapes(model) == [(784, width), (width, width), (width, 10)]
    assert model(torch.zeros(5, 1, 28, 28)).shape == (5, 10)


@pytest.mark.parametrize("hidden", [[], [7], [300, 100, 50]])
def test_any_list_of_widths_and_input_shape(hidden: list[int]) -> None:
    model = build_mlp(MLPParams(hidden=hidden), (3, 8, 8), 4)
    assert linear_shapes(model)[0][0] == 192 and linear_shapes(model)[-1][1] == 4
    assert model(torch.rand(2, 3, 8, 8)).shape == (2, 4)


def test_a_model_too_large_for_memory_is_refused_before_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    # 10^14 parameters (400 TB): had it been allocated, this test would not get to its assertion.
    with pytest.raises(ZooError, match=r"would have [\d,]+ parameters: training it needs about .* GiB .* more than this machine's"):
        build_mlp(MLPParams(hidden=[10_000_000, 10_000_000]), (1, 28, 28), 10)
    import zoo_plugins.models as models

    monkeypatch.setattr(models, "memory_bytes", lambda: 10 * 2**20)  # a 10 MiB machine cannot train mlp-512 (10.7 MB)
    with pytest.raises(ZooError, match="more than this machine's 0.0 GiB"):
        build_mlp(MLPParams(hidden=[512, 512]), (1, 28, 28), 10)
    assert build_mlp(MLPParams(hidden=[64]), (1, 28, 28), 10) is not None  # 51k parameters fit


def test_dropout_follows_each_relu_and_only_acts_in_training() -> None:
    model = build_mlp(MLPParams(hidden=[64, 64], dropout=0.5), (1, 28, 28), 10)
    assert [type(m).__name__ for m in model.linear_relu_stack] == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    x = torch.rand(8, 1, 28, 28)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))
