"""What makes two trainings the same, written once: the config hash, the resume check and the
data-location flags (--data-dir, --no-verify) all read it from here.

A run setting either changes what is trained, or only watches or stores it (WATCH_ONLY). A dataset's
params may mark where its files are (data_location): those may change between a run and its resume.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from .errors import ZooError

if TYPE_CHECKING:
    from .config import ResolvedRun

#: Run settings that do not change what is trained: a resume may differ in these.
WATCH_ONLY = frozenset({"out", "reporters", "log_every", "checkpoint_every", "keep_checkpoints", "predict_index"})

#: data_dir: the folder --data-dir and ZOO_DATA_DIR name; verify: what --no-verify turns off;
#: source: any other setting about where the files come from (a download switch, a mirror).
Role = Literal["data_dir", "verify", "source"]
FLAGS: dict[str, str] = {"data_dir": "--data-dir", "verify": "--no-verify"}


def data_location(role: Role, default: Any = None, **field: Any) -> Any:
    """A dataset param that says where the data is, not what it is, e.g.
    `data_dir: Path | None = data_location("data_dir")`. zoo maps --data-dir/--no-verify onto it,
    and a resume may change it (the files may have moved)."""
    return Field(default, json_schema_extra={"zoo_location": role}, **field)


def added_setting(default: Any, **field: Any) -> Any:
    """A component setting added after runs were made with it, e.g. `fused: bool = added_setting(False)`:
    at its default it stays out of a run's identity, so those runs keep their config hash and still resume.
    "At its default" is `value == default`: a NaN default or a default_factory never counts as at the default,
    and a data-location field (it sets json_schema_extra too) cannot also be an added setting."""
    return Field(default, json_schema_extra={"zoo_added": True}, **field)


def _at_added_default(params: BaseModel) -> list[str]:
    fields = type(params).model_fields
    return [name for name, info in fields.items()
            if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("zoo_added") and getattr(params, name) == info.default]


def location_fields(params: type[BaseModel] | BaseModel) -> dict[str, str]:
    """{field name: role} of a params model's data-location fields."""
    fields = type(params).model_fields if isinstance(params, BaseModel) else params.model_fields
    found = {}
    for name, info in fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get("zoo_location") in ("data_dir", "verify", "source"):
            found[name] = str(extra["zoo_location"])
    return found


def location_params(params: type[BaseModel], dataset: str, owner: object, data_dir: Any = None, verify: bool | None = None) -> dict[str, Any]:
    """The dataset params that --data-dir DIR / --no-verify set, or an error saying the dataset has none."""
    wanted = {role: value for role, value in (("data_dir", data_dir), ("verify", verify)) if value is not None}
    by_role = {role: name for name, role in location_fields(params).items()}
    values = {}
    for role, value in wanted.items():
        if role not in by_role:
            what = "reads no folder" if role == "data_dir" else "has no checksums to skip"
            raise ZooError(
                f"Dataset {dataset!r} ({owner}) {what}, so {FLAGS[role]} does not apply to it. Leave the flag out, or "
                f"see `zoo list datasets` for its settings (a dataset plugin declares such a setting with zoo.data_location)."
            )
        # a folder as an absolute path: config.json then finds it again from any folder (zoo eval, zoo predict --index)
        values[by_role[role]] = (str(Path(value).expanduser().absolute()) if "://" not in str(value) else str(value)) if role == "data_dir" else value
    return values


def identity(resolved: ResolvedRun) -> dict[str, Any]:
    """The settings that make the training what it is: everything but what only watches or stores it,
    the reporters, plugin versions (an upgraded plugin may still resume its runs) and data locations."""
    record = resolved.to_json()
    for key in WATCH_ONLY | {"changed_from_recipe"}:
        record.pop(key, None)
    if record.get("init") is None:  # runs from before --init keep their identity
        for key in ("init", "init_sha256", "init_new_head"):
            record.pop(key, None)
    for key, default in (("cuda_graphs", "auto"), ("mixup", 0.0), ("stratify", False)):  # runs from before these settings keep their identity
        if record.get(key) == default:
            record.pop(key)
    components = record["components"]
    components.pop("reporters", None)
    for part in components.values():
        part["plugin"].pop("version", None)
        part.pop("changes_preset", None)  # follows from the params: runs from before it keep their identity
    for section, part in components.items():
        for name in _at_added_default(getattr(resolved, section).params):
            part["params"].pop(name, None)
    for name in location_fields(resolved.dataset.params):
        components["dataset"]["params"].pop(name, None)
    return record


#: What a run may choose without training its recipe differently: another seed or device is the same recipe.
SAME_RECIPE = frozenset({"seed", "device", "init_sha256", "changed_from_recipe"})


def changes_from_recipe(recipe: ResolvedRun, run: ResolvedRun) -> dict[str, Any]:
    """{setting: the run's value} for each setting in which `run` trains otherwise than `recipe` (its recipe
    resolved alone): "epochs", "optimizer.lr", "model" for another model (and its params that differ)."""
    ours, theirs = _trained_settings(run), _trained_settings(recipe)
    return {key: value for key, value in ours.items() if theirs.get(key, ()) != value}


def _trained_settings(resolved: ResolvedRun) -> dict[str, Any]:
    """The settings that make a training, flat ("epochs", "model", "model.hidden"), locations left out."""
    record = resolved.to_json()
    flat = {key: value for key, value in record.items() if key not in WATCH_ONLY | SAME_RECIPE | {"components"}}
    for section, part in record["components"].items():
        if section != "reporters":
            locations = location_fields(getattr(resolved, section).params)
            flat[section] = part["name"]
            flat.update({f"{section}.{key}": value for key, value in part["params"].items() if key not in locations})
    return flat


def config_hash(resolved: ResolvedRun) -> str:
    return hashlib.sha256(json.dumps(identity(resolved), sort_keys=True).encode()).hexdigest()


