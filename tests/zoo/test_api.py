"""The Python API as a notebook uses it: what a run returned (or a Path) is taken wherever a run is, a notebook's plugins
follow the run they trained, a leaderboard takes the arguments a Python user gives, and a half-loaded torch is named."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_sets

import zoo
from zoo import api
from zoo.errors import ZooError, ZooWarning
from zoo.plugins import Catalog
from zoo.testing import TINY, TinyData


class NotebookModel:
    """A model written in a notebook cell, never installed."""

    @zoo.hookimpl
    def register_models(self, register):
        register("cell-net", lambda params, shape, n: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, n)))


@pytest.fixture(scope="module")
def notebook() -> Catalog:
    return zoo.catalog(extra_plugins=[TinyData(), NotebookModel()])


def test_what_a_notebook_trained_is_predicted_saved_and_loaded_with_its_plugins(notebook: Catalog, tmp_path: Path) -> None:
    result = zoo.run(model="cell-net", dataset=TINY, epochs=1, catalog=notebook, out=tmp_path / "run", reporters=[])
    assert zoo.predict(result, 0).index == 0  # the catalog that trained it builds it again: no catalog= needed
    assert zoo.evaluate(result).accuracy == pytest.approx(result.epochs[-1].test_accuracy)
    zoo.save(result, "cell", store=tmp_path / "store")
    assert zoo.load("cell", store=tmp_path / "store", catalog=notebook).classes == [str(k) for k in range(10)]
    with pytest.raises(ZooError, match=r"plugin 'NotebookModel', which the code that trained them loaded in-process .* pass the same "
                                       r"catalog, catalog=zoo.catalog\(extra_plugins=\[\.\.\.\]\)"):
        zoo.predict(str(result.run_dir), 0, catalog=zoo.catalog(extra_plugins=[TinyData()]))
    with pytest.raises(ZooError, match=r"^cel is not a trained model \(did you mean cell\?\) \(zoo.models\(\) lists them\)"):
        zoo.load("cel", store=tmp_path / "store")


def test_init_takes_what_zoo_run_returned_a_path_or_a_listed_run(notebook: Catalog, tmp_path: Path) -> None:
    first = zoo.run(model="mlp-8", dataset=TINY, epochs=1, catalog=notebook, out=tmp_path / "first", reporters=[])
    for source in (first, first.run_dir, zoo.list_runs(tmp_path)[0]):
        resolved = zoo.resolve(model="mlp-8", dataset=TINY, catalog=notebook, init=source)[1]
        assert resolved.config.init == str(first.run_dir) and resolved.config.init_sha256


def test_predict_takes_a_tensor_as_the_picture_it_holds(notebook: Catalog, tmp_path: Path) -> None:
    result = zoo.run(model="mlp-8", dataset=TINY, epochs=1, catalog=notebook, out=tmp_path / "run", reporters=[])
    pixels = (np.arange(784) % 251).astype(np.uint8).reshape(28, 28)
    expected = zoo.predict(result, pixels).probabilities
    for tensor in (torch.from_numpy(pixels), torch.from_numpy(pixels)[None].float() / 255):
        assert zoo.predict(result, tensor).probabilities == pytest.approx(expected, abs=1e-4)
    assert zoo.predict(result, torch.tensor(3)).index == 3
    for number in (torch.tensor(0.7), torch.tensor(True)):  # not a sample's number, nor a picture
        with pytest.raises(ZooError, match=r"index is a test sample's number"):
            zoo.predict(result, number)
    assert len(zoo.predict(result, torch.from_numpy(pixels)[None].to(torch.bfloat16) / 255).probabilities) == 10  # numpy has no bf16


def test_a_leaderboard_takes_one_name_a_notebooks_catalog_and_warns_of_failed_cells(notebook: Catalog, tmp_path: Path) -> None:
    board = api.leaderboard("cell-net", TINY, catalog=notebook, epochs=1, out=tmp_path / "lb", quiet=True)
    assert [(row["model"], row["dataset"], row["status"]) for row in board.rows] == [("cell-net", TINY, "ok")]
    with pytest.warns(ZooWarning, match=r"1 of 2 cells failed \(recorded in .*cells/; call zoo.api.leaderboard again to retry them\)"):
        board = api.leaderboard(["cell-net", "mlp-0"], [TINY], catalog=notebook, epochs=1, out=tmp_path / "lb2")
    assert [row["model"] for row in board.failed] == ["mlp-0"]
    for wrong, said in [(dict(seeds="2"), r"seeds is how many seeds each cell trains .* not '2'"),
                        (dict(datasets=[TINY, 3]), r"datasets: a name or a list of names, e.g. datasets=\['fashion-mnist'\]"),
                        (dict(quiet=False), r"quiet=False: a leaderboard's cells always train without their log")]:
        with pytest.raises(ZooError, match=said):
            api.leaderboard("cell-net", catalog=notebook, epochs=1, out=tmp_path / "lb3", **{"datasets": TINY, **wrong})


def test_an_interrupted_import_of_torch_is_named_not_blamed_on_a_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    api.check_imports()  # nothing half-loaded here
    monkeypatch.setitem(sys.modules, "onnxruntime.capi", sys)  # another package's failed import is that package's business
    api.check_imports()
    monkeypatch.delitem(sys.modules, "torch")  # what a Ctrl-C inside `import torch` leaves: torch._C and others without torch
    with pytest.raises(ZooError, match=r"^An import of torch in this Python process was interrupted or failed .* Restart Python"):
        zoo.run(model="mlp-8", dataset=TINY, epochs=1)


def test_a_setting_given_both_in_params_and_sets_is_refused(tiny_data: Path) -> None:
    with pytest.raises(ZooError, match=r"optimizer.lr is given twice, as 0.1 in params= and as 0.2 in sets=; give it once"):
        zoo.resolve(model="mlp-8", dataset="mnist", params={"optimizer": {"lr": 0.1}}, sets=[*tiny_sets(tiny_data), "optimizer.lr=0.2"])
    same = zoo.resolve(model="mlp-8", dataset="mnist", params={"optimizer": {"lr": 0.1}}, sets=[*tiny_sets(tiny_data), "optimizer.lr=0.1"])
    assert same[1].optimizer.params.lr == 0.1  # the same value twice is no conflict, however it is written
    zoo.resolve(model="mlp-8", dataset="mnist", params={"dataset": {"data_dir": tiny_data}}, sets=tiny_sets(tiny_data))  # a Path, its text
    with pytest.raises(ZooError, match=r"settings by section are params= \(params=\{'optimizer': \{\.\.\.\}\}\); sets= takes 'SECTION.KEY' keys"):
        zoo.resolve(model="mlp-8", sets={"optimizer": {"lr": 0.1}})
    with pytest.raises(ZooError, match=r"None is no setting's value; leave the key out for its default"):
        zoo.resolve(model="mlp-8", sets={"optimizer.momentum": None})


def test_a_registry_files_bad_value_is_hinted_as_toml_even_from_python(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text('[recipes.mine]\nepochs = "two"\n')
    with pytest.raises(ZooError, match=r"values are TOML: numbers as 0.01") as error:
        zoo.resolve(recipe="mine", registry_files=[tmp_path / "mine.toml"])
    assert "True/False" not in str(error.value)
    with pytest.raises(ZooError, match=r"give a number or True/False \(in sets=, TOML text"):
        zoo.resolve(epochs="two")


def test_the_catalog_shows_its_names_and_zoo_run_its_settings() -> None:
    catalog = zoo.catalog()
    assert "mlp-<width>" in catalog.names("model") and "mlp" in catalog.names("model")
    shown = repr(catalog)
    assert len(shown) < 1000 and "  models: mlp, mlp-256" in shown and "  losses: cross-entropy" in shown
    assert "epochs=, batch_size=" in (zoo.run.__doc__ or "") and "{settings}" not in (zoo.run.__doc__ or "")


def test_no_leaderboard_warning_leaks_from_the_cli(tiny_data: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from zoo.cli import cli

    with warnings.catch_warnings():
        warnings.simplefilter("error", ZooWarning)  # the command's own error says it, once
        result = CliRunner().invoke(cli, ["leaderboard", "--models", "mlp-0", "--datasets", "mnist", "--epochs", "1", "--data-dir",
                                          str(tiny_data), "--no-verify", "--out", str(tmp_path / "lb")])
    assert result.exit_code == 1 and "1 of 1 cells failed" in result.output and "run the command again to retry them" in result.output


def test_a_relative_data_dir_is_recorded_as_the_folder_it_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """config.json keeps where the data was, so `zoo eval` and `zoo predict --index` find it from any other folder."""
    monkeypatch.chdir(tmp_path)
    resolved = zoo.resolve(model="mlp-8", dataset="mnist", data_dir="data", verify=False)[1]
    assert str(resolved.dataset.params.data_dir) == str(tmp_path / "data")
