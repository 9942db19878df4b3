"""Data-parallel training (zoo.world, zoo.collectives, zoo.launcher): two processes over loopback (gloo) train the model that
one process would, print once, end with the same weights on every rank; a killed rank ends the job
with a message naming it, and torchrun's --max-restarts resumes it from its checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from helpers import ZOO, epochs_without_time, loss_lines, make_idx_dataset, run_zoo, tiny, tiny_sets
from safetensors.torch import load_file

import zoo
from zoo import launcher
from zoo.cli import cli
from zoo.data import Batches, MixUp, TensorSplit, compose, random_hflip, random_shift
from zoo.errors import ZooError
from zoo.rundir import job_run_dir
from zoo.world import World, check_shards, current

#: Shuffled, augmented, mixed and scheduled, so that the ranks must agree on every random draw; batches of 63, split 31 + 32
#: (11 steps an epoch, the last of 10): each rank's loss must be weighed by its share to make the whole batch's gradient.
SETTINGS = ["--model", "mlp-8", "--batch-size", "63", "--shuffle", "--set", "dataset.hflip=true", "--set", "dataset.shift=1",
            "--mixup", "0.4", "--scheduler", "one-cycle"]
STEPS = 33
KILL_RANK_1 = ["--reporter", "console", "--reporter", "kill", "--set", "kill.rank=1"]
#: Dropout on parts of unequal size: each rank's own random stream must be saved and restored.
DROPOUT = [*SETTINGS, "--set", "model.dropout=0.3"]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path / "model.safetensors" if path.is_dir() else path)


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def assert_trained_alike(losses: list[str], reference_losses: list[str], run: Path, reference: Path) -> None:
    """The same steps (loss lines), weights and per-epoch metrics as the reference run, up to float rounding: what
    another number of processes gives for the same global batches."""
    assert [a[16:] for a in losses] == [b[16:] for b in reference_losses]  # the same [seen/total] at every step
    assert all(abs(float(a.split()[1]) - float(b.split()[1])) < 1e-5 for a, b in zip(losses, reference_losses, strict=True))
    a, b = weights(run), weights(reference)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    for x, y in zip(epochs_without_time(run), epochs_without_time(reference), strict=True):
        assert x["test_accuracy"] == y["test_accuracy"]
        assert abs(x["test_loss"] - y["test_loss"]) < 1e-5 and abs(x["train_loss"] - y["train_loss"]) < 1e-5


@pytest.fixture(scope="module")
def parts_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """640 training images and 1,001 test images: the test pass's last batch of 1 leaves rank 0 nothing."""
    return make_idx_dataset(tmp_path_factory.mktemp("parts-data"), n_train=640, n_test=1001)


@pytest.fixture(scope="module")
def demo_env(plugin_site: Path) -> dict[str, str]:
    # (One thread per process, from conftest, as torchrun by hand sets: results agree bit for bit only at equal thread counts.)
    return {"PYTHONPATH": str(plugin_site), "ZOO_LOAD_PLUGINS": "demo"}


def left_in(scratch: Path) -> list[str]:
    """What a job left in its TMPDIR, but torch's per-user compiler cache (one for all runs, not one per job)."""
    return [path.name for path in scratch.iterdir() if not path.name.startswith("torchinductor_")]


def two_process_job(data: Path, settings: list[str], out: Path, env: dict[str, str]) -> tuple[Path, str]:
    """`zoo run --nproc 2`, never interrupted: a run the others must end up equal to."""
    result = run_zoo(*tiny(data, *settings, "--nproc", "2", "--out", str(out)), env=env, timeout=240)
    assert result.returncode == 0, result.stderr
    return out, result.stdout


@pytest.fixture(scope="module")
def uninterrupted_with_dropout(parts_data: Path, demo_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return two_process_job(parts_data, DROPOUT, tmp_path_factory.mktemp("ddp") / "dropout", demo_env)


@pytest.fixture(scope="module")
def uninterrupted(parts_data: Path, demo_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return two_process_job(parts_data, SETTINGS, tmp_path_factory.mktemp("ddp") / "whole", demo_env)


@pytest.mark.slow
@pytest.mark.xdist_group("uninterrupted")  # one worker runs the job they share
def test_two_processes_print_once_and_train_what_one_process_would(uninterrupted: tuple[Path, str], parts_data: Path, tmp_path: Path) -> None:
    """On parts of 31 and 32 samples, and a test pass whose last batch leaves rank 0 nothing, the job still computes
    what one process does: the same steps, the same weights and metrics, up to float rounding."""
    out, stdout = uninterrupted
    assert stdout.splitlines()[0] == "Using cpu device (2 processes)" and stdout.count("Using cpu device") == 1
    single = CliRunner().invoke(cli, tiny(parts_data, *SETTINGS, "--out", str(tmp_path / "single")))  # one process: this one
    assert single.exit_code == 0, single.output
    assert len(loss_lines(stdout)) == STEPS
    assert_trained_alike(loss_lines(stdout), loss_lines(single.stdout), out, tmp_path / "single")
    assert json.loads((out / "config.json").read_text())["launch"]["processes"] == 2
    assert sorted(p.name for p in out.iterdir()) == sorted([p.name for p in (tmp_path / "single").iterdir()] + ["launch.json"])


@pytest.mark.slow
@pytest.mark.xdist_group("uninterrupted")  # one worker runs the job they share
def test_torchrun_by_hand_on_two_machines_runs_the_same_job_and_every_rank_ends_with_the_same_weights(
        uninterrupted: tuple[Path, str], parts_data: Path, demo_env: dict[str, str], tmp_path: Path) -> None:
    """docs/scaling.md's multi-machine example, with both 'machines' on this one and a torchrun agent started by hand on
    each: the job `zoo run --nproc 2` runs, rank 0 speaks wherever it is, and every rank ends with the same weights."""
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    script = Path(__file__).with_name("keep_rank_weights.py")
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
               "--rdzv-endpoint", f"localhost:{port}", "--rdzv-id", "two-machines", "--log-dir", str(tmp_path / "logs"), str(script), str(tmp_path),
               *tiny(parts_data, *SETTINGS, "--out", str(tmp_path / "run"))]
    env = {**os.environ, **demo_env}
    agents = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outputs = [agent.communicate(timeout=240) for agent in agents]
    assert [agent.returncode for agent in agents] == [0, 0], outputs
    logs = sorted((loss_lines(stdout) for stdout, _ in outputs), key=len)
    assert logs[0] == [] and logs[1] == loss_lines(uninterrupted[1])  # rank 0 speaks, wherever it is
    rank0, rank1 = weights(tmp_path / "rank0.safetensors"), weights(tmp_path / "rank1.safetensors")
    assert same_weights(rank0, rank1)
    assert same_weights(rank0, weights(tmp_path / "run"))
    assert same_weights(rank0, weights(uninterrupted[0]))  # zoo run --nproc 2 is this command


@pytest.mark.slow
@pytest.mark.xdist_group("uninterrupted")
def test_a_killed_rank_ends_the_job_naming_it_and_the_run_resumes(uninterrupted: tuple[Path, str], parts_data: Path, demo_env: dict[str, str],
                                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    killed_dir = tmp_path / "killed"
    scratch = tmp_path / "tmp"  # the job's TMPDIR: torchrun's logs of a failed job are not left behind either
    scratch.mkdir()
    # The timeout is the bound: a job that hung after losing a rank would fail here.
    killed = run_zoo(*tiny(parts_data, *SETTINGS, "--nproc", "2", *KILL_RANK_1, "--set", "kill.step=14", "--out", str(killed_dir)),
                     env={**demo_env, "TMPDIR": str(scratch)}, timeout=120)
    assert killed.returncode != 0
    assert left_in(scratch) == []
    assert "Rank 1 of 2" in killed.stderr and "was killed by SIGKILL" in killed.stderr
    assert f"continue with `zoo run --resume {killed_dir} --nproc 2`" in killed.stderr
    assert "Traceback" not in killed.stderr
    assert not (killed_dir / "model.safetensors").exists()
    # The command the message gives, with the recorded kill reporter replaced (this process has no demo plugin). Its
    # workers run here as one (in_process_workers): any number of processes may continue a job, with the same global
    # batches, so the same training up to rounding. Two real processes resuming bit-identically:
    # test_max_restarts_resumes_the_job_from_its_last_checkpoint.
    started = in_process_workers(monkeypatch)
    resumed = CliRunner().invoke(cli, ["run", "--resume", str(killed_dir), "--nproc", "2", "--reporter", "console"])
    assert resumed.exit_code == 0, resumed.output
    assert len(started) == 1 and started[0]["nproc"] == 2
    assert [r["name"] for r in started[0]["plan"]["config"]["components"]["reporters"]] == ["console"]
    assert "Resuming from checkpoint step-000000012 (epoch 2, step 1)" in resumed.stdout
    assert_trained_alike(loss_lines(resumed.stdout), loss_lines(uninterrupted[1])[12:], killed_dir, uninterrupted[0])


@pytest.mark.slow
def test_max_restarts_resumes_the_job_from_its_last_checkpoint(uninterrupted_with_dropout: tuple[Path, str], parts_data: Path,
                                                               demo_env: dict[str, str], tmp_path: Path) -> None:
    """Killed before the first checkpoint, the restarted job starts afresh; killed again after one, the
    next restart resumes from it, every rank with its own random states (dropout on unequal parts)."""
    reference_dir, reference_stdout = uninterrupted_with_dropout
    scratch = tmp_path / "tmp"  # the job's TMPDIR: three attempts' logs, none left behind (torchrun's own default keeps them)
    scratch.mkdir()
    result = run_zoo(*tiny(parts_data, *DROPOUT, "--nproc", "2", "--max-restarts", "2", *KILL_RANK_1, "--set", "kill.step=2",
                           "--set", "kill.restart_step=15"), env={**demo_env, "TMPDIR": str(scratch)}, cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr
    assert left_in(scratch) == []
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1  # each restarted job found its own run directory: no second one
    notice = "A process of this job failed and torchrun restarted them all"
    first, second = result.stdout.split(f"{notice} (restart 1): it had no checkpoint yet, so it starts again.\n")
    assert first.count("Epoch 1\n") == 1 and len(loss_lines(first)) == 2 and "Resuming" not in first
    again, resumed = second.split(f"{notice} (restart 2): resuming from its newest checkpoint.\n")
    assert again.count("Epoch 1\n") == 1 and len(loss_lines(again)) == 15 and "Resuming" not in again
    assert resumed.startswith("Resuming from checkpoint step-000000012 (epoch 2, step 1)\n")
    assert same_weights(weights(runs[0]), weights(reference_dir))
    reference_losses = loss_lines(reference_stdout)
    assert loss_lines(again) == reference_losses[:15]  # started afresh: the very same steps
    assert loss_lines(resumed) == reference_losses[12:]  # every step after the checkpoint (step 12)
    assert epochs_without_time(runs[0]) == epochs_without_time(reference_dir)


@pytest.mark.slow
def test_ctrl_c_stops_every_process_and_says_how_to_continue(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = [str(ZOO), *tiny(tiny_data, "--epochs", "500", "--nproc", "2", "--out", str(out))]
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("checkpoints/step-*")) and time.monotonic() < deadline and job.poll() is None:
            time.sleep(0.2)
        os.killpg(job.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        _, stderr = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == 130, stderr
    assert "Interrupted (SIGINT): every rank was stopped." in stderr and f"continue with `zoo run --resume {out} --nproc 2`" in stderr
    assert "Traceback" not in stderr
    time.sleep(1)
    with pytest.raises(ProcessLookupError):  # no process of the job is left behind
        os.killpg(job.pid, 0)


def test_a_restarted_job_finds_only_the_unfinished_directory_it_began(tmp_path: Path) -> None:
    def begun(name: str, job: str, finished: bool = False) -> Path:
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        record = {**json.loads(CliRunner().invoke(cli, ["run", "--dry-run"]).output), "classes": ["a"], "input_shape": [1]}
        (run / "config.json").write_text(json.dumps({**record, "config_hash": "h", "launch": {"processes": 2, "job": job}}))
        if finished:
            (run / "model.safetensors").write_bytes(b"")
        return run

    begun("a", "job-1")
    newer = begun("b", "job-1")
    os.utime(newer / "config.json", (time.time() + 10, time.time() + 10))
    begun("c", "job-2", finished=True)
    begun("d", "none")
    assert job_run_dir(tmp_path / "runs", None, "job-1", "h") == newer
    assert job_run_dir(tmp_path / "runs", None, "job-1", "other settings") is None
    assert job_run_dir(tmp_path / "runs", None, "job-2", "h") is None  # finished: nothing to restart
    assert job_run_dir(tmp_path / "runs", None, "none", "h") is None  # torchrun without a rendezvous id
    assert job_run_dir(tmp_path / "runs", tmp_path / "runs" / "a", "job-1", "h") == tmp_path / "runs" / "a"


def test_what_would_fail_in_every_process_fails_once_before_any_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launcher, "_elastic_run", lambda *args, **kwargs: pytest.fail("no process should start"))
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "file").write_text("")
    finished = tmp_path / "finished"
    finished.mkdir()
    record = {**json.loads(CliRunner().invoke(cli, ["run", "--dry-run"]).output), "classes": ["a", "b"], "input_shape": [1, 28, 28]}
    (finished / "config.json").write_text(json.dumps(record))
    (finished / "model.safetensors").write_bytes(b"")
    unstarted = tmp_path / "unstarted"
    unstarted.mkdir()
    (unstarted / "config.json").write_text((finished / "config.json").read_text())
    cases = {
        ("--out", str(tmp_path / "used")): "already exists and is not an empty directory",
        ("--resume", str(finished)): "already finished",
        ("--resume", str(unstarted)): "has no usable checkpoint to resume from",
    }
    if torch.cuda.device_count() < 2:  # with 2 GPUs, --device cuda is fine
        cases["--device", "cuda"] = "needs 2 GPUs" if torch.cuda.is_available() else "this machine's torch has no cuda device"
    for args, message in cases.items():
        result = CliRunner().invoke(cli, ["run", "--nproc", "2", *args])
        assert result.exit_code == 2 and message in result.output and result.output.count("Error") == 1, result.output
    result = CliRunner().invoke(cli, ["run", "--max-restarts", "1"])
    assert result.exit_code == 2 and "add --nproc N" in result.output
    dry = json.loads(CliRunner().invoke(cli, ["run", "--nproc", "2", "--dry-run"]).output)
    assert dry["launch"] == {"processes": 2, "max_restarts": 0}
    if "--device" in {args[0] for args in cases}:  # a dry run refuses what the start would
        refused = CliRunner().invoke(cli, ["run", "--nproc", "2", "--device", "cuda", "--dry-run"])
        assert refused.exit_code == 2 and cases["--device", "cuda"] in refused.output


def split_of(n: int, augment: bool) -> TensorSplit:
    images = torch.randint(0, 256, (n, 1, 6, 6), dtype=torch.uint8)
    return TensorSplit(images, torch.arange(n), compose(random_hflip, random_shift(1)) if augment else None)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("augment", [False, True])
@pytest.mark.parametrize("mixup", [False, True])
def test_the_ranks_parts_of_every_batch_make_up_the_single_process_batch(shuffle: bool, augment: bool, mixup: bool) -> None:
    split = split_of(103, augment)
    def batches(rank: int, ranks: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        order, augment = torch.Generator().manual_seed(7), torch.Generator().manual_seed(8)
        feed = Batches(split, 20, torch.device("cpu"), shuffle=shuffle, order=order, augment=augment, shard=(rank, ranks),
                       mix=MixUp(0.4, 103) if mixup else None)
        return [batch for _ in range(2) for batch in feed]  # two epochs: the generators must stay in step

    whole = batches(0, 1)
    parts = [batches(rank, 3) for rank in range(3)]
    assert len(whole) == 12 and all(len(p) == 12 for p in parts)
    for i, (X, y) in enumerate(whole):
        assert torch.equal(torch.cat([p[i][0] for p in parts]), X) and torch.equal(torch.cat([p[i][1] for p in parts]), y)
        assert all(len(p[i][1]) > 0 for p in parts)
    assert [Batches(split, 20, torch.device("cpu"), shard=(r, 3)).local_samples for r in range(3)] == [5 * 6 + 1, 5 * 7 + 1, 5 * 7 + 1]


def test_a_plain_dataset_is_sharded_too() -> None:
    class Plain(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 10

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            return torch.full((1, 2, 2), float(i)), i

    labels = [torch.cat([y for _, y in Batches(Plain(), 4, torch.device("cpu"), shard=(r, 2))]).tolist() for r in range(2)]
    assert labels == [[0, 1, 4, 5, 8], [2, 3, 6, 7, 9]]


def test_the_world_comes_from_torchruns_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT"):
        monkeypatch.delenv(name, raising=False)
    assert current() == World() and World().main and not World().distributed
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "2")
    assert current() == World(rank=3, size=4, local_rank=1, job="job", restart=2)
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ZooError, match="must be numbers"):
        current()


def test_a_batch_too_small_to_split_is_refused(tiny_data: Path) -> None:
    with pytest.raises(ZooError, match="the last one of 1 samples included"):
        check_shards(64, 2, 641)
    check_shards(64, 2, 642)
    result = CliRunner().invoke(cli, ["run", "--nproc", "4", "--batch-size", "2"])
    assert result.exit_code == 2 and "--batch-size 2 cannot be split over 4 processes" in result.output


def in_process_workers(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Replace torchrun by one in-process worker (a world of one), recording what it was given."""
    started: list[dict] = []

    def elastic_run(nproc: int, run_dir: Path, max_restarts: int, threads: int | None) -> None:
        started.append({"nproc": nproc, "max_restarts": max_restarts, "threads": threads, "plan": launcher.plan_of(run_dir)})
        zoo.api.run_launched(run_dir)

    monkeypatch.setattr(launcher, "_elastic_run", elastic_run)
    return started


def test_workers_train_from_the_parents_resolved_configuration(tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = in_process_workers(monkeypatch)
    (tmp_path / "extra.toml").write_text('[recipes.mine]\nepochs = 1\nlog_every = 1\nparams = { optimizer = { lr = 0.05 } }\n')
    result = CliRunner().invoke(cli, ["run", "--nproc", "2", "--max-restarts", "3", "--registry", str(tmp_path / "extra.toml"), "--recipe", "mine",
                                      "--dataset", "mnist", "--data-dir", str(tiny_data), "--no-verify", "--set", "model.dropout=0.1",
                                      "--reporter", "jsonl", "--set", f"jsonl.path={json.dumps(str(tmp_path / 'log.jsonl'))}", "--out", "x"])
    assert result.exit_code == 0, result.output
    plan = started[0]["plan"]
    assert started[0]["nproc"] == 2 and started[0]["max_restarts"] == 3
    assert plan["config"]["recipe"] == "mine" and plan["config"]["epochs"] == 1
    assert plan["config"]["components"]["model"]["params"]["dropout"] == 0.1
    assert plan["config"]["components"]["reporters"][0]["params"]["path"] == str(tmp_path / "log.jsonl")
    assert json.loads(Path("x/config.json").read_text())["config_hash"] and Path("x/model.safetensors").is_file()
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 1  # the worker used the recorded reporter settings


def test_resume_auto_with_the_original_flags_and_nproc_resumes(tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's advice: repeat the command with --resume auto (bug: every rank refused it)."""
    started = in_process_workers(monkeypatch)
    flags = ["run", "--dataset", "mnist", "--data-dir", str(tiny_data), "--no-verify", "--epochs", "2", "--set", "optimizer.lr=0.05", "--quiet"]
    first = CliRunner().invoke(cli, [*flags, "--nproc", "2", "--out", "runs/first"])
    assert first.exit_code == 0, first.output
    Path("runs/first/model.safetensors").unlink()  # as if it had been killed after its last checkpoint
    shutil.rmtree(sorted(Path("runs/first/checkpoints").iterdir())[-1])
    resumed = CliRunner().invoke(cli, [*flags, "--nproc", "2", "--resume", "auto"])
    assert resumed.exit_code == 0, resumed.output
    assert len(started) == 2 and Path("runs/first/model.safetensors").is_file() and len(list(Path("runs").iterdir())) == 1


def _piped_into_head(command: list[str], out: Path, env: dict[str, str]) -> int:
    """`COMMAND | head -1`: the exit status of COMMAND, once its reader has left after the first line."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env})
    assert process.stdout is not None and process.stderr is not None
    process.stdout.readline()
    process.stdout.close()
    errors = process.stderr.read().decode()
    status = process.wait(timeout=240)
    assert (out / "model.safetensors").is_file() and "Traceback" not in errors, errors
    return status


@pytest.mark.slow
def test_a_job_piped_into_head_trains_to_the_end_and_its_status_is_its_launchers(parts_data: Path, demo_env: dict[str, str], tmp_path: Path) -> None:
    """`zoo run --nproc 2 | head -1` exits 141 as a one-process run does (the parent asks the pipe: its workers printed);
    `torchrun ... -m zoo run | head -1` exits 0: a rank exiting 141 would fail torchrun's job (and restart it)."""
    by_hand = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--log-dir", str(tmp_path / "logs"),
               "-m", "zoo", *tiny(parts_data, *SETTINGS, "--out", str(tmp_path / "by-hand"))]
    assert _piped_into_head(by_hand, tmp_path / "by-hand", demo_env) == 0
    job = tmp_path / "zoo"  # in the working folder (conftest): the workers' `python -m zoo` must not take it for zoo
    longer = ["--epochs", "30", "--log-every", "100"]  # the reader leaves while the job still trains, even on a loaded machine
    assert _piped_into_head([str(ZOO), *tiny(parts_data, *SETTINGS, *longer, "--nproc", "2", "--out", str(job))], job, demo_env) == 141


def test_the_workers_import_the_zoo_their_parent_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a folder called zoo where the job starts (PYTHONSAFEPATH), and a second checkout's own zoo when the parent
    runs from one (its folder first on PYTHONPATH); the parent's environment is put back afterwards."""
    import site

    monkeypatch.setenv("PYTHONPATH", "/plugins")
    monkeypatch.delenv("PYTHONSAFEPATH", raising=False)
    monkeypatch.setattr(zoo, "__file__", str(tmp_path / "checkout" / "zoo" / "__init__.py"))
    with launcher._workers_import_this_zoo():
        assert os.environ["PYTHONSAFEPATH"] == "1" and os.environ["PYTHONPATH"] == os.pathsep.join([str(tmp_path / "checkout"), "/plugins"])
    assert os.environ["PYTHONPATH"] == "/plugins" and "PYTHONSAFEPATH" not in os.environ
    monkeypatch.setattr(zoo, "__file__", str(Path(site.getsitepackages()[0]) / "zoo" / "__init__.py"))  # installed: found anyway
    with launcher._workers_import_this_zoo():
        assert os.environ["PYTHONPATH"] == "/plugins"


def test_the_rank_a_signal_killed_is_named_not_the_one_that_lost_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When rank 1 is SIGKILLed, rank 0 may fail first, having lost its connection: the message names rank 1."""
    import torch.distributed.run
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    def failed(args) -> None:
        lost = ProcessFailure(local_rank=0, pid=100, exitcode=1, error_file=str(tmp_path / "none.json"))
        killed = ProcessFailure(local_rank=1, pid=101, exitcode=-signal.SIGKILL, error_file=str(tmp_path / "none.json"))
        lost.timestamp, killed.timestamp = 1, 2  # rank 0's exit was seen first
        raise ChildFailedError("zoo", {0: lost, 1: killed})

    monkeypatch.setattr(torch.distributed.run, "run", failed)
    with pytest.raises(launcher.WorkerFailed, match=r"Rank 1 of 2 \(pid 101\) was killed by SIGKILL"):
        launcher._elastic_run(2, tmp_path, 0, None)


def test_run_processes_takes_quiet_as_zoo_run_does(tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = in_process_workers(monkeypatch)
    run_dir = zoo.run_processes(2, quiet=True, model="mlp-8", dataset="mnist", epochs=1, sets=tiny_sets(tiny_data), out=tmp_path / "job",
                                threads=1)
    assert run_dir == tmp_path / "job" and (run_dir / "model.safetensors").is_file() and started[0]["threads"] == 1
    assert [r["name"] for r in started[0]["plan"]["config"]["components"]["reporters"]] == []


@pytest.mark.parametrize(("threads", "environment", "each"), [(1, "2", "1"), (None, "3", "3"), (None, None, "1")])
def test_each_process_computes_with_threads_or_its_share_of_the_cores(threads: int | None, environment: str | None, each: str,
                                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--threads N for every worker, over OMP_NUM_THREADS; else OMP_NUM_THREADS as set; else the cores divided among them."""
    import torch.distributed.run

    monkeypatch.setenv("OMP_NUM_THREADS", environment or "")  # restored afterwards, whatever _elastic_run sets
    if environment is None:
        monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    seen = []
    monkeypatch.setattr(torch.distributed.run, "run", lambda _: seen.append(os.environ["OMP_NUM_THREADS"]))
    launcher._elastic_run(2, tmp_path, 0, threads)
    assert seen == [each] and os.environ.get("OMP_NUM_THREADS") == environment  # this process's own, as it was


def test_the_workers_of_zoo_run_processes_speak_to_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's own message (printed above the parent's) names keywords when Python started the job, flags when `zoo run` did."""
    import torch.distributed.run

    from zoo.errors import CALLED_FROM_PYTHON, speaking_to_the_command_line

    seen = []
    monkeypatch.setattr(torch.distributed.run, "run", lambda _: seen.append(os.environ.get(CALLED_FROM_PYTHON)))
    launcher._elastic_run(2, tmp_path, 0, None)
    with speaking_to_the_command_line():
        launcher._elastic_run(2, tmp_path, 0, None)
    assert seen == ["1", None] and CALLED_FROM_PYTHON not in os.environ
    monkeypatch.setenv(CALLED_FROM_PYTHON, "1")  # in such a worker, `zoo run --launched` speaks as its caller did
    result = CliRunner().invoke(cli, ["run", "--data-dir", "/nonexistent/dir", "--check"])
    assert "Check data_dir= / ZOO_DATA_DIR" in result.output
