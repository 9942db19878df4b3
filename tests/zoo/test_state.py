"""zoo.state: a checkpoint's state.json is checked against the run it belongs to; a crafted one
(with a manifest that matches it) is a clear error, never a run that skips, repeats or invents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from helpers import resign, tiny_sets, unfinished_copy
from safetensors.torch import load_file, save_file

import zoo
from zoo.errors import ZooError


@pytest.fixture(scope="module")
def finished(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs of 10 steps, a checkpoint every 4 steps (the newest: epoch 2, step 10 = global 20)."""
    out = tmp_path_factory.mktemp("state") / "run"
    zoo.run(dataset="mnist", model="mlp-8", epochs=2, out=out, reporters=[], checkpoint_every=4, scheduler="one-cycle",
            sets=[*tiny_sets(tiny_data), "optimizer.momentum=0.9"])
    return out


def state_edit(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def edit(step: Path) -> None:
        record = json.loads((step / "state.json").read_text())
        change(record)
        (step / "state.json").write_text(json.dumps(record))
    return edit


def set_path(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(record: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        for key in parents:
            record = record[int(key)] if isinstance(record, list) else record[key]
        if isinstance(record, list):
            record[int(last)] = value
        else:
            record[last] = value
    return change


def nan_loss(step: Path) -> None:
    tensors = load_file(step / "rng.safetensors")
    tensors["state.train_loss_sum"] = torch.tensor(float("nan"))
    save_file(tensors, step / "rng.safetensors")


CRAFTED = {
    "epoch far past the run": (state_edit(set_path("epoch", 10**6)), "past the run's 2 epochs"),
    "epoch 0": (state_edit(set_path("epoch", 0)), "epoch"),
    "batch past the epoch": (state_edit(set_path("batch", 10**9)), "past the 10 steps"),
    "negative batch": (state_edit(set_path("batch", -5)), "batch"),
    "global step elsewhere": (state_edit(set_path("global_step", 3)), "global step 3 is not"),
    "accuracy as text": (state_edit(set_path("epochs/0/test_accuracy", "abc")), "test_accuracy"),
    "an epoch invented": (state_edit(lambda r: r["epochs"].append(dict(r["epochs"][0], epoch=2))), "finished epochs"),
    "running loss NaN": (nan_loss, "running loss"),
    "learning rate as text": (state_edit(lambda r: r["optimizer"]["param_groups"][0].update(lr="abc")), "optimizer.param_groups"),
    "scheduler last_epoch as text": (state_edit(set_path("scheduler/last_epoch", "x")), "scheduler.last_epoch"),
    "scheduler attribute added": (state_edit(set_path("scheduler/step", "boom")), "scheduler has other keys"),
    "short NumPy state": (state_edit(lambda r: r["rng"]["ranks"][0]["numpy"][1].__delitem__(slice(10, None))), "random states"),
    "Python state garbage": (state_edit(set_path("rng/ranks/0/python", [3, ["x"], None])), "random states"),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_a_crafted_state_is_a_clear_error(case: str, finished: Path, tmp_path: Path) -> None:
    edit, expected = CRAFTED[case]
    run = unfinished_copy(finished, tmp_path / "run")
    newest = sorted((run / "checkpoints").iterdir())[-1]
    edit(newest)
    resign(newest)
    with pytest.raises(ZooError, match="cannot be used") as raised:
        zoo.run(resume=run)
    assert expected in str(raised.value)
    assert not (run / "model.safetensors").exists()


def test_a_deeply_nested_manifest_is_skipped_not_a_crash(finished: Path, tmp_path: Path) -> None:
    from zoo import checkpoint

    run = unfinished_copy(finished, tmp_path / "run")
    newest = sorted((run / "checkpoints").iterdir())[-1]
    (newest / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    found, skipped = checkpoint.newest(run)
    assert found is not None and found != newest and "manifest is damaged" in skipped[0]


def test_an_untouched_checkpoint_resumes(finished: Path, tmp_path: Path) -> None:
    run = unfinished_copy(finished, tmp_path / "run")
    result = zoo.run(resume=run)
    a, b = load_file(finished / "model.safetensors"), load_file(run / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a) and len(result.epochs) == 2


def test_a_resumed_epoch_counts_the_seconds_before_the_interruption(finished: Path, tmp_path: Path) -> None:
    """EpochEnd.seconds is the whole epoch's: a checkpoint records the epoch's seconds so far, and the resumed process goes
    on from them (it counted only its own part before, so resumed runs and leaderboard cells looked faster)."""
    import shutil

    run = unfinished_copy(finished, tmp_path / "run")
    shutil.rmtree(run / "checkpoints" / "step-000000020")  # the newest left: epoch 2, step 6 of 10
    middle = run / "checkpoints" / "step-000000016"
    assert 0 < json.loads((middle / "state.json").read_text())["epoch_seconds"] < 60
    state_edit(set_path("epoch_seconds", 100.0))(middle)
    resign(middle)
    result = zoo.run(resume=run)
    assert [end.epoch for end in result.epochs] == [1, 2] and 100 < result.epochs[1].seconds < 160
    assert result.epochs[0].seconds < 60  # finished before the checkpoint: as recorded
    seconds = [json.loads(line)["seconds"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert seconds == pytest.approx([end.seconds for end in result.epochs], abs=1e-3)
