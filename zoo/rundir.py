"""The run directory: config.json, metrics.jsonl, model.safetensors. Files are written to a temporary
name in the same folder, synced, then renamed, so no reader ever sees half a file."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from .errors import ZooError, describe_validation_error, option, resume_it
from .runlock import LOCK
from .settings import RunConfig

CONFIG = "config.json"
METRICS = "metrics.jsonl"
STEPS = "steps.jsonl"
CURVES = "curves.png"
WEIGHTS = "model.safetensors"
CHECKPOINTS = "checkpoints"  # a run's checkpoint folders (zoo.checkpoint)
DIVERGED = "diverged.json"  # written when the loss became NaN or infinite: `zoo runs` says so instead of "unfinished"
CARD = "card.json"  # a stored model's card (zoo.store)


def check_new_run_dir(out: Path | None) -> None:
    """A run may be written to `out` only if it is new or an empty directory."""
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ZooError(f"{option('--out', out)} already exists and is not an empty directory; choose another, so no earlier run is overwritten.")


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
            raise ZooError(f"Cannot create the run directory {path}: {error.strerror or error}. Run zoo from a folder you can write "
                           f"to, or give one with {option('--out', 'DIR')}.") from None
    raise ZooError(f"Too many runs named {base} in {root}.")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


@contextmanager
def temporary_beside(path: Path, suffix: str = ".tmp") -> Iterator[str]:
    """A new hidden file beside `path` (.NAME.RANDOM.SUFFIX, made with O_EXCL as tempfile makes its own), removed on the
    way out unless renamed meanwhile. Its name is chosen before the file is made, inside the cleanup's reach: a Ctrl-C
    or SIGTERM just as it appeared (between tempfile.mkstemp's making it and the code after) used to leave it behind."""
    folder = path.parent if str(path.parent) else Path(".")
    temporary = folder / f".{path.name}.{_random_part()}{suffix}"
    try:
        while True:
            try:
                os.close(os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
                break
            except FileExistsError:
                temporary = folder / f".{path.name}.{_random_part()}{suffix}"
        yield str(temporary)
    finally:
        temporary.unlink(missing_ok=True)


def _random_part() -> str:
    return "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789_") for _ in range(8))


def write_atomic(path: Path, write: Any) -> None:
    """Call write(temporary_path), fsync it, and rename it over `path`."""
    with temporary_beside(path) as temporary:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_umask())
        with open(temporary, "rb") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, lambda temporary: Path(temporary).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8"))


#: What zoo reads back from a run or a stored model (whose card is card.json), a run's lock (zoo.runlock) and its learning
#: curves, which nothing draws again: no file a user names for output may be one.
OWN_FILES = (CONFIG, METRICS, STEPS, WEIGHTS, WEIGHTS + ".sha256", DIVERGED, CARD, LOCK, CURVES)


def network_name(component: Any) -> str:
    """The trained network's name from a run's config.json record of its model: the preset's (mlp-1024), or the
    component's (mlp) where a --set changed what the preset fixes; "?" for a damaged record."""
    if not isinstance(component, dict):
        return "?"
    return str(component.get("component", "?") if component.get("changes_preset") is True else component.get("name", "?"))


def check_output_file(path: Path, option: str, folder_made_later: bool = False) -> None:
    """A file the user names for zoo to write (--out of export, --grid, jsonl.path): a new file or a regular one to
    replace, never a folder, a device or a FIFO (/dev/null would become a file; a FIFO hangs), nor a file zoo reads
    back from a run or a stored model (its config.json, logs or weights, anything in its checkpoints). Its folder must
    exist, so that the work is not done before the file fails (folder_made_later: a run's own --out may make it)."""
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file (a device, a FIFO or a socket)"
        raise ZooError(f"{option} {path} is {kind}; give the path of a new file, or of a regular file to replace.")
    if not folder_made_later and not path.absolute().parent.is_dir():
        raise ZooError(f"{option} {path}: the folder {path.absolute().parent} does not exist; make it first, or give another path.")
    resolved = path.resolve()
    folder = resolved.parent
    if _holds_a_run(folder):  # RUN/config.json and the like; a new file beside them is fine
        owner = folder if resolved.name in OWN_FILES else None
    else:  # RUN/checkpoints/STEP/anything
        owner = folder.parent.parent if folder.parent.name == CHECKPOINTS and _holds_a_run(folder.parent.parent) else None
    if owner is not None:
        raise ZooError(f"{option} {path} is one of the files zoo keeps in {owner} (a run or a stored model), which writing it would damage; "
                       f"choose another path.")


def _holds_a_run(folder: Path) -> bool:
    """A run's folder (config.json) or a stored model's (card.json)."""
    return (folder / CONFIG).is_file() or (folder / CARD).is_file()


def remove_stale(leftovers: Iterable[Path], seconds: float) -> None:
    """Files or folders that a killed process left half-written (`.NAME.partial`, a save's hidden folder), once older
    than `seconds`: one still being written is younger."""
    import time

    for leftover in leftovers:
        try:
            inside = list(leftover.iterdir()) if leftover.is_dir() else []  # a slow copy into the folder is younger than it
            if time.time() - max(path.stat().st_mtime for path in [leftover, *inside]) <= seconds:
                continue
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink()
        except OSError:
            continue


def discard_if_nothing_kept(run_dir: Path, keep_folder: bool = False) -> bool:
    """A new run that failed before its first checkpoint, epoch result or weights leaves nothing to resume or read:
    remove it (a user's own --out folder that existed stays, emptied), so `zoo runs` lists no run that cannot go on.
    Returns whether it was removed."""
    try:
        results = (run_dir / METRICS).stat().st_size > 0 if (run_dir / METRICS).exists() else False
        if results or has_checkpoint_folder(run_dir) or (run_dir / WEIGHTS).exists() or (run_dir / DIVERGED).exists():
            return False
        for entry in run_dir.iterdir() if keep_folder else []:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        if not keep_folder:
            shutil.rmtree(run_dir)
    except OSError:
        return False
    return True


def has_checkpoint_folder(run_dir: Path) -> bool:
    """Whether a run wrote a checkpoint (its files not checked: zoo.checkpoint does that, with torch)."""
    try:
        return any(entry.is_dir() for entry in (run_dir / CHECKPOINTS).iterdir())
    except OSError:
        return False


#: config.json is a few kilobytes; anything far larger is not one (a link to /dev/zero, say).
CONFIG_LIMIT = 16 * 2**20
#: No setting zoo writes nests this deep; a deeper file is crafted, and would exhaust the stack later.
MAX_JSON_DEPTH = 32


def read_small_file(path: Path, limit: int) -> bytes:
    """The bytes of `path`, which must be a regular file of at most `limit` bytes. A FIFO would hang a
    plain read and a device such as /dev/zero would fill memory, so both are refused unread.
    OSError (FileNotFoundError included) is left to the caller, which knows what the file is for."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(descriptor, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ZooError(f"{path} is not a regular file (it is a FIFO, a device or a socket); replace it with the real file.")
        data = file.read(limit + 1)
    if len(data) > limit:
        raise ZooError(f"{path} is larger than {limit:,} bytes, far more than such a file holds; it is damaged or not the real file.")
    return data


class ComponentRecord(BaseModel):
    """One component as config.json records it (zoo.config.Part.to_json)."""

    model_config = ConfigDict(extra="allow")

    name: str
    component: str
    preset: str | None = None
    params: dict[str, Any] = {}


class ComponentsRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    dataset: ComponentRecord
    model: ComponentRecord
    loss: ComponentRecord
    optimizer: ComponentRecord
    scheduler: ComponentRecord
    reporters: list[ComponentRecord] = []


class RunRecord(RunConfig):
    """config.json: the run settings that wrote it (RunConfig), the components, the data's shape.
    Other keys (versions, hashes) are kept but not checked."""

    model_config = ConfigDict(extra="allow")

    components: ComponentsRecord
    classes: list[str] = Field(min_length=1)
    input_shape: list[PositiveInt]
    input_normalization: tuple[float, float] | None = None  # (mean, std) of a standardised dataset
    input_background: Literal["dark", "light"] | None = None  # of the training images (zoo.data.background)


def read_config(run_dir: Path) -> dict[str, Any]:
    """config.json as written, once it is known to be a small regular file that validates as a RunRecord."""
    path = run_dir / CONFIG
    if not run_dir.is_dir():
        why = "it is a file" if run_dir.exists() else "it does not exist"
        raise ZooError(f"{run_dir} is not a run directory ({why}). `zoo run` prints the directory it writes; `zoo runs` lists them.")
    try:
        data = json.loads(read_small_file(path, CONFIG_LIMIT).decode("utf-8"))
    except FileNotFoundError:
        raise ZooError(f"{run_dir} is not a run directory: it has no {CONFIG}.") from None
    except RecursionError:
        raise ZooError(f"{path} is not a zoo run configuration: it nests deeper than any zoo writes.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ZooError(f"{path} cannot be read as JSON: {getattr(error, 'strerror', None) or error}.") from None
    if not isinstance(data, dict) or "components" not in data:
        raise ZooError(f"{path} is not a zoo run configuration (no 'components').")
    if nesting_depth(data) > MAX_JSON_DEPTH:
        raise ZooError(f"{path} is not a zoo run configuration: it nests deeper than {MAX_JSON_DEPTH} levels, and zoo writes far fewer.")
    try:
        RunRecord.model_validate(data)
    except ValidationError as error:
        raise ZooError(
            f"{path} is damaged: {describe_validation_error('', error)}. Restore it from a copy, or train the run again."
        ) from None
    return data


def nesting_depth(value: Any) -> int:
    """How deeply lists and objects nest in `value`, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack += [(inner, depth + 1) for inner in (item.values() if isinstance(item, dict) else item)]
    return deepest


def save_weights(model: Any, path: Path) -> None:
    """The weights with their SHA-256 beside them (`sha256sum -c` reads it), so that a file changed or damaged later
    is found when the run is used (verified_sha256), as a stored model's card finds it. The digest goes into place
    first: weights in place always have theirs, and a failure between the two leaves a run that --resume finishes."""
    from safetensors.torch import save_model

    def weights_then_digest(temporary: str) -> None:
        save_model(model, temporary)
        line = f"{sha256_of(Path(temporary))}  {path.name}\n"
        write_atomic(_digest_file(path), lambda digest: Path(digest).write_text(line, encoding="utf-8"))

    write_atomic(path, weights_then_digest)


def verified_sha256(path: Path) -> str:
    """The SHA-256 of a run's weights, checked against the one the run wrote beside them (a run from before zoo
    wrote one is not checked): weights changed since are an error, not a model quietly other than the run's."""
    digest, recorded = sha256_of(path), _digest_file(path)
    try:
        written = read_small_file(recorded, 4096).decode("ascii").split()
    except FileNotFoundError:
        return digest
    except PermissionError:  # not damage: the user's permissions, which they can mend
        raise ZooError(f"Cannot read {recorded} (permission denied), which holds the SHA-256 of {path.name}; nothing was loaded. "
                       f"Give yourself read permission on it (chmod u+r).") from None
    except (OSError, UnicodeDecodeError):
        written = []
    if not written or written[0].lower() != digest:
        raise ZooError(f"{path} does not match the SHA-256 its run wrote beside it ({recorded.name}): it was changed or damaged since "
                       f"the run finished, so nothing was loaded. If you replaced the weights on purpose, delete {recorded}.")
    return digest


def _digest_file(weights: Path) -> Path:
    return weights.with_name(weights.name + ".sha256")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_failure(error: BaseException) -> str | None:
    """Why a write failed, in words, when it is the disk's doing (full, read-only, gone): OSError, or
    safetensors' own error around one. None for anything else."""
    from safetensors import SafetensorError

    if isinstance(error, OSError):
        return error.strerror or str(error)
    if isinstance(error, SafetensorError):
        text = str(error)
        for known in ("No space left on device", "Read-only file system", "Permission denied", "Disk quota exceeded"):
            if known in text:
                return known
        return " ".join(text.split())
    return None


def unfinished(run_dir: Path) -> str:
    """Why a run has no weights yet, and what to do, for the commands that need them."""
    from .runlock import holder

    training = holder(run_dir)
    if training is not None:
        return f"the run is still training ({training.describe()}); wait for it to finish."
    if (run_dir / DIVERGED).is_file():
        return (f"the run diverged (its loss stopped being a number; {DIVERGED} says where), so it has no weights to use: start a new "
                f"run, e.g. with a lower learning rate.")
    if has_checkpoint_folder(run_dir):
        return f"the run has not finished. {resume_it(run_dir)} continues it."
    return "the run stopped before its first checkpoint, so there is nothing to resume: start it again."


def load_weights(model: Any, path: Path) -> None:
    """Load safetensors weights (no pickle); a damaged or foreign file is a clear error."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    if not path.exists():
        raise ZooError(f"{path} does not exist: {unfinished(path.parent)}")
    if not path.is_file():
        raise ZooError(f"{path} is not a regular file (a FIFO, a device or a folder); replace it with the run's real weights file.")
    try:
        _check_tensors(model, path)
        missing, unexpected = load_model(model, path, strict=False)
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ZooError(f"{path} is not a valid weights file for this model: {' '.join(str(error).split())}.") from None
    if missing or unexpected:
        raise ZooError(
            f"{path} does not match the model in config.json: missing {sorted(missing) or 'nothing'}, "
            f"unexpected {sorted(unexpected) or 'nothing'}."
        )
    _check_finite(model, path)


class WeightsDoNotFit(ZooError):
    """The file holds tensors of other shapes than the model built now: another network (zoo.inference says why)."""


def _check_tensors(model: Any, path: Path) -> None:
    """Each stored tensor must have its parameter's shape (else the file holds another network: the first that differs is
    named, in place of torch's list) and dtype (loading would silently cast int64 to float)."""
    from safetensors import safe_open

    expected = model.state_dict()
    with safe_open(path, framework="pt") as file:
        stored = {name: file.get_slice(name) for name in file.keys() if name in expected}
        shapes = {name: list(tensor.get_shape()) for name, tensor in stored.items()}
        dtypes = {name: tensor.get_dtype() for name, tensor in stored.items()}
    differ = [name for name in expected if name in shapes and shapes[name] != list(expected[name].shape)]
    if differ:
        more = f" ({len(differ) - 1} more tensor(s) differ too)" if len(differ) > 1 else ""
        raise WeightsDoNotFit(f"{path} holds another network than the model built now: {differ[0]} is {shapes[differ[0]]} there and "
                              f"{list(expected[differ[0]].shape)} here{more}.")
    for name, dtype in dtypes.items():
        wanted = str(expected[name].dtype).removeprefix("torch.")
        if _DTYPES.get(dtype, dtype.lower()) != wanted:
            raise ZooError(f"{path} stores {name!r} as {dtype} but the model's {name!r} is {wanted}: the file is damaged or from another program.")


#: safetensors' dtype names as torch names them.
_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
           "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def _check_finite(model: Any, path: Path) -> None:
    """A NaN or infinite weight makes every prediction meaningless: refuse it rather than print garbage."""
    import torch

    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ZooError(
                f"{path} holds NaN or infinite values in {name!r}: the weights are damaged (or training diverged). "
                f"Use an earlier checkpoint or train the run again."
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
