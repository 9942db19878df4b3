"""zoo.device: deterministic algorithms for one run only, with what cuBLAS needs for them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import tiny_sets

import zoo
from zoo.device import CUBLAS_WORKSPACE, deterministic_mode


def test_deterministic_mode_does_not_outlive_the_run(tiny_data: Path, tmp_path: Path) -> None:
    assert not torch.are_deterministic_algorithms_enabled()
    zoo.run(dataset="mnist", model="mlp-8", epochs=1, deterministic=True, out=tmp_path / "a", reporters=[], sets=tiny_sets(tiny_data))
    assert not torch.are_deterministic_algorithms_enabled()


def test_deterministic_mode_on_cuda_sets_the_cublas_workspace_for_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    with deterministic_mode(True, torch.device("cuda")):
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE and torch.are_deterministic_algorithms_enabled()
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ and not torch.are_deterministic_algorithms_enabled()
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the user's own choice stays
    with deterministic_mode(True, torch.device("cuda")):
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    with deterministic_mode(True, torch.device("cpu")):
        assert torch.are_deterministic_algorithms_enabled()
    assert not torch.are_deterministic_algorithms_enabled()
