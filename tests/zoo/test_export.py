"""zoo export: ONNX (checked with onnxruntime) and .pt2, dynamic batch, class names in the metadata,
a tolerance that fails the command with nothing written, and a model that cannot be exported."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import tiny_sets

import zoo
from zoo.cli import cli

onnx = pytest.importorskip("onnx", reason="zoo[export] is not installed")
onnxruntime = pytest.importorskip("onnxruntime", reason="zoo[export] is not installed")


@pytest.fixture(scope="module")
def finished(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    zoo.run(model="mlp-8", dataset="mnist", epochs=1, sets=[*tiny_sets(tiny_data), "optimizer.lr=0.05"], out=out, reporters=[])
    return out


def export(finished: Path, tiny_data: Path, *extra: str):
    return CliRunner().invoke(cli, ["export", str(finished), "--data-dir", str(tiny_data), "--no-verify", *extra])


def test_onnx_matches_zoo_on_any_batch_size_and_carries_the_classes(finished: Path, tiny_data: Path, tmp_path: Path) -> None:
    import json

    import numpy as np
    import torch

    result = export(finished, tiny_data, "--out", str(tmp_path / "m.onnx"))
    assert result.exit_code == 0, result.output
    assert "classes in its metadata)" in result.output and "replaced" not in result.output
    again = export(finished, tiny_data, "--out", str(tmp_path / "m.onnx"))  # a file of the user's there: replaced, and said
    assert again.exit_code == 0 and "; it replaced the file that was there)" in again.output
    difference = float(result.output.split("largest difference from zoo's outputs ")[1].split()[0])
    assert difference <= 1e-4
    model = onnx.load(str(tmp_path / "m.onnx"))
    assert json.loads({p.key: p.value for p in model.metadata_props}["classes"]) == [str(i) for i in range(10)]
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    loaded = zoo.load(finished)
    for batch in (1, 7):
        images = torch.rand(batch, 1, 28, 28)
        (logits,) = session.run(None, {session.get_inputs()[0].name: images.numpy()})
        assert np.allclose(logits, loaded.model(images).detach().numpy(), atol=1e-4)


def test_pt2_is_written_and_checked(finished: Path, tiny_data: Path, tmp_path: Path) -> None:
    result = export(finished, tiny_data, "--format", "pt2", "--out", str(tmp_path / "m.pt2"))
    assert result.exit_code == 0, result.output
    assert "largest difference" in result.output and (tmp_path / "m.pt2").stat().st_size > 0


def test_a_difference_above_the_tolerance_fails_and_writes_nothing(finished: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zoo.export as exporting

    real = exporting._onnx
    monkeypatch.setattr(exporting, "_onnx", lambda *args: real(*args) + 1e-2)  # an exporter that is off by 0.01
    result = export(finished, tiny_data, "--out", str(tmp_path / "m.onnx"), "--tolerance", "1e-3")
    assert result.exit_code == 2 and "more than --tolerance 0.001" in result.output and "was not written" in result.output
    assert list(tmp_path.iterdir()) == [] or not any(p.suffix == ".onnx" for p in tmp_path.iterdir())


def test_a_model_that_cannot_be_exported_says_why(finished: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    def refuse(*args, **kwargs):
        raise torch._dynamo.exc.Unsupported("data-dependent control flow")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    result = export(finished, tiny_data, "--out", str(tmp_path / "m.onnx"))
    assert result.exit_code == 2 and "cannot be exported to ONNX" in result.output and "mlp-8" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "m.onnx").exists()

    def coloured(*args, **kwargs):
        raise RuntimeError("\x1b[96mThis is step 1/3\x1b[0m of exporting")

    monkeypatch.setattr(torch.onnx, "export", coloured)
    result = export(finished, tiny_data, "--out", str(tmp_path / "m.onnx"))
    assert "RuntimeError: This is step 1/3 of exporting." in result.output and "x1b" not in result.output

    def interrupted(*args, **kwargs):  # torch.export wraps what stopped it, a Ctrl-C included
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as stop:
            raise RuntimeError("export failed") from stop

    monkeypatch.setattr(torch.onnx, "export", interrupted)
    result = export(finished, tiny_data, "--out", str(tmp_path / "m.onnx"))
    assert result.exit_code == 130 and "Interrupted (Ctrl-C)." in result.output and "cannot be exported" not in result.output
    assert list(tmp_path.glob(".m.onnx.*")) == []  # the temporary file went with it


def test_without_the_extra_the_message_names_it(finished: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    result = export(finished, tiny_data, "--out", str(tmp_path / "m.onnx"))
    assert result.exit_code == 2 and "zoo[export]" in result.output


def test_a_model_on_standardised_pixels_carries_its_mean_and_std(tiny_data: Path, tmp_path: Path) -> None:
    import json

    run = zoo.run(model="mlp-8", dataset="mnist", epochs=1, sets=[*tiny_sets(tiny_data), "dataset.normalize=true"], out=tmp_path / "run", reporters=[])
    result = export(run.run_dir, tiny_data, "--out", str(tmp_path / "m.onnx"))
    assert result.exit_code == 0, result.output
    metadata = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(metadata["zoo.input_normalization"]) == json.loads((run.run_dir / "config.json").read_text())["input_normalization"]


@pytest.mark.parametrize("target", ["config.json", "model.safetensors", "device"])
def test_out_never_replaces_a_runs_own_file_or_a_device(finished: Path, target: str, tmp_path: Path) -> None:
    out = finished / target
    if target == "device":  # /dev/null through a link: a regression would replace the link, never the device
        out = tmp_path / "null"
        out.symlink_to("/dev/null")
    before = out.read_bytes() if out.is_file() else None
    result = CliRunner().invoke(cli, ["export", str(finished), "--out", str(out)])
    assert result.exit_code == 2 and f"--out {out} is" in result.output and "Exported" not in result.output
    assert (out.read_bytes() if out.is_file() else None) == before and (target != "device" or out.is_char_device())


def test_a_tolerance_or_file_name_that_cannot_be_meant_is_refused_first(finished: Path, tiny_data: Path, tmp_path: Path) -> None:
    nan = export(finished, tiny_data, "--out", str(tmp_path / "m.onnx"), "--tolerance", "nan")
    assert nan.exit_code == 2 and "--tolerance nan: give a number >= 0" in nan.output
    crossed = export(finished, tiny_data, "--out", str(tmp_path / "m.onnx"), "--format", "pt2")
    assert crossed.exit_code == 2 and "names a .onnx file, but --format pt2 writes a torch.export program: name it m.pt2" in crossed.output
    assert list(tmp_path.iterdir()) == []
