"""zoo: a plugin-based model zoo for PyTorch, grown from the PyTorch Quickstart.

The public surface fits on one screen; importing it does not import torch.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("zoo")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0+unknown"

from .api import catalog, compare, evaluate, list_runs, load, models, predict, resolve, run, run_processes, save
from .contracts import DatasetSplits, EpochEnd, Prediction, Reporter, RunEnd, RunStart, Step
from .errors import DataUnavailable, Interrupted, ZooError, ZooWarning
from .hookspecs import hookimpl
from .identity import added_setting, data_location
from .registry import NoParams

__all__ = [
    "DataUnavailable",
    "DatasetSplits",
    "EpochEnd",
    "Interrupted",
    "NoParams",
    "Prediction",
    "Reporter",
    "RunEnd",
    "RunStart",
    "Step",
    "ZooError",
    "ZooWarning",
    "__version__",
    "added_setting",
    "catalog",
    "compare",
    "data_location",
    "evaluate",
    "hookimpl",
    "list_runs",
    "load",
    "models",
    "predict",
    "resolve",
    "run",
    "run_processes",
    "save",
]
