"""Predict with a finished run: rebuild its model from config.json, load model.safetensors."""

from __future__ import annotations

from pathlib import Path

from .config import part_from_record
from .contracts import Prediction
from .errors import ZooError
from .plugins import Catalog
from .rundir import WEIGHTS, load_weights, read_config


def predict_index(catalog: Catalog, run_dir: Path, index: int, data_dir: Path | None = None, verify: bool = True) -> Prediction:
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
    extra: dict[str, object] = {"data_dir": data_dir} if data_dir is not None else {}
    if not verify:
        extra["verify"] = False
    data = build_dataset(part_from_record(catalog, "dataset", "dataset", components.get("dataset"), **extra))
    if not 0 <= index < len(data.test):
        raise ZooError(f"--index {index} is outside the test split, which has {len(data.test)} samples (0..{len(data.test) - 1}).")
    image, label = data.test[index]
    return predict(model, image, data.classes, int(label), index)
