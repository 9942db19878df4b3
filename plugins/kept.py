"""zoo's own uncompressed copy of the system's FashionMNIST, in the user cache.

Decompressing Debian's .gz files costs every run about 0.2 s (a tenth of a short run's fixed cost). Once a run has
verified them, it keeps them uncompressed in <cache>/decompressed/<name>/, a folder only zoo writes, which `locate`
tries first: later runs read the files as they are (verifying them once, by checksum, as any file). A copy that
fails that check (a crash or a disk error while it was written) is deleted and the system copy used again. Only for
datasets whose files' own checksums are published (not MNIST, whose archives' only are), and never on a nearly
full disk."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.rundir import remove_stale

from .datasets import FILES, Spec, cache_dir

if TYPE_CHECKING:
    import torch

SPARE_BYTES = 1 << 30  # a 0.2 s saving is not worth the last GiB of a disk
STALE_SECONDS = 600  # a partial file this old is left from a killed process (writing one takes about a second)


def folder(spec: Spec) -> Path:
    return cache_dir() / "decompressed" / spec.name


def holds(spec: Spec, files: dict[str, Path]) -> bool:
    """Whether `files` are zoo's kept copy."""
    return all(path.parent == folder(spec) for path in files.values())


def keep(spec: Spec, read: dict[str, torch.Tensor]) -> None:
    """Write the verified arrays (by FILES key) as uncompressed IDX files: all four, or none."""
    from .idx import write_idx

    if not all(known.sha256 for known in spec.known.values()):
        return
    target, written = folder(spec), []
    try:
        target.mkdir(parents=True, exist_ok=True)
        remove_stale(target.glob(".*.partial"), STALE_SECONDS)
        if shutil.disk_usage(target).free < sum(array.numel() for array in read.values()) + SPARE_BYTES:
            return
        for key, stem in FILES.items():
            write_idx(target / stem, read[key])
            written.append(target / stem)
    except BaseException as error:  # a full disk, a read-only cache, Ctrl-C: three files of four would never be used
        for path in written:
            path.unlink(missing_ok=True)
        if not isinstance(error, OSError):
            raise


def drop(spec: Spec) -> None:
    shutil.rmtree(folder(spec), ignore_errors=True)
