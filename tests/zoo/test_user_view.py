"""What a person sees: plots, predictions on image files, evaluation, the runs browser, the
progress bar on a real terminal, TensorBoard."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import shutil
import struct
import termios
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import ZOO, zoo_here
from PIL import Image

import zoo
from zoo.cli import cli
from zoo.errors import ZooError


@pytest.fixture(scope="module")
def finished_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("view") / "run"
    zoo.run(dataset="mnist", epochs=3, out=out, reporters=[], log_every=2,
            sets=[f"dataset.data_dir={json.dumps(str(tiny_data))}", "dataset.verify=false", "optimizer.lr=0.1"])
    return out


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def assert_picture(path: Path, size: tuple[int, int]) -> None:
    image = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert (image.shape[1], image.shape[0]) == size
    assert image.std() > 10  # not blank


def test_every_run_draws_its_curves(finished_run: Path) -> None:
    assert_picture(finished_run / "curves.png", (1000, 400))
    steps = [json.loads(line) for line in (finished_run / "steps.jsonl").read_text().splitlines()]
    assert [s["global_step"] for s in steps] == [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29]


def test_predict_several_indices_into_a_grid(finished_run: Path, tiny_data: Path, tmp_path: Path) -> None:
    grid = tmp_path / "grid.png"
    result = invoke("predict", str(finished_run), "--index", "0", "5", "17", "--grid", str(grid), "--data-dir", str(tiny_data), "--no-verify")
    assert result.exit_code == 0, result.output
    assert sum(line.startswith("Predicted: ") for line in result.output.splitlines()) == 3
    assert_picture(grid, (780, 520))


def write_png(image: torch.Tensor, path: Path, invert: bool = False, scale: int = 1) -> Path:
    pixels = (image[0] * 255).round().byte().numpy()
    if invert:
        pixels = 255 - pixels
    Image.fromarray(pixels).resize((28 * scale, 28 * scale), Image.NEAREST).save(path)
    return path


def test_predict_on_a_png_matches_predict_on_the_index(finished_run: Path, tiny_data: Path, tmp_path: Path) -> None:
    from zoo_plugins.datasets import IDXParams, build_mnist

    test = build_mnist(IDXParams(data_dir=tiny_data, verify=False)).test
    for index in (0, 3, 7):
        expected = zoo.predict(finished_run, index, data_dir=tiny_data, verify=False).predicted
        plain = write_png(test[index][0], tmp_path / f"{index}.png")
        photo = write_png(test[index][0], tmp_path / f"{index}-photo.png", invert=True, scale=4)  # dark on light, larger
        for path in (plain, photo):
            result = invoke("predict", str(finished_run), str(path), "--top", "2")
            assert result.exit_code == 0, result.output
            assert result.output.splitlines()[0] == f"{path}: {expected}"
            assert len(result.output.splitlines()) == 3


def test_predict_on_a_file_that_is_not_an_image(finished_run: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.png"
    bogus.write_text("not a picture")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    for path in (bogus, empty):
        result = invoke("predict", str(finished_run), str(path))
        assert result.exit_code == 2 and "is not an image zoo can read: give a PNG or JPEG file" in result.output
        assert "Traceback" not in result.output and ".cpp" not in result.output


def test_eval_reports_accuracy_per_class_and_the_confusion_matrix(finished_run: Path, tiny_data: Path) -> None:
    result = invoke("eval", str(finished_run), "--data-dir", str(tiny_data), "--no-verify", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    last = json.loads((finished_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert data["accuracy"] == pytest.approx(last["test_accuracy"]) and data["loss"] == pytest.approx(last["test_loss"], rel=1e-5)
    assert sum(map(sum, data["confusion"])) == 160 and len(data["per_class"]) == 10
    assert_picture(finished_run / "confusion.png", (800, 800))
    text = invoke("eval", str(finished_run), "--data-dir", str(tiny_data), "--no-verify").output
    assert f"accuracy {last['test_accuracy']:.2%}" in text and "Confusion matrix (rows: actual, columns: predicted)" in text
    assert f"average loss {last['test_loss']:.6f} (fp32)" in text
    other = invoke("eval", str(finished_run), "--dataset", "fashion-mnist", "--data-dir", str(tiny_data), "--no-verify")  # digits scored as clothes
    assert other.exit_code == 2 and "has other classes than the model was trained on: its class 0 is 'T-shirt/top', the model's '0' (10 of 10 differ)" in other.output


def test_eval_computes_in_the_runs_precision_and_draws_where_asked(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "bf16"
    zoo.run(dataset="mnist", epochs=1, out=run, reporters=[], precision="bf16",
            sets=[f"dataset.data_dir={json.dumps(str(tiny_data))}", "dataset.verify=false", "optimizer.lr=0.1"])
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    args = ["eval", str(run), "--data-dir", str(tiny_data), "--no-verify", "--json", "--out", str(tmp_path / "c.png")]
    as_run, in_fp32 = (json.loads(invoke(*args, *more).output) for more in ([], ["--precision", "fp32"]))
    assert as_run["precision"] == "bf16" and as_run["loss"] == pytest.approx(last["test_loss"], abs=1e-5)  # the log's number
    assert in_fp32["precision"] == "fp32" and in_fp32["loss"] != as_run["loss"]
    assert_picture(tmp_path / "c.png", (800, 800))
    assert not (run / "confusion.png").exists()
    bare = json.loads(invoke("eval", str(run), "--data-dir", str(tiny_data), "--no-verify", "--json", "--out", str(tmp_path / "d")).output)
    assert bare["confusion_png"] == str(tmp_path / "d.png") and (tmp_path / "d.png").is_file()  # the file it wrote, as it says
    for wrong, message in (("c.txt", "zoo cannot draw a .txt file"), ("no/such/c.png", "does not exist")):
        refused = invoke("eval", str(run), "--data-dir", str(tiny_data), "--no-verify", "--out", str(tmp_path / wrong))
        assert refused.exit_code == 2 and message in refused.output
    with pytest.raises(zoo.ZooError, match="precision is 'fp32', 'bf16' or None"):
        zoo.evaluate(run, precision="BF16")


def test_runs_lists_and_compares(tiny_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for seed in (1, 2):
        zoo.run(dataset="mnist", epochs=1, seed=seed, runs_root=root, reporters=[],
                sets=[f"dataset.data_dir={json.dumps(str(tiny_data))}", "dataset.verify=false"])
    listed = invoke("runs", "--root", str(root))
    lines = listed.output.splitlines()
    a, b = sorted(root.iterdir())
    assert lines[0].split()[:5] == ["RUN", "MODEL", "DATASET", "RECIPE", "SEED"]
    assert lines[1].split()[1:6] == ["mlp-512", "mnist", "quickstart*", "1", "1/1"]  # the quickstart recipe trains fashion-mnist, 5 epochs
    assert lines[3:] == ["", "* changed from its recipe:", f"  {a.name}: dataset=mnist, epochs=1", f"  {b.name}: dataset=mnist, epochs=1"]  # not the seed
    compared = invoke("runs", "--compare", str(a), str(b), "--plot", str(tmp_path / "compare.png")).output
    assert "seed" in compared and "A: 1  B: 2" in compared and "    1 " in compared
    by_name = invoke("runs", "--root", str(root), "--compare", a.name, b.name, "--json")  # the names the listing shows
    report = json.loads(by_name.output)
    assert by_name.exit_code == 0 and report["differences"] == [{"setting": "seed", "a": 1, "b": 2, "missing": {}}] and report["a"] == str(a)
    assert invoke("runs", "--root", str(root), "--plot", str(tmp_path / "alone.png")).exit_code == 2  # --plot needs --compare
    mistyped = invoke("runs", "--root", str(tmp_path / "rnus"))
    assert mistyped.exit_code == 2 and "does not exist" in mistyped.output
    assert "(it is a file)" in invoke("runs", "--compare", str(a / "config.json"), str(b)).output
    other = tmp_path / "other"
    zoo.run(dataset="mnist", epochs=1, seed=1, model="mlp-256", scheduler="cosine", out=other, reporters=[], sets=["loss.label_smoothing=0.1",
            f"dataset.data_dir={json.dumps(str(tiny_data))}", "dataset.verify=false"])
    differences = json.loads(invoke("runs", "--compare", str(a), str(other), "--json", "--plot", str(tmp_path / "both.png")).stdout)["differences"]
    keys = [d["setting"] for d in differences]
    assert {"model", "model.hidden", "loss.label_smoothing", "scheduler"} <= set(keys) and not any(k.startswith("components.") for k in keys)
    assert keys.index("scheduler") < min(keys.index(k) for k in keys if k.startswith("scheduler."))
    assert all(d["a"] is None and d["missing"] == {"a": "(none: its scheduler is constant)"} for d in differences if d["setting"].startswith("scheduler."))
    assert_picture(tmp_path / "both.png", (1000, 400))  # --json does not skip the plot
    rebuilt = tmp_path / "rebuilt"  # the same scheduler name built another component (a preset redefined in a registry file)
    shutil.copytree(a, rebuilt)
    config = json.loads((rebuilt / "config.json").read_text())
    config["components"]["scheduler"]["component"] = "step"
    (rebuilt / "config.json").write_text(json.dumps(config))
    assert "  scheduler (component)  A: constant  B: step" in invoke("runs", "--compare", str(a), str(rebuilt)).output
    config["reporters"] = ["console"]  # a run watched otherwise (not --quiet) trained no differently
    (rebuilt / "config.json").write_text(json.dumps(config))
    assert "reporters" not in invoke("runs", "--compare", str(a), str(rebuilt)).output
    config["machine"]["threads"] += 1  # trained with another thread count: numbers differ in their last digits, and this says why
    (rebuilt / "config.json").write_text(json.dumps(config))
    threads = config["machine"]["threads"]
    assert re.search(rf"machine\.threads +A: {threads - 1}  B: {threads}\n", invoke("runs", "--compare", str(a), str(rebuilt)).output)
    metrics = rebuilt / "metrics.jsonl"  # a diverged run: NaN loss
    metrics.write_text(metrics.read_text().replace('"test_loss": ', '"test_loss": NaN, "was": ', 1))
    strict = json.loads(invoke("runs", "--compare", str(a), str(rebuilt), "--json").stdout, parse_constant=lambda word: pytest.fail(word))
    assert strict["curves"][0]["b"]["test_loss"] is None
    text = invoke("runs", "--compare", str(a), str(other)).output
    assert "scheduler.eta_min" not in text or "A: (none: its scheduler is constant)" in text
    assert_picture(tmp_path / "compare.png", (1000, 400))
    assert json.loads(invoke("runs", "--root", str(root), "--json").output)[0]["epochs_done"] == 1
    older = tmp_path / "older"  # a run from before a setting existed shows it as not recorded, not as None
    shutil.copytree(a, older)
    config = json.loads((older / "config.json").read_text())
    del config["components"]["optimizer"]["params"]["fused"]
    del config["machine"]  # nor is its machine a difference
    for key in ("mixup", "cuda_graphs", "init", "checkpoint_every"):  # run settings added later: their defaults
        del config[key]
    del config["data_files"]  # nor the data files it read
    (older / "config.json").write_text(json.dumps(config))
    lines = invoke("runs", "--compare", str(a), str(older)).output.split("\n\n")[1].splitlines()
    assert lines == ["Settings that differ:", "  optimizer.fused  A: false  B: (not recorded)"]  # named as --set names it


def test_compare_shows_other_data_files_but_not_another_copy_of_the_real_one(finished_run: Path, tiny_data: Path, tmp_path: Path) -> None:
    record = json.loads((finished_run / "config.json").read_text())
    assert record["data_files"]["t10k-labels-idx1-ubyte"] == {"path": str((tiny_data / "t10k-labels-idx1-ubyte.gz").resolve()), "verified": False}

    def copy(name: str, path: str, **checked: object) -> Path:
        other = shutil.copytree(finished_run, tmp_path / name)
        edited = {**record, "data_files": {**record["data_files"], "t10k-labels-idx1-ubyte": {"path": path, **checked}}}
        (other / "config.json").write_text(json.dumps(edited))
        return other

    real = {"verified": True, "sha256": "0402a9"}
    system, cached = copy("system", "/usr/share/t10k-labels-idx1-ubyte.gz", **real), copy("cached", "/cache/t10k-labels-idx1-ubyte", **real)
    assert "Settings that differ" not in invoke("runs", "--compare", str(system), str(cached)).output  # the same published file
    elsewhere = copy("elsewhere", "/cache/t10k-labels-idx1-ubyte", verified=False)  # unverified: the path is all there is
    differences = {d["setting"] for d in json.loads(invoke("runs", "--compare", str(system), str(elsewhere), "--json").output)["differences"]}
    assert differences == {"data_files.t10k-labels-idx1-ubyte.path", "data_files.t10k-labels-idx1-ubyte.verified"}


def test_runs_are_dated_by_when_they_started_not_by_when_they_were_copied(finished_run: Path, tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    from zoo.runs import summarize

    record = json.loads((finished_run / "config.json").read_text())
    started = datetime.fromisoformat(record["started"])
    machine = record["machine"]  # what a result is reported with
    assert machine["threads"] == torch.get_num_threads() and machine["cores"] == os.cpu_count() and machine["cpu"] and machine["os"]
    assert record["versions"]["numpy"] == np.__version__ and re.fullmatch(r"[0-9a-f]{40}(\+changes)?", record["versions"]["zoo_source"] or "0" * 40)
    assert started.tzinfo is not None and abs(datetime.now().astimezone() - started) < timedelta(hours=1)
    copy = tmp_path / "runs" / "copied"
    shutil.copytree(finished_run, copy)
    config = json.loads((copy / "config.json").read_text())
    config["started"] = "2020-01-02T03:04:05+00:00"
    (copy / "config.json").write_text(json.dumps(config))
    assert summarize(copy).created == datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc).astimezone().replace(tzinfo=None)
    assert invoke("runs", "--root", str(tmp_path / "runs")).output.splitlines()[1].split()[-2] == summarize(copy).created.strftime("%Y-%m-%d")
    config["started"] = "yesterday"  # a damaged value: the file's time, as for runs from before zoo recorded it
    (copy / "config.json").write_text(json.dumps(config))
    assert summarize(copy).created.year == datetime.now().year


def test_tensorboard_writes_events_and_says_how_to_install_it(finished_run: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "tb"
    zoo.run(dataset="mnist", epochs=1, out=out, reporters=["tensorboard"], sets=[f"dataset.data_dir={json.dumps(str(tiny_data))}", "dataset.verify=false"])
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if the extra were not installed
    with pytest.raises(ZooError, match=r"pip install 'zoo\[tensorboard\]'"):
        zoo.run(dataset="mnist", epochs=1, out=tmp_path / "no", reporters=["tensorboard"],
                sets=[f"dataset.data_dir={json.dumps(str(tiny_data))}", "dataset.verify=false"])
    assert not (tmp_path / "no").exists()


def run_in_terminal(args: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Run the zoo command with a pseudo-terminal as its output, as a person would see it."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 40 rows, 120 columns
    environment = {k: v for k, v in os.environ.items() if k != "CI"} | {"COLUMNS": "120", **(env or {})}
    process = subprocess.Popen([str(ZOO), *args], stdin=terminal, stdout=terminal, stderr=terminal, env=environment)
    os.close(terminal)
    chunks = []
    while True:
        ready, _, _ = select.select([controller], [], [], timeout)
        if not ready:
            process.kill()
            raise AssertionError("no output")
        try:
            data = os.read(controller, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=timeout)
    os.close(controller)
    screen = b"".join(chunks).decode(errors="replace")
    screen = screen.replace("\x1b[2K", "\n")  # a cleared line (the bar being redrawn) starts a new one
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen).replace("\r", "")  # the text, without colours and cursor moves


@pytest.mark.slow
def test_a_terminal_gets_a_progress_bar_and_the_unchanged_log(tiny_data: Path, tmp_path: Path) -> None:
    args = ["run", "--dataset", "mnist", "--model", "mlp-8", "--data-dir", str(tiny_data), "--no-verify", "--epochs", "2", "--log-every", "5"]
    screen = run_in_terminal([*args, "--out", "a"])  # (relative to this test's folder: a long path would wrap)
    assert "steps/s" in screen and "epoch 2/2: train loss" in screen  # the bar and the summary line
    piped = zoo_here(*args, "--out", "d")  # not a terminal: the log alone (in this process, as the same seed repeats it)
    assert "steps/s" not in piped.stdout and "Epoch 1\n" in piped.stdout

    def log(text: str) -> list[str]:
        """The Quickstart log: no bar, no summary lines, no paths (the runs differ only in where they save)."""
        return [line for line in text.splitlines() if line.strip() and "━" not in line and not line.startswith(("epoch ", "Saved ", "Run saved"))]

    assert log(screen) == log(piped.stdout)  # the same seed: the very same log, with the bar below it
    quiet = zoo_here(*args, "--quiet", "--out", "b")
    assert "Epoch 1" not in quiet.output and "Run saved in" in quiet.output

    def reporters(*options: str, env: dict[str, str] | None = None) -> list[str]:
        """The reporters `zoo run` chooses on a terminal (--dry-run: the choice, without training again)."""
        return [r["name"] for r in json.loads(run_in_terminal(["run", "--dry-run", *options], env=env))["components"]["reporters"]]

    assert reporters() == ["console", "progress"] and reporters(env={"CI": "true"}) == ["console"]  # CI set: the log, no bar
    assert reporters("--quiet") == []  # --quiet: no bar on a terminal either


def test_list_draws_a_table_on_a_terminal() -> None:
    screen = run_in_terminal(["list", "models"])
    assert "┃ name" in screen or "| name" in screen
    assert "mlp-512" in screen


def test_an_output_file_that_cannot_be_written_is_a_clear_error(finished_run: Path, tiny_data: Path, tmp_path: Path) -> None:
    result = invoke("predict", str(finished_run), "--index", "0", "--grid", str(tmp_path / "no-such-folder" / "g.png"),
                    "--data-dir", str(tiny_data), "--no-verify")
    # before any prediction is made, with the folder named
    assert result.exit_code == 2 and f"--grid {tmp_path / 'no-such-folder' / 'g.png'}: the folder {tmp_path / 'no-such-folder'} does not exist" in result.output
    assert "Predicted" not in result.output and "Traceback" not in result.output
