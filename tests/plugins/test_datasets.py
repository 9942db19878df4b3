"""Where the built-in datasets look for their files, and the real torchvision download path,
exercised against a loopback HTTP mirror serving IDX files this test writes."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers import make_idx_dataset

import zoo
import zoo_plugins.datasets as datasets
from zoo.data import TensorSplit
from zoo.errors import ZooError, speaking_to_the_command_line
from zoo_plugins.datasets import FASHION_MNIST, MNIST, IDXParams, build_mnist, locate


@pytest.fixture
def no_system_copy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    system = tmp_path / "system"
    monkeypatch.setattr(datasets, "SYSTEM_DIR", system)
    return system


def test_class_names() -> None:
    assert FASHION_MNIST.classes == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    assert MNIST.classes == tuple("0123456789")


def test_sources_in_order_data_dir_cache_system(no_system_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = datasets.cache_dir()
    assert cache == tmp_path / "cache" / "zoo"  # $XDG_CACHE_HOME/zoo
    make_idx_dataset(no_system_copy / "fashion-mnist", n_train=10, n_test=10)
    params = IDXParams(download=False)
    assert locate(FASHION_MNIST, params)["train_images"].parent == no_system_copy / "fashion-mnist"
    make_idx_dataset(cache / "FashionMNIST" / "raw", n_train=10, n_test=10, compress=False)
    assert locate(FASHION_MNIST, params)["train_images"] == cache / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    mine = make_idx_dataset(tmp_path / "mine", n_train=10, n_test=10)
    assert locate(FASHION_MNIST, IDXParams(data_dir=mine, download=False))["test_labels"] == mine / "t10k-labels-idx1-ubyte.gz"
    monkeypatch.setenv("ZOO_DATA_DIR", str(mine))
    assert locate(FASHION_MNIST, params)["test_labels"].parent == mine


def test_nothing_found_is_one_paragraph_naming_every_place(no_system_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(ZooError) as error:
        locate(MNIST, IDXParams(download=False))
    message = str(error.value)
    for place in (datasets.cache_dir(), no_system_copy / "mnist"):
        assert str(place) in message
    assert "download is off" in message and "data_dir='DIR'" in message and "sets=['dataset.mirror=URL']" in message and "\n" not in message
    with speaking_to_the_command_line(), pytest.raises(ZooError) as error:
        locate(MNIST, IDXParams(download=False))
    assert "pass --data-dir DIR" in str(error.value) and "--set dataset.mirror=URL" in str(error.value)


def test_a_data_dir_without_the_files_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ZooError, match=r"empty does not hold the fashion-mnist files .* Put them there, or leave out --data-dir"):
        locate(FASHION_MNIST, IDXParams(data_dir=empty))  # the system copy exists, but was not asked for


def test_a_missing_data_dir_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match="does not exist or is not a directory"):
        locate(MNIST, IDXParams(data_dir=tmp_path / "typo"))


def test_mismatched_counts_name_both_files(tmp_path: Path) -> None:
    make_idx_dataset(tmp_path / "a", n_train=20, n_test=10)
    make_idx_dataset(tmp_path / "b", n_train=30, n_test=10)
    shutil.copy(tmp_path / "b" / "train-labels-idx1-ubyte.gz", tmp_path / "a")
    with pytest.raises(ZooError, match="holds 20 images but .* holds 30 labels"):
        build_mnist(IDXParams(data_dir=tmp_path / "a", download=False, verify=False))


def test_splits_are_in_memory_tensors_like_to_tensor(tiny_data: Path) -> None:
    splits = build_mnist(IDXParams(data_dir=tiny_data, download=False, verify=False))
    assert isinstance(splits.train, TensorSplit) and (len(splits.train), len(splits.test)) == (640, 160)
    image, label = splits.train[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    assert isinstance(label, int) and splits.input_shape == (1, 28, 28)


def test_normalize_standardises_both_splits_with_the_training_splits_statistics(tiny_data: Path) -> None:
    plain = build_mnist(IDXParams(data_dir=tiny_data, download=False, verify=False))
    standard = build_mnist(IDXParams(data_dir=tiny_data, download=False, verify=False, normalize=True))
    train = plain.train.to(torch.device("cpu"))[0]
    mean, std = train.mean(), train.std()
    standard_train, labels = standard.train.to(torch.device("cpu"))
    assert standard_train.mean().abs() < 1e-5 and (standard_train.std() - 1).abs() < 1e-5
    test = standard.test.to(torch.device("cpu"))[0]
    assert torch.allclose(test, (plain.test.to(torch.device("cpu"))[0] - mean) / std, atol=1e-6)  # the training split's mean and std
    assert test.mean().abs() > 1e-4  # ... not the test split's own
    assert torch.equal(labels, plain.train.labels)


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A loopback HTTP server with MNIST-named .gz files, and torchvision's md5s pointed at them."""
    import torchvision.datasets

    root = make_idx_dataset(tmp_path / "mirror", n_train=50, n_test=20)
    resources = [(p.name, hashlib.md5(p.read_bytes()).hexdigest()) for p in sorted(root.iterdir())]
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources", resources)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[assignment]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_mnist_downloads_through_torchvision_from_a_mirror(mirror: str, no_system_copy: Path) -> None:
    splits = build_mnist(IDXParams(mirror=mirror, verify=False))
    assert (len(splits.train), len(splits.test)) == (50, 20)
    raw = datasets.cache_dir() / "MNIST" / "raw"
    assert (raw / "train-images-idx3-ubyte.gz").is_file()
    # The second time, the cache answers and no server is needed.
    assert len(build_mnist(IDXParams(mirror="http://127.0.0.1:9/", download=False, verify=False)).train) == 50


def test_a_failed_download_is_part_of_the_paragraph(no_system_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ZooError) as error:
        build_mnist(IDXParams(mirror="http://127.0.0.1:9/", verify=False))
    message = str(error.value)
    assert "Cannot find the mnist dataset" in message and "127.0.0.1:9" in message and "\n" not in message
    assert not (datasets.cache_dir() / "MNIST").exists()  # no empty folders left behind to puzzle over


def test_files_that_are_not_the_real_dataset_are_refused_unless_told(tiny_data: Path, no_system_copy: Path) -> None:
    with pytest.raises(ZooError) as error:
        build_mnist(IDXParams(data_dir=tiny_data, download=False))
    message = str(error.value)
    assert "is not the real mnist file" in message and "md5 differs" in message and "--no-verify" in message
    assert len(build_mnist(IDXParams(data_dir=tiny_data, download=False, verify=False)).train) == 640


def test_the_real_fashion_mnist_verifies_once_then_from_the_ledger(monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    files = locate(FASHION_MNIST, IDXParams(download=False))
    for key, path in files.items():
        datasets.verify_file(FASHION_MNIST, datasets.FILES[key], path)
    assert (datasets.cache_dir() / "verified.json").is_file()

    def no_hashing(*args, **kwargs):
        raise AssertionError("hashed again")

    monkeypatch.setattr(hashlib, "sha256", no_hashing)
    for key, path in files.items():
        datasets.verify_file(FASHION_MNIST, datasets.FILES[key], path)


def test_a_bit_flip_in_a_real_sized_file_is_caught(tmp_path: Path) -> None:
    import gzip

    real = locate(FASHION_MNIST, IDXParams(download=False))["test_labels"]
    data = bytearray(gzip.decompress(real.read_bytes()))
    data[5000] ^= 1
    copy = tmp_path / "t10k-labels-idx1-ubyte"
    copy.write_bytes(bytes(data))
    with pytest.raises(ZooError, match=r"t10k-labels-idx1-ubyte: its SHA-256 differs"):
        datasets.verify_file(FASHION_MNIST, "t10k-labels-idx1-ubyte", copy)


def test_torchvisions_processed_files_are_never_reached(mirror: str, no_system_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision's MNIST constructor torch.loads <root>/<class>/processed/*.pt when they exist; zoo only
    uses its download code, so those files are never opened, whatever they hold."""
    for cls in ("ZooMNIST", "MNIST"):
        processed = datasets.cache_dir() / cls / "processed"
        processed.mkdir(parents=True)
        for name in ("training.pt", "test.pt"):
            torch.save((torch.zeros(3, 28, 28, dtype=torch.uint8), torch.zeros(3, dtype=torch.long)), processed / name)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"torch.load{args} was called")

    monkeypatch.setattr(torch, "load", refuse)
    splits = build_mnist(IDXParams(mirror=mirror, verify=False))
    assert (len(splits.train), len(splits.test)) == (50, 20)  # the mirror's files, not the 3 of the .pt files


@pytest.mark.parametrize(("split", "stem"), [("test", "t10k"), ("train", "train")])
def test_a_file_of_zero_images_is_named_not_blamed_on_the_plugin(split: str, stem: str, tmp_path: Path) -> None:
    import numpy as np
    from click.testing import CliRunner
    from helpers import write_idx

    from zoo.cli import cli

    data = make_idx_dataset(tmp_path / "data", n_train=64, n_test=16)
    empty = write_idx(data / f"{stem}-images-idx3-ubyte", np.zeros((0, 28, 28)))
    write_idx(data / f"{stem}-labels-idx1-ubyte", np.zeros((0,)))
    with pytest.raises(ZooError, match=f"Data file {empty} holds 0 images; the {split} split needs at least one"):
        build_mnist(IDXParams(data_dir=data, verify=False))
    result = CliRunner().invoke(cli, ["run", "--dataset", "mnist", "--data-dir", str(data), "--no-verify", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "that plugin" not in result.output and "Traceback" not in result.output
    assert result.output.startswith(f"Error: Data file {empty} holds 0 images") and result.output.count("\n") == 1
def test_an_uncompressed_mnist_file_is_checked_against_its_archive_not_its_size(tmp_path: Path) -> None:
    """MNIST publishes only the archives' md5s: a plain file of the right size is not enough."""
    import gzip
    import hashlib

    from zoo_plugins.datasets import MNIST, Known, Spec, verify_file

    stem = "t10k-labels-idx1-ubyte"
    impostor = tmp_path / "a" / stem
    impostor.parent.mkdir()
    impostor.write_bytes(bytes(MNIST.known[stem].size))  # the real size, the wrong bytes
    with pytest.raises(ZooError, match="only the .gz archives' checksums are published"):
        verify_file(MNIST, stem, impostor)

    labels = bytes(range(10)) * 1000
    archive = gzip.compress(labels, mtime=0)
    spec = Spec("mnist-like", "MNISTLike", MNIST.classes, {stem: Known(len(labels), gz_md5=hashlib.md5(archive).hexdigest())})
    folder = tmp_path / "b"
    folder.mkdir()
    (folder / f"{stem}.gz").write_bytes(archive)
    (folder / stem).write_bytes(labels)
    verify_file(spec, stem, folder / stem)  # what torchvision's download leaves: the archive and its contents
    (folder / stem).write_bytes(labels + b"x")  # another size, so not the file verified before
    with pytest.raises(ZooError, match="differs from what t10k-labels-idx1-ubyte.gz beside it decompresses to"):
        verify_file(spec, stem, folder / stem)


def _tiny_real(directory: Path, archives_only: bool = False) -> datasets.Spec:
    """A tiny dataset in `directory` (gzipped), and a FashionMNIST-like spec whose published checksums are its own
    (`archives_only`: MNIST-like, only the archives' md5s published)."""
    import dataclasses
    import gzip

    make_idx_dataset(directory, n_train=12, n_test=8)
    known = {}
    for stem in datasets.FILES.values():
        packed = (directory / f"{stem}.gz").read_bytes()
        data = gzip.decompress(packed)
        known[stem] = (datasets.Known(len(data), gz_md5=hashlib.md5(packed).hexdigest()) if archives_only
                       else datasets.Known(len(data), hashlib.sha256(data).hexdigest()))
    return dataclasses.replace(MNIST if archives_only else FASHION_MNIST, known=known)


def test_the_system_copy_is_kept_decompressed_in_the_cache_and_read_from_there(no_system_copy: Path) -> None:
    from zoo_plugins import kept

    spec = _tiny_real(no_system_copy / "fashion-mnist")
    first = datasets.load(spec, IDXParams(download=False))
    copy = datasets.cache_dir() / "decompressed" / "fashion-mnist"
    assert kept.folder(spec) == copy
    assert sorted(path.name for path in copy.iterdir()) == sorted(datasets.FILES.values())  # uncompressed, nothing partial
    assert {path.parent for path in locate(spec, IDXParams(download=False)).values()} == {copy}
    again = datasets.load(spec, IDXParams(download=False))  # verified by checksum, as any file
    assert torch.equal(again.train.images, first.train.images) and torch.equal(again.test.labels, first.test.labels)
    assert {entry["path"] for entry in again.files.values()} == {str(copy / stem) for stem in datasets.FILES.values()}
    (copy / "t10k-labels-idx1-ubyte").write_bytes(b"")  # damaged (a crash while it was written): the system copy takes over
    damaged = datasets.load(spec, IDXParams(download=False))
    assert torch.equal(damaged.test.labels, first.test.labels)
    assert damaged.files["t10k-labels-idx1-ubyte"]["path"] == str((no_system_copy / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").resolve())
    assert (copy / "t10k-labels-idx1-ubyte").stat().st_size > 0  # and is kept again


def test_nothing_is_kept_unverified_from_elsewhere_or_for_mnist(no_system_copy: Path, tmp_path: Path) -> None:
    spec = _tiny_real(no_system_copy / "fashion-mnist")
    datasets.load(spec, IDXParams(download=False, verify=False))
    mine = shutil.copytree(no_system_copy / "fashion-mnist", tmp_path / "mine")
    datasets.load(spec, IDXParams(data_dir=mine, download=False))
    mnist = _tiny_real(no_system_copy / "mnist", archives_only=True)
    for _ in range(2):  # a kept MNIST copy would fail the second run: only the archives' checksums are published
        assert len(datasets.load(mnist, IDXParams(download=False)).train) == 12
    assert not (datasets.cache_dir() / "decompressed").exists()


def test_a_cache_that_cannot_be_written_keeps_no_part_of_the_copy(no_system_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo_plugins import idx, kept

    spec = _tiny_real(no_system_copy / "fashion-mnist")
    real_write, calls = idx.write_idx, []

    def full_disk_on_the_third(path: Path, array: torch.Tensor) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_write(path, array)

    monkeypatch.setattr(idx, "write_idx", full_disk_on_the_third)
    assert len(datasets.load(spec, IDXParams(download=False)).train) == 12  # the run goes on
    assert len(calls) == 3 and list(kept.folder(spec).iterdir()) == []  # the two written are gone
    monkeypatch.setattr(idx, "write_idx", real_write)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 10**6, 10**6))
    datasets.load(spec, IDXParams(download=False))  # a nearly full disk: not worth 0.2 s a run
    assert list(kept.folder(spec).iterdir()) == []


def test_a_partial_file_left_by_a_killed_process_is_removed(no_system_copy: Path) -> None:
    import os

    from zoo_plugins import kept

    spec = _tiny_real(no_system_copy / "fashion-mnist")
    folder = kept.folder(spec)
    folder.mkdir(parents=True)
    stale, fresh = folder / ".train-images-idx3-ubyte.4242.partial", folder / ".train-images-idx3-ubyte.4343.partial"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")  # another process writing now
    os.utime(stale, (0, 0))
    datasets.load(spec, IDXParams(download=False))
    assert not stale.exists() and fresh.exists()


@pytest.mark.parametrize("ledger", ["[]", "null", "not json"])
def test_a_damaged_ledger_costs_only_the_hashing(ledger: str) -> None:
    """verified.json is zoo's own cache: whatever it holds, the files are checked again and the ledger written anew."""
    files = locate(FASHION_MNIST, IDXParams(download=False))
    (datasets.cache_dir() / "verified.json").parent.mkdir(parents=True, exist_ok=True)
    (datasets.cache_dir() / "verified.json").write_text(ledger)
    key, path = next(iter(files.items()))
    datasets.verify_file(FASHION_MNIST, datasets.FILES[key], path)
    assert isinstance(json.loads((datasets.cache_dir() / "verified.json").read_text()), dict)


def test_a_mirror_must_be_a_web_address() -> None:
    """torchvision's downloader reads only http(s); a file:// mirror failed inside it and left an empty file behind."""
    with pytest.raises(ZooError, match=r"dataset.mirror: give an http:// or https:// address \(files already on this machine are read with --data-dir\)"):
        zoo.resolve(dataset="mnist", sets=['dataset.mirror="file:///data/"'])
    assert zoo.resolve(dataset="mnist", sets=['dataset.mirror="https://example.invalid/mnist/"'])[1].dataset.params.mirror
