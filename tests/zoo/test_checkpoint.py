"""Checkpoints and resume: atomic files, a manifest written last, and a resumed run that ends
bit-identical to one never interrupted — even after SIGKILL mid-epoch or at an epoch boundary."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from helpers import ZOO, epochs_without_time, fuzzed, loss_lines, plugin_env, resign, run_zoo, tiny, tiny_sets, unfinished_copy, zoo_here
from safetensors.torch import load_file

import zoo
from zoo import checkpoint
from zoo.errors import ZooError


#: Shuffled (stratified), augmented, mixed, with dropout and a schedule: every random state must come back.
SETTINGS = ["--model", "mlp-8", "--shuffle", "--stratify", "--set", "dataset.hflip=true", "--set", "dataset.shift=1", "--mixup", "0.4", "--set", "model.dropout=0.3",
            "--scheduler", "one-cycle"]
#: How each process of the SIGKILL test dies, and the newest checkpoint its resume starts from (every 3 steps and at each
#: epoch end; 10 steps an epoch). Each resume is killed again (its own steps counted), so four processes see three deaths.
KILLS = [
    (["--reporter", "kill", "--set", "kill.epoch_start=2"], 10),  # at an epoch boundary
    (["--reporter", "kill-after-4"], 12),  # mid-epoch, at global step 14 (a resume takes no --set: a preset)
    (["--reporter", "kill-after-5"], 15),  # mid-epoch at step 17, after the epoch-end checkpoint (step 10) was replaced
]


@pytest.fixture(scope="module")
def demo_env(plugin_site: Path) -> dict[str, str]:
    return plugin_env(plugin_site, ZOO_LOAD_PLUGINS="demo")


@pytest.fixture(scope="module")
def whole(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The uninterrupted run every SIGKILL scenario must end up equal to."""
    out = tmp_path_factory.mktemp("whole") / "run"
    result = zoo_here(*tiny(tiny_data, *SETTINGS, "--out", str(out)))  # (one torch thread here as in the killed processes: conftest)
    assert result.exit_code == 0, result.output
    return out, result.stdout


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(whole: tuple[Path, str], tiny_data: Path, demo_env: dict[str, str], tmp_path: Path) -> None:
    """Killed at an epoch boundary, then mid-epoch, then mid-epoch after an epoch-end checkpoint was replaced: every resume
    goes on with exactly the steps of the uninterrupted run, which the last one ends equal to."""
    whole_dir, whole_stdout = whole
    whole_losses = loss_lines(whole_stdout)
    killed_dir = tmp_path / "killed"
    command = tiny(tiny_data, *SETTINGS, "--out", str(killed_dir))
    done = 0
    for kill, resume_step in KILLS:
        killed = run_zoo(*command, "--reporter", "console", *kill, env=demo_env)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert not (killed_dir / "model.safetensors").exists()
        logged = loss_lines(killed.stdout)
        assert logged == whole_losses[done : done + len(logged)], kill  # (a resume, from the second on)
        assert checkpoint.newest(killed_dir)[0].name == f"step-{resume_step:09d}"
        command, done = ["run", "--resume", str(killed_dir)], resume_step
    resumed = run_zoo(*command, "--reporter", "console", env=demo_env)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resuming from checkpoint step-{done:09d}" in resumed.stdout
    a, b = load_file(whole_dir / "model.safetensors"), load_file(killed_dir / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert loss_lines(resumed.stdout) == whole_losses[done:]
    assert epochs_without_time(killed_dir) == epochs_without_time(whole_dir)


@pytest.fixture(scope="module")
def small_checkpoint(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run with a small model (fast to fuzz), checkpointed every 4 steps, keeping 2."""
    out = tmp_path_factory.mktemp("ckpt") / "run"
    zoo.run(dataset="mnist", model="mlp-8", epochs=2, out=out, reporters=[], checkpoint_every=4, sets=[*tiny_sets(tiny_data), "optimizer.momentum=0.9"])
    return out


def test_checkpoints_are_complete_and_only_the_newest_are_kept(small_checkpoint: Path) -> None:
    names = sorted(p.name for p in (small_checkpoint / "checkpoints").iterdir())
    assert names == ["step-000000016", "step-000000020"]  # every 4 steps and each epoch end (10, 20); keep 2
    for name in names:
        assert checkpoint.verify(small_checkpoint / "checkpoints" / name) is None
        assert set(os.listdir(small_checkpoint / "checkpoints" / name)) == {*checkpoint.FILES, checkpoint.MANIFEST}


def test_a_checkpoint_without_manifest_or_with_a_bad_file_is_skipped(small_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:

    run = unfinished_copy(small_checkpoint, tmp_path / "run")  # as if the run had died before finishing
    newest = run / "checkpoints" / "step-000000020"
    (newest / "manifest.json").unlink()
    found, skipped = checkpoint.newest(run)
    assert found == run / "checkpoints" / "step-000000016" and "no manifest" in skipped[0]
    checkpoint.newest_or_error(run)
    assert f"Skipped newer checkpoint(s) of {run}, which cannot be used: step-000000020: it has no manifest" in capsys.readouterr().err
    with open(found / "model.safetensors", "r+b") as file:
        file.seek(200)
        file.write(b"\xff")
    found, skipped = checkpoint.newest(run)
    assert found is None and "does not match its SHA-256" in skipped[1]
    with pytest.raises(ZooError, match="no usable checkpoint"):
        zoo.run(resume=run)


def payload_pickle(marker: Path) -> bytes:
    """A pickle that would create `marker` if anything ever unpickled it."""

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    return pickle.dumps(Payload())


def test_pickled_files_are_never_unpickled(small_checkpoint: Path, tiny_data: Path, tmp_path: Path) -> None:
    import shutil

    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    shutil.copytree(small_checkpoint, run)
    (run / "model.safetensors").write_bytes(payload_pickle(marker))
    result = zoo_here("predict", str(run), "--data-dir", str(tiny_data), "--no-verify")
    assert result.exit_code == 2 and "is not a valid safetensors file" in result.stderr and "zoo never unpickles" in result.stderr
    for name in ("model.safetensors", "optimizer.safetensors", "rng.safetensors"):
        ckpt = run / "checkpoints" / "step-000000020"
        (ckpt / name).write_bytes(payload_pickle(marker))
        manifest = json.loads((ckpt / "manifest.json").read_text())
        manifest["files"][name] = checkpoint.sha256_of(ckpt / name)  # a crafted checkpoint, manifest and all
        (ckpt / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(ZooError, match="cannot be used"):
            checkpoint.load(ckpt, *_fresh_training_objects())
    assert not marker.exists()
    for module in ("zoo/checkpoint.py", "zoo/rundir.py", "zoo/inference.py", "zoo/runner.py"):
        assert "torch.load" not in (Path(zoo.__file__).parent.parent / module).read_text()


def _fresh_training_objects():
    from zoo_plugins.models import MLPParams, build_mlp

    model = build_mlp(MLPParams(hidden=[8, 8]), (1, 28, 28), 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    return model, optimizer, scheduler


@pytest.mark.slow
def test_fuzzed_checkpoints_fail_cleanly(small_checkpoint: Path, tmp_path: Path) -> None:
    """1,000 seeded truncations and bit flips of a checkpoint's files, each with a manifest that
    matches the damaged file (as a crafted file would): a ZooError or a clean load, nothing else."""
    import shutil

    source = small_checkpoint / "checkpoints" / "step-000000020"
    names = list(checkpoint.FILES)
    originals = {name: (source / name).read_bytes() for name in names}
    outcomes = {"error": 0, "loaded": 0}
    target = tmp_path / "step"
    shutil.copytree(source, target)
    for trial, data in fuzzed([originals[name] for name in names], 1000, seed=1234):
        name = names[trial % len(names)]
        for other in names:
            (target / other).write_bytes(data if other == name else originals[other])
        resign(target)
        try:
            checkpoint.load(target, *_fresh_training_objects())
            outcomes["loaded"] += 1
        except ZooError:
            outcomes["error"] += 1
    assert outcomes["error"] > 500, outcomes


def test_non_finite_loss_stops_at_the_step_and_keeps_the_last_good_checkpoint(tiny_data: Path, tmp_path: Path) -> None:
    result = zoo_here("run", "--dataset", "mnist", "--data-dir", str(tiny_data), "--no-verify", "--epochs", "2", "--checkpoint-every", "1",
                      "--set", "optimizer.lr=1e30", "--out", str(tmp_path / "run"))
    assert result.exit_code == 3
    assert "the loss became" in result.stderr and "learning rate too high" in result.stderr and "optimizer.lr=1e+30" in result.stderr
    found, _ = checkpoint.newest(tmp_path / "run")
    assert found is not None and f"The last good checkpoint is {found}" in result.stderr.replace("\n", " ")
    for tensor in load_file(found / "model.safetensors").values():
        assert torch.isfinite(tensor).all()
    listed = zoo_here("runs", "--root", str(tmp_path)).stdout.splitlines()[1]
    assert "(diverged)" in listed and "unfinished" not in listed  # not a run to resume: the listing says what happened


@pytest.mark.slow
@pytest.mark.parametrize(("sent", "code", "said"), [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_ctrl_c_or_sigterm_stops_at_a_step_checkpoints_and_exits_as_the_signal(tiny_data: Path, tmp_path: Path, sent: int, code: int, said: str) -> None:
    """Ctrl-C, and SIGTERM as a job queue sends it before it kills: a checkpoint at the step, the way to resume."""
    run_dir = tmp_path / "run"
    process = subprocess.Popen([str(ZOO), "run", "--dataset", "mnist", "--data-dir", str(tiny_data), "--no-verify", "--epochs", "1000",
                                "--log-every", "1", "--out", str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("loss: "):
            break
    time.sleep(0.5)
    process.send_signal(sent)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert f"Interrupted ({said}) after " in stderr and "Traceback" not in stderr and "--resume" in stderr and "Error" not in stderr
    found, _ = checkpoint.newest(run_dir)
    assert found is not None


@pytest.mark.slow
def test_resume_auto_finds_the_newest_run_with_the_same_settings(tiny_data: Path, tmp_path: Path, demo_env: dict[str, str]) -> None:
    from click.testing import CliRunner

    from zoo.cli import cli

    common = ["run", "--dataset", "mnist", "--model", "mlp-8", "--data-dir", str(tiny_data), "--no-verify", "--epochs", "2"]
    other = CliRunner().invoke(cli, [*common, "--seed", "7"])  # same data, another seed: not a candidate
    killed = run_zoo(*common, "--reporter", "kill", "--set", "kill.epoch_start=2", cwd=tmp_path, env=demo_env)
    assert other.exit_code == 0 and killed.returncode == -signal.SIGKILL
    again = CliRunner().invoke(cli, [*common, "--dry-run"])  # the same command again would start over: it says so
    assert re.search(r"Note: runs/\S+ is an unfinished run with these settings; this starts a new one \(add --resume auto", again.output)
    restarted = CliRunner().invoke(cli, [*common, "--dry-run", "--resume", "auto"],  # a torchrun restart resumes too
                                   env={"RANK": "0", "WORLD_SIZE": "1", "TORCHELASTIC_RESTART_COUNT": "1", "TORCHELASTIC_RUN_ID": "none"})
    assert restarted.exit_code == 0 and '"resumes": "runs/' in restarted.output, restarted.output
    resumed = CliRunner().invoke(cli, [*common, "--resume", "auto"])
    assert resumed.exit_code == 0, resumed.output
    assert "Resuming from checkpoint step-000000010" in resumed.output
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2 and sum((run / "model.safetensors").exists() for run in runs) == 2
    started = CliRunner().invoke(cli, [*common, "--seed", "99", "--resume", "auto"])  # none to resume: one command starts and restarts a job
    assert started.exit_code == 0 and "no unfinished run under runs/ has these settings; starting a new one" in started.output
    assert len(list((tmp_path / "runs").iterdir())) == 3 and "other settings" not in started.output
    assert run_zoo(*common, "--seed", "5", "--reporter", "kill", "--set", "kill.epoch_start=2", cwd=tmp_path, env=demo_env).returncode == -signal.SIGKILL
    passed_over = CliRunner().invoke(cli, [*common, "--seed", "5", "--set", "optimizer.lr=0.5", "--resume", "auto", "--dry-run"])  # its recipe changed since, say
    assert re.search(r"starting a new one\. \(runs/\S+ is an unfinished run of recipe 'quickstart' with other settings, perhaps from before the "
                     r"recipe changed: `zoo run --resume runs/\S+` continues it as it was\.\)", passed_over.output), passed_over.output
    for unrelated in (["--seed", "6"], ["--seed", "5", "--model", "mlp-16"]):  # another seed or model: not that run's continuation
        started = CliRunner().invoke(cli, [*common, *unrelated, "--resume", "auto", "--dry-run"])
        assert started.exit_code == 0 and "starting a new one" in started.output and "other settings" not in started.output, unrelated


def test_resume_refuses_new_training_settings_but_accepts_a_moved_data_dir(small_checkpoint: Path, tiny_data: Path, tmp_path: Path) -> None:
    import shutil

    run = unfinished_copy(small_checkpoint, tmp_path / "run")
    refused = zoo_here("run", "--resume", str(run), "--epochs", "5", "--set", "optimizer.lr=0.5")
    assert refused.exit_code == 2 and "these cannot change now: epochs, optimizer.lr=0.5" in refused.stderr
    dry = zoo_here("run", "--resume", str(run), "--epochs", "5", "--dry-run")  # a dry run checks as the real one does
    assert dry.exit_code == 2 and "these cannot change now: epochs" in dry.stderr
    planned = zoo_here("run", "--resume", str(run), "--dry-run")
    assert planned.exit_code == 0 and json.loads(planned.stdout)["resumes"] == str(run)
    moved = tmp_path / "moved-data"
    shutil.copytree(tiny_data, moved)
    resumed = zoo_here("run", "--resume", str(run), "--data-dir", str(moved), "--no-verify", "--quiet")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((run / "config.json").read_text())["epochs"] == 2 and (run / "model.safetensors").is_file()


def test_a_damaged_state_that_matches_its_manifest_is_a_clear_error(small_checkpoint: Path, tmp_path: Path) -> None:
    run = unfinished_copy(small_checkpoint, tmp_path / "run")
    ckpt = run / "checkpoints" / "step-000000020"
    state = json.loads((ckpt / "state.json").read_text())
    del state["epochs"]
    (ckpt / "state.json").write_text(json.dumps(state))
    resign(ckpt)
    result = zoo_here("run", "--resume", str(run), "--no-verify")
    assert result.exit_code == 2 and "state.json does not validate: epochs: Field required" in result.stderr


def test_leftovers_of_a_killed_checkpoint_write_are_removed(small_checkpoint: Path, tiny_data: Path, tmp_path: Path) -> None:
    import shutil

    run = unfinished_copy(small_checkpoint, tmp_path / "run")
    shutil.rmtree(run / "checkpoints" / "step-000000020")
    (run / "checkpoints" / ".building-abc").mkdir()
    (run / "checkpoints" / ".building-abc" / "model.safetensors").write_bytes(b"half")
    result = zoo_here("run", "--resume", str(run), "--data-dir", str(tiny_data), "--no-verify", "--quiet")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000000016", "step-000000020"]


def test_resume_auto_skips_a_newer_run_that_has_no_checkpoint_yet(small_checkpoint: Path, tiny_data: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "runs"
    resumable, fresh = root / "a-resumable", root / "b-killed-before-any-checkpoint"
    unfinished_copy(small_checkpoint, resumable)
    fresh.mkdir()
    shutil.copy(small_checkpoint / "config.json", fresh / "config.json")
    os.utime(fresh / "config.json", (time.time() + 60, time.time() + 60))  # the newest candidate
    result = zoo.run(resume="auto", runs_root=root, dataset="mnist", model="mlp-8", epochs=2, reporters=[],
                     sets=[*tiny_sets(tiny_data), "optimizer.momentum=0.9"])
    assert result.run_dir == resumable and (resumable / "model.safetensors").is_file()


class Killed(BaseException):
    """What the process would see at a SIGKILL: nothing after this point runs (not even except: Exception)."""


def _save(run: Path, step: int, keep: int, objects) -> Path:
    model, optimizer, scheduler = objects
    record = {"epoch": 1, "batch": step, "global_step": step, "epochs": [], "config_hash": "h"}
    return checkpoint.save(run, model=model, optimizer=optimizer, scheduler=scheduler, record=record,
                           tensors={"state.train_loss_sum": torch.zeros(())}, keep=keep)


@pytest.mark.parametrize("keep", [1, 2])
@pytest.mark.parametrize("same_step", [False, True], ids=["next step", "same step again"])
def test_a_kill_at_any_file_system_step_of_a_save_leaves_a_checkpoint_to_resume(keep: int, same_step: bool, tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Kill the save at its n-th rename, fsync or removal, for every n: some complete checkpoint is
    always found, and the next open tidies up without losing it."""
    import shutil

    objects = _fresh_training_objects()
    calls = {"n": 0, "kill_at": 0}
    real = {"replace": os.replace, "fsync": os.fsync, "rmtree": shutil.rmtree}

    def counting(name):
        def call(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == calls["kill_at"]:
                raise Killed
            return real[name](*args, **kwargs)
        return call

    finished = False
    while not finished:
        calls["kill_at"] += 1
        run = tmp_path / f"run-{calls['kill_at']}"
        run.mkdir()
        _save(run, 10, keep, objects)
        calls["n"] = 0
        with monkeypatch.context() as patch:
            patch.setattr(os, "replace", counting("replace"))
            patch.setattr(os, "fsync", counting("fsync"))
            patch.setattr(shutil, "rmtree", counting("rmtree"))
            try:
                _save(run, 10 if same_step else 13, keep, objects)
                finished = True
            except Killed:
                pass
        found, skipped = checkpoint.newest(run)
        assert found is not None, (calls, skipped, sorted(p.name for p in (run / "checkpoints").iterdir()))
        checkpoint.load(found, *_fresh_training_objects())
        checkpoint.recover(run)
        names = sorted(p.name for p in (run / "checkpoints").iterdir())
        assert names and all(name.startswith("step-") for name in names), names
        assert checkpoint.newest(run)[0] is not None
    assert calls["kill_at"] > 8  # every step of the save was tried


def test_past_a_billion_steps_the_newest_checkpoint_is_still_the_highest_step(tmp_path: Path) -> None:
    """step-1000000000 sorts after step-999999999 by number, not as text (the name has nine digits of padding)."""
    objects = _fresh_training_objects()
    for step in (999_999_999, 1_000_000_000, 1_000_000_001):
        _save(tmp_path, step, 2, objects)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-1000000000", "step-1000000001"]
    assert checkpoint.newest(tmp_path)[0].name == "step-1000000001"


def test_a_step_is_checkpointed_once_when_checkpoint_every_divides_the_epoch(tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saved: list[int] = []
    real_save = checkpoint.save
    monkeypatch.setattr(checkpoint, "save", lambda run_dir, **kw: saved.append(kw["record"]["global_step"]) or real_save(run_dir, **kw))
    zoo.run(dataset="mnist", model="mlp-8", epochs=2, out=tmp_path / "run", reporters=[], checkpoint_every=5, sets=tiny_sets(tiny_data))
    assert saved == [5, 10, 15, 20]  # 10 steps an epoch: 10 and 20 are the epoch ends, written once each


def test_a_checkpoint_of_an_earlier_format_is_named_as_such(small_checkpoint: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(small_checkpoint, run)
    for step in (run / "checkpoints").iterdir():
        manifest = json.loads((step / "manifest.json").read_text())
        (step / "manifest.json").write_text(json.dumps({**manifest, "format": 1}))
    assert "earlier zoo (checkpoint format 1)" in checkpoint.newest(run)[1][0]


def test_unreadable_files_are_said_to_be_unreadable_not_damaged(small_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Permissions are the user's to mend: "damaged, delete it" or "start a new run" would cost them a good run.
    (The tests run as root, whom no permission stops, so the denial is made here.)"""
    import os

    from zoo import rundir

    run = unfinished_copy(small_checkpoint, tmp_path / "run")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == run / "checkpoints" else real_access(path, mode))
    monkeypatch.setattr(checkpoint, "candidates", lambda run_dir: [])  # what glob finds in a folder it may not read
    with pytest.raises(ZooError, match=r"Cannot read .*checkpoints \(permission denied\).*nothing was changed"):
        checkpoint.newest_or_error(run)
    weights = tmp_path / "weights.safetensors"
    weights.write_bytes(b"weights")
    (tmp_path / "weights.safetensors.sha256").write_text("0" * 64)

    def denied(path: Path, limit: int) -> bytes:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(rundir, "read_small_file", denied)
    with pytest.raises(ZooError, match=r"Cannot read .*weights.safetensors.sha256 \(permission denied\)") as caught:
        rundir.verified_sha256(weights)
    assert "delete" not in str(caught.value)
