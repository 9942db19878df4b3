from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import fuzzed, write_idx

from zoo.errors import ZooError
from zoo_plugins.idx import read_idx


@pytest.mark.parametrize("compress", [True, False])
def test_reads_gzipped_and_plain_files(tmp_path: Path, compress: bool) -> None:
    array = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    tensor = read_idx(write_idx(tmp_path / "images", array, compress), dims=3)
    assert tensor.dtype == torch.uint8 and tuple(tensor.shape) == (3, 28, 28)
    assert torch.equal(tensor, torch.from_numpy(array))


def test_labels_are_one_dimensional(tmp_path: Path) -> None:
    labels = read_idx(write_idx(tmp_path / "labels", np.array([3, 1, 4], dtype=np.uint8)), dims=1)
    assert labels.tolist() == [3, 1, 4]


def good_bytes() -> bytes:
    array = np.ones((2, 28, 28), dtype=np.uint8)
    return bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (good_bytes()[:-1], "truncated"),
        (good_bytes() + b"\0", "longer than its header says"),
        (b"\0\0\x08", "shorter than an IDX header"),
        (good_bytes()[:10], "ends inside its header"),
        (bytes([0, 0, 8, 1]) + good_bytes()[4:], "expected 0x00000803"),
        (bytes([0, 0, 0x0D, 3]) + good_bytes()[4:], "magic number is 0x00000d03"),
        (b"PK\x03\x04 this is a zip file", "magic number"),
        (gzip.compress(good_bytes(), mtime=0)[:-8], "not a complete gzip file"),
    ],
)
def test_corrupt_files_are_errors_that_name_the_file(tmp_path: Path, data: bytes, expected: str) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(ZooError, match=expected) as error:
        read_idx(path, dims=3)
    assert str(path) in str(error.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match="Cannot read data file"):
        read_idx(tmp_path / "missing", dims=1)


def test_fuzzed_idx_files_fail_cleanly(tmp_path: Path) -> None:
    """1,000 seeded truncations and bit flips of a gzipped and a plain IDX file: each either reads
    (a flip in the pixels) or is a ZooError naming the file; never another exception."""
    images = np.random.default_rng(0).integers(0, 255, size=(20, 28, 28), dtype=np.uint8)
    originals = [write_idx(tmp_path / "a", images, compress=True).read_bytes(), write_idx(tmp_path / "b", images, compress=False).read_bytes()]
    target = tmp_path / "fuzzed"
    outcomes = {"read": 0, "error": 0}
    for trial, data in fuzzed(originals, 1000, seed=42):
        target.write_bytes(bytes(data))
        try:
            tensor = read_idx(target, dims=3)
            assert tensor.dtype == torch.uint8 and tensor.dim() == 3
            outcomes["read"] += 1
        except ZooError as error:
            assert str(target) in str(error)
            outcomes["error"] += 1
    assert outcomes["error"] > 400 and outcomes["read"] > 50, outcomes


def test_write_idx_writes_what_read_idx_reads(tmp_path: Path) -> None:
    from zoo_plugins.idx import write_idx

    array = torch.arange(2 * 3 * 4, dtype=torch.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "images", array)
    assert torch.equal(read_idx(tmp_path / "images", dims=3), array)
    assert [path.name for path in tmp_path.iterdir()] == ["images"]


def test_write_idx_that_fails_keeps_the_old_file_and_no_partial_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from zoo_plugins.idx import write_idx

    write_idx(tmp_path / "labels", torch.tensor([1, 2, 3], dtype=torch.uint8))

    def disk_error(descriptor: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", disk_error)
    with pytest.raises(OSError):
        write_idx(tmp_path / "labels", torch.tensor([4, 5], dtype=torch.uint8))
    assert [path.name for path in tmp_path.iterdir()] == ["labels"]
    assert read_idx(tmp_path / "labels", dims=1).tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="unsigned bytes"):
        write_idx(tmp_path / "floats", torch.zeros(2))
