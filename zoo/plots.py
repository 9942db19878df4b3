"""Pictures of a run, drawn with matplotlib's Agg backend (no display needed): the training curves,
a grid of predictions, the confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .contracts import Prediction


def picture_path(path: Path, option: str) -> Path:
    """The file a picture asked for with `option` will really be written to: .png added when the name has
    no extension (as matplotlib does), any other extension one that matplotlib can write. Checked before
    any work, so that a typo costs nothing and the path zoo prints is the file it wrote."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from .errors import ZooError
    from .rundir import check_output_file

    if path.is_dir():
        raise ZooError(f"{option} {path} is a directory; give a file name, e.g. {option} {path / 'picture.png'}.")
    if not path.suffix:
        path = path.with_name(path.name + ".png")
    formats = FigureCanvasAgg.get_supported_filetypes()
    if path.suffix[1:].lower() not in formats:
        raise ZooError(f"{option} {path}: zoo cannot draw a {path.suffix} file; end the name with one of {', '.join('.' + f for f in sorted(formats))}.")
    check_output_file(path, option)
    return path


def figure(size: tuple[float, float]) -> Any:
    """A matplotlib Figure drawn without pyplot: nothing global changes (a notebook keeps its backend, and
    `%matplotlib inline` its figures), and nothing needs closing."""
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=100)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a log file, one a line; a line that is not one (cut short by a crash,
    or damaged) is left out, as are bytes that are not UTF-8: a log never stops zoo."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _numbers(record: dict[str, Any], keys: tuple[str, ...]) -> bool:
    return all(isinstance(record.get(key), (int, float)) and not isinstance(record.get(key), bool) for key in keys)


def write_curves(run_dir: Path, path: Path | None = None) -> Path:
    """curves.png: training loss per logged step; test loss and test accuracy per epoch."""
    from .rundir import METRICS, STEPS
    from .runs import read_metrics

    steps = [s for s in read_jsonl(run_dir / STEPS) if _numbers(s, ("epoch", "seen", "loss")) and _numbers(s, ("total",)) and s["total"] > 0]
    epochs, _ = read_metrics(run_dir / METRICS)
    drawing = figure((10, 4))
    loss_axes, accuracy_axes = drawing.subplots(1, 2)
    if steps:
        per_epoch = max(s["total"] for s in steps)
        loss_axes.plot([s["epoch"] - 1 + s["seen"] / per_epoch for s in steps], [s["loss"] for s in steps], label="training loss (logged steps)", lw=1)
    if epochs:
        loss_axes.plot([e["epoch"] for e in epochs], [e["test_loss"] for e in epochs], "o-", label="test loss")
        accuracy_axes.plot([e["epoch"] for e in epochs], [100 * e["test_accuracy"] for e in epochs], "o-", color="tab:green")
    loss_axes.set(xlabel="epoch", ylabel="loss", title="Loss")
    loss_axes.legend()
    accuracy_axes.set(xlabel="epoch", ylabel="test accuracy (%)", title="Test accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        _whole_epochs(axes)
    drawing.suptitle(run_dir.name)
    drawing.tight_layout()
    path = path or run_dir / "curves.png"
    _save(drawing, path)
    return path


def _whole_epochs(axes: Any) -> None:
    """Ticks on whole epochs only (a 1-epoch run would get 0.96, 0.98, ... 1.04), and room for them."""
    from matplotlib.ticker import MaxNLocator

    low, high = axes.get_xlim()
    axes.set_xlim(min(low, 0.5), max(high, 1.5))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def write_comparison(runs: list[Path], path: Path) -> Path:
    """Test accuracy and test loss per epoch of several runs, on the same axes."""
    from .rundir import METRICS
    from .runs import read_metrics

    drawing = figure((10, 4))
    accuracy_axes, loss_axes = drawing.subplots(1, 2)
    for label, run_dir in zip("ABCDEFGH", runs):
        epochs, _ = read_metrics(run_dir / METRICS)  # a damaged file: the epochs before the damage
        x = [e["epoch"] for e in epochs]
        accuracy_axes.plot(x, [100 * e["test_accuracy"] for e in epochs], "o-", label=f"{label}: {run_dir.name}")
        loss_axes.plot(x, [e["test_loss"] for e in epochs], "o-", label=f"{label}: {run_dir.name}")
    accuracy_axes.set(xlabel="epoch", ylabel="test accuracy (%)", title="Test accuracy")
    loss_axes.set(xlabel="epoch", ylabel="test loss", title="Test loss")
    for axes in (accuracy_axes, loss_axes):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
        _whole_epochs(axes)
    drawing.tight_layout()
    _save(drawing, path)
    return path


def write_prediction_grid(images: list[torch.Tensor], predictions: list[Prediction], path: Path) -> Path:
    """Each image with its predicted and actual label (green if right, red if wrong) and a probability bar chart."""
    count = len(images)
    drawing = figure((2.6 * count, 5.2))
    axes = drawing.subplots(2, count, squeeze=False)
    for column, (image, prediction) in enumerate(zip(images, predictions)):
        picture = image.detach().cpu().float()
        picture = picture[0] if picture.shape[0] == 1 else picture.permute(1, 2, 0)
        axes[0][column].imshow(picture.numpy(), cmap="gray")
        axes[0][column].axis("off")
        right = prediction.actual is None or prediction.actual == prediction.predicted
        title = f"#{prediction.index}: {prediction.predicted}" + ("" if prediction.actual is None else f"\n(actual: {prediction.actual})")
        axes[0][column].set_title(title, color="tab:green" if right else "tab:red", fontsize=9)
        names = list(prediction.probabilities)
        values = [prediction.probabilities[n] for n in names]
        colors = ["tab:green" if n == prediction.predicted else "tab:gray" for n in names]
        axes[1][column].barh(range(len(names)), values, color=colors)
        axes[1][column].set_yticks(range(len(names)), names, fontsize=7)
        axes[1][column].invert_yaxis()
        axes[1][column].set_xlim(0, 1)
    drawing.tight_layout()
    _save(drawing, path)
    return path


def write_confusion(matrix: list[list[int]], classes: list[str], path: Path) -> Path:
    """The confusion matrix: rows are the actual class, columns the predicted one."""
    size = max(5.0, 0.6 * len(classes) + 2)
    drawing = figure((size, size))
    axes = drawing.subplots()
    image = axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axes.set_yticks(range(len(classes)), classes)
    axes.set(xlabel="predicted", ylabel="actual", title="Confusion matrix")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            axes.text(j, i, str(value), ha="center", va="center", fontsize=7, color="white" if value > peak / 2 else "black")
    drawing.colorbar(image, ax=axes, fraction=0.046)
    drawing.tight_layout()
    _save(drawing, path)
    return path


def _save(drawing: Any, path: Path) -> None:
    """The picture whole or not at all (written beside `path`, then renamed): a Ctrl-C or a full disk midway
    leaves the earlier picture, never half of one."""
    from .rundir import write_atomic

    write_atomic(path, lambda temporary: drawing.savefig(temporary, format=path.suffix[1:].lower() or "png"))
