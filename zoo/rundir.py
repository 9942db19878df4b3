"""The run directory: config.json, metrics.jsonl, model.safetensors. Files are written to a temporary
name in the same folder, synced, then renamed, so no reader ever sees half a file."""

from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import ZooError

CONFIG = "config.json"
METRICS = "metrics.jsonl"
STEPS = "steps.jsonl"
CURVES = "curves.png"
WEIGHTS = "model.safetensors"


def check_new_run_dir(out: Path | None) -> None:
    """A run may be written to `out` only if it is new or an empty directory."""
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ZooError(f"--out {out} already exists and is not an empty directory; choose another, so no earlier run is overwritten.")


def create_run_dir(out: Path | None, model: str, dataset: str, root: Path = Path("runs")) -> Path:
    """`out` if it is new or empty; else runs/<timestamp>-<model>-<dataset> (never an existing run)."""
    if out is not None:
        check_new_run_dir(out)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ZooError(f"Cannot create the run directory {out}: {error.strerror or error}.") from None
        return out
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{_slug(model)}-{_slug(dataset)}"
    for attempt in range(1, 1000):
        path = root / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
        except OSError as error:
            raise ZooError(f"Cannot create the run directory {path}: {error.strerror or error}.") from None
    raise ZooError(f"Too many runs named {base} in {root}.")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def write_atomic(path: Path, write: Any) -> None:
    """Call write(temporary_path), fsync it, and rename it over `path`."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_umask())
        with open(temporary, "rb") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, lambda temporary: Path(temporary).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8"))


def read_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / CONFIG
    if not run_dir.is_dir():
        raise ZooError(f"{run_dir} is not a run directory (it does not exist). `zoo run` prints the directory it writes.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ZooError(f"{run_dir} is not a run directory: it has no {CONFIG}.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ZooError(f"{path} cannot be read as JSON: {error}.") from None
    if not isinstance(data, dict) or "components" not in data:
        raise ZooError(f"{path} is not a zoo run configuration (no 'components').")
    return data


def save_weights(model: Any, path: Path) -> None:
    from safetensors.torch import save_model

    write_atomic(path, lambda temporary: save_model(model, temporary))


def load_weights(model: Any, path: Path) -> None:
    """Load safetensors weights (no pickle); a damaged or foreign file is a clear error."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    if not path.is_file():
        raise ZooError(f"{path} does not exist: the run has not finished. `zoo run --resume {path.parent}` continues it.")
    try:
        missing, unexpected = load_model(model, path, strict=False)
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ZooError(f"{path} is not a valid weights file for this model: {' '.join(str(error).split())}.") from None
    if missing or unexpected:
        raise ZooError(
            f"{path} does not match the model in config.json: missing {sorted(missing) or 'nothing'}, "
            f"unexpected {sorted(unexpected) or 'nothing'}."
        )


def job_run_dir(runs_root: Path, out: Path | None, job: str | None, wanted_hash: str) -> Path | None:
    """The unfinished run directory with these settings that the torchrun job `job` began before
    torchrun restarted it, if any. Without a rendezvous id of its own ("none": torchrun given only
    --master-port) a job cannot be told from others, so none is found."""
    if not job or job == "none":
        return None
    found = []
    for candidate in [out] if out is not None else [p for p in runs_root.glob("*") if p.is_dir()]:
        try:
            record = read_config(candidate)
        except ZooError:
            continue
        launch = record.get("launch")
        if (isinstance(launch, dict) and launch.get("job") == job and record.get("config_hash") == wanted_hash
                and not (candidate / WEIGHTS).exists()):
            found.append(candidate)
    return max(found, key=lambda p: (p / CONFIG).stat().st_mtime, default=None)
