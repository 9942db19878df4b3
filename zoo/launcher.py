"""`zoo run --nproc N`: N worker processes on this machine, started by torch.distributed.run (what
`torchrun --standalone --nproc-per-node N -m zoo run ...` does). The parent resolves and checks the
run once and writes it to RUN_DIR/launch.json; every worker (and every restart) trains from that
file, never from a command line rebuilt from the options."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest.mock import patch  # os.environ set for a block, then as it was

from .errors import CALLED_FROM_PYTHON, ZooError, on_the_command_line, option, resume_it
from .rundir import CONFIG, WEIGHTS, create_run_dir, network_name, read_small_file, write_json
from .stops import Interrupted

if TYPE_CHECKING:
    from .config import ResolvedRun

LAUNCH = "launch.json"


class WorkerFailed(ZooError):
    """A rank of a `zoo run --nproc` job failed; the launcher stopped the others."""


def launch(nproc: int, resolved: ResolvedRun, *, resume_dir: Path | None = None, max_restarts: int = 0, runs_root: Path = Path("runs"),
           threads: int | None = None) -> Path:
    """Train `resolved` in `nproc` processes; returns the run directory. A failed rank ends the job
    with an error that names it and says how to continue."""
    config = resolved.config
    run_dir = resume_dir or create_run_dir(config.out, network_name(resolved.model.to_json()), config.dataset, runs_root)
    write_json(run_dir / LAUNCH, {"config": resolved.to_json(), "processes": nproc, "max_restarts": max_restarts})
    try:
        _elastic_run(nproc, run_dir, max_restarts, threads)
    except BaseException:
        if resume_dir is None and not (run_dir / CONFIG).exists():  # no worker got as far as starting it
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return run_dir


def plan_of(run_dir: Path) -> dict[str, Any]:
    """What a worker trains: the configuration its parent resolved."""
    try:
        plan = json.loads(read_small_file(run_dir / LAUNCH, 16 << 20))
    except (OSError, ValueError, RecursionError):
        plan = None
    if not isinstance(plan, dict) or not isinstance(plan.get("config"), dict):
        raise ZooError(f"{run_dir / LAUNCH} is not a zoo launch plan; start the job with `zoo run --nproc N`.")
    return plan


def _elastic_run(nproc: int, run_dir: Path, max_restarts: int, threads: int | None) -> None:
    import tempfile
    import uuid

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser
    from torch.distributed.run import run as elastic_run

    job = f"zoo-{uuid.uuid4().hex[:12]}"
    for name in list(logging.root.manager.loggerDict):  # zoo says what failed, once; torchrun's own log would repeat it
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        # torchrun's logs in a folder of the job's own (else a /tmp/torchelastic_* is left per job)
        with _workers_import_this_zoo(), _workers_threads(nproc, threads), tempfile.TemporaryDirectory(prefix="zoo-torchrun-") as logs:
            elastic_run(get_args_parser().parse_args([
                "--nnodes", "1", "--nproc-per-node", str(nproc), "--max-restarts", str(max_restarts),
                "--rdzv-backend", "c10d", "--rdzv-endpoint", "localhost:0", "--rdzv-id", job, "--log-dir", logs,
                "--module", "zoo", "run", "--launched", str(run_dir),
            ]))
    except ChildFailedError as error:  # the rank a signal killed, if any: the others then only lost their connection to it
        rank, failure = min(error.failures.items(), key=lambda item: (item[1].exitcode >= 0, item[1].timestamp))
        how = f"was killed by {failure.signal_name()}" if failure.exitcode < 0 else f"exited with code {failure.exitcode}"
        tried = f" after {max_restarts} restart(s)" if max_restarts else ""
        failed = WorkerFailed(
            f"Rank {rank} of {nproc} (pid {failure.pid}) {how}{tried}; the other ranks were stopped and the job ended "
            f"(its own message, if it printed one, is above).{_how_to_continue(run_dir, nproc)}"
        )
        failed.exit_code = failure.exitcode if failure.exitcode > 0 else 1
        raise failed from None
    except SignalException as error:
        name = signal.Signals(error.sigval).name
        how = _how_to_continue(run_dir, nproc)
        raise Interrupted(f"Interrupted ({name}): every rank was stopped.{how}", 128 + int(error.sigval),
                          run_dir if "continue with" in how else None) from None


def _workers_threads(nproc: int, threads: int | None) -> ContextManager[Any]:
    """Each worker's OMP_NUM_THREADS for the job (--threads; else as set; else its share of the cores), then this process's
    as it was: a notebook's next job starts from the user's own setting."""
    each = str(threads) if threads is not None else os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // nproc))
    caller = {} if on_the_command_line() else {CALLED_FROM_PYTHON: "1"}  # zoo.run_processes: the workers' messages speak to Python
    return patch.dict(os.environ, {"OMP_NUM_THREADS": each, **caller})


def _workers_import_this_zoo() -> ContextManager[Any]:
    """The workers' `python -m zoo` imports the zoo this process runs: not a folder called zoo in the working folder (a
    run's --out, a checkout's parent: PYTHONSAFEPATH), and this process's own copy when it is not an installed one (a
    second checkout run as `python -m zoo`: its folder first on PYTHONPATH). The environment is as it was afterwards."""
    import site
    import sysconfig

    import zoo

    root = str(Path(zoo.__file__).resolve().parent.parent)
    installed = {str(Path(p).resolve()) for p in [*site.getsitepackages(), site.getusersitepackages(), sysconfig.get_paths()["purelib"]]}
    values = {"PYTHONSAFEPATH": "1"}
    if root not in installed:
        values["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
    return patch.dict(os.environ, values)


def _how_to_continue(run_dir: Path, nproc: int) -> str:
    from .checkpoint import newest

    if not (run_dir / CONFIG).is_file() or (run_dir / WEIGHTS).exists():
        return ""
    if newest(run_dir)[0] is None:
        return (f" {run_dir} has no checkpoint yet (the first is written at the end of epoch 1, or after {option('--checkpoint-every')} "
                f"steps), so there is nothing to resume: start the run again (delete {run_dir} or choose another {option('--out')}).")
    return f" Its newest checkpoint is kept: continue with {resume_it(run_dir, nproc)}."
