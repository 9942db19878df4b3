"""End to end through the Python API on small generated data (the CLI is tested in test_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from helpers import tiny_sets

import zoo
from zoo.contracts import DatasetSplits
from zoo.errors import ZooError
from zoo.plugins import load_catalog


def tiny_run(tiny_data: Path, out: Path, **settings):
    """Tiny data and, where the width does not matter, a tiny model (mlp-8)."""
    settings = {"dataset": "mnist", "model": "mlp-8", "epochs": 3, "out": out, "log_every": 5, **settings}
    sets = [*tiny_sets(tiny_data), "optimizer.lr=0.1", *settings.pop("sets", [])]
    return zoo.run(sets=sets, **settings)


def test_a_run_trains_writes_its_directory_and_predicts(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = tiny_run(tiny_data, tmp_path / "run", model="mlp-512")  # the Quickstart's network
    assert result.epochs[-1].test_accuracy > 0.6  # chance is 0.1
    assert result.epochs[-1].test_loss < result.epochs[0].test_loss
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["Using cpu device", "Epoch 1", "-------------------------------"]
    assert out[3].startswith("loss: ") and out[3].endswith("[   64/  640]")
    assert out[4].endswith("[  384/  640]")  # every 5 steps: step 5 has seen 6 batches
    assert f'Predicted: "{result.prediction.predicted}", Actual: "{result.prediction.actual}"' in out
    assert sum(line.startswith("Epoch ") for line in out) == 3

    run_dir = tmp_path / "run"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["components"]["model"]["params"] == {"hidden": [512, 512], "dropout": 0.0}
    assert config["components"]["dataset"]["component"] == "mnist"
    assert config["versions"]["torch"] == torch.__version__ and "builtin-models" in config["versions"]["plugins"]
    assert config["classes"] == list("0123456789") and config["input_shape"] == [1, 28, 28]
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3] and metrics[-1]["test_accuracy"] == result.epochs[-1].test_accuracy
    weights = load_file(run_dir / "model.safetensors")
    assert weights["linear_relu_stack.0.weight"].shape == (512, 784)
    import subprocess

    assert subprocess.run(["sha256sum", "--check", "--quiet", "model.safetensors.sha256"], cwd=run_dir).returncode == 0  # the standard tool reads it
    assert not list(run_dir.glob(".*tmp"))

    again = zoo.predict(run_dir, 0, data_dir=tiny_data, verify=False)
    assert again.predicted == result.prediction.predicted
    assert again.probabilities == pytest.approx(result.prediction.probabilities, abs=1e-6)


def test_same_seed_same_weights_and_shuffle_changes_them(tiny_data: Path, tmp_path: Path) -> None:
    runs = [tiny_run(tiny_data, tmp_path / name, epochs=1, reporters=[], **extra) for name, extra in
            (("a", {}), ("b", {}), ("c", {"shuffle": True}))]
    a, b, c = (load_file(r.run_dir / "model.safetensors") for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_an_existing_run_directory_is_never_overwritten(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "model.safetensors").write_text("precious")
    with pytest.raises(ZooError, match="already exists and is not an empty directory"):
        tiny_run(tiny_data, out)
    assert (out / "model.safetensors").read_text() == "precious"


def test_default_run_directories_are_unique(tiny_data: Path, tmp_path: Path) -> None:
    first = tiny_run(tiny_data, None, epochs=1, reporters=[]).run_dir
    second = tiny_run(tiny_data, None, epochs=1, reporters=[]).run_dir
    assert first != second and first.parent == second.parent == Path("runs").absolute()
    assert first.name.endswith("-mlp-8-mnist")


def test_bad_settings_leave_no_run_directory(tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ZooError):
        tiny_run(tiny_data, tmp_path / "never", predict_index=10_000)
    assert not (tmp_path / "never").exists() and not Path("runs").exists()


class ThirdParty:
    """A plugin whose dataset is a plain Dataset (no TensorSplit) and whose model factory can fail."""

    @zoo.hookimpl
    def register_datasets(self, register):
        class Plain(torch.utils.data.Dataset):
            def __init__(self, n: int) -> None:
                self.x = torch.rand(n, 1, 4, 4)
                self.y = (self.x.mean(dim=(1, 2, 3)) > 0.5).long()

            def __len__(self) -> int:
                return len(self.y)

            def __getitem__(self, i):
                return self.x[i], int(self.y[i])

        register("plain", lambda params: DatasetSplits(Plain(100), Plain(30), ["low", "high"], (1, 4, 4)))

    @zoo.hookimpl
    def register_models(self, register):
        def explode(params, input_shape, num_classes):
            raise ValueError("kaboom")

        register("explodes", explode)


def test_a_plain_dataset_goes_through_the_dataloader_path(tmp_path: Path) -> None:
    catalog = load_catalog(env={}, extra_plugins=[("third", ThirdParty())])
    result = zoo.run(catalog=catalog, dataset="plain", model="mlp-8", epochs=2, out=tmp_path / "run", reporters=[])
    assert len(result.epochs) == 2 and result.prediction.actual in ("low", "high")


def test_a_failing_factory_names_its_plugin(tmp_path: Path) -> None:
    catalog = load_catalog(env={}, extra_plugins=[("third", ThirdParty())])
    with pytest.raises(ZooError, match=r"model 'explodes' from plugin 'third' .* failed to build: ValueError: kaboom \(at .*test_runner.py:\d+\)\. "):
        zoo.run(catalog=catalog, dataset="plain", model="explodes", out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_different_seeds_give_different_weights_and_deterministic_mode_runs(tiny_data: Path, tmp_path: Path) -> None:
    def weights_hash(run) -> str:
        import hashlib

        tensors = load_file(run.run_dir / "model.safetensors")
        return hashlib.sha256(b"".join(tensors[k].numpy().tobytes() for k in sorted(tensors))).hexdigest()

    a = tiny_run(tiny_data, tmp_path / "a", epochs=1, reporters=[], seed=1, deterministic=True)
    b = tiny_run(tiny_data, tmp_path / "b", epochs=1, reporters=[], seed=1, deterministic=True)
    c = tiny_run(tiny_data, tmp_path / "c", epochs=1, reporters=[], seed=2)
    assert weights_hash(a) == weights_hash(b) != weights_hash(c)
    torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize(("flags", "expected"), [("avx2 avx512f avx512_bf16", "bf16"), ("avx2 avx512f", "fp32")])
def test_auto_precision_is_chosen_once_printed_and_recorded(flags: str, expected: str, tiny_data: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from zoo import precision

    fake = precision.parse_cpuinfo(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n", "x86_64")
    monkeypatch.setattr(precision, "read_cpu", lambda *args, **kwargs: fake)
    tiny_run(tiny_data, tmp_path / "run", epochs=1, model="mlp-8", precision="auto")
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["precision"] == "auto" and record["resolved_precision"]["precision"] == expected
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Precision ")]
    assert printed == [f"Precision {record['resolved_precision']['reason']}"] and "Test CPU" in printed[0]


def test_the_quickstart_recipe_prints_no_precision_line(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny_run(tiny_data, tmp_path / "run", epochs=1, model="mlp-8")
    assert "Precision" not in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "config.json").read_text())["resolved_precision"]["precision"] == "fp32"


def test_data_location_flags_follow_the_datasets_own_declaration(tmp_path: Path) -> None:
    """--data-dir and --no-verify map onto the fields a dataset marks with zoo.data_location; a
    dataset that reads no folder says so instead of 'unknown key'."""
    catalog = load_catalog(env={}, extra_plugins=[("third", ThirdParty())])
    with pytest.raises(ZooError, match=r"Dataset 'plain' \(plugin 'third'.*reads no folder, so --data-dir does not apply"):
        zoo.run(catalog=catalog, dataset="plain", model="mlp-8", data_dir=tmp_path, out=tmp_path / "run")
    with pytest.raises(ZooError, match="has no checksums to skip, so --no-verify does not apply"):
        zoo.run(catalog=catalog, dataset="plain", model="mlp-8", verify=False, out=tmp_path / "run")
    _, resolved = zoo.resolve(dataset="mnist", data_dir=tmp_path, verify=False)
    assert resolved.dataset.params.data_dir == tmp_path and resolved.dataset.params.verify is False


def test_a_resumed_run_keeps_the_precision_it_started_in(tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo import precision

    def cpu(flags: str):
        return precision.parse_cpuinfo(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n", "x86_64")

    monkeypatch.setattr(precision, "read_cpu", lambda *args, **kwargs: cpu("avx2 avx512_bf16"))
    first = tiny_run(tiny_data, tmp_path / "run", epochs=2, precision="auto", checkpoint_every=4)
    (first.run_dir / "model.safetensors").unlink()  # as if killed after its last checkpoint
    monkeypatch.setattr(precision, "read_cpu", lambda *args, **kwargs: cpu("avx2"))  # moved to a machine without bf16
    from zoo import runner

    seen = []
    real = runner._fit_and_finish
    monkeypatch.setattr(runner, "_fit_and_finish", lambda t, state, resumed: seen.append(t.precision.name) or real(t, state, resumed))
    zoo.run(resume=first.run_dir)
    assert seen == ["bf16"]


def test_a_run_leaves_the_callers_random_state_as_it_was(tiny_data: Path, tmp_path: Path) -> None:
    """A notebook seeds its own experiment; a zoo.run in between must not reset Python's, NumPy's or torch's generators."""
    import random

    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    expected = (random.random(), float(np.random.rand()), torch.rand(3))
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    tiny_run(tiny_data, tmp_path / "run", epochs=1, reporters=[])
    assert (random.random(), float(np.random.rand())) == expected[:2] and torch.equal(torch.rand(3), expected[2])


def test_the_api_takes_params_sets_as_a_string_or_dict_and_its_own_results(tiny_data: Path, tmp_path: Path) -> None:
    """What a notebook writes: params= was silently ignored, sets="..." was read letter by letter, and a RunResult
    had to be turned into its run_dir by hand."""
    _, resolved = zoo.resolve(model="mlp-8", params={"optimizer": {"lr": 0.1}}, sets="optimizer.momentum=0.5")
    assert (resolved.optimizer.params.lr, resolved.optimizer.params.momentum) == (0.1, 0.5)
    _, resolved = zoo.resolve(model="mlp-8", sets={"optimizer.lr": 0.3, "model.hidden": [4, 4]})
    assert resolved.optimizer.params.lr == 0.3 and resolved.model.params.hidden == [4, 4]
    with pytest.raises(ZooError, match=r"params=\{'optimizer': 0.1\}: give component settings by section"):
        zoo.resolve(model="mlp-8", params={"optimizer": 0.1})
    _, resolved = zoo.resolve(dataset="mnist", sets={"dataset.data_dir": tmp_path, "optimizer.lr": np.float32(0.5)})  # a Path, a NumPy number
    assert resolved.dataset.params.data_dir == tmp_path and resolved.optimizer.params.lr == 0.5


@pytest.mark.parametrize(("wrong", "said"), [
    ({"sets": 5}, "sets=5: give a list of 'SECTION.KEY=VALUE' strings"),
    ({"sets": [1, 2]}, "sets: 1 is not a 'SECTION.KEY=VALUE' string"),
    ({"sets": {"optimizer.lr": object()}}, "a setting's value must be text, a number"),
    ({"sets": "optimizer.lr=1\n[x]"}, "^sets: 'optimizer.lr=1.*': one value per setting; this one holds more after a line break"),
    ({"recipe": 5}, "recipe=5: a recipe's name"),
    ({"catalog": "x"}, "catalog='x': pass what zoo.catalog\\(\\) returns"),
    ({"registry_files": "missing.toml"}, "Registry file missing.toml does not exist"),  # one path, not its letters
    ({"registry_files": 5}, "registry_files: 5 is not a path"),
    ({"params": {"foo": {"a": 1}}}, "params= names unknown section\\(s\\) foo"),
])
def test_the_api_says_what_is_wrong_with_an_argument_of_the_wrong_kind(wrong: dict, said: str) -> None:
    """A notebook's mistake is one of zoo's own errors, not a TypeError from deep inside."""
    with pytest.raises(ZooError, match=said):
        zoo.resolve(model="mlp-8", **wrong)


@pytest.mark.parametrize("threads", [0, "2", True, 1.5])
def test_threads_must_be_a_whole_number_of_at_least_one(threads: object, tmp_path: Path) -> None:
    for train in (zoo.run, lambda **kwargs: zoo.run_processes(2, **kwargs)):
        with pytest.raises(ZooError, match="threads must be a whole number of at least 1"):
            train(model="mlp-8", dataset="mnist", epochs=1, out=tmp_path / "run", threads=threads)
    assert not (tmp_path / "run").exists()


def test_threads_are_the_runs_own_and_then_as_before(tiny_data: Path, tmp_path: Path) -> None:
    """--threads / threads=: fewer threads than cores, for a busy machine; recorded in config.json, and the caller's
    torch keeps its own count afterwards."""
    before = torch.get_num_threads()
    result = zoo.run(model="mlp-8", dataset="mnist", epochs=1, out=tmp_path / "run", reporters=[], sets=tiny_sets(tiny_data), threads=1)
    assert json.loads((result.run_dir / "config.json").read_text())["machine"]["threads"] == 1
    assert torch.get_num_threads() == before


def test_zoo_run_points_to_run_processes_for_several() -> None:
    with pytest.raises(ZooError, match=r"zoo.run_processes\(nproc, max_restarts=..., \*\*settings\) trains in several"):
        zoo.run(model="mlp-8", nproc=2)


def test_the_api_returns_what_the_cli_reads(tiny_data: Path, tmp_path: Path) -> None:
    result = tiny_run(tiny_data, tmp_path / "run", epochs=1, reporters=[])
    assert zoo.evaluate(result, data_dir=tiny_data, verify=False).accuracy == pytest.approx(result.epochs[-1].test_accuracy)
    assert zoo.predict(result, 0, data_dir=tiny_data, verify=False).actual is not None
    assert zoo.load(result).classes == list("0123456789")
    assert zoo.save(result, "from-result", store=tmp_path / "store").folder == tmp_path / "store" / "from-result"
    with pytest.raises(ZooError, match="A run is given by its directory, a stored model's name, what zoo.run returned or what zoo.list_runs listed; not int"):
        zoo.evaluate(3)


def test_params_on_resume_are_checked_key_by_key_and_dict_sets_take_text_as_set_does(tiny_data: Path, tmp_path: Path) -> None:
    import shutil

    first = tiny_run(tiny_data, tmp_path / "whole", epochs=2, reporters=[], params={"optimizer": {"momentum": 0.5}})
    run = shutil.copytree(first.run_dir, tmp_path / "killed")
    (run / "model.safetensors").unlink()
    shutil.rmtree(sorted((run / "checkpoints").iterdir())[-1])
    with pytest.raises(ZooError, match=r"these cannot change now: optimizer.momentum=0.9"):
        zoo.run(resume=run, params={"optimizer": {"momentum": 0.9}})
    result = zoo.run(resume=run, reporters=[], params={"optimizer": {"momentum": 0.5}})  # the same again: fine
    assert [e.epoch for e in result.epochs] == [1, 2]
    _, resolved = zoo.resolve(model="mlp-8", sets={"optimizer.lr": "0.1", "dataset.mirror": "http://host/x/"})  # text, as --set takes it
    assert resolved.optimizer.params.lr == 0.1 and resolved.dataset.params.mirror == "http://host/x/"


def test_a_broken_pipe_in_plugin_code_is_the_readers_leaving_not_a_file_zoo_cannot_write(tiny_data: Path, tmp_path: Path,
                                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that prints while `zoo run | head` has stopped reading raises BrokenPipeError, an OSError: it must reach the
    CLI as itself (a quiet exit 141), not as 'Cannot write RUN_DIR: Broken pipe ... free some space'."""
    import zoo.runner

    def printing_to_a_closed_pipe(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(zoo.runner, "fit", printing_to_a_closed_pipe)
    with pytest.raises(BrokenPipeError):
        tiny_run(tiny_data, tmp_path / "run", epochs=1)


def test_runs_are_listed_and_compared_from_python_as_zoo_runs_does(tiny_data: Path, tmp_path: Path) -> None:
    first = tiny_run(tiny_data, tmp_path / "runs" / "a", epochs=1)
    tiny_run(tiny_data, tmp_path / "runs" / "b", epochs=2)
    assert repr(first) == (f"RunResult(run_dir={str(first.run_dir)!r}, epochs=<1, last test accuracy {first.epochs[0].test_accuracy:.2%}>, "
                           f"prediction=<{first.prediction.predicted!r}>, model=<NeuralNetwork, 6,442 parameters>)")  # a notebook's echo: one line
    tiny_run(tiny_data, tmp_path / "runs" / "c", epochs=1, sets=["model.hidden=[4, 4]"])
    listed = zoo.list_runs(tmp_path / "runs")
    assert [(r.path.name, r.epochs_done, r.finished) for r in listed] == [("a", 1, True), ("b", 2, True), ("c", 1, True)]
    assert [r.model for r in listed] == ["mlp-8", "mlp-8", "mlp"]  # c is no mlp-8: its hidden widths were changed
    named = tiny_run(tiny_data, None, epochs=1, sets=["model.hidden=[4, 4]"], runs_root=tmp_path / "named")
    assert named.run_dir.name.endswith("-mlp-mnist")  # its folder calls it what zoo runs does
    assert [key for key, _, _ in zoo.compare("a", "c", root=tmp_path / "runs").differences] == ["model.hidden"]  # not the flag
    assert zoo.compare(listed[0], listed[2]).differences == zoo.compare("a", "c", root=tmp_path / "runs").differences  # as listed
    comparison = zoo.compare(first, "b", root=tmp_path / "runs")  # what zoo.run returned, and a name under root
    assert ("epochs", 1, 2) in comparison.differences and [epoch for epoch, _, _ in comparison.curves] == [1, 2]
    assert comparison.curves[1][1] is None and comparison.curves[0][1]["test_accuracy"] == first.epochs[0].test_accuracy
    for root, said in [(tmp_path / "rnus", "does not exist"), (first.run_dir, "is a run directory, not a folder of runs"),
                       (first.run_dir / "config.json", "is not a directory"), (None, "not NoneType")]:
        with pytest.raises(ZooError, match=said):
            zoo.list_runs(root)
    with pytest.raises(ZooError, match="does not exist"):
        zoo.compare("a", "b", root=tmp_path / "rnus")
    with pytest.raises(ZooError):
        zoo.compare("a", "missing", root=tmp_path / "runs")


class NotebookModels:
    """A plugin defined in a notebook cell: no package, no entry point, no file."""

    @zoo.hookimpl
    def register_models(self, register):
        register("linear", lambda params, shape, classes: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, classes)), help="one layer")


def test_a_plugin_object_from_this_process_trains_through_zoo_catalog(tiny_data: Path, tmp_path: Path) -> None:
    catalog = zoo.catalog(extra_plugins=[NotebookModels()])
    assert any(p.name == "NotebookModels" and p.status == "loaded" for p in catalog.plugins)
    result = tiny_run(tiny_data, tmp_path / "run", model="linear", epochs=1, catalog=catalog)
    assert sum(p.numel() for p in result.model.parameters()) == 7850
    with pytest.raises(ZooError, match="linear"):
        tiny_run(tiny_data, tmp_path / "other", model="linear", epochs=1)  # not registered without it
    assert any(p.name == "NotebookModels" for p in zoo.catalog(extra_plugins=[NotebookModels]).plugins)  # the class itself
    assert any(p.name == "mine" for p in zoo.catalog(extra_plugins=[("mine", NotebookModels())]).plugins)
    for wrong, said in [("zoo_tiny_cnn", "is not a plugin"), (["a", NotebookModels()], "is not a plugin"), ((1, 2, 3), "is not a plugin"),
                        (NotebookModels(), "two plugins are called 'NotebookModels'"), (("builtin-models", NotebookModels()), "built-in")]:
        with pytest.raises(ZooError, match=said):
            zoo.catalog(extra_plugins=[NotebookModels(), wrong])


def test_a_run_from_python_names_its_directory_absolutely(tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A notebook that changes its working folder after a run still finds the run by what zoo.run returned."""
    monkeypatch.chdir(tmp_path)
    result = tiny_run(tiny_data, Path("relative"), epochs=1, reporters=[])
    assert result.run_dir == tmp_path / "relative"
    monkeypatch.chdir("/")
    assert zoo.load(result).classes == list("0123456789")


def test_a_full_disk_while_drawing_the_curves_costs_only_the_picture(tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The run is complete before curves.png is drawn: a disk that cannot take the picture is a warning, not an error."""
    import errno

    import zoo.plots

    def full_disk(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zoo.plots, "write_curves", full_disk)
    result = tiny_run(tiny_data, tmp_path / "run", epochs=1)
    assert (result.run_dir / "model.safetensors").is_file() and not (result.run_dir / "curves.png").exists()
    assert "! curves.png was not drawn (No space left on device); the run itself is complete" in capsys.readouterr().err


def test_resuming_a_finished_run_points_to_init(tiny_data: Path, tmp_path: Path) -> None:
    """Training a finished run further is a new run from its weights, which the refusal says how to start."""
    run_dir = zoo.run(model="mlp-8", dataset="mnist", epochs=1, out=tmp_path / "run", reporters=[], sets=tiny_sets(tiny_data)).run_dir
    with pytest.raises(ZooError, match=r"already finished .* nothing to resume. To train it further, start a new run from its weights: "
                                       r"zoo\.run\(init='.*run', \.\.\.\) with the settings you want \(e\.g\. epochs=\)"):
        zoo.run(resume=run_dir, epochs=3)
    further = zoo.run(model="mlp-8", dataset="mnist", epochs=1, out=tmp_path / "further", reporters=[], sets=tiny_sets(tiny_data), init=str(run_dir))
    assert further.epochs and (further.run_dir / "model.safetensors").is_file()  # what it points to works
