"""Trained models by name: a run's weights (safetensors) and its card, kept in a model store.

Three places hold them: the user's store (ZOO_MODELS, else $XDG_DATA_HOME/zoo/models, else
~/.local/share/zoo/models), the models zoo ships (zoo/shipped/), and the folders plugins register
(register_trained_models). A name means one model: found twice, it is an error naming both.
Reading a card or listing the store never imports torch; loading checks the SHA-256 first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import tempfile
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator

from .errors import ZooError, closest, describe_validation_error, spoken
from .rundir import CARD, CONFIG, METRICS, WEIGHTS, RunRecord, network_name, read_config, read_small_file, remove_stale, sha256_of, unfinished, verified_sha256, write_json

if TYPE_CHECKING:
    from .plugins import Catalog

STORE_ENV = "ZOO_MODELS"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
SHA256 = re.compile(r"[0-9a-f]{64}")
#: A card is a few kilobytes; a safetensors header far larger than this is not one zoo wrote.
CARD_LIMIT = 16 * 2**20
SAVING = ".zoo-saving-"  # a save's folder while it is written: a store may be any folder (--store), so its own names are zoo's
STALE_PARTIAL_SECONDS = 3600  # a save takes seconds: a hidden folder this old is left by a killed one
HEADER_LIMIT = 16 * 2**20


class Metrics(BaseModel):
    model_config = ConfigDict(extra="allow")

    accuracy: float | None = Field(None, ge=0, le=1)
    loss: float | None = None
    epochs: int = Field(0, ge=0)
    seconds: float | None = Field(None, ge=0)


class Origin(BaseModel):
    """What a model was fine-tuned from (`zoo run --init`)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    sha256: str = Field(pattern=SHA256.pattern)


class Card(BaseModel):
    """What a stored model is: enough to rebuild it, judge it and check its weights."""

    model_config = ConfigDict(extra="forbid")

    format: Literal[1] = 1
    name: str = Field(pattern=NAME.pattern)
    model: str
    dataset: str
    recipe: str
    classes: list[str] = Field(min_length=1)
    input_shape: list[PositiveInt]
    parameters: int = Field(ge=0)
    sha256: str = Field(pattern=SHA256.pattern)
    size: int = Field(ge=0)
    metrics: Metrics
    versions: dict[str, Any] = {}
    init: Origin | None = None
    saved: str = ""
    source: str = ""
    config: dict[str, Any]
    """The run's config.json, as written: what inference rebuilds the model from."""

    @field_validator("config")
    @classmethod
    def _a_run_record(cls, value: dict[str, Any]) -> dict[str, Any]:
        RunRecord.model_validate(value)
        return value


@dataclass(frozen=True)
class Stored:
    """One model folder and where it comes from: "store", "zoo" (shipped) or a plugin's name."""

    name: str
    folder: Path
    origin: str

    @property
    def weights(self) -> Path:
        return self.folder / WEIGHTS

    def where(self) -> str:
        return {"store": "the model store", "zoo": "zoo's shipped models"}.get(self.origin, f"plugin {self.origin}") + f" ({self.folder})"


@dataclass(frozen=True)
class Source:
    """What inference and --init load: a run directory or a stored model, checked."""

    label: str
    config: dict[str, Any]
    weights: Path
    sha256: str
    card: Card | None = None


@dataclass(frozen=True)
class Loaded:
    """zoo.load's answer: the model (torch, eval mode), its classes, its config and where it came from."""

    model: Any
    classes: list[str]
    config: dict[str, Any]
    label: str
    sha256: str
    card: Card | None = None

    def __repr__(self) -> str:
        """One line for a notebook's echo, not the whole config (and not a thousand class names)."""
        parameters = sum(p.numel() for p in self.model.parameters())
        classes = repr(self.classes) if len(self.classes) <= 10 else f"<{len(self.classes)}: {', '.join(self.classes[:3])}, ...>"
        return (f"Loaded({self.label!r}, model=<{type(self.model).__name__}, {parameters:,} parameters>, classes={classes}, "
                f"sha256={self.sha256[:12]!r}...)")


#: The --store of a command that reads trained models by name (zoo.cli), over ZOO_MODELS while that command runs.
CHOSEN_STORE: ContextVar[Path | None] = ContextVar("zoo_chosen_store", default=None)


def store_root(env: dict[str, str] | None = None) -> Path:
    """The user's model store: a command's --store, else ZOO_MODELS, else the XDG data folder."""
    if env is None and (chosen := CHOSEN_STORE.get()) is not None:
        return chosen
    env = dict(os.environ) if env is None else env
    if env.get(STORE_ENV):
        return Path(env[STORE_ENV])
    base = env.get("XDG_DATA_HOME", "")  # only an absolute one counts (the XDG spec)
    return (Path(base) if os.path.isabs(base) else Path.home() / ".local" / "share") / "zoo" / "models"


def shipped_root() -> Path:
    """The models zoo ships, inside the package."""
    return Path(__file__).with_name("shipped")


def folders(catalog: Catalog | None = None, root: Path | None = None) -> list[Stored]:
    """Every model folder: the user's store, zoo's shipped models, then the plugins'."""
    places = [(root or store_root(), "store"), (shipped_root(), "zoo")]
    places += [(Path(folder), plugin) for plugin, folder in (catalog.trained_models if catalog is not None else [])]
    if places[0][0].exists() and not places[0][0].is_dir():  # as `zoo save` says: quietly showing none would hide the mistake
        raise ZooError(f"The model store {places[0][0]} is a file, not a folder (ZOO_MODELS or --store names the store's folder); "
                       f"nothing was read or stored.")
    found = []
    for place, origin in places:
        if place.is_dir():
            found += [Stored(sub.name, sub, origin) for sub in sorted(place.iterdir()) if sub.is_dir() and NAME.fullmatch(sub.name)]
    return found


def find(name: str, catalog: Catalog | None = None, root: Path | None = None) -> Stored | None:
    """The model folder called `name`, or None; two of that name are an error naming both."""
    matches = [s for s in folders(catalog, root) if s.name == name]
    if len(matches) > 1:
        raise ZooError(f"Two trained models are called {name!r}: in {matches[0].where()} and in {matches[1].where()}. "
                       f"Remove or rename one of them (zoo never guesses which you meant).")
    return matches[0] if matches else None


def read_card(stored: Stored) -> Card:
    """The card of a model folder, validated; a missing or damaged card is one clear error."""
    path = stored.folder / CARD
    try:
        data = json.loads(read_small_file(path, CARD_LIMIT).decode("utf-8"))
        card = Card.model_validate(data)
    except FileNotFoundError:
        raise ZooError(f"Trained model {stored.name!r} in {stored.where()} has no {CARD}; it is damaged. Save it again with {_save_it(stored.name)}.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ZooError(f"Trained model {stored.name!r}: {path} cannot be read as JSON ({getattr(error, 'strerror', None) or error}).") from None
    except ValidationError as error:
        raise ZooError(f"Trained model {stored.name!r}: {path} is not a valid model card: {describe_validation_error('', error)}. "
                       f"Nothing was loaded; save the model again.") from None
    if card.name != stored.name:
        raise ZooError(f"Trained model {stored.name!r}: its card says it is {card.name!r}; the folder was renamed or the card copied. Nothing was loaded.")
    return card


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, read without torch; anything else (a pickle, say) is an error."""
    not_safetensors = ZooError(f"{path} is not a valid safetensors file (damaged or cut short, or a pickle or another format renamed?); zoo never unpickles. Nothing was loaded.")
    try:
        with open(path, "rb") as file:
            head = file.read(8)
            if len(head) < 8:
                raise not_safetensors
            (length,) = struct.unpack("<Q", head)
            if length > HEADER_LIMIT:
                raise not_safetensors
            header = json.loads(file.read(length).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise not_safetensors from None
    if not isinstance(header, dict) or not all(isinstance(v, dict) and "shape" in v for k, v in header.items() if k != "__metadata__"):
        raise not_safetensors
    offsets = [v.get("data_offsets") for k, v in header.items() if k != "__metadata__"]
    if not all(isinstance(o, list) and len(o) == 2 and all(isinstance(n, int) and not isinstance(n, bool) for n in o) for o in offsets):
        raise not_safetensors
    expected = 8 + length + max((o[1] for o in offsets), default=0)
    if path.stat().st_size < expected:
        raise ZooError(f"{path} is cut short ({path.stat().st_size:,} bytes where its header describes {expected:,}: a full disk or an "
                       f"interrupted copy?). Nothing was loaded; copy the file again, or train the run again.")
    return header


def _check_finite(weights: Path) -> None:
    """A model whose weights hold NaN or infinity (a diverged run) is not worth a name: refuse to store it. Read a
    tensor at a time; one numpy cannot hold (bfloat16) is checked when predict or --init loads it."""
    import numpy as np
    from safetensors import safe_open

    bad = []
    try:
        file = safe_open(str(weights), framework="numpy")
    except Exception as error:  # SafetensorError: a header safetensors itself refuses (an unknown dtype, overlapping data)
        raise ZooError(f"{weights} is not a valid safetensors file ({' '.join(str(error).split())}); nothing was stored.") from None
    with file:
        for key in file.keys():
            try:
                array = file.get_tensor(key)
            except Exception:  # a dtype numpy lacks (bfloat16, float8), or a tensor cut short: checked where it is loaded
                continue
            if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
                bad.append(key)
    if bad:
        raise ZooError(f"{weights} holds NaN or infinite values (in {', '.join(sorted(bad)[:3])}{' …' if len(bad) > 3 else ''}): a diverged run? "
                       f"Nothing was stored; train it again, e.g. with a lower learning rate.")


def parameter_count(header: dict[str, Any]) -> int:
    total = 0
    for key, entry in header.items():
        if key != "__metadata__":
            count = 1
            for size in entry["shape"]:
                count *= int(size)
            total += count
    return total


def open_stored(stored: Stored) -> Source:
    """A stored model's card and weights, checked: the card validates, the file is safetensors, the SHA-256 matches."""
    card = read_card(stored)
    if not stored.weights.is_file():
        raise ZooError(f"Trained model {stored.name!r} has no weights file {stored.weights}; it is damaged. Nothing was loaded.")
    actual = sha256_of(stored.weights)
    if actual != card.sha256:
        raise ZooError(f"Trained model {stored.name!r}: {stored.weights} has SHA-256 {actual[:16]}…, but its card says {card.sha256[:16]}…; "
                       f"the file was changed or damaged. Nothing was loaded: save the model again, or reinstall zoo for a shipped one.")
    safetensors_header(stored.weights)
    return Source(stored.name, card.config, stored.weights, actual, card)


def located(run: Path) -> Path:
    """A run as `zoo runs` names it: a bare name that is no folder here is looked up under runs/."""
    listed = Path("runs") / run
    return listed if not run.exists() and not run.is_absolute() and (listed / CONFIG).is_file() else run


def which(reference: str | Path, catalog: Catalog | None = None, root: Path | None = None) -> tuple[Stored | None, Path]:
    """The stored model `reference` names (None: none), and the path it means as a run: a stored name wins over
    runs/NAME; else a bare name that is no folder here is the run `zoo runs` lists under it."""
    text = str(reference)
    stored = find(text, catalog, root) if NAME.fullmatch(text) else None
    return stored, Path(reference) if stored is not None else located(Path(reference))


def open_source(reference: str | Path, catalog: Catalog | None = None, root: Path | None = None) -> Source:
    """A stored model's name or a finished run directory; a name that is both is an error naming both."""
    text = str(reference)
    stored, path = which(reference, catalog, root)
    if stored is not None and path.exists():
        raise ZooError(f"{text!r} is both a trained model (in {stored.where()}) and a run directory here ({path.resolve()}); "
                       f"rename one of them, or give the run directory by another path (e.g. its absolute path).")
    if stored is not None:
        return open_stored(stored)
    if not path.exists() and NAME.fullmatch(text):
        hint = closest(text, [found.name for found in folders(catalog, root)])
        raise ZooError(f"{text} is not a trained model" + (f" (did you mean {hint}?)" if hint else "")
                       + f" ({spoken('`zoo models`', 'zoo.models()')} lists them) and is not a run directory (it "
                       f"does not exist). {spoken('`zoo run` prints the directory it writes', 'zoo.run returns the run (its run_dir)')}; "
                       f"{_save_it('NAME')} stores a run under a name.")
    config = read_config(path)
    weights = path / WEIGHTS
    if weights.is_file():
        safetensors_header(weights)
    return Source(str(path), config, weights, verified_sha256(weights) if weights.is_file() else "")


def last_metrics(run_dir: Path) -> Metrics:
    """The run's final epoch, from metrics.jsonl (empty metrics when there is none)."""
    try:
        text = read_small_file(run_dir / METRICS, CARD_LIMIT)
    except FileNotFoundError:  # a run from before metrics.jsonl, or one that trained no epoch: no figures to claim
        return Metrics()
    except OSError as error:
        raise ZooError(f"Cannot read {run_dir / METRICS} ({error.strerror or error}), so the card could not say how well the model "
                       f"does; nothing was stored.") from None
    try:
        epochs = [json.loads(line) for line in text.decode("utf-8").splitlines()]
        last = epochs[-1] if epochs else {}
        return Metrics(accuracy=last.get("test_accuracy"), loss=last.get("test_loss"), epochs=int(last.get("epoch", len(epochs))),
                       seconds=sum(float(epoch.get("seconds", 0)) for epoch in epochs))
    except (ValueError, TypeError, AttributeError, OverflowError):  # not JSON, not records, values out of range (pydantic's is a ValueError)
        raise ZooError(f"{run_dir / METRICS} is damaged (each line must be one epoch's record, as the run wrote it), so the card "
                       f"could not say how well the model does; nothing was stored. `zoo runs` lists the run as damaged.") from None


def make_card(run_dir: Path, name: str) -> Card:
    """The card for run_dir's finished weights, stored as `name`."""
    config = read_config(run_dir)
    weights = run_dir / WEIGHTS
    if not weights.is_file():
        raise ZooError(f"{run_dir} has no {WEIGHTS} to save: {unfinished(run_dir)}")
    header = safetensors_header(weights)
    _check_finite(weights)
    components = config["components"]
    init = config.get("init")
    return Card(
        name=name, model=network_name(components["model"]), dataset=components["dataset"]["name"], recipe=config.get("recipe", ""),
        classes=config["classes"], input_shape=config["input_shape"], parameters=parameter_count(header), sha256=verified_sha256(weights),
        size=weights.stat().st_size, metrics=last_metrics(run_dir), versions=dict(config.get("versions") or {}),
        init=Origin(name=str(init), sha256=config["init_sha256"]) if init and config.get("init_sha256") else None,
        saved=date.today().isoformat(), source=str(run_dir), config=config,
    )


def save(run_dir: str | Path, name: str, root: Path | None = None, catalog: Catalog | None = None) -> Stored:
    """Store run_dir's weights and card as `name` (into `root`, default the user's store). The folder
    appears whole or not at all: it is written beside its final place, then renamed."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ZooError(f"{name!r} cannot name a trained model: use ASCII letters and digits, '.', '_' and '-' (at most 100), starting with a letter or digit.")
    root = root or store_root()
    existing = find(name, catalog, root)
    if existing is not None:
        raise ZooError(f"A trained model called {name!r} already exists in {existing.where()}; choose another name (nothing is overwritten).")
    run_dir = located(Path(run_dir))
    card = make_card(run_dir, name)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale((p for p in root.glob(f"{SAVING}*") if p.is_dir()), STALE_PARTIAL_SECONDS)  # saves killed midway, and only those
    partial = Path(tempfile.mkdtemp(prefix=f"{SAVING}{name}.", dir=root))
    try:
        shutil.copyfile(Path(run_dir) / WEIGHTS, partial / WEIGHTS)
        if sha256_of(partial / WEIGHTS) != card.sha256:
            raise ZooError(f"{Path(run_dir) / WEIGHTS} changed while it was being copied; nothing was stored. Try again.")
        write_json(partial / CARD, card.model_dump(mode="json"))
        os.chmod(partial, 0o755)
        try:
            os.rename(partial, root / name)
        except OSError as error:
            if not (root / name).exists():
                raise
            raise ZooError(f"A trained model called {name!r} was stored in {root} by another process just now; this one was not "
                           f"(nothing is overwritten): choose another name.") from error
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return Stored(name, root / name, "store" if root == store_root() else "zoo")


@dataclass(frozen=True)
class Listed:
    """One row of `zoo models`: the card, or why it cannot be read."""

    stored: Stored
    card: Card | None
    problem: str = ""


def listing(catalog: Catalog | None = None, root: Path | None = None) -> list[Listed]:
    """Every trained model with its card (the weights are not hashed: that is for loading)."""
    rows = []
    for stored in folders(catalog, root):
        try:
            rows.append(Listed(stored, read_card(stored)))
        except ZooError as error:
            rows.append(Listed(stored, None, str(error)))
    return rows



def _save_it(name: str) -> str:
    return spoken(f"`zoo save RUN {name}`", f"zoo.save(run, {name!r})")


__all__ = ["CARD", "CONFIG", "Card", "Source", "Stored", "find", "listing", "open_source", "save", "store_root"]
