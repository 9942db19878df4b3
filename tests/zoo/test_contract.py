"""The plugin contract, checked at the door: wrong returns, wrong logits, a non-scalar loss and any
plugin exception in training are one paragraph naming the plugin; a failing reporter costs nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from pydantic import BaseModel, ConfigDict

import zoo
from zoo.errors import ZooError
from zoo.plugins import load_catalog
from zoo.testing import TINY, TinyData, check_plugin


class Logits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outputs: int = 10


class BadPlugin:
    """One of each mistake the contract catches."""

    @zoo.hookimpl
    def register_models(self, register):
        register("fixed", lambda params, shape, n: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, params.outputs)), params=Logits)
        register("crashy", lambda params, shape, n: Crashy())
        register("broken-forward", lambda params, shape, n: BrokenForward())
        register("parameterless", lambda params, shape, n: Parameterless())
        register("nan-weights", lambda params, shape, n: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, n)).apply(_poison))

    @zoo.hookimpl
    def register_losses(self, register):
        register("none-loss", lambda params: None)
        register("per-sample", lambda params: torch.nn.CrossEntropyLoss(reduction="none"))
        register("labels-only", lambda params: lambda logits, y: torch.nn.functional.nll_loss(logits.log_softmax(1), y))

    @zoo.hookimpl
    def register_datasets(self, register):
        register("listed", listed_splits)  # not held in memory: batches come from a DataLoader
        register("path-files", path_files)
        register("elsewhere", data_elsewhere)

    @zoo.hookimpl
    def register_reporters(self, register):
        register("raising", lambda params: Raising())


def listed_splits(params):
    from zoo.testing import tiny_splits

    tiny = tiny_splits(params)
    return zoo.DatasetSplits(list(tiny.train), list(tiny.test), tiny.classes, tiny.input_shape)


def data_elsewhere(params):
    raise zoo.DataUnavailable("Cannot find the elsewhere files in /nowhere.")


def path_files(params):
    from zoo.testing import tiny_splits

    tiny = tiny_splits(params)
    tiny.files = {"train.csv": {"path": Path("/data/train.csv")}}  # a Path: config.json cannot hold it
    return tiny


def _poison(module: torch.nn.Module) -> None:
    if isinstance(module, torch.nn.Linear):
        torch.nn.init.constant_(module.weight, float("nan"))


class Crashy(torch.nn.Module):
    """Fine for the one-batch check, raises from the third training step on."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(784, 10)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls > 3:
            raise KeyError("no such layer")
        return self.linear(x.flatten(1))


class BrokenForward(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(784, 10)

    def forward(self, x):
        raise RuntimeError("forward broke")


class Parameterless(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = [torch.nn.Linear(784, 10)]  # a plain list: torch does not see the layer

    def forward(self, x):
        return self.layers[0](x.flatten(1))


class Raising(zoo.Reporter):
    def on_epoch_end(self, event):
        raise ValueError("disk quota of my dashboard")


RAISING_LINE = Raising.on_epoch_end.__code__.co_firstlineno + 1


@pytest.fixture
def catalog():
    return load_catalog(env={"ZOO_LOAD_PLUGINS": ""}, extra_plugins=[("bad", BadPlugin()), (TINY, TinyData())])


def train(catalog, tmp_path: Path, **settings):
    chosen = {"dataset": TINY, "model": "mlp", "epochs": 2, "batch_size": 16, "reporters": [], "out": tmp_path / "run", **settings}
    return zoo.run(catalog=catalog, **chosen)


def test_a_loss_factory_returning_none_is_named(catalog, tmp_path: Path) -> None:
    with pytest.raises(ZooError) as caught:
        train(catalog, tmp_path, loss="none-loss")
    message = str(caught.value)
    assert "The loss factory 'none-loss' of plugin 'bad'" in message and "returned NoneType" in message and "ends with `return`" in message
    assert not (tmp_path / "run").exists()  # refused before anything is written


@pytest.mark.parametrize("outputs", [9, 11])
def test_a_model_with_the_wrong_number_of_logits_is_named(catalog, tmp_path: Path, outputs: int) -> None:
    with pytest.raises(ZooError) as caught:
        train(catalog, tmp_path, model="fixed", sets=[f"model.outputs={outputs}"])
    message = str(caught.value)
    assert f"The model 'fixed' (plugin 'bad'" in message and f"to logits of shape (2, {outputs})" in message
    assert "must have shape (2, 10)" in message and "num_classes argument" in message
    assert not (tmp_path / "run").exists()


def test_data_files_that_config_json_cannot_hold_are_named(catalog, tmp_path: Path) -> None:
    with pytest.raises(ZooError) as caught:
        train(catalog, tmp_path, dataset="path-files")
    message = str(caught.value)
    assert "Dataset 'path-files' (plugin 'bad'" in message and "PosixPath('/data/train.csv')" in message and "dict of JSON values" in message
    assert not (tmp_path / "run").exists()


def test_logits_that_are_not_numbers_blame_the_model_not_the_loss(catalog, tmp_path: Path) -> None:
    with pytest.raises(ZooError) as caught:
        train(catalog, tmp_path, model="nan-weights")
    message = str(caught.value)
    assert "The model 'nan-weights' (plugin 'bad'" in message and "logits that are not finite numbers" in message and "loss" not in message.split(":")[0]
    assert not (tmp_path / "run").exists()


def test_a_non_scalar_loss_is_named(catalog, tmp_path: Path) -> None:
    with pytest.raises(ZooError, match=r"The loss 'per-sample' \(plugin 'bad'.*returned a tensor of shape \(2,\); it must return one number"):
        train(catalog, tmp_path, loss="per-sample")


def test_mixup_trains_and_a_loss_without_probability_targets_is_named(catalog, tmp_path: Path) -> None:
    from zoo.identity import config_hash, identity

    result = train(catalog, tmp_path / "mixed", mixup=0.4)
    assert json.loads((result.run_dir / "config.json").read_text())["mixup"] == 0.4 and len(result.epochs) == 2
    off, on = (zoo.resolve(catalog=catalog, dataset=TINY, model="mlp", mixup=alpha)[1] for alpha in (0.0, 0.4))
    assert "mixup" not in identity(off) and identity(on)["mixup"] == 0.4 and config_hash(on) != config_hash(off)  # runs from before keep their hash
    with pytest.raises(ZooError) as caught:
        train(catalog, tmp_path / "labels", loss="labels-only", mixup=0.4)
    message = str(caught.value)
    assert "The loss 'labels-only' (plugin 'bad'" in message and "class-probability targets of shape (2, 10)" in message
    assert "mixup=0 turns it off" in message and not (tmp_path / "labels").exists()


def test_mixup_on_a_dataset_not_held_in_memory_is_refused(catalog, tmp_path: Path) -> None:
    assert train(catalog, tmp_path / "plain", dataset="listed").epochs  # the dataset itself trains
    with pytest.raises(ZooError, match=r"mixup = 0.4 needs whole batches .* dataset 'listed' \(plugin 'bad'.* is not held in memory"):
        train(catalog, tmp_path / "mixed", dataset="listed", mixup=0.4)
    assert not (tmp_path / "mixed").exists()


def test_stratified_batches_are_used_recorded_and_refused_where_they_cannot_be(catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zoo.data
    from zoo.identity import config_hash, identity

    drawn = []
    real = zoo.data.stratified_order
    monkeypatch.setattr(zoo.data, "stratified_order", lambda *args: drawn.append(args[1]) or real(*args))
    result = train(catalog, tmp_path / "stratified", shuffle=True, stratify=True)
    assert json.loads((result.run_dir / "config.json").read_text())["stratify"] is True and len(drawn) == len(result.epochs) == 2
    off, on = (zoo.resolve(catalog=catalog, dataset=TINY, model="mlp", shuffle=True, stratify=flag)[1] for flag in (False, True))
    assert "stratify" not in identity(off) and identity(on)["stratify"] is True and config_hash(on) != config_hash(off)  # runs from before keep their hash
    with pytest.raises(ZooError, match=r"needs shuffle = true: leave out shuffle=False, or add stratify=False"):
        zoo.resolve(catalog=catalog, dataset=TINY, model="mlp", stratify=True)  # before anything is read: --dry-run says it too
    with pytest.raises(ZooError, match=r"stratify = true needs the training split's labels in memory, but dataset 'listed'"):
        train(catalog, tmp_path / "listed", dataset="listed", shuffle=True, stratify=True)
    assert not (tmp_path / "listed").exists()


def test_the_one_batch_check_changes_nothing(catalog, tmp_path: Path) -> None:
    """Same weights with and without the check: it draws no random number and updates no statistics."""
    from zoo import contract

    first = train(catalog, tmp_path / "a", shuffle=True).model.state_dict()
    original = contract.check_one_batch
    contract_calls = []
    try:
        import zoo.runner

        zoo.runner.check_one_batch = lambda t: contract_calls.append(t)
        second = train(catalog, tmp_path / "b", shuffle=True).model.state_dict()
    finally:
        zoo.runner.check_one_batch = original
    assert contract_calls and all(torch.equal(first[k], second[k]) for k in first)


def test_an_exception_in_plugin_code_during_training_names_the_plugin(catalog, tmp_path: Path) -> None:
    """...and the run directory it began goes with it: with no checkpoint yet, there is nothing to resume."""
    with pytest.raises(ZooError) as caught:
        train(catalog, tmp_path, model="crashy")
    message = str(caught.value)
    assert "Training stopped at epoch 1, step 3: the model 'crashy' (plugin 'bad'" in message and "raised KeyError" in message
    assert re.search(r"raised KeyError: .* \(at .*test_contract\.py:\d+\)\. This is a problem in that plugin", message)  # where to look
    assert "the error's __cause__ holds the plugin's own traceback" in message and isinstance(caught.value.__cause__, KeyError)
    assert f"({tmp_path / 'run'} was removed: the run stopped before its first checkpoint, so there was nothing to resume.)" in message
    assert not (tmp_path / "run").exists()
    (tmp_path / "mine").mkdir()  # an --out folder of the user's own stays, emptied
    with pytest.raises(ZooError, match="was emptied: the run stopped before its first checkpoint"):
        train(catalog, tmp_path, model="crashy", out=tmp_path / "mine")
    assert (tmp_path / "mine").is_dir() and not list((tmp_path / "mine").iterdir())
    with pytest.raises(ZooError) as caught:  # a checkpoint after step 2: the run can go on from it, and stays
        train(catalog, tmp_path, model="crashy", out=tmp_path / "kept", checkpoint_every=2)
    assert "was removed" not in str(caught.value) and list((tmp_path / "kept" / "checkpoints").iterdir())


def test_strict_mode_shows_the_plugins_own_exception(catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    with pytest.raises(KeyError, match="no such layer"):
        train(catalog, tmp_path, model="crashy")


def test_a_raising_reporter_is_dropped_and_the_run_finishes(catalog, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = train(catalog, tmp_path, reporters=["raising"])
    assert len(result.epochs) == 2 and (tmp_path / "run" / "model.safetensors").exists()
    err = capsys.readouterr().err
    assert ("! Reporter 'raising' (plugin 'bad' (in-process)) failed in on_epoch_end: ValueError: disk quota of my dashboard "
            f"(at {__file__}:{RAISING_LINE}).") in err  # where, in the reporter's own code
    assert "The run finished, but without 1 reporter(s) that failed" in err
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in metrics] == [1, 2]  # the run's own files are complete


def test_a_raising_reporter_is_fatal_in_strict_mode_after_the_checkpoint(catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "true")
    with pytest.raises(ZooError, match="Reporter 'raising' .* failed in on_epoch_end"):
        train(catalog, tmp_path, reporters=["raising"])
    assert list((tmp_path / "run" / "checkpoints").iterdir())  # epoch 1's checkpoint was written before the reporter ran


def test_the_cli_traceback_switch_prints_the_plugins_traceback(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from zoo.cli import cli

    def failing(*args, **kwargs):
        try:
            {}["deep inside"]
        except KeyError as error:
            raise ZooError("one paragraph") from error

    import zoo.api

    original = zoo.api.catalog
    zoo.api.catalog = failing
    try:
        plain = CliRunner().invoke(cli, ["plugins"])
        full = CliRunner().invoke(cli, ["--traceback", "plugins"])
        after = CliRunner().invoke(cli, ["plugins", "--traceback"])  # where one adds it to the command that failed
        separated = CliRunner().invoke(cli, ["plugins", "--", "--traceback"])  # after --: an argument, not zoo's switch
    finally:
        zoo.api.catalog = original
    assert plain.exit_code == full.exit_code == after.exit_code == 2
    assert "KeyError" not in plain.output and "one paragraph" in plain.output
    assert "Traceback" in full.output and "KeyError: 'deep inside'" in full.output and after.output == full.output
    assert "Traceback" not in separated.output


def test_the_kit_reports_each_broken_component(tmp_path: Path) -> None:
    report = check_plugin(BadPlugin())
    by_name = {check.component: check for check in report.checks}
    assert not report.ok
    assert not by_name["loss:none-loss"].ok and "returned NoneType" in by_name["loss:none-loss"].detail
    assert not by_name["loss:per-sample"].ok and "shape (2,)" in by_name["loss:per-sample"].detail
    assert not by_name["model:crashy"].ok and "KeyError" in by_name["model:crashy"].detail and f"(at {__file__}:" in by_name["model:crashy"].detail
    assert not by_name["reporter:raising"].ok and "disk quota" in by_name["reporter:raising"].detail
    assert by_name["reporter:raising"].detail.endswith(f"(at {__file__}:{RAISING_LINE}).")  # where, in the plugin's own code
    assert by_name["model:fixed"].ok  # 10 outputs by default: fine
    absent = by_name["dataset:elsewhere"]  # data missing from this machine is not the plugin's fault
    assert absent.ok and absent.skipped and "not checked, its data is not on this machine: Cannot find the elsewhere files" in absent.detail
    assert not by_name["dataset:path-files"].ok
    assert "  skip  dataset:elsewhere:" in report.text() and report.text().endswith(" 1 skipped: the data is not on this machine.")


def test_the_kit_says_why_a_name_is_no_plugin() -> None:
    with pytest.raises(ZooError, match="did you mean builtin-models[?]"):
        check_plugin("builtin-model")
    with pytest.raises(ZooError, match=r"^click [\d.]+ is installed but declares no entry point in the group 'zoo'.*\[project.entry-points.zoo\]"):
        check_plugin("click")  # installed, but no plugin: the missing entry-point table is named


def test_a_model_that_fails_on_the_first_batch_is_caught_before_training_with_its_line(catalog, tmp_path: Path) -> None:
    line = BrokenForward.forward.__code__.co_firstlineno + 1
    with pytest.raises(ZooError, match=r"The model 'broken-forward' .* failed on a batch of shape \(2, 1, 28, 28\), checked before the "
                                       rf"first training step: RuntimeError: forward broke \(at .*test_contract\.py:{line}\)\. Fix the plugin"):
        train(catalog, tmp_path, model="broken-forward")
    assert not (tmp_path / "run").exists()


def test_a_model_without_parameters_is_named_not_the_optimizer(catalog, tmp_path: Path) -> None:
    with pytest.raises(ZooError, match=r"The model 'parameterless' .* has no trainable parameters, so there is nothing to train"):
        train(catalog, tmp_path, model="parameterless")


class WrongSignature:
    @zoo.hookimpl
    def register_models(self, register):
        def one_argument(params):
            return torch.nn.Linear(784, 10)

        def raises_type_error_inside(params, shape, classes):
            return torch.nn.Linear("784", classes)  # a TypeError of its own: not the signature's

        register("one-argument", one_argument)
        register("inner-type-error", raises_type_error_inside)


def test_a_factory_that_cannot_take_zoos_arguments_is_told_the_contract(tmp_path: Path) -> None:
    catalog = zoo.catalog(extra_plugins=[("wrong", WrongSignature()), (TINY, TinyData())])
    with pytest.raises(ZooError) as error:
        zoo.run(catalog=catalog, model="one-argument", dataset=TINY, epochs=1, reporters=[], out=tmp_path / "a")
    assert str(error.value).startswith("The model factory 'one-argument' of plugin 'wrong' (in-process) cannot be called as "
                                       "factory(params, input_shape, num_classes): ") and "3 were given" in str(error.value)
    with pytest.raises(ZooError) as error:
        zoo.run(catalog=catalog, model="inner-type-error", dataset=TINY, epochs=1, reporters=[], out=tmp_path / "b")
    assert "failed to build: TypeError" in str(error.value) and "cannot be called as" not in str(error.value)


class NeedsWidth:
    @zoo.hookimpl
    def register_models(self, register):
        class Width(BaseModel):
            width: int

        register("needs-width", lambda params, shape, classes: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, classes)), params=Width)


def test_a_required_setting_left_out_says_how_to_give_it() -> None:
    catalog = zoo.catalog(extra_plugins=[("needs", NeedsWidth())])
    with pytest.raises(ZooError, match=r"model.width: Field required \(give it with sets=\['model.width=VALUE'\]\)"):
        zoo.resolve(catalog=catalog, model="needs-width")
    from zoo.config import part_from_record

    record = {"name": "needs-width", "component": "needs-width", "plugin": {"name": "needs"}, "params": {}}
    with pytest.raises(ZooError) as error:  # a run's config.json: --set cannot mend it, so no such advice
        part_from_record(catalog, "model", "model", record)
    assert "model.width: Field required" in str(error.value) and "--set" not in str(error.value)


class FolderParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    root: Path | None = zoo.data_location("data_dir")


class FolderData:
    """A dataset that reads a folder of the user's and has no data without one."""

    @zoo.hookimpl
    def register_datasets(self, register):
        def folder(params):
            if params.root is None or not (Path(params.root) / "labels.txt").is_file():
                raise zoo.DataUnavailable("no folder given (dataset.root)")
            labels = [int(x) for x in (Path(params.root) / "labels.txt").read_text().split()]
            return zoo.DatasetSplits([(torch.zeros(1, 28, 28), k) for k in labels], [(torch.zeros(1, 28, 28), k) for k in labels],
                                     ["a", "b"], (1, 28, 28))

        register("folder", folder, params=FolderParams)


def test_the_kit_checks_a_folder_dataset_on_the_folder_it_is_given(tmp_path: Path) -> None:
    assert check_plugin(FolderData()).checks[0].skipped  # no folder: nothing to check, and said so
    (tmp_path / "labels.txt").write_text("0 1 1 0")
    good = check_plugin(FolderData(), data_dir=tmp_path)
    assert good.ok and not good.checks[0].skipped and "4 + 4 samples" in good.checks[0].detail
    (tmp_path / "labels.txt").write_text("1 2 1 2")  # numbered from 1: the contract check names it
    bad = check_plugin(FolderData(), data_dir=tmp_path)
    assert not bad.ok and "its training split has labels from 1 to 2, but its 2 classes are numbered 0..1" in bad.checks[0].detail
    from click.testing import CliRunner

    from zoo.cli import cli

    result = CliRunner().invoke(cli, ["plugins", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "add --check NAME" in result.output
