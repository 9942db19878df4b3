"""`zoo predict` options that used to be silently wrong: --top outside 1..classes, --grid with a
directory, no extension or an extension matplotlib cannot write."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import zoo
from zoo.cli import cli


@pytest.fixture(scope="module")
def finished_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("inference") / "run"
    zoo.run(dataset="mnist", epochs=1, out=out, reporters=[], sets=[f"dataset.data_dir={json.dumps(str(tiny_data))}", "dataset.verify=false"])
    return out


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "seven.png"
    Image.fromarray(np.random.default_rng(7).integers(0, 255, (28, 28), dtype=np.uint8)).save(path)
    return path


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("top", ["0", "-5"])
def test_top_below_one_is_refused(top: str, finished_run: Path, picture: Path) -> None:
    result = invoke("predict", str(finished_run), str(picture), "--top", top)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"Invalid value for '--top': {top} is not in the range x>=1" in result.output


@pytest.mark.parametrize("top", [1, 4, 10, 25])
def test_top_shows_that_many_classes_at_most(top: int, finished_run: Path, picture: Path) -> None:
    result = invoke("predict", str(finished_run), str(picture), "--top", str(top))
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == 1 + min(top, 10)


def test_a_grid_without_extension_is_written_where_zoo_says(finished_run: Path, picture: Path, tmp_path: Path) -> None:
    result = invoke("predict", str(finished_run), str(picture), "--grid", str(tmp_path / "grid"))
    assert result.exit_code == 0, result.output
    assert f"Grid written to {tmp_path / 'grid.png'}" in result.output
    assert Image.open(tmp_path / "grid.png").format == "PNG" and not (tmp_path / "grid").exists()
    assert invoke("predict", str(finished_run), str(picture), "--grid", str(tmp_path / "grid.svg")).exit_code == 0
    assert (tmp_path / "grid.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize(("name", "expected"), [("g.xyz", "zoo cannot draw a .xyz file; end the name with one of "), ("folder", "is a directory; give a file name"),
                                              ("fifo.png", "is not a regular file (a device, a FIFO or a socket)")])
def test_a_grid_zoo_cannot_write_is_refused_before_predicting(name: str, expected: str, finished_run: Path, picture: Path, tmp_path: Path) -> None:
    import os

    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo.png")
    result = invoke("predict", str(finished_run), str(picture), "--grid", str(tmp_path / name))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith(f"Error: --grid {tmp_path / name}") and expected in result.output
    assert result.output.count("\n") == 1  # nothing predicted before the refusal
    assert list(tmp_path.glob("folder*")) == [tmp_path / "folder"] and not list((tmp_path / "folder").iterdir())


def test_a_grid_of_more_images_than_can_be_read_is_refused_before_predicting(finished_run: Path, tmp_path: Path) -> None:
    result = invoke("predict", str(finished_run), "--index", *map(str, range(101)), "--grid", str(tmp_path / "big.png"))
    assert result.exit_code == 2 and "--grid draws at most 100 images" in result.output and "asks for 101" in result.output
    assert result.output.count("\n") == 1 and not (tmp_path / "big.png").exists()


def test_an_image_file_is_standardised_as_the_training_data_was(tiny_data: Path, tmp_path: Path) -> None:
    """A run on standardised pixels (dataset.normalize) records the mean and std; a prediction from
    an image file applies them, so a test image given as a file gets what it gets by index."""
    from zoo_plugins.idx import read_idx

    from zoo.inference import predict_files
    from zoo.plugins import load_catalog

    sets = [f"dataset.data_dir={json.dumps(str(tiny_data))}", "dataset.verify=false", "dataset.normalize=true"]
    run = zoo.run(dataset="mnist", model="mlp-8", epochs=1, out=tmp_path / "run", reporters=[], sets=sets)
    mean, std = json.loads((run.run_dir / "config.json").read_text())["input_normalization"]
    assert 0 < mean < 1 and 0 < std < 1
    path = tmp_path / "first.png"
    Image.fromarray(read_idx(tiny_data / "t10k-images-idx3-ubyte.gz", 3)[0].numpy()).save(path)
    from_file = predict_files(load_catalog(), run.run_dir, [path])[0][0]
    by_index = zoo.predict(run.run_dir, 0, data_dir=tiny_data, verify=False)
    assert from_file.probabilities == pytest.approx(by_index.probabilities, abs=1e-5)
    assert invoke("predict", str(run.run_dir), str(path)).exit_code == 0


def test_a_picture_in_memory_is_predicted_as_its_file_is(finished_run: Path, picture: Path, tiny_data: Path) -> None:
    """A notebook holds a PIL image or a numpy array, not a file: the same prediction, and a clear error for other things."""
    from_file = zoo.predict(finished_run, picture)
    with Image.open(picture) as image:
        image.load()
        grey = np.array(image.convert("L"))
        as_tensor = torch.from_numpy(grey)
        for given in (image, grey, grey[:, :, None], np.array(image.convert("RGB")), np.array(image.convert("RGBA")), as_tensor,
                      as_tensor[None].float() / 255):  # a uint8 tensor, and one as torchvision's ToTensor makes it
            assert zoo.predict(finished_run, given).probabilities == pytest.approx(from_file.probabilities, abs=1e-4), type(given)
    with Image.open(picture) as image:
        pass
    for wrong, said in [(grey.astype(np.float32), "dtype float32"), (grey[None, :, :, None].repeat(2, 0), "shape (2,"),
                        (grey[:0], "28×0 pixels"), (torch.full((1, 28, 28), 2.0), "dtype float32 and shape (28, 28, 1)"), (np.int64(0) * 1.5, "not float64"),
                        (image, "call .load() inside it"), (Image.new("L", (0, 0)), "at least one pixel"),
                        (Image.new("L", (10_000, 5_001)), "at most 50,000,000"), (Image.fromarray(grey / 255.0), "mode F")]:
        with pytest.raises(zoo.ZooError, match=re.escape(said)):
            zoo.predict(finished_run, wrong)
    assert zoo.predict(finished_run, np.array(3), data_dir=tiny_data, verify=False).index == 3  # a 0-d array is a number


def test_the_python_api_predicts_a_picture_and_evaluates_as_the_cli_does(finished_run: Path, picture: Path, tiny_data: Path,
                                                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from_api = zoo.predict(finished_run, picture)
    assert from_api.predicted in from_api.probabilities and f"{picture}: {from_api.predicted}" in invoke("predict", str(finished_run), str(picture)).output
    with pytest.raises(zoo.ZooError, match="a test sample's number, a picture file's path, a PIL image or a numpy array of pixels; not float"):
        zoo.predict(finished_run, 1.5)  # type: ignore[arg-type]
    with pytest.raises(zoo.ZooError, match=r"'3' is no picture file; for test sample 3, give the number"):
        zoo.predict(finished_run, "3")
    assert zoo.predict(finished_run, np.int64(3), data_dir=tiny_data, verify=False) == zoo.predict(finished_run, 3, data_dir=tiny_data, verify=False)
    evaluation = zoo.evaluate(finished_run, data_dir=tiny_data, verify=False)
    cli_json = json.loads(invoke("eval", str(finished_run), "--data-dir", str(tiny_data), "--no-verify", "--json").output)
    assert (evaluation.accuracy, evaluation.loss, evaluation.confusion) == (cli_json["accuracy"], cli_json["loss"], cli_json["confusion"])
    capsys.readouterr()
    zoo.run(dataset="mnist", epochs=1, out=tmp_path / "quiet", quiet=True, sets=[f"dataset.data_dir={json.dumps(str(tiny_data))}", "dataset.verify=false"])
    assert capsys.readouterr().out == ""  # quiet=True: no log (the recipe's console reporter is left out)


class Growing:
    """A model plugin whose code changes between training and use (a layer wider), as a plugin upgrade would."""

    def __init__(self, width: int) -> None:
        self.width = width

    @zoo.hookimpl
    def register_models(self, register):
        def build(params, shape, classes):
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, self.width), torch.nn.ReLU(), torch.nn.Linear(self.width, classes))

        register("growing", build)


def test_weights_of_a_model_whose_code_changed_say_so(tiny_data: Path, tmp_path: Path) -> None:
    """Not torch's list of size mismatches: the first tensor that differs, and that the plugin builds another network now."""
    trained = zoo.run(model="growing", dataset="mnist", epochs=1, reporters=[], out=tmp_path / "run", catalog=zoo.catalog(extra_plugins=[("growing", Growing(8))]),
                      sets=[f"dataset.data_dir={json.dumps(str(tiny_data))}", "dataset.verify=false"])
    assert zoo.load(trained.run_dir, catalog=zoo.catalog(extra_plugins=[("growing", Growing(8))])).model is not None
    with pytest.raises(zoo.ZooError) as error:
        zoo.load(trained.run_dir, catalog=zoo.catalog(extra_plugins=[("growing", Growing(16))]))
    said = str(error.value)
    assert "holds another network than the model built now: 1.weight is [8, 784] there and [16, 784] here (2 more tensor(s) differ too)" in said
    assert "The model 'growing' is not built as it was: the code of plugin 'growing' that builds it has changed" in said
    assert "restore the plugin's code as it was; or train the model again." in said and "size mismatch" not in said, said


def test_a_released_plugin_of_another_version_is_named_with_the_one_to_reinstall() -> None:
    from zoo.inference import _changed_since

    record = {"name": "mlp-8", "component": "mlp", "plugin": {"name": "builtin-models", "distribution": "zoo", "version": "0.0.9"}}
    said = _changed_since(zoo.catalog(), record)
    assert said == (f"The model 'mlp-8' is not built as it was: zoo 0.0.9 trained it and zoo {zoo.__version__} builds it now. "
                    "To use these weights, reinstall zoo==0.0.9; or train the model again.")


class ReorderedClasses:
    """A notebook's dataset whose class names are edited between the run and its evaluation."""

    names = ["cat", "dog", "owl"]

    @zoo.hookimpl
    def register_datasets(self, register):
        from zoo.data import TensorSplit

        def split(params):
            images = torch.zeros(6, 1, 28, 28)
            return zoo.DatasetSplits(TensorSplit(images, torch.arange(6) % 3), TensorSplit(images, torch.arange(6) % 3), list(self.names), (1, 28, 28))

        register("pets", split)


def test_evaluating_a_run_whose_dataset_now_has_other_classes_is_refused(tmp_path: Path) -> None:
    plugin = ReorderedClasses()
    catalog = zoo.catalog(extra_plugins=[plugin])
    result = zoo.run(model="mlp-8", dataset="pets", epochs=1, catalog=catalog, out=tmp_path / "run", reporters=[])
    assert zoo.evaluate(result).classes == ["cat", "dog", "owl"]
    for use in (zoo.evaluate, lambda run: zoo.predict(run, 0)):  # by its folder alone: the plugin that gave the data is named
        with pytest.raises(zoo.ZooError, match=r"^The dataset 'pets' of these weights came from plugin 'ReorderedClasses', which the code that "
                                               r"trained them loaded in-process"):
            use(str(result.run_dir))
    plugin.names = ["dog", "cat", "owl"]
    with pytest.raises(zoo.ZooError, match=r"^The run's dataset 'pets' now has \(its plugin changed since, or the data it read is other data\) other "
                                           r"classes than the model was trained on: its class 0 is 'dog', the model's 'cat' \(2 of 3 differ\)"):
        zoo.evaluate(result)


class LightBackground:
    """Dark marks on white, as a scanned or photographed dataset has them (FashionMNIST is the other way round)."""

    @zoo.hookimpl
    def register_datasets(self, register):
        from zoo.data import TensorSplit

        def split(params):
            labels = torch.arange(30) % 3
            images = torch.full((30, 1, 28, 28), 255, dtype=torch.uint8)
            for i, label in enumerate(labels.tolist()):
                images[i, 0, 6 * label + 4 : 6 * label + 10, 6:22] = 20 + i
            return zoo.DatasetSplits(TensorSplit(images, labels), TensorSplit(images, labels), ["top", "middle", "bottom"], (1, 28, 28))

        register("light", split)


def test_a_picture_is_inverted_only_when_its_background_is_not_the_training_datas(tmp_path: Path, tiny_data: Path) -> None:
    result = zoo.run(model="mlp-8", dataset="light", epochs=2, catalog=zoo.catalog(extra_plugins=[LightBackground()]), out=tmp_path / "run",
                     reporters=[])
    assert json.loads((result.run_dir / "config.json").read_text())["input_background"] == "light"
    picture = tmp_path / "sample1.png"
    Image.fromarray(np.full((28, 28), 255, np.uint8)).save(picture)
    pixels = np.array(Image.open(picture))
    pixels[10:16, 6:22] = 21  # test sample 1 (label 1) as the user has it: a file
    Image.fromarray(pixels).save(picture)
    from_file, from_index = zoo.predict(result, picture), zoo.predict(result, 1)
    assert from_file.probabilities == pytest.approx(from_index.probabilities, abs=1e-4)  # not inverted: white stays white
    from zoo.data import TensorSplit, background

    white = torch.full((4, 1, 28, 28), 1.0)
    assert background(TensorSplit((white - 0.9) / 0.3, torch.zeros(4)), (0.9, 0.3)) == "light"  # judged on pixels, not standardised values
    dark = zoo.run(model="mlp-8", dataset="mnist", epochs=1, sets=[f"dataset.data_dir={json.dumps(str(tiny_data))}", "dataset.verify=false",
                                                                  "dataset.download=false"], out=tmp_path / "dark", reporters=[])
    assert json.loads((dark.run_dir / "config.json").read_text())["input_background"] == "dark"


class MovableFolder:
    """A dataset whose folder setting must name a folder that exists (pydantic's DirectoryPath)."""

    @zoo.hookimpl
    def register_datasets(self, register):
        from pydantic import BaseModel, ConfigDict, DirectoryPath

        from zoo.data import TensorSplit

        class Params(BaseModel):
            model_config = ConfigDict(extra="forbid")
            root: DirectoryPath = zoo.data_location("data_dir", default=".")

        def folder(params):
            labels = torch.tensor([int(x) for x in (params.root / "labels.txt").read_text().split()])
            images = torch.zeros(len(labels), 1, 28, 28)
            return zoo.DatasetSplits(TensorSplit(images, labels), TensorSplit(images, labels), ["a", "b"], (1, 28, 28))

        register("movable", folder, params=Params)


def test_a_run_evaluates_on_its_data_moved_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "first" / "labels.txt").write_text("0 1 0 1")
    catalog = zoo.catalog(extra_plugins=[MovableFolder()])
    result = zoo.run(model="mlp-8", dataset="movable", epochs=1, catalog=catalog, data_dir=tmp_path / "first", out=tmp_path / "run", reporters=[])
    (tmp_path / "first").rename(tmp_path / "moved")
    assert zoo.evaluate(result, data_dir=tmp_path / "moved").classes == ["a", "b"]  # the recorded folder is gone: not validated first
