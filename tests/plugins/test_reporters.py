"""The console reporter prints what the PyTorch Quickstart prints, character for character."""

from __future__ import annotations

import io
import json
from pathlib import Path

from zoo.contracts import EpochEnd, Prediction, RunEnd, RunStart, Step
from zoo.metrics import JsonlReporter
from zoo_plugins.reporters import ConsoleReporter


def test_console_lines_match_the_quickstart() -> None:
    out = io.StringIO()
    console = ConsoleReporter(out)
    console.on_run_start(RunStart(Path("r"), {}, "cpu", [], 60000, 10000))
    console.on_epoch_start(3)
    console.on_step(Step(3, 0, 1.92368, 64, 60000))
    console.on_step(Step(3, 100, 1.0, 6464, 60000))
    console.on_epoch_end(EpochEnd(3, 1.7, 1.5120712, 0.6106, 2.0))
    console.on_run_end(RunEnd(Path("r"), Path("r/model.safetensors")))
    assert out.getvalue().split("\n") == [
        "Using cpu device",
        "Epoch 3",
        "-------------------------------",
        "loss: 1.923680  [   64/60000]",
        "loss: 1.000000  [ 6464/60000]",
        "Test Error: ",
        " Accuracy: 61.1%, Avg loss: 1.512071 ",
        "",
        "Done!",
        "Saved PyTorch Model State to r/model.safetensors",
        "",
    ]


def test_prediction_block_shows_every_class_probability() -> None:
    out = io.StringIO()
    probabilities = {"Bag": 0.1, "Ankle boot": 0.9}
    ConsoleReporter(out).on_prediction(Prediction(0, "Ankle boot", "Ankle boot", probabilities))
    lines = out.getvalue().splitlines()
    assert lines[0] == 'Predicted: "Ankle boot", Actual: "Ankle boot"'
    assert lines[1].split() == ["Bag", "10.00%", "###"]
    assert lines[2].split() == ["Ankle", "boot", "90.00%", "#" * 27]


def test_jsonl_writes_one_object_per_epoch(tmp_path: Path) -> None:
    reporter = JsonlReporter(tmp_path / "m.jsonl")
    for epoch in (1, 2):
        reporter.on_epoch_end(EpochEnd(epoch, 2.0 / epoch, 1.5 / epoch, 0.5, 1.25))
    reporter.close()
    records = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert records == [
        {"epoch": 1, "train_loss": 2.0, "test_loss": 1.5, "test_accuracy": 0.5, "seconds": 1.25},
        {"epoch": 2, "train_loss": 1.0, "test_loss": 0.75, "test_accuracy": 0.5, "seconds": 1.25},
    ]
