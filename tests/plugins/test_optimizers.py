"""The `sgd` optimizer's fused kernel: plain SGD computes the same bits with it, a run records it, and
adding the setting kept older runs' identity: at its default it is not hashed, and their config.json
(without it) still resolves and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import resign, tiny_sets, unfinished_copy
from safetensors.torch import load_file

import zoo
from zoo.identity import config_hash, identity


def sgd_run(tiny_data: Path, out: Path, *sets: str, epochs: int = 1) -> Path:
    return zoo.run(dataset="mnist", model="mlp-8", epochs=epochs, out=out, reporters=[], sets=[*tiny_sets(tiny_data), *sets]).run_dir


def test_plain_sgd_trains_to_the_same_bits_fused_or_not(tiny_data: Path, tmp_path: Path) -> None:
    plain = load_file(sgd_run(tiny_data, tmp_path / "plain", "optimizer.lr=0.05") / "model.safetensors")
    fused_dir = sgd_run(tiny_data, tmp_path / "fused", "optimizer.lr=0.05", "optimizer.fused=true")
    fused = load_file(fused_dir / "model.safetensors")
    assert plain.keys() == fused.keys() and all(plain[k].equal(fused[k]) for k in plain)
    assert json.loads((fused_dir / "config.json").read_text())["components"]["optimizer"]["params"]["fused"] is True


def test_fused_with_momentum_trains(tiny_data: Path, tmp_path: Path) -> None:
    run = sgd_run(tiny_data, tmp_path / "run", "optimizer.lr=0.05", "optimizer.momentum=0.9", "optimizer.nesterov=true", "optimizer.fused=true", epochs=3)
    accuracies = [json.loads(line)["test_accuracy"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert accuracies[-1] > 0.5 and accuracies[-1] > accuracies[0]


def test_fused_at_its_default_is_not_part_of_the_identity(tiny_data: Path) -> None:
    settings = {"dataset": "mnist", "model": "mlp-8", "sets": tiny_sets(tiny_data)}
    default = zoo.resolve(**settings)[1]
    fused = zoo.resolve(**{**settings, "sets": [*tiny_sets(tiny_data), "optimizer.fused=true"]})[1]
    assert "fused" not in identity(default)["components"]["optimizer"]["params"]
    assert identity(fused)["components"]["optimizer"]["params"]["fused"] is True and config_hash(fused) != config_hash(default)


@pytest.mark.parametrize("recorded", [None, False], ids=["before-the-setting", "written-with-fused-false"])
def test_a_config_json_without_the_setting_still_resumes(tiny_data: Path, tmp_path: Path, recorded: bool | None) -> None:
    run = unfinished_copy(sgd_run(tiny_data, tmp_path / "whole", "optimizer.momentum=0.9", epochs=2), tmp_path / "old")
    config = json.loads((run / "config.json").read_text())
    del config["components"]["optimizer"]["params"]["fused"]  # as zoo wrote it before the setting
    (run / "config.json").write_text(json.dumps(config))
    for checkpoint_dir in (run / "checkpoints").iterdir():  # torch recorded None (zoo for a while False)
        state = json.loads((checkpoint_dir / "state.json").read_text())
        for group in state["optimizer"]["param_groups"]:
            group["fused"] = recorded
        (checkpoint_dir / "state.json").write_text(json.dumps(state))
        resign(checkpoint_dir)
    resumed = zoo.run(resume=run, reporters=[])
    assert (run / "model.safetensors").is_file() and len(resumed.epochs) >= 1
