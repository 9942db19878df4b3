"""zoo run --check: a run's checks before its first step (the built components, one batch) without the run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from helpers import tiny_sets

import zoo
from zoo.cli import cli


class LabelsOnly:
    """A loss that takes class numbers only: fine alone, not with mixup's class probabilities."""

    @zoo.hookimpl
    def register_losses(self, register):
        register("labels-only", lambda params: lambda logits, y: torch.nn.functional.nll_loss(logits.log_softmax(1), y))


def test_a_check_builds_everything_and_writes_nothing(tiny_data: Path, tmp_path: Path) -> None:
    checked = zoo.api.check(model="mlp-8", dataset="mnist", epochs=3, batch_size=64, out=tmp_path / "run", runs_root=tmp_path,
                            sets=tiny_sets(tiny_data), quiet=True)
    assert (checked.parameters, checked.train_samples, checked.test_samples, checked.classes, checked.steps_per_epoch) == (
        784 * 8 + 8 + 8 * 8 + 8 + 8 * 10 + 10, 640, 160, 10, 10)
    assert checked.device == "cpu" and checked.precision == "fp32"
    assert str(checked).startswith("Checked, nothing written: mlp-8 (6,442 parameters) on mnist (640 training and 160 test samples")
    assert list(tmp_path.iterdir()) == []


def test_a_check_catches_what_only_the_built_components_show(tiny_data: Path, tmp_path: Path) -> None:
    catalog = zoo.catalog(extra_plugins=[LabelsOnly()])
    settings = dict(model="mlp-8", dataset="mnist", loss="labels-only", catalog=catalog, sets=tiny_sets(tiny_data), out=tmp_path / "run")
    zoo.resolve(**settings, mixup=0.4)  # the settings alone are fine (what --dry-run checks)
    zoo.api.check(**settings)
    with pytest.raises(zoo.ZooError, match=r"on class-probability targets of shape \(2, 10\) \(mixup = 0.4 trains with them; mixup=0 turns it off\)"):
        zoo.api.check(**settings, mixup=0.4)
    assert not (tmp_path / "run").exists()


def test_zoo_run_check_prints_what_it_built(tiny_data: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "--model", "mlp-8", "--dataset", "mnist", "--data-dir", str(tiny_data), "--no-verify",
                                      "--check", "--out", str(tmp_path / "run"), "--nproc", "2"])
    assert result.exit_code == 0, result.output
    assert "Checked, nothing written: mlp-8 (6,442 parameters) on mnist" in result.output and "--nproc 2 shards the same data" in result.output
    assert not (tmp_path / "run").exists()
