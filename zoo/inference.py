"""Use a finished run: rebuild its model from config.json, load model.safetensors (never a pickle),
then predict test samples or image files, or evaluate a whole test split."""

from __future__ import annotations

import sys

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Part, part_from_record, recorded_component
from .contracts import DatasetSplits, Prediction
from .errors import ZooError, option
from .plugins import Catalog
from .rundir import WeightsDoNotFit, load_weights, read_small_file


def load_run(catalog: Catalog, run_dir: Path) -> tuple[dict[str, Any], Any]:
    """The run's config.json (or a stored model's) and its model with the saved weights, in eval mode.
    `run_dir` may name a trained model (zoo.store): its card and SHA-256 are checked first."""
    from .build import build_model
    from .store import open_source

    source = open_source(run_dir, catalog)
    config = source.config
    model = build_model(
        part_from_record(catalog, "model", "model", config["components"].get("model")),
        tuple(config.get("input_shape", ())),
        len(config.get("classes", ())),
    )
    try:
        load_weights(model, source.weights)
    except WeightsDoNotFit as error:
        raise ZooError(f"{error} {_changed_since(catalog, config.get('components', {}).get('model') or {})}") from None
    return config, model.eval()


def _changed_since(catalog: Catalog, record: dict[str, Any]) -> str:
    """Why the model built from config.json is another network now: its plugin's code changed since the training."""
    plugin = record.get("plugin") if isinstance(record.get("plugin"), dict) else {}
    distribution, version = str(plugin.get("distribution", "?")), str(plugin.get("version", "?"))
    try:
        owner = catalog.registry.get("model", str(record.get("component"))).owner
        now = owner.version
    except ZooError:  # two plugins have the name now (zoo.config.part_from_record took the recorded one)
        now = version
    released = version[:1].isdigit()  # not a plugin file's "(file)" nor an in-process plugin's "-"
    changed = (f"{distribution} {version} trained it and {distribution} {now} builds it now" if now != version
               else f"the code of plugin '{plugin.get('name', '?')}' that builds it has changed since it was trained")
    advice = f"reinstall {distribution}=={version}" if released and now != version else "restore the plugin's code as it was"
    return (f"The model '{record.get('name', record.get('component'))}' is not built as it was: {changed}. To use these weights, "
            f"{advice}; or train the model again.")


def load_data(catalog: Catalog, config: dict[str, Any], data_dir: Path | None, verify: bool, dataset: str | None = None) -> DatasetSplits:
    """The run's dataset (or another one by name, with its default settings)."""
    from .build import build_dataset

    from .identity import location_params

    if dataset is None:  # the run's own; a plugin no longer loaded is named, with what would load it again
        record = config["components"].get("dataset")
        component = recorded_component(catalog, "dataset", "dataset", record)  # not validated: the data may have moved (--data-dir)
        extra = location_params(component.params, str(record.get("name", component.name)), component.owner, data_dir, None if verify else False)
        part = part_from_record(catalog, "dataset", "dataset", record, **extra)
    else:
        resolved = catalog.resolve("dataset", dataset)
        extra = location_params(resolved.component.params, dataset, resolved.component.owner, data_dir, None if verify else False)
        part = Part("dataset", resolved, resolved.component.params.model_validate({**resolved.params, **extra}))
    data = build_dataset(part)
    if len(data.classes) != len(config.get("classes", ())):
        raise ZooError(f"Dataset {part.resolved.name!r} has {len(data.classes)} classes but the model was trained on {len(config['classes'])}.")
    differing = [i for i, (theirs, ours) in enumerate(zip(data.classes, config["classes"])) if str(theirs) != str(ours)]
    if differing:  # labels that mean other things: another dataset (eval --dataset), the plugin changed, or other files
        i = differing[0]
        which = (f"Dataset {part.resolved.name!r} has" if dataset is not None else
                 f"The run's dataset {part.resolved.name!r} now has (its plugin changed since, or the data it read is other data)")
        raise ZooError(f"{which} other classes than the model was trained on: its class {i} is "
                       f"{data.classes[i]!r}, the model's {config['classes'][i]!r} ({len(differing)} of {len(data.classes)} "
                       f"differ), so its predictions would be scored against labels that mean other things. Evaluate it on a dataset "
                       f"with the same classes, in the same order.")
    return data


def predict_indices(catalog: Catalog, run_dir: Path, indices: list[int], data_dir: Path | None = None, verify: bool = True) -> tuple[list[Prediction], list[Any]]:
    """Predictions for test samples, and the images themselves (for a grid)."""
    from .train import predict

    config, model = load_run(catalog, run_dir)
    data = load_data(catalog, config, data_dir, verify)
    predictions, images = [], []
    for index in indices:
        if not 0 <= index < len(data.test):
            raise ZooError(f"{option('--index', index)} is outside the test split, which has {len(data.test)} samples (0..{len(data.test) - 1}).")
        image, label = data.test[index]
        predictions.append(predict(model, image, data.classes, int(label), index))
        images.append(image)
    return predictions, images


def predict_index(catalog: Catalog, run_dir: Path, index: int, data_dir: Path | None = None, verify: bool = True) -> Prediction:
    return predict_indices(catalog, run_dir, [index], data_dir, verify)[0][0]


#: Images larger than this are refused before they are decoded (--max-pixels raises it): a
#: 50-megapixel photo decodes in a fraction of a second, while a 333-byte JPEG may claim 4 gigapixels.
MAX_PIXELS = 50_000_000
#: A picture file larger than this is not read at all (a link to /dev/zero, say).
MAX_IMAGE_BYTES = 512 * 2**20
#: What Pillow may decode: the common photo formats, and no others (TIFF, PSD... stay out).
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
READABLE = "give a PNG or JPEG file (GIF, WebP and BMP work too; of an animated GIF or WebP, the first frame is used)"


def image_to_input(picture: Any, input_shape: tuple[int, ...], max_pixels: int = MAX_PIXELS, background: str = "dark") -> Any:
    """A picture (a file's path, a PIL image, or a uint8 array of rows × columns [× channels]) as the dataset's
    input: its first frame, grayscale (or RGB), resized, scaled to [0, 1], and inverted when its background is not
    the training images' (`background`: FashionMNIST and MNIST draw light things on black; a photo is on white).
    A file's size is read from its header and checked before any pixel is decoded."""
    import torch
    from torchvision.transforms.v2.functional import resize

    from .data import border_mean

    channels, height, width = input_shape
    mode = "L" if channels == 1 else "RGB"
    if isinstance(picture, (str, Path)):
        pixels = _decode_first_frame(Path(picture), mode, max_pixels, (width, height))
    else:
        pixels = _in_memory(picture, mode, max_pixels)
    image = torch.from_numpy(pixels).reshape(pixels.shape[0], pixels.shape[1], -1).permute(2, 0, 1)
    image = resize(image, [height, width], antialias=True).float().div(255)
    if (border_mean(image) > 0.5) != (background == "light"):
        image = 1 - image
    return image


def is_picture(value: Any) -> bool:
    """A PIL image or a numpy array of pixels (not a 0-d one, which is a number): what zoo.predict takes as a picture
    besides a file's path. Told apart without importing PIL or numpy: a caller who has one has imported its module."""
    image, array = getattr(sys.modules.get("PIL.Image"), "Image", ()), getattr(sys.modules.get("numpy"), "ndarray", ())
    return isinstance(value, image) or (isinstance(value, array) and value.ndim > 0)


def _in_memory(picture: Any, mode: str, max_pixels: int) -> Any:
    """A PIL image (as it is: of an animated one, the frame it is at) or a numpy array of uint8 pixels (rows × columns,
    with 1, 3 or 4 channels) as a uint8 array in `mode`, checked as a file's picture is."""
    import numpy as np
    from PIL import Image

    if isinstance(picture, np.ndarray):
        if picture.dtype != np.uint8 or not (picture.ndim == 2 or (picture.ndim == 3 and picture.shape[2] in (1, 3, 4))):
            raise ZooError(f"A picture as a numpy array holds uint8 pixels, rows × columns (× 1, 3 or 4 channels); not an array of dtype "
                           f"{picture.dtype} and shape {tuple(picture.shape)} (scale a float image in [0, 1] with (a * 255).round().astype('uint8')).")
        picture = Image.fromarray(picture[:, :, 0] if picture.ndim == 3 and picture.shape[2] == 1 else picture)
    columns, rows = picture.size
    if not 0 < columns * rows <= max_pixels:
        raise ZooError(f"A picture of {columns}×{rows} pixels cannot be predicted: it must have at least one pixel and at most {max_pixels:,}.")
    if picture.mode == "F":
        raise ZooError("A PIL image of mode F (floating point) has no fixed scale to read as pixels; convert it to 8 bits first "
                       "(e.g. Image.fromarray((a * 255).round().astype('uint8')) for values in [0, 1]).")
    try:
        return _pixels(picture, mode)
    except (ValueError, OSError, AttributeError, AssertionError) as error:  # a closed image (used after its `with` block), say
        raise ZooError(f"The PIL image cannot be read ({type(error).__name__}: {error or 'no detail'}); if it was opened in a `with` "
                       f"block, call .load() inside it, or use Image.open(path) without one.") from None


def _pixels(image: Any, mode: str) -> Any:
    """A decoded PIL image as a uint8 array in `mode`; 16-bit grey is scaled, not clipped at 255 as Pillow's convert would."""
    import numpy as np
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode == "I":
        wide = np.asarray(image, dtype=np.float64)
        full_scale = 65535 if image.mode.startswith("I;16") or wide.max() > 255 else 255
        image = Image.fromarray(np.round(wide * 255 / full_scale).astype(np.uint8))
    return np.array(image.convert(mode), dtype=np.uint8)


def _decode_first_frame(path: Path, mode: str, max_pixels: int, target: tuple[int, int]) -> Any:
    """The first frame of `path` as a uint8 array in `mode`, after checking the size its header claims."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        raw = read_small_file(path, MAX_IMAGE_BYTES)
    except FileNotFoundError:
        raise ZooError(f"Cannot read {path}: no such file.") from None
    except OSError as error:
        raise ZooError(f"Cannot read {path}: {error.strerror or error}.") from None
    not_an_image = ZooError(f"{path} is not an image zoo can read: {READABLE}.")
    if not raw:
        raise not_an_image
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # Pillow's own bomb check, replaced by this one against --max-pixels
    try:
        with Image.open(io.BytesIO(raw), formats=FORMATS) as image:  # reads the header only
            columns, rows = image.size
            if columns * rows > max_pixels:
                raise ZooError(
                    f"{path} is {columns}×{rows} pixels ({columns * rows:,}), more than the limit of {max_pixels:,}; "
                    f"zoo refuses it before decoding (such a file can claim gigapixels in a few bytes). Shrink the "
                    f"picture, or raise the limit with --max-pixels {columns * rows} if you trust it."
                )
            image.seek(0)  # an animated GIF or WebP: its first frame, always
            image.draft(mode, target)  # a JPEG decodes at a reduced scale when that is still larger than the target
            return _pixels(image, mode)
    except ZooError:
        raise
    except ValueError as error:
        if "too large" in str(error) or "text chunks" in str(error):  # Pillow's limits on text and ICC chunks (one, or all together)
            raise ZooError(f"{path} carries more metadata (text or a colour profile) than zoo reads safely: save the picture again "
                           f"without it (e.g. as a plain PNG), and predict that.") from None
        raise not_an_image from None
    except (UnidentifiedImageError, OSError, SyntaxError, EOFError, Image.DecompressionBombError):
        raise not_an_image from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def predict_files(catalog: Catalog, run_dir: Path, paths: list[Any], max_pixels: int = MAX_PIXELS) -> tuple[list[Prediction], list[Any]]:
    """Predictions for pictures (files, or PIL images and arrays: see image_to_input), and the inputs made of them."""
    from .train import predict

    config, model = load_run(catalog, run_dir)
    shape = tuple(config.get("input_shape", ()))
    if len(shape) != 3:
        raise ZooError(f"{run_dir}'s model does not take images (input shape {shape}).")
    background = config.get("input_background") or "dark"  # runs from before it was recorded: the built-in datasets' dark
    images = [image_to_input(path, shape, max_pixels, background) for path in paths]  # pixels in [0, 1], as shown
    mean, std = config.get("input_normalization") or (0.0, 1.0)  # standardised as the training data was, if it was
    return [predict(model, (image - mean) / std, config["classes"], None, i) for i, image in enumerate(images)], images


@dataclass
class Evaluation:
    dataset: str
    accuracy: float
    loss: float
    classes: list[str]
    confusion: list[list[int]]  # rows: actual class; columns: predicted class
    precision: str = "fp32"  # the run's, so that its log's test loss is reproduced (bf16 rounds otherwise)

    def per_class(self) -> list[tuple[str, int, int]]:
        """(class, correct, total) for each class."""
        return [(name, row[i], sum(row)) for i, (name, row) in enumerate(zip(self.classes, self.confusion))]


def evaluate(catalog: Catalog, run_dir: Path, dataset: str | None = None, data_dir: Path | None = None, verify: bool = True,
             precision: str | None = None) -> Evaluation:
    """Accuracy, average loss and the confusion matrix of the saved model on a test split, in `precision`
    (default: the one the run trained and tested in, as config.json records it)."""
    import torch

    from .build import build_loss
    from .data import Batches
    from .train import add_quickstart_losses, loss_sum, test_batch_size

    config, model = load_run(catalog, run_dir)
    data = load_data(catalog, config, data_dir, verify, dataset)
    loss_fn = build_loss(part_from_record(catalog, "loss", "loss", config["components"].get("loss")))
    n = len(data.classes)
    confusion = torch.zeros(n, n, dtype=torch.long)
    batch_size = int(config.get("batch_size") or 64)  # the run's: the Quickstart averages the loss over batches of it
    device = next(iter(model.parameters()), torch.empty(0)).device
    recorded = config.get("resolved_precision")
    recorded = recorded.get("precision") if isinstance(recorded, dict) else config.get("precision")  # runs from before auto: their setting
    precision = precision or (recorded if recorded in ("fp32", "bf16") else "fp32")
    total_loss = loss_sum(device)  # read once, at the end
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        for first, X, y in Batches(data.test, test_batch_size(batch_size), device).positioned():
            logits = model(X).float()
            add_quickstart_losses(total_loss, loss_fn, logits, y, first, batch_size, len(data.test))
            confusion += torch.bincount(y * n + logits.argmax(1), minlength=n * n).reshape(n, n).cpu()
    size = int(confusion.sum())
    return Evaluation(
        dataset=dataset or config["components"]["dataset"]["name"],
        accuracy=int(confusion.diagonal().sum()) / size,
        loss=total_loss.item() / -(-size // batch_size),
        classes=list(data.classes),
        confusion=confusion.tolist(),
        precision=precision,
    )

