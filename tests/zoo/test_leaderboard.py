"""zoo leaderboard: the grid is trained once (cells already done are skipped), a failing cell is
recorded and the rest go on (exit 1), wildcards expand to concrete presets, and --record writes a
preset's result that zoo list reads."""

from __future__ import annotations

import csv
import json
import shutil
from functools import partial
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import ROOT

import zoo
from zoo.cli import cli
from zoo.errors import speaking_to_the_command_line
from zoo.leaderboard import expand_models, record, table
from zoo.plugins import load_catalog


def test_wildcards_expand_to_concrete_presets_and_components() -> None:
    catalog = load_catalog()
    assert expand_models(catalog, ["mlp-*"]) == ["mlp-256", "mlp-512", "mlp-1024"]
    assert expand_models(catalog, ["mlp*,mlp-128"]) == ["mlp", "mlp-256", "mlp-512", "mlp-1024", "mlp-128"]
    with pytest.raises(zoo.ZooError, match="matches no model"):
        expand_models(catalog, ["cnn-*"])
    with pytest.raises(zoo.ZooError, match="Did you mean"):
        expand_models(catalog, ["mlp-1x"])


def test_a_grid_with_a_failing_cell_goes_on_records_it_and_is_not_trained_twice(tiny_data: Path, tmp_path: Path) -> None:
    args = ["leaderboard", "--models", "mlp-8,mlp-0", "--datasets", "mnist", "--seeds", "2", "--epochs", "1", "--data-dir", str(tiny_data),
            "--no-verify", "--set", "optimizer.lr=0.05", "--out", str(tmp_path / "lb")]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 1 and "2 of 4 cells failed" in first.output and "mlp-0" in first.output
    cells = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "lb" / "cells").glob("*.json")}
    assert {c["status"] for k, c in cells.items() if k.startswith("mlp-0")} == {"failed"}
    ok = [c for k, c in cells.items() if k.startswith("mlp-8--")]
    assert [c["status"] for c in ok] == ["ok", "ok"] and all(c["parameters"] == 6442 for c in ok)
    rows = list(csv.DictReader((tmp_path / "lb" / "leaderboard.csv").open()))
    mlp8 = next(r for r in rows if r["model"] == "mlp-8")
    accuracies = [c["accuracy"] for c in ok]
    assert float(mlp8["accuracy"]) == pytest.approx(sum(accuracies) / 2) and mlp8["seeds"] == "2" and mlp8["device"] == "cpu"
    assert mlp8["changed"] == "False" and mlp8["epochs"] == "1"
    assert "| mlp-8 | mnist | quickstart | 1 | 2 |" in (tmp_path / "lb" / "leaderboard.md").read_text()  # --epochs 1: shown, not the recipe's 5
    for picture in ("accuracy-vs-parameters.png", "accuracy-vs-time.png"):
        assert (tmp_path / "lb" / picture).read_bytes()[:4] == b"\x89PNG"
    again = CliRunner().invoke(cli, [*args[:2], "mlp-8", *args[3:], "--threads", "1"])
    assert again.exit_code == 0 and again.output.count("already done") == 2  # --threads changes no cell
    for cell in (tmp_path / "lb" / "cells").glob("mlp-8--*.json"):  # as recorded before cells kept their recipe's fingerprint
        cell.write_text(json.dumps({key: value for key, value in json.loads(cell.read_text()).items() if key != "recipe_fingerprint"}))
    kept = CliRunner().invoke(cli, [*args[:2], "mlp-8", *args[3:]])
    assert kept.exit_code == 0 and kept.output.count("already done") == 2  # their runs' config_hash is what they would train now
    assert all("recipe_fingerprint" in json.loads(cell.read_text()) for cell in (tmp_path / "lb" / "cells").glob("mlp-8--*.json"))
    for cell in (tmp_path / "lb" / "cells").glob("mlp-8--*.json"):  # as if trained under an earlier version of the recipe
        cell.write_text(json.dumps({**json.loads(cell.read_text()), "recipe_fingerprint": "0123456789ab"}))
    retrained = CliRunner().invoke(cli, [*args[:2], "mlp-8", *args[3:], "--threads", "1"])
    assert retrained.exit_code == 0 and "already done" not in retrained.output  # its cells are trained again, not filed under today's recipe
    threads = {json.loads((Path(json.loads(c.read_text())["run_dir"]) / "config.json").read_text())["machine"]["threads"]
               for c in (tmp_path / "lb" / "cells").glob("mlp-8--*.json")}
    assert threads == {1}  # --threads 1: every cell's run computed with one
    assert len(list((tmp_path / "lb" / "runs").iterdir())) == 4  # the two cells, and their second training
    from zoo.runlock import hold

    with hold(tmp_path / "lb", leaderboard=True):  # another leaderboard at work in the folder
        busy = CliRunner().invoke(cli, [*args[:2], "mlp-16", *args[3:]])
    assert busy.exit_code == 2 and f"The leaderboard folder {tmp_path / 'lb'} is in use by process" in busy.output
    assert len(list((tmp_path / "lb" / "runs").iterdir())) == 4 and not list((tmp_path / "lb" / "cells").glob("mlp-16*"))


def test_an_empty_grid_is_an_error_not_an_empty_table(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["leaderboard", "--models", "mlp-8", "--datasets", "", "--out", str(tmp_path / "lb")])
    assert result.exit_code == 2 and "The leaderboard's grid is empty" in result.output and "datasets: none given" in result.output
    assert not (tmp_path / "lb").exists()
    from zoo import api

    with pytest.raises(zoo.ZooError, match=r"\(seeds=0\)"):
        api.leaderboard(["mlp-8"], seeds=0, out=tmp_path / "lb")


def test_record_refuses_unverified_data_before_training(tiny_data: Path, tmp_path: Path) -> None:
    """256 random images under --no-verify are no preset's MNIST result."""
    result = CliRunner().invoke(cli, ["leaderboard", "--models", "mlp-8", "--datasets", "mnist", "--data-dir", str(tiny_data), "--no-verify",
                                      "--record", "--out", str(tmp_path / "lb")])
    assert result.exit_code == 2 and "--record files each result as the preset's on the real dataset" in result.output
    assert not (tmp_path / "lb").exists()
    changed = CliRunner().invoke(cli, ["leaderboard", "--models", "mlp-8", "--datasets", "mnist", "--epochs", "1", "--record", "--out", str(tmp_path / "lb")])
    assert changed.exit_code == 2 and "the grid must train them as they are: leave out --epochs and --set" in changed.output
    assert not (tmp_path / "lb").exists()


def test_record_writes_the_presets_result_for_zoo_list(tmp_path: Path) -> None:
    registry = tmp_path / "registry.toml"
    shutil.copyfile(ROOT / "registry.toml", registry)
    from zoo import api

    cell = {"model": "mlp-256", "dataset": "fashion-mnist", "recipe": "quickstart"}
    runs = {"as-preset": {"seed": 3, "device": "cpu"}, "other-network": {"sets": ["model.hidden=[4,4]"]}, "other-epochs": {"epochs": 1},
            "other-lr": {"sets": ["optimizer.lr=0.5"]}, "other-data": {"sets": ["dataset.normalize=true"]}}
    runs["unverified"] = {}
    for name, settings in runs.items():  # what record reads of each cell's run: its config.json
        (tmp_path / name).mkdir()
        files = {"train-images-idx3-ubyte": {"path": "/data/train-images-idx3-ubyte", "verified": name != "unverified", "sha256": "0" * 64}}
        (tmp_path / name / "config.json").write_text(json.dumps({**api.resolve(**cell, **settings)[1].to_json(), "data_files": files}))
    rows = [{"status": "ok", "model": "mlp-256", "dataset": "fashion-mnist", "recipe": "quickstart", "accuracy": a, "seconds": 10.0,
             "parameters": 269322, "device": "cpu", "machine": "Test CPU", "precision": "fp32", "zoo": "0", "torch": "0",
             "run_dir": str(tmp_path / "as-preset"), "recipe_fingerprint": load_catalog().presets.fingerprints()["quickstart"]} for a in (0.8, 0.82)]
    resolve = partial(api.resolve, catalog=load_catalog())
    assert record(table(rows), load_catalog(), resolve, registry) == ["mlp-256 fashion-mnist/quickstart"]
    from zoo.presets import Presets

    presets = Presets()
    presets.load_file(registry)
    result = presets.presets["model"]["mlp-256"].value.results["fashion-mnist/quickstart"][-1]
    assert result.accuracy == pytest.approx(0.81) and result.accuracies == [0.8, 0.82] and result.machine == "Test CPU"
    assert result.recipe == presets.fingerprints()["quickstart"]  # so a changed recipe's result is not quoted for it
    for run_dir in [*(tmp_path / name for name in runs if name != "as-preset"), tmp_path / "gone"]:  # shared --set/--epochs; unreadable
        assert record(table([{**row, "run_dir": str(run_dir)} for row in rows]), load_catalog(), resolve, registry) == [], run_dir


def test_sigterm_stops_the_whole_grid_not_one_cell(tmp_path: Path) -> None:
    """A queue's SIGTERM (Interrupted, as Ctrl-C) ends the leaderboard; it is not a failed cell to go on from."""
    from zoo.errors import Interrupted
    from zoo.leaderboard import grid, run_grid

    trained = []

    def stopped(**settings):
        trained.append(settings)
        raise Interrupted("Interrupted (SIGTERM) after step 1 of epoch 1. A checkpoint is in x; continue with `zoo run --resume lb/runs/x`.", 143)

    with speaking_to_the_command_line(), pytest.raises(Interrupted) as stop:
        run_grid(grid(["mlp-8", "mlp-16"], ["mnist"], ["quickstart"], 1), tmp_path / "lb", load_catalog(), {}, stopped)
    assert len(trained) == 1 and not list((tmp_path / "lb" / "cells").iterdir())
    assert stop.value.exit_code == 143 and "zoo run --resume" not in str(stop.value)  # the grid goes on as it began:
    assert str(stop.value).endswith("continue by running the same leaderboard again (`zoo leaderboard` with the same --out): "
                                    "it resumes this cell from its checkpoint and keeps the finished ones.")
    with pytest.raises(Interrupted) as stop:  # zoo.api.leaderboard's own words: a cell stopped in Python says zoo.run(resume=...)
        run_grid(grid(["mlp-8"], ["mnist"], ["quickstart"], 1), tmp_path / "lb2", load_catalog(), {},
                 lambda **settings: (_ for _ in ()).throw(Interrupted("Interrupted (Ctrl-C) after step 1 of epoch 1. A checkpoint is in x; "
                                                                      "continue with zoo.run(resume='lb (2)/runs/x').", 130,
                                                                      Path("lb (2)/runs/x"))))
    assert str(stop.value).endswith("continue by calling zoo.api.leaderboard again with the same out=: it resumes this cell from its "
                                    "checkpoint and keeps the finished ones.")


def test_a_cell_done_with_other_settings_is_trained_again_however_they_are_given() -> None:
    from zoo.leaderboard import _what

    assert _what({"sets": {"optimizer.lr": 0.1}}) != _what({"sets": {"optimizer.lr": 0.5}})
    assert _what({"sets": "optimizer.lr=0.1"}) == _what({"sets": ["optimizer.lr=0.1"]})
    assert _what({"params": {"optimizer": {"lr": 0.1}}}) != _what({"params": {"optimizer": {"lr": 0.5}}})
    assert _what({"sets": ["optimizer.lr=0.1"]}) == {"epochs": None, "sets": ["optimizer.lr=0.1"], "device": None}  # as cells recorded it


def test_settings_no_cell_can_take_fail_the_command_before_anything_trains(tiny_data: Path, tmp_path: Path) -> None:
    """A bad shared --set is the command's error (exit 2), not a failed cell after a failed cell."""
    args = ["leaderboard", "--models", "mlp-8,mlp-16", "--datasets", "mnist", "--epochs", "1", "--data-dir", str(tiny_data),
            "--no-verify", "--set", "optimizer.lr=-1", "--out", str(tmp_path / "lb")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "lr" in result.output and "nothing was trained" in result.output, result.output
    assert "mlp-8 on mnist with recipe quickstart" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "lb" / "runs").exists() and not list((tmp_path / "lb").glob("cells/*"))
    from zoo import api

    with pytest.raises(zoo.ZooError, match="nothing was trained"):
        api.leaderboard(["mlp-8"], ["mnist"], sets={"optimizer.lr": -1}, epochs=1, out=tmp_path / "lb", data_dir=tiny_data, verify=False)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(zoo.ZooError, match="no cuda device"):
            api.leaderboard(["mlp-8"], ["mnist"], device="cuda", epochs=1, out=tmp_path / "lb", data_dir=tiny_data, verify=False)
    assert not (tmp_path / "lb" / "runs").exists()


def test_a_shared_set_that_changes_the_presets_network_is_marked_in_the_table(tiny_data: Path, tmp_path: Path) -> None:
    args = ["leaderboard", "--models", "mlp-8", "--datasets", "mnist", "--epochs", "1", "--data-dir", str(tiny_data), "--no-verify",
            "--set", "model.hidden=[4, 4]", "--out", str(tmp_path / "lb")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    table_text = (tmp_path / "lb" / "leaderboard.md").read_text()
    assert "| mlp-8* | mnist |" in table_text and "A model marked * was trained with settings" in table_text
    assert [row["changed"] for row in csv.DictReader((tmp_path / "lb" / "leaderboard.csv").open())] == ["True"]


def test_record_names_each_line_it_did_not_record(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """--record that records nothing said nothing, and left registry.toml as it was: now each line left out is named."""
    from zoo import api
    from zoo.leaderboard import Board

    line = {"model": "mlp-8", "dataset": "fashion-mnist", "recipe": "quickstart", "epochs": 5, "seeds": 1, "failed": 0, "accuracy": 0.5,
            "spread": 0.0, "parameters": 6442, "seconds": 1.0, "device": "cpu", "machine": "CPU", "zoo": "0", "torch": "0"}
    monkeypatch.setattr(api, "leaderboard", lambda *args, **kwargs: Board([], [line], [], []))
    result = CliRunner().invoke(cli, ["leaderboard", "--models", "mlp-8", "--record", "--out", str(tmp_path / "lb")])
    assert result.exit_code == 0 and "Not recorded: mlp-8 fashion-mnist/quickstart (no result, not a preset" in result.output


def test_the_command_works_in_a_fresh_process() -> None:
    """In-process tests import zoo.leaderboard themselves, which hid a top-level zoo.leaderboard function shadowing the
    module for `from . import leaderboard`: the console script, in a process of its own, must get as far as the grid."""
    from helpers import run_zoo

    result = run_zoo("leaderboard", "--models", "mlp-8", "--datasets", "")
    assert result.returncode == 2 and "The leaderboard's grid is empty" in result.stderr and "Traceback" not in result.stderr, result.stderr
