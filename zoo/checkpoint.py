"""Checkpoints that survive a crash at any instant and never unpickle anything.

A checkpoint is a directory checkpoints/step-<global step>/ holding model.safetensors,
optimizer.safetensors and rng.safetensors (tensors) and state.json (everything else). It is built
in a temporary directory, every file synced, manifest.json (each file's SHA-256) written last, and
then renamed into place: a checkpoint without a manifest, or whose files do not match it, is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import ZooError

CHECKPOINTS = "checkpoints"
MANIFEST = "manifest.json"
FORMAT = 1
FILES = ("model.safetensors", "optimizer.safetensors", "rng.safetensors", "state.json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _split_optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors to safetensors (key 'state.<param>.<name>'), the rest (param groups, numbers) to JSON."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                plain.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "plain_state": plain}


def _join_optimizer_state(tensors: dict[str, torch.Tensor], record: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, values in record["plain_state"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": record["param_groups"]}


def capture_rng(generator: torch.Generator, epoch_start: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every random state the run draws from: torch's (dropout, init), the shuffle/augment generator
    now and at the start of the epoch (to redraw the epoch's order), Python's and NumPy's."""
    import numpy as np

    tensors = {"torch": torch.get_rng_state(), "generator": generator.get_state(), "generator_epoch_start": epoch_start}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = state
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    python_state = random.getstate()
    plain = {
        "python": [python_state[0], list(python_state[1]), python_state[2]],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }
    return tensors, plain


def restore_rng(tensors: dict[str, torch.Tensor], plain: dict[str, Any], generator: torch.Generator) -> torch.Tensor:
    """Restore what capture_rng saved; returns the generator's state at the start of the epoch."""
    import numpy as np

    torch.set_rng_state(tensors["torch"])
    generator.set_state(tensors["generator"])
    cuda = sorted(k for k in tensors if k.startswith("cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    version, state, gauss = plain["python"]
    random.setstate((version, tuple(state), gauss))
    kind, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    return tensors["generator_epoch_start"]


def save(
    run_dir: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    rng: tuple[dict[str, torch.Tensor], dict[str, Any]],
    extra_tensors: dict[str, torch.Tensor],
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write one checkpoint atomically; then drop all but the newest `keep`."""
    from safetensors.torch import save_file, save_model

    root = run_dir / CHECKPOINTS
    root.mkdir(exist_ok=True)
    for leftover in [*root.glob(".building-*"), *root.glob(".replaced-*")]:  # from a process killed while writing
        shutil.rmtree(leftover, ignore_errors=True)
    final = root / f"step-{state['global_step']:09d}"
    building = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    try:
        save_model(model, str(building / "model.safetensors"))
        optimizer_tensors, optimizer_plain = _split_optimizer_state(optimizer)
        save_file(optimizer_tensors, str(building / "optimizer.safetensors"))
        rng_tensors, rng_plain = rng
        save_file({**{f"rng.{k}": v for k, v in rng_tensors.items()}, **{f"extra.{k}": v.detach().cpu().contiguous() for k, v in extra_tensors.items()}},
                  str(building / "rng.safetensors"))
        record = {**state, "optimizer": optimizer_plain, "scheduler": scheduler.state_dict(), "rng": rng_plain}
        (building / "state.json").write_text(json.dumps(record))
        for name in FILES:
            with open(building / name, "rb") as file:
                os.fsync(file.fileno())
        manifest = {"format": FORMAT, "files": {name: _sha256(building / name) for name in FILES}}
        (building / MANIFEST).write_text(json.dumps(manifest))
        with open(building / MANIFEST, "rb") as file:
            os.fsync(file.fileno())
        replaced = None
        if final.exists():  # the epoch-end checkpoint of a step that was just checkpointed: swap, never a gap
            replaced = root / f".replaced-{final.name}"
            shutil.rmtree(replaced, ignore_errors=True)
            os.replace(final, replaced)
        os.replace(building, final)
        _fsync_dir(root)
        if replaced is not None:
            shutil.rmtree(replaced, ignore_errors=True)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def verify(path: Path) -> str | None:
    """Why this checkpoint directory cannot be trusted, or None if every file matches its manifest."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        files = manifest["files"]
        if manifest.get("format") != FORMAT or set(files) != set(FILES):
            return "its manifest is not one zoo writes"
    except FileNotFoundError:
        return "it has no manifest (it was being written when the process stopped)"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "its manifest is damaged"
    for name, digest in files.items():
        try:
            if _sha256(path / name) != digest:
                return f"{name} does not match its SHA-256 in the manifest"
        except OSError:
            return f"{name} is missing or unreadable"
    return None


def newest(run_dir: Path) -> tuple[Path | None, list[str]]:
    """The newest trustworthy checkpoint of a run, and why newer ones were skipped."""
    skipped = []
    root = run_dir / CHECKPOINTS
    candidates = sorted((p for p in root.glob("step-*") if p.is_dir()), reverse=True) if root.is_dir() else []
    for path in candidates:
        problem = verify(path)
        if problem is None:
            return path, skipped
        skipped.append(f"{path.name}: {problem}")
    return None, skipped


def newest_or_error(run_dir: Path) -> Path:
    """The checkpoint a resume of `run_dir` starts from; an error that says why when there is none."""
    found, skipped = newest(run_dir)
    if found is None:
        reasons = f" ({'; '.join(skipped)})" if skipped else ""
        raise ZooError(f"{run_dir} has no usable checkpoint to resume from{reasons}. Start a new run instead.")
    return found


def load(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Restore model, optimizer and scheduler from a verified checkpoint; returns (state, rng tensors, extra tensors).
    Every failure is a ZooError naming the file: nothing here can crash, hang or run code."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, load_model

    problem = verify(path)
    if problem:
        raise ZooError(f"Checkpoint {path} cannot be used: {problem}.")
    try:
        record = json.loads((path / "state.json").read_text())
        missing, unexpected = load_model(model, str(path / "model.safetensors"), strict=False)
        if missing or unexpected:
            raise ValueError(f"its weights do not fit the model (missing {sorted(missing)}, unexpected {sorted(unexpected)})")
        optimizer.load_state_dict(_join_optimizer_state(load_file(str(path / "optimizer.safetensors")), record["optimizer"]))
        scheduler.load_state_dict(record["scheduler"])
        tensors = load_file(str(path / "rng.safetensors"))
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, IndexError, RuntimeError, AttributeError) as error:
        raise ZooError(f"Checkpoint {path} cannot be used: {' '.join(str(error).split())}.") from None
    rng = {k.removeprefix("rng."): v for k, v in tensors.items() if k.startswith("rng.")}
    extra = {k.removeprefix("extra."): v for k, v in tensors.items() if k.startswith("extra.")}
    problem = _shape_problem(record, rng, extra)
    if problem:
        raise ZooError(f"Checkpoint {path} cannot be used: {problem}.")
    return record, rng, extra


def _shape_problem(record: Any, rng: dict[str, torch.Tensor], extra: dict[str, torch.Tensor]) -> str | None:
    """What is missing or malformed in a loaded checkpoint, so the runner never meets a KeyError."""
    if not isinstance(record, dict):
        return "state.json is not an object"
    for key, kind in (("epoch", int), ("batch", int), ("global_step", int), ("epochs", list), ("config_hash", str), ("rng", dict)):
        if not isinstance(record.get(key), kind) or isinstance(record.get(key), bool):
            return f"state.json has no valid {key!r}"
    epoch_keys = {"epoch", "train_loss", "test_loss", "test_accuracy", "seconds"}
    if not all(isinstance(e, dict) and set(e) == epoch_keys for e in record["epochs"]):
        return "state.json's epochs are malformed"
    for key in ("torch", "generator", "generator_epoch_start"):
        if key not in rng or rng[key].dtype != torch.uint8:
            return f"rng.safetensors has no valid {key!r} state"
    if "train_loss_sum" not in extra:
        return "rng.safetensors has no running loss"
    python, numpy = record["rng"].get("python"), record["rng"].get("numpy")
    if not (isinstance(python, list) and len(python) == 3 and isinstance(numpy, list) and len(numpy) == 5):
        return "state.json's random states are malformed"
    return None
