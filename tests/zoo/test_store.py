"""Trained models by name (zoo.store): save, list, load by name with the SHA-256 checked, and every
damaged or ambiguous model refused with one clear error before anything is loaded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import FASHION_MNIST_SYSTEM, tiny_sets

import zoo
from zoo.cli import cli
from zoo.store import CARD, open_source, shipped_root

SHIPPED = "mlp-512-fashion-mnist"


@pytest.fixture(scope="module")
def finished(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mlp-8 trained for 2 epochs on the tiny data."""
    out = tmp_path_factory.mktemp("finished") / "run"
    zoo.run(model="mlp-8", dataset="mnist", epochs=2, sets=[*tiny_sets(tiny_data), "optimizer.lr=0.05"], out=out, reporters=[])
    return out


@pytest.fixture()
def store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("ZOO_MODELS", str(tmp_path / "store"))
    return tmp_path / "store"


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_save_list_load_and_predict_by_name(finished: Path, store: Path, tiny_data: Path) -> None:
    saved = zoo.save(finished, "tiny")
    assert saved.folder == store / "tiny" and (store / "tiny" / CARD).is_file()
    card = json.loads((store / "tiny" / CARD).read_text())
    accuracy = json.loads((finished / "metrics.jsonl").read_text().splitlines()[-1])["test_accuracy"]
    assert card["metrics"]["accuracy"] == accuracy and card["model"] == "mlp-8" and card["parameters"] == 784 * 8 + 8 + 8 * 8 + 8 + 8 * 10 + 10
    listed = invoke("models")
    assert listed.exit_code == 0 and any(line.split()[:2] == ["tiny", "mlp-8"] and f"{accuracy:.2%}" in line for line in listed.output.splitlines())
    assert next(line for line in listed.output.splitlines() if line.startswith("tiny ")).split()[3] == "quickstart*"  # mlp-8 on mnist
    assert "* trained otherwise than its recipe" in listed.output
    shown = invoke("show", "tiny")  # not a component: say what it is and where to look
    assert shown.exit_code == 2 and "'tiny' is a trained model (" in shown.output and "`zoo eval tiny` evaluates it" in shown.output
    as_json = next(m for m in json.loads(invoke("models", "--json").output) if m["name"] == "tiny")
    assert as_json["changed_from_recipe"]["model"] == "mlp-8"
    by_name, by_run = zoo.predict("tiny", 3, data_dir=tiny_data, verify=False), zoo.predict(finished, 3, data_dir=tiny_data, verify=False)
    assert by_name == by_run
    loaded = zoo.load("tiny")
    assert loaded.classes == card["classes"] and loaded.sha256 == card["sha256"] and not loaded.model.training
    assert repr(loaded).startswith("Loaded('tiny") and "6,442 parameters" in repr(loaded) and len(repr(loaded)) < 400  # not the config
    shown = invoke("predict", "tiny", "--index", "3", "--data-dir", str(tiny_data), "--no-verify")
    assert shown.exit_code == 0 and shown.output.startswith("Predicted:")
    evaluated = invoke("eval", "tiny", "--data-dir", str(tiny_data), "--no-verify")
    assert evaluated.exit_code == 0 and f"accuracy {accuracy:.2%}" in evaluated.output and Path("confusion-tiny.png").is_file()
    assert not (store / "tiny" / "confusion.png").exists()  # the stored model's folder stays as saved


def test_save_refuses_a_taken_or_bad_name_and_an_unfinished_run(finished: Path, store: Path, tmp_path: Path) -> None:
    zoo.save(finished, "tiny")
    for name, expected in (("tiny", "already exists"), ("../x", "cannot name"), (SHIPPED, "already exists")):
        result = invoke("save", str(finished), name)
        assert result.exit_code == 2 and expected in result.output and "Traceback" not in result.output
    unfinished = tmp_path / "unfinished"
    shutil.copytree(finished, unfinished)
    (unfinished / "model.safetensors").unlink()
    result = invoke("save", str(unfinished), "other")
    assert result.exit_code == 2 and "has not finished" in result.output and not (store / "other").exists()


def _damage(folder: Path, how: str) -> None:
    weights, card_path = folder / "model.safetensors", folder / CARD
    card = json.loads(card_path.read_text())
    if how == "missing weights":
        weights.unlink()
    elif how == "wrong sha256":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 1
        weights.write_bytes(bytes(data))
    elif how == "invalid card":
        del card["classes"]
        card_path.write_text(json.dumps(card))
    elif how == "missing card":
        card_path.unlink()
    elif how == "pickle renamed":  # a pickle under the safetensors name, its SHA-256 recorded as if genuine
        import hashlib
        import pickle

        weights.write_bytes(pickle.dumps({"weight": [1.0, 2.0]}))
        card["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
        card_path.write_text(json.dumps(card))


@pytest.mark.parametrize(("how", "expected"), [
    ("missing weights", "has no weights file"), ("wrong sha256", "SHA-256"), ("invalid card", "not a valid model card"),
    ("missing card", f"has no {CARD}"), ("pickle renamed", "not a valid safetensors file"),
])
def test_a_damaged_model_is_one_clear_error_and_nothing_is_loaded(finished: Path, store: Path, tiny_data: Path, how: str, expected: str) -> None:
    zoo.save(finished, "tiny")
    _damage(store / "tiny", how)
    with pytest.raises(zoo.ZooError, match=expected):
        zoo.load("tiny")
    result = invoke("predict", "tiny", "--data-dir", str(tiny_data), "--no-verify")
    assert result.exit_code == 2 and expected in result.output and "Traceback" not in result.output


def test_a_name_that_is_also_a_run_directory_is_an_error_naming_both(finished: Path, store: Path, tmp_path: Path) -> None:
    zoo.save(finished, "tiny")
    shutil.copytree(finished, tmp_path / "tiny")  # the tests run in tmp_path: ./tiny is a run directory
    with pytest.raises(zoo.ZooError) as error:
        zoo.load("tiny")
    assert "both a trained model" in str(error.value) and str(store / "tiny") in str(error.value) and str(tmp_path / "tiny") in str(error.value)
    assert zoo.load(str(tmp_path / "tiny")).label == str(tmp_path / "tiny")  # by another path, it is the run


def test_an_unknown_name_says_what_exists(store: Path) -> None:
    result = invoke("predict", "no-such-model")
    assert result.exit_code == 2 and "is not a trained model" in result.output and "zoo models" in result.output


def test_zoo_models_does_not_import_torch(store: Path) -> None:
    code = "import sys; from zoo.cli import cli\ntry: cli(['models'], standalone_mode=False)\nexcept SystemExit: pass\nassert 'torch' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert SHIPPED in result.stdout


def test_the_shipped_model_is_in_the_package_and_its_sha256_matches() -> None:
    source = open_source(SHIPPED)
    assert source.card is not None and source.card.model == "mlp-512" and source.card.recipe == "tuned"
    assert source.weights.parent == shipped_root() / SHIPPED and source.card.metrics.accuracy > 0.85
    assert 2_000_000 < source.weights.stat().st_size < 3_500_000


def test_a_plugin_ships_trained_models(plugin_site: Path, monkeypatch: pytest.MonkeyPatch, store: Path, tiny_data: Path) -> None:
    monkeypatch.syspath_prepend(str(plugin_site))
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "demo")
    rows = {row.stored.name: row for row in zoo.models()}
    assert rows["linear-demo"].stored.origin == "demo" and rows["linear-demo"].card.model == "linear"
    prediction = zoo.predict("linear-demo", 0, data_dir=tiny_data, verify=False)
    assert set(prediction.probabilities) == {str(i) for i in range(10)}


@pytest.mark.slow
@pytest.mark.skipif(not (FASHION_MNIST_SYSTEM / "t10k-images-idx3-ubyte.gz").exists(), reason="the real FashionMNIST is not installed")
def test_the_shipped_model_scores_what_its_card_says_on_the_real_fashion_mnist() -> None:
    card = zoo.load(SHIPPED).card
    result = invoke("eval", SHIPPED, "--data-dir", str(FASHION_MNIST_SYSTEM), "--json")
    assert result.exit_code == 0, result.output
    accuracy = json.loads(result.output[result.output.index("{"):])["accuracy"]
    assert accuracy >= 0.88 and abs(accuracy - card.metrics.accuracy) < 0.005  # the run tested in bf16 autocast, eval in fp32


def test_a_run_named_as_zoo_runs_lists_it_is_found_under_runs(finished: Path, store: Path, tiny_data: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    (tmp_path / "runs").mkdir()
    shutil.copytree(finished, tmp_path / "runs" / "20261129-101010-mlp-8-mnist")
    monkeypatch.chdir(tmp_path)
    name = "20261129-101010-mlp-8-mnist"  # as the RUN column prints it
    assert invoke("predict", name, "--index", "3", "--data-dir", str(tiny_data), "--no-verify").output.startswith("Predicted:")
    evaluated = invoke("eval", name, "--data-dir", str(tiny_data), "--no-verify")
    assert evaluated.exit_code == 0 and (tmp_path / "runs" / name / "confusion.png").is_file()
    assert invoke("save", name, "by-name").exit_code == 0 and json.loads((store / "by-name" / CARD).read_text())["source"] == f"runs/{name}"
    shutil.copytree(tmp_path / "runs" / name, tmp_path / "runs" / "by-name")  # listed under the name it was saved as: the stored model
    (tmp_path / "runs" / "by-name" / "confusion.png").unlink()  # drawn by the eval above
    for command in (["predict", "by-name", "--index", "3"], ["eval", "by-name"]):
        assert invoke(*command, "--data-dir", str(tiny_data), "--no-verify").exit_code == 0
    assert (tmp_path / "confusion-by-name.png").is_file() and not (tmp_path / "runs" / "by-name" / "confusion.png").exists()


def test_cut_short_or_diverged_weights_are_named_and_not_stored(finished: Path, store: Path, tiny_data: Path, tmp_path: Path) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    cut = shutil.copytree(finished, tmp_path / "cut")
    data = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(data[: len(data) - 100])
    refused = invoke("predict", str(cut), "--index", "0", "--data-dir", str(tiny_data), "--no-verify")
    assert refused.exit_code == 2 and "is cut short (" in refused.output and "copy the file again" in refused.output
    diverged = shutil.copytree(finished, tmp_path / "diverged")
    tensors = load_file(diverged / "model.safetensors")
    first = sorted(tensors)[0]
    tensors[first][0] = float("nan")
    save_file(tensors, diverged / "model.safetensors")
    saved = invoke("save", str(diverged), "diverged")
    assert saved.exit_code == 2 and f"holds NaN or infinite values (in {first})" in saved.output and not (store / "diverged").exists()


def test_a_weights_file_safetensors_refuses_is_not_stored(finished: Path, store: Path, tmp_path: Path) -> None:
    import shutil
    import struct

    bad = shutil.copytree(finished, tmp_path / "bad")
    data = (bad / "model.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    key = next(k for k in header if k != "__metadata__")
    header[key]["dtype"] = "Q7"  # no such dtype
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= length  # "Q7" is shorter than the dtype it replaces; safetensors pads a header with spaces
    (bad / "model.safetensors").write_bytes(data[:8] + text.ljust(length) + data[8 + length:])
    refused = invoke("save", str(bad), "bad")
    assert refused.exit_code == 2 and "is not a valid safetensors file" in refused.output and not (store / "bad").exists()


def test_a_model_not_known_to_match_its_recipe_is_marked(finished: Path, store: Path) -> None:
    """A model saved before runs recorded how they differ from their recipe: "?" and why; the shipped one, trained by its
    recipe as it is, has no mark."""
    assert invoke("save", str(finished), "older").exit_code == 0
    card = json.loads((store / "older" / "card.json").read_text())
    del card["config"]["changed_from_recipe"]
    (store / "older" / "card.json").write_text(json.dumps(card))
    listed = invoke("models").output.splitlines()
    assert next(line for line in listed if line.startswith("older ")).split()[3] == "quickstart?"
    assert next(line for line in listed if line.startswith(SHIPPED + " ")).split()[3] == "tuned"
    assert "? not known to match its recipe (saved by an older zoo" in "\n".join(listed)


def test_a_relative_xdg_folder_is_ignored_as_the_spec_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """XDG_DATA_HOME=data (relative) would put the store wherever zoo runs from."""
    from zoo.store import store_root
    from zoo_plugins.datasets import cache_dir

    home = Path.home()
    assert store_root({"XDG_DATA_HOME": "data"}) == home / ".local" / "share" / "zoo" / "models"
    assert store_root({"XDG_DATA_HOME": "/srv/data"}) == Path("/srv/data/zoo/models")
    monkeypatch.setenv("XDG_CACHE_HOME", "cache")
    assert cache_dir() == home / ".cache" / "zoo"


def test_a_save_racing_another_a_killed_one_and_a_store_that_is_a_file(finished: Path, store: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import time

    stale, fresh = store / ".zoo-saving-old.abc123", store / ".zoo-saving-busy.def456"  # a save killed an hour ago; one copying now
    theirs = store / ".config.d"  # the user's own hidden folder in a store that is any folder (--store), as old
    for folder in (stale, fresh, theirs):
        folder.mkdir(parents=True)
    (fresh / "model.safetensors").write_bytes(b"still being written")
    for path in (stale, fresh, theirs):  # the busy save's folder is old, but not what it is writing
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    rename = os.rename

    def beaten(source: str, target: str) -> None:  # another `zoo save NAME` finishes first
        Path(target).mkdir()
        (Path(target) / "model.safetensors").write_bytes(b"theirs")
        rename(source, target)

    monkeypatch.setattr(os, "rename", beaten)
    result = invoke("save", str(finished), "raced")
    assert result.exit_code == 2 and "was stored in" in result.output and "by another process just now" in result.output
    assert (store / "raced" / "model.safetensors").read_bytes() == b"theirs"  # theirs stays
    assert sorted(p.name for p in store.iterdir() if p.name.startswith(".")) == [".config.d", ".zoo-saving-busy.def456"]  # the stale one gone
    monkeypatch.setattr(os, "rename", rename)
    afile = tmp_path / "afile"
    afile.write_text("")
    monkeypatch.setenv("ZOO_MODELS", str(afile))
    result = invoke("save", str(finished), "other")
    assert result.exit_code == 2 and f"The model store {afile} is a file, not a folder" in result.output
    listed = invoke("models")  # not an empty store: the same mistake, said
    assert listed.exit_code == 2 and f"The model store {afile} is a file, not a folder" in listed.output


def test_commands_that_read_a_model_by_name_take_store_for_that_command_only(finished: Path, store: Path, tiny_data: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-store"
    assert invoke("save", str(finished), "elsewhere", "--store", str(other)).exit_code == 0
    data = ["--data-dir", str(tiny_data), "--no-verify"]
    for args in (["predict", "elsewhere", "--index", "3", *data], ["eval", "elsewhere", "--json", *data]):
        assert invoke(*args, "--store", str(other)).exit_code == 0, args
        missing = invoke(*args)  # the next command looks in ZOO_MODELS again
        assert missing.exit_code == 2 and "elsewhere is not a trained model" in missing.output, missing.output
    failed = invoke("eval", "elsewhere", "--store", str(other), "--precision", "fp64")  # an option after --store fails to parse
    assert failed.exit_code == 2 and invoke("predict", "elsewhere", "--index", "3", *data).exit_code == 2  # and the store is still forgotten
    nowhere = invoke("predict", "elsewhere", "--store", str(tmp_path / "nowhere"))
    assert nowhere.exit_code == 2 and "does not exist" in nowhere.output
    exported = invoke("export", "elsewhere", "--format", "pt2", "--out", str(tmp_path / "m.pt2"), "--samples", "2", "--store", str(other), *data)
    assert exported.exit_code == 0 and (tmp_path / "m.pt2").is_file(), exported.output


@pytest.mark.parametrize("last_line", ['{"epoch": "a"}', '{"epoch": 1, "test_accuracy": 5}', "[1, 2]", "null", "not json"])
def test_a_run_with_damaged_metrics_is_not_saved(finished: Path, store: Path, tmp_path: Path, last_line: str) -> None:
    """A card must say how well its model does: a metrics.jsonl the run did not write is one paragraph, and nothing is stored."""
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(finished, damaged)
    (damaged / "metrics.jsonl").write_text((finished / "metrics.jsonl").read_text() + last_line + "\n")
    result = invoke("save", str(damaged), "broken")
    assert result.exit_code == 2 and f"{damaged / 'metrics.jsonl'} is damaged" in result.output and "nothing was stored" in result.output
    assert "Traceback" not in result.output and not (store / "broken").exists()
