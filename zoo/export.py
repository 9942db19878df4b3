"""`zoo export`: a trained model out of zoo, as ONNX (onnxruntime checks it) or torch.export's .pt2.

The file has a dynamic batch dimension and the class names in its metadata. Before it is put in
place, the exported model runs on test images and its outputs are compared with zoo's own: the
largest difference is reported, and one above the tolerance fails the export (nothing is written).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import ZooError
from .rundir import temporary_beside

if TYPE_CHECKING:
    from .plugins import Catalog

Format = Literal["onnx", "pt2"]
EXTRA = "pip install 'zoo[export]'"


@dataclass(frozen=True)
class Exported:
    path: Path
    format: str
    samples: int
    max_difference: float
    classes: list[str]
    replaced: bool = False  # `out` held a file before, which the export replaced


def export(catalog: Catalog, reference: str | Path, format: Format, out: Path, *, tolerance: float = 1e-4, samples: int = 64,
           data_dir: Path | None = None, verify: bool = True) -> Exported:
    """Export `reference` (a stored model or a finished run), check it on `samples` test images, then write `out`."""
    import torch

    from .inference import load_data, load_run
    from .rundir import check_output_file

    if not tolerance >= 0:  # NaN passes click's range and would fail every check
        raise ZooError(f"--tolerance {tolerance}: give a number >= 0, the largest difference from zoo's outputs to accept.")
    other = {"onnx": ".pt2", "pt2": ".onnx"}[format]
    if Path(out).suffix.lower() == other:
        raise ZooError(f"--out {out} names a {other} file, but --format {format} writes {'ONNX' if format == 'onnx' else 'a torch.export program'}: "
                       f"name it {Path(out).with_suffix('.' + format).name}, or choose --format {other[1:]}.")
    check_output_file(out, "--out")
    config, model = load_run(catalog, Path(reference))
    data = load_data(catalog, config, data_dir, verify)
    count = min(samples, len(data.test))
    images = torch.stack([data.test[i][0] for i in range(count)]).float()
    with torch.inference_mode():
        expected = model(images)
    classes = list(config["classes"])
    metadata = {"classes": json.dumps(classes), "zoo.model": str(config["components"]["model"]["name"]), "zoo.source": str(reference)}
    if config.get("input_normalization"):  # the model expects (pixels - mean) / std, pixels in [0, 1]
        metadata["zoo.input_normalization"] = json.dumps(config["input_normalization"])
    write = _onnx if format == "onnx" else _pt2
    with temporary_beside(out, f".{format}") as temporary:
        actual = write(model, images, Path(temporary), metadata, _component(config))
        difference = float((actual - expected).abs().max())
        if not difference <= tolerance:
            raise ZooError(f"The exported model's outputs differ from zoo's by up to {difference:.3g} on {count} test images, more than "
                           f"--tolerance {tolerance:g}; {out} was not written. Raise --tolerance if this is expected (e.g. bf16).")
        os.chmod(temporary, 0o644)
        replaced = out.exists()
        os.replace(temporary, out)
    return Exported(out, format, count, difference, classes, replaced)


def _component(config: dict[str, Any]) -> str:
    model = config["components"]["model"]
    plugin = model.get("plugin", {})
    return f"model {model['name']} (component {model['component']}, plugin {plugin.get('name', '?')})"


def _example(images: Any) -> tuple[Any, ...]:
    """Two images as the example input, the batch dimension marked dynamic (one would be specialised)."""
    return (images[:2],)


def _dynamic() -> tuple[dict[int, Any]]:
    from torch.export import Dim

    return ({0: Dim("batch", min=1, max=65536)},)


def _cannot(what: str, component: str, error: Exception) -> ZooError:
    """The exporter's failure, in words (its colour codes left out); a Ctrl-C that it wrapped stays a Ctrl-C."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, KeyboardInterrupt):
            raise cause
        cause = cause.__cause__ or cause.__context__
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(error)).split())
    first = text if len(text) <= 400 else text[:399] + "…"
    return ZooError(f"{component} cannot be exported to {what}: {type(error).__name__}: {first}. Its forward() uses something the "
                    f"exporter cannot trace (Python control flow on tensor values, an unsupported operator); "
                    f"zoo predict and zoo eval still work with it.")


def _onnx(model: Any, images: Any, path: Path, metadata: dict[str, str], component: str) -> Any:
    """ONNX through torch.onnx's exporter; the outputs of onnxruntime on `images`."""
    import torch

    try:
        import onnx
        import onnxruntime
    except ImportError as error:
        raise ZooError(f"zoo export --format onnx needs the optional packages onnx, onnxscript and onnxruntime ({error.name} is missing): {EXTRA}.") from None
    try:
        program = torch.onnx.export(model, _example(images), dynamic_shapes=_dynamic(), input_names=["images"], output_names=["logits"], dynamo=True, verbose=False)
    except Exception as error:  # the exporter's own errors, of many kinds
        raise _cannot("ONNX", component, error) from None
    proto = program.model_proto
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save_model(proto, str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    return torch.from_numpy(logits)


def _pt2(model: Any, images: Any, path: Path, metadata: dict[str, str], component: str) -> Any:
    """torch.export's ExportedProgram, saved as .pt2 with the metadata as extra files; the program's outputs on `images`."""
    import torch

    try:
        program = torch.export.export(model, _example(images), dynamic_shapes=_dynamic())
    except Exception as error:
        raise _cannot("torch.export (.pt2)", component, error) from None
    torch.export.save(program, str(path), extra_files={f"{key}.json" if key == "classes" else key: value for key, value in metadata.items()})
    with torch.inference_mode():
        return program.module()(images)
