"""bench/results.py: recording a measurement keeps other machines' results, and zoo reads what it writes."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import pytest

from zoo.presets import Presets

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("bench_results", ROOT / "bench" / "results.py")
results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(results)

HEAD = '[models.mlp-512]\ncomponent = "mlp"\nparams = { hidden = [512, 512] }\n'
OLD = HEAD + (
    "\n# Results measured by `make bench` (bench/bench.py rewrites this section).\n"
    "[models.mlp-512.results]\n"
    '"fashion-mnist/quickstart" = { accuracy = 0.6492, seconds = 14.3, measured = "2026-11-27" }\n'
    '"fashion-mnist/tuned" = { accuracy = 0.9066, seconds = 41.9, measured = "2026-11-27" }\n'
)
HERE = {"precision": "fp32", "machine": 'AMD "EPYC"', "device": "cpu", "cores": 2, "native_bf16": False}


def tuned(accuracy: float, **fields: object) -> dict[str, object]:
    return {"accuracy": accuracy, "accuracies": [accuracy - 0.001, accuracy + 0.001], "seconds": 40.0, "wall": 50.5,
            "reference_epochs": 18.25, **HERE, "measured": "2026-12-01", **fields}


def load(text: str, tmp_path: Path) -> dict[str, list]:
    path = tmp_path / "registry.toml"
    path.write_text(text)
    presets = Presets()
    presets.load_file(path)
    return presets.find("model", "mlp-512")[1].results


def test_a_first_record_keeps_the_old_results_and_the_head(tmp_path: Path) -> None:
    text = results.record(OLD, "models", "mlp-512", {"fashion-mnist/tuned": tuned(0.912)})
    assert text.startswith(HEAD) and text.count(results.RESULTS_MARKER) == 1
    read = load(text, tmp_path)
    assert [r.accuracy for r in read["fashion-mnist/quickstart"]] == [0.6492]
    old, new = read["fashion-mnist/tuned"]
    assert (old.machine, old.accuracy) == ("", 0.9066)
    assert (new.machine, new.accuracies, new.reference_epochs, new.native_bf16) == ('AMD "EPYC"', [0.911, 0.913], 18.25, False)


def test_a_new_measurement_replaces_only_its_own_machine_and_precision(tmp_path: Path) -> None:
    text = results.record(OLD, "models", "mlp-512", {"fashion-mnist/tuned": tuned(0.912)})
    text = results.record(text, "models", "mlp-512", {"fashion-mnist/tuned": tuned(0.905, native_bf16=True, precision="bf16")})
    text = results.record(text, "models", "mlp-512", {"fashion-mnist/tuned": tuned(0.914)})
    read = load(text, tmp_path)["fashion-mnist/tuned"]
    assert [(r.accuracy, r.precision, r.native_bf16) for r in read] == [(0.9066, None, None), (0.905, "bf16", True), (0.914, "fp32", False)]


def test_a_record_into_a_file_without_results_adds_the_section(tmp_path: Path) -> None:
    text = results.record(HEAD, "models", "mlp-512", {"fashion-mnist/tuned": tuned(0.91)})
    assert tomllib.loads(text)["models"]["mlp-512"]["params"] == {"hidden": [512, 512]}
    assert [r.accuracy for r in load(text, tmp_path)["fashion-mnist/tuned"]] == [0.91]


@pytest.mark.parametrize(("value", "text"), [(True, "true"), (0.912345, "0.9123"), (14.0, "14.0"), (2, "2"), ('a"b', '"a\\"b"'), ([0.5, 1.0], "[0.5, 1.0]")])
def test_toml_values(value: object, text: str) -> None:
    assert results.toml_value(value) == text
    assert tomllib.loads(f"x = {text}")["x"] == (round(value, 4) if isinstance(value, float) else value)


def test_a_new_version_of_the_recipe_drops_every_machines_results_of_the_old(tmp_path: Path) -> None:
    text = results.record(OLD, "models", "mlp-512", {"fashion-mnist/tuned": tuned(0.912, recipe="aaaaaaaaaaaa")})
    text = results.record(text, "models", "mlp-512", {"fashion-mnist/tuned": tuned(0.905, native_bf16=True, precision="bf16", recipe="aaaaaaaaaaaa")})
    text = results.record(text, "models", "mlp-512", {"fashion-mnist/tuned": tuned(0.914, recipe="bbbbbbbbbbbb")})
    read = load(text, tmp_path)["fashion-mnist/tuned"]
    assert [(r.accuracy, r.recipe) for r in read] == [(0.9066, ""), (0.914, "bbbbbbbbbbbb")]  # the unversioned one cannot tell
