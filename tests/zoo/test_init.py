"""zoo run --init: start from trained weights, every matching tensor loaded, a clear error for another
architecture, --init-new-head for another number of classes, the source pinned in config.json and
the run's identity, and a resume that does not need the source again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import tiny_sets

import zoo
from zoo.config import resolve_run
from zoo.finetune import start_from
from zoo.identity import config_hash
from zoo.plugins import load_catalog
from zoo.rundir import WEIGHTS
from zoo.store import sha256_of


@pytest.fixture(scope="module")
def source(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("source") / "run"
    zoo.run(model="mlp-8", dataset="mnist", epochs=3, sets=[*tiny_sets(tiny_data), "optimizer.lr=0.05", "optimizer.momentum=0.9"], out=out, reporters=[])
    return out


def settings(tiny_data: Path, **extra: object) -> dict:
    return {"model": "mlp-8", "dataset": "mnist", "epochs": 1, "sets": [*tiny_sets(tiny_data), "optimizer.lr=1e-9"], "reporters": [], **extra}


def test_a_run_from_trained_weights_starts_where_they_ended(source: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trained = json.loads((source / "metrics.jsonl").read_text().splitlines()[-1])["test_accuracy"]
    fresh = zoo.run(**settings(tiny_data), out=tmp_path / "fresh")
    tuned = zoo.run(**settings(tiny_data, init=str(source)), out=tmp_path / "tuned")  # lr 1e-9: the weights barely move
    assert abs(tuned.epochs[0].test_accuracy - trained) < 0.02 and tuned.epochs[0].test_accuracy > fresh.epochs[0].test_accuracy + 0.2
    assert "loaded 6 of 6 tensors" in capsys.readouterr().err
    record = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert record["init"] == str(source) and record["init_sha256"] == sha256_of(source / WEIGHTS)


def test_init_is_part_of_the_training_identity(source: Path, tiny_data: Path) -> None:
    catalog = load_catalog()
    plain = zoo.resolve(catalog=catalog, **settings(tiny_data))[1]
    started = zoo.resolve(catalog=catalog, **settings(tiny_data, init=str(source)))[1]
    assert config_hash(plain) != config_hash(started)
    assert "init" not in json.dumps(sorted(__import__("zoo.identity", fromlist=["identity"]).identity(plain)))  # old runs keep their hash


def test_another_architecture_names_the_first_mismatching_layer(source: Path, tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(zoo.ZooError, match=r"layer linear_relu_stack\.0\.weight has shape \[16, 784\] here but \[8, 784\]") as error:
        zoo.run(**settings(tiny_data, model="mlp-16", init=str(source)), out=tmp_path / "other")
    assert "nothing was loaded" in str(error.value) and not (tmp_path / "other").exists()


def test_inputs_of_another_size_are_named_as_such(source: Path) -> None:
    """mlp-8 onto 3×32×32 images is the same architecture on other inputs: the message says that, not "pick another model"."""
    from zoo.build import build_model

    catalog = load_catalog()
    resolved = resolve_run(catalog, overrides={"model": "mlp-8", "init": str(source), "init_new_head": True}, sets=[])
    with pytest.raises(zoo.ZooError, match=r"it was trained on inputs of 1×28×28 \(channels × height × width\), but this run's dataset gives "
                                           r"3×32×32, so its first layer cannot take them \(layer linear_relu_stack\.0\.weight has shape \[8, 3072\]"):
        start_from(build_model(resolved.model, (3, 32, 32), 5), resolved.config, input_shape=(3, 32, 32))


def test_a_new_head_for_another_number_of_classes(source: Path) -> None:
    catalog = load_catalog()
    resolved = resolve_run(catalog, overrides={"model": "mlp-8", "init": str(source)}, sets=[])
    model = catalog_model(catalog, resolved, classes=5)
    head_before = model.state_dict()["linear_relu_stack.4.weight"].clone()
    with pytest.raises(zoo.ZooError, match="add init_new_head=True: the final layer then starts fresh"):
        start_from(model, resolved.config)
    config = resolved.config.model_copy(update={"init_new_head": True})
    assert start_from(model, config) == ["linear_relu_stack.4.weight", "linear_relu_stack.4.bias"]
    from safetensors.torch import load_file

    saved = load_file(source / WEIGHTS)
    assert torch.equal(model.state_dict()["linear_relu_stack.0.weight"], saved["linear_relu_stack.0.weight"])
    assert torch.equal(model.state_dict()["linear_relu_stack.4.weight"], head_before)
    same_classes = catalog_model(catalog, resolved, classes=10)  # e.g. FashionMNIST's head for MNIST's digits: asked for, so fresh too
    fresh_head = same_classes.state_dict()["linear_relu_stack.4.weight"].clone()
    assert start_from(same_classes, config) == ["linear_relu_stack.4.weight", "linear_relu_stack.4.bias"]
    assert torch.equal(same_classes.state_dict()["linear_relu_stack.4.weight"], fresh_head)


def catalog_model(catalog, resolved, classes: int):
    from zoo.build import build_model

    return build_model(resolved.model, (1, 28, 28), classes)


def test_a_changed_source_is_refused_and_a_resume_does_not_read_it(source: Path, tiny_data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "source"
    shutil.copytree(source, copy)
    out = tmp_path / "started"
    zoo.run(**settings(tiny_data, init=str(copy), epochs=2), out=out)
    resolved = zoo.resolve(**settings(tiny_data, init=str(copy)))[1]
    (out / WEIGHTS).unlink()  # as if it stopped after its last checkpoint
    shutil.rmtree(copy)
    result = zoo.run(resume=out)  # the source is gone: the checkpoint brings the weights
    assert len(result.epochs) == 2
    shutil.copytree(source, copy)
    data = bytearray((copy / WEIGHTS).read_bytes())
    data[-1] ^= 1
    (copy / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(zoo.ZooError, match="does not match the SHA-256 its run wrote beside it"):  # the source run's own record
        zoo.run(**settings(tiny_data, init=str(copy)), out=tmp_path / "again")
    (copy / f"{WEIGHTS}.sha256").unlink()  # replaced on purpose, as the message says to do
    with pytest.raises(zoo.ZooError, match="the model changed since"):  # the pinned SHA-256 still holds
        zoo.run(**settings(tiny_data, init=str(copy), init_sha256=resolved.config.init_sha256), out=tmp_path / "again")


def test_init_new_head_without_init_is_refused(tiny_data: Path) -> None:
    with pytest.raises(zoo.ZooError, match="add init='NAME_OR_RUN'"):
        zoo.resolve(**settings(tiny_data, init_new_head=True))


def test_a_source_trained_on_other_pixels_is_refused_with_the_setting_to_use(source: Path, tiny_data: Path, tmp_path: Path) -> None:
    standardised = tmp_path / "standardised"
    zoo.run(model="mlp-8", dataset="mnist", epochs=1, sets=[*tiny_sets(tiny_data), "dataset.normalize=true"], out=standardised, reporters=[])
    with pytest.raises(zoo.ZooError, match=r"trained on standardised pixels \(dataset.normalize = true\), but this run feeds them unstandardised.*"
                                           r"Add sets=\['dataset\.normalize=true'\]\.$"):
        zoo.resolve(**settings(tiny_data, init=str(standardised)))
    with pytest.raises(zoo.ZooError, match=r"trained on unstandardised pixels \(dataset.normalize = false\), but this run standardises them .* Add sets=\['dataset\.normalize=false'\]\.$"):
        zoo.resolve(**{**settings(tiny_data, init=str(source)), "sets": [*tiny_sets(tiny_data), "dataset.normalize=true"]})
    same = settings(tiny_data, init=str(standardised))
    assert zoo.resolve(**{**same, "sets": [*same["sets"], "dataset.normalize=true"]})[1].config.init == str(standardised)


def test_a_head_kept_for_other_classes_of_the_same_number_is_said(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """FashionMNIST's ten garments onto MNIST's ten digits: allowed (the shapes agree), but its outputs would name garments."""
    standardised = {"model": "mlp-512", "init": "mlp-512-fashion-mnist", "sets": [*tiny_sets(tiny_data), "dataset.normalize=true"]}  # as it was trained
    zoo.run(**settings(tiny_data, **standardised), out=tmp_path / "kept")
    assert "final layer was trained on other classes (T-shirt/top, Trouser, Pullover, ...) than this dataset's (0, 1, 2, ...)" in capsys.readouterr().err
    zoo.run(**settings(tiny_data, **standardised, init_new_head=True), out=tmp_path / "fresh")
    assert "other classes" not in capsys.readouterr().err
