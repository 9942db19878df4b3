"""Opening a run (zoo.opening): a resume rebuilds the run from its own directory alone, with the
settings it recorded; a damaged log never stops it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import tiny_sets

import zoo
from zoo.errors import ZooError


def killed_copy(finished: Path, to: Path, drop_newest: bool = True) -> Path:
    """A copy of a finished run as if it had been killed after its last (or second-last) checkpoint."""
    shutil.copytree(finished, to)
    (to / "model.safetensors").unlink()
    if drop_newest:
        shutil.rmtree(sorted((to / "checkpoints").iterdir())[-1])
    return to


def test_resume_keeps_the_recorded_reporter_settings_and_needs_no_registry_file(tiny_data: Path, tmp_path: Path) -> None:
    registry = tmp_path / "mine.toml"
    registry.write_text('[recipes.mine]\nepochs = 2\nmodel = "mlp-8"\nreporters = ["jsonl"]\nparams = { optimizer = { lr = 0.05 } }\n')
    log = tmp_path / "epochs.jsonl"
    first = zoo.run(registry_files=[registry], recipe="mine", dataset="mnist", out=tmp_path / "whole",
                    sets=[*tiny_sets(tiny_data), f"jsonl.path={json.dumps(str(log))}"])
    assert len(log.read_text().splitlines()) == 2
    run = killed_copy(first.run_dir, tmp_path / "killed")
    zoo.run(resume=run)  # no registry file, no --set: the run directory holds all its resume needs
    lines = log.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[-1])["epoch"] == 2  # the recorded jsonl.path, not stdout


def test_resume_accepts_the_original_settings_repeated_and_refuses_changed_ones(tiny_data: Path, tmp_path: Path) -> None:
    first = zoo.run(dataset="mnist", model="mlp-8", epochs=2, out=tmp_path / "whole", reporters=[], sets=tiny_sets(tiny_data))
    run = killed_copy(first.run_dir, tmp_path / "killed")
    with pytest.raises(ZooError, match=r"these cannot change now: epochs, optimizer.lr=0.5"):
        zoo.run(resume=run, epochs=3, sets=["optimizer.lr=0.5"])
    for recipe in ("tuned", "no-such-recipe"):  # was silently ignored
        with pytest.raises(ZooError, match=rf"these cannot change now: recipe='{recipe}' \(it was started from quickstart\)"):
            zoo.run(resume=run, recipe=recipe)
    result = zoo.run(resume=run, recipe="quickstart", dataset="mnist", model="mlp-8", epochs=2, reporters=[], sets=tiny_sets(tiny_data))
    assert result.run_dir == run and [e.epoch for e in result.epochs] == [1, 2]


@pytest.mark.parametrize("damage", [b"\xff\xfe not utf-8\n", b"[1, 2]\n", b'{"global_step": "x"}\n', b"null\n", b"[" * 100_000 + b"\n"])
def test_a_damaged_steps_log_never_stops_a_resume(damage: bytes, tiny_data: Path, tmp_path: Path) -> None:
    first = zoo.run(dataset="mnist", model="mlp-8", epochs=2, out=tmp_path / "whole", reporters=[], log_every=1, sets=tiny_sets(tiny_data))
    run = killed_copy(first.run_dir, tmp_path / "killed")
    steps = run / "steps.jsonl"
    steps.write_bytes(damage + steps.read_bytes())
    zoo.run(resume=run)
    records = [json.loads(line) for line in steps.read_text().splitlines()]
    assert [r["global_step"] for r in records] == list(range(1, 21))


def test_reporters_are_closed_when_the_run_fails_before_training(tiny_data: Path, tmp_path: Path) -> None:
    closed: list[str] = []

    class Watcher(zoo.Reporter):
        def close(self) -> None:
            closed.append("watcher")

    class Broken(zoo.Reporter):
        def close(self) -> None:
            raise OSError("disk gone")

    class Plugin:
        @zoo.hookimpl
        def register_reporters(self, register):
            register("watcher", lambda params: Watcher())
            register("broken", lambda params: Broken())

        @zoo.hookimpl
        def register_schedulers(self, register):
            def fails(params, optimizer, steps, epochs):
                raise ValueError("no schedule today")
            register("fails", fails)

    from zoo.plugins import load_catalog

    catalog = load_catalog(env={}, extra_plugins=[("watching", Plugin())])
    with pytest.raises(ZooError, match="no schedule today") as raised:
        zoo.run(catalog=catalog, dataset="mnist", model="mlp-8", scheduler="fails", reporters=["watcher", "broken"], out=tmp_path / "a",
                sets=tiny_sets(tiny_data))
    assert closed == ["watcher"] and "disk gone" not in str(raised.value)  # the first error is the one shown


def test_a_second_process_on_a_training_run_is_refused_naming_the_holder(tiny_data: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    first = zoo.run(dataset="mnist", model="mlp-8", epochs=2, out=tmp_path / "whole", reporters=[], sets=tiny_sets(tiny_data))
    run = killed_copy(first.run_dir, tmp_path / "killed")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; from zoo.runlock import hold\n"
                               "with hold(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)", str(run)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(ZooError, match=f"process {holder.pid}"):
            zoo.run(resume=run)
    finally:
        holder.kill()
        holder.wait()
    assert not (run / "model.safetensors").exists()
    zoo.run(resume=run)  # the holder is gone (killed): the lock went with it
    assert (run / "model.safetensors").is_file()


def test_temporary_files_of_a_killed_write_are_removed_when_the_run_is_opened(tiny_data: Path, tmp_path: Path) -> None:
    first = zoo.run(dataset="mnist", model="mlp-8", epochs=2, out=tmp_path / "whole", reporters=[], sets=tiny_sets(tiny_data))
    run = killed_copy(first.run_dir, tmp_path / "killed")
    for name in (".model.safetensors.abc123.tmp", ".metrics.jsonl.def456.tmp"):
        (run / name).write_bytes(b"half")
    zoo.run(resume=run)
    assert not list(run.glob(".*.tmp"))


def test_a_resume_notes_where_and_with_what_it_continued(tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from zoo import runs

    first = zoo.run(dataset="mnist", model="mlp-8", epochs=2, out=tmp_path / "whole", reporters=[], sets=tiny_sets(tiny_data))
    run = killed_copy(first.run_dir, tmp_path / "killed")
    started = json.loads((run / "config.json").read_text())
    monkeypatch.setattr(torch, "get_num_threads", lambda: 7)  # continued elsewhere: another thread count
    zoo.run(resume=run, reporters=[])
    record = json.loads((run / "config.json").read_text())
    assert record["machine"] == started["machine"]  # where it started stays
    (note,) = record["resumed"]
    assert note["from"] == "step-000000010 (epoch 1, step 10)" and note["machine"]["threads"] == 7
    assert note["versions"]["torch"] == torch.__version__ and note["at"] > started["started"]
    assert runs.compare(first.run_dir, run).differences == []  # not a setting
    (run / "config.json").write_text(json.dumps({**record, "resumed": "damaged"}))
    killed_copy(run, tmp_path / "again")
    zoo.run(resume=tmp_path / "again", reporters=[])  # a damaged note is replaced, not extended
    assert [n["from"] for n in json.loads((tmp_path / "again" / "config.json").read_text())["resumed"]] == ["step-000000010 (epoch 1, step 10)"]
