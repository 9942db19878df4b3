"""Predict with a finished run: rebuild its model from config.json, load model.safetensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .config import Part
from .contracts import Prediction
from .errors import ZooError, describe_validation_error
from .plugins import Catalog, Resolved
from .rundir import WEIGHTS, load_weights, read_config


def part_from_record(catalog: Catalog, section: str, kind: str, record: Any, **params: Any) -> Part:
    """A component as config.json recorded it (component name and full params)."""
    try:
        component = catalog.registry.get(kind, record["component"])
        values = {**record.get("params", {}), **params}
    except (KeyError, TypeError, AttributeError):
        raise ZooError(f"config.json has no valid {section} entry.") from None
    try:
        validated = component.params.model_validate(values)
    except ValidationError as error:
        raise ZooError(f"config.json's {section} settings no longer validate: {describe_validation_error(section, error)}.") from None
    return Part(section, Resolved(record.get("name", component.name), component, {}, record.get("preset")), validated)


def predict_index(catalog: Catalog, run_dir: Path, index: int, data_dir: Path | None = None) -> Prediction:
    from .build import build_dataset, build_model
    from .train import predict

    config = read_config(run_dir)
    components = config["components"]
    model = build_model(
        part_from_record(catalog, "model", "model", components.get("model")),
        tuple(config.get("input_shape", ())),
        len(config.get("classes", ())),
    )
    load_weights(model, run_dir / WEIGHTS)
    extra = {"data_dir": data_dir} if data_dir is not None else {}
    data = build_dataset(part_from_record(catalog, "dataset", "dataset", components.get("dataset"), **extra))
    if not 0 <= index < len(data.test):
        raise ZooError(f"--index {index} is outside the test split, which has {len(data.test)} samples (0..{len(data.test) - 1}).")
    image, label = data.test[index]
    return predict(model, image, data.classes, int(label), index)
