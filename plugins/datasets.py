"""Datasets `mnist` and `fashion-mnist`: the IDX files, found locally or downloaded by torchvision."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

import zoo
from zoo.contracts import DatasetSplits
from zoo.errors import ZooError

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
#: Where Debian's dataset packages put their copies (dataset-fashion-mnist).
SYSTEM_DIR = Path("/usr/share/datasets")


@dataclass(frozen=True)
class Spec:
    name: str
    torchvision_class: str  # also the folder torchvision downloads into: <root>/<class>/raw
    classes: tuple[str, ...]


FASHION_MNIST = Spec(
    "fashion-mnist",
    "FashionMNIST",
    ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
)
MNIST = Spec("mnist", "MNIST", tuple(str(digit) for digit in range(10)))


class IDXParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data_dir: Path | None = None
    """Looked at first (also ZOO_DATA_DIR): the four IDX files, plain or .gz, directly inside or
    in torchvision's layout (<dir>/FashionMNIST/raw/)."""
    download: bool = True
    """Fall back to torchvision's download into the user cache."""
    mirror: str | None = None
    """A mirror to download from instead of torchvision's, e.g. http://host/fashion-mnist/."""
    hflip: bool = False
    """Augment training batches: mirror a random half left to right."""
    shift: int = Field(0, ge=0, le=8)
    """Augment training batches: move each image by up to this many pixels."""


def cache_dir() -> Path:
    """~/.cache/zoo, or $XDG_CACHE_HOME/zoo."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "zoo"


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


def locate(spec: Spec, params: IDXParams) -> dict[str, Path]:
    """Try, in order: the data dir, the user cache, the system copy, a download."""
    looked: list[str] = []
    explicit = params.data_dir or (Path(os.environ["ZOO_DATA_DIR"]) if os.environ.get("ZOO_DATA_DIR") else None)
    if explicit is not None:
        if not explicit.is_dir():
            raise ZooError(
                f"The data directory {explicit} does not exist or is not a directory. "
                f"Check --data-dir / ZOO_DATA_DIR, or leave it out to use the cache ({cache_dir()})."
            )
        if not os.access(explicit, os.R_OK | os.X_OK):
            raise ZooError(f"The data directory {explicit} cannot be read (permission denied).")
    candidates = [explicit] if explicit else []
    candidates += [cache_dir(), SYSTEM_DIR / spec.name]
    for directory in candidates:
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
    raise ZooError(
        f"Cannot find the {spec.name} dataset. Looked for {', '.join(FILES.values())} (plain or .gz) in: "
        f"{'; '.join(looked)}; then tried to download it: {download_error} "
        f"To fix: put the four files in one of those folders, or pass --data-dir DIR"
        + (", or on Debian install them with `apt-get install dataset-fashion-mnist`" if spec is FASHION_MNIST else "")
        + ", or download from a mirror you can reach with --set dataset.mirror=URL."
    )


def _download(spec: Spec, params: IDXParams) -> dict[str, Path]:
    """torchvision's MNIST downloader (mirrors, md5 checks), into the user cache."""
    import torchvision.datasets as tvd

    base = getattr(tvd, spec.torchvision_class)
    attributes = {"mirrors": [params.mirror.rstrip("/") + "/"]} if params.mirror else {}
    downloader = type(f"Zoo{spec.torchvision_class}", (base,), attributes)
    root = cache_dir()
    # torchvision derives its folder from the class name; keep the original one.
    downloader.raw_folder = property(lambda self: str(root / spec.torchvision_class / "raw"))  # type: ignore[attr-defined]
    try:
        root.mkdir(parents=True, exist_ok=True)
        downloader(root=str(root), train=True, download=True)
    except (RuntimeError, OSError, ValueError) as error:
        raise ZooError(f"{' '.join(str(error).split())}.") from None
    found = _find_files(root, spec)
    if not found:
        raise ZooError(f"the download finished but the files are not in {root / spec.torchvision_class / 'raw'}.")
    return found


def load(spec: Spec, params: IDXParams) -> DatasetSplits:
    from zoo.data import TensorSplit, compose, random_hflip, random_shift

    from .idx import read_idx

    files = locate(spec, params)
    splits = []
    for split in ("train", "test"):
        images = read_idx(files[f"{split}_images"], dims=3)
        labels = read_idx(files[f"{split}_labels"], dims=1)
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
        splits.append(TensorSplit(images.unsqueeze(1), labels.long(), compose(*augments) if split == "train" else None))
    return DatasetSplits(train=splits[0], test=splits[1], classes=list(spec.classes), input_shape=(1, 28, 28))


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
