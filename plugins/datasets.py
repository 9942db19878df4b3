"""Datasets `mnist` and `fashion-mnist`: the IDX files, found locally or downloaded by torchvision."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

import zoo
from zoo.contracts import DatasetSplits
from zoo.errors import DataUnavailable, ZooError, option, set_it
from zoo.identity import data_location

if TYPE_CHECKING:
    import torch

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
#: Where Debian's dataset packages put their copies (dataset-fashion-mnist).
SYSTEM_DIR = Path("/usr/share/datasets")


@dataclass(frozen=True)
class Known:
    """What the real file is: its decompressed size, and its SHA-256 (decompressed) or, where only
    that is published, the md5 of the .gz archive (torchvision's)."""

    size: int
    sha256: str | None = None
    gz_md5: str | None = None


@dataclass(frozen=True)
class Spec:
    name: str
    torchvision_class: str  # also the folder torchvision downloads into: <root>/<class>/raw
    classes: tuple[str, ...]
    known: dict[str, Known]


FASHION_MNIST = Spec(
    "fashion-mnist",
    "FashionMNIST",
    ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    {  # computed from Debian's dataset-fashion-mnist (Zalando's release)
        "train-images-idx3-ubyte": Known(47040016, "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        "train-labels-idx1-ubyte": Known(60008, "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        "t10k-images-idx3-ubyte": Known(7840016, "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        "t10k-labels-idx1-ubyte": Known(10008, "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    },
)
MNIST = Spec(
    "mnist",
    "MNIST",
    tuple(str(digit) for digit in range(10)),
    {  # torchvision's published md5s of the archives, and the IDX sizes
        "train-images-idx3-ubyte": Known(47040016, gz_md5="f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        "train-labels-idx1-ubyte": Known(60008, gz_md5="d53e105ee54ea40749a09fcbcd1e9432"),
        "t10k-images-idx3-ubyte": Known(7840016, gz_md5="9fb629c4189551a2d022fa330f9573f3"),
        "t10k-labels-idx1-ubyte": Known(10008, gz_md5="ec29112dd5afa0611ce80d1b7f02629c"),
    },
)


class IDXParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    data_dir: Path | None = data_location("data_dir", strict=False)  # a path arrives as text
    """Looked at first (also ZOO_DATA_DIR): the four IDX files, plain or .gz, directly inside or
    in torchvision's layout (<dir>/FashionMNIST/raw/)."""
    download: bool = data_location("source", True)
    """Fall back to torchvision's download into the user cache."""
    mirror: str | None = data_location("source")
    """A mirror to download from instead of torchvision's, e.g. http://host/fashion-mnist/ (http or https: files
    already on this machine are read with --data-dir)."""
    hflip: bool = False
    """Augment training batches: mirror a random half left to right."""
    shift: int = Field(0, ge=0, le=8)
    """Augment training batches: move each image by up to this many pixels."""
    normalize: bool = False
    """Standardise both splits with the training split's pixel mean and std (one number each) instead
    of scaling to [0, 1]; the run records both, and zoo predict IMAGE and zoo export apply them."""
    verify: bool = data_location("verify", True)
    """Check each file against the real dataset's checksum (--no-verify turns it off)."""

    @field_validator("mirror")
    @classmethod
    def _web_address(cls, mirror: str | None) -> str | None:
        if mirror is not None and not re.fullmatch(r"https?://\S+", mirror):
            raise ValueError("give an http:// or https:// address (files already on this machine are read with --data-dir)")
        return mirror


def cache_dir() -> Path:
    """~/.cache/zoo, or $XDG_CACHE_HOME/zoo (when absolute: the XDG spec says to ignore a relative one, which
    would put a cache in whatever folder zoo runs from)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "zoo"


def _find_files(directory: Path, spec: Spec) -> dict[str, Path] | None:
    """The four files in `directory` (flat, or torchvision's <class>/raw, or <name>/), or None."""
    for folder in (directory, directory / spec.torchvision_class / "raw", directory / spec.name):
        found = {}
        for key, stem in FILES.items():
            for candidate in (folder / stem, folder / f"{stem}.gz"):
                if candidate.is_file():
                    found[key] = candidate
                    break
        if len(found) == len(FILES):
            return found
    return None


def _explicit_dir(params: IDXParams) -> Path | None:
    return params.data_dir or (Path(os.environ["ZOO_DATA_DIR"]) if os.environ.get("ZOO_DATA_DIR") else None)


def locate(spec: Spec, params: IDXParams) -> dict[str, Path]:
    """Try, in order: the data dir, the user cache, the system copy, a download."""
    looked: list[str] = []
    explicit = _explicit_dir(params)
    if explicit is not None:
        if not explicit.is_dir():
            raise ZooError(
                f"The data directory {explicit} does not exist or is not a directory. "
                f"Check {option('--data-dir')} / ZOO_DATA_DIR, or leave it out to use the cache ({cache_dir()})."
            )
        if not os.access(explicit, os.R_OK | os.X_OK):
            raise ZooError(f"The data directory {explicit} cannot be read (permission denied).")
    if explicit is not None:
        found = _find_files(explicit, spec)
        if found:
            return found
        raise ZooError(
            f"The data directory {explicit} does not hold the {spec.name} files ({', '.join(FILES.values())}, plain or .gz, "
            f"directly inside, in {spec.torchvision_class}/raw/ or in {spec.name}/). Put them there, or leave out "
            f"--data-dir / ZOO_DATA_DIR to use the cache, the system copy or a download."
        )
    from . import kept

    found = _find_files(kept.folder(spec), spec)  # zoo's uncompressed copy of the system's (zoo_plugins.kept)
    if found:
        return found
    for directory in (cache_dir(), SYSTEM_DIR / spec.name):
        found = _find_files(directory, spec)
        if found:
            return found
        looked.append(str(directory))
    download_error = "download is off (dataset.download=false)"
    if params.download:
        try:
            return _download(spec, params)
        except ZooError as error:
            download_error = str(error)
    raise DataUnavailable(
        f"Cannot find the {spec.name} dataset. Looked for {', '.join(FILES.values())} (plain or .gz) in: "
        f"{'; '.join(looked)}; then tried to download it: {download_error.rstrip('.')}{' (no network here?)' if params.download else ''}. "
        f"To fix: put the four files in one of those folders, or pass {option('--data-dir', 'DIR')}"
        + (", or on Debian install them with `apt-get install dataset-fashion-mnist`" if spec is FASHION_MNIST else "")
        + f", or download from a mirror you can reach with {set_it('dataset.mirror=URL')}."
    )


def _download(spec: Spec, params: IDXParams) -> dict[str, Path]:
    """torchvision's MNIST downloader (mirrors, md5 checks), into the user cache. Only its download()
    runs: the dataset's constructor would first torch.load <root>/<class>/processed/*.pt if present,
    and zoo never unpickles anything."""
    import torchvision.datasets as tvd

    base = getattr(tvd, spec.torchvision_class)
    attributes = {"mirrors": [params.mirror.rstrip("/") + "/"]} if params.mirror else {}
    downloader = type(f"Zoo{spec.torchvision_class}", (base,), attributes)
    root = cache_dir()
    # torchvision derives its folder from the class name; keep the original one.
    downloader.raw_folder = property(lambda self: str(root / spec.torchvision_class / "raw"))  # type: ignore[attr-defined]
    fetcher = downloader.__new__(downloader)  # without __init__, so without its legacy processed-file path
    fetcher.root = str(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        fetcher.download()
    except (RuntimeError, OSError, ValueError) as error:
        for folder in (root / spec.torchvision_class / "raw", root / spec.torchvision_class, root):  # leave no empty folders behind
            try:
                folder.rmdir()
            except OSError:  # not empty (a file of an earlier download), or not there
                break
        raise ZooError(f"{' '.join(str(error).split())}.") from None
    found = _find_files(root, spec)
    if not found:
        raise ZooError(f"the download finished but the files are not in {root / spec.torchvision_class / 'raw'}.")
    return found


def load(spec: Spec, params: IDXParams) -> DatasetSplits:
    from zoo.data import TensorSplit, compose, random_hflip, random_shift

    from . import kept
    from .idx import read_idx

    files = locate(spec, params)
    if params.verify:
        try:
            _verify(spec, files)
        except ZooError:
            if not kept.holds(spec, files):
                raise
            kept.drop(spec)  # zoo's own copy, damaged: the system copy it came from is still there
            files = locate(spec, params)
            _verify(spec, files)
    splits, read = [], {}
    for split in ("train", "test"):
        images = read[f"{split}_images"] = read_idx(files[f"{split}_images"], dims=3)
        labels = read[f"{split}_labels"] = read_idx(files[f"{split}_labels"], dims=1)
        if len(images) == 0:
            raise ZooError(
                f"Data file {files[f'{split}_images']} holds 0 images; the {split} split needs at least one. "
                f"It is not the real {spec.name} file: delete it and run again to fetch a fresh copy, or point --data-dir at a good one."
            )
        if images.shape[1:] != (28, 28):
            raise ZooError(f"Data file {files[f'{split}_images']} holds {tuple(images.shape[1:])} images; {spec.name} images are 28×28.")
        if len(images) != len(labels):
            raise ZooError(
                f"{files[f'{split}_images']} holds {len(images)} images but {files[f'{split}_labels']} "
                f"holds {len(labels)} labels; the two files come from different copies."
            )
        if len(labels) and int(labels.max()) >= len(spec.classes):
            raise ZooError(f"Data file {files[f'{split}_labels']} holds label {int(labels.max())}; {spec.name} has {len(spec.classes)} classes.")
        augments = [random_hflip] * params.hflip + [random_shift(params.shift)] * (params.shift > 0)
        images = images.unsqueeze(1)
        if params.normalize:  # in place: a fresh 188 MB tensor per operation cost seconds in page faults
            floats = images.float().div_(255)
            if split == "train":
                mean, std = floats.mean(), floats.std()
            images = floats.sub_(mean).div_(std)
        splits.append(TensorSplit(images, labels.long(), compose(*augments) if split == "train" else None))
    from_system = _explicit_dir(params) is None and all(path.suffix == ".gz" and path.parent == SYSTEM_DIR / spec.name for path in files.values())
    if from_system and params.verify:
        kept.keep(spec, read)
    normalization = (float(mean), float(std)) if params.normalize else None
    return DatasetSplits(train=splits[0], test=splits[1], classes=list(spec.classes), input_shape=(1, 28, 28), normalization=normalization,
                         files={FILES[key]: _provenance(spec, FILES[key], path, params.verify) for key, path in files.items()})


def _verify(spec: Spec, files: dict[str, Path]) -> None:
    for key, path in files.items():
        verify_file(spec, FILES[key], path)


def _provenance(spec: Spec, stem: str, path: Path, verified: bool) -> dict[str, object]:
    """What config.json says of a data file: its path and, when it was verified, the published checksum it matched."""
    known = spec.known[stem]
    matched = ({"sha256": known.sha256} if known.sha256 else {"archive_md5": known.gz_md5}) if verified else {}
    return {"path": str(path.resolve()), "verified": verified, **matched}


def verify_file(spec: Spec, stem: str, path: Path) -> None:
    """Is `path` the real file? A file verified before (same path, size and mtime) is not hashed again."""
    import gzip
    import hashlib
    import json

    stat = path.stat()
    stamp = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    ledger = cache_dir() / "verified.json"
    try:
        verified = json.loads(ledger.read_text())
    except (OSError, ValueError):
        verified = {}
    if not isinstance(verified, dict):  # a damaged ledger only costs hashing again (and is written anew below)
        verified = {}
    if verified.get(stamp) == spec.name:
        return
    known = spec.known[stem]
    raw = path.read_bytes()
    compressed = raw[:2] == b"\x1f\x8b"
    problem = None
    if compressed and known.gz_md5:
        if hashlib.md5(raw).hexdigest() != known.gz_md5:
            problem = "its md5 differs from the published archive's"
    elif known.gz_md5 and not known.sha256:
        problem = _same_as_archive(path, raw, known.gz_md5)
    else:
        try:
            data = gzip.decompress(raw) if compressed else raw
        except (OSError, EOFError) as error:
            data, problem = b"", f"it is not a complete gzip file ({error})"
        if problem is None and len(data) != known.size:
            problem = f"it holds {len(data):,} bytes, the real file {known.size:,}"
        elif problem is None and known.sha256 and hashlib.sha256(data).hexdigest() != known.sha256:
            problem = "its SHA-256 differs from the real file's"
    if problem:
        raise ZooError(
            f"Data file {path} is not the real {spec.name} file {stem}: {problem}. It is damaged or comes from another "
            f"dataset. Delete it and run again to fetch a fresh copy"
            + (" (or reinstall Debian's dataset-fashion-mnist)" if spec is FASHION_MNIST else "")
            + ", or pass --no-verify to use it anyway."
        )
    try:
        ledger.parent.mkdir(parents=True, exist_ok=True)
        verified[stamp] = spec.name
        from zoo.rundir import write_json

        write_json(ledger, verified)
    except OSError:
        pass  # a read-only cache only costs the hashing next time


def _same_as_archive(path: Path, data: bytes, gz_md5: str) -> str | None:
    """Only the archives' checksums are published: an uncompressed file is the real one when the
    archive beside it (as torchvision's download leaves it) is, and decompresses to the same bytes."""
    import gzip
    import hashlib

    archive = path.with_name(path.name + ".gz")
    if not archive.is_file():
        return ("only the .gz archives' checksums are published, so an uncompressed file can be checked only against "
                f"its archive, and {archive.name} is not beside it")
    packed = archive.read_bytes()
    if hashlib.md5(packed).hexdigest() != gz_md5:
        return f"the archive beside it, {archive.name}, differs from the published one (md5)"
    try:
        same = gzip.decompress(packed) == data
    except (OSError, EOFError):
        same = False
    return None if same else f"it differs from what {archive.name} beside it decompresses to"


def build_fashion_mnist(params: IDXParams) -> DatasetSplits:
    """Zalando's FashionMNIST: 60,000 + 10,000 28×28 grayscale clothes, 10 classes."""
    return load(FASHION_MNIST, params)


def build_mnist(params: IDXParams) -> DatasetSplits:
    """LeCun's MNIST: 60,000 + 10,000 28×28 grayscale handwritten digits."""
    return load(MNIST, params)


@zoo.hookimpl
def register_datasets(register):
    register("fashion-mnist", build_fashion_mnist, params=IDXParams)
    register("mnist", build_mnist, params=IDXParams)
