"""Read an IDX file (the MNIST format), gzipped or not, into one uint8 tensor.

torchvision's reader trusts its input; this one checks the magic number, the data type,
the dimension count and the size against the header, so a truncated or foreign file is an
error that names the file rather than a crash or a silently wrong tensor.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.errors import ZooError

if TYPE_CHECKING:
    import torch

UBYTE = 0x08


def read_idx(path: Path | str, dims: int) -> torch.Tensor:
    """The array stored in `path`, which must be unsigned bytes with `dims` dimensions."""
    import torch

    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise _bad(path, f"it is {len(data)} bytes long, shorter than an IDX header")
    zero, dtype, ndims = int.from_bytes(data[0:2], "big"), data[2], data[3]
    if zero != 0 or dtype != UBYTE or ndims != dims:
        raise _bad(
            path,
            f"its magic number is 0x{int.from_bytes(data[0:4], 'big'):08x}, "
            f"expected 0x{UBYTE << 8 | dims:08x} ({dims}-dimensional unsigned bytes)",
        )
    header = 4 + 4 * dims
    if len(data) < header:
        raise _bad(path, "it ends inside its header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    expected = header
    count = 1
    for size in shape:
        count *= size
    expected += count
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise _bad(path, f"its header announces shape {shape} ({expected} bytes) but the file has {len(data)} bytes: {state}")
    if count == 0:  # frombuffer refuses an empty buffer; the caller judges an empty split
        return torch.empty(shape, dtype=torch.uint8)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=header).reshape(shape)  # one copy of 47 MB, not two


def write_idx(path: Path, array: torch.Tensor) -> None:
    """`array` (unsigned bytes) as an uncompressed IDX file, whole or not at all: written beside
    `path` under another name, then renamed."""
    import torch

    if array.dtype != torch.uint8:
        raise ValueError(f"write_idx writes unsigned bytes, not {array.dtype}")
    header = bytes([0, 0, UBYTE, array.dim()]) + b"".join(size.to_bytes(4, "big") for size in array.shape)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(partial, "wb") as file:
            file.write(header)
            file.write(array.contiguous().numpy())
            file.flush()
            os.fsync(file.fileno())  # on disk before it has the name: a crash leaves the old file or the whole new one
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ZooError(f"Cannot read data file {path}: {error.strerror or error}.") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise _bad(path, f"it is not a complete gzip file ({error})") from None


def _bad(path: Path, why: str) -> ZooError:
    return ZooError(
        f"Data file {path} is not a valid IDX file: {why}. Delete it and run again to fetch a fresh copy, "
        f"or point --data-dir at a good one."
    )
