"""Helpers the tests share: IDX files written on the fly, and the `zoo` console script."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
ZOO = Path(sys.executable).with_name("zoo")
FASHION_MNIST_SYSTEM = Path("/usr/share/datasets/fashion-mnist")


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    """An IDX file of unsigned bytes, the format of (Fashion)MNIST."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data, mtime=0))
    else:
        path.write_bytes(data)
    return path


def learnable_images(labels: np.ndarray, seed: int) -> np.ndarray:
    """28×28 images where class k lights rows 2k..2k+3, plus noise: easy, but not trivial."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, size=(len(labels), 28, 28))
    for i, label in enumerate(labels):
        images[i, 2 * label + 2 : 2 * label + 6, 4:24] += 180
    return images.clip(0, 255).astype(np.uint8)


def make_idx_dataset(directory: Path, n_train: int = 640, n_test: int = 160, seed: int = 0, compress: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        write_idx(directory / f"{split}-images-idx3-ubyte", learnable_images(labels, seed + n), compress)
        write_idx(directory / f"{split}-labels-idx1-ubyte", labels, compress)
    return directory


def run_zoo(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The installed `zoo` console script, as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(ZOO), *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout)


def zoo_here(*args: str):
    """`zoo ARGS` in this process: the CLI over the Python API, without an interpreter and torch to start. For
    tests of what a command does; run_zoo is for what needs a process (the console script, signals, env-only plugins).
    A failure must be one of zoo's own (a message and an exit code), never an exception it let through."""
    import traceback

    from click.testing import CliRunner

    from zoo.cli import cli

    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError("".join(traceback.format_exception(result.exception)))
    assert "Traceback" not in result.output, result.output  # nor one printed on the way
    return result


def tiny(tiny_data: Path, *extra: str) -> list[str]:
    """`zoo run` arguments for 3 epochs of 10 steps on tiny_data, every loss logged, checkpoints every 3 steps."""
    return ["run", "--dataset", "mnist", "--data-dir", str(tiny_data), "--no-verify", "--epochs", "3", "--log-every", "1",
            "--checkpoint-every", "3", "--set", "optimizer.lr=0.05", "--set", "optimizer.momentum=0.9", *extra]


def loss_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("loss: ")]


def epochs_without_time(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def tiny_sets(tiny_data: Path) -> list[str]:
    """zoo.run's --set values for the tiny dataset: its folder, unverified, no download."""
    return [f"dataset.data_dir={json.dumps(str(tiny_data))}", "dataset.verify=false", "dataset.download=false"]


def resign(checkpoint_dir: Path) -> None:
    """Rewrite a checkpoint's manifest to match its (edited) files, as a crafted checkpoint would."""
    from zoo import checkpoint

    manifest = json.loads((checkpoint_dir / "manifest.json").read_text())
    manifest["files"] = {name: checkpoint.sha256_of(checkpoint_dir / name) for name in checkpoint.FILES}
    (checkpoint_dir / "manifest.json").write_text(json.dumps(manifest))


def unfinished_copy(run_dir: Path, to: Path) -> Path:
    """A copy of a finished run without its final weights, as if killed after its last checkpoint."""
    import shutil

    shutil.copytree(run_dir, to)
    (to / "model.safetensors").unlink()
    return to


def plugin_env(site: Path, **extra: str) -> dict[str, str]:
    """An environment in which `site` (pip-installed plugin packages) is importable."""
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])), **extra}


def fuzzed(originals: list[bytes], trials: int, seed: int):
    """`trials` seeded damages of the given files, in turn: a truncation or 1-8 flipped bits each."""
    import random

    rng = random.Random(seed)
    for trial in range(trials):
        data = bytearray(originals[trial % len(originals)])
        if rng.random() < 0.5:
            data = data[: rng.randrange(len(data))]
        else:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        yield trial, bytes(data)
