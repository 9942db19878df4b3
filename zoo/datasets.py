"""Public helpers for dataset plugins: what zoo's own mnist and fashion-mnist are made of, so that a
dataset of the MNIST family is a handful of lines (docs/plugins.md shows KMNIST):

    from zoo.datasets import IDXParams, Known, Spec, load

    KMNIST = Spec("kmnist", "KMNIST", ("o", "ki", "su", ...), {"train-images-idx3-ubyte": Known(47040016, gz_md5="..."), ...})

    def build_kmnist(params: IDXParams):
        return load(KMNIST, params)

- `Spec(name, torchvision_class, classes, known)`: a dataset of four IDX files (FILES); `known` maps each
  file's stem to `Known(size, sha256=..., gz_md5=...)`, its checksums (None: not checked).
- `IDXParams`: the settings of the built-ins (data_dir, download, mirror, verify, hflip, shift), with
  `--data-dir`/`--no-verify` wired to them.
- `load(spec, params) -> zoo.DatasetSplits`: locate, verify, read, check and split, as the built-ins do.
- `locate(spec, params)`: the four files, looked for in the same order as the built-ins (--data-dir or
  ZOO_DATA_DIR, the user cache `cache_dir()`, /usr/share/datasets/<name>, then torchvision's download
  into the cache); each folder may hold them flat, gzipped or not, or in torchvision's layout.
- `verify_file(spec, stem, path)`: compare one file with its Known checksums (remembered per file in
  the cache, so it is hashed once).
- `read_idx(path, dims) -> uint8 tensor`: one IDX file, gzipped or not, checked against its header.
"""

from __future__ import annotations

from zoo_plugins.datasets import FILES, SYSTEM_DIR, IDXParams, Known, Spec, cache_dir, load, locate, verify_file
from zoo_plugins.idx import read_idx

__all__ = ["FILES", "SYSTEM_DIR", "IDXParams", "Known", "Spec", "cache_dir", "load", "locate", "read_idx", "verify_file"]
