"""Files a user names for zoo to write (zoo.rundir.check_output_file): never a device, a FIFO or a folder, never a
file zoo reads back from a run or a stored model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import tiny_sets

import zoo
from zoo.errors import ZooError, speaking_to_the_command_line
from zoo.rundir import check_output_file


def test_a_new_or_regular_file_outside_runs_is_fine(tmp_path: Path) -> None:
    check_output_file(tmp_path / "model.onnx", "--out")
    (tmp_path / "old.onnx").write_text("replace me")
    check_output_file(tmp_path / "old.onnx", "--out")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    check_output_file(run / "model.onnx", "--out")  # beside a run's files, not one of them
    (run / "exports" / "v1").mkdir(parents=True)
    check_output_file(run / "exports" / "v1" / "model.onnx", "--out")  # two folders below a run: not a checkpoint


@pytest.mark.parametrize("target", ["fifo", "folder", "device"])
def test_devices_fifos_and_folders_are_refused(tmp_path: Path, target: str) -> None:
    path = tmp_path / target
    if target == "fifo":
        os.mkfifo(path)
    elif target == "folder":
        path.mkdir()
    else:  # /dev/null, through a link: a regression would replace the link, never the device
        path.symlink_to("/dev/null")
    with pytest.raises(ZooError, match=r"--out .* is (a folder|not a regular file \(a device, a FIFO or a socket\)); give the path of a new file"):
        check_output_file(path, "--out")


@pytest.mark.parametrize("name", ["config.json", "metrics.jsonl", "model.safetensors", ".lock", "curves.png", "checkpoints/step-000000010/model.safetensors"])
def test_a_runs_own_files_are_refused(tmp_path: Path, name: str) -> None:
    run = tmp_path / "run"
    (run / "checkpoints" / "step-000000010").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    with pytest.raises(ZooError, match=rf"--out {run / name} is one of the files zoo keeps in {run} \(a run or a stored model\)"):
        check_output_file(run / name, "--out")


def test_the_jsonl_reporter_never_writes_into_a_fifo_or_the_runs_own_log(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ZooError, match="jsonl.path .*fifo is not a regular file"):  # it would hang the run
        zoo.run(dataset="mnist", model="mlp-8", epochs=1, out=tmp_path / "a", reporters=["jsonl"], sets=[*tiny_sets(tiny_data), f"jsonl.path={json.dumps(str(fifo))}"])
    own = tmp_path / "b" / "metrics.jsonl"  # the run's own log, in a folder --out has not made yet
    result = zoo.run(dataset="mnist", model="mlp-8", epochs=2, out=tmp_path / "b", reporters=["jsonl"], sets=[*tiny_sets(tiny_data), f"jsonl.path={json.dumps(str(own))}"])
    assert len(own.read_text().splitlines()) == 2 == len(result.epochs)  # not each epoch twice
    assert "is this run's own metrics.jsonl" in capsys.readouterr().err


def test_a_run_without_weights_is_told_apart(tmp_path: Path) -> None:
    from zoo.rundir import unfinished

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    assert "stopped before its first checkpoint, so there is nothing to resume: start it again" in unfinished(run)  # --resume would refuse
    (run / "checkpoints" / "step-000000010").mkdir()
    assert f"zoo.run(resume='{run}') continues it" in unfinished(run)
    with speaking_to_the_command_line():
        assert f"`zoo run --resume {run}` continues it" in unfinished(run)
    (run / "diverged.json").write_text("{}")
    assert "diverged" in unfinished(run) and "--resume" not in unfinished(run)
    from zoo.runlock import hold

    with hold(run):
        assert unfinished(run).startswith(f"the run is still training (process {os.getpid()} on ")


def test_a_jsonl_path_in_a_missing_folder_is_said_at_the_start(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Its folder may be the run's own --out (made when the run starts), so it is checked then: before the first epoch,
    not after it; the run goes on without that reporter, as with any reporter that fails."""
    result = zoo.run(dataset="mnist", model="mlp-8", epochs=1, out=tmp_path / "run", reporters=["jsonl"],
                     sets=[*tiny_sets(tiny_data), f"jsonl.path={json.dumps(str(tmp_path / 'nowhere' / 'x.jsonl'))}"])
    err = capsys.readouterr().err
    assert f"failed in on_run_start: ZooError: jsonl.path {tmp_path / 'nowhere' / 'x.jsonl'}: the folder {tmp_path / 'nowhere'} does not exist" in err
    assert len(result.epochs) == 1


def test_a_stop_just_as_the_temporary_file_appears_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C or SIGTERM right after the file was made, before the code that removes it was reached, left .NAME.RANDOM.tmp
    behind (seen in about one `zoo export` in a few hundred stopped as their file appeared): its name is now known first."""
    from zoo import rundir

    real = os.open

    def made_then_stopped(*args, **kwargs):
        made = real(*args, **kwargs)
        raise KeyboardInterrupt  # the moment the file exists, before its descriptor is even returned

    monkeypatch.setattr(os, "open", made_then_stopped)
    with pytest.raises(KeyboardInterrupt):
        rundir.write_atomic(tmp_path / "config.json", lambda temporary: None)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
    rundir.write_atomic(tmp_path / "config.json", lambda temporary: Path(temporary).write_text("{}"))
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]
