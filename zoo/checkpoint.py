"""Checkpoints that survive a crash at any instant and never unpickle anything.

A checkpoint is a directory checkpoints/step-<global step>/ holding model.safetensors,
optimizer.safetensors and rng.safetensors (tensors) and state.json (everything else). It is built
in a temporary directory, every file synced, manifest.json (each file's SHA-256) written last, and
then renamed into place: a checkpoint without a manifest, or whose files do not match it, is ignored.
At every instant a resume finds some complete checkpoint: an older one is removed only after the
newer one is in place, and one being replaced under the same name is kept aside until then.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import ZooError, resume_it
from .names import natural_key
from .rundir import CHECKPOINTS, read_small_file, sha256_of, write_failure

MANIFEST = "manifest.json"
FORMAT = 2  # 2: random states per rank, separate shuffle and augmentation generators
FILES = ("model.safetensors", "optimizer.safetensors", "rng.safetensors", "state.json")
MAX_JSON = 64 << 20  # state.json and manifest.json are small; a larger one is not ours


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_json(path: Path) -> Any:
    """A small JSON file; anything else (too big, too deep, not a regular file, not JSON) is a ValueError."""
    try:
        return json.loads(read_small_file(path, MAX_JSON))
    except ZooError as error:
        raise ValueError(str(error)) from None
    except RecursionError:
        raise ValueError(f"{path.name} is nested too deeply") from None


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


def _same_shape(saved: Any, fresh: Any, where: str) -> None:
    """`saved` has the keys, lengths and types of `fresh` (ints may stand for floats): a crafted
    state.json can restore values, never new attributes or types."""
    if isinstance(fresh, dict):
        if not isinstance(saved, dict) or set(saved) != set(fresh):
            raise ValueError(f"{where} has other keys than this run's ({', '.join(sorted(map(str, fresh)))})")
        for key in fresh:
            _same_shape(saved[key], fresh[key], f"{where}.{key}")
    elif isinstance(fresh, (list, tuple)):
        if not isinstance(saved, list) or len(saved) != len(fresh):
            raise ValueError(f"{where} is not a list of {len(fresh)}")
        for i, (s, f) in enumerate(zip(saved, fresh)):
            _same_shape(s, f, f"{where}[{i}]")
    elif fresh is None or isinstance(fresh, (bool, str)):
        if fresh is None and saved is False and where.endswith((".fused", ".foreach")):  # torch's optional switches: both mean off
            return
        if type(saved) is not type(fresh):
            raise ValueError(f"{where} is {saved!r}, expected {fresh!r}'s type")
    elif isinstance(fresh, (int, float)):
        ok = isinstance(saved, (int, float)) and not isinstance(saved, bool) and (isinstance(fresh, float) or isinstance(saved, int))
        if not ok or (isinstance(saved, float) and saved != saved):
            raise ValueError(f"{where} is {saved!r}, expected a {type(fresh).__name__}")


def save(run_dir: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
         record: dict[str, Any], tensors: dict[str, torch.Tensor], keep: int) -> Path:
    """Write one checkpoint atomically (record -> state.json, tensors -> rng.safetensors); then drop
    all but the newest `keep`."""
    from safetensors.torch import save_file, save_model

    root = run_dir / CHECKPOINTS
    root.mkdir(exist_ok=True)
    recover(run_dir)
    final = root / f"step-{record['global_step']:09d}"
    building = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    replaced = root / f".replaced-{final.name}"
    try:
        save_model(model, str(building / "model.safetensors"))
        optimizer_tensors, optimizer_plain = _split_optimizer_state(optimizer)
        save_file(optimizer_tensors, str(building / "optimizer.safetensors"))
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(building / "rng.safetensors"))
        full = {**record, "optimizer": optimizer_plain, "scheduler": scheduler.state_dict()}
        (building / "state.json").write_text(json.dumps(full))
        for name in FILES:
            _fsync(building / name)
        manifest = {"format": FORMAT, "files": {name: sha256_of(building / name) for name in FILES}}
        (building / MANIFEST).write_text(json.dumps(manifest))
        _fsync(building / MANIFEST)
        if final.exists():  # a step checkpointed again (its epoch end after a resume): the old one waits aside
            os.replace(final, replaced)
        os.replace(building, final)
        _fsync(root)
    except BaseException as error:
        if replaced.exists() and not final.exists():
            os.replace(replaced, final)
        shutil.rmtree(building, ignore_errors=True)
        reason = write_failure(error)
        if reason is None:
            raise
        kept, _ = newest(run_dir)
        raise ZooError(
            f"Cannot write checkpoint {final.name} into {root}: {reason}. The run stopped here"
            + (f"; its newest checkpoint, {kept.name}, is complete and kept" if kept else "")
            + f". Free some space (or fix the folder) and continue with {resume_it(run_dir)}."
        ) from None
    shutil.rmtree(replaced, ignore_errors=True)
    for old in sorted((p for p in root.glob("step-*") if p.is_dir()), key=lambda p: natural_key(p.name))[:-keep]:  # step-1000000000 is newer than step-999999999
        shutil.rmtree(old, ignore_errors=True)
    return final


def recover(run_dir: Path) -> None:
    """Tidy what a process killed while writing left: a checkpoint kept aside during a swap goes
    back under its name (the swap never completed), half-built ones go."""
    root = run_dir / CHECKPOINTS
    if not root.is_dir():
        return
    for aside in root.glob(".replaced-step-*"):
        final = root / aside.name.removeprefix(".replaced-")
        if final.exists() and verify(final) is None:
            shutil.rmtree(aside, ignore_errors=True)
        else:
            shutil.rmtree(final, ignore_errors=True)
            os.replace(aside, final)
    for leftover in root.glob(".building-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def verify(path: Path) -> str | None:
    """Why this checkpoint directory cannot be trusted, or None if every file matches its manifest."""
    try:
        manifest = _read_json(path / MANIFEST)
        files = manifest["files"]
        if manifest.get("format") == 1:
            return "it was written by an earlier zoo (checkpoint format 1); finish that run with zoo 0.1 or start it again"
        if manifest.get("format") != FORMAT or set(files) != set(FILES):
            return "its manifest is not one zoo writes"
    except FileNotFoundError:
        return "it has no manifest (it was being written when the process stopped)"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "its manifest is damaged"
    for name, digest in files.items():
        try:
            if sha256_of(path / name) != digest:
                return f"{name} does not match its SHA-256 in the manifest"
        except OSError:
            return f"{name} is missing or unreadable"
    return None


def candidates(run_dir: Path) -> list[Path]:
    """Checkpoint directories, newest first; one kept aside during an unfinished swap counts too."""
    root = run_dir / CHECKPOINTS
    if not root.is_dir():
        return []
    found = {p.name: p for p in root.glob("step-*") if p.is_dir()}
    for aside in root.glob(".replaced-step-*"):
        found.setdefault(aside.name.removeprefix(".replaced-"), aside)
    return [found[name] for name in sorted(found, key=natural_key, reverse=True)]


def newest(run_dir: Path) -> tuple[Path | None, list[str]]:
    """The newest trustworthy checkpoint of a run, and why newer ones were skipped."""
    skipped = []
    for path in candidates(run_dir):
        problem = verify(path)
        if problem is None:
            return path, skipped
        skipped.append(f"{path.name}: {problem}")
    return None, skipped


def newest_or_error(run_dir: Path, report: bool = True) -> Path:
    """The checkpoint a resume of `run_dir` starts from; an error that says why when there is none, and (report)
    a note on stderr for newer ones that had to be skipped."""
    found, skipped = newest(run_dir)
    root = run_dir / CHECKPOINTS
    if found is None and root.is_dir() and not os.access(root, os.R_OK | os.X_OK):  # permissions, not a run without checkpoints
        raise ZooError(f"Cannot read {root} (permission denied), so its checkpoints cannot be looked at; nothing was changed. Give "
                       f"yourself read permission on it (chmod -R u+rX {root}) and resume again.")
    if found is None:
        reasons = f" ({'; '.join(skipped)})" if skipped else ""
        raise ZooError(f"{run_dir} has no usable checkpoint to resume from{reasons}. Start a new run instead.")
    if skipped and report:  # a resume from further back than the user expects: say why
        print(f"Skipped newer checkpoint(s) of {run_dir}, which cannot be used: {'; '.join(skipped)}.", file=sys.stderr)
    return found


def load(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore model, optimizer and scheduler from a verified checkpoint; returns (state.json, rng.safetensors).
    Every failure is a ZooError naming the file: nothing here can crash, hang or run code."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, load_model

    problem = verify(path)
    if problem:
        raise ZooError(f"Checkpoint {path} cannot be used: {problem}.")
    try:
        record = _read_json(path / "state.json")
        if not isinstance(record, dict):
            raise ValueError("state.json is not an object")
        missing, unexpected = load_model(model, str(path / "model.safetensors"), strict=False)
        if missing or unexpected:
            raise ValueError(f"its weights do not fit the model (missing {sorted(missing)}, unexpected {sorted(unexpected)})")
        _check_weights(model)
        saved_optimizer = record.get("optimizer")
        _same_shape(saved_optimizer.get("param_groups") if isinstance(saved_optimizer, dict) else None,
                    optimizer.state_dict()["param_groups"], "optimizer.param_groups")
        optimizer.load_state_dict(_join_optimizer_state(load_file(str(path / "optimizer.safetensors")), saved_optimizer))
        _same_shape(record.get("scheduler"), scheduler.state_dict(), "scheduler")
        scheduler.load_state_dict(record["scheduler"])
        tensors = load_file(str(path / "rng.safetensors"))
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, IndexError, RuntimeError, AttributeError) as error:
        raise ZooError(f"Checkpoint {path} cannot be used: {' '.join(str(error).split())}.") from None
    return record, tensors


def _check_weights(model: torch.nn.Module) -> None:
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError(f"its weight {name} holds NaN or infinite values")
