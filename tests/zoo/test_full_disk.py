"""A full disk is one message that names the file and how to continue, never a traceback; what was
written before stays valid, and the resume after freeing space is bit-identical."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import tiny_sets, zoo_here
from safetensors import SafetensorError
from safetensors.torch import load_file

import zoo
from zoo import checkpoint
from zoo.errors import ZooError

FULL = "Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: \"No space left on device\" })"


def run(tiny_data: Path, out: Path, **settings):
    return zoo.run(dataset="mnist", model="mlp-8", epochs=2, out=out, reporters=[], checkpoint_every=3,
                   sets=[*tiny_sets(tiny_data), "optimizer.momentum=0.9"], **settings)


@pytest.fixture(scope="module")
def whole(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run(tiny_data, tmp_path_factory.mktemp("disk") / "whole").run_dir


def same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_a_checkpoint_on_a_full_disk(whole: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import safetensors.torch

    real, calls = safetensors.torch.save_model, {"n": 0}

    def fills_up(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 3:  # the third checkpoint finds the disk full
            raise SafetensorError(FULL)
        return real(*args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "save_model", fills_up)
    with pytest.raises(ZooError) as raised:
        run(tiny_data, tmp_path / "run")
    message = str(raised.value)
    assert "Cannot write checkpoint step-000000009" in message and "No space left on device" in message
    assert "step-000000006, is complete and kept" in message and f"zoo.run(resume='{tmp_path / 'run'}')" in message
    assert not list((tmp_path / "run" / "checkpoints").glob(".building-*"))
    monkeypatch.setattr(safetensors.torch, "save_model", real)  # space is free again
    zoo.run(resume=tmp_path / "run")
    assert same_weights(tmp_path / "run", whole)


def test_the_final_weights_on_a_full_disk(whole: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo import runner

    def full(model, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(runner, "save_weights", full)
    with pytest.raises(ZooError, match=r"Cannot write .*model.safetensors: No space left on device\. Training is done") as raised:
        run(tiny_data, tmp_path / "run")
    assert "zoo.run(resume=" in str(raised.value)
    monkeypatch.undo()
    zoo.run(resume=tmp_path / "run")
    assert same_weights(tmp_path / "run", whole)


def test_the_weights_digest_on_a_full_disk(whole: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills between the weights and their SHA-256 file: no weights are left in place, so the resume the
    message names writes both (a run with weights but no digest would be 'finished', and unchecked)."""
    from zoo import rundir

    real = rundir.write_atomic

    def digest_fails(path, write):
        if path.name.endswith(".sha256"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, write)

    monkeypatch.setattr(rundir, "write_atomic", digest_fails)
    with pytest.raises(ZooError, match=r"No space left on device\. Training is done .*zoo\.run\(resume="):
        run(tiny_data, tmp_path / "run")
    assert not (tmp_path / "run" / "model.safetensors").exists() and not list((tmp_path / "run").glob(".*.tmp"))
    monkeypatch.undo()
    zoo.run(resume=tmp_path / "run")
    assert same_weights(tmp_path / "run", whole) and (tmp_path / "run" / "model.safetensors.sha256").is_file()


def test_the_metrics_on_a_full_disk(whole: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.metrics import JsonlReporter

    def full(self, event):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))

    monkeypatch.setattr(JsonlReporter, "on_epoch_end", full)
    with pytest.raises(ZooError, match=r"Cannot write .*metrics.jsonl: No space left on device\. The run stopped at epoch 1"):
        run(tiny_data, tmp_path / "run")
    monkeypatch.undo()
    zoo.run(resume=tmp_path / "run")  # the epoch's checkpoint was written before its metrics
    assert same_weights(tmp_path / "run", whole)
    assert [line.count('"epoch"') for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()] == [1, 1]


def test_ctrl_c_while_a_new_run_is_set_up_leaves_nothing_behind(tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C after the folder and its .lock exist but before config.json: the same command must work again."""
    from zoo import opening

    def interrupted(t, catalog):
        raise KeyboardInterrupt

    monkeypatch.setattr(opening, "config_record", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_data, tmp_path / "new")
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()
    with pytest.raises(KeyboardInterrupt):
        run(tiny_data, tmp_path / "mine")
    assert list((tmp_path / "mine").iterdir()) == []  # the user's folder stays, empty


def test_a_config_that_cannot_be_written_leaves_nothing_behind(tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo import opening

    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(opening, "write_json", full)
    with pytest.raises(ZooError, match=r"Cannot write .*config.json: No space left on device\. Nothing was trained"):
        run(tiny_data, tmp_path / "new")
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()
    with pytest.raises(ZooError):
        run(tiny_data, tmp_path / "mine")
    assert (tmp_path / "mine").is_dir() and not list((tmp_path / "mine").iterdir())


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


@pytest.mark.slow
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")  # in this process: nothing left unclosed on a full disk
def test_a_real_small_disk(tiny_data: Path, tmp_path: Path) -> None:
    """issue 13's case on a real 3 MB tmpfs (needs root and mount; the patched tests above run everywhere)."""
    disk = tmp_path / "disk"
    if os.geteuid() != 0 or shutil.which("mount") is None or not _mount_tmpfs(disk, "3m"):
        pytest.skip("needs root and tmpfs to mount a small disk")
    try:
        args = ["run", "--dataset", "mnist", "--data-dir", str(tiny_data), "--no-verify", "--model", "mlp-256", "--epochs", "2",
                "--batch-size", "64", "--checkpoint-every", "4", "--quiet"]
        full = zoo_here(*args, "--out", str(disk / "run"))
        assert full.exit_code == 2 and "No space left on device" in full.stderr, full.output
        assert "Cannot write" in full.stderr and "--resume" in full.stderr
        assert checkpoint.newest(disk / "run")[0] is not None
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        resumed = zoo_here("run", "--resume", str(disk / "run"), "--quiet")  # (bit-identity: the patched tests above)
        assert resumed.exit_code == 0, resumed.output
        assert load_file(disk / "run" / "model.safetensors") and (disk / "run" / "metrics.jsonl").read_text().count("\n") == 2
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_a_full_disk_before_the_first_checkpoint_says_to_start_again(tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """There is nothing to resume yet: the message must not send the user to --resume a run that is then removed."""
    from zoo.metrics import StepLog

    real, calls = StepLog.on_step, {"n": 0}

    def fills_up(self, event) -> None:
        calls["n"] += 1
        if calls["n"] >= 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        real(self, event)

    monkeypatch.setattr(StepLog, "on_step", fills_up)
    with pytest.raises(ZooError) as raised:
        zoo.run(dataset="mnist", model="mlp-8", epochs=2, out=tmp_path / "run", reporters=[], log_every=1, sets=tiny_sets(tiny_data))
    message = str(raised.value)
    assert "No space left on device" in message and "it had no checkpoint yet: free some space (or fix the folder) and start it again." in message
    assert "--resume" not in message and f"({tmp_path / 'run'} was removed" in message and not (tmp_path / "run").exists()
