"""One Quickstart epoch on the real FashionMNIST (Debian's dataset-fashion-mnist, which `make test`
installs), through the installed `zoo` command, checked against what the Quickstart reaches. (Two processes
against one: tests/zoo/test_distributed.py, on small data, to 1e-4.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import FASHION_MNIST_SYSTEM, run_zoo

pytestmark = pytest.mark.slow


QUICKSTART_EPOCH = ["run", "--model", "mlp-512", "--dataset", "fashion-mnist", "--epochs", "1"]


@pytest.fixture(scope="module")
def quickstart_epoch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    assert (FASHION_MNIST_SYSTEM / "train-images-idx3-ubyte.gz").is_file(), (
        "the real FashionMNIST is missing: run `make data` (apt-get install dataset-fashion-mnist)"
    )
    run_dir = tmp_path_factory.mktemp("fashion") / "run"
    result = run_zoo(*QUICKSTART_EPOCH, "--out", str(run_dir), cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr
    return run_dir, result.stdout


def test_one_quickstart_epoch_lands_where_the_quickstart_does(quickstart_epoch: tuple[Path, str]) -> None:
    run_dir, stdout = quickstart_epoch
    lines = stdout.splitlines()
    assert lines[:3] == ["Using cpu device", "Epoch 1", "-------------------------------"]
    loss_lines = [line for line in lines if line.startswith("loss: ")]
    # 938 steps of 64: the loss every 100 steps, after 64, 6464, ..., 57664 images, as in the Quickstart.
    assert [int(re.search(r"\[\s*(\d+)/60000\]", line).group(1)) for line in loss_lines] == [64 + 6400 * i for i in range(10)]
    assert all(re.fullmatch(r"loss: \d\.\d{6}  \[[ \d]{5}/60000\]", line) for line in loss_lines)
    match = re.fullmatch(r" Accuracy: (\d+\.\d)%, Avg loss: (\d\.\d{6}) ", lines[lines.index("Test Error: ") + 1])
    accuracy, loss = float(match.group(1)), float(match.group(2))
    # The Quickstart's first epoch: about 40-50% and an average loss near 2.15, depending on the
    # random initial weights (seeds 0-5 gave 40.1-49.5% and 2.149-2.164 here).
    assert 36.0 <= accuracy <= 56.0
    assert 2.10 <= loss <= 2.20
    assert float(loss_lines[0].split()[1]) > float(loss_lines[-1].split()[1])
    prediction = lines[lines.index("Done!") + 2]
    assert re.fullmatch(r'Predicted: "[^"]+", Actual: "Ankle boot"', prediction)  # test image 0 is an ankle boot
    metrics = json.loads((run_dir / "metrics.jsonl").read_text())
    assert round(metrics["test_accuracy"] * 100, 1) == accuracy


def test_the_run_records_which_copy_of_the_data_it_read(quickstart_epoch: tuple[Path, str]) -> None:
    from zoo_plugins.datasets import FASHION_MNIST

    files = json.loads((quickstart_epoch[0] / "config.json").read_text())["data_files"]
    assert files == {stem: {"path": str(FASHION_MNIST_SYSTEM / f"{stem}.gz"), "verified": True, "sha256": known.sha256}
                     for stem, known in FASHION_MNIST.known.items()}


def test_the_log_is_the_quickstart_scripts_digit_for_digit(quickstart_epoch: tuple[Path, str], tmp_path: Path) -> None:
    """bench/quickstart.py is the tutorial's script (its initial weights seeded as zoo seeds them): every loss line and
    the test line, Avg loss included (the mean of the test batches' losses, the last batch of 16 counting as one)."""
    import gzip
    import subprocess
    import sys

    from helpers import ROOT

    raw = tmp_path / "FashionMNIST" / "raw"  # torchvision's layout, as the script reads it
    raw.mkdir(parents=True)
    for file in FASHION_MNIST_SYSTEM.glob("*-ubyte.gz"):
        (raw / file.name.removesuffix(".gz")).write_bytes(gzip.decompress(file.read_bytes()))
    script = subprocess.run([sys.executable, str(ROOT / "bench" / "quickstart.py"), str(tmp_path), "1"], capture_output=True, text=True, check=True)
    printed = [line for line in script.stdout.splitlines() if line.startswith(("loss: ", " Accuracy: "))]
    assert len(printed) == 11 and printed == [line for line in quickstart_epoch[1].splitlines() if line.startswith(("loss: ", " Accuracy: "))]
