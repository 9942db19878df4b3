"""The example plugin's own tests: the components register, build the right shapes, and train."""

from __future__ import annotations

import pytest
import torch

import zoo
import zoo_convnets
from zoo.plugins import load_catalog


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(env={"ZOO_LOAD_PLUGINS": ""}, extra_plugins=[("convnets", zoo_convnets)])


def test_the_plugin_registers_its_model_optimizer_and_presets(catalog) -> None:
    assert catalog.registry.get("model", "small-cnn").owner.plugin == "convnets"
    assert catalog.registry.get("optimizer", "adamw").owner.plugin == "convnets"
    assert catalog.resolve("model", "small-cnn-wide").params == {"channels": [32, 64], "hidden": 256}
    assert catalog.presets.recipe("convnet").optimizer == "adamw"


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_small_cnn_maps_images_to_logits(shape) -> None:
    model = zoo_convnets.build_small_cnn(zoo_convnets.SmallCNNParams(), shape, 10)
    assert model(torch.rand(4, *shape)).shape == (4, 10)


def test_adamw_uses_its_settings() -> None:
    optimizer = zoo_convnets.build_adamw(zoo_convnets.AdamWParams(lr=0.01), [torch.zeros(2, requires_grad=True)])
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["lr"] == 0.01


def test_it_learns(catalog, tmp_path) -> None:
    """On a toy dataset (the class is the brightest quadrant), a few epochs get far above chance."""
    from zoo import DatasetSplits
    from zoo.data import TensorSplit

    generator = torch.Generator().manual_seed(0)

    def split(n: int) -> TensorSplit:
        labels = torch.randint(0, 4, (n,), generator=generator)
        images = torch.rand(n, 1, 16, 16, generator=generator) * 0.5
        for i, label in enumerate(labels.tolist()):
            row, column = divmod(label, 2)
            images[i, 0, row * 8 : row * 8 + 8, column * 8 : column * 8 + 8] += 0.5
        return TensorSplit(images, labels)

    class Toy:
        @zoo.hookimpl
        def register_datasets(self, register):
            register("quadrants", lambda params: DatasetSplits(split(512), split(128), ["tl", "tr", "bl", "br"], (1, 16, 16)))

    toy_catalog = load_catalog(env={"ZOO_LOAD_PLUGINS": ""}, extra_plugins=[("convnets", zoo_convnets), ("toy", Toy())])
    result = zoo.run(catalog=toy_catalog, dataset="quadrants", model="small-cnn", optimizer="adamw", epochs=3, shuffle=True,
                     reporters=[], out=tmp_path / "run")
    assert result.epochs[-1].test_accuracy > 0.9  # chance is 0.25


def test_the_plugin_keeps_zoos_contract() -> None:
    """zoo's test kit: each component built and trained a few steps on tiny data (as `zoo plugins --check convnets`)."""
    from zoo.testing import check_plugin

    report = check_plugin(zoo_convnets)
    assert report.ok, report.text()
    assert {check.component for check in report.checks} == {"model:small-cnn", "optimizer:adamw"}
