"""Where a run computes and how reproducibly: the device, the seeds, deterministic algorithms."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .errors import ZooError, option, spoken

#: cuBLAS needs a fixed workspace for deterministic matmuls; without it the first one raises.
CUBLAS_WORKSPACE = ":4096:8"


def select_device(name: str, index: int | None = None) -> torch.device:
    """auto picks cuda, then mps, then cpu; asking for one that is not there is an error. `index`
    picks a GPU (a rank's local rank)."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if cuda else "mps" if mps else "cpu"
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ZooError(f"{option('--device', name)} was asked for, but this machine's torch has no {name} device; use "
                       f"{spoken('--device cpu or auto', 'device=' + repr('cpu') + ' or ' + repr('auto'))}.")
    if name == "cuda" and index is not None:
        if index >= torch.cuda.device_count():
            raise ZooError(f"Local rank {index} needs GPU {index}, but this machine has {torch.cuda.device_count()}; start at most that many processes per machine.")
        return torch.device("cuda", index)
    return torch.device(name)


def check_devices(device: str, processes: int) -> None:
    """The device asked for is there, with a GPU for each process (the last local rank's) when it is CUDA."""
    select_device(device, processes - 1)


def seed_everything(seed: int) -> None:
    """Python's, NumPy's and torch's generators (dropout, initialisation) from one seed."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def own_random_state() -> Iterator[None]:
    """A run seeds Python's, NumPy's and torch's generators (seed_everything); this puts the caller's states back
    afterwards, so that a notebook's own seeded experiment goes on as if no run had happened in between."""
    import numpy as np

    states, cuda_ready, seed = (random.getstate(), np.random.get_state()), torch.cuda.is_initialized(), torch.initial_seed()
    with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if cuda_ready else []):
        try:
            yield
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])
            if not cuda_ready:  # CUDA started during the run, from the run's seed: as the caller's would have, from theirs
                torch.cuda.manual_seed_all(seed)


@contextmanager
def deterministic_mode(enabled: bool, device: torch.device) -> Iterator[None]:
    """torch.use_deterministic_algorithms for the length of a run, then as it was before (a run must
    not change the next one in the same process). On CUDA it also sets CUBLAS_WORKSPACE_CONFIG,
    which cuBLAS reads when it starts, unless the user set it."""
    before = torch.are_deterministic_algorithms_enabled()
    if not enabled and not before:  # the common case costs nothing: the call imports torch._inductor (1.5 s)
        yield
        return
    set_workspace = enabled and device.type == "cuda" and "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    if set_workspace:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
    torch.use_deterministic_algorithms(enabled)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
        if set_workspace:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
